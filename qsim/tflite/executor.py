"""Run a TFLite model bit-exactly as TFLite's reference kernels, with what-ifs.

A backend of the runtime (`qsim.runtime.protocol`): ``prepare(model, options) -> Program``
checks every operator once and precomputes its multipliers (`OP_TABLE` maps the builtin
operator code to its kernel class, one dict literal); the program's graph is a view of
subgraph 0 (one node per operator, in file order: TFLite's order) and `OPS` its op table,
so `qsim.runtime.walker.execute` runs it, records every non-constant tensor in its stored
dtype and names the failing operator on error. `Program.run` is the adapter that keeps
tensors by index and the overflow counters (`TfliteRun`).

Overflow sites (one `OverflowCounter` per op and site):

* ``acc``: the exact accumulator (sum of products + bias; pooling / MEAN sums) against
  a signed ``acc_bits`` word; narrowed there by ``acc_overflow`` (``wrap`` is what C's
  int32 arithmetic does at 32 bits; ``saturate`` clamps the exact total once).
* ``requant``: the requantized value + output zero point against the stored dtype range.
* ``act``: values inside the dtype range that the fused activation clamps (RELU, RELU6,
  RELU_N1_TO_1; a narrower range is not an error, the counter shows how often it bites).

What-ifs (`TfliteOptions`): ``acc_bits``/``acc_overflow``, ``multiplier_bits`` (every
int32 requantization multiplier rounded to N signed bits), ``single_rounding`` (the
``TFLITE_SINGLE_ROUNDING`` build), ``fc_requant="integer"`` (FULLY_CONNECTED with an
int32 multiplier, as the optimized kernels do, instead of the reference's float).
`whatif_report` runs the reference and the what-if and counts, per operator, the
output values that differ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, NamedTuple

import numpy as np

from qsim.errors import InputError, QsimError
from qsim.fixed.counters import OverflowCounter
from qsim.graph.ir import Graph, Node
from qsim.runtime.protocol import NodeRun
from qsim.runtime.walker import execute
from qsim.tflite import ops
from qsim.tflite.arith import quantize_multiplier, round_multiplier_bits
from qsim.tflite.reader import Operator, Tensor, TfliteError, TfliteModel
from qsim.trace import Trace


@dataclass(frozen=True)
class TfliteOptions:
    """Arithmetic choices; the defaults are TFLite's reference kernels (TF pip wheel)."""

    single_rounding: bool = False
    acc_bits: int = 32
    acc_overflow: str = "wrap"
    multiplier_bits: int = 32
    fc_requant: str = "float"

    def __post_init__(self) -> None:
        if not 2 <= self.acc_bits <= 64:
            raise QsimError(f"acc_bits must be in [2, 64], got {self.acc_bits}")
        if self.acc_overflow not in ("wrap", "saturate"):
            raise QsimError(f"acc_overflow must be 'wrap' or 'saturate', got {self.acc_overflow!r}")
        if not 2 <= self.multiplier_bits <= 32:
            raise QsimError(f"multiplier_bits must be in [2, 32], got {self.multiplier_bits}")
        if self.fc_requant not in ("float", "integer"):
            raise QsimError(f"fc_requant must be 'float' or 'integer', got {self.fc_requant!r}")

    @property
    def is_reference(self) -> bool:
        return self == TfliteOptions()

    def to_dict(self) -> dict:
        return {"single_rounding": self.single_rounding, "acc_bits": self.acc_bits,
                "acc_overflow": self.acc_overflow, "multiplier_bits": self.multiplier_bits,
                "fc_requant": self.fc_requant}


_QTYPES = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3
_ACT_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
SAME, VALID = 0, 1


class _Ctx:
    """Per-run state handed to kernels: the options, the current op's label, and the
    counter records of the run so far, in order (`materialize_counters` turns them into
    the run's counters when they are first read)."""

    def __init__(self, options: TfliteOptions, records: list) -> None:
        self.options = options
        self.records = records
        self.label = ""
        self.parallel = False  # Program.threads > 1: large MAC layers on Numba's threads
        self.made: dict[str, OverflowCounter] = {}

    def counter(self, site: str) -> OverflowCounter:
        """A live counter of this op's site (the NumPy paths feed it with `observe`)."""
        key = f"{self.label}/{site}"
        c = self.made.get(key)
        if c is None:
            c = self.made[key] = OverflowCounter(key)
            self.records.append(c)
        return c

    def narrow_acc(self, acc: np.ndarray) -> np.ndarray:
        bits = self.options.acc_bits
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        self.counter("acc").observe(acc, lo, hi)
        if self.options.acc_overflow == "saturate":
            return np.clip(acc, lo, hi)
        if bits == 64:
            return acc
        return ((acc - lo) & ((1 << bits) - 1)) + lo


