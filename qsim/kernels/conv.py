"""Integer conv2d, depthwise conv2d and pointwise (1x1) convolution.

Contract
--------
* Inputs: activation codes ``x`` (N,H,W,Cin) of ``in_fmt``; weight codes ``w``
  (KH,KW,Cin,Cout), or (KH,KW,C,mult) for depthwise (output channel ``c*mult + m`` reads
  input channel ``c``); bias codes (Cout,) of ``b_fmt`` or None. Padding is zeros
  (code 0 is the value 0 in every format).
* Accumulator: signed ``acc_bits`` wide with ``acc_frac = in_frac + w_frac`` fraction
  bits. The bias is aligned by an exact left shift of ``acc_frac - b_frac`` bits (the plan
  guarantees ``b_frac <= acc_frac``).
* Exact sum first: with ``bound = max|x| * max_co sum|w[..., co]|`` (``max|x|`` from
  ``in_fmt``, or from the data when that is not enough: a rigorous bound on every partial
  sum), the sum runs in float64 when ``bound < 2**53`` (every partial sum is then an
  exactly representable integer, so any summation order gives the exact result), else in
  int64 (Numba) when ``bound + |bias| < 2**62``, else a `PlanError` (narrow the formats).
  Float64 sums are computed where memory traffic is least: inside the tail pass
  (`qsim.kernels.tail`) for depthwise and for convs with at most `DIRECT_MAX_K` taps x input
  channels (1x1 narrow layers), by BLAS (im2col for KxK, e.g. the 27-tap RGB first layer)
  otherwise.
* Accumulator width (site ``acc``): ``acc_saturation="final"`` applies
  `qsim.fixed.accumulate` to the exact sum (``wrap`` = modulo ``2**acc_bits`` = any
  running two's-complement sum; ``saturate`` = clamp the final sum).
  ``"per_step"`` with ``saturate`` clamps after every addition in the order bias, then
  kernel row, column, input channel (`qsim.kernels.ref.conv` spells it out); the counter
  then sees every partial sum, like `qsim.fixed.saturating_sum`.
* Requantization (site ``requant``): one rounding from ``acc_frac`` to ``out_fmt`` with the
  plan's rounding and overflow: the compiled `qsim.kernels.tail` (which also applies the
  accumulator width, the bias and an optional fused ReLU in the same pass), or
  `qsim.fixed.accumulate` + `qsim.fixed.rescale` when the output has more fraction bits
  than the accumulator.
* Results do not depend on thread count or batch size: every path is exact integer
  arithmetic, and per-step saturation runs each output's sum sequentially.
"""
from __future__ import annotations

from enum import Enum

import numpy as np
from numba import njit, prange

from qsim.errors import InputError, PlanError
from qsim.fixed.cast import accumulate, rescale
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.format import QFormat
from qsim.fixed.limits import FLOAT64_EXACT, INT64_SAFE
from qsim.fixed.modes import Overflow, Rounding
from qsim.graph.ir import resolve_pads
from qsim.kernels import eltwise, workspace
from qsim.kernels.blas import gemm
from qsim.kernels.tail import fused_tail

FLOAT_EXACT_LIMIT = FLOAT64_EXACT  # every integer of magnitude <= 2**53 is a float64
# every integer of magnitude <= 2**24 is a float32: a GEMM whose every partial sum is proved
# below it is exact in float32 (words of 8 bits or less, issue 14), at twice float64's rate
FLOAT32_EXACT_LIMIT = 1 << 24
INT64_SAFE_LIMIT = INT64_SAFE  # partial sums and rounding offsets stay inside int64


