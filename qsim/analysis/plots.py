"""PNG plots of analysis results (matplotlib, imported lazily, Agg backend).

Plots take the analysis objects (or plain arrays) and a path; they never compute
statistics themselves, so every plotted number is also in the JSON report.

* `plot_comparison`: SQNR (dB) per layer, with the threshold line (``qsim compare --plot``).
* `plot_profile`: the paper's Fig. 3, min-max range of the activations per layer (thin bar),
  1st-99th percentile (thick bar), and the weights' range in a second panel.
* `plot_heatmap`: a layer x format matrix (overflow rates of ``bench/bench_overflow.py``),
  log colour scale, exact zeros left white.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qsim.errors import QsimError


def _pyplot():
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a declared dependency
        raise QsimError("plots need matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        raise QsimError(f"cannot write plot {path}: folder {path.parent} does not exist")
    return path


def _layer_axis(ax, names: Sequence[str], max_labels: int = 80) -> None:
    step = max(1, math.ceil(len(names) / max_labels))
    ticks = list(range(0, len(names), step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([names[i] for i in ticks], rotation=90, fontsize=5)
    ax.set_xlim(-1, len(names))


def plot_comparison(comp: Any, path: str | Path, sqnr_threshold_db: float | None = None) -> Path:
    """SQNR per layer of a `qsim.analysis.compare.Comparison`; exact layers drawn at the top."""
    path = _check_path(path)
    plt = _pyplot()
    names = [row.name for row in comp.layers]
    sqnr = np.array([row.stats.sqnr_db for row in comp.layers], dtype=np.float64)
    finite = sqnr[np.isfinite(sqnr)]
    top = (finite.max() if finite.size else 100.0) + 10.0
    bottom = min(finite.min() if finite.size else 0.0, sqnr_threshold_db or 0.0) - 10.0
    shown = np.clip(sqnr, bottom, top)
    fig, ax = plt.subplots(figsize=(max(8, len(names) * 0.08), 4.5))
    ax.plot(range(len(names)), shown, marker=".", lw=1)
    exact = np.isposinf(sqnr)
    if exact.any():
        ax.plot(np.flatnonzero(exact), shown[exact], "g^", ms=4, label="exact (inf dB)")
    if sqnr_threshold_db is not None:
        ax.axhline(sqnr_threshold_db, color="r", ls="--", lw=1, label=f"{sqnr_threshold_db:g} dB")
    ax.set_ylabel("SQNR (dB)")
    ax.set_title(f"{comp.test} vs {comp.reference}: per-layer SQNR over {comp.n_images} image(s)")
    _layer_axis(ax, names)
    ax.grid(alpha=0.3)
    if exact.any() or sqnr_threshold_db is not None:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_profile(prof: Any, path: str | Path) -> Path:
    """The paper's Fig. 3 (min-max activation range per layer) plus the weights' ranges."""
    path = _check_path(path)
    plt = _pyplot()
    layers = [layer for layer in prof.layers.values() if layer.act.count]
    if not layers:
        raise QsimError("nothing to plot: no activations were profiled")
    names = [layer.name for layer in layers]
    x = np.arange(len(layers))
    fig, (ax_a, ax_w) = plt.subplots(2, 1, figsize=(max(8, len(layers) * 0.08), 7), sharex=True)
    lo = [layer.act.min for layer in layers]
    hi = [layer.act.max for layer in layers]
    p1 = [layer.act.percentile(1) for layer in layers]
    p99 = [layer.act.percentile(99) for layer in layers]
    ax_a.vlines(x, lo, hi, lw=1, color="tab:blue", label="min-max")
    ax_a.vlines(x, p1, p99, lw=3, color="tab:orange", label="p1-p99")
    ax_a.set_ylabel("activation")
    ax_a.set_title(f"Activation range per layer ({prof.n_images} calibration image(s))")
    ax_a.legend(fontsize=7)
    ax_a.grid(alpha=0.3)
    w_x = [i for i, layer in enumerate(layers) if layer.weights is not None]
    if w_x:
        ax_w.vlines(w_x, [layers[i].weights.min for i in w_x], [layers[i].weights.max for i in w_x],
                    lw=2, color="tab:green", label="weights min-max")
        ax_w.legend(fontsize=7)
    ax_w.set_ylabel("weight")
    ax_w.grid(alpha=0.3)
    _layer_axis(ax_w, names)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_heatmap(matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str],
                 path: str | Path, title: str = "", colorbar_label: str = "overflow rate") -> Path:
    """Rows x columns heatmap of non-negative rates, log colour scale, zeros white."""
    path = _check_path(path)
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (len(row_labels), len(col_labels)):
        raise QsimError(f"heatmap: matrix {m.shape} does not match {len(row_labels)} x {len(col_labels)} labels")
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    positive = m[m > 0]
    vmin = max(positive.min(), 1e-9) if positive.size else 1e-9
    vmax = max(positive.max(), vmin * 10) if positive.size else 1.0
    masked = np.ma.masked_where(m <= 0, m)
    cmap = plt.get_cmap("inferno_r").with_extremes(bad="white")
    fig, ax = plt.subplots(figsize=(2 + 0.7 * len(col_labels), 2 + 0.09 * len(row_labels)))
    im = ax.imshow(masked, aspect="auto", interpolation="nearest", cmap=cmap,
                   norm=LogNorm(vmin=vmin, vmax=vmax))
    ax.set_xticks(range(len(col_labels)))
    ax.set_xticklabels(col_labels, rotation=45, ha="right", fontsize=7)
    step = max(1, math.ceil(len(row_labels) / 120))
    ax.set_yticks(range(0, len(row_labels), step))
    ax.set_yticklabels(list(row_labels)[::step], fontsize=4)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label=colorbar_label + " (white: none)")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
