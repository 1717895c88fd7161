"""The one op enum of the IR, and its groups, declared once.

`Op` is a ``str`` enum: ``Op.CONV2D == "conv2d"`` and op tables keyed by `Op` are read
with a node's ``op`` string, so importers, passes and backends share one spelling.
The groups say what a backend or a plan may assume about an op:

* `MAC_OPS`: a weight tensor, an accumulator and one requantization (plan sites
  ``weights``, ``bias``, ``acc``, ``requant``).
* `PASSTHROUGH_OPS`: output codes are the input codes, in the input's format (the plan's
  ``act`` is not used).
* `ELEMENTWISE_OPS`: one output element from the same element of each input (plus the
  activation functions).
* `LOWERED_OPS`: ops that only a backend's own lowering creates (never an importer).
"""
from __future__ import annotations

from enum import Enum


class Op(str, Enum):
    """Canonical graph ops (attributes and weights: `qsim.graph.ir`)."""

    INPUT = "input"
    CONV2D = "conv2d"
    DEPTHWISE_CONV2D = "depthwise_conv2d"
    BATCH_NORM = "batch_norm"
    RELU = "relu"
    SIGMOID = "sigmoid"
    PAD = "pad"
    ADD = "add"
    CONCAT = "concat"
    UPSAMPLE = "upsample"
    IDENTITY = "identity"
    KPU_CONV = "kpu_conv"
    """K210 lowering: one KPU layer (conv, BN, activation, pool in one hardware pass)."""
    KPU_ADD = "kpu_add"
    """K210 lowering: a residual add run on the KPU as a 1x1 conv over the concatenation."""

    def __str__(self) -> str:
        return self.value


MAC_OPS = frozenset({Op.CONV2D, Op.DEPTHWISE_CONV2D, Op.BATCH_NORM})
PASSTHROUGH_OPS = frozenset({Op.PAD, Op.IDENTITY})
ELEMENTWISE_OPS = frozenset({Op.RELU, Op.SIGMOID, Op.ADD})
LOWERED_OPS = frozenset({Op.KPU_CONV, Op.KPU_ADD})
OPS = tuple(op.value for op in Op)
