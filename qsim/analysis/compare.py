"""Error of one run against another, per layer: max abs, RMS, SQNR, LSB mismatches.

Works for any pair of `Trace`\\ s over the same graph (fixed vs float, fp16 vs float,
k210 vs float, float vs TensorFlow): the *reference* trace is the one taken as truth,
the *test* trace the one under study. Both are compared on their float ``values``
(integer executors store dequantized values there), node by node, in graph order.

Definitions (``r`` = reference values, ``t`` = test values, ``e = t - r``, sums over
every element of every image seen; accumulated in float64, exact zero stays zero):

=================  ===================================================================
``max_abs``         ``max |e|``
``rms``             ``sqrt(sum e**2 / n)``
``signal_rms``      ``sqrt(sum r**2 / n)``
``sqnr_db``         ``10 log10(sum r**2 / sum e**2)``; ``inf`` when ``e == 0`` everywhere,
                    ``-inf`` when the signal is all zero but the error is not
``lsb``             one LSB of the node's format (the test trace's ``formats``, else the
                    reference's: a `QFormat`'s ``lsb``, or an affine format's ``scale``;
                    None for float-only pairs)
``over_1lsb``       share of elements with ``|e| > lsb`` (None without a format). An
                    ideal rounding of the float value is within 0.5 LSB, so a value more
                    than 1 LSB away carries error accumulated upstream, not just the
                    final rounding.
``nonfinite``       test elements that are Inf/NaN (e.g. fp16 overflow to inf); any makes
                    ``max_abs`` and ``rms`` inf and ``sqnr_db`` -inf, and each counts as
                    more than 1 LSB off. A non-finite *reference* value is an error.
=================  ===================================================================

`ErrorAccumulator` streams over images so memory does not grow with their number; its
result is independent of how the images are batched (every image's sums are exact
float64 partial sums added in image order).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qsim.errors import InputError, QsimError
from qsim.runtime import prepare


@dataclass(frozen=True)
class ErrorStats:
    """Error of a test tensor against a reference tensor (see the module table)."""

    n: int
    max_abs: float
    rms: float
    signal_rms: float
    sqnr_db: float
    lsb: float | None = None
    over_1lsb: float | None = None
    nonfinite: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "max_abs": self.max_abs, "rms": self.rms, "signal_rms": self.signal_rms,
            "sqnr_db": self.sqnr_db, "lsb": self.lsb, "over_1lsb": self.over_1lsb,
            "nonfinite": self.nonfinite,
        }


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB, ``10 log10(sum r**2 / sum (t-r)**2)``.

    >>> r = np.array([2.0, -2.0, 2.0, -2.0]); sqnr_db(r, r + 0.25)  # 10 log10(4 / 2**-4)
    18.06179973983887
    >>> sqnr_db(r, r)
    inf
    """
    return error_stats(reference, test).sqnr_db


def lsb_mismatch_share(reference: np.ndarray, test: np.ndarray, lsb: float) -> float:
    """Share of elements whose error exceeds one LSB (strictly).

    >>> lsb_mismatch_share(np.zeros(4), np.array([0.0, 0.25, 0.26, -0.5]), lsb=0.25)
    0.5
    """
    return error_stats(reference, test, lsb=lsb).over_1lsb


def error_stats(reference: np.ndarray, test: np.ndarray, lsb: float | None = None) -> ErrorStats:
    """All the metrics of the module table for one pair of tensors."""
    acc = ErrorAccumulator(lsb=lsb)
    acc.update(reference, test)
    return acc.result()


