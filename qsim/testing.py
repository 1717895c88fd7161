"""qsim as the oracle of your own code: hypothesis strategies and `assert_same_codes`.

You wrote (or generated) a fixed-point kernel - C through ctypes/cffi, an HLS C-sim, a NumPy
port - and want to prove it computes the codes qsim computes. Wrap it as a Python callable
that takes keyword arguments and returns the output codes, then::

    from qsim.testing import assert_same_codes
    assert_same_codes(my_conv1x1, "conv1x1", in_fmt="Q3.12", w_fmt="Q0.15", b_fmt="Q3.12",
                      out_fmt="Q3.12", acc_bits=32, rounding="half_up", overflow="saturate",
                      acc_overflow="saturate")

Every field you pin is fixed; the others are drawn by hypothesis (shapes, codes biased to
the extremes, powers of two and rounding ties, formats, modes). On the first input where your
codes differ from qsim's kernel, hypothesis shrinks it to a minimal one and `CodesMismatch`
(an ``AssertionError``) reports it: op, shapes, formats, modes, the index of the first
difference, expected vs got codes, and the inputs. Do not call it inside your own ``@given``
test (hypothesis does not nest); call it from a plain test function.

Ops (`OPS`) and the keyword arguments your callable receives (codes are int64 ndarrays,
formats `QFormat`, modes `Rounding`/`Overflow` - both ``str`` subclasses, so
``rounding == "half_up"`` works):

=============  ===========================================================================
``conv1x1``     ``x`` (N,H,W,Cin), ``w`` (1,1,Cin,Cout), ``bias`` (Cout,), ``in_fmt``,
                ``w_fmt``, ``b_fmt``, ``out_fmt``, ``acc_bits``, ``rounding``, ``overflow``,
                ``acc_overflow``, ``strides`` (1,1), ``pads`` (0,0,0,0)
``conv2d``      the same with ``w`` (KH,KW,Cin,Cout), ``strides`` (sh,sw), ``pads``
                (top,bottom,left,right) zeros
``depthwise``   the same with ``w`` (KH,KW,C,mult); output channel ``c*mult+m`` reads ``c``
``rescale``     ``x`` (exact integers, e.g. accumulators), ``src_frac``, ``out_fmt``,
                ``rounding``, ``overflow``: `qsim.fixed.rescale`
``requantize``  ``x`` (codes of ``in_fmt``), ``in_fmt``, ``out_fmt``, ``rounding``, ``overflow``
``add``         ``a``, ``b`` (same shape), ``a_fmt``, ``b_fmt``, ``out_fmt``, ``rounding``,
                ``overflow``: exact sum rounded once
``relu``        ``x``, ``in_fmt``, ``out_fmt``, ``max_value`` (None or e.g. 6.0),
                ``rounding``, ``overflow``
=============  ===========================================================================

The conv contract is `qsim.kernels.conv`: exact sum with the bias aligned by
``acc_frac - b_frac`` (``acc_frac = in_frac + w_frac``), the exact sum narrowed once to a
signed ``acc_bits`` word per ``acc_overflow`` (the plan's ``acc_saturation="final"``), one
rounding to ``out_fmt``, narrowed per ``overflow``. Shapes are NHWC, weights HWIO.

Strategies (reusable in your own hypothesis tests): `formats`, `codes` (arrays of codes with
extremes, powers of two and ties), `tensors` (a shape drawn too), `reals_for` (floats around a
format: exact codes, ties, near-ties, out of range), `cases` (a whole op input, as
`assert_same_codes` draws it) and `plans` (a valid full-integer `Plan` for a `Graph`).

Needs ``hypothesis`` (``pip install qsim[testing]``); qsim itself never imports this module.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

try:
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays
except ImportError as exc:  # pragma: no cover - hypothesis is in the test/testing extras
    raise ImportError("qsim.testing needs hypothesis: pip install 'qsim[testing]' (or hypothesis)") from exc

from qsim.errors import QsimError
from qsim.fixed.format import QFormat
from qsim.fixed.modes import Overflow, Rounding

ROUNDINGS = list(Rounding)
OVERFLOWS = list(Overflow)
roundings = st.sampled_from(ROUNDINGS)
overflows = st.sampled_from(OVERFLOWS)


# --- formats and codes -------------------------------------------------------------------
@st.composite
def formats(draw, min_word: int = 2, max_word: int = 16, signed: bool | None = None,
            max_frac: int | None = None, edge64: bool = False) -> QFormat:
    """`QFormat`s with a `min_word`..`max_word`-bit word (signed drawn unless given).

    ``edge64=True`` adds (1 draw in 8) the widest formats int64 codes hold: a 64-bit signed
    or 63-bit unsigned word. `max_frac` caps the fraction bits. Fraction bits may exceed
    the word by up to 3 (negative integer bits, e.g. ``Q-2.9``) except on the 64-bit edge.
    """
    signed = draw(st.booleans()) if signed is None else signed
    if edge64 and draw(st.integers(0, 7)) == 0:
        word = 64 if signed else 63
    else:
        word = draw(st.integers(min_word, max_word))
    top = word - (1 if signed else 0)
    most = top + (3 if word < 60 else 0)
    frac = draw(st.integers(0, most if max_frac is None else min(most, max_frac)))
    return QFormat(top - frac, frac, signed)


def edge_codes(fmt: QFormat, tie_shift: int | None = None) -> list[int]:
    """Codes of `fmt` where kernels go wrong: 0, +-1, the extremes, +-powers of two (their
    products land exactly on rounding ties) and, with `tie_shift`, the codes that are exact
    ties when `tie_shift` low bits are dropped (``k * 2**s + 2**(s-1)``).
    Small magnitudes first: hypothesis shrinks toward the front of the list.
    """
    lo, hi = fmt.min_code, fmt.max_code
    cand = [0, 1, -1, 2, -2]
    cand += [s * (1 << k) for k in range(2, fmt.word_bits) for s in (1, -1)]
    if tie_shift is not None and tie_shift > 0:
        half, step = 1 << (tie_shift - 1), 1 << tie_shift
        cand += [half, -half, step + half, -step - half, half - 1, half + 1, -half - 1, -half + 1]
        cand += [hi - (hi % step) - half, lo + half]
    cand += [lo, hi, lo + 1, hi - 1]
    seen: dict[int, None] = {}
    for c in cand:
        if lo <= c <= hi:
            seen.setdefault(int(c), None)
    return list(seen)


def codes(fmt: QFormat, shape, tie_shift: int | None = None) -> st.SearchStrategy:
    """int64 arrays of `shape` holding codes of `fmt`, half of them from `edge_codes`."""
    elem = st.one_of(st.sampled_from(edge_codes(fmt, tie_shift)), st.integers(fmt.min_code, fmt.max_code))
    return arrays(np.int64, shape, elements=elem)


def code_lists(fmt: QFormat, max_size: int = 16) -> st.SearchStrategy:
    """Python lists (1..`max_size` long) of codes of `fmt`, biased to the edges."""
    edge = st.sampled_from(edge_codes(fmt))
    return st.lists(st.one_of(edge, st.integers(fmt.min_code, fmt.max_code)), min_size=1, max_size=max_size)


@st.composite
def tensors(draw, fmt: QFormat, min_dims: int = 1, max_dims: int = 4, max_side: int = 4,
            tie_shift: int | None = None) -> np.ndarray:
    """A code array of `fmt` with a drawn shape (`min_dims`..`max_dims` axes of 1..`max_side`)."""
    shape = draw(st.lists(st.integers(1, max_side), min_size=min_dims, max_size=max_dims))
    return draw(codes(fmt, tuple(shape), tie_shift))


@st.composite
def reals_for(draw, fmt: QFormat, max_size: int = 16) -> np.ndarray:
    """float64 values around `fmt`'s range: exact codes, ties, near-ties, out-of-range, wild."""
    lsb = fmt.lsb

    def near_code():
        k = draw(st.integers(2 * fmt.min_code - 4, 2 * fmt.max_code + 4))
        part = draw(st.sampled_from([0.0, 0.5, 0.25, 0.75, -0.5, 0.5 - 2**-20, 0.5 + 2**-20]))
        return (k + part) * lsb

    elements = []
    for _ in range(draw(st.integers(1, max_size))):
        kind = draw(st.integers(0, 3))
        if kind <= 1:
            elements.append(near_code())
        elif kind == 2:
            elements.append(draw(st.floats(fmt.min_value * 1.5 - 1, fmt.max_value * 1.5 + 1,
                                           allow_nan=False, allow_infinity=False)))
        else:
            elements.append(draw(st.floats(allow_nan=False, allow_infinity=False, width=64)))
    return np.array(elements, dtype=np.float64)


