"""kmodel v3 on synthetic files written by `kmodel_v3_write`: reader, every layer through the executor, fuzzing."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsim.errors import KmodelError, QsimError
from qsim.k210 import kmodel_v3_ops as ops
from qsim.k210 import layout
from qsim.k210.kmodel_v3 import kmodel_version, read_kmodel_v3
from qsim.k210.kmodel_v3_exec import KmodelV3Executor
from qsim.k210.kmodel_v3_write import LayerSpec, build_kmodel_v3
from qsim.k210.kpu import KpuSwitches
from qsim.k210.quantize import make_kpu_layer, quant_param

A = 4096  # where the identity FC leaves the float input
MAIN = 65536


def kpu_layer(rng, c, h, w, k=3, depthwise=False, pool=0, oc=None, src=0, dst=None):
    oc = c if depthwise else (oc or int(rng.integers(1, 6)))
    layer = make_kpu_layer("l", rng.normal(0, 1, (oc, 1 if depthwise else c, k, k)), rng.normal(0, 0.5, oc),
                           depthwise, quant_param(-1, 1), quant_param(-2, 4), ("relu", None, 0.1), (h, w), pool)
    a = layer.args
    a.image_src_addr = src
    a.image_dst_addr = layout.fmap_lines(w, h, c) + src if dst is None else dst
    a.dma_total_byte = layer.out_shape[0] * layer.out_shape[1] * layer.out_shape[2] - 1
    return layer


def conv_spec(layer, main_out=None):
    return LayerSpec("k210_conv", dict(flags=int(main_out is not None), main_mem_out_address=main_out or 0,
                                       layer=layer))


def fc_identity(n):
    """A first layer that puts n floats at A unchanged (x*1 plus exact zeros)."""
    return LayerSpec("fully_connected", dict(main_mem_in_address=0, main_mem_out_address=A, in_channels=n,
                                             out_channels=n, act=0, weights=np.eye(n, dtype=np.float32).ravel(),
                                             bias=np.zeros(n, np.float32)))


def run_cpu(n, specs, outputs, x, keep=False):
    data = build_kmodel_v3([fc_identity(n), *specs], outputs, MAIN)
    return KmodelV3Executor(read_kmodel_v3(data)).run(np.asarray(x, np.float32), keep=keep)


# ---------------------------------------------------------------- reader
def test_version_word_and_structure():
    rng = np.random.default_rng(0)
    layer = kpu_layer(rng, 3, 8, 20, pool=1)
    oc, oh, ow = layer.out_shape
    n = oc * oh * ow
    data = build_kmodel_v3([conv_spec(layer, 0), LayerSpec("dequantize", dict(
        flags=1, main_mem_in_address=0, main_mem_out_address=1024, count=n, scale=0.5, bias=-3.0))],
        [(1024, 4 * n)], 1024 + 4 * n)
    assert kmodel_version(data) == 3 and kmodel_version(b"LDMK\4\0\0\0") == 4 and kmodel_version(b"\5\0\0\0") is None
    m = read_kmodel_v3(data)
    assert m.op_counts() == {"k210_conv": 1, "dequantize": 1} and m.eight_bit_mode
    assert m.input_shapes == [(1, 3, 8, 20)] and m.inputs[0].memory_type == 2
    assert (m.outputs[0].start, m.outputs[0].size, m.outputs[0].dtype.name) == (1024, 4 * n, "float32")
    body = m.layers[0].body
    assert body.layer_offset % 256 == 0 and np.array_equal(body.weights, layer.weights.ravel())
    assert m.layers[1].body.scale == 0.5 and m.layers[1].body.count == n


@settings(max_examples=12)
@given(seed=st.integers(0, 10**6), c=st.integers(1, 5), h=st.integers(4, 18), w=st.integers(4, 70),
       k=st.sampled_from([1, 3]), depthwise=st.booleans(), pool=st.sampled_from([0, 1, 2, 5, 9]))
def test_conv_chain_matches_kpu_layers(seed, c, h, w, k, depthwise, pool):
    """Two K210_CONV layers (KPU RAM -> KPU RAM -> main memory) then DEQUANTIZE: the KpuLayer path of v4."""
    rng = np.random.default_rng(seed)
    l1 = kpu_layer(rng, c, h, w, k, depthwise, pool)
    c2, h2, w2 = l1.out_shape
    l2 = kpu_layer(rng, c2, h2, w2, 1, False, 0, src=l1.args.image_dst_addr)
    n = int(np.prod(l2.out_shape))
    deq = LayerSpec("dequantize", dict(flags=1, main_mem_in_address=0, main_mem_out_address=8 * ((n + 7) // 8),
                                       count=n, scale=0.25, bias=-1.5))
    out_at = 8 * ((n + 7) // 8)
    data = build_kmodel_v3([conv_spec(l1), conv_spec(l2, 0), deq], [(out_at, 4 * n)], out_at + 4 * n)
    x = rng.integers(0, 256, (c, h, w)).astype(np.uint8)
    for rounding in ("nncase", "half_up"):
        sw = KpuSwitches(act_rounding=rounding)
        run = KmodelV3Executor(read_kmodel_v3(data), sw).run(x, keep=True, count_overflow=True)
        want = l2.run(l1.run(x, sw), sw)
        assert np.array_equal(run.records[1].data[0], want)
        assert run.outputs[0].tobytes() == ops.dequantize(want.ravel(), 0.25, -1.5).tobytes()
        assert set(run.counters) == {"layer0_k210_conv", "layer1_k210_conv"}
    trace = run.to_trace(read_kmodel_v3(data))
    assert "node1_k210_conv" in trace.codes and "output0" in trace.outputs


# ---------------------------------------------------------------- every CPU layer through the executor
def test_float_layers_through_executor():
    x = np.array([3.0, -4.0, 0.5, 2.5, -1.0, 7.0, 0.0, 1.25], np.float32)  # also a (c=2, h=2, w=2) map
    n = x.size
    cases = {
        "add": (dict(main_mem_in_a_address=A, main_mem_in_b_address=A, main_mem_out_address=8192, count=n),
                ops.add(x, x)),
        "l2_normalization": (dict(main_mem_in_address=A, main_mem_out_address=8192, channels=n), ops.l2_normalization(x)),
        "softmax": (dict(main_mem_in_address=A, main_mem_out_address=8192, channels=n), ops.softmax(x)),
        "logistic": (dict(main_mem_in_address=A, main_mem_out_address=8192, channels=n), ops.logistic(x)),
        "global_average_pool2d": (dict(main_mem_in_address=A, main_mem_out_address=8192, kernel_size=4, channels=2),
                                  ops.global_average_pool2d(x, 4, 2)),
        "average_pool2d": (dict(main_mem_in_address=A, main_mem_out_address=8192, in_shape=(2, 2, 2),
                                out_shape=(1, 1, 2), kernel_width=2, kernel_height=2, stride_width=2,
                                stride_height=2, act=1),
                           ops.average_pool2d(x, (2, 2, 2), (1, 1, 2), (2, 2), (2, 2), (0, 0))),
        "tensorflow_flatten": (dict(main_mem_in_address=A, main_mem_out_address=8192, shape=(2, 2, 2)),
                               ops.tensorflow_flatten(x, (2, 2, 2))),
        "resize_nearest_neighbor": (dict(main_mem_in_address=A, main_mem_out_address=8192, in_shape=(2, 2, 2),
                                         out_width=3, out_height=5),
                                    ops.resize_nearest_neighbor(x, (2, 2, 2), 3, 5)),
    }
    for name, (fields, want) in cases.items():
        run = run_cpu(n, [LayerSpec(name, fields)], [(8192, 4 * want.size)], x, keep=True)
        assert run.outputs[0].dtype == np.float32, name
        assert run.outputs[0].tobytes() == want.astype(np.float32).tobytes(), name
        assert run.records[1].op == name and run.records[1].data.tobytes() == want.tobytes(), name
    # average_pool2d ignores its act field, as kpu.c: a negative mean stays negative
    assert ops.average_pool2d(-x, (2, 2, 2), (1, 1, 2), (2, 2), (2, 2), (0, 0)).min() < 0


def test_quantized_layers_through_executor():
    x = np.array([0, 1, 2, 3, 250, 251, 252, 40, 17, 90, 33, 64], np.float32)  # integers: quantize (1, 0) is exact
    n = x.size
    q = x.astype(np.uint8)
    table = (np.arange(256)[::-1]).astype(np.uint8)
    specs = [LayerSpec("quantize", dict(main_mem_in_address=A, mem_out_address=8192, count=n, scale=1.0, bias=0.0)),
             LayerSpec("requantize", dict(main_mem_in_address=8192, main_mem_out_address=8256, count=n, table=table)),
             LayerSpec("quantized_add", dict(main_mem_in_a_address=8192, main_mem_in_b_address=8256,
                                             main_mem_out_address=8320, count=n - 2, in_a_offset=0, in_a_mul=3,
                                             in_a_shift=1, in_b_offset=-2, in_b_mul=1, in_b_shift=2,
                                             out_offset=5, out_mul=7, out_shift=3)),
             LayerSpec("quantized_max_pool2d", dict(main_mem_in_address=8192, main_mem_out_address=8384,
                                                    in_shape=(3, 2, 2), out_shape=(2, 1, 2), kernel_width=2,
                                                    kernel_height=2, stride_width=2, stride_height=2)),
             LayerSpec("quantized_resize_nearest_neighbor", dict(main_mem_in_address=8192, main_mem_out_address=8448,
                                                                 in_shape=(3, 2, 2), out_width=5, out_height=3)),
             LayerSpec("quantized_concat", dict(main_mem_out_address=8512, input_count=2,
                                                inputs=[(8192, 5), (8256, 3)])),
             LayerSpec("channelwise_dequantize", dict(main_mem_in_address=8192, main_mem_out_address=8576, channels=3,
                                                      channel_size=4, scales=np.float32([1, 0.5, 2]),
                                                      biases=np.float32([0, -1, 3]))),
             LayerSpec("dequantize", dict(main_mem_in_address=8320, main_mem_out_address=8704, count=8,
                                          scale=0.125, bias=1.0))]
    outs = [(8192, n), (8256, n), (8320, 16), (8384, 4), (8448, 30), (8512, 8), (8576, 48), (8704, 32)]
    run = run_cpu(n, specs, outs, x)
    r = run.outputs
    assert r[0].tolist() == q.tolist() and r[1].tolist() == table[q].tolist()
    qa = ops.quantized_add(np.r_[q, 0, 0, 0, 0][:16][:16], np.r_[table[q], 0, 0, 0, 0][:16], 0, 3, 1, -2, 1, 2, 5, 7, 3)
    # count n-2 = 10 is processed as ALIGN_UP(10, 8) = 16 elements (kpu.c's 8-way unroll)
    assert r[2].tolist() == qa[:16].tolist()
    assert r[3].tolist() == ops.quantized_max_pool2d(q, (3, 2, 2), (2, 1, 2), (2, 2), (2, 2), (0, 0)).tolist()
    assert r[4].tolist() == ops.resize_nearest_neighbor(q, (3, 2, 2), 5, 3).tolist()
    assert r[5].tolist() == q[:5].tolist() + table[q][:3].tolist()
    assert r[6].dtype == np.float32 and r[6].tobytes() == ops.channelwise_dequantize(
        q, 4, np.float32([1, 0.5, 2]), np.float32([0, -1, 3])).tobytes()
    assert r[7].tobytes() == ops.dequantize(qa[:8], 0.125, 1.0).tobytes()


def test_kpu_movement_layers():
    """K210_UPLOAD -> K210_CONV, and K210_ADD_PADDING -> 4x4 K210_CONV -> K210_REMOVE_PADDING."""
    rng = np.random.default_rng(3)
    c, h, w = 2, 3, 5
    x = rng.integers(0, 256, c * h * w).astype(np.float32)
    n = x.size
    layer = kpu_layer(rng, c, h, w, 3, False, 0, oc=3, src=100, dst=200)
    oc, oh, ow = layer.out_shape
    specs = [LayerSpec("quantize", dict(main_mem_in_address=A, mem_out_address=8192, count=n, scale=1.0, bias=0.0)),
             LayerSpec("k210_upload", dict(main_mem_in_address=8192, kpu_mem_out_address=100, width=w, height=h,
                                           channels=c)),
             conv_spec(layer, 8448)]
    run = run_cpu(n, specs, [(8448, oc * oh * ow)], x)
    assert run.outputs[0].tolist() == layer.run(x.astype(np.uint8).reshape(c, h, w)).ravel().tolist()

    # a 1x1 vector on the KPU: add_padding places channel i at pixel (0, 0) of a 4x4 map
    c = 6
    x = rng.integers(0, 256, c).astype(np.float32)
    layer = kpu_layer(rng, c, 4, 4, 1, False, 0, oc=5, src=10, dst=40)
    specs = [LayerSpec("quantize", dict(main_mem_in_address=A, mem_out_address=8192, count=c, scale=1.0, bias=0.0)),
             LayerSpec("k210_add_padding", dict(main_mem_in_address=8192, kpu_mem_out_address=10, channels=c)),
             conv_spec(layer, 8448),
             LayerSpec("k210_remove_padding", dict(main_mem_in_address=8448, main_mem_out_address=8704, channels=5))]
    data = build_kmodel_v3([fc_identity(c), *specs], [(8704, 5)], MAIN)
    ex = KmodelV3Executor(read_kmodel_v3(data))
    run = ex.run(x, keep=True)
    m4 = layout.download(ex._kpu, 10 * 64, (c, 4, 4))
    assert m4[:, 0, 0].tolist() == x.astype(np.uint8).tolist()
    want = layer.run(m4)
    assert run.outputs[0].tolist() == want[:, 0, 0].tolist()


# ---------------------------------------------------------------- defects
def _synthetic_bytes() -> bytes:
    rng = np.random.default_rng(11)
    l1 = kpu_layer(rng, 3, 6, 9, 3, False, 1, oc=4)
    n = int(np.prod(l1.out_shape))
    return build_kmodel_v3([conv_spec(l1, 0),
                            LayerSpec("dequantize", dict(flags=1, main_mem_in_address=0, main_mem_out_address=64,
                                                         count=n, scale=0.5, bias=0.0)),
                            LayerSpec("softmax", dict(main_mem_in_address=64, main_mem_out_address=512, channels=n)),
                            LayerSpec("requantize", dict(main_mem_in_address=0, main_mem_out_address=1024, count=n,
                                                         table=np.arange(256, dtype=np.uint8)))],
                           [(512, 4 * n), (1024, n)], 2048)


def test_errors_name_layer_and_field():
    data = bytearray(_synthetic_bytes())
    m = read_kmodel_v3(bytes(data))
    with pytest.raises(KmodelError, match=r"header field version"):
        read_kmodel_v3(b"\7" + bytes(data[1:]))
    bad = bytearray(data)
    bad[m.layers[1].body_offset + 12:m.layers[1].body_offset + 16] = (10**6).to_bytes(4, "little")
    with pytest.raises(KmodelError, match=r"layer 1 \(dequantize, type 12\): field main_mem_in_address"):
        read_kmodel_v3(bytes(bad))
    bad = bytearray(data)
    head = 28 + 8 * 2 + 8 * 2  # the third layer's (type, size)
    bad[head:head + 4] = (7).to_bytes(4, "little")
    with pytest.raises(KmodelError, match=r"layer 2 \(max_pool2d, type 7\): field type: .*not implement"):
        read_kmodel_v3(bytes(bad))
    with pytest.raises(KmodelError, match=r"layer 3 \(requantize, type 13\): field body_size: .* runs past"):
        read_kmodel_v3(bytes(data[:-10]))
    bad = bytearray(data[:-10])
    bad[head + 8 + 4:head + 8 + 8] = (m.layers[3].body_size - 10).to_bytes(4, "little")  # a consistent short body
    with pytest.raises(KmodelError, match=r"layer 3 \(requantize, type 13\): field table: truncated"):
        read_kmodel_v3(bytes(bad))
    with pytest.raises(KmodelError, match=r"eight_bit_mode"):
        KmodelV3Executor(read_kmodel_v3(b"\3\0\0\0\0" + bytes(data[5:])))
    with pytest.raises(QsimError, match=r"shape \(1, 3, 6, 9\)"):
        KmodelV3Executor(m).run(np.zeros((3, 6, 8), np.uint8))


def _check_defective(data: bytes, x) -> None:
    """Loading and running a defective file ends in success or a QsimError naming where; never a crash."""
    try:
        KmodelV3Executor(read_kmodel_v3(data)).run(x)
    except QsimError as exc:
        assert any(w in str(exc) for w in ("layer ", "header", "output ", "field", "input")), str(exc)


def test_fuzz_synthetic_truncations_and_flips():
    data = _synthetic_bytes()
    x = np.random.default_rng(0).integers(0, 256, (3, 6, 9)).astype(np.uint8)
    for cut in range(0, len(data), 7):
        with pytest.raises(KmodelError, match=r"header|layer \d+ \(|output \d+"):
            read_kmodel_v3(data[:cut])
    rng = np.random.default_rng(1)
    m = read_kmodel_v3(data)
    structural = list(range(m.layers[0].body_offset + 24)) + [
        m.layers[0].body.layer_offset + i for i in range(96)] + list(range(m.layers[1].body_offset, len(data)))
    for _ in range(300):
        bad = bytearray(data)
        pos = int(rng.choice(structural))
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        _check_defective(bytes(bad), x)


def test_deterministic_across_runs_and_threads():
    import numba

    data = _synthetic_bytes()
    x = np.random.default_rng(2).integers(0, 256, (3, 6, 9)).astype(np.uint8)
    threads = numba.get_num_threads()
    outs = []
    try:
        for n in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(n)
            for _ in range(2):
                outs.append([o.tobytes() for o in KmodelV3Executor(read_kmodel_v3(data)).run(x).outputs])
    finally:
        numba.set_num_threads(threads)
    assert all(o == outs[0] for o in outs)


def test_slim320_kpu_layers_as_v3_match_v4(data_dir):
    """Proof (2): slim-320's first 12 KPU layers (real registers, byte-exact on v4) rewritten as a v3
    file give, through the v3 executor, the bytes the v4 executor computes for node 11."""
    from qsim.k210 import KmodelExecutor

    golden = np.load(data_dir / "kmodels" / "slim-320-golden.npz")
    v4 = KmodelExecutor(data_dir / "kmodels" / "slim-320.kmodel")
    x = golden["inputs"][0]
    want = v4.run(x, keep=True).records[11].data
    specs = [conv_spec(v4.layers[i], 0 if i == 11 else None) for i in range(12)]
    data = build_kmodel_v3(specs, [(0, want.size)], want.size)
    m = read_kmodel_v3(data)
    assert m.outputs[0].dtype == np.uint8 and m.input_shapes == [(1, 3, 240, 320)]
    run = KmodelV3Executor(m).run(x)
    assert run.outputs[0].tobytes() == want.tobytes()
