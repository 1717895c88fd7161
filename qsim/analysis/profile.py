"""Per-layer ranges of weights and activations, integer bits needed, a suggested plan.

The paper's Sec. IV-B / Fig. 3 analysis: run the float executor over calibration images,
record every node's activation range (and each layer's weight/bias range), and derive how
many integer bits each needs in a signed word.

Statistics (`RangeStats`, streaming, independent of how images are batched):

* exact ``min``, ``max``, ``count``, ``zeros``; ``mean``/``std`` from float64 sums;
* percentiles from a signed log2 histogram with `BINS_PER_OCTAVE` bins per octave over
  ``2**MIN_EXP .. 2**MAX_EXP`` (magnitudes outside are clamped into the end bins). A
  percentile is its bin's geometric centre clamped to ``[min, max]``, so it is within a
  factor ``2**(1 / (2 * BINS_PER_OCTAVE))`` (4.4 %) of the exact sample percentile;
  ``p0``/``p100`` are the exact min/max.

Integer bits (`int_bits_needed`): the smallest ``m >= 0`` such that the signed format
with a ``word_bits`` word and ``m`` integer bits (``Qm.(word-1-m)``) holds ``[lo, hi]``
after any round-to-nearest: ``hi < max_value + lsb/2`` and ``lo > min_value - lsb/2``.

Suggested plan (`Profile.suggest_plan`), per node:

* ``act``: from the activation min/max seen, plus ``margin_bits`` integer bits of safety
  margin (unseen images may go further than the calibration set), capped at the word;
  ``input`` nodes get ``input_margin_bits`` (default 0: the preprocessing bounds images,
  e.g. MobileNetV2's ``[-1, 1]``, so the calibration range is the true range); ops whose
  output is bounded by construction use that bound and no margin: ReLU with a
  ``max_value`` (ReLU6: ``[0, 6]``, 3 integer bits) and sigmoid (``[0, 1]``);
* ``weights``/``bias``: from the exact parameter min/max (known, so no margin); the bias
  keeps at most as many fraction bits as the accumulator has (input frac + weight frac),
  so it aligns exactly;
* the accumulator (``acc_bits``, fraction bits = input frac + weight frac) must hold the
  layer's output range (the exact sum saturates once, at the end: ``acc_saturation``
  ``"final"``): when ``acc_bits - 1 - (input frac + weight frac)`` is fewer integer bits
  than the suggested output format has, the weights give up fraction bits until it fits
  (a note says so; if even 0 weight fraction bits do not fit, the note says that too);
* ``pad``/``identity`` nodes get no entry (they pass their input's codes through).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qsim.errors import InputError, QsimError
from qsim.fixed.format import QFormat
from qsim.graph.ops import PASSTHROUGH_OPS
from qsim.runtime import prepare

BINS_PER_OCTAVE = 8
MIN_EXP, MAX_EXP = -48, 48
N_BINS = (MAX_EXP - MIN_EXP) * BINS_PER_OCTAVE
PERCENTILES = (0.1, 1.0, 50.0, 99.0, 99.9)


def _bin_index(mag: np.ndarray) -> np.ndarray:
    idx = np.floor((np.log2(mag) - MIN_EXP) * BINS_PER_OCTAVE)
    return np.clip(idx, 0, N_BINS - 1).astype(np.int64)


def _bin_centre(i: int) -> float:
    return 2.0 ** (MIN_EXP + (i + 0.5) / BINS_PER_OCTAVE)


@dataclass
class RangeStats:
    """Streaming range statistics of one tensor over many images (see module docstring)."""

    count: int = 0
    zeros: int = 0
    min: float = math.inf
    max: float = -math.inf
    sum: float = 0.0
    sum_sq: float = 0.0
    hist_pos: np.ndarray = field(default_factory=lambda: np.zeros(N_BINS, np.int64))
    hist_neg: np.ndarray = field(default_factory=lambda: np.zeros(N_BINS, np.int64))

    def update(self, values: np.ndarray, name: str = "tensor") -> "RangeStats":
        x = np.asarray(values, dtype=np.float64).ravel()
        if x.size == 0:
            return self
        if not np.all(np.isfinite(x)):
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise InputError(f"{name}: {bad} non-finite value(s); cannot profile its range")
        self.count += x.size
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        self.sum += float(x.sum())
        self.sum_sq += float(np.dot(x, x))
        pos, neg = x[x > 0], -x[x < 0]
        self.zeros += x.size - pos.size - neg.size
        if pos.size:
            self.hist_pos += np.bincount(_bin_index(pos), minlength=N_BINS)
        if neg.size:
            self.hist_neg += np.bincount(_bin_index(neg), minlength=N_BINS)
        return self

    def merge(self, other: "RangeStats") -> "RangeStats":
        """Add another tensor's statistics: the same numbers as `update` on its values here."""
        self.count += other.count
        self.zeros += other.zeros
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.sum += other.sum
        self.sum_sq += other.sum_sq
        self.hist_pos += other.hist_pos
        self.hist_neg += other.hist_neg
        return self

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        if not self.count:
            return math.nan
        return math.sqrt(max(self.sum_sq / self.count - self.mean ** 2, 0.0))

    @property
    def max_abs(self) -> float:
        return max(abs(self.min), abs(self.max)) if self.count else 0.0

    def percentile(self, q: float) -> float:
        """Approximate ``q``-th percentile (0..100); exact at 0 and 100."""
        if not self.count:
            raise QsimError("no values seen: no percentile")
        if not 0.0 <= q <= 100.0:
            raise QsimError(f"percentile must be in [0, 100], got {q}")
        if q == 0.0:
            return self.min
        if q == 100.0:
            return self.max
        rank = max(1, math.ceil(q / 100.0 * self.count))  # the rank-th smallest value
        n_neg = int(self.hist_neg.sum())
        if rank <= n_neg:  # walk negatives from the most negative bin up
            cum = np.cumsum(self.hist_neg[::-1])
            i = N_BINS - 1 - int(np.searchsorted(cum, rank))
            value = -_bin_centre(i)
        elif rank <= n_neg + self.zeros:
            value = 0.0
        else:
            cum = np.cumsum(self.hist_pos)
            i = int(np.searchsorted(cum, rank - n_neg - self.zeros))
            value = _bin_centre(i)
        return min(max(value, self.min), self.max)

    def to_dict(self) -> dict[str, Any]:
        if not self.count:
            return {"count": 0}
        out = {"count": self.count, "min": self.min, "max": self.max, "mean": self.mean,
               "std": self.std, "zeros": self.zeros}
        out["percentiles"] = {f"p{q:g}": self.percentile(q) for q in PERCENTILES}
        return out


