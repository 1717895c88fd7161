"""Casts between reals and Q-format codes, and exact fixed-point arithmetic.

Contract
--------
* Codes are ``int64`` ndarrays. Every signed format up to 64 bits and every unsigned
  format up to 63 bits is supported (``UQ`` with a 64-bit word does not fit int64 and is
  refused with a `FormatError`).
* Nothing rounds or overflows implicitly. The only rounding sites are `quantize`
  (real -> code) and `rescale`/`requantize` (dropping fraction bits); the only overflow
  sites are `narrow` and its users (`quantize`, `rescale`, `requantize`, `accumulate`,
  `saturating_sum`). Each takes ``rounding=`` / ``overflow=`` as required keywords, and an
  optional `OverflowCounter` that sees the exact value *before* narrowing.
* `mul` and `add` are exact: their result format follows the word-length table of
  `qsim.fixed.format` (product word = a.word + b.word; sum: one more integer bit);
  `sum_format` gives the tightest accumulator for n terms.
* Values beyond int64 (huge floats, left shifts of large codes, shifts >= 64) are handled
  exactly with Python ints on the affected elements only, so results never depend on
  int64 wrap-around; an exact result that still cannot be stored (an unsigned 64-bit
  word, a product wider than 64 bits) raises a `QsimError`.
* Results are element-wise: they do not depend on array shape, batch size or threads.
  A compiled Numba path (`qsim.fixed._numba`) is used for large arrays; it is tested to
  give identical codes and counts.

>>> from qsim.fixed import QFormat
>>> f = QFormat.parse("Q2.5")
>>> quantize(np.array([0.1, -0.515625, 7.0]), f, rounding="half_even", overflow="saturate")
array([   3,  -16,  127])
>>> dequantize(np.array([3, -16, 127]), f)
array([ 0.09375, -0.5    ,  3.96875])
>>> requantize(np.array([-16, 17]), f, QFormat.parse("Q2.3"), rounding="half_even", overflow="saturate")
array([-4,  4])
"""
from __future__ import annotations

import math

import numpy as np

from qsim.errors import FormatError, QsimError, QuantizationError
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.format import MAX_WORD_BITS, QFormat
from qsim.fixed.modes import Overflow, Rounding, round_up, shift_round, shift_round_int

_TWO63 = float(2**63)
# Arrays at least this large take the compiled path (below it, call overhead dominates).
NUMBA_MIN_SIZE = 4096


# --- helpers -------------------------------------------------------------------------
def _code_format(fmt: "QFormat | str", what: str = "format") -> QFormat:
    fmt = QFormat.parse(fmt)
    if not fmt.signed and fmt.word_bits >= 64:
        raise FormatError(
            f"{what} {fmt}: unsigned 64-bit codes do not fit int64; unsigned words have at most 63 bits"
        )
    return fmt


def _word_range(bits: int, signed: bool) -> tuple[int, int]:
    if not isinstance(bits, (int, np.integer)) or isinstance(bits, bool):
        raise FormatError(f"word width must be an int, got {bits!r}")
    bits = int(bits)
    top = MAX_WORD_BITS if signed else MAX_WORD_BITS - 1
    if not 1 <= bits <= top:
        raise FormatError(
            f"{'signed' if signed else 'unsigned'} word of {bits} bits is not supported (1..{top} bits; codes are int64)"
        )
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _as_int_array(raw, what: str) -> np.ndarray:
    """int64 array, or an object array of Python ints when values exceed int64."""
    arr = np.asarray(raw)
    if not isinstance(raw, np.ndarray) and arr.dtype.kind in "fuO":
        arr = np.array(raw, dtype=object)  # a list of Python ints beyond int64: keep them exact
    if arr.dtype == object:
        flat = arr.reshape(-1).tolist()
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in flat):
            raise QuantizationError(f"{what}: expected integers, got {arr.dtype} values")
        ints = [int(v) for v in flat]
        if all(-(2**63) <= v < 2**63 for v in ints):
            return np.array(ints, dtype=np.int64).reshape(arr.shape)
        out = np.empty(arr.shape, dtype=object)
        out.reshape(-1)[:] = ints
        return out
    if arr.dtype.kind == "b" or arr.dtype.kind == "i":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "u":
        if arr.dtype.itemsize == 8 and arr.size and int(arr.max()) >= 2**63:
            return _as_int_array(arr.astype(object), what)
        return arr.astype(np.int64)
    raise QuantizationError(f"{what}: expected an integer array, got dtype {arr.dtype}")


