"""The CPU-side ops of a kmodel v4, with the vendor runtime's arithmetic (``k210-kpu.md`` §7.3).

Contracts (x86 build of the K210 SDK's ``nncase/v0`` runtime, the golden outputs' producer):

* quantize: ``q = clamp(roundf(x*scale + zp), 0, 255)`` in float32, ``roundf`` = half away
  from zero; ``scale`` is the reciprocal of the step.
* dequantize: ``x = float32(q - zp) * (1.0f / scale)`` (float32).
* quantized_binary: each operand ``mul_and_carry_shift(q + offset, mul, shift)``: the int64
  product shifted right with round-half-up (add 2**(shift-1), arithmetic shift) and cast to
  int32; the op in int32 (``div``: ``(a + b/2) / b`` with C truncating division); the result
  through the same rounding shift with the output mul/shift, plus the output offset, clamped
  to 0..255. Broadcasting: a dimension of size 1 is read at index 0.
* reduce: float32, sequential in row-major order from the stored initial value (``mean`` =
  sum times ``out_size / in_size``).
* unary: float32; exp/log/sin/cos/rsqrt evaluated in float64 and rounded to float32 (this
  matched glibc ``expf`` on every slim-320 value; not proved for all inputs).
* binary (float32), transpose, concat (bytes), pad, memory_copy, softmax, resize_image as
  the runtime's reference kernels.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from qsim.errors import KmodelError


def carry_shift_half_up(value: np.ndarray, shift: int) -> np.ndarray:
    """``(value + 2**(shift-1)) >> shift`` on int64 (shift 0: unchanged).

    >>> carry_shift_half_up(np.array([5, 6, -5, -6]), 2).tolist()
    [1, 2, -1, -1]
    """
    if shift == 0:
        return value
    return (value + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift)


def _wrap_int32(v: np.ndarray) -> np.ndarray:
    return v.astype(np.int64).astype(np.uint64).astype(np.uint32).view(np.int32).astype(np.int64)


def mul_and_carry_shift(value: np.ndarray, mul: int, shift: int) -> np.ndarray:
    """int32(carry_shift_half_up(int64(value) * mul, shift)) (the runtime narrows to int32)."""
    shift = int(shift) & 0xFF  # the runtime passes an int32 shift as uint8
    if shift > 63:
        raise KmodelError(f"quantized shift {shift} exceeds the 64-bit product")
    prod = value.astype(np.int64) * np.int64(mul)
    return _wrap_int32(carry_shift_half_up(prod, shift))


def _trunc_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) ^ (b < 0), -q, q)


def quantized_binary(qa: np.ndarray, qb: np.ndarray, op: str, a_shape, b_shape, out_shape,
                     a_offset: int, a_mul: int, a_shift: int, b_offset: int, b_mul: int, b_shift: int,
                     out_offset: int, out_mul: int, out_shift: int) -> np.ndarray:
    """uint8 result of a quantized binary op on uint8 operands (shapes are 4-D, broadcast from 1)."""
    a = np.broadcast_to(qa.reshape(a_shape).astype(np.int64), out_shape)
    b = np.broadcast_to(qb.reshape(b_shape).astype(np.int64), out_shape)
    a = mul_and_carry_shift(a + a_offset, a_mul, a_shift)
    b = mul_and_carry_shift(b + b_offset, b_mul, b_shift)
    if op == "add":
        r = a + b
    elif op == "sub":
        r = a - b
    elif op == "mul":
        r = a * b
    elif op == "div":
        if np.any(b == 0):
            raise KmodelError("quantized_binary div: division by zero")
        r = _trunc_div(a + _trunc_div(b, np.full_like(b, 2)), b)
    elif op == "min":
        r = np.minimum(a, b)
    elif op == "max":
        r = np.maximum(a, b)
    else:
        raise KmodelError(f"quantized_binary: unknown op {op!r}")
    r = _wrap_int32(r)
    out = mul_and_carry_shift(r, out_mul, out_shift) + out_offset
    return np.clip(out, 0, 255).astype(np.uint8).reshape(-1)


def quantize(x: np.ndarray, zero_point: int, scale: float) -> np.ndarray:
    """uint8 codes: clamp(roundf(x*scale + zp), 0, 255) with float32 arithmetic."""
    t = x.astype(np.float32) * np.float32(scale) + np.float32(zero_point)
    t64 = t.astype(np.float64)
    r = np.sign(t64) * np.floor(np.abs(t64) + 0.5)  # roundf: half away from zero
    r = np.nan_to_num(r, nan=0.0)
    return np.clip(r, 0, 255).astype(np.uint8)


def dequantize(q: np.ndarray, zero_point: int, scale: float) -> np.ndarray:
    """float32 values: float32(q - zp) * (1.0f / scale)."""
    div = np.float32(1.0) / np.float32(scale)
    return (q.astype(np.int64) - zero_point).astype(np.float32) * div


@njit(cache=True)
def _reduce4(x, out_shape, op, init):
    out = np.full(out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3], init, np.float32)
    n0, n1, n2, n3 = x.shape
    for d0 in range(n0):
        o0 = d0 if out_shape[0] > 1 else 0
        for d1 in range(n1):
            o1 = d1 if out_shape[1] > 1 else 0
            for d2 in range(n2):
                o2 = d2 if out_shape[2] > 1 else 0
                for d3 in range(n3):
                    o3 = d3 if out_shape[3] > 1 else 0
                    k = ((o0 * out_shape[1] + o1) * out_shape[2] + o2) * out_shape[3] + o3
                    a = x[d0, d1, d2, d3]
                    b = out[k]
                    if op == 0 or op == 3:
                        out[k] = b + a
                    elif op == 1:
                        out[k] = a if a < b else b
                    else:
                        out[k] = a if b < a else b
    return out


def reduce(x: np.ndarray, op: str, in_shape, out_shape, init_value: float) -> np.ndarray:
    """float32 reduction over the axes where `out_shape` is 1, sequential like the runtime."""
    ops = ("mean", "min", "max", "sum")
    out = _reduce4(x.astype(np.float32).reshape(in_shape), np.array(out_shape, np.int64),
                   ops.index(op), np.float32(init_value))
    if op == "mean":
        out = out * np.float32(np.float32(out.size) / np.float32(x.size))
    return out


def unary(x: np.ndarray, op: str) -> np.ndarray:
    x = x.astype(np.float32)
    with np.errstate(all="ignore"):
        table = {
            "abs": lambda v: np.abs(v),
            "ceil": lambda v: np.ceil(v),
            "floor": lambda v: np.floor(v),
            "neg": lambda v: -v,
            "square": lambda v: v * v,
            "exp": lambda v: np.exp(v.astype(np.float64)).astype(np.float32),
            "log": lambda v: np.log(v.astype(np.float64)).astype(np.float32),
            "sin": lambda v: np.sin(v.astype(np.float64)).astype(np.float32),
            "cos": lambda v: np.cos(v.astype(np.float64)).astype(np.float32),
            "rsqrt": lambda v: (1.0 / np.sqrt(v.astype(np.float64))).astype(np.float32),
        }
        if op not in table:
            raise KmodelError(f"unary: unknown op {op!r}")
        return table[op](x).astype(np.float32)


def binary(a: np.ndarray, b: np.ndarray, op: str, a_shape, b_shape, out_shape,
           act_min: float, act_max: float) -> np.ndarray:
    a = np.broadcast_to(a.astype(np.float32).reshape(a_shape), out_shape)
    b = np.broadcast_to(b.astype(np.float32).reshape(b_shape), out_shape)
    with np.errstate(all="ignore"):
        r = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
             "min": np.minimum, "max": np.maximum}[op](a, b).astype(np.float32)
    return np.minimum(np.maximum(r, np.float32(act_min)), np.float32(act_max)).reshape(-1)


@njit(cache=True)
def _softmax(x, beta):
    out = np.empty_like(x)
    for r in range(x.shape[0]):
        m = x[r, 0]
        for i in range(x.shape[1]):
            if x[r, i] > m:
                m = x[r, i]
        s = np.float32(0.0)
        for i in range(x.shape[1]):
            v = np.float32(np.exp(np.float64(np.float32((x[r, i] - m) * beta))))
            s = np.float32(s + v)
            out[r, i] = v
        for i in range(x.shape[1]):
            out[r, i] = np.float32(out[r, i] / s)
    return out


def softmax(x: np.ndarray, outer: int, inner: int, beta: float) -> np.ndarray:
    return _softmax(x.astype(np.float32).reshape(outer, inner), np.float32(beta)).reshape(-1)


def pad(x: np.ndarray, in_shape, paddings, value) -> np.ndarray:
    arr = x.reshape(in_shape)
    return np.pad(arr, [tuple(p) for p in paddings], constant_values=value).reshape(-1)


def transpose(x: np.ndarray, in_shape, perm) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x.reshape(in_shape), perm)).reshape(-1)


def concat(inputs: list[np.ndarray], dims: list[int], inner_bytes: int, outer: int) -> np.ndarray:
    """Byte-wise concat: per outer index, each input's inner_bytes*dims[i] bytes in turn."""
    parts = [inp.view(np.uint8)[: outer * inner_bytes * d].reshape(outer, inner_bytes * d)
             for inp, d in zip(inputs, dims)]
    return np.concatenate(parts, axis=1).reshape(-1)