# --- compiled loops -------------------------------------------------------------------
@njit(cache=True, parallel=True)
def _im2col(x, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, out):
    """Rows (n, oy, ox), columns (ky, kx, ci): the patch each output reads; zeros at pads."""
    n, h, w, c = x.shape
    for r in prange(n * ho):
        b = r // ho
        oy = r % ho
        for ox in range(wo):
            row = r * wo + ox
            col = 0
            for ky in range(kh):
                iy = oy * sh - pt + ky * dh
                for kx in range(kw):
                    ix = ox * sw - pl + kx * dw
                    if 0 <= iy < h and 0 <= ix < w:
                        for ci in range(c):
                            out[row, col + ci] = x[b, iy, ix, ci]
                    else:
                        for ci in range(c):
                            out[row, col + ci] = 0
                    col += c


@njit(cache=True, parallel=True)
def _matmul_i64(a, b, out):
    """Exact int64 (M,K) @ (K,N) (no overflow: the caller proved the bound)."""
    m, k = a.shape
    n = b.shape[1]
    for i in prange(m):
        for j in range(n):
            out[i, j] = 0
        for kk in range(k):
            av = a[i, kk]
            if av != 0:
                for j in range(n):
                    out[i, j] += av * b[kk, j]


@njit(cache=True, parallel=True)
def _depthwise(x, w, mult, sh, sw, pt, pl, dh, dw, ho, wo, out):
    """Exact depthwise sums (no bias): out[..., c*mult+m] = sum x[..., c] * w[ky,kx,c*mult+m].

    `w` is the (KH,KW,C,mult) kernel reshaped to (KH,KW,C*mult), C-contiguous.

    Channels innermost and contiguous (a row buffer per output pixel) so the loop vectorizes;
    x, w, out share one dtype (int64, or float64 holding integers below 2**53).
    """
    n, h, wid, c = x.shape
    kh, kw = w.shape[0], w.shape[1]
    for r in prange(n * ho):
        b = r // ho
        oy = r % ho
        row = np.zeros(c * mult, dtype=out.dtype)
        for ox in range(wo):
            row[:] = 0
            for ky in range(kh):
                iy = oy * sh - pt + ky * dh
                if iy < 0 or iy >= h:
                    continue
                for kx in range(kw):
                    ix = ox * sw - pl + kx * dw
                    if ix < 0 or ix >= wid:
                        continue
                    xs = x[b, iy, ix]
                    ws = w[ky, kx]  # (C * mult,), contiguous
                    if mult == 1:
                        for ci in range(c):
                            row[ci] += xs[ci] * ws[ci]
                    else:
                        for ci in range(c):
                            for m in range(mult):
                                row[ci * mult + m] += xs[ci] * ws[ci * mult + m]
            out[b, oy, ox, :] = row


@njit(cache=True, inline="always")
def _saturating_step(s, t, lo, hi, events, peak):
    """One addition of a saturating accumulator: (clamped sum, events, peak of |partial sum|)."""
    s += t
    if abs(s) > peak:
        peak = abs(s)
    if s > hi:
        return hi, events + 1, peak
    if s < lo:
        return lo, events + 1, peak
    return s, events, peak


@njit(cache=True, parallel=True)
def _conv_per_step(x, w, bias, depthwise, sh, sw, pt, pl, dh, dw, ho, wo, lo, hi, out, stats):
    """Saturating accumulator clamped after each term: bias, then (ky, kx, ci) in order.

    stats[row] = (events, peak): additions that left [lo, hi], largest |partial sum|.
    Terms at padded positions are 0 (they are additions too, as in hardware).
    """
    n, h, wid, c = x.shape
    kh, kw, cw, k4 = w.shape
    cout = out.shape[3]
    for r in prange(n * ho):
        b = r // ho
        oy = r % ho
        events = 0
        peak = 0
        for ox in range(wo):
            for co in range(cout):
                # The bias enters as the first addition to an empty accumulator.
                s, events, peak = _saturating_step(0, bias[co], lo, hi, events, peak)
                for ky in range(kh):
                    iy = oy * sh - pt + ky * dh
                    for kx in range(kw):
                        ix = ox * sw - pl + kx * dw
                        inside = 0 <= iy < h and 0 <= ix < wid
                        if depthwise:
                            ci = co // k4
                            t = x[b, iy, ix, ci] * w[ky, kx, ci, co % k4] if inside else 0
                            s, events, peak = _saturating_step(s, t, lo, hi, events, peak)
                        else:
                            for ci in range(cw):
                                t = x[b, iy, ix, ci] * w[ky, kx, ci, co] if inside else 0
                                s, events, peak = _saturating_step(s, t, lo, hi, events, peak)
                out[b, oy, ox, co] = s
        stats[r, 0] = events
        stats[r, 1] = peak


