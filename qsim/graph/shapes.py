"""Shape inference and cost counting on the IR (no execution).

`infer_shapes` gives every node's output shape (H, W, C) for a given input size (H or W
is None where the size is unknown); it raises `ModelError` for inconsistent graphs (a
kernel whose input channels do not match, an ``add`` of different shapes, a head-C
concat of maps of different sizes). `count_params` / `count_macs` are the per-node costs
``qsim inspect`` reports: MACs count multiply-accumulates of conv/depthwise (a folded
BatchNorm adds none); the elementwise ops count zero MACs.

>>> import numpy as np
>>> from qsim.graph.ir import Graph, Node
>>> g = Graph([Node("x", "input", attrs={"shape": (None, None, 3)}),
...            Node("c", "conv2d", ["x"], {"strides": (2, 2), "pads": "same", "dilation": (1, 1)},
...                 {"kernel": np.zeros((3, 3, 3, 8), np.float32)})], ["c"])
>>> infer_shapes(g, (224, 224))["c"], count_macs(g["c"], infer_shapes(g, (224, 224))["c"])
((112, 112, 8), 2709504)
"""
from __future__ import annotations

from qsim.errors import ModelError
from qsim.graph.ir import Graph, Node, conv_out_size, resolve_pads

Shape = tuple[int | None, int | None, int]


def _conv_hw(node: Node, in_shape: Shape) -> tuple[int | None, int | None]:
    kh, kw = node.weights["kernel"].shape[:2]
    sh, sw = node.attrs.get("strides", (1, 1))
    dh, dw = node.attrs.get("dilation", (1, 1))
    h, w = in_shape[0], in_shape[1]
    pads = node.attrs.get("pads", (0, 0, 0, 0))
    if pads == "same":  # TF rule: output is ceil(in / stride) whatever the kernel
        return (None if h is None else -(-h // sh), None if w is None else -(-w // sw))
    t, b, l, r = resolve_pads(pads, (1, 1), (kh, kw), (sh, sw), (dh, dw))
    oh = None if h is None else conv_out_size(h, kh, sh, t + b, dh)
    ow = None if w is None else conv_out_size(w, kw, sw, l + r, dw)
    if (oh is not None and oh < 1) or (ow is not None and ow < 1):
        raise ModelError(f"node '{node.name}': input {h}x{w} is smaller than its {kh}x{kw} kernel")
    return oh, ow


def node_shape(node: Node, in_shapes: list[Shape]) -> Shape:
    """Output (H, W, C) of one node from its input shapes."""
    op = node.op
    if op == "input":
        return tuple(node.attrs["shape"])  # type: ignore[return-value]
    x = in_shapes[0]
    if op == "conv2d":
        kh, kw, cin, cout = node.weights["kernel"].shape
        if cin != x[2]:
            raise ModelError(f"node '{node.name}': kernel expects {cin} input channels, input has {x[2]}")
        return (*_conv_hw(node, x), cout)
    if op == "depthwise_conv2d":
        kh, kw, c, mult = node.weights["kernel"].shape
        if c != x[2]:
            raise ModelError(f"node '{node.name}': depthwise kernel has {c} channels, input has {x[2]}")
        return (*_conv_hw(node, x), c * mult)
    if op == "batch_norm":
        if node.weights["gamma"].shape[0] != x[2]:
            raise ModelError(f"node '{node.name}': BatchNorm over {node.weights['gamma'].shape[0]} "
                             f"channels, input has {x[2]}")
        return x
    if op in ("relu", "sigmoid"):
        return x
    if op == "identity":
        return x
    if op == "pad":
        t, b, l, r = node.attrs["pads"]
        return (None if x[0] is None else x[0] + t + b, None if x[1] is None else x[1] + l + r, x[2])
    if op == "add":
        for other in in_shapes[1:]:
            if not _compatible(other, x):
                raise ModelError(f"node '{node.name}': add of shapes {x} and {other}")
        return _merge(in_shapes)
    if op == "concat":
        for other in in_shapes[1:]:
            if not _compatible(other[:2], x[:2]):
                raise ModelError(f"node '{node.name}': concat of maps {x} and {other} (sizes differ)")
        hw = _merge([s[:2] + (0,) for s in in_shapes])
        return (hw[0], hw[1], sum(s[2] for s in in_shapes))
    if op == "upsample":
        fh, fw = node.attrs["size"]
        return (None if x[0] is None else x[0] * fh, None if x[1] is None else x[1] * fw, x[2])
    raise ModelError(f"node '{node.name}': no shape rule for op {op!r}")


def _compatible(a: tuple, b: tuple) -> bool:
    return all(p is None or q is None or p == q for p, q in zip(a, b))


def _merge(shapes: list[tuple]) -> tuple:
    return tuple(next((s[i] for s in shapes if s[i] is not None), None) for i in range(len(shapes[0])))


def infer_shapes(graph: Graph, input_hw: tuple[int, int] | dict | None = None) -> dict[str, Shape]:
    """Every node's output (H, W, C) for inputs of size ``input_hw`` (None: declared size).

    Args:
        graph: the graph.
        input_hw: (H, W) for every input, or {input name: (H, W)}, or None.
    """
    shapes: dict[str, Shape] = {}
    for node in graph:
        if node.op == "input":
            h, w, c = node.attrs["shape"]
            hw = input_hw.get(node.name) if isinstance(input_hw, dict) else input_hw
            if hw is not None:
                if (h is not None and h != hw[0]) or (w is not None and w != hw[1]):
                    raise ModelError(f"input '{node.name}' is fixed at {h}x{w}, asked for {hw[0]}x{hw[1]}")
                h, w = int(hw[0]), int(hw[1])
            shapes[node.name] = (h, w, c)
            continue
        shapes[node.name] = node_shape(node, [shapes[i] for i in node.inputs])
    return shapes


def count_params(node: Node) -> int:
    """Number of weight values the node holds (a folded conv: kernel + bias)."""
    return int(sum(w.size for w in node.weights.values()))


def count_macs(node: Node, out_shape: Shape) -> int | None:
    """Multiply-accumulates of a conv/depthwise node (None if the size is unknown; 0 otherwise)."""
    if node.op not in ("conv2d", "depthwise_conv2d"):
        return 0
    if out_shape[0] is None or out_shape[1] is None:
        return None
    kh, kw, cin, _ = node.weights["kernel"].shape
    per_output = kh * kw * (cin if node.op == "conv2d" else 1)
    return int(out_shape[0] * out_shape[1] * out_shape[2] * per_output)
