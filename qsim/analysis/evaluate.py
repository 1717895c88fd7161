"""`qsim eval`: a task metric of any model per number format, on the user's own data.

``evaluate(model, x, y, "fp32,fp16,q9,Q4.11,plan.json,k210,tflite:F", metric=...)`` runs
the model on every sample of ``x`` (first axis = sample, fed in batches of ``batch``) in
each format (`qsim.analysis.formats`) and measures `qsim.analysis.metrics` (top-1, top-5,
MSE, AUC, or agreement with the float model when there are no labels) with a bootstrap
interval, the agreement of every format with the float model (top-1 agreement or output
SQNR) and the overflow events each format counted.

The float model is always run (agreement is measured against it). Machinery shared with
`qsim sweep`: results per (model, format, batch) live in the store of
`qsim.analysis.store` (``<cache>/eval/<model>/<format>/<batch>.npz``, keyed by the bytes of
the batch, so a rerun or a larger ``limit`` computes only what is missing), computed in
this process, in worker processes or on a Dask cluster (`qsim.analysis.tasks`). Numbers depend neither on
``workers`` nor on ``batch`` (the backends are batch-invariant). Output 0 is measured.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qsim.analysis.formats import NumberFormat, parse_formats
from qsim.analysis.metrics import (
    HIGHER_IS_BETTER,
    METRICS,
    agreement,
    bootstrap_interval,
    default_metric,
    is_classifier,
)
from qsim.analysis.store import ResultStore, cache_root, model_hash
from qsim.analysis.tasks import map_tasks
from qsim.errors import InputError

CACHE_VERSION = 1


def load_data(path: Any, x_key: str | None = None, y_key: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(x, y or None) from a ``.npz`` (keys ``x``/``y`` unless given) or an ``.npy`` (x only).

    Object arrays (pickles) are refused; x must be numeric and finite.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--data {p}: file not found")
    try:
        loaded = np.load(p, allow_pickle=False)
    except Exception as exc:  # numpy raises many kinds (SyntaxError from a corrupt header ...)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"--data {p}: not a readable .npz/.npy without pickles ({first})") from None
    if isinstance(loaded, np.ndarray):
        if y_key:
            raise InputError(f"--data {p}: an .npy holds one array; --y {y_key} needs an .npz")
        x, y = loaded, None
    else:
        with loaded as z:
            keys = list(z.files)
            xk = x_key or ("x" if "x" in keys else keys[0] if len(keys) == 1 else None)
            if xk is None or xk not in keys:
                raise InputError(f"--data {p}: no input array {xk or 'x'!r} (keys: {', '.join(keys)}); pass --x KEY")
            yk = y_key or ("y" if "y" in keys and x_key is None else None)
            if yk is not None and yk not in keys:
                raise InputError(f"--data {p}: no label array {yk!r} (keys: {', '.join(keys)})")
            try:
                x = z[xk]
                y = None if yk is None else z[yk]
            except Exception as exc:  # an object array, a damaged member
                raise InputError(f"--data {p}: cannot read {xk!r}/{yk!r} ({type(exc).__name__}: {exc})") from None
    if x.dtype.kind not in "iuf" or x.ndim < 1 or len(x) == 0:
        raise InputError(f"--data {p}: inputs must be a numeric array with samples on axis 0; "
                         f"got shape {x.shape} dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        first = int(np.argmax((~np.isfinite(x.reshape(len(x), -1))).any(axis=1)))
        raise InputError(f"--data {p}: inputs hold NaN or Inf (first at sample {first})")
    if y is not None and (y.dtype.kind not in "iufb" or len(y) != len(x)):
        raise InputError(f"--data {p}: labels {y.shape} {y.dtype} do not match {len(x)} numeric samples")
    return x, y


@dataclass
class EvalRow:
    """One format's figures."""

    format: str
    executor: str
    mode: str
    value: float  # the metric
    interval: tuple | None
    agreement: float  # with the float model: top-1 agreement, or SQNR (dB)
    overflow: Any = None  # OverflowReport, for counting backends
    seconds: float = 0.0
    cached_batches: int = 0

    def to_dict(self) -> dict:  # non-finite values (SQNR of an exact run) are written "inf" by the CLI
        return {"format": self.format, "executor": self.executor, "mode": self.mode, "value": self.value,
                "interval": None if self.interval is None else list(self.interval),
                "agreement": self.agreement,
                "overflow_events": None if self.overflow is None else self.overflow.total_events,
                "first_overflow": None if self.overflow is None or self.overflow.first_overflow() is None
                else self.overflow.first_overflow().name,
                "seconds": self.seconds, "cached_batches": self.cached_batches}