# --- op cases: what assert_same_codes draws ----------------------------------------------
CONV_OPS = ("conv1x1", "conv2d", "depthwise")
OPS = CONV_OPS + ("rescale", "requantize", "add", "relu")

# the fields of each op a caller may pin (everything the candidate receives, plus shapes)
_CONV_FIELDS = ("x_shape", "cout", "kernel_size", "mult", "x", "w", "bias", "in_fmt", "w_fmt", "b_fmt",
                "out_fmt", "acc_bits", "rounding", "overflow", "acc_overflow", "strides", "pads")
FIELDS: dict[str, tuple[str, ...]] = {
    "conv1x1": _CONV_FIELDS,
    "conv2d": _CONV_FIELDS,
    "depthwise": _CONV_FIELDS,
    "rescale": ("shape", "x", "src_frac", "out_fmt", "rounding", "overflow"),
    "requantize": ("shape", "x", "in_fmt", "out_fmt", "rounding", "overflow"),
    "add": ("shape", "a", "b", "a_fmt", "b_fmt", "out_fmt", "rounding", "overflow"),
    "relu": ("shape", "x", "in_fmt", "out_fmt", "max_value", "rounding", "overflow"),
}
_SHAPE_ONLY = ("x_shape", "cout", "kernel_size", "mult", "shape")  # drawn, not passed on


