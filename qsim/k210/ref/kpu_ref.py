"""Slow, obviously-correct reference of one KPU layer: Python ints and `fractions.Fraction`.

Written straight from ``k210-kpu.md`` §1.5-§1.8, independently of `qsim.k210.kpu` (no
NumPy arithmetic, no shifts where a rounding is meant: every division is a `Fraction`
rounded by name). Tests compare the two with hypothesis on random layers.

Values the hardware holds in 36 bits never come near 64 bits; for register values that
push B far outside int36 the vendor emulator computes ``A*norm_mul`` and
``(B - x_start)*y_mul`` in int64 and silently wraps. `wrap64` reproduces that (and the
simulator counts those values as ALU overflow events), so the reference stays defined.
"""
from __future__ import annotations

import math
from fractions import Fraction


def floor_div_pow2(value: int, shift: int) -> int:
    """floor(value / 2**shift), through an exact Fraction."""
    return math.floor(Fraction(value, 2 ** shift))


def round_act(t: int, s: int, mode: str) -> int:
    """T / 2**s rounded by the activation rounding `mode` (see `qsim.k210.kpu`)."""
    if s == 0:
        return t
    q = Fraction(t, 2 ** s)
    if mode == "half_even":
        return round(q)  # Fraction.__round__ rounds ties to even
    if mode == "half_up":
        return math.floor(q + Fraction(1, 2))
    if mode == "nncase":
        integral = math.floor(q)
        frac = q - integral  # in [0, 1)
        sign = -1 if t < 0 else 1
        if frac < Fraction(1, 2):
            return integral
        if frac > Fraction(1, 2):
            return integral + sign
        return integral + sign if integral % 2 == 1 else integral
    raise ValueError(mode)


def wrap64(value: int) -> int:
    """Two's complement wrap to int64 (what the emulator's int64 arithmetic does)."""
    return ((value + (1 << 63)) % (1 << 64)) - (1 << 63)


def conv_ref(x, w, depthwise: bool, pad_value: int, arg_x: int, shr_x: int, arg_w: int, shr_w: int,
             arg_add: int) -> list:
    """A[o][y][x] for x = [C][H][W] ints, w = [OC][C|1][K][K] ints."""
    c_in, h, wd = len(x), len(x[0]), len(x[0][0])
    k = len(w[0][0])
    p = (k - 1) // 2

    def pix(c, yy, xx):
        return x[c][yy][xx] if 0 <= yy < h and 0 <= xx < wd else pad_value

    out = []
    for o in range(len(w)):
        chans = [o] if depthwise else list(range(c_in))
        g = 1 if depthwise else c_in
        sw = sum(w[o][ci][ky][kx] for ci in range(len(chans)) for ky in range(k) for kx in range(k))
        plane = []
        for y in range(h):
            row = []
            for xx in range(wd):
                prod = sx = 0
                for ci, c in enumerate(chans):
                    for ky in range(k):
                        for kx in range(k):
                            v = pix(c, y - p + ky, xx - p + kx)
                            prod += v * w[o][ci][ky][kx]
                            sx += v
                row.append(prod + floor_div_pow2(arg_x * sx, shr_x) + floor_div_pow2(arg_w * sw, shr_w)
                           + arg_add * g)
            plane.append(row)
        out.append(plane)
    return out


def bn_ref(a: list, mul: list, shift: list, add: list) -> list:
    return [[[wrap64(floor_div_pow2(wrap64(v * mul[o]), shift[o]) + add[o]) for v in row] for row in plane]
            for o, plane in enumerate(a)]


def act_ref_value(b: int, x_start: list, y_mul: list, shift: list, bias: list,
                  compare: str = "strict", rounding: str = "nncase") -> int:
    seg = 0
    for i in range(len(x_start)):
        if (b > x_start[i]) if compare == "strict" else (b >= x_start[i]):
            seg = i  # the highest matching index wins
    r = round_act(wrap64(wrap64(b - x_start[seg]) * y_mul[seg]), shift[seg], rounding) + bias[seg]
    return min(max(r, 0), 255)


def act_ref(b: list, table, compare: str = "strict", rounding: str = "nncase") -> list:
    xs, ym, sh, bi = ([int(v) for v in arr] for arr in (table.x_start, table.y_mul, table.shift, table.bias))
    return [[[act_ref_value(v, xs, ym, sh, bi, compare, rounding) for v in row] for row in plane] for plane in b]


POOLS = {  # pool_type -> (kind, window, stride, select offset)
    0: ("bypass", 1, 1, (0, 0)), 1: ("max", 2, 2, None), 2: ("mean", 2, 2, None),
    3: ("max", 4, 4, None), 4: ("mean", 4, 4, None), 5: ("select", 2, 2, (0, 0)),
    6: ("select", 2, 2, (0, 1)), 7: ("select", 4, 4, (0, 0)), 8: ("mean", 2, 1, None),
    9: ("max", 2, 1, None),
}


def pool_ref(z: list, pool_type: int, mean_rounding: str = "floor") -> list:
    kind, win, stride, off = POOLS[pool_type]
    out = []
    for plane in z:
        h, wd = len(plane), len(plane[0])
        rows = []
        for oy in range(h // stride):
            row = []
            for ox in range(wd // stride):
                y0, x0 = oy * stride, ox * stride
                if kind in ("bypass", "select"):
                    yy, xx = y0 + off[0], x0 + off[1]
                    row.append(plane[yy][xx] if yy < h and xx < wd else 0)
                elif kind == "max":
                    row.append(max(plane[y0 + ky][x0 + kx] if y0 + ky < h and x0 + kx < wd else 0
                                   for ky in range(win) for kx in range(win)))
                else:
                    s = sum(plane[min(y0 + ky, h - 1)][min(x0 + kx, wd - 1)]
                            for ky in range(win) for kx in range(win))
                    q = Fraction(s, win * win)
                    row.append(math.floor(q) if mean_rounding == "floor" else math.floor(q + Fraction(1, 2)))
            rows.append(row)
        out.append(rows)
    return out
