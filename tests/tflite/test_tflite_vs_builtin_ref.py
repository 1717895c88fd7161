"""Every intermediate tensor of every test model == TFLite's BUILTIN_REF interpreter.

The oracle is ``tf.lite.Interpreter(..., OpResolverType.BUILTIN_REF,
experimental_preserve_all_tensors=True)`` (the optimized/XNNPACK kernels are not
bit-exact with the reference). Models are converted inside the tests (tflite_testmodels).
"""
from __future__ import annotations

import numpy as np
import pytest

from qsim.tflite import TfliteOptions, prepare, read_tflite_bytes

MODELS = ["resnet8", "dscnn", "mobilenet", "opmix", "lut", "fcdeep", "legacy_u8", "legacy_u8mix", "a98"]
ALL = MODELS + [m + "_pow2" for m in ("resnet8", "dscnn", "mobilenet", "opmix", "fcdeep")]


def input_shape_for(t):
    """The stored input shape, or for a dynamic H x W (shape_signature -1) the test size."""
    if t.signature is not None and -1 in t.signature:
        from tflite_testmodels import A98_TEST_HW

        return (1, *A98_TEST_HW, t.shape[3])
    return tuple(t.shape)


def builtin_ref(tf, buf: bytes, x: np.ndarray):
    it = tf.lite.Interpreter(
        model_content=buf,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
        experimental_preserve_all_tensors=True,
    )
    inp = it.get_input_details()[0]
    if tuple(inp["shape"]) != x.shape:
        it.resize_tensor_input(inp["index"], x.shape)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it


def inputs_for(model, seed: int):
    t = model.tensors[model.inputs[0]]
    shape = input_shape_for(t)
    rng = np.random.default_rng(seed)
    if t.dtype == np.dtype(np.float32):
        return [rng.uniform(-1.5, 1.5, shape).astype(np.float32)]
    lo, hi = np.iinfo(t.dtype).min, np.iinfo(t.dtype).max
    every = (np.arange(int(np.prod(shape))) % (hi - lo + 1) + lo).reshape(shape)
    return [rng.integers(lo, hi + 1, shape).astype(t.dtype), every.astype(t.dtype),
            np.full(shape, hi, t.dtype)]


def mismatches(tf, buf, options=TfliteOptions(), seed=0):
    """{(op index, op name, tensor): (differing values, size)} over all test inputs."""
    m = read_tflite_bytes(buf)
    t = m.tensors[m.inputs[0]]
    shapes = None if input_shape_for(t) == tuple(t.shape) else {t.index: input_shape_for(t)}
    prog = prepare(m, options, input_shapes=shapes)
    bad = {}
    for x in inputs_for(m, seed):
        it = builtin_ref(tf, buf, x)
        run = prog.run(x)
        for op in m.operators:
            for i in op.outputs:
                want, got = it.get_tensor(i), run.tensors[i]
                assert got.dtype == want.dtype and got.shape == want.shape
                n = int(np.count_nonzero(want != got))
                if n:
                    key = (op.index, op.name, i)
                    bad[key] = (bad.get(key, (0, 0))[0] + n, want.size)
    return bad


@pytest.mark.parametrize("name", ALL)
def test_every_tensor_bit_exact(tf, tflite_model_bytes, name):
    buf = tflite_model_bytes(name)
    assert mismatches(tf, buf) == {}


def test_models_cover_every_supported_op(tflite_model_bytes):
    from qsim.tflite.executor import OP_TABLE

    seen = set()
    for name in ALL:
        seen |= {op.code for op in read_tflite_bytes(tflite_model_bytes(name)).operators}
    assert seen == set(OP_TABLE)


def test_pow2_models_have_power_of_two_scales(tflite_model_bytes):
    m = read_tflite_bytes(tflite_model_bytes("resnet8_pow2"))
    scales = np.concatenate([t.quant.scale for t in m.tensors if t.quant is not None])
    assert np.all(np.log2(scales.astype(np.float64)) == np.round(np.log2(scales.astype(np.float64))))


@pytest.mark.parametrize("name", ["opmix_pow2", "mobilenet"])
def test_single_rounding_is_not_what_the_pip_wheel_does(tf, tflite_model_bytes, name):
    """../shared/tflite-int8.md §2: the wheel uses double rounding; single rounding mismatches."""
    bad = mismatches(tf, tflite_model_bytes(name), TfliteOptions(single_rounding=True))
    assert bad, "single rounding unexpectedly matched BUILTIN_REF"
    assert {k[1] for k in bad} & {"CONV_2D", "DEPTHWISE_CONV_2D", "RESIZE_BILINEAR", "MUL"}


def test_fully_connected_reference_requantizes_in_float(tf, tflite_model_bytes):
    """§3: BUILTIN_REF's int8 FULLY_CONNECTED rounds double(acc) * eff, not the int32 multiplier."""
    buf = tflite_model_bytes("fcdeep")
    bad = mismatches(tf, buf, TfliteOptions(fc_requant="integer"), seed=2)
    assert any(k[1] == "FULLY_CONNECTED" for k in bad)
    assert mismatches(tf, buf, seed=2) == {}


def test_legacy_model_is_uint8_per_tensor_asymmetric(tflite_model_bytes):
    m = read_tflite_bytes(tflite_model_bytes("legacy_u8"))
    w = [m.tensors[op.inputs[1]] for op in m.operators if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert all(t.dtype == np.uint8 and not t.quant.per_channel for t in w)
    assert any(int(t.quant.zero_point[0]) not in (0, 128) for t in w)  # asymmetric weights


@pytest.mark.parametrize("shape", [(1, 24, 24, 3), (1, 40, 56, 3), (1, 13, 9, 3)])
def test_other_input_sizes_like_resize_tensor_input(tf, tflite_model_bytes, shape):
    """A model with a dynamic H x W, run at other sizes (prepare(input_shapes=...)) ==
    BUILTIN_REF after resize_tensor_input, every tensor."""
    buf = tflite_model_bytes("mobilenet_dyn")
    m = read_tflite_bytes(buf)
    assert m.tensors[m.inputs[0]].signature == (1, -1, -1, 3)
    x = np.random.default_rng(5).integers(-128, 128, shape).astype(np.int8)
    it = tf.lite.Interpreter(model_content=buf,
                             experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
                             experimental_preserve_all_tensors=True)
    it.resize_tensor_input(m.inputs[0], shape)
    it.allocate_tensors()
    it.set_tensor(m.inputs[0], x)
    it.invoke()
    run = prepare(m, input_shapes={m.inputs[0]: shape}).run(x)
    for op in m.operators:
        for i in op.outputs:
            np.testing.assert_array_equal(run.tensors[i], it.get_tensor(i))
    assert m.tensors[m.inputs[0]].shape == (1, 1, 1, 3)  # the loaded model is not modified
