"""Quantize a qsim `Graph` into KPU layers the way nncase 1.x does (``k210-kpu.md`` §2).

Recipe (uint8 asymmetric activations, per-channel symmetric weights):

* Activation quant params from calibrated [min, max] (`quant_param`): the range is extended
  to contain 0 (a zero-width range becomes 0.1 wide), ``scale = (max - min)/255``,
  ``zero_point = round(-min*255/(max - min))`` (half away from zero). Quantize
  ``q = clamp(rint(v/scale + zp), 0, 255)`` (ties to even, as ``lrintf``).
* Weights per output channel o: ``r = max(|w_o|max, 0.01)``, ``s_w = 2r/255``, zero point 128,
  ``q = clamp(rint(w/s_w + 128), 0, 255)``.
* Conv registers: ``arg_x = -128``, ``arg_w = -z_x``, ``arg_add = K^2*128*z_x``, shifts 0,
  ``pad_value = z_x`` (so A = sum (X - z_x)(W - 128) and padding contributes 0).
* The unit of B, ``s_act_in = s_y / 2^k``: halved from the output scale while it stays
  >= ``max(s_x*max s_w/(2^m - 1), max|b|/(2^31 - 1))`` with
  ``m = min(21, 36 - (17 + ceil(log2(G + K^2))))`` (G = IC, or 1 for depthwise).
* BN registers: ``(norm_mul, norm_shift) = fixed_mul(s_x*s_w[o]/s_act_in, 22 bits, shift <= 15)``,
  ``norm_add = rint(b_o/s_act_in)``.
* Activation table: segment 0 = {x_start -2^35, y_mul 0, shift 0, bias 0}; one segment per
  linear piece of the fused activation over the representable output domain
  ``[(0 - z_y)s_y, (255 - z_y)s_y]`` clipped to the activation's clamp range (ReLU /
  ReLU6: one piece from 0; leaky ReLU: two pieces; linear: one piece from the domain's start):
  ``x_start = rint(start/s_act_in)``, ``(y_mul, shift) = fixed_mul(slope*s_act_in/s_y, 16 bits,
  shift <= 43)``, ``bias = clamp(rint(f(start)/s_y + z_y), 0, 255)``; unused segments are
  parked at the top of the int36 range with bias 255. This is the table ncc 0.2 emits (every
  ReLU/linear table of slim-320.kmodel has exactly this shape). nncase 1.x instead runs its
  15-piece regression even on the identity, giving 15 collinear segments whose biases are each
  rounded (so its codes can differ by one LSB near segment starts); that split depends on float
  noise in its merge order and is not reproduced. A fused sigmoid gets nncase's fitted table:
  `piecewise_fit` (2048 samples over the conv output's representable range, 15 pieces) with
  s_act_in derived from the conv output's scale.
* Stride: a KPU conv is stride 1 "same"; a stride-2 normal conv on an even map whose sampling
  grid starts at (0, 0) subsamples in its pool stage (``left_top_2_s2``; ``right_top_2_s2``
  for a (0, 1) start); every other stride/offset, and every stride-2 depthwise conv (the
  KPU never pools a depthwise layer), runs at full resolution and is subsampled exactly on
  the CPU (nncase moves it past the next 1x1 conv: the same numbers).
* ``add``: ``add_mode="kpu"`` (default, nncase 1.x ``add_to_conv2d``): both operands are
  requantized on the CPU to the concat's common param (float: ``rint(((q - z)s)/s_c + z_c)``),
  then a 1x1 KPU conv with identity weights (which quantize to code 255 = 0.996, exactly as
  the recipe does); ``"cpu"``: dequantize, add in float, quantize.
* Every other op (concat, upsample, pad, unfused activations) runs on the CPU in float between
  a dequantize and a quantize with the node's calibrated param.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from qsim.errors import ModelError, PlanError
from qsim.executors.float_exec import run as float_run
from qsim.graph.ir import Graph, Node, resolve_pads
from qsim.graph.shapes import infer_shapes
from qsim.k210.fields import ActTable, BatchNorm, LayerArgs, encode_act, encode_bn, encode_layer
from qsim.k210.kpu import KpuLayer, pool_output_size
from qsim.k210.layout import layout_registers

ADD_MODES = ("kpu", "cpu")


@dataclass(frozen=True)
class QParam:
    """uint8 affine quantization: real = (q - zero_point) * scale."""

    scale: float
    zero_point: int

    def quantize(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 codes, unclamped int64 codes) of float `x`: rint(x/scale + zp) clamped to 0..255."""
        raw = np.rint(np.asarray(x, np.float64) / self.scale + self.zero_point)
        raw = np.nan_to_num(raw, nan=0.0, posinf=2**40, neginf=-2**40).astype(np.int64)
        return np.clip(raw, 0, 255).astype(np.uint8), raw

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return ((np.asarray(q, np.float64) - self.zero_point) * self.scale).astype(np.float32)

    @property
    def lsb(self) -> float:
        """The value of one code step (`qsim.trace.CodeFormat`)."""
        return self.scale

    def __str__(self) -> str:
        """``u8(s=0.02353, z=0)``: how reports print it."""
        return f"u8(s={self.scale:.4g}, z={self.zero_point})"