# --- helpers --------------------------------------------------------------------------
def out_size(size: int, k: int, s: int, pad_total: int, d: int) -> int:
    return (size + pad_total - ((k - 1) * d + 1)) // s + 1


def sum_abs_bound(x: np.ndarray, w: np.ndarray, depthwise: bool) -> int:
    """Rigorous bound on |any partial sum of products|: max|x| * max over outputs of sum|w|."""
    if x.size == 0 or w.size == 0:
        return 0
    max_x = max(abs(int(x.min())), abs(int(x.max())))
    absw = np.abs(w.astype(np.int64))
    per_out = absw.sum(axis=(0, 1)) if depthwise else absw.sum(axis=(0, 1, 2))  # exact: |w| < 2**63 / fan-in
    return max_x * int(per_out.max())


def _check(x: np.ndarray, w: np.ndarray, bias, depthwise: bool) -> None:
    if x.ndim != 4:
        raise InputError(f"conv input must be NHWC (4-D), got shape {x.shape}")
    if w.ndim != 4:
        raise InputError(f"conv kernel must be (KH, KW, Cin, Cout), got shape {w.shape}")
    if x.shape[3] != w.shape[2]:
        raise InputError(f"conv input has {x.shape[3]} channels but the kernel expects {w.shape[2]}")
    cout = w.shape[2] * w.shape[3] if depthwise else w.shape[3]
    if bias is not None and np.shape(bias) != (cout,):
        raise InputError(f"conv bias has shape {np.shape(bias)}, expected ({cout},)")


def derived(w: np.ndarray, what, make, cache: dict | None):
    """``make(w)``, remembered in `cache` (owned by the caller, e.g. a backend's program)
    for a read-only array `w` (weight codes that cannot change between calls).

    Without a cache, or for a writeable array, it is recomputed on every call.
    """
    if cache is None or w.flags.writeable:
        return make(w)
    key = (id(w), what)
    entry = cache.get(key)
    if entry is None or entry[0] is not w:  # the array itself is kept: its id cannot be reused
        entry = cache[key] = (w, make(w))
    return entry[1]


def weight_abs_sums(w: np.ndarray, depthwise: bool, cache: dict | None = None) -> int:
    """max over output channels of sum |w| (exact int)."""
    if w.size == 0:
        return 0

    def make(w):
        absw = np.abs(w.astype(np.int64))
        per_out = absw.sum(axis=(0, 1)) if depthwise else absw.sum(axis=(0, 1, 2))
        return int(per_out.max())

    return derived(w, ("abs_sums", depthwise), make, cache)


def float_matrix(w: np.ndarray, shape: tuple[int, ...], dtype=np.float64, cache: dict | None = None) -> np.ndarray:
    """`w` reshaped to `shape` as a C-contiguous `dtype` array (exact for |codes| < 2**53)."""
    return derived(w, ("matrix", shape, np.dtype(dtype).str),
                   lambda w: np.ascontiguousarray(w.reshape(shape), dtype=dtype), cache)


def format_bound(w: np.ndarray, depthwise: bool, in_fmt: QFormat, cache: dict | None = None) -> int:
    """|any partial sum of products| <= this for every input code of `in_fmt` (no pass over data)."""
    return max(abs(in_fmt.min_code), in_fmt.max_code) * weight_abs_sums(w, depthwise, cache)


