"""`OverflowCounter`: how often, and by how much, exact integers left their range.

Every site that narrows an exact integer to a word (weight/input quantization,
accumulators, requantization, residual add, ...) feeds the exact values *before*
narrowing to `OverflowCounter.observe` together with the allowed range ``[lo, hi]``.
The counter keeps:

* ``elements``: values seen; ``events``: values outside ``[lo, hi]`` (each would have been
  saturated or wrapped);
* ``max_abs``: the largest ``|raw|`` seen (a Python int; ``math.inf`` once an infinite
  float was quantized);
* ``headroom_bits = log2(limit / peak)`` with ``limit = max(|lo|, hi)``: how many bits are
  to spare (positive) or missing (negative). ``peak``/``limit`` are the pair of the
  observation with the worst ratio, so merging sites with different ranges stays
  conservative. ``+inf`` when nothing (or only zeros) was seen. A signed word's limit is
  ``2**(w-1)``: a peak of exactly that gives 0 bits whether it was ``-2**(w-1)`` (fits)
  or ``+2**(w-1)`` (one event); ``events`` is the exact count.

Counters merge (`merge`) and round-trip through JSON (`to_dict` / `from_dict`).

>>> c = OverflowCounter("conv1/acc")
>>> c.observe(np.array([-200, 5, 127, 128]), lo=-128, hi=127)
>>> (c.events, c.elements, c.max_abs, round(c.rate, 2))
(2, 4, 200, 0.5)
>>> round(c.headroom_bits, 3)  # log2(128 / 200)
-0.644
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from qsim.errors import QsimError


class OverflowCounter:
    """Overflow statistics of one site (or of several merged sites).

    Args:
        site: a name for reports, e.g. ``"block_1_expand/acc"``.
    """

    def __init__(self, site: str = "") -> None:
        self.site = site
        self.events = 0
        self.elements = 0
        self.max_abs: int | float = 0
        # worst observation: headroom = log2(limit / peak); peak == 0 means "no data"
        self.peak: int | float = 0
        self.limit = 0

    # --- feeding ------------------------------------------------------------------
    def observe(self, raw: Any, lo: int, hi: int) -> None:
        """Count the exact values `raw` (before narrowing) against the range ``[lo, hi]``.

        Args:
            raw: exact integers: an integer ndarray, or a sequence / object array of Python
                ints (for values beyond int64). Floats ``±inf`` are allowed (they count as
                events with an infinite magnitude).
            lo, hi: the inclusive range of the destination word.
        """
        arr = np.asarray(raw)
        if not isinstance(raw, np.ndarray) and arr.dtype.kind in "fuO":
            arr = np.array(raw, dtype=object)  # Python ints beyond int64 stay exact
        if arr.size == 0:
            return
        lo, hi = int(lo), int(hi)
        if lo > hi:
            raise QsimError(f"OverflowCounter {self.site!r}: empty range [{lo}, {hi}]")
        if arr.dtype.kind in "iub":
            a_min, a_max = int(arr.min()), int(arr.max())
            events = int(np.count_nonzero((arr < lo) | (arr > hi))) if (a_min < lo or a_max > hi) else 0
            peak: int | float = max(abs(a_min), abs(a_max))
        else:  # Python ints (object) or infinities (float): exact but slow
            flat = arr.reshape(-1).tolist()
            events = sum(1 for v in flat if v < lo or v > hi)
            peak = max(abs(v) for v in flat)
            if isinstance(peak, float):
                if not math.isinf(peak) and peak != int(peak):
                    raise QsimError(f"OverflowCounter {self.site!r}: non-integer value {peak!r}")
                peak = math.inf if math.isinf(peak) else int(peak)
        self.record(events=events, elements=int(arr.size), peak=peak, lo=lo, hi=hi)

    def record(self, *, events: int, elements: int, peak: int | float, lo: int, hi: int) -> None:
        """Add already-reduced statistics (used by compiled kernels that count in a loop)."""
        self.events += int(events)
        self.elements += int(elements)
        if peak > self.max_abs:
            self.max_abs = peak
        limit = max(abs(int(lo)), int(hi))
        if _worse(peak, limit, self.peak, self.limit):
            self.peak, self.limit = peak, limit

    def merge(self, other: "OverflowCounter") -> "OverflowCounter":
        """Add `other`'s statistics into this counter (in place); returns self."""
        self.events += other.events
        self.elements += other.elements
        if other.max_abs > self.max_abs:
            self.max_abs = other.max_abs
        if _worse(other.peak, other.limit, self.peak, self.limit):
            self.peak, self.limit = other.peak, other.limit
        return self

    def copy(self) -> "OverflowCounter":
        """An independent counter with the same statistics."""
        return OverflowCounter(self.site).merge(self)

    # --- results ------------------------------------------------------------------
    @property
    def rate(self) -> float:
        """events / elements (0.0 when nothing was seen)."""
        return self.events / self.elements if self.elements else 0.0

    @property
    def headroom_bits(self) -> float:
        """``log2(limit / peak)``: spare bits (> 0) or missing bits (< 0); +inf if no data."""
        if self.peak == 0:
            return math.inf
        if self.peak == math.inf:
            return -math.inf
        if self.limit == 0:
            return -math.inf
        # exact-enough for huge ints: log2 of Python ints does not overflow
        return math.log2(self.limit) - math.log2(self.peak)

    def to_dict(self) -> dict:
        """JSON-ready dict (ints stay exact; infinities are written as the string "inf")."""
        hb = self.headroom_bits
        return {
            "site": self.site,
            "events": self.events,
            "elements": self.elements,
            "rate": self.rate,
            "max_abs": _enc(self.max_abs),
            "peak": _enc(self.peak),
            "limit": self.limit,
            "headroom_bits": hb if math.isfinite(hb) else ("inf" if hb > 0 else "-inf"),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "OverflowCounter":
        """Inverse of `to_dict`."""
        try:
            c = cls(str(d.get("site", "")))
            c.events = int(d["events"])
            c.elements = int(d["elements"])
            c.max_abs = _dec(d["max_abs"])
            c.peak = _dec(d.get("peak", d["max_abs"]))
            c.limit = int(d["limit"])
        except (KeyError, TypeError, ValueError) as exc:
            raise QsimError(f"not an OverflowCounter record: {d!r} ({exc})") from None
        return c

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OverflowCounter):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (
            f"OverflowCounter({self.site!r}: {self.events}/{self.elements} events, "
            f"max_abs={self.max_abs}, headroom={self.headroom_bits:.2f} bits)"
        )


def _worse(peak_a, limit_a, peak_b, limit_b) -> bool:
    """Is peak_a/limit_a a strictly worse (larger) ratio than peak_b/limit_b? Exact for ints."""
    if peak_a == 0:
        return False
    if peak_b == 0:
        return True
    if peak_a == math.inf or peak_b == math.inf:
        return peak_b != math.inf
    return peak_a * limit_b > peak_b * limit_a


def _enc(v):
    # ints stay exact; float peaks (e.g. an fp16 site) stay floats; infinity as a string
    if v == math.inf:
        return "inf"
    if isinstance(v, (int, np.integer)):
        return int(v)
    return int(v) if float(v).is_integer() else float(v)


def _dec(v):
    if v == "inf":
        return math.inf
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    raise ValueError(f"bad magnitude {v!r}")