def resize_image(x: np.ndarray, in_shape, out_h: int, out_w: int, mode: str, align_corners: bool) -> np.ndarray:
    n, c, h, w = in_shape
    arr = x.reshape(in_shape)
    hs = np.float32(h) / np.float32(out_h)
    ws = np.float32(w) / np.float32(out_w)
    if mode == "nearest":
        iy = np.minimum(np.floor(np.arange(out_h, dtype=np.float32) * hs).astype(np.int64), h - 1)
        ix = np.minimum(np.floor(np.arange(out_w, dtype=np.float32) * ws).astype(np.int64), w - 1)
        return np.ascontiguousarray(arr[:, :, iy][:, :, :, ix]).reshape(-1)
    if align_corners and out_h > 1:
        hs = np.float32(h - 1) / np.float32(out_h - 1)
    if align_corners and out_w > 1:
        ws = np.float32(w - 1) / np.float32(out_w - 1)
    fy = np.arange(out_h, dtype=np.float32) * hs
    fx = np.arange(out_w, dtype=np.float32) * ws
    y0 = np.floor(fy).astype(np.int64)
    x0 = np.floor(fx).astype(np.int64)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    dy = (fy - y0.astype(np.float32))[:, None]
    dx = (fx - x0.astype(np.float32))[None, :]
    one = np.float32(1)
    v = arr.astype(np.float32)
    v0, v1 = v[:, :, y0][:, :, :, x0], v[:, :, y1][:, :, :, x0]
    v2, v3 = v[:, :, y0][:, :, :, x1], v[:, :, y1][:, :, :, x1]
    a0, a1 = (one - dy) * (one - dx), dy * (one - dx)
    a2, a3 = (one - dy) * dx, dy * dx
    r = ((v0 * a0 + v1 * a1) + v2 * a2) + v3 * a3
    if x.dtype == np.uint8:
        r = np.trunc(r).astype(np.uint8)
    return r.astype(x.dtype).reshape(-1)