def proved_bound(x: np.ndarray, w: np.ndarray, depthwise: bool, in_fmt: QFormat | None, headroom: int,
                 cache: dict | None = None) -> int:
    """A proved bound on |any partial sum of products| (PlanError when it reaches 2**62 - headroom)."""
    wsum = weight_abs_sums(w, depthwise, cache)
    bound = None if in_fmt is None else format_bound(w, depthwise, in_fmt, cache)
    if bound is None or bound + headroom >= FLOAT_EXACT_LIMIT:  # the data may do better
        bound = 0 if x.size == 0 else max(abs(int(x.min())), abs(int(x.max()))) * wsum
    if bound + headroom >= INT64_SAFE_LIMIT:
        bound += headroom
        raise PlanError(
            f"exact accumulation needs {bound.bit_length() + 1} bits (max|x| x sum|w| = {bound}); "
            "int64 holds 63: use narrower activation or weight formats"
        )
    return bound


# 1x1 convolutions with at most this many input channels (KxK convs: taps x channels) run
# their sums inside the tail pass (the accumulator never goes to memory); wider ones use
# BLAS. Measured on A98 500x500, one thread, CPU time per run after the GEMM pool and buffer
# recycling: 32 -> 0.180 s, 24 -> 0.167 s, 20 -> 0.169 s, 16 -> 0.167 s, 8 -> 0.173 s (the
# K=32 layers and the 27-tap RGB stem are now as fast or faster through BLAS)
DIRECT_MAX_K = 24


def exact_sums(x: np.ndarray, w: np.ndarray, *, strides, pads, dilation, depthwise: bool,
               headroom: int = 0, in_fmt: QFormat | None = None, cache: dict | None = None,
               use_float: bool | None = None) -> np.ndarray:
    """Exact sums of products (no bias), (N,Ho,Wo,Cout): float64 (integer-valued) when
    ``|sum| < 2**53`` is proved, else int64.

    The bound is ``max|x| * max_co sum|w|``, with ``max|x|`` from `in_fmt` when given (the
    codes are then trusted to lie in it: no pass over the data) and from the data when that
    is not enough. `headroom` bounds what the caller adds afterwards (the aligned bias);
    the total must stay below 2**62. `x` may hold int64 codes or integer-valued float64.
    `use_float`: None decides from the bound; True requires the float64 proof (else
    `PlanError`); False takes the int64 loop.
    """
    proved = proved_bound(x, w, depthwise, in_fmt, headroom, cache) < FLOAT_EXACT_LIMIT
    if use_float and not proved:
        raise PlanError("float64 sums are not proved exact for these codes (bound >= 2**53): use int64 sums")
    return _sums(x, w, strides=strides, pads=pads, dilation=dilation, depthwise=depthwise,
                 use_float=proved if use_float is None else use_float, cache=cache)


def _out_hw(x: np.ndarray, w: np.ndarray, strides, pads, dilation) -> tuple[int, int]:
    """The output height and width (an `InputError` when the output would be empty)."""
    (h, wid), (kh, kw) = x.shape[1:3], w.shape[:2]
    ho = out_size(h, kh, strides[0], pads[0] + pads[1], dilation[0])
    wo = out_size(wid, kw, strides[1], pads[2] + pads[3], dilation[1])
    if ho <= 0 or wo <= 0:
        raise InputError(f"conv output would be empty: input {h}x{wid}, kernel {kh}x{kw}, pads {pads}")
    return ho, wo


