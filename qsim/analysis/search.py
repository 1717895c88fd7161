"""Mixed-precision plan search: per-layer word lengths under a task-metric budget.

`search` looks for the per-layer formats that minimise an objective (weight bits, bit
operations, activation memory, or ``k210-ram``: the largest input map + output map of one
MAC layer, the KPU's RAM rule of `qsim.k210.memory`, at the plan's activation words) while a task metric measured on real data stays within a
budget (``"top1>=fp32-0.005"``, ``"AP>=fp32-0.01"``, ``"sqnr>=30"``).

The method (greedy path on a proxy, then measurements along it):

1. **Formats per word.** The float model is profiled on the proxy inputs (`profile_model`);
   for every word length W in ``words`` a layer's weights get the signed W-bit format whose
   integer bits hold the layer's weights (`qsim.analysis.profile.format_for`), and in
   ``mode="full"`` its activation the format holding the profiled range plus
   ``margin_bits``. Integer bits may be negative (down to `MIN_INT_BITS`): a layer whose
   weights lie within +-1/4 gets ``Q-2.9`` at 8 bits, not ``Q0.7`` - two bits more
   precision for 12 of the A98's 41 kernels. Biases stay 32-bit words (as TFLite and the KPU keep them), with no
   more fraction bits than the accumulator. Every knob (a layer's weights; in full mode
   also its activation) starts at the widest word.
2. **Sensitivity.** For each knob and word, the network runs with *only that knob*
   narrowed, and the output's error power against the float output on the proxy inputs is
   recorded: ``noise[k][W]``. Cost: knobs x words runs on the proxy inputs.
3. **Greedy path.** Output noise is modelled as additive over knobs (the usual
   assumption of independent quantization noise). From the widest plan, each step narrows
   by one bit the knob with the least predicted noise added per objective unit saved,
   until every knob is at the narrowest word: a path of plans from most to least costly.
4. **Measurements.** The task metric (``measure(plan) -> value``: `qsim.analysis.evaluate`
   on labelled data, or AP on FDDB from `qsim.facedet`) is measured at the path's start
   and then by bisection for the last plan on the path within budget (the metric is
   treated as monotone along the path; every measured point is kept). The measured points
   give the Pareto front (objective vs metric); the answer is the cheapest measured plan
   within budget.

Per layer the result says what bound its word: ``narrowest`` (at the smallest word),
``budget`` (the step that narrowed it next left the budget), or ``proxy`` (narrowing it
cost more predicted noise per bit saved than the steps taken). The proxy steers, the task
metric decides: no plan is reported within budget unless it was measured within budget.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qsim.errors import InputError
from qsim.fixed.format import QFormat
from qsim.graph.ops import MAC_OPS, PASSTHROUGH_OPS
from qsim.plan import Plan

OBJECTIVES = ("weight-bits", "bitops", "act-memory", "k210-ram")
BIAS_BITS = 32
MIN_INT_BITS = -8  # smallest integer-bit count a searched format takes (ranges down to +-2**-8)


@dataclass(frozen=True)
class Budget:
    """``metric >= [fp32 -] value`` (or ``<=``): ``"top1>=fp32-0.005"``, ``"sqnr>=30"``, ``"mse<=fp32+0.01"``."""

    metric: str
    op: str
    relative: bool
    value: float

    @classmethod
    def parse(cls, text: str) -> "Budget":
        m = re.fullmatch(r"\s*([A-Za-z0-9_]+)\s*(>=|<=)\s*(fp32\s*([+-])\s*)?([0-9.eE+-]+)\s*", text)
        if not m:
            raise InputError(f"--budget {text!r}: expected METRIC>=VALUE or METRIC>=fp32-DELTA "
                             "(e.g. top1>=fp32-0.005, AP>=fp32-0.01, sqnr>=30)")
        try:
            value = float(m.group(5))
        except ValueError:
            raise InputError(f"--budget {text!r}: {m.group(5)!r} is not a number") from None
        if m.group(3) and m.group(4) == "-":
            value = -value
        return cls(m.group(1).lower(), m.group(2), bool(m.group(3)), value)

    def threshold(self, reference: float) -> float:
        return reference + self.value if self.relative else self.value

    def holds(self, value: float, reference: float) -> bool:
        t = self.threshold(reference)
        return bool(value >= t) if self.op == ">=" else bool(value <= t)

    def __str__(self) -> str:
        rhs = (f"fp32{self.value:+g}" if self.relative else f"{self.value:g}")
        return f"{self.metric}{self.op}{rhs}"


@dataclass(frozen=True)
class Knob:
    """One searched word: a layer's ``weights`` or its ``act``."""

    node: str
    kind: str

    def __str__(self) -> str:
        return f"{self.node}.{self.kind}"


