"""Latency / FPS model of a lowered graph on the K210 (a written-down estimate, not a measurement).

Model (``k210-kpu.md`` §3, "Clock / throughput"):

* KPU: 64 compute units, each evaluating one 3x3 window (9 8-bit MACs) per cycle, i.e. one
  output row segment of up to 64 pixels for one (output channel, input channel) pair per
  cycle. A layer at conv resolution H x W (the full-resolution map for stride-2 layers, which
  the KPU computes before subsampling) costs
  ``cycles = OC * G * H * ceil(W / 64)`` with G = IC (normal conv) or 1 (depthwise).
  A 1x1 kernel takes the same cycles as a 3x3 (8 of 9 multipliers idle); widths that are not
  multiples of 64 waste the rest of the row ("KPU deals pictures in 64 pixels every time").
  Peak: 576 MAC/cycle = 230 GMAC/s at 400 MHz (Sipeed measured ~170 GMAC/s at 300 MHz on large
  3x3 layers, which this formula reproduces).
* KPU clock ``kpu_hz`` = 400 MHz (Sipeed's "normal KPU freq").
* CPU side (RISC-V at ``cpu_hz`` = 400 MHz): every CPU step (input upload, concat, add,
  subsample, pad, upsample, head dequantize) costs ``cpu_cycles_per_element`` cycles for each
  element read and written (default 10: a load, a multiply-add or copy, a store and loop
  overhead per byte, plus the KPU-layout conversion); the model output is dequantized on the CPU.
* KPU and CPU work are serial (nncase 1.x runs one node at a time); no weight-load stalls.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from qsim.graph.ir import Graph
from qsim.k210.lowering import Step, lower

KPU_UNITS = 64
KPU_ROW = 64


@dataclass
class StepCost:
    name: str
    kind: str
    op: str
    macs: int
    cycles: int
    seconds: float


@dataclass
class PerfEstimate:
    kpu_hz: float
    cpu_hz: float
    steps: list[StepCost] = field(default_factory=list)

    @property
    def kpu_seconds(self) -> float:
        return sum(s.seconds for s in self.steps if s.kind == "kpu")

    @property
    def cpu_seconds(self) -> float:
        return sum(s.seconds for s in self.steps if s.kind == "cpu")

    @property
    def seconds(self) -> float:
        return self.kpu_seconds + self.cpu_seconds

    @property
    def fps(self) -> float:
        return 1.0 / self.seconds if self.seconds > 0 else float("inf")

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)

    def to_dict(self) -> dict:
        return {"kpu_hz": self.kpu_hz, "cpu_hz": self.cpu_hz, "fps": self.fps, "seconds": self.seconds,
                "kpu_seconds": self.kpu_seconds, "cpu_seconds": self.cpu_seconds, "macs": self.macs,
                "steps": [vars(s) for s in self.steps]}


def kpu_cycles(step: Step) -> int:
    """Cycles of one KPU layer under the 64-unit model."""
    c, h, w = step.in_shape
    oc = step.out_shape[0]
    g = 1 if step.depthwise else c
    return oc * g * h * -(-w // KPU_ROW)


def _elements(shape) -> int:
    n = 1
    for v in shape:
        n *= int(v)
    return n


def estimate(graph: Graph, input_hw: tuple[int, int], kpu_hz: float = 400e6, cpu_hz: float = 400e6,
             cpu_cycles_per_element: float = 10.0, add_mode: str = "kpu",
             steps: list[Step] | None = None) -> PerfEstimate:
    """Latency of one inference of `graph` at `input_hw` under the model above."""
    steps = lower(graph, input_hw, add_mode) if steps is None else steps
    est = PerfEstimate(kpu_hz, cpu_hz)
    for s in steps:
        if s.kind == "kpu":
            cyc = kpu_cycles(s)
            est.steps.append(StepCost(s.name, s.kind, s.op, s.macs, cyc, cyc / kpu_hz))
        else:
            cyc = int(cpu_cycles_per_element * (_elements(s.in_shape) + _elements(s.out_shape)))
            est.steps.append(StepCost(s.name, s.kind, s.op, 0, cyc, cyc / cpu_hz))
    # the outputs leave the KPU and are dequantized on the CPU
    for out in graph.outputs:
        last = next((s for s in reversed(steps) if s.graph_output == out or s.name == out), None)
        if last is not None:
            cyc = int(cpu_cycles_per_element * 2 * _elements(last.out_shape))
            est.steps.append(StepCost(out + "/dequantize", "cpu", "dequantize", 0, cyc, cyc / cpu_hz))
    return est