@dataclass
class ErrorAccumulator:
    """Streaming sums behind `ErrorStats`; `update` once per image, `result` at the end."""

    lsb: float | None = None
    name: str = "tensor"
    n: int = 0
    sum_sq_err: float = 0.0
    sum_sq_sig: float = 0.0
    max_abs: float = 0.0
    n_over: int = 0
    nonfinite: int = 0
    shape: tuple[int, ...] | None = None

    def update(self, reference: np.ndarray, test: np.ndarray) -> None:
        ref = np.asarray(reference, dtype=np.float64)
        tst = np.asarray(test, dtype=np.float64)
        if ref.shape != tst.shape:
            raise InputError(
                f"{self.name}: reference shape {ref.shape} differs from test shape {tst.shape}"
            )
        if not np.all(np.isfinite(ref)):
            bad = int(np.count_nonzero(~np.isfinite(ref)))
            raise InputError(f"{self.name}: {bad} non-finite value(s) in the reference tensor")
        finite = np.isfinite(tst)
        n_bad = int(finite.size - np.count_nonzero(finite))
        if n_bad:  # counted apart; the sums below cover the finite elements
            self.nonfinite += n_bad
            ref, tst = ref[finite], tst[finite]
        err = tst - ref
        self.shape = np.shape(reference)
        self.n += err.size + n_bad
        self.sum_sq_err += float(np.dot(err.ravel(), err.ravel()))
        self.sum_sq_sig += float(np.dot(ref.ravel(), ref.ravel()))
        if err.size:
            self.max_abs = max(self.max_abs, float(np.max(np.abs(err))))
        if self.lsb is not None:
            self.n_over += int(np.count_nonzero(np.abs(err) > self.lsb)) + n_bad

    def merge(self, other: "ErrorAccumulator") -> None:
        """Add another accumulator's images: the same sums as `update` on them here, in order."""
        self.n += other.n
        self.sum_sq_err += other.sum_sq_err
        self.sum_sq_sig += other.sum_sq_sig
        self.max_abs = max(self.max_abs, other.max_abs)
        self.n_over += other.n_over
        self.nonfinite += other.nonfinite
        self.shape = other.shape if other.shape is not None else self.shape

    def result(self) -> ErrorStats:
        if self.n == 0:
            raise QsimError(f"{self.name}: no elements compared")
        over = None if self.lsb is None else self.n_over / self.n
        if self.nonfinite:
            return ErrorStats(n=self.n, max_abs=math.inf, rms=math.inf,
                              signal_rms=math.sqrt(self.sum_sq_sig / self.n), sqnr_db=-math.inf,
                              lsb=self.lsb, over_1lsb=over, nonfinite=self.nonfinite)
        if self.sum_sq_err == 0.0:
            sqnr = math.inf
        elif self.sum_sq_sig == 0.0:
            sqnr = -math.inf
        else:
            sqnr = 10.0 * math.log10(self.sum_sq_sig / self.sum_sq_err)
        return ErrorStats(
            n=self.n, max_abs=self.max_abs, rms=math.sqrt(self.sum_sq_err / self.n),
            signal_rms=math.sqrt(self.sum_sq_sig / self.n), sqnr_db=sqnr,
            lsb=self.lsb, over_1lsb=over,
        )


@dataclass(frozen=True)
class LayerError:
    """One node's row of a `Comparison`."""

    name: str
    op: str
    shape: tuple[int, ...]
    format: str | None
    stats: ErrorStats

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "shape": list(self.shape),
                "format": self.format, **self.stats.to_dict()}


@dataclass
class Comparison:
    """Per-layer error of a test executor against a reference executor, over n images."""

    reference: str
    test: str
    n_images: int
    layers: list[LayerError] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def layer(self, name: str) -> LayerError:
        for row in self.layers:
            if row.name == name:
                return row
        raise QsimError(f"comparison has no layer named {name!r}")

    def first_below(self, sqnr_threshold_db: float) -> LayerError | None:
        """The first layer (graph order) whose SQNR falls below the threshold, or None."""
        for row in self.layers:
            if row.stats.sqnr_db < sqnr_threshold_db:
                return row
        return None

    def to_dict(self, sqnr_threshold_db: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reference": self.reference, "test": self.test, "n_images": self.n_images,
            "outputs": list(self.outputs),
        }
        if sqnr_threshold_db is not None:
            first = self.first_below(sqnr_threshold_db)
            out["sqnr_threshold_db"] = sqnr_threshold_db
            out["first_below_threshold"] = None if first is None else first.name
        out["layers"] = [row.to_dict() for row in self.layers]
        return out


def _format_of(trace: Any, name: str) -> Any:
    fmt = getattr(trace, "formats", {}).get(name)
    return fmt if fmt is not None and _lsb_of(fmt) is not None else None


def _lsb_of(fmt: Any) -> float | None:
    """One code step: a `QFormat`'s ``lsb``, or an affine format's ``scale`` (uint8, K210)."""
    for attr in ("lsb", "scale"):
        value = getattr(fmt, attr, None)
        if isinstance(value, (int, float, np.floating)) and value > 0:
            return float(value)
    return None


class TraceComparer:
    """Accumulates per-node errors over several (reference, test) trace pairs.

    Args:
        ops: optional node name -> op (from the graph) for the report.
        nodes: compare only these nodes (default: every node both traces hold).
    """

    def __init__(self, ops: dict[str, str] | None = None, nodes: Iterable[str] | None = None):
        self.ops = dict(ops or {})
        self.nodes = None if nodes is None else list(nodes)
        self.acc: dict[str, ErrorAccumulator] = {}
        self.fmt: dict[str, str | None] = {}
        self.n_images = 0
        self.executors: tuple[str, str] | None = None
        self.outputs: list[str] = []

    def update(self, reference: Any, test: Any) -> None:
        names = self.nodes if self.nodes is not None else [
            n for n in reference.values if n in test.values
        ]
        if not names:
            raise QsimError(
                f"traces of executors {reference.executor!r} and {test.executor!r} share no node"
            )
        for name in names:
            for label, tr in (("reference", reference), ("test", test)):
                if name not in tr.values:
                    raise QsimError(f"node {name!r} is missing from the {label} trace ({tr.executor})")
            if name not in self.acc:
                fmt = _format_of(test, name) or _format_of(reference, name)
                self.fmt[name] = None if fmt is None else str(fmt)
                self.acc[name] = ErrorAccumulator(lsb=None if fmt is None else _lsb_of(fmt),
                                                  name=f"node {name!r}")
            self.acc[name].update(reference.values[name], test.values[name])
        self.n_images += 1
        self.executors = (reference.executor, test.executor)
        self.outputs = list(reference.outputs)

    def merge(self, other: "TraceComparer") -> None:
        """Add another comparer's images (e.g. one sample's, from a worker), in this order."""
        for name, acc in other.acc.items():
            if name not in self.acc:
                self.fmt[name] = other.fmt[name]
                self.acc[name] = ErrorAccumulator(lsb=acc.lsb, name=acc.name)
            self.acc[name].merge(acc)
        self.n_images += other.n_images
        self.executors = other.executors or self.executors
        self.outputs = other.outputs or self.outputs

    def result(self) -> Comparison:
        if self.executors is None:
            raise QsimError("no traces were compared")
        rows = [
            LayerError(name=name, op=self.ops.get(name, ""), shape=tuple(acc.shape or ()),
                       format=self.fmt[name], stats=acc.result())
            for name, acc in self.acc.items()
        ]
        return Comparison(reference=self.executors[0], test=self.executors[1],
                          n_images=self.n_images, layers=rows, outputs=self.outputs)


