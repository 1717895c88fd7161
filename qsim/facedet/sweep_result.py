"""A sweep's results: one `SweepRow` per format, the `SweepResult` table, JSON and plot."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qsim.facedet.paper import paper_row


@dataclass
class SweepRow:
    """One format's result."""

    format: str
    executor: str
    mode: str
    eval: Any  # DetectionEval
    params: int | None
    size_bytes: int | None
    overflow: Any = None  # OverflowReport (fixed full / fp16 / k210), else None
    seconds: float = 0.0
    cached_images: int = 0
    ap_interval: tuple | None = None  # (low, high) bootstrap over pictures (sweep(bootstrap=N))

    @property
    def ap(self) -> float:
        return self.eval.ap

    def to_dict(self) -> dict:
        out = {
            "format": self.format, "executor": self.executor, "mode": self.mode, "ap": self.ap,
            "paper_ap": None,  # `SweepResult.to_dict` fills it where the paper's figure applies
            "params": self.params, "size_bytes": self.size_bytes,
            "overflow_events": None if self.overflow is None else self.overflow.total_events,
            "first_overflow": None,
            "seconds": self.seconds, "cached_images": self.cached_images,
            "ap_interval": None if self.ap_interval is None else list(self.ap_interval),
            "eval": self.eval.to_dict(points=50),
        }
        if self.overflow is not None:
            first = self.overflow.first_overflow()
            out["first_overflow"] = None if first is None else first.name
            out["overflow"] = self.overflow.to_dict()
        return out


@dataclass
class SweepResult:
    """All rows of a sweep, with what was measured on what."""

    model: str
    dataset: str
    n_images: int
    n_faces: int
    settings: dict
    rows: list[SweepRow] = field(default_factory=list)
    skipped_images: int = 0
    paper_model: bool = False  # the model is the paper's A98 alpha 1.0 (`is_paper_a98`)

    def paper_row(self, fmt: str):
        """The paper's (AP, params, size) for a row: Viola-Jones always, the A98 rows only for an A98."""
        return paper_row(self.dataset, fmt, self.paper_model)

    def to_dict(self) -> dict:
        return {"qsim_sweep": 1, "model": self.model, "dataset": self.dataset, "n_images": self.n_images,
                "n_faces": self.n_faces, "skipped_images": self.skipped_images, "settings": self.settings,
                "rows": [{**r.to_dict(), "paper_ap": (self.paper_row(r.format) or (None,))[0]} for r in self.rows]}

    def markdown(self) -> str:
        """The Table II layout, with the paper's numbers beside ours (FDDB only)."""
        from qsim.analysis.report import markdown_table

        headers = ["format", "mode", "AP", "AP (paper)", "parameters", "size", "params (paper)", "size (paper)",
                   "overflow events", "s/img"]
        rows = []
        for r in self.rows:
            p = self.paper_row(r.format)
            rows.append([
                r.format, r.mode,
                f"{r.ap:.3f}" + ("" if r.ap_interval is None else " [{:.3f}-{:.3f}]".format(*r.ap_interval)),
                "-" if p is None else f"{p[0]:.3f}",
                "-" if r.params is None else f"{r.params / 1e6:.3f}M",
                "-" if r.size_bytes is None else f"{r.size_bytes / 2**20:.2f}MB",
                "-" if p is None else p[1], "-" if p is None else p[2],
                "-" if r.overflow is None else str(r.overflow.total_events),
                f"{r.seconds / max(self.n_images, 1):.2f}",
            ])
        return markdown_table(headers, rows, align="llrrrrrrrr")

    def plot(self, path: Any) -> Path:
        """AP per format (ours, and the paper's where known) beside the precision/recall curves."""
        from qsim.analysis.plots import _check_path, _pyplot

        path = _check_path(path)
        plt = _pyplot()
        fig, (ax, ax_pr) = plt.subplots(1, 2, figsize=(max(4.0, 0.9 * len(self.rows) + 2) + 4, 3.4))
        xs = np.arange(len(self.rows))
        ax.bar(xs - 0.2, [r.ap for r in self.rows], 0.4, label="qsim")
        paper = [(self.paper_row(r.format) or (np.nan,))[0] for r in self.rows]
        if not np.all(np.isnan(paper)):
            ax.bar(xs + 0.2, paper, 0.4, label="paper")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{r.format}\n{r.mode}" for r in self.rows], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("AP (IoU >= 0.5)")
        ax.set_title(f"{Path(self.model).name} on {self.dataset} ({self.n_images} images)", fontsize=9)
        ax.legend(fontsize=8)
        for r in self.rows:
            ax_pr.plot(r.eval.recall, r.eval.precision, label=f"{r.format} ({r.ap:.3f})", lw=1)
        ax_pr.set_xlim(0, 1)
        ax_pr.set_ylim(0, 1.02)
        ax_pr.set_xlabel("recall")
        ax_pr.set_ylabel("precision")
        ax_pr.set_title("precision / recall", fontsize=9)
        ax_pr.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path