def _sums(x: np.ndarray, w: np.ndarray, *, strides, pads, dilation, depthwise: bool, use_float: bool,
          cache: dict | None, float32: bool = False) -> np.ndarray:
    """`exact_sums` once the caller has proved the bound (`conv_paths` did, for `conv2d`).

    ``float32``: the GEMM in float32 (the caller proved every partial sum < 2**24), returned
    as float64 like the float64 path."""
    dtype = np.float32 if float32 else np.float64 if use_float else np.int64
    if not depthwise:
        cols, wmat, shape = _gemm_operands(x, w, strides=strides, pads=pads, dilation=dilation, cache=cache,
                                           dtype=dtype)
        if float32:
            acc = gemm(cols, wmat).astype(np.float64)  # exact: all partial sums are integers < 2**24
        elif use_float:
            acc = gemm(cols, wmat)  # exact: all partial sums are integers < 2**53
        else:
            acc = np.empty((cols.shape[0], shape[3]), dtype=np.int64)
            _matmul_i64(cols, wmat, acc)
        return acc.reshape(shape)
    ho, wo = _out_hw(x, w, strides, pads, dilation)
    n, _, _, cin = x.shape
    kh, kw, _, k4 = w.shape
    x = np.ascontiguousarray(x, dtype=dtype)
    out = np.empty((n, ho, wo, cin * k4), dtype=dtype)
    _depthwise(x, float_matrix(w, (kh, kw, cin * k4), dtype, cache), k4,
               strides[0], strides[1], pads[0], pads[2], dilation[0], dilation[1], ho, wo, out)
    return out


def _gemm_operands(x: np.ndarray, w: np.ndarray, *, strides, pads, dilation, cache, dtype):
    """(patch matrix (N*Ho*Wo, KH*KW*Cin), weight matrix (KH*KW*Cin, Cout), output shape) in `dtype`."""
    ho, wo = _out_hw(x, w, strides, pads, dilation)
    n, _, _, cin = x.shape
    kh, kw, _, k4 = w.shape
    x = np.ascontiguousarray(x, dtype=dtype)
    if kh == kw == 1 and tuple(strides) == (1, 1) and tuple(pads) == (0, 0, 0, 0):
        cols = x.reshape(-1, cin)  # pointwise: the input is the patch matrix
    else:
        cols = workspace.empty((n * ho * wo, kh * kw * cin), dtype)
        _im2col(x, kh, kw, strides[0], strides[1], pads[0], pads[2], dilation[0], dilation[1], ho, wo, cols)
    return cols, float_matrix(w, (kh * kw * cin, k4), dtype, cache), (n, ho, wo, k4)


# --- the paths -----------------------------------------------------------------------
class ConvPath(str, Enum):
    """How the exact sums are computed (every path gives the same codes and counts)."""

    POINTWISE_IN_TAIL = "pointwise_in_tail"
    """1x1 stride-1 unpadded, <= DIRECT_MAX_K input channels: float64 sums inside the tail pass."""
    WINDOW_IN_TAIL = "window_in_tail"
    """Depthwise, or KxK with <= DIRECT_MAX_K taps x channels: float64 sums inside the tail pass."""
    FLOAT32_SUMS = "float32_sums"
    """float32 BLAS sums (im2col for KxK; not depthwise), exact below 2**24 (proved from the
    formats): words of 8 bits or less."""
    FLOAT64_SUMS = "float64_sums"
    """float64 sums (BLAS, im2col for KxK; the depthwise loop), exact below 2**53 (proved)."""
    INT64_SUMS = "int64_sums"
    """int64 sums (Numba), exact below 2**62 (proved)."""
    PER_STEP = "per_step"
    """The saturating accumulator, clamped after every addition (``acc_saturation="per_step"``)."""


