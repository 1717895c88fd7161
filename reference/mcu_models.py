"""Keras builders with the architectures of real MCU models (TensorFlow side, random weights).

The four MLPerf Tiny reference models (mlcommons/tiny, ``benchmark/training``), rebuilt
from their published architectures (no file of theirs is copied):

* `vww_96`: visual wake words, MobileNetV1 alpha 0.25 on 96x96x3: a 3x3/s2 conv of 8
  filters, 13 depthwise-separable blocks (depthwise 3x3 + BN + ReLU, 1x1 conv + BN +
  ReLU), AveragePooling2D over the whole 3x3 map, Flatten, Dense(2, softmax).
* `resnet8`: CIFAR-10 ResNet-8 ("pretrainedResnet") on 32x32x3: conv 16 + BN + ReLU, three
  residual stacks of 16, 32, 64 filters (the last two stride 2 with a 1x1/s2 shortcut
  conv), AveragePooling2D(8), Flatten, Dense(10, softmax).
* `ad01`: anomaly-detection Dense autoencoder on 640 features: 4 x (Dense 128 + BN +
  ReLU), a Dense 8 + BN + ReLU bottleneck, 4 x (Dense 128 + BN + ReLU), Dense 640.
* `str_ww`: streaming wake word DS-TCN on 30x1x40: 4 blocks of DepthwiseConv2D (k x 1,
  valid, no bias) + 1x1 Conv2D (no bias) + BN + ReLU + Dropout with k = 3, 5, 10, 15 and
  128, 128, 128, 32 filters (time 30 -> 1), Flatten, Dense(3, softmax).

`keras_applications(name, size)` gives MobileNet (alpha 0.25), MobileNetV3Small
(hard-swish, SE blocks, Rescaling) and EfficientNetB0 (swish, SE, Rescaling +
Normalization) with ``weights=None``. `layer_zoo` covers every other supported layer kind
(max/average pooling "same" with edge windows, global pools both keepdims, separable
conv, tanh, hard_sigmoid, ReLU options, LeakyReLU, Softmax layer, Reshape, Multiply).
`randomise_statistics` gives every BatchNormalization and Normalization non-trivial
statistics, so folding and the normalization are really exercised.
"""
from __future__ import annotations

import numpy as np


def _layers():
    import keras

    return keras, keras.layers


