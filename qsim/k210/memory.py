"""KPU RAM planner: does a model fit the K210's 2 MiB KPU RAM at a given input size?

Rule (nncase 1.x allocator, ``k210-kpu.md`` §3): while a KPU layer runs, its input map and
its output map must both be resident in KPU RAM, each laid out per §1.2 (rows padded to
16 / 32 / multiple-of-64 bytes, channels grouped per 64-byte line). Under the lowering of
`qsim.k210.lowering` every tensor that leaves the KPU chain (skip connections, concat and
add operands) goes through main memory, so no third map has to stay in KPU RAM and a layer
fits iff ``in_bytes + out_bytes <= 2 MiB``. The plan also lists the nncase/register limits
each layer breaks (e.g. input height > 256), which fail compilation independently of memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from qsim.graph.ir import Graph
from qsim.k210.layout import KPU_RAM_BYTES
from qsim.k210.lowering import Step, lower

MIB = 1024 * 1024


@dataclass
class LayerMemory:
    name: str
    op: str
    in_shape: tuple
    out_shape: tuple
    in_bytes: int
    out_bytes: int
    limits: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.in_bytes + self.out_bytes


@dataclass
class MemoryPlan:
    model: str
    input_hw: tuple[int, int]
    ram_bytes: int
    layers: list[LayerMemory]

    @property
    def peak(self) -> LayerMemory | None:
        return max(self.layers, key=lambda l: l.total, default=None)

    @property
    def first_unfit(self) -> LayerMemory | None:
        """The first KPU layer whose input + output exceed the RAM."""
        return next((l for l in self.layers if l.total > self.ram_bytes), None)

    @property
    def first_limit(self) -> LayerMemory | None:
        """The first KPU layer that breaks an nncase/register limit."""
        return next((l for l in self.layers if l.limits), None)

    @property
    def fits(self) -> bool:
        return self.first_unfit is None

    def verdict(self) -> str:
        peak = self.peak
        if peak is None:
            return "no KPU layer"
        text = (f"peak {peak.total / MIB:.3f} MiB at {peak.name} ({peak.op}, in {peak.in_shape} + out "
                f"{peak.out_shape}); ")
        text += "fits 2 MiB" if self.fits else f"does NOT fit: first at {self.first_unfit.name}"
        if self.first_limit is not None:
            text += f"; limit broken first at {self.first_limit.name}: {self.first_limit.limits[0]}"
        return text

    def to_dict(self) -> dict:
        peak = self.peak
        return {
            "model": self.model, "input_hw": list(self.input_hw), "ram_bytes": self.ram_bytes,
            "fits": self.fits, "peak_bytes": peak.total if peak else 0, "peak_layer": peak.name if peak else None,
            "first_unfit": self.first_unfit.name if self.first_unfit else None,
            "first_limit": ({"layer": self.first_limit.name, "limits": self.first_limit.limits}
                            if self.first_limit else None),
            "layers": [{"name": l.name, "op": l.op, "in_shape": list(l.in_shape), "out_shape": list(l.out_shape),
                        "in_bytes": l.in_bytes, "out_bytes": l.out_bytes, "total": l.total,
                        "fits": l.total <= self.ram_bytes, "limits": l.limits} for l in self.layers],
        }

    def to_markdown(self) -> str:
        lines = ["| layer | op | in (C,H,W) | out (C,H,W) | in KiB | out KiB | in+out KiB | fits |",
                 "|---|---|---|---|---:|---:|---:|---|"]
        for l in self.layers:
            lines.append(f"| {l.name} | {l.op} | {l.in_shape} | {l.out_shape} | {l.in_bytes / 1024:.1f} | "
                         f"{l.out_bytes / 1024:.1f} | {l.total / 1024:.1f} | "
                         f"{'yes' if l.total <= self.ram_bytes else '**no**'}{' (' + '; '.join(l.limits) + ')' if l.limits else ''} |")
        return "\n".join(lines)


def plan_memory(graph: Graph, input_hw: tuple[int, int], add_mode: str = "kpu",
                ram_bytes: int = KPU_RAM_BYTES, steps: list[Step] | None = None) -> MemoryPlan:
    """Per-KPU-layer KPU RAM use of `graph` at `input_hw`, with the fit verdict."""
    steps = lower(graph, input_hw, add_mode) if steps is None else steps
    layers = [LayerMemory(s.name, s.op, s.in_shape, s.out_shape, s.in_bytes, s.out_bytes, list(s.limits))
              for s in steps if s.kind == "kpu"]
    return MemoryPlan(graph.name, tuple(input_hw), ram_bytes, layers)