def compare_traces(reference: Any, test: Any, graph: Any = None) -> Comparison:
    """Per-layer error of one test `Trace` against one reference `Trace`."""
    comparer = TraceComparer(ops=_ops_of(graph))
    comparer.update(reference, test)
    return comparer.result()


def _ops_of(graph: Any) -> dict[str, str]:
    return {} if graph is None else {node.name: node.op for node in graph}


def compare_runs(graph: Any, inputs: Iterable[np.ndarray],
                 test: Callable[[np.ndarray], Any], reference: Callable[[np.ndarray], Any],
                 progress: Callable[[Iterable], Iterable] | None = None) -> Comparison:
    """Per-layer error of ``test(x)`` against ``reference(x)`` over every input ``x``.

    Args:
        graph: the graph (for op names in the report).
        inputs: NHWC float arrays (e.g. from `qsim.images.prepare_input`), one per image.
        test, reference: callables returning a `Trace` for one input.
        progress: optional wrapper of the input iterable (e.g. ``tqdm``).
    """
    comparer = TraceComparer(ops=_ops_of(graph))
    it = inputs if progress is None else progress(inputs)
    for x in it:
        comparer.update(reference(x), test(x))
    return comparer.result()


def render_comparison(comp: Comparison, sqnr_threshold_db: float | None = None,
                      overflow_events: dict[str, int] | None = None) -> str:
    """Markdown: one row per layer, then the first layer below the SQNR threshold.

    Args:
        comp: the comparison.
        sqnr_threshold_db: rows below it are marked ``<``; the first one is named.
        overflow_events: optional node -> overflow events of the test runs (an extra column).
    """
    from qsim.analysis.report import fmt_num, fmt_pct, markdown_table

    rows = []
    for row in comp.layers:
        s = row.stats
        mark = ""
        if sqnr_threshold_db is not None and s.sqnr_db < sqnr_threshold_db:
            mark = " <"
        cells = [row.name, row.op, row.format or "-", fmt_num(s.max_abs), fmt_num(s.rms),
                 fmt_num(s.sqnr_db) + mark, fmt_pct(s.over_1lsb)]
        if overflow_events is not None:
            cells.append(str(overflow_events.get(row.name, 0)))
        rows.append(cells)
    title = (f"{comp.test} vs {comp.reference}, {comp.n_images} image(s), "
             f"{len(comp.layers)} layer(s)")
    headers = ["layer", "op", "format", "max abs", "RMS", "SQNR dB", "> 1 LSB"]
    if overflow_events is not None:
        headers.append("overflows")
    table = markdown_table(headers, rows, align="lllrrrr" + "r" * (len(headers) - 7))
    lines = [title, "", table]
    if sqnr_threshold_db is not None:
        first = comp.first_below(sqnr_threshold_db)
        lines.append("")
        if first is None:
            lines.append(f"every layer has SQNR >= {fmt_num(sqnr_threshold_db)} dB")
        else:
            lines.append(f"first layer below {fmt_num(sqnr_threshold_db)} dB: {first.name} "
                         f"({fmt_num(first.stats.sqnr_db)} dB)")
    return "\n".join(lines)


def compare_model(graph: Any, inputs: Iterable[np.ndarray], executor: str | None = None, plan: Any = None,
                  reference: str = "float", progress: Callable[[Iterable], Iterable] | None = None,
                  **options: Any) -> Comparison:
    """Per-layer error of the test run (`plan`, or a plan-less `executor`) against `reference`.

    Args:
        graph: the `Graph`.
        inputs: network inputs, ``(1, H, W, C)`` float arrays (one per image).
        executor, plan, options: what `qsim.runtime.prepare` takes (the plan's mode picks the
            backend; ``executor="k210"`` with ``calibration=``).
        reference: the plan-less backend taken as truth (``"float"``).
        progress: optional wrapper of the input iterable (e.g. ``tqdm``).
    """
    test = prepare(graph, plan, executor=executor, **options)
    ref = prepare(graph, executor=reference)
    return compare_runs(graph, inputs, test=test.run, reference=ref.run, progress=progress)
