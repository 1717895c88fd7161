"""Register words (decode/encode round trip, sign extension) and the KPU RAM layout."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qsim.errors import InputError, KmodelError
from qsim.k210 import layout
from qsim.k210.fields import (
    LAYER_FIELDS,
    ActTable,
    BatchNorm,
    LayerArgs,
    decode_act,
    decode_bn,
    decode_layer,
    encode_act,
    encode_bn,
    encode_layer,
    to_signed,
)


@st.composite
def layer_args(draw):
    values = {}
    for spec in LAYER_FIELDS:
        for name, _lsb, width, signed in spec:
            lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
            values[name] = draw(st.integers(lo, hi))
    return LayerArgs(**values)


@given(layer_args())
def test_layer_words_round_trip(args):
    words = encode_layer(args)
    assert all(0 <= w < (1 << 64) for w in words)
    assert decode_layer(words) == args


def test_field_bit_positions_by_hand():
    # conv_value: shr_w[3:0]=1, shr_x[7:4]=2, arg_w[31:8]=-1, arg_x[55:32]=-128
    word9 = 1 | (2 << 4) | (0xFFFFFF << 8) | ((-128 & 0xFFFFFF) << 32)
    words = [0] * 12
    words[9] = word9
    words[10] = (-1280) & ((1 << 40) - 1)
    words[4] = 1 | (5 << 4) | (128 << 24) | (0x1234 << 32)
    a = decode_layer(words)
    assert (a.shr_w, a.shr_x, a.arg_w, a.arg_x, a.arg_add) == (1, 2, -1, -128, -1280)
    assert (a.kernel_type, a.pool_type, a.pad_value, a.bwsx_base_addr) == (1, 5, 128, 0x1234)


def test_field_overflow_is_an_error():
    with pytest.raises(KmodelError, match="arg_x"):
        encode_layer(LayerArgs(arg_x=1 << 23))
    with pytest.raises(KmodelError, match="12 words"):
        decode_layer([0] * 11)


@given(st.lists(st.tuples(st.integers(-(1 << 23), (1 << 23) - 1), st.integers(0, 15),
                          st.integers(-(1 << 31), (1 << 31) - 1)), min_size=1, max_size=8))
def test_bn_round_trip(entries):
    bn = BatchNorm(*(np.array(col, dtype=np.int64) for col in zip(*entries)))
    back = decode_bn(encode_bn(bn))
    assert back.mul.tolist() == bn.mul.tolist() and back.shift.tolist() == bn.shift.tolist()
    assert back.add.tolist() == bn.add.tolist()


@given(st.lists(st.integers(-(1 << 35), (1 << 35) - 1), min_size=16, max_size=16),
       st.lists(st.integers(-(1 << 15), (1 << 15) - 1), min_size=16, max_size=16),
       st.lists(st.integers(0, 255), min_size=16, max_size=16),
       st.lists(st.integers(0, 255), min_size=16, max_size=16))
def test_act_round_trip(xs, ym, sh, bias):
    t = ActTable(*(np.array(v, dtype=np.int64) for v in (xs, ym, sh, bias)))
    back = decode_act(encode_act(t))
    for f in ("x_start", "y_mul", "shift", "bias"):
        assert getattr(back, f).tolist() == getattr(t, f).tolist()


def test_to_signed():
    assert to_signed(0x800000000, 36) == -(1 << 35)
    assert to_signed(0xFFFFFFFFFF, 40) == -1


@pytest.mark.parametrize("w,h,c,expected", [
    (224, 224, 3, 172_032), (112, 112, 32, 458_752), (112, 112, 96, 1_376_256),
    (56, 56, 144, 516_096), (7, 7, 1024, 114_688), (320, 240, 3, 230_400), (20, 16, 128, 65_536),
])
def test_worked_sizes(w, h, c, expected):
    assert layout.fmap_bytes(w, h, c) == expected


def _address_ref(c, y, x, h, w):
    if w <= 16:
        g, pitch, row_len = 4, 16, 1
    elif w <= 32:
        g, pitch, row_len = 2, 32, 1
    else:
        g, pitch, row_len = 1, 64, -(-w // 64)
    return 64 * row_len * h * (c // g) + pitch * (c % g) + 64 * row_len * y + x


@given(c=st.integers(1, 9), h=st.integers(1, 5), w=st.integers(1, 140), n=st.integers(1, 2), seed=st.integers(0, 99))
def test_upload_download_round_trip_and_addresses(c, h, w, n, seed):
    fmap = np.random.default_rng(seed).integers(0, 256, (n, c, h, w)).astype(np.uint8)
    ram = np.zeros(layout.KPU_RAM_BYTES, np.uint8)
    layout.upload(ram, 128, fmap)
    assert np.array_equal(layout.download(ram, 128, (n, c, h, w)), fmap)
    size = layout.fmap_bytes(w, h, c)
    for b, ch, y, x in [(0, 0, 0, 0), (n - 1, c - 1, h - 1, w - 1), (0, c // 2, h // 2, w // 2)]:
        assert ram[128 + b * size + _address_ref(ch, y, x, h, w)] == fmap[b, ch, y, x]


def test_width_multiple_of_64_is_plain_nchw():
    fmap = np.arange(2 * 2 * 64, dtype=np.uint8).reshape(2, 2, 64)
    ram = np.zeros(layout.KPU_RAM_BYTES, np.uint8)
    layout.upload(ram, 0, fmap)
    assert np.array_equal(ram[:fmap.size], fmap.ravel())


def test_upload_outside_ram_is_an_error():
    with pytest.raises(InputError, match="outside"):
        layout.upload(np.zeros(layout.KPU_RAM_BYTES, np.uint8), layout.KPU_RAM_BYTES - 64,
                      np.zeros((1, 2, 64), np.uint8))