def int_bits_needed(lo: float, hi: float, word_bits: int = 16, min_int_bits: int = 0) -> int:
    """Smallest integer-bit count, at least ``min_int_bits``, of a signed ``word_bits`` word holding ``[lo, hi]``.

    ``word_bits - 1`` (no fraction bits left) when nothing smaller fits; the caller can
    compare the range with that format's to see whether it still overflows. A negative
    ``min_int_bits`` lets small ranges use every bit (``Q-2.9`` for weights within +-1/4);
    an all-zero range gets ``max(min_int_bits, 0)``.

    >>> int_bits_needed(-242.14, 155.91)   # the paper's widest layer: 8 integer bits
    8
    >>> int_bits_needed(-1.0, 1.0), int_bits_needed(-1.0, 0.99), int_bits_needed(0.0, 0.0)
    (1, 0, 0)
    >>> int_bits_needed(-0.2, 0.24, 8), int_bits_needed(-0.2, 0.24, 8, min_int_bits=-8)
    (0, -2)
    """
    if word_bits < 2:
        raise QsimError(f"a signed word needs at least 2 bits, got {word_bits}")
    if lo == 0 and hi == 0:
        return max(min_int_bits, 0)
    for m in range(min(min_int_bits, word_bits - 1), word_bits):
        fmt = QFormat(m, word_bits - 1 - m)
        half = fmt.lsb / 2
        if hi < fmt.max_value + half and lo > fmt.min_value - half:
            return m
    return word_bits - 1


