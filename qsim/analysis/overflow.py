"""Per-layer overflow report from `Trace.counters`, over one or many images.

Every integer executor returns ``Trace.counters[node][site] -> OverflowCounter`` (sites:
``weights``, ``bias``, ``input``, ``acc``, ``requant``, ``add``, ``upsample``, ``concat``,
``act``; see `qsim.plan`). `OverflowReport` merges those counters over images:

* data sites (everything but ``weights``/``bias``) add up image by image;
* parameter sites (``weights``, ``bias``) are the same numbers for every image (the same
  parameters are quantized once per run), so they are taken once, not multiplied by the
  number of images.

Per node the report gives, for each site: events (values that left their word and were
saturated or wrapped), elements seen, rate = events / elements, the largest magnitude seen
and the headroom in bits (``log2(limit / peak)``: spare bits if > 0, missing bits if < 0).
The node summary takes the site with the highest overflow rate (ties: most events, then
lowest headroom) as the "worst site", and the lowest headroom over all sites.

JSON (`OverflowReport.to_dict`)::

    {"n_images": 8, "total_events": 12, "layers": [
       {"name": "Conv1", "op": "conv2d", "format": "Q6.9", "range": [-3.2, 5.1],
        "events": 12, "worst_site": "acc", "worst_rate": 1.2e-05, "headroom_bits": -0.4,
        "sites": {"acc": {"events": 12, "elements": 1000000, "rate": 1.2e-05,
                          "max_abs": 3002111, "limit": 2147483648, "headroom_bits": -0.4,
                          "peak": ..., "site": "Conv1/acc"}, ...}}, ...]}

``headroom_bits`` is ``"inf"`` where nothing non-zero was seen (see `qsim.analysis.report`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qsim.errors import QsimError
from qsim.fixed.counters import OverflowCounter

PARAMETER_SITES = ("weights", "bias")


def _clone(counter: OverflowCounter) -> OverflowCounter:
    return OverflowCounter.from_dict(counter.to_dict())


@dataclass
class LayerOverflow:
    """One node's overflow summary and its per-site counters."""

    name: str
    op: str
    format: str | None
    range: tuple[float, float] | None
    sites: dict[str, OverflowCounter] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(c.events for c in self.sites.values())

    @property
    def headroom_bits(self) -> float:
        """Lowest headroom over the node's sites (+inf when nothing was counted)."""
        return min((c.headroom_bits for c in self.sites.values()), default=math.inf)

    @property
    def worst_site(self) -> str | None:
        if not self.sites:
            return None
        return max(self.sites, key=lambda s: (self.sites[s].rate, self.sites[s].events,
                                              -self.sites[s].headroom_bits))

    @property
    def worst_rate(self) -> float:
        site = self.worst_site
        return 0.0 if site is None else self.sites[site].rate

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "op": self.op, "format": self.format,
            "range": None if self.range is None else list(self.range),
            "events": self.events, "worst_site": self.worst_site, "worst_rate": self.worst_rate,
            "headroom_bits": self.headroom_bits,
            "sites": {s: c.to_dict() for s, c in self.sites.items()},
        }