def quant_param(lo: float, hi: float) -> QParam:
    """nncase's uint8 param for a calibrated range (§2.2).

    >>> quant_param(0.0, 6.0), quant_param(-1.0, 1.0).zero_point
    (QParam(scale=0.023529411764705882, zero_point=0), 128)
    """
    lo, hi = float(min(lo, 0.0)), float(max(hi, 0.0))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise PlanError(f"calibrated range [{lo}, {hi}] is not finite")
    if hi - lo == 0:
        hi = lo + 0.1
    scale = (hi - lo) / 255.0
    z = -lo * 255.0 / (hi - lo)
    zero = int(math.floor(z + 0.5)) if z >= 0 else -int(math.floor(-z + 0.5))  # C round: half away
    return QParam(scale, min(max(zero, 0), 255))


def fixed_mul(value: float, max_bits: int, max_shift: int, signed: bool = True) -> tuple[int, int]:
    """(mul, shift) with mul / 2**shift ~= value, |mul| < 2**bits (§2.6).

    >>> fixed_mul(0.75, 22, 15), fixed_mul(1000.0, 22, 15)
    ((24576, 15), (2048000, 11))
    """
    bits = max_bits - 1 if signed else max_bits
    if value == 0:
        return 0, 0
    m, e = math.frexp(value)
    if abs(value) > 1:
        shift = min(max_shift, bits - e)
        mul = m * 2.0 ** (shift + e)
    else:
        t = min(max_shift + e, bits)
        mul = m * 2.0 ** t
        shift = t - e
    return int(np.rint(mul)), int(shift)


