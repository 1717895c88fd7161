"""The graph IR: the only thing executors see.

A `Graph` is a list of `Node`s in topological order; a node's name is its Keras layer
name and is also the name of its (single) output. Tensors are batch first. Images are
NHWC (N, H, W, C); other tensors have any rank >= 2 with features or channels last:
(N, C) after Flatten/Dense, (N, T, C) after a Reshape. The ops of `SPATIAL_OPS`
(convolutions, pad, upsample, pools) need rank 4; every other op takes any rank >= 2.
"Per channel" always means the last axis.

Canonical ops (`OPS`, groups in `qsim.graph.ops`), their weights and attributes:

=====================  ===============================  ==============================================
op                     weights (float32 numpy)          attrs
=====================  ===============================  ==============================================
``input``              -                                ``shape``: the non-batch shape, e.g.
                                                         (H|None, W|None, C) for images, (640,) for
                                                         features (None: any size on that axis)
``conv2d``             ``kernel`` (KH,KW,Cin,Cout),     ``strides`` (sh, sw), ``pads`` (top, bottom,
                       ``bias`` (Cout,) optional         left, right) or ``"same"``, ``dilation`` (dh, dw)
``depthwise_conv2d``   ``kernel`` (KH,KW,C,mult),       as ``conv2d``
                       ``bias`` (C*mult,) optional
``dense``              ``kernel`` (Cin, Cout),          - ; ``y = x @ kernel + bias`` over the last axis
                       ``bias`` (Cout,) optional         (any rank >= 2: Keras applies it per position)
``batch_norm``         ``gamma``, ``beta``, ``mean``,   ``epsilon``; over the last axis (any rank)
                       ``variance`` (C,)
``rescale``            ``scale``, ``offset`` (C,)       - ; ``y = x * scale + offset`` per channel
                       (importers broadcast a scalar)    (Keras Rescaling, Normalization, and Keras 3
                                                         ops ``x * c`` / ``x + c`` with a constant);
                                                         a MAC: ``weights`` = scale, ``bias`` = offset
``relu``               -                                ``max_value`` (None or e.g. 6.0),
                                                         ``negative_slope`` (0.0), ``threshold`` (0.0):
                                                         Keras ReLU: x >= max_value → max_value;
                                                         threshold <= x < max → x; x < threshold →
                                                         negative_slope * (x - threshold)
``sigmoid``            -                                - ; 1 / (1 + exp(-x))
``tanh``               -                                - ; tanh(x)
``hard_sigmoid``       -                                ``slope``, ``offset``: clip(slope * x + offset,
                                                         0, 1); Keras 3: 1/6, 0.5 (= relu6(x + 3) / 6);
                                                         Keras 2 files: 0.2, 0.5
``hard_swish``         -                                - ; x * relu6(x + 3) / 6 (Keras hard_silu)
``swish``              -                                - ; x * sigmoid(x) (Keras silu)
``softmax``            -                                ``axis`` (negative, from the end; -1 from
                                                         Keras): exp(x - max) / sum(exp(x - max))
``pad``                -                                ``pads`` (top, bottom, left, right), zeros
``add``                -                                - (n inputs, same shape)
``multiply``           -                                - (n >= 2 inputs, product); shapes equal or
                                                         1 on an axis (broadcast, never the batch):
                                                         SE blocks scale (N,H,W,C) by (N,1,1,C)
``concat``             -                                ``axis`` (always -1: channels)
``upsample``           -                                ``size`` (fh, fw), ``interpolation``
                                                         ``"nearest"`` | ``"bilinear"`` (Keras 3 /
                                                         tf.image.resize half-pixel sampling)
``avg_pool``           -                                ``pool_size`` (ph, pw), ``strides`` (sh, sw),
                                                         ``pads`` as conv (``"same"`` or explicit);
                                                         the mean over the window's in-image
                                                         elements: padded positions are not counted
                                                         (Keras/TF), so an edge window of a "same"
                                                         pool divides by fewer than ph*pw
``max_pool``           -                                as ``avg_pool``; padded positions never win
                                                         (they are -inf, as in TF)
``global_avg_pool``    -                                ``keepdims`` (bool): mean over H and W;
                                                         (N, C), or (N, 1, 1, C) with keepdims
``global_max_pool``    -                                ``keepdims``: max over H and W, as above
``reshape``            -                                ``shape``: the new non-batch shape (one -1
                                                         allowed, resolved from the size); values in
                                                         row-major (C) order: Keras Reshape, and
                                                         Flatten as ``shape=(-1,)`` (NHWC order)
``identity``           -                                - (removed by the passes)
=====================  ===============================  ==============================================

``pads == "same"`` means TensorFlow's rule resolved at run time from the input size
(pad_total = max((ceil(in/s)-1)*s + (k-1)*d + 1 - in, 0), top = pad_total // 2,
the extra pixel at the bottom/right); `resolve_pads` applies it (pools: k = pool_size,
d = 1). SeparableConv2D imports as ``depthwise_conv2d`` (``<name>_depthwise``) followed by a
1x1 ``conv2d`` named after the layer.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qsim.errors import ModelError
from qsim.graph.ops import OPS


@dataclass
class Node:
    """One operation; `name` names its output tensor too."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    source_class: str = ""  # the Keras class it came from, for messages

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ModelError(f"node '{self.name}': unknown op {self.op!r}; known ops: {', '.join(OPS)}")


