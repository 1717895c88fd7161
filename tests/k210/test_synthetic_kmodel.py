"""A kmodel v4 assembled in the test from qsim-quantized registers: reader, batches, main-memory copy."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsim.k210 import KmodelExecutor, read_kmodel
from qsim.k210.fields import encode_act, encode_bn, encode_layer
from qsim.k210.layout import fmap_lines
from qsim.k210.quantize import make_kpu_layer, quant_param


def _mrange(mtype, dtype, start, size):
    return struct.pack("<4I", mtype, dtype, start, size)


def build_kmodel(layer, batches: int, skips=(8, 16, 24)) -> bytes:
    """input (KPU RAM) -> kpu_conv2d (+ compact copy to main memory) -> dequantize -> output."""
    a = layer.args
    c, h, w = layer.in_shape
    oc, oh, ow = layer.out_shape
    a.image_src_addr = 0
    a.image_dst_addr = fmap_lines(w, h, c) * batches
    a.bwsx_base_addr, a.active_addr, a.para_start_addr = skips
    n_out = batches * oc * oh * ow
    out_float_start = (n_out + 63) // 64 * 64
    conv = bytearray(_mrange(1, 1, 0, n_out) + struct.pack("<ii", batches, 0))
    conv += b"".join(struct.pack("<Q", v) for v in encode_layer(a))
    conv += b"\0" * skips[0] + encode_bn(layer.bn).astype("<u8").tobytes()
    conv += b"\0" * skips[1] + encode_act(layer.act).astype("<u8").tobytes()
    conv += b"\0" * skips[2] + layer.weights.tobytes()
    conv += b"\0" * (-len(conv) % 8)
    deq = _mrange(1, 1, 0, n_out) + _mrange(1, 0, out_float_start, 4 * n_out) + struct.pack("<if", 3, 1 / 0.05)
    main = out_float_start + 4 * n_out
    head = struct.pack("<4s9I", b"LDMK", 4, 0, 1, 0, main, 2, 1, 1, 0xCCCCCCCC)
    head += _mrange(2, 1, 0, fmap_lines(w, h, c) * 64 * batches) + struct.pack("<4i", batches, c, h, w)
    head += _mrange(1, 0, out_float_start, 4 * n_out)
    head += struct.pack("<4I", 0x2002, len(conv), 0x3, len(deq))
    return bytes(head + conv + deq)  # the last body without its padding, like ncc


@settings(max_examples=25)
@given(seed=st.integers(0, 10**6), c=st.integers(1, 6), h=st.integers(4, 20), w=st.integers(4, 70),
       k=st.sampled_from([1, 3]), depthwise=st.booleans(), pool=st.sampled_from([0, 1, 2, 5, 6, 9]),
       batches=st.integers(1, 3))
def test_synthetic_kmodel_matches_layer(seed, c, h, w, k, depthwise, pool, batches):
    rng = np.random.default_rng(seed)
    oc = c if depthwise else int(rng.integers(1, 7))
    layer = make_kpu_layer("l", rng.normal(0, 1, (oc, 1 if depthwise else c, k, k)), rng.normal(0, 0.5, oc),
                           depthwise, quant_param(-1, 1), quant_param(-2, 4), ("relu", None, 0.1), (h, w), pool)
    model = read_kmodel(build_kmodel(layer, batches))
    assert [n.name for n in model.nodes] == ["kpu_conv2d", "dequantize"]
    x = rng.integers(0, 256, (batches, c, h, w)).astype(np.uint8)
    run = KmodelExecutor(model).run(x, keep=True)
    expected = np.stack([layer.run(x[b]) for b in range(batches)])
    assert np.array_equal(run.records[0].data, expected)
    deq = ((expected.astype(np.float32).ravel() - 3) * (np.float32(1) / np.float32(1 / 0.05))).astype(np.float32)
    assert run.outputs[0].tobytes() == deq.tobytes()


def test_synthetic_kmodel_truncated_weights(tmp_path):
    rng = np.random.default_rng(0)
    layer = make_kpu_layer("l", rng.normal(0, 1, (4, 3, 3, 3)), None, False, quant_param(-1, 1), quant_param(0, 6),
                           ("relu", 6.0, 0.0), (8, 8), 0)
    data = build_kmodel(layer, 1)
    from qsim.errors import KmodelError

    with pytest.raises(KmodelError, match=r"node 0 \(kpu_conv2d"):
        read_kmodel(data[: len(data) - 40 - 50])