class Kernel:
    """One operator, prepared. Subclasses set ``prepare`` (checks, params) and ``run``."""

    n_inputs: tuple[int, int] = (1, 1)

    def __init__(self, op: Operator, model: TfliteModel, options: TfliteOptions) -> None:
        self.op = op
        self.model = model
        self.options = options
        lo, hi = self.n_inputs
        if not lo <= len(op.inputs) <= hi:
            raise self.error(f"has {len(op.inputs)} inputs, expected {lo}..{hi}")
        self.prepare()
        self.prepare_compiled()

    # --- helpers for prepare --------------------------------------------------------
    def error(self, what: str) -> TfliteError:
        return TfliteError(f"{self.model.path}: operator {self.op.index} ({self.op.name}): {what}")

    def tin(self, i: int) -> Tensor | None:
        idx = self.op.inputs[i] if i < len(self.op.inputs) else -1
        return None if idx < 0 else self.model.tensors[idx]

    def tout(self, i: int = 0) -> Tensor:
        return self.model.tensors[self.op.outputs[i]]

    def qtensor(self, t: Tensor | None, role: str, per_channel_ok: bool = False) -> Tensor:
        if t is None:
            raise self.error(f"missing {role} tensor")
        if t.dtype not in _QTYPES and not (role in ("bias",) and t.dtype == np.dtype(np.int32)):
            raise self.error(f"{role} tensor {t.index} '{t.name}' has type {t.type_name}; supported: INT8, UINT8")
        if t.quant is None:
            raise self.error(f"{role} tensor {t.index} '{t.name}' has no quantization parameters")
        if t.quant.per_channel and not per_channel_ok:
            raise self.error(f"{role} tensor {t.index} '{t.name}' is per-channel quantized; expected per-tensor")
        if np.any(t.quant.scale <= 0):
            raise self.error(f"{role} tensor {t.index} '{t.name}' has scale {t.quant.scale.tolist()[:4]}")
        return t

    def const(self, t: Tensor | None, role: str) -> np.ndarray:
        if t is None or t.data is None:
            raise self.error(f"{role} must be a constant tensor")
        return t.data

    def act_range(self, out: Tensor, code: int) -> tuple[int | None, int | None]:
        """The fused activation's own bounds in codes, before the dtype clip (None = no bound).

        ``CalculateActivationRangeQuantized``: q(f) = out_zp + round(float32 f / out_s); the
        kernel clamps to these bounds intersected with the dtype range.
        """
        s = np.float32(out.quant.scale[0])
        zp = int(out.quant.zero_point[0])

        def q(f: float) -> int:
            v = np.float32(f) / s
            return zp + int(np.sign(v) * np.floor(np.abs(np.float64(v)) + 0.5))

        if code == ACT_NONE:
            return None, None
        if code == ACT_RELU:
            return q(0.0), None
        if code == ACT_RELU6:
            return q(0.0), q(6.0)
        if code == ACT_RELU_N1_TO_1:
            return q(-1.0), q(1.0)
        raise self.error(f"fused activation {_ACT_NAMES.get(code, code)} is not supported (NONE, RELU, RELU6, RELU_N1_TO_1)")

    def multiplier(self, m: float) -> tuple[int, int]:
        """QuantizeMultiplier under the options (single-rounding saturation, N-bit what-if)."""
        q, s = quantize_multiplier(m, single_rounding=self.options.single_rounding)
        return round_multiplier_bits(q, s, self.options.multiplier_bits)

    def mac_args(self, sum_dtype, oc: int, dtype, sum_bound: np.ndarray) -> tuple:
        """Prepare-time arguments of the compiled MAC kernels (`qsim.tflite._mac`): (input zero
        point in the sum's float type, chan_params, eff, tail_params); sum_bound per channel
        (``ops.sum_bound``) decides `_mac.fast_double`."""
        from qsim.tflite import _mac

        o = self.options
        float_requant = bool(getattr(self, "float_requant", False))
        eff = np.broadcast_to(np.asarray(getattr(self, "eff", 0.0), np.float64), (oc,))
        try:
            chan = _mac.chan_params(self.bias, getattr(self, "q", 0), getattr(self, "shift", 0), oc)
        except ValueError:  # a multiplier the compiled tail does not take: this op stays on NumPy
            self.fused = False
            chan = _mac.chan_params(self.bias, 0, 0, oc)
        fast = _mac.fast_double(chan, sum_bound, o.acc_bits, o.single_rounding, float_requant)
        return sum_dtype(self.in_zp), chan, np.ascontiguousarray(eff), self.tail_params(dtype, float_requant, fast)

    def tail_params(self, dtype, float_requant: bool = False, fast_double: bool = False) -> np.ndarray:
        """`_mac.tail_params` of this operator under the options (activation self.act)."""
        from qsim.tflite import _mac

        o = self.options
        return _mac.tail_params(acc_bits=o.acc_bits, saturate=o.acc_overflow == "saturate",
                                single_rounding=o.single_rounding, out_zp=getattr(self, "out_zp", 0), act=self.act,
                                qrange=_QTYPES[dtype], float_requant=float_requant, fast_double=fast_double)

    def check_shape(self, got: tuple, t: Tensor) -> None:
        """The computed output shape must be the file's, or (shape inference) becomes it."""
        if self.model.infer_shapes and t.data is None:
            t.shape = tuple(int(d) for d in got)
            return
        if tuple(got) != tuple(t.shape):
            raise self.error(f"computed output shape {list(got)} but tensor {t.index} '{t.name}' has {list(t.shape)}")

    def finish(self, v: np.ndarray, out: Tensor, act: tuple[int | None, int | None], ctx: _Ctx) -> np.ndarray:
        """Shared tail on v = requantized value + out_zp: the activation clamp (site ``act``),
        then saturation to the stored dtype (site ``requant``); the same bits as TFLite's
        single clamp to [max(qmin, act_lo), min(qmax, act_hi)]."""
        lo, hi = act
        if lo is not None or hi is not None:
            big = np.int64(1) << 62
            lo_ = -big if lo is None else lo
            hi_ = big if hi is None else hi
            ctx.counter("act").observe(v, lo_, hi_)
            v = np.clip(v, lo_, hi_)
        qmin, qmax = _QTYPES[out.dtype]
        ctx.counter("requant").observe(v, qmin, qmax)
        return np.clip(v, qmin, qmax).astype(out.dtype)

    # --- to override ------------------------------------------------------------------
    def prepare(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare_compiled(self) -> None:
        """Constants of a compiled kernel that need the whole prepare (e.g. self.act)."""

    def run(self, ins: list[np.ndarray | None], ctx: _Ctx) -> list[np.ndarray]:  # pragma: no cover
        raise NotImplementedError


def _pads(kind: int, in_hw, k, stride, dil, error) -> tuple[tuple[int, int], tuple[int, int]]:
    """(out_hw, (top, left)) for SAME / VALID padding."""
    outs, befores = [], []
    for n, kk, s, d in zip(in_hw, k, stride, dil):
        if s < 1 or d < 1 or kk < 1:
            raise error(f"bad stride {s} / dilation {d} / kernel {kk}")
        if kind == SAME:
            o, b, _ = ops.same_padding(n, kk, s, d)
        elif kind == VALID:
            o, b = ops.valid_out(n, kk, s, d), 0
        else:
            raise error(f"unknown padding {kind}")
        if o < 1:
            raise error(f"output size {o} < 1 (input {n}, kernel {kk}, stride {s})")
        outs.append(o)
        befores.append(b)
    return tuple(outs), tuple(befores)


class _ConvBase(Kernel):
    n_inputs = (2, 3)
    depthwise = False

    def prepare(self) -> None:
        o = self.op.options
        x = self.qtensor(self.tin(0), "input")
        w = self.qtensor(self.tin(1), "filter", per_channel_ok=True)
        out = self.qtensor(self.tout(), "output")
        b = self.tin(2)
        self.w = self.const(w, "filter").astype(np.int64)
        self.bias = None if b is None else self.const(b, "bias").astype(np.int64)
        if len(x.shape) != 4 or self.w.ndim != 4:
            raise self.error(f"input {list(x.shape)} / filter {list(self.w.shape)} must be 4-D")
        if x.dtype != w.dtype or x.dtype != out.dtype:
            raise self.error(f"mixed types input {x.type_name}, filter {w.type_name}, output {out.type_name}")
        self.uint8 = x.dtype == np.dtype(np.uint8)
        self.in_zp = int(x.quant.zero_point[0])
        self.out_zp = int(out.quant.zero_point[0])
        oc = self.w.shape[3] if self.depthwise else self.w.shape[0]
        kh, kw = self.w.shape[1], self.w.shape[2]
        self.stride = (int(o.get("stride_h", 1)), int(o.get("stride_w", 1)))
        self.dil = (int(o.get("dilation_h_factor", 1)), int(o.get("dilation_w_factor", 1)))
        self.out_hw, self.pads = _pads(int(o.get("padding", 0)), x.shape[1:3], (kh, kw), self.stride, self.dil, self.error)
        if self.depthwise:
            self.mult = int(o.get("depth_multiplier", 1)) or 1
            if x.shape[3] * self.mult != oc:
                self.mult = oc // max(x.shape[3], 1)
            if x.shape[3] * self.mult != oc:
                raise self.error(f"{x.shape[3]} input channels x multiplier cannot give {oc} outputs")
        elif x.shape[3] % self.w.shape[3] or oc % (x.shape[3] // self.w.shape[3]):
            raise self.error(f"filter depth {self.w.shape[3]} does not divide input depth {x.shape[3]}")
        if self.bias is not None and self.bias.shape != (oc,):
            raise self.error(f"bias shape {list(self.bias.shape)} for {oc} output channels")
        self.check_shape((x.shape[0], *self.out_hw, oc), out)
        ws = w.quant.scale.astype(np.float64)
        if ws.size not in (1, oc):
            raise self.error(f"{ws.size} filter scales for {oc} output channels")
        self.w_zp = 0 if not self.uint8 else int(w.quant.zero_point[0])
        in_s, out_s = float(x.quant.scale[0]), float(out.quant.scale[0])
        if self.uint8:  # GetQuantizedConvolutionMultipler: float32 product first
            reals = [float(np.float32(x.quant.scale[0]) * np.float32(s)) / out_s for s in w.quant.scale]
        else:  # PopulateConvolutionQuantizationParams: double product
            reals = [in_s * float(s) / out_s for s in ws]
        qs = [self.multiplier(r) for r in reals]
        self.q = np.array([q for q, _ in qs], np.int64)
        self.shift = np.array([s for _, s in qs], np.int64)
        self.act = self.act_range(out, int(o.get("fused_activation_function", 0)))
        qmin, qmax = _QTYPES[x.dtype]
        x_absmax = max(abs(qmin - self.in_zp), abs(qmax - self.in_zp))
        axis = 3 if self.depthwise else 0
        self.sum_dtype = ops.exact_float_dtype(self.w, self.w_zp, x_absmax, axis)
        self.fused_args = self.mac_args(self.sum_dtype, oc, x.dtype, ops.sum_bound(self.w, self.w_zp, x_absmax, axis))
        from qsim.tflite import _mac

        wf = (self.w - self.w_zp).astype(self.sum_dtype)
        # a pointwise conv runs on N*H*W pixels re-cut into rows of whole 4-pixel blocks
        self.flat = (not self.depthwise and kh == kw == 1 and self.stride == (1, 1) and self.pads == (0, 0))
        dot = self.flat and x.shape[3] >= _mac.DOT_MIN_DEPTH
        # compiled layouts: conv [KH, KW, FIC, OC], depthwise [KH, KW, OC] (the OC axis innermost),
        # a deep pointwise conv [1, 1, OC, IC] (dot products along IC)
        if self.depthwise:
            self.wf = np.ascontiguousarray(wf[0])
        else:
            self.wf = np.ascontiguousarray(wf.transpose(1, 2, 0, 3) if dot else wf.transpose(1, 2, 3, 0))
        last = self.mult if self.depthwise else int(dot)
        self.geom = np.array([*self.stride, *self.dil, *self.pads, last], np.int64)

    # the fused compiled kernel (True) or the NumPy composition narrow_acc -> requantize ->
    # finish (False); the same bits and counts (tests/tflite/test_tflite_executor.py)
    fused = True

    def run(self, ins, ctx):
        x = ins[0]
        if self.fused:
            return [self._run_fused(x, ctx)]
        if self.depthwise:
            acc = ops.depthwise_acc(x, self.in_zp, self.w, self.w_zp, self.bias, self.stride, self.dil,
                                    self.pads, self.out_hw, self.mult)
        else:
            acc = ops.conv2d_acc(x, self.in_zp, self.w, self.w_zp, self.bias, self.stride, self.dil,
                                 self.pads, self.out_hw)
        acc = ctx.narrow_acc(acc)
        v = ops.requantize(acc, self.q, self.shift, single_rounding=ctx.options.single_rounding) + self.out_zp
        return [self.finish(v, self.tout(), self.act, ctx)]

    def _run_fused(self, x, ctx):
        from qsim.tflite import _mac

        t = self.tout()
        out = np.empty(t.shape, t.dtype)
        st = _mac.new_stats()
        zp, chan, eff, tp = self.fused_args
        x = np.ascontiguousarray(x)
        if self.depthwise:
            _mac.depthwise_fused(x, zp, self.wf, self.geom, chan, eff, tp, out, st, ctx.parallel)
        elif self.flat:
            rows = _mac.pointwise_rows(out.size // out.shape[3])
            _mac.conv_fused(x.reshape(1, rows, -1, x.shape[3]), zp, self.wf, self.geom, chan, eff, tp,
                            out.reshape(1, rows, -1, out.shape[3]), st, ctx.parallel)
        else:
            _mac.conv_fused(x, zp, self.wf, self.geom, chan, eff, tp, out, st, ctx.parallel)
        record_stats(ctx, st, out.size, self.options.acc_bits, self.act, _QTYPES[out.dtype])
        return out


def record_stats(ctx: _Ctx, st: np.ndarray, n: int, acc_bits: int | None, act, qrange) -> None:
    """Keep a fused kernel's (events, min, max) per site for the counters (built on first
    read, as `observe` would have fed them; ``acc_bits`` None: the op has no accumulator site)."""
    ctx.records.append((ctx.label, st, n, acc_bits, act, qrange))


def materialize_counters(records: list) -> dict[str, OverflowCounter]:
    """The run's counters {"label/site": OverflowCounter} from `_Ctx.records`, in op order."""
    counters: dict[str, OverflowCounter] = {}

    def add(key: str, events, mn, mx, n: int, lo: int, hi: int) -> None:
        c = counters.get(key)
        if c is None:
            c = counters[key] = OverflowCounter(key)
        c.record(events=int(events), elements=n, peak=max(abs(int(mn)), abs(int(mx))), lo=lo, hi=hi)

    big = 1 << 62
    for r in records:
        if isinstance(r, OverflowCounter):
            if r.site in counters:
                counters[r.site].merge(r)
            else:
                counters[r.site] = r
            continue
        label, st, n, acc_bits, (lo, hi), (qmin, qmax) = r
        if acc_bits is not None:
            add(f"{label}/acc", st[0], st[1], st[2], n, -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1)
        if lo is not None or hi is not None:
            add(f"{label}/act", st[3], st[4], st[5], n, -big if lo is None else lo, big if hi is None else hi)
        add(f"{label}/requant", st[6], st[7], st[8], n, qmin, qmax)
    return counters


class Conv2D(_ConvBase):
    """CONV_2D, int8 per-channel or uint8 per-tensor (§3)."""


class DepthwiseConv2D(_ConvBase):
    """DEPTHWISE_CONV_2D, int8 per-channel (filter axis 3) or uint8 per-tensor (§3)."""

    depthwise = True


_UNIT_GEOM = np.array([1, 1, 1, 1, 0, 0, 0], np.int64)  # stride 1, dilation 1, no padding, layout 0


class FullyConnected(Kernel):
    """FULLY_CONNECTED: int8 requantizes in double (reference), uint8 with an int32 multiplier."""

    n_inputs = (2, 3)

    def prepare(self) -> None:
        o = self.op.options
        x = self.qtensor(self.tin(0), "input")
        w = self.qtensor(self.tin(1), "filter", per_channel_ok=True)
        out = self.qtensor(self.tout(), "output")
        b = self.tin(2)
        self.w = self.const(w, "filter").astype(np.int64)
        if self.w.ndim != 2:
            raise self.error(f"filter shape {list(self.w.shape)} must be 2-D [out, in]")
        if x.dtype != w.dtype or x.dtype != out.dtype:
            raise self.error(f"mixed types input {x.type_name}, filter {w.type_name}, output {out.type_name}")
        if int(o.get("weights_format", 0)) != 0:
            raise self.error("shuffled weights format is not supported")
        oc, ic = self.w.shape
        size = int(np.prod(x.shape))
        if ic == 0 or size % ic:
            raise self.error(f"input {list(x.shape)} is not a multiple of the filter depth {ic}")
        self.batches = size // ic
        self.bias = None if b is None else self.const(b, "bias").astype(np.int64)
        if self.bias is not None and self.bias.shape != (oc,):
            raise self.error(f"bias shape {list(self.bias.shape)} for {oc} outputs")
        if self.model.infer_shapes:
            keep = bool(o.get("keep_num_dims", False))
            self.check_shape((*x.shape[:-1], oc) if keep else (self.batches, oc), out)
        if int(np.prod(out.shape)) != self.batches * oc:
            raise self.error(f"output {list(out.shape)} does not hold {self.batches} x {oc} values")
        self.uint8 = x.dtype == np.dtype(np.uint8)
        self.in_zp = int(x.quant.zero_point[0])
        self.w_zp = int(w.quant.zero_point[0]) if self.uint8 else 0
        self.out_zp = int(out.quant.zero_point[0])
        in_s, out_s = float(x.quant.scale[0]), float(out.quant.scale[0])
        ws = w.quant.scale
        if ws.size not in (1, oc):
            raise self.error(f"{ws.size} filter scales for {oc} outputs")
        self.float_requant = not self.uint8 and self.options.fc_requant == "float"
        if self.float_requant:
            self.eff = np.array([in_s * float(s) / out_s for s in ws], np.float64)
        else:
            if self.uint8 or ws.size == 1:  # GetQuantizedConvolutionMultipler: float32 product
                reals = [float(np.float32(x.quant.scale[0]) * np.float32(s)) / out_s for s in ws]
            else:
                reals = [in_s * float(s) / out_s for s in ws]
            qs = [self.multiplier(r) for r in reals]
            self.q = np.array([q for q, _ in qs], np.int64)
            self.shift = np.array([s for _, s in qs], np.int64)
        self.act = self.act_range(out, int(o.get("fused_activation_function", 0)))
        qmin, qmax = _QTYPES[x.dtype]
        x_absmax = max(abs(qmin - self.in_zp), abs(qmax - self.in_zp))
        sum_dtype = ops.exact_float_dtype(self.w, self.w_zp, x_absmax, 0)
        self.fused_args = self.mac_args(sum_dtype, oc, x.dtype, ops.sum_bound(self.w, self.w_zp, x_absmax, 0))
        # a 1x1 conv over a 1 x batches image: filter [1, 1, IC, OC]
        self.wf = np.ascontiguousarray((self.w - self.w_zp).astype(sum_dtype).T[None, None])

    fused = True  # as _ConvBase.fused

    def run(self, ins, ctx):
        if self.fused:
            from qsim.tflite import _mac

            out = self.tout()
            codes = np.empty((1, 1, self.batches, self.w.shape[0]), out.dtype)
            st = _mac.new_stats()
            zp, chan, eff, tp = self.fused_args
            x = np.ascontiguousarray(ins[0]).reshape(1, 1, self.batches, self.w.shape[1])
            _mac.conv_fused(x, zp, self.wf, _UNIT_GEOM, chan, eff, tp, codes, st)
            record_stats(ctx, st, codes.size, self.options.acc_bits, self.act, _QTYPES[out.dtype])
            return [codes.reshape(out.shape)]
        x = ins[0].reshape(self.batches, self.w.shape[1])
        acc = ctx.narrow_acc(ops.fully_connected_acc(x, self.in_zp, self.w, self.w_zp, self.bias))
        if self.float_requant:
            v = ops.requantize_float(acc, self.eff)
        else:
            v = ops.requantize(acc, self.q, self.shift, single_rounding=ctx.options.single_rounding)
        out = self.tout()
        return [self.finish(v + self.out_zp, out, self.act, ctx).reshape(out.shape)]


class _Binary(Kernel):
    """ADD / MUL: two quantized operands of the output's type that broadcast to its shape."""

    n_inputs = (2, 2)

    def binary_operands(self) -> tuple[Tensor, Tensor, Tensor]:
        """(input 1, input 2, output), checked; sets the zero points ``zp1``, ``zp2``, ``out_zp``."""
        a = self.qtensor(self.tin(0), "input 1")
        b = self.qtensor(self.tin(1), "input 2")
        out = self.qtensor(self.tout(), "output")
        if not a.dtype == b.dtype == out.dtype:
            raise self.error(f"mixed types {a.type_name}, {b.type_name} -> {out.type_name}")
        self.check_shape(_broadcast_shape(a.shape, b.shape, self.error), out)
        self.zp1, self.zp2 = int(a.quant.zero_point[0]), int(b.quant.zero_point[0])
        self.out_zp = int(out.quant.zero_point[0])
        return a, b, out

    # the fused compiled kernel (`_mac.binary_fused`) or the NumPy composition `exact` ->
    # finish (False); the same bits and counts (tests/tflite/test_tflite_executor.py)
    fused = True

    def prepare_compiled(self) -> None:
        from qsim.tflite import _mac

        mul, m1, m2, m, left_shift = self.fused_multipliers()
        self.fused_args = (_mac.binary_params(mul, self.zp1, m1, self.zp2, m2, m, left_shift),
                           self.tail_params(self.tout().dtype))

    def exact(self, ins, ctx) -> np.ndarray:  # pragma: no cover - abstract
        """The requantized value before ``+ out_zp`` (NumPy, broadcasting)."""
        raise NotImplementedError

    def fused_multipliers(self) -> tuple:  # pragma: no cover - abstract
        """(mul, (q1, s1), (q2, s2), (q, shift), left_shift) for `_mac.binary_fused`."""
        raise NotImplementedError

    def run(self, ins, ctx):
        out = self.tout()
        if not self.fused:
            return [self.finish(self.exact(ins, ctx) + self.out_zp, out, self.act, ctx)]
        from qsim.tflite import _mac

        bp, tp = self.fused_args
        x1, x2 = (np.ascontiguousarray(v if v.shape == out.shape else np.broadcast_to(v, out.shape)).reshape(-1)
                  for v in ins)
        codes = np.empty(out.shape, out.dtype)
        st = _mac.new_stats()
        _mac.binary_fused(x1, x2, bp, tp, codes.reshape(-1), st)
        record_stats(ctx, st, codes.size, None, self.act, _QTYPES[out.dtype])
        return [codes]


def _broadcast_shape(a, b, error):
    try:
        return tuple(np.broadcast_shapes(tuple(a), tuple(b)))
    except ValueError:
        raise error(f"shapes {list(a)} and {list(b)} do not broadcast") from None


class Add(_Binary):
    """ADD int8 / uint8: left_shift 20, inputs pre-scaled by s_i / (2 max s), three roundings (§4)."""

    def prepare(self) -> None:
        a, b, out = self.binary_operands()
        self.left_shift = 20
        f32 = np.float32
        s1, s2, so = f32(a.quant.scale[0]), f32(b.quant.scale[0]), f32(out.quant.scale[0])
        twice_max = float(f32(2) * max(s1, s2))
        self.m1 = self.multiplier(float(s1) / twice_max)
        self.m2 = self.multiplier(float(s2) / twice_max)
        self.m_out = self.multiplier(twice_max / float(f32(1 << self.left_shift) * so))
        for name, (_, sh) in (("input 1", self.m1), ("input 2", self.m2), ("output", self.m_out)):
            if sh > 0:
                raise self.error(f"{name} multiplier >= 1 (scales {float(s1)}, {float(s2)} -> {float(so)})")
        self.act = self.act_range(out, int(self.op.options.get("fused_activation_function", 0)))

    def exact(self, ins, ctx):
        return ops.add(ins[0], self.zp1, self.m1, ins[1], self.zp2, self.m2, self.m_out, self.left_shift,
                       single_rounding=ctx.options.single_rounding)

    def fused_multipliers(self):
        return False, self.m1, self.m2, self.m_out, self.left_shift


class Mul(_Binary):
    """MUL int8 / uint8: MBQM((x1 - zp1)(x2 - zp2)) with the multiplier formed in float32 (§5)."""

    def prepare(self) -> None:
        a, b, out = self.binary_operands()
        f32 = np.float32
        real = f32(a.quant.scale[0]) * f32(b.quant.scale[0]) / f32(out.quant.scale[0])
        self.q, self.shift = self.multiplier(float(real))
        self.act = self.act_range(out, int(self.op.options.get("fused_activation_function", 0)))

    def exact(self, ins, ctx):
        return ops.mul(ins[0], self.zp1, ins[1], self.zp2, self.q, self.shift,
                       single_rounding=ctx.options.single_rounding)

    def fused_multipliers(self):
        return True, (0, 0), (0, 0), (self.q, self.shift), 0


class _PoolBase(Kernel):
    def prepare(self) -> None:
        o = self.op.options
        x = self.qtensor(self.tin(0), "input")
        out = self.qtensor(self.tout(), "output")
        if x.dtype != out.dtype or len(x.shape) != 4:
            raise self.error(f"input {x.type_name} {list(x.shape)} -> output {out.type_name}")
        if (float(x.quant.scale[0]), int(x.quant.zero_point[0])) != (float(out.quant.scale[0]), int(out.quant.zero_point[0])):
            raise self.error("input and output quantization differ (TFLite requires them equal for pooling)")
        self.k = (int(o.get("filter_height", 1)), int(o.get("filter_width", 1)))
        self.stride = (int(o.get("stride_h", 1)), int(o.get("stride_w", 1)))
        self.out_hw, self.pads = _pads(int(o.get("padding", 0)), x.shape[1:3], self.k, self.stride, (1, 1), self.error)
        self.check_shape((x.shape[0], *self.out_hw, x.shape[3]), out)
        self.act = self.act_range(out, int(o.get("fused_activation_function", 0)))

    average = False
    # the fused compiled kernel (`_mac.pool_fused`) or the NumPy composition (False); the
    # same bits and counts (tests/tflite/test_tflite_executor.py)
    fused = True

    def prepare_compiled(self) -> None:
        self.fused_args = (np.array([*self.k, *self.stride, *self.pads, self.average], np.int64),
                           self.tail_params(self.tout().dtype))

    def run(self, ins, ctx):
        out = self.tout()
        if not self.fused:
            return [self.finish(self.exact(ins[0], ctx), out, self.act, ctx)]
        from qsim.tflite import _mac

        geom, tp = self.fused_args
        codes = np.empty(out.shape, out.dtype)
        st = _mac.new_stats()
        _mac.pool_fused(np.ascontiguousarray(ins[0]), geom, tp, codes, st)
        record_stats(ctx, st, codes.size, self.options.acc_bits if self.average else None, self.act,
                     _QTYPES[out.dtype])
        return [codes]


class AveragePool2D(_PoolBase):
    """AVERAGE_POOL_2D: sum of raw codes over the clipped window, rounded division by the count (§6)."""

    average = True

    def exact(self, x, ctx):
        acc, n = ops.average_pool(x, self.k, self.stride, self.pads, self.out_hw)
        return ops.average_round(ctx.narrow_acc(acc), n)


class MaxPool2D(_PoolBase):
    """MAX_POOL_2D: max of raw codes over the clipped window, then the activation clamp."""

    def exact(self, x, ctx):
        return ops.max_pool(x, self.k, self.stride, self.pads, self.out_hw)


class Mean(Kernel):
    """MEAN int8 / uint8 (QuantizedMeanOrSum): 1/n folded into the multiplier (§6)."""

    n_inputs = (2, 2)

    def prepare(self) -> None:
        x = self.qtensor(self.tin(0), "input")
        out = self.qtensor(self.tout(), "output")
        if x.dtype != out.dtype:
            raise self.error(f"input {x.type_name} -> output {out.type_name}")
        axes = np.asarray(self.const(self.tin(1), "axis")).reshape(-1).tolist()
        r = len(x.shape)
        if any(not -r <= a < r for a in axes):
            raise self.error(f"axis {axes} out of range for rank {r}")
        self.axes = sorted({int(a) % r for a in axes})
        kept = tuple(1 if i in self.axes else d for i, d in enumerate(x.shape))
        if self.model.infer_shapes:
            keep = bool(self.op.options.get("keep_dims", False))
            self.check_shape(kept if keep else tuple(d for i, d in enumerate(x.shape) if i not in self.axes), out)
        if int(np.prod(kept)) != int(np.prod(out.shape)):
            raise self.error(f"reducing {list(x.shape)} over {self.axes} cannot give {list(out.shape)}")
        self.in_zp = int(x.quant.zero_point[0])
        self.out_zp = int(out.quant.zero_point[0])
        q0, s0 = self.multiplier(float(x.quant.scale[0]) / float(out.quant.scale[0]))
        n = int(np.prod([x.shape[a] for a in self.axes])) if self.axes else 1
        if n < 1:
            raise self.error("reduces an empty axis")
        self.q, self.shift = ops.mean_multiplier(q0, s0, n)
        self.act = (None, None)

    fused = True  # the compiled tail (`_mac.tail`) on the NumPy sums, or the NumPy composition

    def prepare_compiled(self) -> None:
        from qsim.tflite import _mac

        size = int(np.prod(self.tout().shape))
        try:
            chan = _mac.chan_params(None, self.q, self.shift, size)
        except ValueError:  # a multiplier the compiled tail does not take: this op stays on NumPy
            self.fused = False
            chan = _mac.chan_params(None, 0, 0, size)
        self.fused_args = (chan, np.zeros(size),
                           self.tail_params(self.tout().dtype))

    def run(self, ins, ctx):
        s, _ = ops.mean_sum(ins[0], self.in_zp, self.axes)
        if self.fused:
            from qsim.tflite import _mac

            out = self.tout()
            chan, eff, tp = self.fused_args
            codes = np.empty(out.shape, out.dtype)
            st = _mac.new_stats()
            _mac.tail(s.reshape(1, -1), chan, eff, tp, codes.reshape(1, -1), st)
            record_stats(ctx, st, codes.size, self.options.acc_bits, self.act, _QTYPES[out.dtype])
            return [codes]
        s = ctx.narrow_acc(s)
        v = ops.requantize(s, self.q, self.shift, single_rounding=ctx.options.single_rounding) + self.out_zp
        out = self.tout()
        return [self.finish(v, out, self.act, ctx).reshape(out.shape)]


class Reshape(Kernel):
    """RESHAPE: the same codes in the output tensor's shape (quantization unchanged)."""

    n_inputs = (1, 2)

    def prepare(self) -> None:
        x, out = self.tin(0), self.tout()
        if x is None or int(np.prod(x.shape)) != int(np.prod(out.shape)):
            raise self.error(f"cannot reshape {list(x.shape) if x else None} to {list(out.shape)}")

    def run(self, ins, ctx):
        return [np.ascontiguousarray(ins[0]).reshape(self.tout().shape).astype(self.tout().dtype, copy=True)]


class Softmax(Kernel):
    """SOFTMAX int8 / uint8 -> same, gemmlowp fixed point with the diff_min cut-off (§7)."""

    def prepare(self) -> None:
        x = self.qtensor(self.tin(0), "input")
        out = self.qtensor(self.tout(), "output")
        self.check_shape(x.shape, out)
        qmin, qmax = _QTYPES[out.dtype]
        if float(out.quant.scale[0]) != 1 / 256 or int(out.quant.zero_point[0]) != qmin:
            raise self.error(f"output quantization must be scale 1/256, zero point {qmin} "
                             f"(got {float(out.quant.scale[0])}, {int(out.quant.zero_point[0])})")
        beta = float(np.float32(self.op.options.get("beta", 1.0)))
        real = min(beta * float(x.quant.scale[0]) * float(1 << 26), float((1 << 31) - 1))
        self.q, self.left_shift = self.multiplier(real)  # QuantizeMultiplierGreaterThanOne
        if self.left_shift < 0:
            raise self.error(f"input scale {float(x.quant.scale[0])} too small for the softmax multiplier")
        self.diff_min = -math.floor(31.0 * (1 << 26) / (1 << self.left_shift))
        self.out_min, self.out_max = qmin, qmax
        in_min, in_max = _QTYPES[x.dtype]
        self.exp_table = ops.softmax_exp_table(self.q, self.left_shift, in_max - in_min)

    fused = True  # compiled (`_numba.softmax_rows`) or NumPy (`ops.softmax`): the same bits

    def run(self, ins, ctx):
        out = self.tout()
        x = ins[0]
        if self.fused and x.size:
            from qsim.tflite._numba import softmax_rows

            codes = np.empty(out.shape, out.dtype)
            softmax_rows(np.ascontiguousarray(x).reshape(-1, x.shape[-1]), self.exp_table, self.diff_min,
                         self.out_min, self.out_max, codes.reshape(-1, x.shape[-1]))
            return [codes]
        v = ops.softmax(x, self.q, self.left_shift, self.diff_min, self.out_min, self.out_max)
        return [v.astype(self.tout().dtype)]


class Logistic(Kernel):
    """LOGISTIC int8 / uint8: the float32 256-entry table of the reference resolver (§7)."""

    def prepare(self) -> None:
        x = self.qtensor(self.tin(0), "input")
        out = self.qtensor(self.tout(), "output")
        self.check_shape(x.shape, out)
        qmin, qmax = _QTYPES[x.dtype]
        if x.dtype != out.dtype:
            raise self.error(f"input {x.type_name} -> output {out.type_name}")
        self.qmin = qmin
        self.lut = ops.logistic_lut(float(x.quant.scale[0]), int(x.quant.zero_point[0]),
                                    float(out.quant.scale[0]), int(out.quant.zero_point[0]), qmin, qmax)

    def run(self, ins, ctx):
        return [self.lut[ins[0].astype(np.int64) - self.qmin].astype(self.tout().dtype)]


class Quantize(Kernel):
    """QUANTIZE float32 -> int8/uint8 (AffineQuantize), or int8/uint8 requantization."""

    def prepare(self) -> None:
        x, out = self.tin(0), self.qtensor(self.tout(), "output")
        self.check_shape(x.shape, out)
        self.qmin, self.qmax = _QTYPES[out.dtype]
        self.out_zp = int(out.quant.zero_point[0])
        self.from_float = x.dtype == np.dtype(np.float32)
        if self.from_float:
            self.scale = float(out.quant.scale[0])
        else:
            self.qtensor(x, "input")
            self.in_zp = int(x.quant.zero_point[0])
            self.q, self.shift = self.multiplier(float(x.quant.scale[0]) / float(out.quant.scale[0]))

    def run(self, ins, ctx):
        out = self.tout()
        if self.from_float:
            x = np.asarray(ins[0], np.float32)
            r = (x / np.float32(self.scale)).astype(np.float64)
            raw = np.sign(r) * np.floor(np.abs(r) + 0.5) + self.out_zp
            ctx.counter("requant").observe(np.clip(np.nan_to_num(raw), -2.0**62, 2.0**62).astype(np.int64), self.qmin, self.qmax)
            return [ops.quantize_float(x, self.scale, self.out_zp, self.qmin, self.qmax).astype(out.dtype)]
        v = ops.requantize(ins[0].astype(np.int64) - self.in_zp, self.q, self.shift,
                           single_rounding=ctx.options.single_rounding) + self.out_zp
        return [self.finish(v, out, (None, None), ctx)]


class Dequantize(Kernel):
    """DEQUANTIZE int8/uint8 -> float32: float32(double(scale) * (q - zp))."""

    def prepare(self) -> None:
        x = self.qtensor(self.tin(0), "input")
        self.check_shape(x.shape, self.tout())
        self.scale, self.zp = float(x.quant.scale[0]), int(x.quant.zero_point[0])

    def run(self, ins, ctx):
        return [ops.dequantize(ins[0], self.scale, self.zp)]


class Pad(Kernel):
    """PAD: fill with the output zero point (real 0) for quantized tensors."""

    n_inputs = (2, 2)

    def prepare(self) -> None:
        x, out = self.tin(0), self.tout()
        pads = np.asarray(self.const(self.tin(1), "paddings"), np.int64)
        if pads.shape != (len(x.shape), 2) or np.any(pads < 0):
            raise self.error(f"paddings {pads.tolist()} for rank {len(x.shape)}")
        self.pads = [tuple(p) for p in pads.tolist()]
        self.check_shape(tuple(d + a + b for d, (a, b) in zip(x.shape, self.pads)), out)
        self.fill = int(out.quant.zero_point[0]) if out.quant is not None and out.dtype in _QTYPES else 0

    def run(self, ins, ctx):
        return [np.pad(ins[0], self.pads, constant_values=self.fill).astype(self.tout().dtype)]


class _ResizeBase(Kernel):
    n_inputs = (2, 2)

    def prepare(self) -> None:
        x = self.qtensor(self.tin(0), "input")
        out = self.qtensor(self.tout(), "output")
        if len(x.shape) != 4 or len(out.shape) != 4 or x.dtype != out.dtype:
            raise self.error(f"input {list(x.shape)} -> output {list(out.shape)}")
        size = np.asarray(self.const(self.tin(1), "size")).reshape(-1).tolist()
        self.check_shape((x.shape[0], *size, x.shape[3]), out)
        self.out_hw = tuple(int(s) for s in size)
        self.align = bool(self.op.options.get("align_corners", False))
        self.half = bool(self.op.options.get("half_pixel_centers", False))
        if (float(x.quant.scale[0]), int(x.quant.zero_point[0])) != (float(out.quant.scale[0]), int(out.quant.zero_point[0])):
            raise self.error("input and output quantization differ (TFLite requires them equal for resize)")


class ResizeBilinear(_ResizeBase):
    """RESIZE_BILINEAR int8/uint8: 10-bit fixed-point interpolation on raw codes (§7)."""

    def run(self, ins, ctx):
        v = ops.resize_bilinear(ins[0], self.out_hw, self.align, self.half,
                                single_rounding=ctx.options.single_rounding)
        return [v.astype(self.tout().dtype)]


class ResizeNearestNeighbor(_ResizeBase):
    """RESIZE_NEAREST_NEIGHBOR: copy of the source cell chosen in float32."""

    def run(self, ins, ctx):
        x = ins[0]
        iy = ops.nearest_indices(x.shape[1], self.out_hw[0], self.align, self.half)
        ix = ops.nearest_indices(x.shape[2], self.out_hw[1], self.align, self.half)
        return [x[:, iy][:, :, ix].astype(self.tout().dtype)]


class Concatenation(Kernel):
    """CONCATENATION: a copy when every input has the output's parameters, else float32 requant."""

    n_inputs = (1, 1 << 16)

    def prepare(self) -> None:
        out = self.qtensor(self.tout(), "output")
        ins = [self.qtensor(self.tin(i), f"input {i}") for i in range(len(self.op.inputs))]
        r = len(out.shape)
        axis = int(self.op.options.get("axis", 0))
        if not -r <= axis < r:
            raise self.error(f"axis {axis} out of range for rank {r}")
        self.axis = axis % r
        shape = list(ins[0].shape)
        for t in ins[1:]:
            if len(t.shape) != r or any(a != b for i, (a, b) in enumerate(zip(t.shape, shape)) if i != self.axis):
                raise self.error(f"input shapes {[list(t.shape) for t in ins]} do not concatenate on axis {self.axis}")
            shape[self.axis] += t.shape[self.axis]
        self.check_shape(tuple(shape), out)
        op_q = (float(out.quant.scale[0]), int(out.quant.zero_point[0]))
        self.requant = [(float(t.quant.scale[0]), int(t.quant.zero_point[0])) != op_q for t in ins]
        self.params = [(float(t.quant.scale[0]), int(t.quant.zero_point[0])) for t in ins]
        self.act = self.act_range(out, int(self.op.options.get("fused_activation_function", 0)))

    def run(self, ins, ctx):
        out = self.tout()
        s_out, zp_out = float(out.quant.scale[0]), int(out.quant.zero_point[0])
        parts = []
        for x, rq, (s, zp) in zip(ins, self.requant, self.params):
            parts.append(ops.concat_requant(x, s, zp, s_out, zp_out) if rq else x.astype(np.int64))
        return [self.finish(np.concatenate(parts, axis=self.axis), out, self.act, ctx)]


# builtin operator code (schema.fbs BuiltinOperator) -> kernel class: the one registry
OP_TABLE: dict[int, type[Kernel]] = {
    0: Add,                      # ADD
    1: AveragePool2D,            # AVERAGE_POOL_2D
    2: Concatenation,            # CONCATENATION
    3: Conv2D,                   # CONV_2D
    4: DepthwiseConv2D,          # DEPTHWISE_CONV_2D
    6: Dequantize,               # DEQUANTIZE
    9: FullyConnected,           # FULLY_CONNECTED
    14: Logistic,                # LOGISTIC
    17: MaxPool2D,               # MAX_POOL_2D
    18: Mul,                     # MUL
    22: Reshape,                 # RESHAPE
    23: ResizeBilinear,          # RESIZE_BILINEAR
    25: Softmax,                 # SOFTMAX
    34: Pad,                     # PAD
    40: Mean,                    # MEAN
    97: ResizeNearestNeighbor,   # RESIZE_NEAREST_NEIGHBOR
    114: Quantize,               # QUANTIZE
}

SUPPORTED_OPS = ("ADD, AVERAGE_POOL_2D, CONCATENATION, CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE, "
                 "FULLY_CONNECTED, LOGISTIC, MAX_POOL_2D, MEAN, MUL, PAD, QUANTIZE, RESHAPE, "
                 "RESIZE_BILINEAR, RESIZE_NEAREST_NEIGHBOR, SOFTMAX")


class TfliteRun:
    """What `Program.run` returns: every non-constant tensor (stored dtype) and the counters
    ({"label/site": OverflowCounter}, built from the kernels' records on first access)."""

    def __init__(self, tensors: dict[int, np.ndarray], records: list, outputs: tuple[int, ...],
                 trace: Trace | None = None) -> None:
        self.tensors = tensors
        self.outputs = outputs
        self._trace = trace  # the walker's Trace (codes and formats by node name)
        self._records = records
        self._counters: dict[str, OverflowCounter] | None = None

    @property
    def trace(self) -> Trace | None:
        """The walker's `Trace`: codes and formats by node name, and (built with the counters,
        on first access) ``counters[node] = {site: OverflowCounter}``."""
        t = self._trace
        if t is not None and not t.counters:
            for key, counter in self.counters.items():
                label, _, site = key.rpartition("/")
                t.counters.setdefault(label, {})[site] = counter
        return t

    @property
    def counters(self) -> dict[str, OverflowCounter]:
        if self._counters is None:
            self._counters = materialize_counters(self._records)
            self._records = []
        return self._counters

    def output(self, i: int = 0) -> np.ndarray:
        return self.tensors[self.outputs[i]]


def op_label(op: Operator, model: TfliteModel) -> str:
    """'op3 CONV_2D -> name' (the first output tensor's name)."""
    name = model.tensors[op.outputs[0]].name if op.outputs else ""
    return f"op{op.index} {op.name} -> {name}"


class OpNode(Node):
    """A graph node whose ``op`` is a TFLite builtin operator name (``"CONV_2D"``), not a
    qsim `Op`: `prepare` checked it against `OP_TABLE`, so the IR's op check is skipped."""

    def __post_init__(self) -> None:
        pass


class _Step(NamedTuple):
    """What the op-table kernel needs for one operator node, fixed at prepare."""

    kernel: Any  # the prepared `Kernel` (or `_Missing`); its ``run`` is looked up per call
    template: list | None  # the operator's inputs: constants in place, None where a computed one
    # goes; None when they are exactly the node's inputs (no constant, nothing omitted)
    reads: tuple[int, ...]  # positions in template of the node's inputs, in node.inputs order
    shape: tuple[int, ...]  # the output tensor's shape


def _run_operator(program: Program, node: Node, inputs: list, ctx: NodeRun) -> np.ndarray:
    """The one op-table kernel: the node's prepared `Kernel` on its inputs and constants."""
    step = program.steps[node.name]
    tctx = ctx.state.get("tflite")
    if tctx is None:  # run by `qsim.runtime.execute` directly: the counters stay in the state
        tctx = ctx.state["tflite"] = _Ctx(program.options, [])
    tctx.label = node.name
    if step.template is None:  # the operator's inputs are exactly the node's
        ins = inputs
    else:
        ins = list(step.template)
        for pos, v in zip(step.reads, inputs):
            ins[pos] = v
    (out,) = step.kernel.run(ins, tctx)
    if out.shape != step.shape:
        raise TfliteError(f"{program.model.path}: {node.name}: output {list(out.shape)} != tensor shape "
                          f"{list(step.shape)}")
    return out


# the runtime op table: operator name -> the one kernel (each node's prepared Kernel does the work)
OPS = {name: _run_operator for name in SUPPORTED_OPS.split(", ")}


@dataclass
class Program:
    """A prepared model on the runtime protocol (`qsim.runtime.protocol`): `graph` is a view
    of subgraph 0 (an ``input`` node ``t{index}`` per model input, then one `OpNode` per
    operator in file order, named by `op_label`), `ops` maps every supported operator name
    to `_run_operator`, `kernels` are the prepared operators in file order."""

    model: TfliteModel
    options: TfliteOptions
    kernels: list[Kernel] = field(default_factory=list)
    threads: int = 1
    graph: Graph | None = None
    steps: dict[str, _Step] = field(default_factory=dict)
    tensor_of: dict[str, int] = field(default_factory=dict)  # node name -> its output tensor index
    output_values: dict[str, np.ndarray | None] = field(default_factory=dict)  # output node -> its
    # DEQUANTIZE table over the 256 codes (indexed by the code), None: the tensor is its value

    executor: ClassVar[str] = "tflite"
    input_dtype: ClassVar[Any] = None  # inputs are codes of each tensor's stored dtype: see check_input
    static_counters: ClassVar[dict] = {}
    counts_every_node: ClassVar[bool] = False
    ops: ClassVar[dict[str, Any]] = OPS

    def build_graph(self) -> None:
        """The graph view and the per-node steps (after every kernel's prepare: shapes are final)."""
        m = self.model
        nodes: list[Node] = [Node(f"t{i}", "input", attrs={"shape": tuple(m.tensors[i].shape)}) for i in m.inputs]
        producer = {i: f"t{i}" for i in m.inputs}
        for k in self.kernels:
            op = k.op
            if len(op.outputs) != 1:
                raise k.error(f"has {len(op.outputs)} outputs, expected 1")
            label = op_label(op, m)
            template: list = []
            reads, sources = [], []
            for i in op.inputs:
                if i >= 0 and i in producer:
                    reads.append(len(template))
                    sources.append(producer[i])
                    template.append(None)
                elif i >= 0 and m.tensors[i].data is not None:
                    template.append(m.tensors[i].data)
                else:
                    if i >= 0:  # neither computed earlier nor constant: raises when reached
                        k = _Missing(k, TfliteError(f"{m.path}: {label}: input tensor {i} '{m.tensors[i].name}' "
                                                    "is not computed yet"))
                    template.append(None)
            out = op.outputs[0]
            plain = reads == list(range(len(template)))
            self.steps[label] = _Step(k, None if plain else template, tuple(reads), tuple(m.tensors[out].shape))
            nodes.append(OpNode(label, op.name, sources))
            producer[out] = label
        missing = [i for i in m.outputs if i not in producer]
        if missing:
            raise TfliteError(f"{m.path}: output tensors {missing} are never computed")
        self.tensor_of = {name: i for i, name in producer.items()}
        # node -> its tensor's per-tensor affine quantization (what the trace records as its format)
        self.formats = {name: m.tensors[i].quant for name, i in self.tensor_of.items()
                        if m.tensors[i].quant is not None and not m.tensors[i].quant.per_channel}
        self.graph = Graph(nodes, [producer[i] for i in m.outputs], name=m.path, source=m.path)
        for name in self.graph.outputs:
            t = m.tensors[self.tensor_of[name]]
            q = t.dtype in _QTYPES and t.quant is not None and not t.quant.per_channel
            self.output_values[name] = (ops.dequantize(np.arange(256).astype(t.dtype), float(t.quant.scale[0]),
                                                       int(t.quant.zero_point[0])) if q else None)

    def check_input(self, node: Node, x: Any) -> np.ndarray:
        """The walker's input check for this program: `check_input` (stored dtype and shape)."""
        return check_input(self.model.tensors[self.tensor_of[node.name]], x, self.model.path)

    def feed(self, node: Node, x: np.ndarray, ctx: NodeRun) -> np.ndarray:
        return x

    def record(self, trace: Trace, node: Node, tensor: np.ndarray, keep: bool) -> None:
        """Codes in the stored dtype and their affine quantization by node name; an output's
        value dequantized (float)."""
        if keep:
            trace.codes[node.name] = tensor
            q = self.formats.get(node.name)
            if q is not None:
                trace.formats[node.name] = q
        if node.name in self.output_values:
            lut = self.output_values[node.name]
            trace.values[node.name] = tensor if lut is None else lut[tensor]  # int8: a negative code
            # indexes from the end, where the table keeps codes -128..-1

    def run(self, inputs: Any) -> TfliteRun:
        """Run on `inputs`: an array (single-input models) or {tensor index: array}, stored dtype.

        The runtime walker runs the graph; this adapter keys inputs and tensors by tensor
        index, sets the Numba threads, and keeps the counters lazy (`TfliteRun.counters`).
        """
        m = self.model
        if not isinstance(inputs, dict):
            if len(m.inputs) != 1:
                raise InputError(f"{m.path}: model has {len(m.inputs)} inputs; pass {{tensor index: array}}")
            inputs = {m.inputs[0]: inputs}
        feeds = {}
        for idx in m.inputs:
            if idx not in inputs:
                raise InputError(f"{m.path}: input tensor {idx} '{m.tensors[idx].name}' not given")
            feeds[f"t{idx}"] = inputs[idx]
        records: list = []
        ctx = _Ctx(self.options, records)
        threads_before = None
        if self.threads > 1:
            import numba

            ctx.parallel = True
            threads_before = numba.get_num_threads()
            numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
        try:
            trace = execute(self, feeds, state={"tflite": ctx})
        finally:
            if threads_before is not None:
                import numba

                numba.set_num_threads(threads_before)
        tensor_of = self.tensor_of
        return TfliteRun({tensor_of[name]: v for name, v in trace.codes.items()}, records, m.outputs, trace)


class _Missing:
    """A planned operator whose input is never computed: raises its error when reached."""

    def __init__(self, kernel: Kernel, error: TfliteError) -> None:
        self.op = kernel.op
        self.error = error

    def run(self, ins, ctx):
        raise self.error


def check_input(t: Tensor, x: Any, path: str = "") -> np.ndarray:
    """An input array in the tensor's stored dtype and shape (integers checked for range)."""
    x = np.asarray(x)
    if tuple(x.shape) != tuple(t.shape):
        if int(np.prod(x.shape)) == int(np.prod(t.shape)) and x.shape == tuple(t.shape)[1:]:
            x = x.reshape(t.shape)
        else:
            raise InputError(f"{path}: input tensor {t.index} '{t.name}' has shape {list(t.shape)}, got {list(x.shape)}")
    if x.dtype != t.dtype:
        if x.dtype.kind in "iu" and t.dtype.kind in "iu":
            info = np.iinfo(t.dtype)
            if x.size and (x.min() < info.min or x.max() > info.max):
                raise InputError(f"{path}: input tensor {t.index} '{t.name}' ({t.type_name}) values outside [{info.min}, {info.max}]")
        elif not (x.dtype.kind == "f" and t.dtype.kind == "f"):
            raise InputError(f"{path}: input tensor {t.index} '{t.name}' is {t.type_name}, got {x.dtype} "
                             "(quantize float inputs with quantize_input)")
        x = x.astype(t.dtype)
    return x


def quantize_input(t: Tensor, x: np.ndarray) -> np.ndarray:
    """Float values -> the input tensor's codes (AffineQuantize, float32)."""
    if t.dtype not in _QTYPES or t.quant is None:
        return np.asarray(x, t.dtype)
    qmin, qmax = _QTYPES[t.dtype]
    return ops.quantize_float(np.asarray(x, np.float32), float(t.quant.scale[0]),
                              int(t.quant.zero_point[0]), qmin, qmax).astype(t.dtype)


def prepare(model: TfliteModel, options: TfliteOptions | None = None, input_shapes: dict | None = None,
            threads: int = 1, **kw) -> Program:
    """Check every operator of subgraph 0 and precompute its parameters.

    ``threads`` > 1 runs the large CONV_2D / DEPTHWISE_CONV_2D layers' output rows on that
    many Numba threads (at most NUMBA_NUM_THREADS); the bits and counters do not change.
    On a loaded machine threads can be slower than one (they wait for a core).

    ``input_shapes`` ({input tensor index: shape}) runs the model at other input sizes (as
    TFLite's ``resize_tensor_input``): every non-constant tensor shape is then inferred op by
    op on a copy of the model (RESHAPE must keep its element count).
    """
    options = options or TfliteOptions(**kw)
    if input_shapes:
        tensors = [t if t.data is not None else replace(t) for t in model.tensors]
        for idx, shape in input_shapes.items():
            if idx not in model.inputs:
                raise InputError(f"{model.path}: tensor {idx} is not a model input")
            if len(shape) != len(model.tensors[idx].shape):
                raise InputError(f"{model.path}: input {idx} has rank {len(model.tensors[idx].shape)}, got {list(shape)}")
            tensors[idx].shape = tuple(int(d) for d in shape)
        model = replace(model, tensors=tensors, infer_shapes=True)
    if kw and options is not None and not isinstance(options, TfliteOptions):
        raise QsimError("pass either options or keyword arguments")
    prog = Program(model, options, threads=int(threads))
    for op in model.operators:
        cls = OP_TABLE.get(op.code)
        if cls is None:
            raise TfliteError(f"{model.path}: operator {op.index} is {op.name}, which is not supported; "
                              f"supported: {SUPPORTED_OPS}")
        try:
            prog.kernels.append(cls(op, model, options))
        except QsimError:
            raise
        except Exception as exc:  # corrupt parameters that got past the reader
            raise TfliteError(f"{model.path}: operator {op.index} ({op.name}): {type(exc).__name__}: {exc}") from None
    prog.build_graph()
    return prog


def whatif_report(model: TfliteModel, inputs: Any, options: TfliteOptions, input_shapes: dict | None = None) -> dict:
    """Run the reference and `options`; per operator, how many output values differ.

    Returns {"reference": TfliteRun, "whatif": TfliteRun, "layers": [dict per op]} where
    each layer dict has op, name, elements, differ, max_abs_diff (in LSB of the output).
    """
    ref = prepare(model, TfliteOptions(), input_shapes=input_shapes).run(inputs)
    alt = prepare(model, options, input_shapes=input_shapes).run(inputs)
    layers = []
    for op in model.operators:
        for i in op.outputs:
            a, b = ref.tensors[i], alt.tensors[i]
            if a.dtype.kind == "f":
                d = np.abs(a.astype(np.float64) - b.astype(np.float64))
            else:
                d = np.abs(a.astype(np.int64) - b.astype(np.int64))
            layers.append({"op": op.index, "type": op.name, "tensor": i, "name": model.tensors[i].name,
                           "elements": int(a.size), "differ": int(np.count_nonzero(d)),
                           "max_abs_diff": float(d.max()) if d.size else 0.0})
    return {"reference": ref, "whatif": alt, "layers": layers}
