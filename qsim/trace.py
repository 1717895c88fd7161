"""`Trace`: what an executor returns, one shape whatever the batch or executor.

* ``outputs``  name -> float array (dequantized for integer executors), the model outputs
* ``values``   name -> float array for every node (same), in graph order
* ``codes``    name -> int64 code array (integer executors only; empty for float)
* ``formats``  name -> the `CodeFormat` of each node's output codes (integer executors only):
  a `QFormat` (fixed point, value = code * lsb) or an affine uint8 `QParam` (K210: value =
  (code - zero_point) * scale, lsb = scale); both have ``lsb`` and print as reports show them
* ``counters`` name -> {site -> `OverflowCounter`} (integer executors only; sites such as
  ``"weights"``, ``"bias"``, ``"input"``, ``"acc"``, ``"requant"``, ``"add"``, ``"upsample"``)
* ``executor`` which executor produced it (``"float"``, ``"fixed"``, ``"fp16"``, ``"k210"``)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class CodeFormat(Protocol):
    """What every backend's code format offers: the value of one code step, and a name."""

    @property
    def lsb(self) -> float: ...

    def __str__(self) -> str: ...


@dataclass
class Trace:
    executor: str
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)
    codes: dict[str, np.ndarray] = field(default_factory=dict)
    formats: dict[str, CodeFormat] = field(default_factory=dict)
    counters: dict[str, dict[str, Any]] = field(default_factory=dict)

    def output(self, index: int = 0) -> np.ndarray:
        """The index-th model output (insertion order = graph output order)."""
        return list(self.outputs.values())[index]
