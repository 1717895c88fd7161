"""Small int8 / uint8 .tflite models converted inside the tests (TensorFlow needed).

Shapes follow the MLPerf Tiny models (ResNet-8, DS-CNN, MobileNet) at a reduced size
so that conversion and BUILTIN_REF runs stay fast. ``pow2=True`` rounds every
calibration range so that scales come out as powers of two, which makes rounding
ties frequent (the case that separates double from single rounding).
"""
from __future__ import annotations

import numpy as np


def _convert(tf, model, shape, seed, pow2=False, n_calib=8, float_io=False, scale=1.0):
    rng = np.random.default_rng(seed)
    calib = [(scale * rng.uniform(-1, 1, (1, *shape))).astype(np.float32) for _ in range(n_calib)]
    if pow2:
        # inputs on a 1/64 grid within [-2, 2): the input scale is 2^-k-ish and ties are common
        calib = [np.round(c * 64) / 64 for c in calib]

    def rep():
        for c in calib:
            yield [c]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:  # float I/O keeps a QUANTIZE at the input and a DEQUANTIZE at the output
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    out = conv.convert()
    return pow2_scales(out) if pow2 else out


def pow2_scales(buf: bytes) -> bytes:
    """Rewrite every scale of a converted model to the nearest power of two, in place.

    Bias scales are set to input scale x filter scale (the kernels' Prepare checks this),
    which is again a power of two, so every requantization multiplier is exactly 2^k and
    rounding ties are as frequent as they can be. Codes and zero points are unchanged.
    """
    import struct

    import tflite as schema

    b = bytearray(buf)
    sg = schema.Model.GetRootAs(b, 0).Subgraphs(0)

    def scale_vec(i):
        q = sg.Tensors(i).Quantization()
        if q is None or q.ScaleLength() == 0:
            return None, 0
        return q._tab.Vector(q._tab.Offset(8)), q.ScaleLength()

    def read(i):
        pos, n = scale_vec(i)
        return None if pos is None else np.array(struct.unpack_from(f"<{n}f", b, pos), np.float32)

    def write(i, vals):
        pos, n = scale_vec(i)
        struct.pack_into(f"<{n}f", b, pos, *[float(v) for v in np.broadcast_to(vals, (n,))])

    for i in range(sg.TensorsLength()):
        s = read(i)
        if s is not None:
            write(i, np.float32(2.0) ** np.round(np.log2(s.astype(np.float64))))
    for k in range(sg.OperatorsLength()):
        op = sg.Operators(k)
        ins = op.InputsAsNumpy()
        if len(ins) == 3 and ins[2] >= 0 and read(int(ins[2])) is not None and read(int(ins[1])) is not None:
            write(int(ins[2]), read(int(ins[0]))[0] * read(int(ins[1])))
    return bytes(b)


def _pow2_weights(model):
    """Round every weight to a few bits so weight scales and products tie often."""
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([np.round(w * 8) / 8 for w in ws])


def resnet8_like(tf, pow2=False, seed=0):
    L = tf.keras.layers
    x = inp = L.Input((16, 16, 3), batch_size=1)
    x = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    y = L.Conv2D(8, 3, padding="same")(y)
    s = L.Conv2D(8, 1, strides=2)(x)
    x = L.ReLU()(L.Add()([y, s]))
    y = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    y = L.Conv2D(16, 3, padding="same")(y)
    s = L.Conv2D(16, 1, strides=2)(x)
    x = L.ReLU()(L.Add()([y, s]))
    x = L.AveragePooling2D(4)(x)
    x = L.Reshape((16,))(x)  # Flatten would add SHAPE/STRIDED_SLICE for the batch dim
    x = L.Dense(10)(x)
    out = L.Softmax()(x)
    m = tf.keras.Model(inp, out)
    _init(m, seed, pow2)
    return _convert(tf, m, (16, 16, 3), seed, pow2)


def dscnn_like(tf, pow2=False, seed=1):
    L = tf.keras.layers
    x = inp = L.Input((25, 10, 1), batch_size=1)
    x = L.Conv2D(16, (5, 3), strides=(2, 2), padding="same", activation="relu")(x)
    for _ in range(2):
        x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
        x = L.Conv2D(16, 1, activation="relu")(x)
    x = L.AveragePooling2D((13, 5))(x)
    x = L.Reshape((16,))(x)
    x = L.Dense(12)(x)
    out = L.Softmax()(x)
    m = tf.keras.Model(inp, out)
    _init(m, seed, pow2)
    return _convert(tf, m, (25, 10, 1), seed, pow2)