def format_for(lo: float, hi: float, word_bits: int = 16, margin_bits: int = 0,
               max_frac_bits: int | None = None, min_int_bits: int = 0) -> QFormat:
    """The signed ``word_bits`` format for ``[lo, hi]`` with ``margin_bits`` extra integer bits.

    >>> str(format_for(-242.14, 155.91)), str(format_for(-242.14, 155.91, margin_bits=1))
    ('Q8.7', 'Q9.6')
    >>> str(format_for(-0.01, 0.02, word_bits=16, max_frac_bits=12))
    'Q3.12'
    >>> str(format_for(-0.2, 0.24, word_bits=8, min_int_bits=-8))
    'Q-2.9'
    """
    m = min(int_bits_needed(lo, hi, word_bits, min_int_bits) + margin_bits, word_bits - 1)
    frac = word_bits - 1 - m
    if max_frac_bits is not None and frac > max_frac_bits:
        frac = max(max_frac_bits, 0)
        m = word_bits - 1 - frac
    return QFormat(m, frac)


def bounded_range(node: Any) -> tuple[float, float] | None:
    """The output range an op guarantees whatever its input, or None.

    >>> from qsim.graph import Node
    >>> bounded_range(Node("r", "relu", attrs={"max_value": 6.0})), bounded_range(Node("r", "relu"))
    ((0.0, 6.0), None)
    """
    if node.op == "relu" and node.attrs.get("max_value") is not None \
            and not node.attrs.get("negative_slope", 0.0):
        return (min(0.0, float(node.attrs.get("threshold", 0.0) or 0.0)), float(node.attrs["max_value"]))
    return BOUNDED_OPS.get(node.op)


# ops whose output lies in a fixed interval whatever the input
BOUNDED_OPS = {"sigmoid": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0)}


def layer_parameters(node: Any) -> dict[str, np.ndarray]:
    """The tensors a plan quantizes as ``weights`` / ``bias`` for one node.

    conv2d/depthwise/dense: ``kernel`` and ``bias``; rescale: ``scale`` and ``offset``; an
    unfolded batch_norm: its per-channel scale ``gamma / sqrt(var + eps)`` and offset
    ``beta - mean * scale``.
    """
    w = node.weights
    if node.op == "rescale":
        return {"weights": w["scale"], "bias": w["offset"]}
    if node.op in ("conv2d", "depthwise_conv2d", "dense"):
        out = {"weights": w["kernel"]}
        if w.get("bias") is not None:
            out["bias"] = w["bias"]
        return out
    if node.op == "batch_norm":
        eps = float(node.attrs.get("epsilon", 1e-3))
        scale = np.asarray(w["gamma"], np.float64) / np.sqrt(np.asarray(w["variance"], np.float64) + eps)
        offset = np.asarray(w["beta"], np.float64) - np.asarray(w["mean"], np.float64) * scale
        return {"weights": scale, "bias": offset}
    return {}


@dataclass
class LayerProfile:
    """One node: activation range over the images, parameter ranges."""

    name: str
    op: str
    act: RangeStats = field(default_factory=RangeStats)
    weights: RangeStats | None = None
    bias: RangeStats | None = None

    def to_dict(self, word_bits: int = 16) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "op": self.op, "act": self.act.to_dict()}
        if self.act.count:
            out["act"]["int_bits"] = int_bits_needed(self.act.min, self.act.max, word_bits)
        for key in ("weights", "bias"):
            stats = getattr(self, key)
            if stats is not None:
                out[key] = stats.to_dict()
                out[key]["int_bits"] = int_bits_needed(stats.min, stats.max, word_bits)
        return out