def conv_paths(x: np.ndarray, w: np.ndarray, *, depthwise: bool, in_fmt: QFormat, strides, pads,
               per_step: bool, in_tail: bool, bias_max: int, cache: dict | None = None) -> tuple[ConvPath, ...]:
    """The paths that compute these sums exactly, fastest first (the first is the default).

    Args:
        per_step: the accumulator saturates after every addition (then only `PER_STEP`).
        in_tail: the requantization runs in the compiled tail (the in-pass sums need it).
        bias_max: the largest aligned bias magnitude (headroom every bound must leave).
    """
    if per_step:
        return (ConvPath.PER_STEP,)
    paths = []
    float_ok = w.size and x.size and proved_bound(x, w, depthwise, in_fmt, bias_max, cache) < FLOAT_EXACT_LIMIT
    if in_tail and float_ok:
        if (not depthwise and w.shape[:2] == (1, 1) and tuple(strides) == (1, 1)
                and tuple(pads) == (0, 0, 0, 0) and w.shape[2] <= DIRECT_MAX_K):
            paths.append(ConvPath.POINTWISE_IN_TAIL)
        if depthwise or w.shape[0] * w.shape[1] * w.shape[2] <= DIRECT_MAX_K:
            paths.append(ConvPath.WINDOW_IN_TAIL)
    # proved from the formats only: a pass over the data on every layer cost 16-bit plans more
    # than float32 saved (A98 Q6.9 500x500: 99 -> 107 ms); no headroom, the tail adds the bias
    if (float_ok and not depthwise and in_fmt is not None
            and format_bound(w, False, in_fmt, cache) < FLOAT32_EXACT_LIMIT):
        paths.append(ConvPath.FLOAT32_SUMS)
    if float_ok or not (w.size and x.size):
        paths.append(ConvPath.FLOAT64_SUMS)
    paths.append(ConvPath.INT64_SUMS)
    return tuple(paths)


