"""The one op enum of the IR, and its groups, declared once.

`Op` is a ``str`` enum: ``Op.CONV2D == "conv2d"`` and op tables keyed by `Op` are read
with a node's ``op`` string, so importers, passes and backends share one spelling.
Attributes and weights of every op: the table in `qsim.graph.ir`. The groups say what a
backend or a plan may assume about an op:

* `MAC_OPS`: a weight tensor, an accumulator and one requantization (plan sites
  ``weights``, ``bias``, ``acc``, ``requant``). `qsim.graph.passes.quantize_weights.mac_params`
  gives every one of them as (kernel, bias, depthwise?).
* `PASSTHROUGH_OPS`: output codes are input codes (moved, selected or zero-padded), in
  the input's format (the plan's ``act`` is not used); nothing is rounded.
* `ELEMENTWISE_OPS`: one output element from the same element of each input (`MULTIPLY`
  broadcasts a size-1 axis, as in squeeze-and-excitation), plus the activation functions.
* `ACTIVATION_OPS`: unary functions of one element (``y = f(x)``); every one but ``relu``
  is smooth or piecewise-linear with constants, so an integer backend may compute it as a
  correctly rounded function of the input code (a table over input codes).
* `POOL_OPS`: windowed or global reductions over H and W of an NHWC tensor.
* `SPATIAL_OPS`: ops that need a rank-4 NHWC tensor (batch, H, W, C); every other op
  takes any rank >= 2 (batch first, channels or features last).
* `LOWERED_OPS`: ops that only a backend's own lowering creates (never an importer).
"""
from __future__ import annotations

from enum import Enum


class Op(str, Enum):
    """Canonical graph ops (attributes and weights: `qsim.graph.ir`)."""

    INPUT = "input"
    CONV2D = "conv2d"
    DEPTHWISE_CONV2D = "depthwise_conv2d"
    DENSE = "dense"
    """Keras Dense: ``x @ kernel + bias`` over the last axis (any rank >= 2)."""
    BATCH_NORM = "batch_norm"
    RESCALE = "rescale"
    """``x * scale + offset`` per channel (last axis): Keras Rescaling, Normalization, x*c, x+c."""
    RELU = "relu"
    SIGMOID = "sigmoid"
    TANH = "tanh"
    HARD_SIGMOID = "hard_sigmoid"
    HARD_SWISH = "hard_swish"
    SWISH = "swish"
    SOFTMAX = "softmax"
    PAD = "pad"
    ADD = "add"
    MULTIPLY = "multiply"
    CONCAT = "concat"
    UPSAMPLE = "upsample"
    AVG_POOL = "avg_pool"
    MAX_POOL = "max_pool"
    GLOBAL_AVG_POOL = "global_avg_pool"
    GLOBAL_MAX_POOL = "global_max_pool"
    RESHAPE = "reshape"
    """Keras Reshape and Flatten: same values in C (row-major) order, new non-batch shape."""
    IDENTITY = "identity"
    KPU_CONV = "kpu_conv"
    """K210 lowering: one KPU layer (conv, BN, activation, pool in one hardware pass)."""
    KPU_ADD = "kpu_add"
    """K210 lowering: a residual add run on the KPU as a 1x1 conv over the concatenation."""

    def __str__(self) -> str:
        return self.value


MAC_OPS = frozenset({Op.CONV2D, Op.DEPTHWISE_CONV2D, Op.DENSE, Op.BATCH_NORM, Op.RESCALE})
PASSTHROUGH_OPS = frozenset({Op.PAD, Op.IDENTITY, Op.RESHAPE, Op.MAX_POOL, Op.GLOBAL_MAX_POOL})
ACTIVATION_OPS = frozenset({Op.RELU, Op.SIGMOID, Op.TANH, Op.HARD_SIGMOID, Op.HARD_SWISH, Op.SWISH})
ELEMENTWISE_OPS = ACTIVATION_OPS | {Op.ADD, Op.MULTIPLY}
POOL_OPS = frozenset({Op.AVG_POOL, Op.MAX_POOL, Op.GLOBAL_AVG_POOL, Op.GLOBAL_MAX_POOL})
SPATIAL_OPS = POOL_OPS | {Op.CONV2D, Op.DEPTHWISE_CONV2D, Op.PAD, Op.UPSAMPLE}
LOWERED_OPS = frozenset({Op.KPU_CONV, Op.KPU_ADD})
OPS = tuple(op.value for op in Op)