def _typed(name: str, value: Any) -> Any:
    if name.endswith("_fmt"):
        return QFormat.parse(value)
    if name == "rounding":
        return Rounding.parse(value)
    if name in ("overflow", "acc_overflow"):
        return Overflow.parse(value)
    if name in ("x", "w", "bias", "a", "b"):
        return np.asarray(value, dtype=np.int64)
    if name in ("x_shape", "kernel_size", "strides", "pads", "shape"):
        return tuple(int(v) for v in value)
    return value


def _check_fields(op: str, pinned: Mapping[str, Any]) -> dict[str, Any]:
    if op not in OPS:
        raise QsimError(f"qsim.testing: unknown op {op!r}; known ops: {', '.join(OPS)}")
    unknown = sorted(set(pinned) - set(FIELDS[op]))
    if unknown:
        raise QsimError(f"qsim.testing: op {op!r} has no field(s) {unknown}; fields: {', '.join(FIELDS[op])}")
    return {k: _typed(k, v) for k, v in pinned.items()}


@st.composite
def _conv_case(draw, op: str, pin: dict) -> dict:
    def get(name, strategy):
        return pin[name] if name in pin else draw(strategy)

    in_fmt = get("in_fmt", formats(4, 16, signed=True))
    w_fmt = get("w_fmt", formats(4, 16, signed=True))
    acc_frac = in_fmt.frac_bits + w_fmt.frac_bits
    acc_bits = get("acc_bits", st.integers(in_fmt.word_bits + w_fmt.word_bits, 64))
    # the bias aligns into the accumulator exactly: frac <= acc_frac, aligned word <= acc_bits
    b_fmt = pin.get("b_fmt")
    if b_fmt is None:
        b_frac = draw(st.integers(0, min(acc_frac, 15)))
        b_word = draw(st.integers(max(2, b_frac + 1), max(2, min(16, acc_bits - (acc_frac - b_frac)))))
        b_fmt = QFormat.from_word(b_word, min(b_frac, b_word - 1), True)
    out_fmt = get("out_fmt", formats(4, 16, signed=True))
    rounding = get("rounding", roundings)
    overflow = get("overflow", overflows)
    acc_overflow = get("acc_overflow", overflows)
    if "x" in pin:
        x_shape = pin["x"].shape
    else:
        x_shape = get("x_shape", st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)))
    cin = x_shape[3]
    if op == "conv1x1":
        kh, kw = 1, 1
    else:
        kh, kw = pin["w"].shape[:2] if "w" in pin else get("kernel_size", st.tuples(st.integers(1, 3), st.integers(1, 3)))
    if op == "depthwise":
        mult = pin["w"].shape[3] if "w" in pin else get("mult", st.integers(1, 2))
        w_shape, cout = (kh, kw, cin, mult), cin * mult
    else:
        cout = pin["w"].shape[3] if "w" in pin else get("cout", st.integers(1, 4))
        w_shape = (kh, kw, cin, cout)
    if op == "conv1x1":
        strides, pads = pin.get("strides", (1, 1)), pin.get("pads", (0, 0, 0, 0))
    else:
        strides = get("strides", st.tuples(st.integers(1, 2), st.integers(1, 2)))
        pads = get("pads", st.tuples(*(st.integers(0, k - 1) for k in (kh, kh, kw, kw))))
    # the output must not be empty: grow the input until one window fits
    h_need, w_need = max(x_shape[1], kh - pads[0] - pads[1]), max(x_shape[2], kw - pads[2] - pads[3])
    x_shape = (x_shape[0], h_need, w_need, cin)
    shift = acc_frac - out_fmt.frac_bits
    x = pin["x"] if "x" in pin else draw(codes(in_fmt, x_shape))
    w = pin["w"] if "w" in pin else draw(codes(w_fmt, w_shape))
    bias = pin["bias"] if "bias" in pin else draw(codes(b_fmt, (cout,), tie_shift=shift - (acc_frac - b_fmt.frac_bits)))
    return {"x": x, "w": w, "bias": bias, "in_fmt": in_fmt, "w_fmt": w_fmt, "b_fmt": b_fmt, "out_fmt": out_fmt,
            "acc_bits": acc_bits, "rounding": rounding, "overflow": overflow, "acc_overflow": acc_overflow,
            "strides": tuple(strides), "pads": tuple(pads)}