# --- the kernel -----------------------------------------------------------------------
def conv2d(x, w, bias, *, in_fmt: QFormat, w_fmt: QFormat, b_fmt: QFormat, out_fmt: QFormat,
           acc_bits: int, rounding, overflow, acc_overflow, acc_saturation: str = "final",
           strides=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), depthwise: bool = False,
           counters: dict[str, OverflowCounter] | None = None, relu=None,
           keep_pre: bool = False, derived: dict | None = None, path: ConvPath | None = None):
    """Integer (depthwise) convolution: codes of `in_fmt` -> codes of `out_fmt` (see module doc).

    Args:
        x: codes (N,H,W,Cin) in `in_fmt` (int64, or integer-valued float64).
        w: int64 codes (KH,KW,Cin,Cout), or (KH,KW,C,mult) when `depthwise`.
        bias: int64 codes (Cout,) of `b_fmt`, or None.
        pads: (top, bottom, left, right) or ``"same"``/``"valid"``.
        counters: optional ``{"acc", "requant"[, "act"]: OverflowCounter}`` to feed.
        relu: a fused ReLU/ReLU6 applied to the codes (`qsim.kernels.eltwise.ReluSpec`):
            identical to calling `qsim.kernels.eltwise.relu` on the result, in the same pass.
        keep_pre: with `relu`, also return the codes before it.
        derived: a cache for derived forms of read-only weight codes (`derived`), owned
            by the caller (a backend's program); None recomputes them.
        path: a `ConvPath` to take (tests compare them); None takes the fastest of `conv_paths`.
            A path that cannot compute these sums exactly is a `PlanError`.

    Returns:
        Codes (N,Ho,Wo,Cout) of `out_fmt` (of the ReLU's format with `relu`): float64 holding
        integers for words <= 53 bits (exact, ready for the next BLAS), int64 otherwise.
        With ``keep_pre``: ``(codes, pre_relu_codes)``.
    """
    cache = derived
    rounding, overflow, acc_overflow = Rounding.parse(rounding), Overflow.parse(overflow), Overflow.parse(acc_overflow)
    x = np.asarray(x)
    if x.dtype.kind not in "if":
        raise InputError(f"conv input codes must be integers, got dtype {x.dtype}")
    w = np.asarray(w, dtype=np.int64)
    _check(x, w, bias, depthwise)
    pads = resolve_pads(pads, x.shape[1:3], w.shape[:2], tuple(strides), tuple(dilation))
    acc_frac = in_fmt.frac_bits + w_fmt.frac_bits
    align = acc_frac - b_fmt.frac_bits
    if align < 0:
        raise PlanError(f"bias format {b_fmt} has more fraction bits than the accumulator ({acc_frac})")
    cout = w.shape[2] * w.shape[3] if depthwise else w.shape[3]
    bias_max = 0 if bias is None or np.size(bias) == 0 else int(np.abs(np.asarray(bias, dtype=np.int64)).max()) << align
    if bias_max >= INT64_SAFE_LIMIT:
        raise PlanError(f"bias aligned to the accumulator reaches {bias_max}, beyond 2**62")
    bias_acc = np.zeros(cout, dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64) << np.int64(align)
    counters = counters or {}
    per_step = acc_saturation == "per_step" and acc_overflow is Overflow.SATURATE
    # the compiled tail takes right shifts of 0..62 bits; anything else goes step by step
    in_tail = 0 <= acc_frac - out_fmt.frac_bits <= 62 and (
        relu is None or 0 <= out_fmt.frac_bits - relu.fmt.frac_bits <= 62)
    paths = conv_paths(x, w, depthwise=depthwise, in_fmt=in_fmt, strides=strides, pads=pads, per_step=per_step,
                       in_tail=in_tail, bias_max=bias_max, cache=cache)
    if path is None:
        path = paths[0]
    elif ConvPath(path) not in paths:
        raise PlanError(f"conv path {ConvPath(path).value!r} cannot compute these sums exactly here; "
                        f"available: {', '.join(p.value for p in paths)}")
    path = ConvPath(path)
    tail_args = dict(acc_bits=acc_bits, acc_overflow=acc_overflow, acc_frac=acc_frac, out_fmt=out_fmt,
                     rounding=rounding, overflow=overflow, relu=relu, counters=counters, keep_pre=keep_pre)
    if path is ConvPath.POINTWISE_IN_TAIL:
        x2d = np.ascontiguousarray(x.reshape(-1, w.shape[2]), dtype=np.float64)
        wmat = float_matrix(w, (w.shape[2], w.shape[3]), cache=cache)
        post, pre = fused_tail(None, bias_acc, **tail_args,
                               direct=("pointwise", x2d, wmat, x.shape[:3] + (w.shape[3],)))
        return (post, pre) if keep_pre else post
    if path is ConvPath.WINDOW_IN_TAIL:
        kh, kw, c, k4 = w.shape
        (sh, sw), (dh, dw) = tuple(strides), tuple(dilation)
        ho, wo = _out_hw(x, w, strides, pads, dilation)
        x4 = np.ascontiguousarray(x, dtype=np.float64)
        w3 = float_matrix(w, (kh, kw, c * k4), cache=cache)
        geom = (sh, sw, pads[0], pads[2], dh, dw, ho, wo, k4)
        post, pre = fused_tail(None, bias_acc, **tail_args,
                               direct=("depthwise" if depthwise else "conv", x4, w3,
                                       (x.shape[0], ho, wo, cout), geom))
        return (post, pre) if keep_pre else post
    if in_tail and not depthwise and path in (ConvPath.FLOAT64_SUMS, ConvPath.FLOAT32_SUMS):
        post, pre = fused_tail(None, bias_acc, **tail_args, direct=(
            "gemm", *_gemm_operands(x, w, strides=tuple(strides), pads=pads, dilation=tuple(dilation), cache=cache,
                                    dtype=np.float32 if path is ConvPath.FLOAT32_SUMS else np.float64)))
        return (post, pre) if keep_pre else post
    if per_step:
        acc = _per_step(x.astype(np.int64), w, bias_acc, acc_bits, strides, pads, dilation, depthwise,
                        counters.get("acc"))
    else:
        acc = _sums(x, w, strides=tuple(strides), pads=pads, dilation=tuple(dilation), depthwise=depthwise,
                    use_float=path in (ConvPath.FLOAT64_SUMS, ConvPath.FLOAT32_SUMS), cache=cache,
                    float32=path is ConvPath.FLOAT32_SUMS)  # conv_paths proved the bound
    if in_tail:
        post, pre = fused_tail(acc, None if per_step else bias_acc, **{
            **tail_args, "acc_overflow": None if per_step else acc_overflow})
        return (post, pre) if keep_pre else post
    # output with more fraction bits than the accumulator: the step-by-step qsim.fixed path
    acc = acc.astype(np.int64)
    if not per_step:
        acc += bias_acc  # exact: |sum| + |bias| < 2**62 (checked in conv_paths)
        acc = accumulate(acc, acc_bits, overflow=acc_overflow, counter=counters.get("acc"))
    pre = rescale(acc, acc_frac, out_fmt, rounding=rounding, overflow=overflow, counter=counters.get("requant"))
    if relu is None:
        return pre
    post = eltwise.relu(pre, in_fmt=out_fmt, out_fmt=relu.fmt, max_value=relu.max_value,
                        rounding=relu.rounding, overflow=relu.overflow, counter=counters.get("act"))
    return (post, pre) if keep_pre else post