def _check_codes(q: np.ndarray, fmt: QFormat, what: str) -> np.ndarray:
    q = _as_int_array(q, what)
    if q.size:
        lo, hi = int(q.min()), int(q.max())
        if lo < fmt.min_code or hi > fmt.max_code:
            bad = lo if lo < fmt.min_code else hi
            raise QuantizationError(
                f"{what}: code {bad} is outside {fmt} [{fmt.min_code}, {fmt.max_code}]"
            )
    return q


def _nan_check(x: np.ndarray, what: str) -> None:
    nan = np.isnan(x)
    if nan.any():
        count = int(np.count_nonzero(nan))
        first = np.unravel_index(int(np.argmax(nan)), x.shape) if x.ndim else ()
        raise QuantizationError(
            f"{what}: {count} NaN value(s) of {x.size}; first at index {tuple(int(i) for i in first)}"
        )


# --- narrowing -----------------------------------------------------------------------
def narrow(raw, bits: int, signed: bool, *, overflow, counter: OverflowCounter | None = None) -> np.ndarray:
    """Fit exact integers into a `bits`-bit word.

    Args:
        raw: exact integers (int64 array, or Python ints / object array beyond int64).
        bits: word width (1..64 signed, 1..63 unsigned).
        signed: two's complement (True) or unsigned.
        overflow: ``saturate`` clamps to the word's range; ``wrap`` keeps the low `bits`
            bits (value modulo ``2**bits``, sign-extended when signed).
        counter: sees `raw` against the word's range.

    Returns:
        int64 codes of the same shape.

    >>> narrow(np.array([-129, -128, 127, 128, 300]), 8, True, overflow="wrap")
    array([ 127, -128,  127, -128,   44])
    """
    overflow = Overflow.parse(overflow)
    lo, hi = _word_range(bits, signed)
    raw = _as_int_array(raw, "narrow")
    if counter is not None:
        counter.observe(raw, lo, hi)
    if raw.dtype == object:  # beyond int64: exact Python ints
        span = 1 << bits
        if overflow is Overflow.SATURATE:
            f = lambda v: min(max(v, lo), hi)
        else:
            f = lambda v: (v - lo) % span + lo
        return np.vectorize(f, otypes=[np.int64])(raw) if raw.size else raw.astype(np.int64)
    if overflow is Overflow.SATURATE:
        return np.clip(raw, lo, hi)
    if signed:
        if bits == 64:
            return raw.copy()
        k = np.uint64(64 - bits)  # sign-extend the low bits: shift up in uint64, back down arithmetically
        return ((raw.view(np.uint64) << k).view(np.int64)) >> np.int64(k)
    return (raw.view(np.uint64) & np.uint64(hi)).view(np.int64)


def accumulate(raw, acc_bits: int, *, overflow, counter: OverflowCounter | None = None) -> np.ndarray:
    """Model a signed `acc_bits` accumulator holding an exact sum `raw`.

    ``wrap`` equals the result of a running two's-complement sum of any order (addition
    modulo ``2**acc_bits`` is associative). ``saturate`` clamps the *final* exact sum: the
    'saturate at the end' model (e.g. a wide internal adder with a saturating output
    register). For an accumulator that saturates at each step use `saturating_sum`.
    """
    return narrow(raw, acc_bits, True, overflow=overflow, counter=counter)


# --- real <-> code -------------------------------------------------------------------
def _round_float(v: np.ndarray, rounding: Rounding) -> np.ndarray:
    """Exact rounding of finite float64 `v` to integer-valued float64.

    ``floor(v)`` and ``v - floor(v)`` are exact in binary floating point, so ties are
    decided by comparing the exact fractional part with 0.5 (never ``floor(v + 0.5)``,
    whose addition can round).
    """
    fl = np.floor(v)
    if rounding is Rounding.FLOOR:
        return fl
    d = v - fl  # exact, in [0, 1)
    # the one rule (`round_up`); a tie implies |fl| < 2**53, so fmod is exact there
    up = round_up(d, 0.5, v < 0, np.fmod(fl, 2.0) != 0, rounding.code)
    return fl + up  # exact: when up is True, |fl| < 2**53


