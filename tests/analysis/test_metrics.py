"""Error metrics on hand-made arrays, and against an exact `Fraction` reference."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qsim.analysis.compare import ErrorAccumulator, error_stats, lsb_mismatch_share, sqnr_db
from qsim.errors import InputError, QsimError


def test_sqnr_of_known_noise_power():
    # signal power 4 (amplitude 2 square wave), noise power 0.04 -> 10*log10(100) = 20 dB
    r = np.tile([2.0, -2.0], 500)
    e = np.tile([0.2, 0.2, -0.2, -0.2], 250)
    assert sqnr_db(r, r + e) == pytest.approx(20.0, abs=1e-12)
    # 1/1000 noise power -> 30 dB below the signal
    assert sqnr_db(r, r + e / math.sqrt(10)) == pytest.approx(30.0, abs=1e-9)


def test_sqnr_of_random_noise_matches_its_power():
    rng = np.random.default_rng(0)
    r = rng.standard_normal(200_000)
    noise = rng.standard_normal(200_000) * 0.01  # 40 dB below a unit-variance signal
    assert sqnr_db(r, r + noise) == pytest.approx(40.0, abs=0.1)


def test_exact_and_degenerate_sqnr():
    r = np.array([1.0, 2.0, -3.0])
    assert sqnr_db(r, r) == math.inf
    assert sqnr_db(np.zeros(3), np.array([0.0, 1e-3, 0.0])) == -math.inf
    assert sqnr_db(np.zeros(3), np.zeros(3)) == math.inf


def test_lsb_mismatch_counts_strictly_more_than_one_lsb():
    lsb = 2.0 ** -9
    r = np.zeros(8)
    t = np.array([0, lsb / 2, lsb, -lsb, lsb * 1.5, -lsb * 2, 3 * lsb, 0.0])
    assert lsb_mismatch_share(r, t, lsb) == pytest.approx(3 / 8)
    stats = error_stats(r, t, lsb=lsb)
    assert stats.max_abs == 3 * lsb and stats.n == 8 and stats.lsb == lsb
    assert error_stats(r, t).over_1lsb is None  # no format, no LSB count


def test_rms_and_max_abs_by_hand():
    s = error_stats(np.array([1.0, 1.0, 1.0, 1.0]), np.array([1.0, 2.0, 1.0, -1.0]))
    assert s.max_abs == 2.0
    assert s.rms == pytest.approx(math.sqrt((1 + 4) / 4))
    assert s.signal_rms == 1.0


def test_shape_mismatch_and_nan_are_clear_errors():
    with pytest.raises(InputError, match="shape"):
        error_stats(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(InputError, match="non-finite value.*reference"):
        error_stats(np.array([0.0, np.inf, 1.0]), np.zeros(3))
    with pytest.raises(QsimError, match="no elements"):
        ErrorAccumulator().result()


# Dyadic values (k / 2**10, |k| < 2**20) make every float operation below exact, so the
# float64 metrics can be compared with a Fraction reference exactly (SQNR to 1e-12).
dyadic = st.integers(-(2**20), 2**20).map(lambda k: k / 1024.0)


def _reference(r, t, lsb):
    rf = [Fraction(x) for x in r]
    tf = [Fraction(x) for x in t]
    err = [b - a for a, b in zip(rf, tf)]
    s_err = sum(e * e for e in err)
    s_sig = sum(a * a for a in rf)
    if s_err == 0:
        sq = math.inf
    elif s_sig == 0:
        sq = -math.inf
    else:
        sq = 10 * (math.log10(s_sig.numerator) - math.log10(s_sig.denominator)
                   - math.log10(s_err.numerator) + math.log10(s_err.denominator))
    over = sum(1 for e in err if abs(e) > Fraction(lsb))
    return max(abs(e) for e in err), sq, over


@given(st.lists(st.tuples(dyadic, dyadic), min_size=1, max_size=60),
       st.integers(0, 12), st.integers(1, 5))
def test_metrics_match_exact_reference_and_do_not_depend_on_batching(pairs, lsb_exp, n_chunks):
    r = np.array([p[0] for p in pairs])
    t = np.array([p[1] for p in pairs])
    lsb = 2.0 ** -lsb_exp
    max_abs, sq, over = _reference(r, t, lsb)
    stats = error_stats(r, t, lsb=lsb)
    assert Fraction(stats.max_abs) == max_abs
    assert stats.over_1lsb == over / len(pairs)
    if math.isinf(sq):
        assert stats.sqnr_db == sq
    else:
        assert stats.sqnr_db == pytest.approx(sq, abs=1e-9)
    # streaming over chunks (images) gives the same counts and, here exactly, the same sums
    acc = ErrorAccumulator(lsb=lsb)
    for idx in np.array_split(np.arange(len(pairs)), n_chunks):
        acc.update(r[idx], t[idx])
    streamed = acc.result()
    assert (streamed.n, streamed.max_abs, streamed.over_1lsb) == (stats.n, stats.max_abs, stats.over_1lsb)
    assert streamed.sqnr_db == stats.sqnr_db


def test_nonfinite_test_values_are_counted_not_fatal():
    # fp16 overflow: 70000 -> inf in the test run; the layer must show, not abort the report
    s = error_stats(np.array([1.0, 2.0, 70000.0, 4.0]), np.array([1.0, 2.0, np.inf, 4.5]), lsb=0.25)
    assert s.nonfinite == 1 and s.n == 4
    assert s.max_abs == math.inf and s.rms == math.inf and s.sqnr_db == -math.inf
    assert s.over_1lsb == 2 / 4
    assert s.to_dict()["nonfinite"] == 1


def test_an_autoencoder_is_not_a_classifier():
    """ad01 (640 -> 640): agreement is output SQNR, not argmax agreement of a reconstruction."""
    import numpy as np

    from qsim.analysis.metrics import agreement, is_classifier

    x = np.random.default_rng(0).normal(size=(5, 640))
    assert is_classifier((5, 10)) and is_classifier((5, 640)) and not is_classifier((5, 640), x.shape)
    noisy = x + 1e-3 * np.random.default_rng(1).normal(size=x.shape)
    assert 55 < agreement(noisy, x, x, None) < 65  # dB, not a share of equal argmaxes