@st.composite
def _eltwise_case(draw, op: str, pin: dict) -> dict:
    def get(name, strategy):
        return pin[name] if name in pin else draw(strategy)

    first = next((pin[k] for k in ("x", "a", "b") if k in pin), None)
    shape = first.shape if first is not None else get(
        "shape", st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple))
    out_fmt = get("out_fmt", formats(2, 16))
    case = {"out_fmt": out_fmt, "rounding": get("rounding", roundings), "overflow": get("overflow", overflows)}
    if op == "rescale":
        src_frac = get("src_frac", st.integers(0, 40))
        lim = 2**40
        raw = st.one_of(st.sampled_from(edge_codes(QFormat.from_word(41, 0), src_frac - out_fmt.frac_bits)),
                        st.integers(-lim, lim))
        case.update(src_frac=src_frac, x=pin["x"] if "x" in pin else draw(arrays(np.int64, shape, elements=raw)))
    elif op == "add":
        a_fmt, b_fmt = get("a_fmt", formats(2, 16)), get("b_fmt", formats(2, 16))
        frac = max(a_fmt.frac_bits, b_fmt.frac_bits)
        shift = frac - out_fmt.frac_bits
        case.update(a_fmt=a_fmt, b_fmt=b_fmt,
                    a=pin["a"] if "a" in pin else draw(codes(a_fmt, shape, shift - (frac - a_fmt.frac_bits))),
                    b=pin["b"] if "b" in pin else draw(codes(b_fmt, shape, shift - (frac - b_fmt.frac_bits))))
    else:  # requantize, relu
        in_fmt = get("in_fmt", formats(2, 16))
        case.update(in_fmt=in_fmt, x=pin["x"] if "x" in pin else draw(
            codes(in_fmt, shape, in_fmt.frac_bits - out_fmt.frac_bits)))
        if op == "relu":
            case["max_value"] = get("max_value", st.sampled_from([None, 6.0, 1.0, 0.5]))
    return case


def cases(op: str, **pinned: Any) -> st.SearchStrategy:
    """A strategy of op inputs (the keyword arguments the candidate receives).

    `pinned` fixes any field of ``FIELDS[op]`` (formats as strings or `QFormat`, modes by
    name, arrays, or shape fields ``x_shape``/``cout``/``kernel_size``/``mult``/``shape``).
    """
    pin = _check_fields(op, pinned)
    strategy = _conv_case(op, pin) if op in CONV_OPS else _eltwise_case(op, pin)
    return strategy