def quantize(x, fmt: "QFormat | str", *, rounding, overflow, counter: OverflowCounter | None = None) -> np.ndarray:
    """Real values -> int64 codes of `fmt`: ``narrow(round(x * 2**frac_bits))``.

    Args:
        x: real values (any float dtype; integer arrays are scaled exactly).
        fmt: the destination format (a `QFormat` or a string `QFormat.parse` reads).
        rounding: one of floor, toward_zero, half_up, half_even, half_away (required).
        overflow: saturate or wrap (required).
        counter: sees the exact rounded values against ``[min_code, max_code]``.

    Raises:
        QuantizationError: NaN anywhere (message: count and first index); ``±inf`` under
            ``wrap``. Under ``saturate`` ``±inf`` clamps and counts as an overflow event.
    """
    fmt = _code_format(fmt)
    rounding, overflow = Rounding.parse(rounding), Overflow.parse(overflow)
    x = np.asarray(x)
    if x.dtype.kind in "biu" or x.dtype == object:
        raw = _as_int_array(x, f"quantize to {fmt}")
        raw = rescale(raw, 0, fmt, rounding=rounding, overflow=overflow, counter=counter)
        return raw
    if x.dtype.kind != "f":
        raise QuantizationError(f"quantize to {fmt}: expected real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    _nan_check(x, f"quantize to {fmt}")
    if x.size >= NUMBA_MIN_SIZE:
        from qsim.fixed import _numba

        if _numba.available():
            out = _numba.quantize(x, fmt, rounding, overflow, counter)
            if out is not None:
                return out
    return quantize_numpy(x, fmt, rounding, overflow, counter)


def quantize_numpy(x: np.ndarray, fmt: QFormat, rounding: Rounding, overflow: Overflow, counter) -> np.ndarray:
    """The NumPy path of `quantize` (finite-checked float64 `x`); see `quantize`."""
    inf = np.isinf(x)
    if inf.any() and overflow is Overflow.WRAP:
        first = np.unravel_index(int(np.argmax(inf)), x.shape) if x.ndim else ()
        raise QuantizationError(
            f"quantize to {fmt}: {int(np.count_nonzero(inf))} infinite value(s) cannot wrap; "
            f"first at index {tuple(int(i) for i in first)} (use overflow='saturate')"
        )
    with np.errstate(over="ignore"):
        v = np.ldexp(x, fmt.frac_bits)  # exact unless it overflows to inf
    r = _round_float(np.where(np.isfinite(v), v, 0.0), rounding)
    big = ~(np.abs(r) < _TWO63) | (np.isinf(v) & ~inf)
    if not big.any() and not inf.any():
        return narrow(r.astype(np.int64), fmt.word_bits, fmt.signed, overflow=overflow, counter=counter)
    # Rare: codes beyond int64 or infinities. Exact Python ints, element by element.
    exact: list = []  # the exact rounded value of each element; +-inf stay floats
    for xv, rv, is_big in zip(x.ravel().tolist(), r.ravel().tolist(), big.ravel().tolist()):
        if math.isinf(xv):
            exact.append(xv)
        elif is_big:  # x = num / den exactly, den a power of two
            num, den = xv.as_integer_ratio()
            exact.append(shift_round_int(num << fmt.frac_bits, den.bit_length() - 1, rounding))
        else:
            exact.append(int(rv))
    if counter is not None:
        counter.observe(np.array(exact, dtype=object), fmt.min_code, fmt.max_code)
    # +-inf saturate (wrap raised above); the rest narrows per `overflow`
    raw = [(fmt.max_code if v > 0 else fmt.min_code) if isinstance(v, float) else v for v in exact]
    return narrow(np.array(raw, dtype=object).reshape(x.shape), fmt.word_bits, fmt.signed, overflow=overflow)


def dequantize(q, fmt: "QFormat | str") -> np.ndarray:
    """Codes -> float64 values ``q * 2**-frac_bits`` (exact for words up to 53 bits)."""
    fmt = QFormat.parse(fmt)
    q = _as_int_array(q, f"dequantize {fmt}")
    if q.dtype == object:
        return np.vectorize(lambda v: math.ldexp(float(v), -fmt.frac_bits), otypes=[np.float64])(q)
    return np.ldexp(q.astype(np.float64), -fmt.frac_bits)


# --- code -> code --------------------------------------------------------------------
def rescale(raw, src_frac: int, dst_fmt: "QFormat | str", *, rounding, overflow,
            counter: OverflowCounter | None = None) -> np.ndarray:
    """The one requantization every kernel uses: exact integers with `src_frac` fraction
    bits (e.g. an accumulator) -> codes of `dst_fmt`.

    ``round(raw * 2**(dst.frac - src_frac))`` per `rounding` (exact; only when fraction
    bits are dropped), then `narrow` to the destination word per `overflow`; `counter`
    sees the rounded value.
    """
    dst_fmt = _code_format(dst_fmt, "destination format")
    rounding, overflow = Rounding.parse(rounding), Overflow.parse(overflow)
    if not isinstance(src_frac, (int, np.integer)) or isinstance(src_frac, bool):
        raise FormatError(f"src_frac must be an int, got {src_frac!r}")
    raw = _as_int_array(raw, f"rescale to {dst_fmt}")
    shift = int(src_frac) - dst_fmt.frac_bits
    if raw.dtype == np.int64 and raw.size >= NUMBA_MIN_SIZE and 0 <= shift <= 63:
        from qsim.fixed import _numba

        if _numba.available():
            return _numba.rescale(raw, shift, dst_fmt, rounding, overflow, counter)
    return narrow(_shift_exact(raw, shift, rounding), dst_fmt.word_bits, dst_fmt.signed,
                  overflow=overflow, counter=counter)


def _shift_exact(raw: np.ndarray, shift: int, rounding: Rounding) -> np.ndarray:
    """Exact ``round(raw / 2**shift)``; int64 when possible, Python ints otherwise."""
    if raw.dtype == object or shift >= 64:
        f = lambda v: shift_round_int(int(v), shift, rounding)
        out = np.empty(raw.shape, dtype=object)
        out.reshape(-1)[:] = [f(v) for v in raw.reshape(-1).tolist()]
        return _as_int_array(out, "rescale")
    if shift > 0:
        return shift_round(raw, shift, rounding)
    if shift == 0:
        return raw
    k = -shift
    if raw.size:
        lim = 1 << (63 - k) if k <= 63 else 0
        if int(raw.max()) >= lim or int(raw.min()) < -lim:  # the left shift would leave int64
            return _shift_exact(raw.astype(object), shift, rounding)
    return raw << np.int64(k)


def requantize(q, src_fmt: "QFormat | str", dst_fmt: "QFormat | str", *, rounding, overflow,
               counter: OverflowCounter | None = None) -> np.ndarray:
    """Codes of `src_fmt` -> codes of `dst_fmt` (exact when `dst_fmt` is at least as wide
    in both integer and fraction bits). Codes outside `src_fmt` raise QuantizationError.
    """
    src_fmt = _code_format(src_fmt, "source format")
    q = _check_codes(q, src_fmt, f"requantize {src_fmt} -> {dst_fmt}")
    return rescale(q, src_fmt.frac_bits, dst_fmt, rounding=rounding, overflow=overflow, counter=counter)


# --- exact arithmetic ----------------------------------------------------------------
def mul_format(a_fmt: QFormat, b_fmt: QFormat) -> QFormat:
    """Format of the exact product: word = a.word + b.word, frac = a.frac + b.frac."""
    signed = a_fmt.signed or b_fmt.signed
    frac = a_fmt.frac_bits + b_fmt.frac_bits
    word = a_fmt.word_bits + b_fmt.word_bits
    if word > MAX_WORD_BITS or (not signed and word >= 64):
        raise FormatError(
            f"the exact product of {a_fmt} and {b_fmt} needs a {word}-bit word; "
            f"codes are int64 (requantize an operand first)"
        )
    return QFormat.from_word(word, frac, signed)


def add_format(a_fmt: QFormat, b_fmt: QFormat) -> QFormat:
    """Format of the exact sum: frac = max frac, int = max int + 1."""
    signed = a_fmt.signed or b_fmt.signed
    fmt_int = max(a_fmt.int_bits, b_fmt.int_bits) + 1
    frac = max(a_fmt.frac_bits, b_fmt.frac_bits)
    word = fmt_int + frac + (1 if signed else 0)
    if word > MAX_WORD_BITS or (not signed and word >= 64):
        raise FormatError(
            f"the exact sum of {a_fmt} and {b_fmt} needs a {word}-bit word; codes are int64"
        )
    return QFormat(fmt_int, frac, signed)


def sum_format(term_fmt: "QFormat | str", n_terms: int) -> QFormat:
    """Tightest format holding any exact sum of `n_terms` codes of `term_fmt` (signed if
    the terms are): the accumulator width a kernel needs to never overflow.

    >>> str(sum_format(mul_format(QFormat.parse("Q6.9"), QFormat.parse("Q6.9")), 9 * 576))
    'Q26.18'
    """
    term_fmt = QFormat.parse(term_fmt)
    if not isinstance(n_terms, (int, np.integer)) or n_terms < 1:
        raise FormatError(f"sum_format: n_terms must be a positive int, got {n_terms!r}")
    lo, hi = int(n_terms) * term_fmt.min_code, int(n_terms) * term_fmt.max_code
    word = 1
    while True:
        w_lo, w_hi = ((-(1 << (word - 1)), (1 << (word - 1)) - 1) if term_fmt.signed else (0, (1 << word) - 1))
        if w_lo <= lo and hi <= w_hi:
            break
        word += 1
    if word > MAX_WORD_BITS or (not term_fmt.signed and word >= 64):
        raise FormatError(f"a sum of {n_terms} terms of {term_fmt} needs a {word}-bit word; codes are int64")
    return QFormat.from_word(word, term_fmt.frac_bits, term_fmt.signed)


def mul(a, a_fmt: "QFormat | str", b, b_fmt: "QFormat | str") -> tuple[np.ndarray, QFormat]:
    """Exact element-wise product (NumPy broadcasting) and its format (`mul_format`).

    >>> mul(np.array([-128]), "Q0.7", np.array([-128]), "Q0.7")  # (-1) * (-1) = 1
    (array([16384]), QFormat(int_bits=1, frac_bits=14, signed=True))
    """
    a_fmt, b_fmt = _code_format(a_fmt, "a"), _code_format(b_fmt, "b")
    out_fmt = mul_format(a_fmt, b_fmt)
    a = _check_codes(a, a_fmt, f"mul: a ({a_fmt})")
    b = _check_codes(b, b_fmt, f"mul: b ({b_fmt})")
    return a * b, out_fmt  # |a*b| <= 2**(word-1): fits int64 by construction


def add(a, a_fmt: "QFormat | str", b, b_fmt: "QFormat | str") -> tuple[np.ndarray, QFormat]:
    """Exact element-wise sum, aligned to the larger fraction, and its format (`add_format`).

    >>> add(np.array([3]), "Q2.1", np.array([1]), "Q0.3")  # 1.5 + 0.125
    (array([13]), QFormat(int_bits=3, frac_bits=3, signed=True))
    """
    a_fmt, b_fmt = _code_format(a_fmt, "a"), _code_format(b_fmt, "b")
    out_fmt = add_format(a_fmt, b_fmt)
    a = _check_codes(a, a_fmt, f"add: a ({a_fmt})")
    b = _check_codes(b, b_fmt, f"add: b ({b_fmt})")
    f = out_fmt.frac_bits
    return (a << np.int64(f - a_fmt.frac_bits)) + (b << np.int64(f - b_fmt.frac_bits)), out_fmt


def saturating_sum(terms, acc_bits: int, axis: int = -1, counter: OverflowCounter | None = None) -> np.ndarray:
    """Running sum along `axis` in index order, clamped to a signed `acc_bits` word at
    every step (hardware whose accumulator saturates per addition; order dependent).

    The accumulator starts at 0; step i computes ``acc = clamp(acc + terms[i])``. The
    counter sees every exact partial sum ``acc + terms[i]`` (elements = number of
    additions, events = additions that saturated).

    >>> saturating_sum(np.array([100, 100, -100]), 8)  # 100, 200->127, 27
    array(27)
    """
    lo, hi = _word_range(acc_bits, True)
    if acc_bits > 63:
        raise FormatError(f"saturating_sum: acc_bits={acc_bits}; at most 63 bits are supported (int64 partial sums)")
    t = _as_int_array(terms, "saturating_sum")
    if t.dtype == object or (t.size and (int(t.max()) > 2**62 or int(t.min()) < -(2**62))):
        raise QsimError("saturating_sum: terms beyond +-2**62 would overflow the int64 partial sums")
    if t.ndim == 0:
        raise QsimError("saturating_sum: terms must have at least one axis")
    t = np.moveaxis(t, axis, -1)
    out_shape = t.shape[:-1]
    t2 = np.ascontiguousarray(t.reshape(math.prod(out_shape), t.shape[-1]), dtype=np.int64)
    from qsim.fixed import _numba

    out, events, peak = _numba.saturating_sum_2d(t2, lo, hi)
    if counter is not None:
        counter.record(events=events, elements=t2.size, peak=peak, lo=lo, hi=hi)
    return out.reshape(out_shape)