@dataclass
class Graph:
    """Nodes in topological order, plus which of them are the model's outputs."""

    nodes: list[Node]
    outputs: list[str]
    name: str = "model"
    source: str = ""  # file it was read from
    notes: list[str] = field(default_factory=list)  # what passes changed (BN folds, pads)

    def __post_init__(self) -> None:
        self._index = {n.name: n for n in self.nodes}
        self.check_order()

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> Node:
        try:
            return self._index[name]
        except KeyError:
            raise ModelError(f"graph {self.name!r} has no node named {name!r}") from None

    @property
    def inputs(self) -> list[Node]:
        return [n for n in self.nodes if n.op == "input"]

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def copy(self) -> "Graph":
        """A graph of copied nodes (lists and dicts copied, weight arrays shared)."""
        nodes = [Node(n.name, n.op, list(n.inputs), dict(n.attrs), dict(n.weights), n.source_class)
                 for n in self.nodes]
        return Graph(nodes, list(self.outputs), name=self.name, source=self.source, notes=list(self.notes))

    def replace_nodes(self, nodes: list[Node], outputs: list[str] | None = None) -> None:
        """Swap in a new node list (used by passes), re-checking the order."""
        self.nodes = nodes
        if outputs is not None:
            self.outputs = outputs
        self._index = {n.name: n for n in self.nodes}
        self.check_order()

    def check_order(self) -> None:
        seen: set[str] = set()
        for node in self.nodes:
            if node.name in seen:
                raise ModelError(f"graph {self.name!r}: duplicate node name {node.name!r}")
            for src in node.inputs:
                if src not in seen:
                    raise ModelError(
                        f"graph {self.name!r}: node {node.name!r} reads {src!r}, "
                        "which is not defined before it"
                    )
            seen.add(node.name)
        for out in self.outputs:
            if out not in seen:
                raise ModelError(f"graph {self.name!r}: output {out!r} is not a node")


def resolve_pads(pads: Any, in_hw: tuple[int, int], kernel_hw: tuple[int, int],
                 strides: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int, int, int]:
    """Explicit (top, bottom, left, right) pads; ``"same"`` follows TensorFlow (extra at bottom/right)."""
    if pads == "same":
        out: list[int] = []
        for size, k, s, d in zip(in_hw, kernel_hw, strides, dilation):
            eff = (k - 1) * d + 1
            total = max((math.ceil(size / s) - 1) * s + eff - size, 0)
            out += [total // 2, total - total // 2]
        return (out[0], out[1], out[2], out[3])
    if pads == "valid" or pads is None:
        return (0, 0, 0, 0)
    t, b, l, r = (int(p) for p in pads)
    return (t, b, l, r)


def conv_out_size(size: int, k: int, s: int, pad_total: int, d: int = 1) -> int:
    """Output length of a convolution along one axis."""
    return (size + pad_total - ((k - 1) * d + 1)) // s + 1