class Profile:
    """Range statistics of every node of a graph over calibration images.

    Args:
        graph: the `Graph` (parameters are profiled from it at construction).
    """

    def __init__(self, graph: Any):
        self.graph = graph
        self.n_images = 0
        self.layers: dict[str, LayerProfile] = {}
        for node in graph:
            layer = LayerProfile(node.name, node.op)
            for key, tensor in layer_parameters(node).items():
                setattr(layer, key, RangeStats().update(tensor, f"node '{node.name}' {key}"))
            self.layers[node.name] = layer

    def update(self, trace: Any) -> "Profile":
        """Add one float run's activations (``trace.values``)."""
        return self.add(activation_stats(trace))

    def add(self, stats: dict[str, "RangeStats"]) -> "Profile":
        """Add one run's activation statistics (`activation_stats`, e.g. from a worker)."""
        for name, st in stats.items():
            if name not in self.layers:
                raise QsimError(f"trace holds node {name!r}, which is not in graph {self.graph.name!r}")
            self.layers[name].act.merge(st)
        self.n_images += 1
        return self

    def suggest(self, word_bits: int = 16, margin_bits: int = 1, input_margin_bits: int = 0,
                acc_bits: int = 32, notes: list[str] | None = None) -> dict[str, dict[str, str]]:
        """Per-node formats ``{name: {"act": .., "weights": .., "bias": ..}}`` (module docstring).

        Args:
            word_bits: word of every format (16 or 8).
            margin_bits: extra integer bits on activations.
            input_margin_bits: extra integer bits on ``input`` nodes.
            acc_bits: accumulator width the plan will use.
            notes: if given, a list that receives one line per adjustment made.
        """
        if self.n_images == 0:
            raise QsimError("no calibration image was profiled; cannot suggest activation formats")
        if margin_bits < 0 or input_margin_bits < 0:
            raise QsimError(f"margin bits must be >= 0, got {margin_bits} / {input_margin_bits}")
        act_fmt: dict[str, QFormat] = {}
        table: dict[str, dict[str, str]] = {}
        for node in self.graph:
            layer = self.layers[node.name]
            if node.op in PASSTHROUGH_OPS and node.inputs:
                act_fmt[node.name] = act_fmt[node.inputs[0]]
                continue
            entry: dict[str, str] = {}
            bound = bounded_range(node)
            if bound is not None:
                fmt = format_for(bound[0], bound[1], word_bits)
            elif layer.act.count:
                margin = input_margin_bits if node.op == "input" else margin_bits
                fmt = format_for(layer.act.min, layer.act.max, word_bits, margin)
            else:
                fmt = QFormat(word_bits // 2 - 1, word_bits - word_bits // 2)
            act_fmt[node.name] = fmt
            entry["act"] = str(fmt)
            if layer.weights is not None:
                in_fmt = act_fmt[node.inputs[0]]
                w_fmt = format_for(layer.weights.min, layer.weights.max, word_bits)
                # the accumulator must hold the output range: trade weight fraction bits
                max_acc_frac = acc_bits - 1 - fmt.int_bits
                if in_fmt.frac_bits + w_fmt.frac_bits > max_acc_frac:
                    w_frac = min(max(max_acc_frac - in_fmt.frac_bits, 0), w_fmt.frac_bits)
                    fitted = QFormat(word_bits - 1 - w_frac, w_frac)
                    if notes is not None:
                        fits = in_fmt.frac_bits + w_frac <= max_acc_frac
                        notes.append(
                            f"{node.name}: weights {w_fmt} -> {fitted} so the {acc_bits}-bit accumulator "
                            f"({in_fmt.frac_bits + w_frac} fraction bits) holds the output range "
                            f"({fmt.int_bits} integer bits)" + ("" if fits else
                            f"; still {in_fmt.frac_bits + w_frac - max_acc_frac} bit(s) short: "
                            "widen the accumulator or narrow the input's fraction"))
                    w_fmt = fitted
                entry["weights"] = str(w_fmt)
                if layer.bias is not None:
                    acc_frac = in_fmt.frac_bits + w_fmt.frac_bits
                    entry["bias"] = str(format_for(layer.bias.min, layer.bias.max, word_bits,
                                                   max_frac_bits=acc_frac))
            table[node.name] = entry
        return table

    def suggest_plan(self, word_bits: int = 16, margin_bits: int = 1, notes: list[str] | None = None,
                     **plan_kwargs: Any):
        """`suggest` as a `qsim.plan.Plan` (``Plan.per_layer``; kwargs: acc_bits, rounding, ...)."""
        from qsim.plan import Plan

        table = self.suggest(word_bits, margin_bits, acc_bits=plan_kwargs.get("acc_bits", 32), notes=notes)
        widest = max((QFormat.parse(e["act"]) for e in table.values()), key=lambda f: f.int_bits)
        return Plan.per_layer(table, default=str(widest), **plan_kwargs)

    def to_dict(self, word_bits: int = 16, margin_bits: int = 1, acc_bits: int = 32) -> dict[str, Any]:
        notes: list[str] = []
        suggestion = self.suggest(word_bits, margin_bits, acc_bits=acc_bits, notes=notes) if self.n_images else {}
        layers = []
        for name, layer in self.layers.items():
            row = layer.to_dict(word_bits)
            row["suggested"] = suggestion.get(name)
            layers.append(row)
        return {"n_images": self.n_images, "word_bits": word_bits, "margin_bits": margin_bits,
                "acc_bits": acc_bits, "percentiles": list(PERCENTILES), "notes": notes, "layers": layers}

    def render(self, word_bits: int = 16, margin_bits: int = 1, acc_bits: int = 32) -> str:
        """Markdown: per node, activation and weight ranges, integer bits, suggested formats."""
        from qsim.analysis.report import fmt_num, markdown_table

        notes: list[str] = []
        suggestion = self.suggest(word_bits, margin_bits, acc_bits=acc_bits, notes=notes) if self.n_images else {}
        rows = []
        for name, layer in self.layers.items():
            a, w = layer.act, layer.weights
            sug = suggestion.get(name) or {}
            rows.append([
                name, layer.op,
                f"[{fmt_num(a.min)}, {fmt_num(a.max)}]" if a.count else "-",
                f"[{fmt_num(a.percentile(1))}, {fmt_num(a.percentile(99))}]" if a.count else "-",
                str(int_bits_needed(a.min, a.max, word_bits)) if a.count else "-",
                f"[{fmt_num(w.min)}, {fmt_num(w.max)}]" if w is not None else "-",
                str(int_bits_needed(w.min, w.max, word_bits)) if w is not None else "-",
                sug.get("act", "-"), sug.get("weights", "-"),
            ])
        table = markdown_table(
            ["layer", "op", "act min..max", "act p1..p99", "act int bits", "weights min..max",
             "w int bits", "suggested act", "suggested weights"], rows, align="llllrlrll")
        return table + "".join(f"\n\nnote: {n}" if i == 0 else f"\nnote: {n}" for i, n in enumerate(notes))


def activation_stats(trace: Any) -> dict[str, RangeStats]:
    """node -> `RangeStats` of one run's values (what `Profile.add` takes)."""
    return {name: RangeStats().update(values, f"node '{name}' activations") for name, values in trace.values.items()}


def profile_runs(graph: Any, inputs: Iterable[np.ndarray], run: Callable[[np.ndarray], Any],
                 progress: Callable[[Iterable], Iterable] | None = None) -> Profile:
    """Profile `graph` over every input with ``run(x) -> Trace`` (normally the float executor)."""
    prof = Profile(graph)
    for x in (inputs if progress is None else progress(inputs)):
        prof.update(run(x))
    return prof


def profile_model(graph: Any, inputs: Iterable[np.ndarray],
                  progress: Callable[[Iterable], Iterable] | None = None) -> Profile:
    """Profile `graph` with the float executor over `inputs` (``(1, H, W, C)`` arrays)."""
    return profile_runs(graph, inputs, prepare(graph).run, progress=progress)
