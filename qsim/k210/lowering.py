"""Lower a qsim `Graph` to K210 steps the way nncase 1.x does (shapes only; ``k210-kpu.md`` §1.8, §2.1).

Each step is a KPU layer or a CPU op, with its KPU-side shapes (C, H, W):

* conv / depthwise conv with a square 1x1 or 3x3 kernel, dilation 1, stride 1 or 2 -> one
  KPU layer; ReLU/ReLU6 (and any other single-consumer activation) is fused into it.
* stride 2, normal conv: computed at full resolution, subsampled by the pool stage
  (``left_top_2_s2``); an odd input is first padded to even on the CPU (nncase's pad).
* stride 2, depthwise conv: the KPU never pools a depthwise layer; the depthwise runs at full
  resolution and its subsampling moves into the following 1x1 stride-1 normal conv
  (``strided_slice_motion``), or, if there is no such sole consumer, is done on the CPU.
* TensorFlow's asymmetric "same" pads of stride-2 convs (sampling grid starting at (1, 1))
  cannot use the pool stage: the layer's full-resolution output goes to the CPU for an
  exact strided slice (load with ``symmetric_pads=True`` for the K210's own padding).
* ``add``: ``add_mode="kpu"`` (default, nncase 1.x ``add_to_conv2d``): CPU concat of the two
  operands, then a 1x1 KPU conv with identity weights (input 2C channels); ``"cpu"``: a CPU
  op (download, add, upload).
* concat, upsample, pad, other kernels or strides: CPU ops; so are dense, rescale, the
  pools, reshape and multiply (`LOWERABLE_MCU_OPS`; a (C,) or (T, C) tensor as a (C, T, 1) map).

Other layers' limits are reported per step: nncase's 4 <= H <= 256, 4 <= W <= 512, C <= 1024
and the register limits (W <= 960 through row_len <= 15, H <= 512, C <= 1024).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from qsim.errors import ModelError
from qsim.graph.ir import Graph, Node
from qsim.graph.shapes import infer_shapes
from qsim.k210.layout import fmap_bytes, row_layout

ADD_MODES = ("kpu", "cpu")
_ACTIVATIONS = ("relu", "sigmoid")


@dataclass
class Step:
    """One lowered operation. Shapes are (C, H, W) as the KPU sees them."""

    name: str  # graph node it comes from (for an add: the add node)
    kind: str  # "kpu" or "cpu"
    op: str  # conv2d | depthwise_conv2d | add_conv | input | add | concat | upsample | pad | subsample | even_pad | conv_cpu
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: int = 0
    pool_type: int = 0
    depthwise: bool = False
    macs: int = 0
    fused: list[str] = field(default_factory=list)  # activation nodes fused into the layer
    graph_output: str = ""  # graph node whose value this step produces (after fused activations)
    limits: list[str] = field(default_factory=list)

    @property
    def in_bytes(self) -> int:
        c, h, w = self.in_shape
        return fmap_bytes(w, h, c)

    @property
    def out_bytes(self) -> int:
        c, h, w = self.out_shape
        return fmap_bytes(w, h, c)


def kpu_limits(shape: tuple[int, int, int], out_channels: int) -> list[str]:
    """Which nncase / register limits an input map (C, H, W) of a KPU layer violates."""
    c, h, w = shape
    bad = []
    if not 4 <= h <= 256:
        bad.append(f"height {h} outside nncase's 4..256")
    if not 4 <= w <= 512:
        bad.append(f"width {w} outside nncase's 4..512")
    if c > 1024 or out_channels > 1024:
        bad.append(f"channels {c}->{out_channels} above 1024")
    if row_layout(w).row_len > 15:
        bad.append(f"width {w} needs {row_layout(w).row_len} lines per row (register max 15)")
    return bad


def _kernel(node: Node) -> tuple[int, int]:
    kh, kw = node.weights["kernel"].shape[:2]
    return int(kh), int(kw)


# ops this lowering handles (KPU convs and adds, the rest on the K210's CPU over (C, H, W) maps;
# tanh, hard_sigmoid, hard_swish, swish and softmax are never fused: CPU ops)
LOWERABLE_OPS = ("input", "conv2d", "depthwise_conv2d", "batch_norm", "relu", "sigmoid", "tanh", "hard_sigmoid",
                 "hard_swish", "swish", "softmax", "pad", "add", "concat",
                 "upsample", "identity")
# the MCU layers: CPU ops (float on the dequantized maps; a (C,) or (T, C) tensor is a (C, T, 1) map)
LOWERABLE_MCU_OPS = ("dense", "rescale", "avg_pool", "max_pool", "global_avg_pool", "global_max_pool", "reshape",
                     "multiply")


def lower(graph: Graph, input_hw: tuple[int, int], add_mode: str = "kpu") -> list[Step]:
    """The K210 steps of `graph` for inputs of size `input_hw` (H, W)."""
    if add_mode not in ADD_MODES:
        raise ModelError(f"add_mode must be one of {ADD_MODES}, got {add_mode!r}")
    lowerable = LOWERABLE_OPS + LOWERABLE_MCU_OPS
    unsupported = sorted({node.op for node in graph if node.op not in lowerable})
    if unsupported:
        first = next(node for node in graph if node.op in unsupported)
        raise ModelError(f"{graph.source or graph.name}: node '{first.name}' ({first.op}): the K210 backend "
                         f"does not lower {', '.join(unsupported)} yet; it runs {', '.join(lowerable)}")
    shapes = infer_shapes(graph, tuple(input_hw))

    def chw(name: str) -> tuple[int, int, int]:
        shape = tuple(int(d) for d in shapes[name])
        if len(shape) != 3:  # features (C,) or a sequence (T, C) after a global pool / reshape / dense
            return (shape[-1], math.prod(shape[:-1]), 1)
        h, w, c = shape
        return (c, h, w)

    steps: list[Step] = []
    fused_into: dict[str, Step] = {}  # activation node -> the KPU step it is fused into
    pending_subsample: dict[str, tuple] = {}  # node -> (full-res shape awaiting /2, grid starts at 0)
    for node in graph:
        consumers = graph.consumers(node.name)
        if node.op == "input":
            steps.append(Step(node.name, "cpu", "input", chw(node.name), chw(node.name), graph_output=node.name))
            continue
        if node.op in _ACTIVATIONS:
            src = node.inputs[0]
            producer = fused_into.get(src)
            if producer is not None and len(graph.consumers(src)) == 1:
                producer.fused.append(node.name)
                producer.graph_output = node.name
                fused_into[node.name] = producer
                if src in pending_subsample:
                    pending_subsample[node.name] = pending_subsample.pop(src)
                continue
            steps.append(Step(node.name, "cpu", node.op, chw(src), chw(node.name), graph_output=node.name))
            continue
        if node.op in ("conv2d", "depthwise_conv2d"):
            src = node.inputs[0]
            from qsim.k210.quantize import _kpu_geometry

            kh, _ = _kernel(node)
            k = kh
            depthwise = node.op == "depthwise_conv2d"
            in_shape = chw(src)
            oc = chw(node.name)[0]
            ok, stride, oy, ox, why = _kpu_geometry(node, in_shape[1:])
            if not ok:
                steps.append(Step(node.name, "cpu", "conv_cpu", in_shape, chw(node.name), kernel=k,
                                  depthwise=depthwise, graph_output=node.name, limits=[f"not a KPU conv: {why}"]))
                fused_into[node.name] = steps[-1]
                continue
            sh = stride
            offsets_zero = (oy, ox) == (0, 0)
            c, h, w = in_shape
            pool = 0
            if src in pending_subsample and not depthwise and k == 1 and sh == 1 and pending_subsample[src][1]:
                in_shape = pending_subsample.pop(src)[0]  # full-resolution map; this layer subsamples
                c, h, w = in_shape
                pool = 5
                out = (oc, h // 2, w // 2)
            elif sh == 2 and not offsets_zero:  # full resolution on the KPU, subsampled on the CPU
                out = (oc, h, w)
            elif sh == 2:
                he, we = h + h % 2, w + w % 2
                if (he, we) != (h, w):
                    steps.append(Step(node.name + "/even_pad", "cpu", "even_pad", in_shape, (c, he, we)))
                in_shape = (c, he, we)
                if depthwise:
                    out = in_shape  # full resolution; subsampled later
                else:
                    pool = 5
                    out = (oc, he // 2, we // 2)
            else:
                out = (oc, h, w)
            if src in pending_subsample:  # a consumer that cannot absorb the subsampling
                full, _ = pending_subsample.pop(src)
                steps.append(Step(src + "/subsample", "cpu", "subsample", full, chw(src)))
            macs = (in_shape[1] * in_shape[2]) * k * k * oc * (1 if depthwise else in_shape[0])
            step = Step(node.name, "kpu", "depthwise_conv2d" if depthwise else "conv2d", in_shape, out, kernel=k,
                        pool_type=pool, depthwise=depthwise, macs=macs, graph_output=node.name,
                        limits=kpu_limits(in_shape, oc))
            steps.append(step)
            fused_into[node.name] = step
            if depthwise and sh == 2:
                pending_subsample[node.name] = (out, offsets_zero)
            elif sh == 2 and not offsets_zero:
                steps.append(Step(node.name + "/subsample", "cpu", "subsample", out, chw(node.name)))
            continue
        # everything else: make pending subsamplings explicit first
        for src in node.inputs:
            if src in pending_subsample:
                full, _ = pending_subsample.pop(src)
                steps.append(Step(src + "/subsample", "cpu", "subsample", full, chw(src)))
        if node.op == "add" and add_mode == "kpu" and len(node.inputs) == 2:
            c, h, w = chw(node.name)
            steps.append(Step(node.name + "/concat", "cpu", "concat", (2 * c, h, w), (2 * c, h, w)))
            step = Step(node.name, "kpu", "add_conv", (2 * c, h, w), (c, h, w), kernel=1, macs=h * w * 2 * c * c,
                        graph_output=node.name, limits=kpu_limits((2 * c, h, w), c))
            steps.append(step)
            fused_into[node.name] = step
            continue
        in_shape = chw(node.inputs[0]) if node.inputs else chw(node.name)
        step = Step(node.name, "cpu", node.op, in_shape, chw(node.name), graph_output=node.name)
        steps.append(step)
        fused_into[node.name] = step
        del consumers
    return steps