def mobilenet_like(tf, pow2=False, seed=2, dynamic=False):
    L = tf.keras.layers
    x = inp = L.Input((None, None, 3) if dynamic else (24, 24, 3), batch_size=1)
    x = L.Conv2D(8, 3, strides=2, padding="same")(x)
    x = L.ReLU(6.0)(x)
    for ch, st in ((16, 2), (16, 1)):
        x = L.DepthwiseConv2D(3, strides=st, padding="same", depth_multiplier=1)(x)
        x = L.ReLU(6.0)(x)
        x = L.Conv2D(ch, 1)(x)
        x = L.ReLU(6.0)(x)
    x = L.DepthwiseConv2D(3, padding="valid", depth_multiplier=2)(x)
    x = L.MaxPooling2D(2, padding="same")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(5)(x)
    out = L.Softmax()(x)
    m = tf.keras.Model(inp, out)
    _init(m, seed, pow2)
    return _convert(tf, m, (24, 24, 3), seed, pow2)


def mobilenet_dyn(tf, pow2=False):
    """mobilenet_like with a dynamic H x W (shape_signature -1): run at other sizes."""
    return mobilenet_like(tf, pow2, dynamic=True)


def opmix(tf, pow2=False, seed=3):
    L = tf.keras.layers
    x = inp = L.Input((12, 12, 4), batch_size=1)
    a = L.Conv2D(6, 3, padding="same", activation="relu")(x)
    b = L.Conv2D(6, 3, strides=2, padding="same")(x)
    b = L.Resizing(24, 24, interpolation="bilinear")(b)  # half_pixel_centers
    b = L.Resizing(12, 12, interpolation="bilinear")(b)
    c = L.Concatenate()([a, b])
    g = L.Activation("sigmoid")(L.Conv2D(12, 1)(c))
    c = L.Multiply()([c, g])
    n = L.Resizing(24, 24, interpolation="nearest")(c)
    n = L.ZeroPadding2D(((1, 0), (0, 1)))(n)
    n = L.MaxPooling2D(3, strides=2)(n)
    m_ = L.GlobalAveragePooling2D()(n)  # MEAN
    d = L.Dense(8, activation="tanh" if False else None)(m_)
    e = L.Activation("relu6")(d)
    out = L.Softmax()(L.Dense(4)(e))
    m = tf.keras.Model(inp, out)
    _init(m, seed, pow2)
    return _convert(tf, m, (12, 12, 4), seed, pow2)


def lut(tf, pow2=False, seed=4):
    """LOGISTIC and SOFTMAX over every int8 code: input (1, 256), wide calibration range."""
    L = tf.keras.layers
    x = inp = L.Input((256,), batch_size=1)
    a = L.Activation("sigmoid")(x)
    b = L.Softmax()(L.Reshape((4, 64))(x))
    m = tf.keras.Model(inp, [a, b])
    return _convert(tf, m, (256,), seed, pow2, scale=8.0)


def fcdeep(tf, pow2=False, seed=5):
    """Wide FULLY_CONNECTED layers with float input/output (QUANTIZE, DEQUANTIZE)."""
    L = tf.keras.layers
    x = inp = L.Input((64,), batch_size=1)
    x = L.Dense(256, activation="relu")(x)
    x = L.Dense(256)(x)
    x = L.Dense(256, activation="relu6")(x)
    out = L.Dense(10)(x)
    m = tf.keras.Model(inp, out)
    _init(m, seed, pow2)
    return _convert(tf, m, (64,), seed, pow2, float_io=True)


def _fq(tf, t, lo, hi):
    return tf.quantization.fake_quant_with_min_max_args(t, min=lo, max=hi, num_bits=8)


def _convert_v1_uint8(tf, build):
    """The paper's path: a TF1 frozen graph with FakeQuant ranges -> legacy uint8 .tflite."""
    tf1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        x, out = build()
        with tf1.Session(graph=g) as sess:
            conv = tf1.lite.TFLiteConverter.from_session(sess, [x], [out])
            conv.inference_type = tf.uint8
            conv.quantized_input_stats = {"input": (127.5, 127.5)}
            return conv.convert()


