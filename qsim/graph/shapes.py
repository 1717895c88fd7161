"""Shape inference and cost counting on the IR (no execution).

`infer_shapes` gives every node's output shape without the batch axis, (H, W, C) for
images and (C,) or (T, C) for other tensors, for a given image size (None where a size is
unknown); it raises `ModelError` for inconsistent graphs (a
kernel whose input channels do not match, an ``add`` of different shapes, a head-C
concat of maps of different sizes). `count_params` / `count_macs` are the per-node costs
``qsim inspect`` reports: MACs count multiply-accumulates of conv/depthwise/dense (a
folded BatchNorm adds none); rescale, pools and the elementwise ops count zero MACs.

>>> import numpy as np
>>> from qsim.graph.ir import Graph, Node
>>> g = Graph([Node("x", "input", attrs={"shape": (None, None, 3)}),
...            Node("c", "conv2d", ["x"], {"strides": (2, 2), "pads": "same", "dilation": (1, 1)},
...                 {"kernel": np.zeros((3, 3, 3, 8), np.float32)})], ["c"])
>>> infer_shapes(g, (224, 224))["c"], count_macs(g["c"], infer_shapes(g, (224, 224))["c"])
((112, 112, 8), 2709504)
"""
from __future__ import annotations

import math

from qsim.errors import ModelError
from qsim.graph.ir import Graph, Node, conv_out_size, resolve_pads
from qsim.graph.ops import ACTIVATION_OPS, Op

Shape = tuple[int | None, ...]
"""A tensor's non-batch shape: (H, W, C) for images, (C,) or (T, C) otherwise; None = unknown."""