def expected_codes(op: str, case: Mapping[str, Any]) -> np.ndarray:
    """qsim's codes for one case: the fast kernels of `qsim.kernels` / `qsim.fixed`."""
    from qsim.fixed.cast import requantize, rescale
    from qsim.kernels import conv, eltwise

    c = case
    if op in CONV_OPS:
        out = conv.conv2d(c["x"], c["w"], c["bias"], in_fmt=c["in_fmt"], w_fmt=c["w_fmt"], b_fmt=c["b_fmt"],
                          out_fmt=c["out_fmt"], acc_bits=c["acc_bits"], rounding=c["rounding"],
                          overflow=c["overflow"], acc_overflow=c["acc_overflow"], acc_saturation="final",
                          strides=c["strides"], pads=c["pads"], depthwise=op == "depthwise")
    elif op == "rescale":
        out = rescale(c["x"], c["src_frac"], c["out_fmt"], rounding=c["rounding"], overflow=c["overflow"])
    elif op == "requantize":
        out = requantize(c["x"], c["in_fmt"], c["out_fmt"], rounding=c["rounding"], overflow=c["overflow"])
    elif op == "add":
        out = eltwise.add([c["a"], c["b"]], [c["a_fmt"], c["b_fmt"]], out_fmt=c["out_fmt"],
                          rounding=c["rounding"], overflow=c["overflow"])
    elif op == "relu":
        out = eltwise.relu(c["x"], in_fmt=c["in_fmt"], out_fmt=c["out_fmt"], max_value=c["max_value"],
                           rounding=c["rounding"], overflow=c["overflow"])
    else:
        raise QsimError(f"qsim.testing: unknown op {op!r}; known ops: {', '.join(OPS)}")
    return np.asarray(out).astype(np.int64)


# --- the helper ----------------------------------------------------------------------------
class CodesMismatch(AssertionError):
    """A candidate's codes differ from qsim's (attributes: op, case, expected, got, index)."""

    def __init__(self, message: str, *, op: str, case: dict, expected: np.ndarray, got: Any, index):
        super().__init__(message)
        self.op, self.case, self.expected, self.got, self.index = op, case, expected, got, index


def _describe(op: str, case: Mapping[str, Any]) -> list[str]:
    fmts = ", ".join(f"{k[:-4] if k != 'w_fmt' else 'weights'} {case[k]}" for k in case if k.endswith("_fmt"))
    modes = ", ".join(f"{k} {case[k].value}" for k in ("rounding", "overflow", "acc_overflow") if k in case)
    lines = [f"  formats: {fmts}", f"  modes: {modes}"]
    extra = [f"{k}={case[k]}" for k in ("acc_bits", "src_frac", "strides", "pads", "max_value") if k in case]
    if extra:
        lines.append("  " + ", ".join(extra))
    for k in ("x", "w", "bias", "a", "b"):
        if k in case:
            arr = case[k]
            lines.append(f"  {k} {tuple(arr.shape)}: {np.array2string(arr, separator=', ', threshold=64)}")
    return lines


def check_case(candidate: Callable[..., Any], op: str, case: dict) -> None:
    """Raise `CodesMismatch` unless ``candidate(**case)`` returns qsim's codes for `case`."""
    expected = expected_codes(op, case)
    got_raw = candidate(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in case.items()})
    got = np.asarray(got_raw)
    head = f"candidate differs from qsim's {op} kernel"
    if got.shape != expected.shape:
        if got.size == expected.size:
            got = got.reshape(expected.shape)  # a flat buffer from C is fine
        else:
            msg = "\n".join([f"{head}: output shape {tuple(got.shape)}, expected {tuple(expected.shape)}",
                             *_describe(op, case)])
            raise CodesMismatch(msg, op=op, case=case, expected=expected, got=got_raw, index=None)
    if got.dtype.kind not in "iu":
        raise CodesMismatch(f"{head}: returned dtype {got.dtype}, expected integer codes",
                            op=op, case=case, expected=expected, got=got_raw, index=None)
    diff = np.argwhere(got.astype(np.int64) != expected)
    if diff.size == 0:
        return
    index = tuple(int(i) for i in diff[0])
    msg = "\n".join([
        f"{head} at index {index} of output shape {tuple(expected.shape)}: "
        f"expected code {int(expected[index])}, got {int(got[index])} "
        f"({len(diff)} of {expected.size} codes differ)",
        *_describe(op, case),
        f"  expected: {np.array2string(expected, separator=', ', threshold=64)}",
        f"  got:      {np.array2string(got.astype(np.int64), separator=', ', threshold=64)}",
    ])
    raise CodesMismatch(msg, op=op, case=case, expected=expected, got=got_raw, index=index)