def vww_96(seed: int = 0):
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((96, 96, 3), name="input")
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inp)
    x = L.Activation("relu")(L.BatchNormalization()(x))
    for filters, stride in [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 \
            + [(256, 2), (256, 1)]:
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = L.Activation("relu")(L.BatchNormalization()(x))
        x = L.Conv2D(filters, 1, use_bias=False)(x)
        x = L.Activation("relu")(L.BatchNormalization()(x))
    x = L.AveragePooling2D(pool_size=tuple(x.shape[1:3]))(x)
    out = L.Dense(2, activation="softmax")(L.Flatten()(x))
    return keras.Model(inp, out, name="vww_96")


def resnet8(seed: int = 0):
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((32, 32, 3), name="input")
    x = L.Conv2D(16, 3, padding="same")(inp)
    x = L.Activation("relu")(L.BatchNormalization()(x))
    for filters, stride in [(16, 1), (32, 2), (64, 2)]:
        y = L.Conv2D(filters, 3, strides=stride, padding="same")(x)
        y = L.Activation("relu")(L.BatchNormalization()(y))
        y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same")(y))
        if stride != 1:
            x = L.Conv2D(filters, 1, strides=stride, padding="same")(x)
        x = L.Activation("relu")(L.Add()([x, y]))
    x = L.AveragePooling2D(pool_size=8)(x)
    out = L.Dense(10, activation="softmax")(L.Flatten()(x))
    return keras.Model(inp, out, name="resnet8")


def ad01(seed: int = 0):
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((640,), name="input")
    x = inp
    for units in [128] * 4 + [8] + [128] * 4:
        x = L.Activation("relu")(L.BatchNormalization()(L.Dense(units)(x)))
    return keras.Model(inp, L.Dense(640)(x), name="ad01")


def str_ww(seed: int = 0):
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((30, 1, 40), name="input")
    x = inp
    for k, filters in [(3, 128), (5, 128), (10, 128), (15, 32)]:
        x = L.DepthwiseConv2D((k, 1), padding="valid", use_bias=False)(x)
        x = L.BatchNormalization()(L.Conv2D(filters, 1, use_bias=False)(x))
        x = L.Dropout(0.2)(L.Activation("relu")(x))
    out = L.Dense(3, activation="softmax")(L.Flatten()(x))
    return keras.Model(inp, out, name="str_ww")


MLPERF_TINY = {"vww_96": vww_96, "resnet8": resnet8, "ad01": ad01, "str_ww": str_ww}


def keras_applications(name: str, size: int = 64, seed: int = 0):
    """MobileNet (alpha 0.25), MobileNetV3Small or EfficientNetB0, weights=None, 10 classes."""
    keras, _ = _layers()
    keras.utils.set_random_seed(seed)
    shape = (size, size, 3)
    if name == "mobilenet":
        return keras.applications.MobileNet(input_shape=shape, alpha=0.25, weights=None, classes=10)
    if name == "mobilenet_v3_small":
        return keras.applications.MobileNetV3Small(input_shape=shape, weights=None, classes=10)
    if name == "efficientnet_b0":
        return keras.applications.EfficientNetB0(input_shape=shape, weights=None, classes=10)
    raise ValueError(f"unknown application {name!r}")


def layer_zoo(seed: int = 0):
    """One model with every supported layer kind the models above do not use."""
    keras, L = _layers()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((21, 19, 3), name="input")  # odd sizes: "same" pools have edge windows
    x = L.Conv2D(8, 3, padding="same", activation="tanh", name="conv_tanh")(inp)
    x = L.MaxPooling2D(3, strides=2, padding="same", name="max_same")(x)
    a = L.AveragePooling2D(3, strides=2, padding="same", name="avg_same")(x)
    a = L.SeparableConv2D(12, 3, padding="same", depth_multiplier=2, activation="hard_sigmoid",
                          name="sep")(a)
    a = L.ReLU(max_value=0.8, negative_slope=0.1, threshold=0.3, name="relu_opts")(a)
    b = L.MaxPooling2D(2, name="max_valid")(L.Conv2D(12, 1, name="pw")(x))  # 11x10 -> 5x5
    b = L.LeakyReLU(negative_slope=0.2, name="leaky")(b)
    b = L.AveragePooling2D(2, strides=1, name="avg_valid")(b)  # 4x4
    b = L.ZeroPadding2D(((1, 1), (0, 1)), name="pad_b")(b)  # 6x5, as branch a
    g = L.GlobalMaxPooling2D(keepdims=True, name="gmax_keep")(b)
    m = L.Multiply(name="scale")([b, L.Activation("sigmoid", name="gate")(g)])  # SE-style broadcast
    m = L.Activation("hard_swish", name="hswish")(m)
    merged = L.Add(name="sum")([L.Conv2D(12, 1, name="proj")(a), m])
    gmax = L.GlobalMaxPooling2D(name="gmax")(merged)
    gavg = L.GlobalAveragePooling2D(name="gavg")(merged)
    v = L.Concatenate(name="vec")([gmax, gavg])
    v = L.BatchNormalization(name="bn_1d")(v)  # 1-D, not folded: nothing MAC-like before it
    v = L.Dense(12, activation="swish", name="fc_swish")(v)
    v = L.Reshape((3, 4), name="to_seq")(v)
    v = L.Dense(5, name="fc_seq")(v)  # Dense on a rank-3 tensor (per position)
    v = L.Softmax(axis=1, name="softmax_time")(v)
    v = L.Flatten(name="flat")(v)
    out = L.Dense(4, activation="softmax", name="probs")(v)
    return keras.Model(inp, out, name="layer_zoo")


def randomise_statistics(model, seed: int = 0) -> None:
    """Non-trivial BatchNormalization gamma/beta/mean/variance and Normalization mean/variance."""
    keras, L = _layers()
    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        if isinstance(layer, L.BatchNormalization):
            shapes = [w.shape for w in layer.get_weights()]
            c = shapes[0][0]
            values = {"gamma": rng.uniform(0.5, 1.5, c), "beta": rng.normal(0, 0.2, c),
                      "moving_mean": rng.normal(0, 0.2, c), "moving_variance": rng.uniform(0.3, 2.0, c)}
            names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
            layer.set_weights([values[n].astype(np.float32) for n in names])
        elif isinstance(layer, L.Normalization) and layer.weights:
            weights = layer.get_weights()
            mean = rng.normal(0.3, 0.2, weights[0].shape).astype(np.float32)
            var = rng.uniform(0.05, 0.3, weights[1].shape).astype(np.float32)
            layer.set_weights([mean, var] + weights[2:])
            layer.finalize_state()  # Keras 3 computes with copies made here, not with the variables


def _all_layers(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


MODELS = tuple(MLPERF_TINY) + ("mobilenet", "mobilenet_v3_small", "efficientnet_b0", "zoo")
PIXEL_INPUT = ("mobilenet_v3_small", "efficientnet_b0")  # Rescaling inside: raw 0..255 pixels


def build(name: str, seed: int = 1, size: int = 32):
    """One of `MODELS` with randomised statistics (`randomise_statistics`, seed + 1)."""
    if name in MLPERF_TINY:
        model = MLPERF_TINY[name](seed=seed)
    elif name == "zoo":
        model = layer_zoo(seed=seed)
    else:
        model = keras_applications(name, size=size, seed=seed)
    randomise_statistics(model, seed=seed + 1)
    return model


def sample_input(model, name: str, n: int = 2, seed: int = 3) -> np.ndarray:
    """Uniform [-1, 1] inputs (raw 0..255 pixels for the models that rescale inside)."""
    x = np.random.default_rng(seed).uniform(-1, 1, (n, *model.input_shape[1:])).astype(np.float32)
    return (x + 1) * np.float32(127.5) if name in PIXEL_INPUT else x


def measure(name: str, folder) -> dict:
    """Worst float-vs-TF and fp16-vs-float error (relative to the layer's max |activation|)."""
    from pathlib import Path

    import qsim
    from qsim.executors import float_exec, fp16_exec
    from reference.tf_trace import trace_model

    model = build(name)
    path = Path(folder) / f"{name}.h5"
    model.save(path)
    x = sample_input(model, name)
    reference = trace_model(model, x)
    graph = qsim.load_model(path)
    full = float_exec.run(graph, x).values
    half = fp16_exec.run(graph, x).values

    def worst(values, against):
        rows = [(float(np.max(np.abs(values[k].astype(np.float64) - against[k])))
                 / (float(np.max(np.abs(against[k]))) or 1.0), k) for k in values if k in against]
        return max(rows), len(rows)

    (f32, f32_at), compared = worst(full, reference)
    (f16, f16_at), _ = worst(half, full)
    return {"model": name, "nodes": len(graph), "compared": compared, "float_vs_tf": f32, "float_worst": f32_at,
            "fp16_vs_float": f16, "fp16_worst": f16_at, "ops": sorted({n.op for n in graph})}


def main(argv: list[str] | None = None) -> int:
    """``python -m reference.mcu_models [--models a,b]``: the accuracy table of docs/layers.md."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="qsim float/fp16 vs TensorFlow on MCU model architectures")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    args = parser.parse_args(argv)
    print("| model | nodes | layers vs TF | float vs TF (worst layer) | fp16 vs float (worst layer) |")
    print("|:--|--:|--:|:--|:--|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            r = measure(name, folder)
            print(f"| {name} | {r['nodes']} | {r['compared']} | {r['float_vs_tf']:.1e} ({r['float_worst']}) | "
                  f"{r['fp16_vs_float']:.1e} ({r['fp16_worst']}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