@dataclass
class EvalResult:
    model: str
    data: str
    n_samples: int
    metric: str
    agreement_kind: str  # "top-1 agreement" or "SQNR dB"
    rows: list[EvalRow] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"qsim_eval": 1, "model": self.model, "data": self.data, "n_samples": self.n_samples,
                "metric": self.metric, "higher_is_better": HIGHER_IS_BETTER[self.metric],
                "agreement_kind": self.agreement_kind, "rows": [r.to_dict() for r in self.rows]}

    def markdown(self) -> str:
        from qsim.analysis.report import markdown_table

        def fmt(v):
            return "inf" if v == math.inf else f"{v:.4f}" if abs(v) < 1e3 else f"{v:.4g}"

        rows = [[r.format, r.mode,
                 fmt(r.value) + ("" if r.interval is None else " [{}-{}]".format(*map(fmt, r.interval))),
                 fmt(r.agreement), "-" if r.overflow is None else str(r.overflow.total_events),
                 f"{r.seconds:.2f}"] for r in self.rows]
        return markdown_table(["format", "mode", self.metric, self.agreement_kind + " vs fp32", "overflow events",
                               "s"], rows, align="llrrrr")

    def plot(self, path: Any) -> Path:
        from qsim.analysis.plots import _check_path, _pyplot

        path = _check_path(path)
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(self.rows) + 2), 3.2))
        xs = np.arange(len(self.rows))
        values = [r.value for r in self.rows]
        err = None
        if all(r.interval is not None for r in self.rows):
            err = np.array([[r.value - r.interval[0], r.interval[1] - r.value] for r in self.rows]).T
        ax.bar(xs, values, 0.6, yerr=err, capsize=3)
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{r.format}\n{r.mode}" for r in self.rows], fontsize=8)
        ax.set_ylabel(self.metric)
        ax.set_title(f"{Path(self.model).name} on {Path(self.data).name} ({self.n_samples} samples)", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def batch_key(xb: np.ndarray) -> str:
    h = hashlib.sha256(f"{xb.dtype.str}|{xb.shape!r}|v{CACHE_VERSION}".encode())
    h.update(np.ascontiguousarray(xb).tobytes())
    return h.hexdigest()[:24]


def _init(graph: Any, fmts: list, x: np.ndarray) -> dict:
    return {"graph": graph, "fmts": fmts, "x": x, "functions": {}}


def _run_batch(state: dict, task: tuple):
    f_idx, start, stop, _ = task
    fn = state["functions"].get(f_idx)
    if fn is None:
        fn = state["functions"][f_idx] = state["fmts"][f_idx].function(state["graph"])
    out, counters = fn(np.asarray(state["x"][start:stop], np.float32))
    return np.asarray(out, np.float32), [] if counters is None else [counters]


def evaluate(model: Any, x: np.ndarray, y: np.ndarray | None = None,
             formats: "str | Sequence[str] | Sequence[NumberFormat]" = "fp32,fp16,q9", *,
             metric: str | None = None, mode: str = "weights", batch: int = 32, workers: int = 1,
             scheduler: str | None = None, cache_dir: Any = None, use_cache: bool = True, progress: bool = True, bootstrap: int = 0,
             seed: int = 0, graph: Any = None, data_name: str = "(array)", **format_options: Any) -> EvalResult:
    """The metric per number format (see the module doc); ``format_options`` go to `parse_formats`
    (``acc_bits``, ``rounding``, ``overflow``, ``calibration``, ``calibration_count``)."""
    from qsim.analysis.overflow import OverflowReport

    if metric is not None and metric not in METRICS:
        raise InputError(f"metric {metric!r}: use one of {', '.join(METRICS)}")
    if batch < 1:
        raise InputError(f"batch must be >= 1; got {batch}")
    if workers < 1:
        raise InputError(f"workers must be >= 1; got {workers}")
    x = np.asarray(x)
    if x.ndim < 1 or len(x) == 0:
        raise InputError(f"no sample to evaluate (inputs of shape {x.shape})")
    fmts = list(formats) if not isinstance(formats, str) and all(isinstance(f, NumberFormat) for f in formats) \
        else parse_formats(formats, mode=mode, **format_options)
    for fmt in fmts:
        fmt.check()
    if graph is None:
        import qsim

        if isinstance(model, (str, Path)) and not Path(model).is_file():
            raise InputError(f"model file {model} not found")
        graph = qsim.load_model(model) if isinstance(model, (str, Path)) else model
    reference = next((f for f in fmts if f.executor == "float"), None)
    runs = fmts if reference is not None else [parse_formats("fp32")[0], *fmts]
    store = ResultStore(cache_root(cache_dir) if use_cache else None, "eval",
                        model_hash(model if isinstance(model, (str, Path)) else graph))

    bounds = [(s, min(s + batch, len(x))) for s in range(0, len(x), batch)]
    outputs: dict[tuple[int, int], tuple] = {}
    todo, cached = [], [0] * len(runs)
    for f_idx, fmt in enumerate(runs):
        f_key = fmt.key()
        for start, stop in bounds:
            path = store.path(f_key, batch_key(x[start:stop]))
            hit = store.load(path)
            if hit is not None and set(hit[0]) == {"out"}:
                outputs[(f_idx, start)] = (hit[0]["out"], hit[1])
                cached[f_idx] += 1
            else:
                todo.append((f_idx, start, stop, path))
    seconds = [0.0] * len(runs)
    for (f_idx, start, _, path), result, secs in map_tasks(
            todo, init=_init, init_args=(graph, runs, x), work=_run_batch, workers=workers, scheduler=scheduler,
            progress=progress, desc="eval", unit="batch"):
        store.save(path, {"out": result[0]}, result[1])  # by the client, as results arrive
        outputs[(f_idx, start)] = result
        seconds[f_idx] += secs

    def stacked(f_idx):
        return np.concatenate([outputs[(f_idx, s)][0] for s, _ in bounds])

    ref_idx = runs.index(reference) if reference is not None else 0
    ref_out = stacked(ref_idx)
    metric = metric or default_metric(ref_out.shape, x.shape, y)
    fn = METRICS[metric]
    xf = np.asarray(x, np.float64)
    kind = "top-1 agreement" if is_classifier(ref_out.shape, x.shape) else "SQNR dB"
    label = str(model) if isinstance(model, (str, Path)) else graph.name
    result = EvalResult(label, data_name, len(x), metric, kind)
    for f_idx, fmt in enumerate(runs):
        if fmt is not reference and f_idx == ref_idx and reference is None:
            continue  # the float run added for agreement, not a listed row
        out = stacked(f_idx)
        report = None
        for s, _ in bounds:
            for counters in outputs[(f_idx, s)][1]:
                report = report or OverflowReport(graph)
                report.update_counters(fmt.executor, counters)
        interval = bootstrap_interval(fn, out, ref_out, xf, y, bootstrap, seed)
        result.rows.append(EvalRow(fmt.name, fmt.executor, fmt.mode, fn(out, ref_out, xf, y), interval,
                                   agreement(out, ref_out, xf, y), report, seconds[f_idx], cached[f_idx]))
    return result