def legacy_u8(tf, pow2=False, seed=6):
    """uint8 per-tensor asymmetric: conv, depthwise, add, average pool, FC, softmax."""
    rng = np.random.default_rng(seed)
    tf1 = tf.compat.v1

    def c(*shape):
        return tf.constant(rng.normal(0, 0.3, shape).astype(np.float32))

    def build():
        x = tf1.placeholder(tf.float32, [1, 12, 12, 3], name="input")
        fq = lambda t, lo, hi: _fq(tf, t, lo, hi)
        h = fq(x, -1.0, 1.0)
        h = fq(tf.nn.relu6(tf.nn.conv2d(h, fq(c(3, 3, 3, 8), -0.9, 0.8), 1, "SAME") + c(8)), 0.0, 6.0)
        d = fq(tf.nn.relu6(tf.nn.depthwise_conv2d(h, fq(c(3, 3, 8, 1), -0.7, 0.9), [1, 2, 2, 1], "SAME") + c(8)), 0.0, 6.0)
        e = fq(tf.nn.conv2d(d, fq(c(1, 1, 8, 8), -0.8, 0.8), 1, "VALID") + c(8), -3.0, 3.0)
        s = fq(tf.add(e, d), -3.0, 7.0)
        p = fq(tf.nn.avg_pool2d(s, 3, 3, "VALID"), -3.0, 7.0)
        lo = fq(tf.matmul(tf.reshape(p, [1, 32]), fq(c(32, 5), -1.0, 1.0)) + c(5), -8.0, 8.0)
        return x, tf.identity(fq(tf.nn.softmax(lo), 0.0, 255.0 / 256), name="out")

    return _convert_v1_uint8(tf, build)


def legacy_u8mix(tf, pow2=False, seed=7):
    """uint8: RESIZE_BILINEAR (half-pixel), RESIZE_NEAREST, MUL, CONCATENATION with rescaling,
    LOGISTIC, MAX_POOL_2D, MEAN."""
    rng = np.random.default_rng(seed)
    tf1 = tf.compat.v1

    def build():
        x = tf1.placeholder(tf.float32, [1, 8, 8, 4], name="input")
        fq = lambda t, lo, hi: _fq(tf, t, lo, hi)
        h = fq(x, -1.0, 1.0)
        w = fq(tf.constant(rng.normal(0, 0.3, (3, 3, 4, 4)).astype(np.float32)), -0.9, 0.8)
        cv = fq(tf.nn.conv2d(h, w, 2, "SAME"), -2.0, 2.0)
        u = fq(tf1.image.resize_bilinear(cv, [8, 8], half_pixel_centers=True), -2.0, 2.0)
        n = fq(fq(tf1.image.resize_nearest_neighbor(cv, [8, 8]), -2.0, 2.0) * 0.5, -1.5, 1.0)
        cat = fq(tf.concat([u, n], axis=3), -2.0, 2.0)
        mu = fq(cat * fq(tf.sigmoid(cat), 0.0, 255.0 / 256), -1.0, 2.0)
        mp = fq(tf.nn.max_pool2d(mu, 2, 2, "SAME"), -1.0, 2.0)
        return x, tf.identity(fq(tf.reduce_mean(mp, axis=[1, 2]), -0.5, 1.0), name="out")

    return _convert_v1_uint8(tf, build)


A98_TEST_HW = (64, 64)


def a98(tf, pow2=False, seed=8):
    """The bundled A98 face detector (MobileNetV2 alpha 1.0 to block_13_expand_relu + head A),
    int8 per-channel with a dynamic H x W (its ZeroPadding2D stay PAD ops, so it is the Keras
    network at every size), calibrated at A98_TEST_HW (small so the tests stay fast)."""
    import keras

    from qsim.datasets import REPO_ROOT

    base = keras.models.load_model(REPO_ROOT / "qsim" / "assets" / "a98_alpha1.0.h5", compile=False)
    inp = keras.Input((None, None, 3), batch_size=1)
    return _convert(tf, keras.Model(inp, base(inp)), (*A98_TEST_HW, 3), seed, pow2, n_calib=2)


def _init(model, seed, pow2):
    rng = np.random.default_rng(seed + 100)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rng.normal(0, 0.4, w.shape).astype(np.float32) for w in ws])
    if pow2:
        _pow2_weights(model)


MODELS = {
    "resnet8": resnet8_like,
    "dscnn": dscnn_like,
    "mobilenet": mobilenet_like,
    "opmix": opmix,
    "lut": lut,
    "fcdeep": fcdeep,
    "legacy_u8": legacy_u8,
    "legacy_u8mix": legacy_u8mix,
    "a98": a98,
    "mobilenet_dyn": mobilenet_dyn,
}