def assert_same_codes(candidate: Callable[..., Any], op: str, *, max_examples: int = 100,
                      seed: int | None = None, settings: hsettings | None = None, **pinned: Any) -> None:
    """Fuzz `candidate` against qsim's `op` kernel; raise the minimal `CodesMismatch`.

    Args:
        candidate: ``candidate(**case) -> codes`` (any integer array of the output's shape,
            or a flat buffer of its size). The case's keywords are listed in the module doc.
        op: one of `OPS`.
        max_examples: inputs tried (hypothesis then shrinks a failing one).
        seed: make the search reproducible (hypothesis ``derandomize`` off, this seed on).
        settings: a hypothesis `settings` object overriding the defaults (deadline off, no
            example database).
        **pinned: fields held fixed (see `cases`); e.g. the formats your kernel is built for.
    """
    strategy = cases(op, **pinned)
    cfg = settings or hsettings(max_examples=max_examples, deadline=None, database=None,
                                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

    @cfg
    @given(strategy)
    def search(case):
        check_case(candidate, op, case)

    if seed is not None:
        from hypothesis import seed as hseed

        search = hseed(seed)(search)
    search()


# --- plans for a graph -----------------------------------------------------------------------
@st.composite
def plans(draw, graph, min_word: int = 8, max_word: int = 16, modes: bool = True):
    """A full-integer `Plan` for `graph` that passes ``Plan.validate``: per node an
    activation format, per MAC node weight/bias formats and an accumulator wide enough for
    one product and the aligned bias; default modes drawn (fixed to half_up/saturate with
    ``modes=False``).
    """
    from qsim.plan import MAC_OPS, PASSTHROUGH_OPS, Plan

    rounding = draw(roundings) if modes else Rounding.HALF_UP
    overflow = draw(overflows) if modes else Overflow.SATURATE
    fmt = lambda: draw(formats(min_word, max_word, signed=True))
    nodes: dict[str, dict] = {}
    act: dict[str, QFormat] = {}
    for node in graph:
        if node.op in PASSTHROUGH_OPS and node.inputs:
            act[node.name] = act[node.inputs[0]]
            continue
        spec: dict[str, Any] = {"act": fmt()}
        if node.op in MAC_OPS:
            in_fmt, w_fmt = act[node.inputs[0]], fmt()
            acc_frac = in_fmt.frac_bits + w_fmt.frac_bits
            acc_bits = draw(st.integers(in_fmt.word_bits + w_fmt.word_bits, 64))
            b_frac = draw(st.integers(0, min(acc_frac, max_word - 1)))
            b_word = draw(st.integers(b_frac + 1, max(b_frac + 1, min(max_word, acc_bits - (acc_frac - b_frac)))))
            spec.update(weights=w_fmt, bias=QFormat.from_word(b_word, b_frac, True), acc_bits=acc_bits)
        act[node.name] = spec["act"]
        nodes[node.name] = {k: (str(v) if isinstance(v, QFormat) else v) for k, v in spec.items()}
    plan = Plan.uniform("Q6.9", rounding=rounding, overflow=overflow, acc_bits=64).with_nodes(nodes)
    return plan.validate(graph)


__all__ = ["formats", "edge_codes", "codes", "code_lists", "tensors", "reals_for", "roundings", "overflows",
           "ROUNDINGS", "OVERFLOWS", "OPS", "FIELDS", "cases", "expected_codes", "check_case",
           "assert_same_codes", "CodesMismatch", "plans"]
