"""`qsim.kernels.half.round_half` is NumPy's float32 -> float16 -> float32 bit for bit, and
`to_half` counts the same overflow whichever path it takes."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qsim.executors.fp16_exec import HALF_MAX, to_half
from qsim.fixed.counters import OverflowCounter
from qsim.kernels.half import round_half


def _numpy_half(x):
    with np.errstate(over="ignore"):
        return x.astype(np.float16).astype(np.float32)


def _same_bits(got, want):
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_every_binary16_tie_and_its_neighbours():
    """Each midpoint between two adjacent binary16 values (where rounding to even decides),
    one float32 ulp either side, the binary16 values themselves, and the edges: overflow at
    65520, the subnormal ties at 2**-25, float32 subnormals, signed zeros."""
    h = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    hs = np.unique(h[np.isfinite(h)].astype(np.float32))
    mids = ((hs[:-1].astype(np.float64) + hs[1:]) / 2).astype(np.float32)  # exact in float32
    edges = np.float32([65504, 65519.996, 65520, 65520.004, 1e38, 2**-25, 3 * 2**-26, 2**-24, 2**-14, 1e-40,
                        -1e-40, -1e-9, 0.0, -0.0, np.inf, -np.inf])
    x = np.concatenate([mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf)), hs,
                        edges])
    got, events, nans, peak = round_half(x)
    _same_bits(got, _numpy_half(x))
    assert events == int(np.count_nonzero(np.isinf(_numpy_half(x)) & np.isfinite(x))) > 0
    assert nans == 0 and peak == math.inf


def test_a_stride_through_all_float32_bit_patterns():
    bits = np.arange(0, 2**32, 1009, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[~np.isnan(x)]
    got, _, _, _ = round_half(x)
    _same_bits(got, _numpy_half(x))


@settings(max_examples=50)
@given(hnp.arrays(np.float32, st.integers(1, 300), elements=st.floats(width=32, allow_nan=True)))
def test_to_half_values_and_counters_match_numpy(x):
    """Any float32 array, NaN and infinities included (NaN takes NumPy's path): the same values
    and the same counter as NumPy's casts and counting."""
    got_c, want_c = OverflowCounter("a"), OverflowCounter("a")
    got = to_half(x, got_c)
    want = _numpy_half(x)
    _same_bits(got, want)
    finite = np.isfinite(x)
    mag = np.abs(x[~np.isnan(x)])
    peak_f = float(mag.max()) if mag.size else math.inf
    want_c.record(events=int(np.count_nonzero(np.isinf(want) & finite)), elements=x.size,
                  peak=math.inf if math.isinf(peak_f) else math.ceil(peak_f), lo=-HALF_MAX, hi=HALF_MAX)
    assert got_c.to_dict() == want_c.to_dict()