def _per_step(x, w, bias_acc, acc_bits, strides, pads, dilation, depthwise, counter):
    n = x.shape[0]
    kh, kw, cin, k4 = w.shape
    ho, wo = _out_hw(x, w, strides, pads, dilation)
    if acc_bits > 62:
        raise PlanError(f"per-step saturation supports accumulators up to 62 bits, got {acc_bits}")
    if max(abs(int(w.min(initial=0))), int(w.max(initial=0))) * max(abs(int(x.min(initial=0))), int(x.max(initial=0))) >= INT64_SAFE_LIMIT:
        raise PlanError("a single product exceeds 2**62: use narrower formats")
    cout = cin * k4 if depthwise else k4
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    out = np.empty((n, ho, wo, cout), dtype=np.int64)
    stats = np.zeros((n * ho, 2), dtype=np.int64)
    _conv_per_step(np.ascontiguousarray(x), np.ascontiguousarray(w), bias_acc, depthwise,
                   strides[0], strides[1], pads[0], pads[2], dilation[0], dilation[1], ho, wo,
                   np.int64(lo), np.int64(hi), out, stats)
    if counter is not None:
        terms = 1 + kh * kw * (1 if depthwise else cin)
        counter.record(events=int(stats[:, 0].sum()), elements=out.size * terms,
                       peak=int(stats[:, 1].max(initial=0)), lo=lo, hi=hi)
    return out


def dense(x, w, bias, **kwargs):
    """Integer MAC over the last axis of any rank (dense; rescale / batch_norm as 1x1 depthwise).

    The same contract as `conv2d` (accumulator, sites ``acc``/``requant``, fused ReLU,
    paths), applied as a 1x1 convolution at every position: `x` (N, ..., Cin) is viewed as
    (N * ..., 1, 1, Cin), so each output element is the exact sum of its own Cin products
    (the bound proofs of `conv2d` hold unchanged), then viewed back as (N, ..., Cout).

    Args:
        x: codes (N, ..., Cin), rank >= 2.
        w: int64 codes (Cin, Cout), or a 1x1 kernel (1, 1, Cin, Cout) / depthwise (1, 1, C, 1).
        bias, kwargs: as `conv2d` (``strides``/``pads``/``dilation`` must stay the 1x1 defaults).
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise InputError(f"dense input must be batch first with features last (rank >= 2), got shape {x.shape}")
    w = np.asarray(w)
    if w.ndim == 2:
        w = w.reshape((1, 1) + w.shape)
    if w.shape[:2] != (1, 1):
        raise InputError(f"dense kernel must be (Cin, Cout) or 1x1, got shape {w.shape}")
    lead = x.shape[:-1]
    res = conv2d(x.reshape(-1, 1, 1, x.shape[-1]), w, bias, **kwargs)
    if kwargs.get("keep_pre") and kwargs.get("relu") is not None:
        return tuple(r.reshape(lead + r.shape[-1:]) for r in res)
    return res.reshape(lead + res.shape[-1:])