def _hw(size: int | None, k: int, s: int, pads_total: int | None, d: int = 1) -> int | None:
    """Output length along one spatial axis (``pads_total`` None: TF "same", ceil(in / s))."""
    if size is None:
        return None
    if pads_total is None:
        return -(-size // s)
    return conv_out_size(size, k, s, pads_total, d)


def _window_hw(node: Node, x: Shape, kh: int, kw: int) -> tuple[int | None, int | None]:
    """(OH, OW) of a conv or pool window of kh x kw over the (H, W, C) shape ``x``."""
    sh, sw = node.attrs.get("strides", (1, 1))
    dh, dw = node.attrs.get("dilation", (1, 1))
    pads = node.attrs.get("pads", (0, 0, 0, 0))
    if pads == "same":  # TF rule: output is ceil(in / stride) whatever the window
        return _hw(x[0], kh, sh, None), _hw(x[1], kw, sw, None)
    t, b, l, r = resolve_pads(pads, (1, 1), (kh, kw), (sh, sw), (dh, dw))
    oh, ow = _hw(x[0], kh, sh, t + b, dh), _hw(x[1], kw, sw, l + r, dw)
    if (oh is not None and oh < 1) or (ow is not None and ow < 1):
        raise ModelError(f"node '{node.name}': input {x[0]}x{x[1]} is smaller than its {kh}x{kw} window")
    return oh, ow


def _image(node: Node, x: Shape) -> Shape:
    if len(x) != 3:
        raise ModelError(f"node '{node.name}' ({node.op}) needs an image tensor (N, H, W, C); its input is "
                         f"(N, {', '.join('?' if d is None else str(d) for d in x)})")
    return x


def _channels(node: Node, x: Shape, want: int, what: str) -> None:
    if x[-1] is not None and x[-1] != want:
        raise ModelError(f"node '{node.name}': {what} {want} input channels, input has {x[-1]}")


def _conv(node: Node, xs: list[Shape]) -> Shape:
    x = _image(node, xs[0])
    kh, kw, cin, cout = node.weights["kernel"].shape
    _channels(node, x, cin, "kernel expects")
    return (*_window_hw(node, x, kh, kw), cout)


def _depthwise(node: Node, xs: list[Shape]) -> Shape:
    x = _image(node, xs[0])
    kh, kw, c, mult = node.weights["kernel"].shape
    _channels(node, x, c, "depthwise kernel has")
    return (*_window_hw(node, x, kh, kw), c * mult)


def _dense(node: Node, xs: list[Shape]) -> Shape:
    cin, cout = node.weights["kernel"].shape
    _channels(node, xs[0], cin, "Dense kernel expects")
    return (*xs[0][:-1], cout)


def _per_channel(key: str):
    def rule(node: Node, xs: list[Shape]) -> Shape:
        _channels(node, xs[0], node.weights[key].shape[0], f"{node.op} over")
        return xs[0]
    return rule


def _same(node: Node, xs: list[Shape]) -> Shape:
    return xs[0]


def _softmax(node: Node, xs: list[Shape]) -> Shape:
    axis = node.attrs.get("axis", -1)
    if not -len(xs[0]) <= axis <= -1:
        raise ModelError(f"node '{node.name}': softmax axis {axis} outside the non-batch axes of "
                         f"shape {xs[0]} (use -1 .. -{len(xs[0])})")
    return xs[0]


def _pad(node: Node, xs: list[Shape]) -> Shape:
    x = _image(node, xs[0])
    t, b, l, r = node.attrs["pads"]
    return (None if x[0] is None else x[0] + t + b, None if x[1] is None else x[1] + l + r, x[2])


def _add(node: Node, xs: list[Shape]) -> Shape:
    for other in xs[1:]:
        if len(other) != len(xs[0]) or not _compatible(other, xs[0]):
            raise ModelError(f"node '{node.name}': add of shapes {xs[0]} and {other}")
    return _merge(xs)


def _multiply(node: Node, xs: list[Shape]) -> Shape:
    """Equal sizes, or 1 on an axis (broadcast): (H, W, C) * (1, 1, C)."""
    if any(len(s) != len(xs[0]) for s in xs):
        raise ModelError(f"node '{node.name}': multiply of shapes {' and '.join(map(str, xs))} (ranks differ)")
    out = []
    for sizes in zip(*xs):
        big = {d for d in sizes if d != 1}
        known = {d for d in big if d is not None}
        if len(known) > 1:
            raise ModelError(f"node '{node.name}': multiply of shapes {' and '.join(map(str, xs))} "
                             "(sizes differ and are not 1)")
        out.append(known.pop() if known else None if None in big else 1)
    return tuple(out)


def _concat(node: Node, xs: list[Shape]) -> Shape:
    for other in xs[1:]:
        if len(other) != len(xs[0]) or not _compatible(other[:-1], xs[0][:-1]):
            raise ModelError(f"node '{node.name}': concat of maps {xs[0]} and {other} (sizes differ)")
    lead = _merge([s[:-1] + (0,) for s in xs])[:-1]
    last = None if any(s[-1] is None for s in xs) else sum(s[-1] for s in xs)
    return (*lead, last)


def _upsample(node: Node, xs: list[Shape]) -> Shape:
    x = _image(node, xs[0])
    fh, fw = node.attrs["size"]
    return (None if x[0] is None else x[0] * fh, None if x[1] is None else x[1] * fw, x[2])


def _pool(node: Node, xs: list[Shape]) -> Shape:
    x = _image(node, xs[0])
    ph, pw = node.attrs["pool_size"]
    return (*_window_hw(node, x, ph, pw), x[2])


def _global_pool(node: Node, xs: list[Shape]) -> Shape:
    x = _image(node, xs[0])
    return (1, 1, x[2]) if node.attrs.get("keepdims", False) else (x[2],)


def _reshape(node: Node, xs: list[Shape]) -> Shape:
    target = tuple(int(d) for d in node.attrs["shape"])
    if sum(d == -1 for d in target) > 1 or any(d < -1 or d == 0 for d in target):
        raise ModelError(f"node '{node.name}': reshape target {target}: sizes must be >= 1, at most one -1")
    size = None if any(d is None for d in xs[0]) else math.prod(xs[0])
    known = math.prod(d for d in target if d != -1)
    if size is None:
        return tuple(None if d == -1 else d for d in target)
    if (-1 in target and size % known) or (-1 not in target and size != known):
        raise ModelError(f"node '{node.name}': cannot reshape {xs[0]} ({size} values) to {target}")
    return tuple(size // known if d == -1 else d for d in target)


# op -> rule(node, input shapes) -> output shape (one literal: grep finds every op's rule)
SHAPE_RULES = {
    Op.CONV2D: _conv,
    Op.DEPTHWISE_CONV2D: _depthwise,
    Op.DENSE: _dense,
    Op.BATCH_NORM: _per_channel("gamma"),
    Op.RESCALE: _per_channel("scale"),
    **{op: _same for op in ACTIVATION_OPS},
    Op.SOFTMAX: _softmax,
    Op.IDENTITY: _same,
    Op.PAD: _pad,
    Op.ADD: _add,
    Op.MULTIPLY: _multiply,
    Op.CONCAT: _concat,
    Op.UPSAMPLE: _upsample,
    Op.AVG_POOL: _pool,
    Op.MAX_POOL: _pool,
    Op.GLOBAL_AVG_POOL: _global_pool,
    Op.GLOBAL_MAX_POOL: _global_pool,
    Op.RESHAPE: _reshape,
}


def node_shape(node: Node, in_shapes: list[Shape]) -> Shape:
    """Output shape (non-batch) of one node from its input shapes."""
    if node.op == Op.INPUT:
        return tuple(node.attrs["shape"])
    rule = SHAPE_RULES.get(node.op)
    if rule is None:
        raise ModelError(f"node '{node.name}': no shape rule for op {node.op!r}")
    return rule(node, in_shapes)


def _compatible(a: tuple, b: tuple) -> bool:
    return all(p is None or q is None or p == q for p, q in zip(a, b))


def _merge(shapes: list[tuple]) -> tuple:
    return tuple(next((s[i] for s in shapes if s[i] is not None), None) for i in range(len(shapes[0])))


def infer_shapes(graph: Graph, input_hw: tuple[int, int] | dict | None = None) -> dict[str, Shape]:
    """Every node's output shape (no batch axis) for images of size ``input_hw`` (None: declared).

    Args:
        graph: the graph.
        input_hw: (H, W) for every image input, or {input name: (H, W)}, or None. Inputs that
            are not images (rank other than (H, W, C)) have no size to set: giving one for
            them is a `ModelError`.
    """
    shapes: dict[str, Shape] = {}
    for node in graph:
        if node.op == Op.INPUT:
            shape = tuple(node.attrs["shape"])
            hw = input_hw.get(node.name) if isinstance(input_hw, dict) else input_hw
            if hw is not None:
                shape = image_shape(node, shape, hw)
            shapes[node.name] = shape
            continue
        shapes[node.name] = node_shape(node, [shapes[i] for i in node.inputs])
    return shapes


def image_shape(node: Node, shape: Shape, hw: tuple[int, int]) -> Shape:
    """The input shape ``shape`` of ``node`` with its image size set to ``hw`` (checked)."""
    if len(shape) != 3:
        raise ModelError(f"input '{node.name}' has shape {shape}, not an image (H, W, C): it has no "
                         f"size {hw[0]}x{hw[1]} to set")
    h, w, c = shape
    if (h is not None and h != hw[0]) or (w is not None and w != hw[1]):
        raise ModelError(f"input '{node.name}' is fixed at {h}x{w}, asked for {hw[0]}x{hw[1]}")
    return (int(hw[0]), int(hw[1]), c)


def count_params(node: Node) -> int:
    """Number of weight values the node holds (a folded conv: kernel + bias)."""
    return int(sum(w.size for w in node.weights.values()))


def count_macs(node: Node, out_shape: Shape) -> int | None:
    """Multiply-accumulates of a conv/depthwise/dense node (None if a size is unknown; 0 otherwise)."""
    if node.op not in (Op.CONV2D, Op.DEPTHWISE_CONV2D, Op.DENSE):
        return 0
    if any(d is None for d in out_shape):
        return None
    if node.op == Op.DENSE:
        return int(math.prod(out_shape) * node.weights["kernel"].shape[0])
    kh, kw, cin, _ = node.weights["kernel"].shape
    per_output = kh * kw * (cin if node.op == Op.CONV2D else 1)
    return int(out_shape[0] * out_shape[1] * out_shape[2] * per_output)