class OverflowReport:
    """Overflow counters of integer runs, merged per node and site over images.

    Args:
        graph: optional graph, for op names and graph order.
    """

    def __init__(self, graph: Any = None):
        self.ops = {} if graph is None else {n.name: n.op for n in graph}
        self.layers: dict[str, LayerOverflow] = {}
        self.n_images = 0
        self._params_seen: set[tuple[str, str]] = set()

    def update(self, trace: Any) -> "OverflowReport":
        """Merge one run's counters (and the range of its dequantized values)."""
        counters = getattr(trace, "counters", None)
        if counters is None:
            raise QsimError(f"trace of executor {trace.executor!r} has no overflow counters")
        names = list(trace.values) + [n for n in counters if n not in trace.values]
        for name in names:
            layer = self.layers.get(name)
            if layer is None:
                fmt = trace.formats.get(name)
                layer = self.layers[name] = LayerOverflow(
                    name=name, op=self.ops.get(name, ""), format=None if fmt is None else str(fmt),
                    range=None)
            values = trace.values.get(name)
            if values is not None and np.size(values):
                lo, hi = float(np.min(values)), float(np.max(values))
                if layer.range is not None:
                    lo, hi = min(lo, layer.range[0]), max(hi, layer.range[1])
                layer.range = (lo, hi)
            for site, counter in counters.get(name, {}).items():
                self._add_site(layer, site, counter)
        self.n_images += 1
        return self

    def _add_site(self, layer: LayerOverflow, site: str, counter: OverflowCounter) -> None:
        """Merge one counter; parameter sites (weights, bias: the same every image) count once."""
        if site in PARAMETER_SITES:
            if (layer.name, site) in self._params_seen:
                return
            self._params_seen.add((layer.name, site))
        if site in layer.sites:
            layer.sites[site].merge(counter)
        else:
            layer.sites[site] = _clone(counter)

    def merge(self, other: "OverflowReport") -> "OverflowReport":
        """Add another report's images (e.g. one sample's, from a worker): the same numbers
        as if its traces had been `update`d here, in that order."""
        for name, theirs in other.layers.items():
            layer = self.layers.get(name)
            if layer is None:
                layer = self.layers[name] = LayerOverflow(name=name, op=theirs.op or self.ops.get(name, ""),
                                                          format=theirs.format, range=None)
            if theirs.range is not None:
                layer.range = theirs.range if layer.range is None else (
                    min(layer.range[0], theirs.range[0]), max(layer.range[1], theirs.range[1]))
            for site, counter in theirs.sites.items():
                self._add_site(layer, site, counter)
        self.n_images += other.n_images
        return self

    def update_counters(self, executor: str, counters: dict) -> "OverflowReport":
        """Merge one run's counters stored as JSON (``{node: {site: OverflowCounter.to_dict()}}``)."""
        from qsim.trace import Trace

        trace = Trace(executor)
        trace.counters = {node: {site: OverflowCounter.from_dict(c) for site, c in sites.items()}
                          for node, sites in counters.items()}
        return self.update(trace)

    @property
    def total_events(self) -> int:
        return sum(layer.events for layer in self.layers.values())

    def first_overflow(self) -> LayerOverflow | None:
        """The first node (graph order) with at least one overflow event."""
        return next((layer for layer in self.layers.values() if layer.events), None)

    def to_dict(self) -> dict[str, Any]:
        return {"n_images": self.n_images, "total_events": self.total_events,
                "layers": [layer.to_dict() for layer in self.layers.values()]}

    def render(self, only_counted: bool = False) -> str:
        """Markdown table: layer, op, format, range seen, events, worst site and rate, headroom."""
        from qsim.analysis.report import fmt_num, fmt_pct, markdown_table

        rows = []
        for layer in self.layers.values():
            if only_counted and not layer.sites:
                continue
            rng = "-" if layer.range is None else f"[{fmt_num(layer.range[0])}, {fmt_num(layer.range[1])}]"
            rows.append([layer.name, layer.op, layer.format or "-", rng, str(layer.events),
                         layer.worst_site or "-", fmt_pct(layer.worst_rate) if layer.sites else "-",
                         fmt_num(layer.headroom_bits) if layer.sites else "-"])
        return markdown_table(
            ["layer", "op", "format", "range seen", "overflows", "worst site", "rate", "headroom bits"],
            rows, align="llllrlrr")


def overflow_report(traces: Any, graph: Any = None) -> OverflowReport:
    """An `OverflowReport` over one `Trace` or an iterable of them."""
    report = OverflowReport(graph)
    if hasattr(traces, "counters"):
        traces = [traces]
    for trace in traces:
        report.update(trace)
    return report