@dataclass
class Point:
    """One measured plan: its objective, task metric and place on the greedy path."""

    step: int
    objective: float
    value: float
    within: bool
    bits: dict[Knob, int] = field(repr=False, default_factory=dict)
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or f"path step {self.step}"


@dataclass
class SearchResult:
    objective_kind: str
    budget: Budget
    reference: float  # the float model's metric
    words: tuple[int, ...]
    best: Point | None
    best_plan: Plan | None
    points: list[Point]
    baselines: list[Point]
    reasons: dict[Knob, str]
    noise_share: dict[Knob, float]
    path_length: int
    runs: dict[str, int]  # proxy runs and metric measurements

    def pareto(self) -> list[Point]:
        """Measured points no other point beats on both objective and metric."""
        pts = sorted(self.points + self.baselines, key=lambda p: (p.objective, -p.value))
        better = self.budget.op == ">="
        front, best_value = [], -math.inf if better else math.inf
        for p in pts:
            if (p.value > best_value) if better else (p.value < best_value):
                front.append(p)
                best_value = p.value
        return front

    def markdown(self) -> str:
        from qsim.analysis.report import markdown_table

        rows = [[p.name, f"{p.objective:.4g}", f"{p.value:.4f}",
                 "yes" if p.within else "no"] for p in sorted(self.points + self.baselines, key=lambda p: p.objective)]
        head = (f"budget {self.budget} (fp32 {self.reference:.4f}, threshold "
                f"{self.budget.threshold(self.reference):.4f}); objective {self.objective_kind}\n\n")
        table = markdown_table(["plan", self.objective_kind, self.budget.metric, "within budget"], rows, align="lrrl")
        if self.best is None:
            return head + table + "\n\nno measured plan is within the budget"
        layers = markdown_table(
            ["knob", "word", "format", "bound by", "predicted noise share"],
            [[str(k), str(self.best.bits[k]), self.best_fmt(k), self.reasons[k], f"{self.noise_share[k]:.3f}"]
             for k in self.best.bits], align="lrllr")
        return head + table + f"\n\nbest: {self.best.name}\n\n" + layers

    def best_fmt(self, knob: Knob) -> str:
        node_plan = self.best_plan.for_node(knob.node)
        return str(node_plan.weights if knob.kind == "weights" else node_plan.act)

    def to_dict(self) -> dict:
        def point(p: Point) -> dict:
            return {"label": p.name, "step": p.step, "objective": p.objective,
                    "value": p.value, "within_budget": p.within}

        return {"qsim_search": 1, "objective": self.objective_kind, "budget": str(self.budget),
                "reference": self.reference, "threshold": self.budget.threshold(self.reference),
                "words": list(self.words), "path_length": self.path_length, "runs": self.runs,
                "points": [point(p) for p in self.points], "baselines": [point(p) for p in self.baselines],
                "pareto": [point(p) for p in self.pareto()],
                "best": None if self.best is None else {
                    **point(self.best), "plan": self.best_plan.to_dict(),
                    "layers": [{"knob": str(k), "word": self.best.bits[k], "format": self.best_fmt(k),
                                "bound_by": self.reasons[k], "noise_share": self.noise_share[k]}
                               for k in self.best.bits]}}

    def plot(self, path: Any):
        from qsim.analysis.plots import _check_path, _pyplot

        path = _check_path(path)
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        pts = sorted(self.points, key=lambda p: p.objective)
        ax.plot([p.objective for p in pts], [p.value for p in pts], "o", color="0.6", label="measured on the path")
        front = self.pareto()
        ax.plot([p.objective for p in front], [p.value for p in front], "-", color="C0", label="Pareto front")
        for p in self.baselines:
            ax.plot([p.objective], [p.value], "s", color="C1")
            ax.annotate(p.label, (p.objective, p.value), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if self.best is not None:
            ax.plot([self.best.objective], [self.best.value], "*", ms=12, color="C3", label="best within budget")
        ax.axhline(self.budget.threshold(self.reference), ls="--", color="C3", lw=0.8, label=f"budget {self.budget}")
        ax.set_xlabel(self.objective_kind)
        ax.set_ylabel(self.budget.metric)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


class SearchSpace:
    """The knobs of a graph, the format of each knob at each word, and the objective."""

    def __init__(self, graph: Any, x_proxy: np.ndarray, words: Sequence[int], *, mode: str = "weights",
                 margin_bits: int = 1, acc_bits: int = 32, rounding: str = "half_up", overflow: str = "saturate",
                 objective: str = "weight-bits"):
        from qsim.analysis.profile import format_for, profile_model
        from qsim.runtime import prepare

        if objective not in OBJECTIVES:
            raise InputError(f"objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
        if mode not in ("weights", "full"):
            raise InputError(f"search mode must be weights or full; got {mode!r}")
        if objective in ("act-memory", "k210-ram") and mode != "full":
            raise InputError(f"objective {objective} searches activation words: use mode full")
        words = tuple(sorted({int(w) for w in words}))
        if not words or words[0] < 2 or words[-1] > 32:
            raise InputError(f"words must lie in 2..32; got {words}")
        self.graph, self.words, self.mode, self.objective_kind = graph, words, mode, objective
        self.base = dict(acc_bits=acc_bits, rounding=rounding, overflow=overflow)
        self.profile = profile_model(graph, [x_proxy[i:i + 1] for i in range(len(x_proxy))])
        trace = prepare(graph).run(x_proxy)
        self.reference_out = np.asarray(trace.output(0), np.float64)
        self.x = x_proxy
        layers = self.profile.layers
        self.knobs: list[Knob] = []
        self.fmt: dict[Knob, dict[int, QFormat]] = {}
        self.size: dict[Knob, float] = {}
        for node in graph:
            kernel = node.weights.get("kernel")
            if node.op in MAC_OPS and kernel is not None:
                k = Knob(node.name, "weights")
                w = layers[node.name].weights
                self.fmt[k] = {b: format_for(w.min, w.max, b, min_int_bits=MIN_INT_BITS) for b in words}
                out = np.shape(trace.values[node.name])
                per_output = kernel.size / max(out[-1], 1)
                macs = float(np.prod(out[1:])) * per_output
                self.size[k] = (float(kernel.size) if objective == "weight-bits" else
                                0.0 if objective == "k210-ram" else macs)  # KPU RAM holds maps, not weights
                self.knobs.append(k)
            if mode == "full" and node.op not in PASSTHROUGH_OPS:
                k = Knob(node.name, "act")
                a = layers[node.name].act
                self.fmt[k] = {b: format_for(a.min, a.max, b, 0 if node.op == "input" else margin_bits,
                                              min_int_bits=MIN_INT_BITS) for b in words}
                self.knobs.append(k)
                if objective in ("act-memory", "k210-ram"):  # k210-ram steers by map size too
                    self.size[k] = float(np.prod(np.shape(trace.values[node.name])[1:]))
                elif objective == "weight-bits":
                    self.size[k] = 0.0  # free under weight-bits, searched only for the metric
                # bitops: priced by the MACs that read it (below)
        if objective == "bitops" and mode == "full":  # a product costs w_bits x a_bits: price act by readers' MACs
            for node in graph:
                if Knob(node.name, "weights") in self.size and node.inputs:
                    src = self._producer(node.inputs[0])
                    self.size[Knob(src, "act")] = self.size.get(Knob(src, "act"), 0.0) + \
                        self.size[Knob(node.name, "weights")]
            for k in self.knobs:
                self.size.setdefault(k, 0.0)
        if not any(k.kind == "weights" for k in self.knobs):
            raise InputError(f"model {graph.name!r} has no layer with a kernel to search")
        # k210-ram: per MAC layer, its input map and output map resident at once (the KPU's rule,
        # qsim.k210.memory), as (input knob, input elements, output knob, output elements)
        self.ram_pairs = [(Knob(self._producer(node.inputs[0]), "act"),
                           float(np.prod(np.shape(trace.values[node.inputs[0]])[1:])),
                           Knob(node.name, "act"), float(np.prod(np.shape(trace.values[node.name])[1:])))
                          for node in graph if Knob(node.name, "weights") in self.fmt and node.inputs] \
            if objective == "k210-ram" else []

    def _producer(self, name: str) -> str:
        node = self.graph[name]
        while node.op in PASSTHROUGH_OPS and node.inputs:
            node = self.graph[node.inputs[0]]
        return node.name

    def widest(self) -> dict[Knob, int]:
        return {k: self.words[-1] for k in self.knobs}

    def objective(self, bits: dict[Knob, int]) -> float:
        """weight-bits: sum of kernel sizes x word; act-memory: activation elements per sample x
        word; bitops: MACs x weight word x input word (16 in weights mode); k210-ram: bytes of the
        largest (input map + output map) of one MAC layer per sample, at the proxy's input size."""
        if self.objective_kind == "k210-ram":
            return max((n_in * bits[k_in] + n_out * bits[k_out]) / 8
                       for k_in, n_in, k_out, n_out in self.ram_pairs)
        if self.objective_kind != "bitops":
            return float(sum(self.size[k] * bits[k] for k in self.knobs if self.size[k]))
        total = 0.0
        for node in self.graph:
            k = Knob(node.name, "weights")
            if k in bits:
                a_bits = bits.get(Knob(self._producer(node.inputs[0]), "act"), 16) if node.inputs else 16
                total += self.size[k] * bits[k] * a_bits
        return total

    def plan(self, bits: dict[Knob, int]) -> Plan:
        """The plan of these words (biases: 32-bit words, fraction bits capped by the accumulator's)."""
        from qsim.analysis.profile import format_for

        act = {k.node: self.fmt[k][b] for k, b in bits.items() if k.kind == "act"}
        widest_act = max(act.values(), key=lambda f: f.int_bits) if act else QFormat.parse("Q6.9")
        nodes: dict[str, dict] = {}
        for node in self.graph:
            entry = {}
            if node.name in act:
                entry["act"] = str(act[node.name])
            k = Knob(node.name, "weights")
            if k in bits:
                w_fmt = self.fmt[k][bits[k]]
                entry["weights"] = str(w_fmt)
                stats = self.profile.layers[node.name].bias
                if stats is not None:
                    src = self._producer(node.inputs[0])
                    in_frac = act.get(src, widest_act).frac_bits if self.mode == "full" else 16
                    entry["bias"] = str(format_for(stats.min, stats.max, BIAS_BITS,
                                                   max_frac_bits=in_frac + w_fmt.frac_bits))
            if entry:
                nodes[node.name] = entry
        return Plan.per_layer(nodes, default=str(widest_act), mode=self.mode, **self.base)

    def noise(self, bits: dict[Knob, int]) -> float:
        """Output error power (mean squared error) against float on the proxy inputs."""
        from qsim.runtime import prepare

        out = np.asarray(prepare(self.graph, self.plan(bits)).run(self.x, counters=False,
                                                                  keep_values=False).output(0), np.float64)
        return float(np.mean((out - self.reference_out) ** 2))


def greedy_path(space: SearchSpace, noise: dict[Knob, dict[int, float]]) -> list[dict[Knob, int]]:
    """From the widest plan to the narrowest, one bit of one knob per step (module doc, step 3)."""
    bits = space.widest()
    path = [dict(bits)]
    words = space.words
    while True:
        best, best_score = None, math.inf
        for k in space.knobs:
            i = words.index(bits[k])
            if i == 0:
                continue
            lower = words[i - 1]
            added = max(noise[k][lower] - noise[k][bits[k]], 0.0)
            saved = space.size[k] * (bits[k] - lower)
            # knobs that save nothing go last, least noisy first; the epsilon keeps ties stable
            score = (added + 1e-30) / saved if saved > 0 else math.inf if added > 0 else 1e300
            if score < best_score or best is None:
                best, best_score = k, score
        if best is None:
            return path
        bits[best] = words[words.index(bits[best]) - 1]
        path.append(dict(bits))


def search(space: SearchSpace, measure: Callable[[Plan], float], reference: float, budget: Budget, *,
           baselines: dict[str, Plan] | None = None, progress: bool = True) -> SearchResult:
    """The cheapest measured plan within ``budget`` on the greedy path (module doc)."""
    from qsim.analysis.tasks import progress_bar

    runs = {"proxy": 0, "measured": 0}
    widest = space.widest()
    base_noise = space.noise(widest)
    runs["proxy"] += 1
    noise: dict[Knob, dict[int, float]] = {}
    bar = progress_bar(len(space.knobs) * (len(space.words) - 1), progress, "sensitivity", "run")
    for k in space.knobs:
        noise[k] = {space.words[-1]: base_noise}
        for b in space.words[:-1]:
            noise[k][b] = space.noise({**widest, k: b})
            runs["proxy"] += 1
            bar.update(1)
    bar.close()
    path = greedy_path(space, noise)

    points: dict[int, Point] = {}

    def at(step: int) -> Point:
        if step not in points:
            value = float(measure(space.plan(path[step])))
            runs["measured"] += 1
            points[step] = Point(step, space.objective(path[step]), value, budget.holds(value, reference),
                                 path[step])
        return points[step]

    best_step = None
    if at(0).within:
        lo, hi = 0, len(path) - 1  # invariant: lo within budget; beyond hi unknown or out
        if at(hi).within:
            lo = hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if at(mid).within:
                lo = mid
            else:
                hi = mid
        best_step = lo
    measured_baselines = []
    for label, plan in (baselines or {}).items():
        value = float(measure(plan))
        runs["measured"] += 1
        bits = {k: _word_of(plan, k) for k in space.knobs}
        measured_baselines.append(Point(-1, space.objective(bits), value, budget.holds(value, reference), bits, label))
    best = points.get(best_step)
    reasons: dict[Knob, str] = {}
    share: dict[Knob, float] = {}
    if best is not None:
        nxt = path[best_step + 1] if best_step + 1 < len(path) else None
        broke = next((k for k in space.knobs if nxt is not None and nxt[k] != best.bits[k]), None)
        total = sum(max(noise[k][best.bits[k]] - base_noise, 0.0) for k in space.knobs) or 1.0
        for k in space.knobs:
            reasons[k] = ("narrowest" if best.bits[k] == space.words[0] else
                          "budget" if k == broke and (best_step + 1) in points and not points[best_step + 1].within
                          else "proxy")
            share[k] = max(noise[k][best.bits[k]] - base_noise, 0.0) / total
    return SearchResult(space.objective_kind, budget, reference, space.words, best,
                        None if best is None else space.plan(best.bits), sorted(points.values(), key=lambda p: p.step),
                        measured_baselines, reasons, share, len(path), runs)


def _word_of(plan: Plan, knob: Knob) -> int:
    node_plan = plan.for_node(knob.node)
    return (node_plan.weights if knob.kind == "weights" else node_plan.act).word_bits