def quantize_weights(kernel_oikk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric uint8 weights (zero point 128) and their scales (§2.3)."""
    w = np.asarray(kernel_oikk, np.float64)
    if not np.all(np.isfinite(w)):
        raise ModelError(f"{int(np.sum(~np.isfinite(w)))} non-finite weight(s)")
    r = np.maximum(np.abs(w).reshape(w.shape[0], -1).max(axis=1), 0.01)
    s_w = 2.0 * r / 255.0
    q = np.clip(np.rint(w / s_w[:, None, None, None] + 128.0), 0, 255).astype(np.uint8)
    return q, s_w


def _act_pieces(activation: tuple[str, float | None, float], lo: float, hi: float):
    """Linear pieces (start, slope, f(start)) of the fused activation on [lo, hi]."""
    kind, max_value, slope_neg = activation
    if kind == "linear":
        return [(lo, 1.0, lo)]
    if max_value is not None:
        hi = min(hi, float(max_value))
    if slope_neg == 0.0:
        start = max(lo, 0.0)
        return [(start, 1.0, start)]
    if lo < 0.0 < hi:
        return [(lo, slope_neg, slope_neg * lo), (0.0, 1.0, 0.0)]
    return [(lo, 1.0 if lo >= 0 else slope_neg, lo if lo >= 0 else slope_neg * lo)]


def piecewise_fit(f, lo: float, hi: float, pieces: int = 15, samples: int = 2048):
    """nncase's piecewise regression (§2.7): chords of `samples` points of `f` on [lo, hi],
    repeatedly merging the adjacent pair whose slopes differ least (the merged piece joins the
    outer endpoints) until `pieces` remain. Returns [(start, slope, f(start))].

    >>> [(round(a, 3), round(b, 3)) for a, b, _ in piecewise_fit(np.abs, -1.0, 1.0, pieces=2, samples=5)]
    [(-1.0, -1.0), (0.0, 1.0)]
    """
    xs = np.linspace(lo, hi, samples)
    ys = np.asarray(f(xs), np.float64)
    keep = np.arange(samples)
    while keep.size - 1 > pieces:
        px, py = xs[keep], ys[keep]
        slopes = np.diff(py) / np.diff(px)
        j = int(np.argmin(np.abs(np.diff(slopes))))  # pieces j and j+1 merge: drop breakpoint j+1
        keep = np.delete(keep, j + 1)
    px, py = xs[keep], ys[keep]
    slopes = np.diff(py) / np.diff(px)
    return [(float(px[i]), float(slopes[i]), float(py[i])) for i in range(keep.size - 1)]


def act_table(activation, s_act_in: float, out_q: QParam, y_q: QParam | None = None) -> ActTable:
    """The 16-segment table of the fused activation (§2.7, see module doc).

    `y_q` is the param of the activation's input (the conv output); it defaults to `out_q`
    (ReLU-type clamps, whose input and output share one grid). A ``("fit", f)`` activation is
    fitted with `piecewise_fit` over y's representable range.
    """
    y_q = out_q if y_q is None else y_q
    lo = (0 - y_q.zero_point) * y_q.scale
    hi = (255 - y_q.zero_point) * y_q.scale
    if activation[0] == "fit":
        pieces = piecewise_fit(activation[1], lo, hi)
    else:
        pieces = _act_pieces(activation, lo, hi)
    xs = [-(1 << 35)]
    ym, sh, bias = [0], [0], [0]
    # B is an int36 ALU value: a piece starting outside (-2**35, 2**35 - 16) is moved to the
    # range's edge (its bias re-evaluated there), because its start cannot be reached anyway. A
    # tiny B unit (s_act_in) puts the domain's start far below -2**35 (issue 17 #1). Starts that
    # round to one code keep the last piece: the earlier ones would cover no B value.
    x_lo, x_hi = -(1 << 35) + 1, (1 << 35) - 16
    for start, slope, f_start in pieces:
        x_raw = int(np.rint(start / s_act_in))
        x0 = min(max(x_raw, x_lo), x_hi)
        if x0 == x_hi and len(xs) > 1:
            break  # this piece and all later ones start above every reachable B
        f_x0 = f_start if x0 == x_raw else f_start + slope * (x0 * s_act_in - start)
        mul, shift = fixed_mul(slope * s_act_in / out_q.scale, 16, 43)
        while len(xs) > 1 and xs[-1] >= x0:
            for v in (xs, ym, sh, bias):
                v.pop()
        xs.append(x0)
        ym.append(mul)
        sh.append(shift)
        bias.append(int(min(max(np.rint(f_x0 / out_q.scale + out_q.zero_point), 0), 255)))
    if any(b <= a for a, b in zip(xs, xs[1:])):
        raise PlanError(f"activation segments do not start in increasing order: {xs}")
    n_park = 16 - len(xs)
    for i in range(n_park):
        xs.append((1 << 35) - n_park + i)
        ym.append(0)
        sh.append(0)
        bias.append(255)
    return ActTable(*(np.array(v, np.int64) for v in (xs, ym, sh, bias)))


def s_act_in_for(s_x: float, s_w: np.ndarray, bias: np.ndarray, s_y: float, g: int, k: int) -> float:
    x_bits = 17 + math.ceil(math.log2(g + k * k))
    m = min(21, 36 - x_bits)
    min_s = max(s_x * float(np.max(s_w)) / (2 ** m - 1), float(np.max(np.abs(bias))) / (2 ** 31 - 1))
    s = s_y
    while s / 2 >= min_s:
        s /= 2
    return s


def make_kpu_layer(name: str, kernel_oikk: np.ndarray, bias: np.ndarray, depthwise: bool, in_q: QParam,
                   out_q: QParam, activation, in_hw: tuple[int, int], pool_type: int = 0,
                   notes: list[str] | None = None, y_q: QParam | None = None) -> KpuLayer:
    """A `KpuLayer` whose register words are encoded and decoded back (so every field fits).

    `out_q` is the layer's output param; `y_q` the conv output's (before a fitted activation such
    as a sigmoid; defaults to `out_q`).
    """
    oc, icg, k, _ = kernel_oikk.shape
    ic = oc if depthwise else icg
    wq, s_w = quantize_weights(kernel_oikk)
    bias = np.zeros(oc) if bias is None else np.asarray(bias, np.float64)
    g = 1 if depthwise else ic
    y_q = out_q if y_q is None else y_q
    s_ai = s_act_in_for(in_q.scale, s_w, bias, y_q.scale, g, k)
    muls, shifts = zip(*(fixed_mul(in_q.scale * sw / s_ai, 22, 15) for sw in s_w))
    bn = BatchNorm(np.array(muls, np.int64), np.array(shifts, np.int64),
                   np.rint(bias / s_ai).astype(np.int64))
    table = act_table(activation, s_ai, out_q, y_q)
    h, w = in_hw
    oh, ow = pool_output_size(h, pool_type), pool_output_size(w, pool_type)
    # weight loads (§1.3): whole output channels per 30 KiB load; a depthwise layer loads at once
    per_load = oc if depthwise else min(oc, max(30720 // (k * k * ic), 1))
    loads = -(-oc // per_load)
    if loads > 64:
        raise PlanError(f"layer {name!r}: {loads} weight loads of {per_load} channels; the 6-bit load_time "
                        "field allows 64 (k210-kpu.md §1.3)")
    in_regs = layout_registers(ic, h, w)
    out_regs = layout_registers(oc, oh, ow)
    args = LayerArgs(depth_wise_layer=int(depthwise), i_ch_num=ic - 1, o_ch_num=oc - 1, o_ch_num_coef=per_load - 1,
                     i_row_wid=w - 1, i_col_high=h - 1, o_row_wid=ow - 1, o_col_high=oh - 1,
                     kernel_type=0 if k == 1 else 1, pool_type=pool_type, load_para=1, dma_burst_size=15,
                     pad_value=in_q.zero_point, load_coor=1, load_time=loads - 1,
                     para_size=per_load * k * k * (1 if depthwise else ic), load_act=1,
                     channel_switch_addr=in_regs[0], row_switch_addr=in_regs[1], coef_group=in_regs[2],
                     wb_channel_switch_addr=out_regs[0], wb_row_switch_addr=out_regs[1], wb_group=out_regs[2],
                     arg_x=-128, arg_w=-in_q.zero_point, arg_add=k * k * 128 * in_q.zero_point,
                     channel_byte_num=min(ow * oh - 1, 0xFFFF), dma_total_byte=ow * oh * oc - 1)
    # the register words must hold every value: round-trip through the encoders. Map sizes
    # beyond the 10/9-bit size fields (W <= 1024, H <= 512) cannot run on a real KPU without
    # tiling; they are simulated anyway (the arithmetic does not depend on them) and noted.
    geometry = {"i_row_wid": 1023, "i_col_high": 511, "o_row_wid": 1023, "o_col_high": 511,
                "channel_switch_addr": (1 << 15) - 1, "wb_channel_switch_addr": (1 << 15) - 1,
                "row_switch_addr": 15, "wb_row_switch_addr": 15}
    too_big = [f"{f}={getattr(args, f)}" for f, top in geometry.items() if getattr(args, f) > top]
    if notes is not None and too_big:
        notes.append(f"{name}: {h}x{w} map exceeds the KPU size registers ({', '.join(too_big)}); "
                     "simulated as if untiled")
    probe = LayerArgs(**{**vars(args), **{f: min(getattr(args, f), top) for f, top in geometry.items()}})
    try:
        encode_layer(probe)
        encode_bn(bn)
        encode_act(table)
    except Exception as exc:
        raise PlanError(f"layer {name!r}: {exc}") from exc
    return KpuLayer(args, bn, table, wq, name=name)


# ---------------------------------------------------------------- the quantized program
@dataclass
class QStep:
    """One executable step: a KPU layer or a CPU op, producing the graph value `name`."""

    name: str  # the graph node whose value this step produces (after fused activations)
    kind: str  # "input" | "kpu" | "cpu" | "add_kpu"
    inputs: list[str]
    out_q: QParam
    node: Node | None = None  # graph node (CPU float ops)
    layer: KpuLayer | None = None
    subsample: tuple[int, int, int] | None = None  # (stride, row offset, col offset), done on the CPU
    concat_q: QParam | None = None  # add_kpu: common param of the two operands
    also_names: list[str] = field(default_factory=list)  # graph nodes with the same value (conv before a fused act)


@dataclass
class KpuProgram:
    graph: Graph
    input_hw: tuple[int, int]
    steps: list[QStep]
    params: dict[str, QParam]
    add_mode: str = "kpu"
    notes: list[str] = field(default_factory=list)


def calibrate(graph: Graph, images) -> dict[str, tuple[float, float]]:
    """Per-node float [min, max] over calibration images (NHWC batch or a list of HWC/NHWC arrays)."""
    batches = images if isinstance(images, (list, tuple)) else [images]
    ranges: dict[str, tuple[float, float]] = {}
    for b in batches:
        trace = float_run(graph, b)
        for name, v in trace.values.items():
            lo, hi = float(np.min(v)), float(np.max(v))
            if name in ranges:
                lo, hi = min(lo, ranges[name][0]), max(hi, ranges[name][1])
            ranges[name] = (lo, hi)
    return ranges


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _fused_activation(graph: Graph, node: Node):
    """(activation node or None, activation) fused after `node`: ``("relu", max, slope)``,
    ``("fit", f)`` (sigmoid: fitted table) or ``("linear", None, 0.0)``."""
    cons = graph.consumers(node.name)
    if len(cons) != 1 or node.name in graph.outputs:
        return None, ("linear", None, 0.0)
    if cons[0].op == "relu" and float(cons[0].attrs.get("threshold", 0.0) or 0.0) == 0.0:
        a = cons[0].attrs
        return cons[0], ("relu", a.get("max_value"), float(a.get("negative_slope", 0.0) or 0.0))
    if cons[0].op == "sigmoid":
        return cons[0], ("fit", _sigmoid)
    return None, ("linear", None, 0.0)


def _kpu_geometry(node: Node, in_hw: tuple[int, int]):
    """(ok, stride, offset_y, offset_x, why) for running `node` as a KPU conv + subsampling."""
    kh, kw = node.weights["kernel"].shape[:2]
    sh, sw = (int(v) for v in node.attrs.get("strides", (1, 1)))
    dil = tuple(node.attrs.get("dilation", (1, 1)))
    if node.op == "depthwise_conv2d" and node.weights["kernel"].shape[3] != 1:
        return False, 0, 0, 0, "depth multiplier != 1"
    if kh != kw or kh not in (1, 3) or dil != (1, 1) or sh != sw or sh not in (1, 2):
        return False, 0, 0, 0, f"kernel {kh}x{kw}, stride {sh}x{sw}, dilation {dil}"
    t, b, l, r = resolve_pads(node.attrs.get("pads", (0, 0, 0, 0)), in_hw, (kh, kw), (sh, sw))
    p = (kh - 1) // 2
    oy, ox = p - t, p - l
    out_h = (in_hw[0] + t + b - kh) // sh + 1
    out_w = (in_hw[1] + l + r - kw) // sw + 1
    if oy < 0 or ox < 0 or (out_h - 1) * sh + oy > in_hw[0] - 1 or (out_w - 1) * sw + ox > in_hw[1] - 1:
        return False, 0, 0, 0, f"pads {(t, b, l, r)} exceed the KPU's built-in {p}-pixel border"
    return True, sh, oy, ox, ""


def quantize_graph(graph: Graph, calibration, input_hw: tuple[int, int] | None = None,
                   add_mode: str = "kpu") -> KpuProgram:
    """Quantize `graph` for the KPU from calibration images (or a ``{node: (min, max)}`` dict).

    Args:
        graph: the float graph (BN folded; `qsim.load_model`).
        calibration: NHWC float batch / list of batches preprocessed for the model, or ranges.
        input_hw: the input size the program is built for (default: the calibration images').
        add_mode: ``"kpu"`` (nncase 1.x add_to_conv2d) or ``"cpu"``.
    """
    if add_mode not in ADD_MODES:
        raise PlanError(f"add_mode must be one of {ADD_MODES}, got {add_mode!r}")
    if isinstance(calibration, dict):
        ranges = dict(calibration)
        if input_hw is None:
            raise PlanError("quantize_graph with precomputed ranges needs input_hw")
    else:
        first = calibration[0] if isinstance(calibration, (list, tuple)) else calibration
        arr = np.asarray(first)
        if input_hw is None:
            input_hw = tuple(arr.shape[-3:-1])
        ranges = calibrate(graph, calibration)
    missing = [n.name for n in graph if n.name not in ranges]
    if missing:
        raise PlanError(f"no calibrated range for node(s) {missing[:5]}")
    shapes = infer_shapes(graph, tuple(input_hw))
    params = {name: quant_param(*rng) for name, rng in ranges.items()}
    steps: list[QStep] = []
    skip: set[str] = set()
    notes: list[str] = []
    for node in graph:
        if node.name in skip:
            continue
        if node.op == "input":
            steps.append(QStep(node.name, "input", [], params[node.name], node=node))
            continue
        if node.op in ("conv2d", "depthwise_conv2d"):
            src = node.inputs[0]
            h, w, _ = shapes[src]
            ok, stride, oy, ox, why = _kpu_geometry(node, (h, w))
            if ok:
                act_node, activation = _fused_activation(graph, node)
                out_name = act_node.name if act_node is not None else node.name
                if act_node is not None:
                    skip.add(act_node.name)
                depthwise = node.op == "depthwise_conv2d"
                kern = node.weights["kernel"]
                kern = kern.transpose(2, 3, 0, 1) if depthwise else kern.transpose(3, 2, 0, 1)
                pool = 0
                sub = None
                if stride == 2 and not depthwise and h % 2 == 0 and w % 2 == 0 and (oy, ox) in ((0, 0), (0, 1)):
                    pool = 5 if ox == 0 else 6
                elif stride != 1 or (oy, ox) != (0, 0):
                    sub = (stride, oy, ox)
                y_q = params[node.name] if activation[0] == "fit" else None  # fitted tables read the conv output grid
                layer = make_kpu_layer(out_name, kern, node.weights.get("bias"), depthwise, params[src],
                                       params[out_name], activation, (h, w), pool, notes, y_q)
                steps.append(QStep(out_name, "kpu", [src], params[out_name], node=node, layer=layer,
                                   subsample=sub, also_names=[node.name] if act_node is not None else []))
                continue
            notes.append(f"{node.name}: on the CPU in float ({why})")
        if node.op == "add" and add_mode == "kpu" and len(node.inputs) == 2:
            a, b = node.inputs
            c = shapes[node.name][2]
            lo = min(ranges[a][0], ranges[b][0])
            hi = max(ranges[a][1], ranges[b][1])
            cq = quant_param(lo, hi)
            act_node, activation = _fused_activation(graph, node)
            out_name = act_node.name if act_node is not None else node.name
            if act_node is not None:
                skip.add(act_node.name)
            eye = np.zeros((c, 2 * c, 1, 1))
            eye[np.arange(c), np.arange(c), 0, 0] = 1.0
            eye[np.arange(c), c + np.arange(c), 0, 0] = 1.0
            h, w, _ = shapes[node.name]
            y_q = params[node.name] if activation[0] == "fit" else None
            layer = make_kpu_layer(out_name, eye, None, False, cq, params[out_name], activation, (h, w), 0, notes, y_q)
            steps.append(QStep(out_name, "add_kpu", [a, b], params[out_name], node=node, layer=layer, concat_q=cq,
                               also_names=[node.name] if act_node is not None else []))
            continue
        steps.append(QStep(node.name, "cpu", list(node.inputs), params[node.name], node=node))
    return KpuProgram(graph, tuple(input_hw), steps, params, add_mode, notes)
