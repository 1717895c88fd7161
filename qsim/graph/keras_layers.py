"""One converter per supported Keras layer class: Keras config + weights → IR `Node`s.

`CONVERTERS` is the registry (a literal: grep finds every supported class). A converter
returns the nodes for one layer; the last node carries the layer's name (its output), so
a ``Conv2D(activation="relu")`` becomes ``<name>_linear`` (conv) + ``<name>`` (relu).
Anything else raises `ModelError` naming the layer, its class and the supported list.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from qsim.errors import ModelError
from qsim.graph.ir import Node
from qsim.graph.keras_config import KerasLayer

Converter = Callable[[KerasLayer, dict[str, np.ndarray]], list[Node]]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _pair(value: Any, what: str, layer: KerasLayer) -> tuple[int, int]:
    """A positive ``(h, w)`` from an int or a 2-list of ints (kernel_size, strides, dilation, size)."""
    pair = (value, value) if _is_int(value) else tuple(value) if isinstance(value, (list, tuple)) else ()
    if len(pair) != 2 or not all(_is_int(v) and v >= 1 for v in pair):
        raise ModelError(f"layer {layer.name!r} ({layer.class_name}): bad {what} {value!r} "
                         "(expected a positive int or a pair of them)")
    return pair


def _positive_int(layer: KerasLayer, field: str, default: Any = None) -> int:
    value = layer.config.get(field, default)
    if not _is_int(value) or value < 1:
        raise ModelError(f"layer {layer.name!r} ({layer.class_name}): bad {field} {value!r} "
                         "(expected a positive int)")
    return value


def _check_shape(layer: KerasLayer, var: str, array: np.ndarray, expected: tuple, why: str) -> None:
    """The stored array must have the shape the config implies (None = any size on that axis)."""
    if len(expected) != array.ndim or any(e is not None and e != d for e, d in zip(expected, array.shape)):
        want = tuple("?" if e is None else e for e in expected)
        raise ModelError(f"layer {layer.name!r} ({layer.class_name}): stored {var} has shape {array.shape}, "
                         f"the config ({why}) implies {want}")


def _channels_last(layer: KerasLayer) -> None:
    fmt = layer.config.get("data_format") or "channels_last"
    if fmt != "channels_last":
        raise ModelError(
            f"layer {layer.name!r} ({layer.class_name}): data_format={fmt!r}; only channels_last (NHWC) "
            "is supported"
        )


def _weight(layer: KerasLayer, weights: dict[str, np.ndarray], var: str, ndim: int) -> np.ndarray:
    if var not in weights:
        have = ", ".join(sorted(weights)) or "none"
        raise ModelError(
            f"layer {layer.name!r} ({layer.class_name}): weight {var!r} missing from the file "
            f"(found: {have})"
        )
    raw = np.asarray(weights[var])
    if raw.dtype.kind not in "fiub":
        raise ModelError(f"layer {layer.name!r} ({layer.class_name}): weight {var!r} is not numeric "
                         f"(dtype {raw.dtype})")
    array = raw.astype(np.float32)
    if array.ndim != ndim:
        raise ModelError(
            f"layer {layer.name!r} ({layer.class_name}): weight {var!r} has shape {array.shape}, "
            f"expected {ndim} dimensions"
        )
    return array


RELU_ATTRS = {"max_value": None, "negative_slope": 0.0, "threshold": 0.0}
# Keras activation name -> (op, attrs); Keras 3 aliases (silu/swish, hard_silu/hard_swish) both listed.
ACTIVATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "relu": ("relu", RELU_ATTRS),
    "relu6": ("relu", {**RELU_ATTRS, "max_value": 6.0}),
    "leaky_relu": ("relu", {**RELU_ATTRS, "negative_slope": 0.2}),
    "sigmoid": ("sigmoid", {}),
    "tanh": ("tanh", {}),
    "hard_sigmoid": ("hard_sigmoid", {"slope": 1 / 6, "offset": 0.5}),
    "hard_swish": ("hard_swish", {}),
    "hard_silu": ("hard_swish", {}),
    "swish": ("swish", {}),
    "silu": ("swish", {}),
    "softmax": ("softmax", {"axis": -1}),
}


def _activation(layer: KerasLayer, name: str, linear_name: str) -> list[Node]:
    """Nodes for a fused ``activation=`` argument (empty for linear)."""
    act = layer.config.get("activation", "linear")
    if isinstance(act, dict):  # Keras 3 may serialise a function object
        act = act.get("config", {}).get("name", act.get("class_name"))
    act = act or "linear"
    if act == "linear":
        return []
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise ModelError(f"layer {layer.name!r} ({layer.class_name}): activation {act!r} not supported "
                         f"(supported: linear, {', '.join(ACTIVATIONS)})")
    op, attrs = ACTIVATIONS[act]
    if act == "hard_sigmoid" and layer.keras_major == 2:  # Keras 2: clip(0.2 x + 0.5, 0, 1)
        attrs = {"slope": 0.2, "offset": 0.5}
    return [Node(name, op, [linear_name], dict(attrs), {}, layer.class_name)]


def _conv_common(layer: KerasLayer) -> dict[str, Any]:
    _channels_last(layer)
    cfg = layer.config
    padding = cfg.get("padding", "valid")
    if padding not in ("same", "valid"):
        raise ModelError(f"layer {layer.name!r} ({layer.class_name}): padding={padding!r} not supported")
    strides = _pair(cfg.get("strides", 1), "strides", layer)
    dilation = _pair(cfg.get("dilation_rate", 1), "dilation_rate", layer)
    if max(strides) > 1 and max(dilation) > 1:
        raise ModelError(f"layer {layer.name!r}: strides > 1 with dilation > 1 is not valid in Keras")
    return {"strides": strides, "pads": "same" if padding == "same" else (0, 0, 0, 0),
            "dilation": dilation}


def _with_activation(layer: KerasLayer, op: str, attrs: dict, w: dict) -> list[Node]:
    act = _activation(layer, layer.name, f"{layer.name}_linear")
    conv_name = f"{layer.name}_linear" if act else layer.name
    return [Node(conv_name, op, list(layer.inputs), attrs, w, layer.class_name)] + act


def conv2d(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    if int(layer.config.get("groups", 1)) != 1:
        raise ModelError(f"layer {layer.name!r} (Conv2D): groups={layer.config['groups']} not supported")
    attrs = _conv_common(layer)
    kh, kw = _pair(layer.config.get("kernel_size"), "kernel_size", layer)
    filters = _positive_int(layer, "filters")
    w = {"kernel": _weight(layer, weights, "kernel", 4)}
    why = f"kernel_size {[kh, kw]}, filters {filters}"
    _check_shape(layer, "kernel", w["kernel"], (kh, kw, None, filters), why)
    if layer.config.get("use_bias", True):
        w["bias"] = _weight(layer, weights, "bias", 1)
        _check_shape(layer, "bias", w["bias"], (filters,), why)
    return _with_activation(layer, "conv2d", attrs, w)


def depthwise_conv2d(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    attrs = _conv_common(layer)
    kh, kw = _pair(layer.config.get("kernel_size"), "kernel_size", layer)
    mult = _positive_int(layer, "depth_multiplier", 1)
    w = {"kernel": _weight(layer, weights, "kernel", 4)}
    why = f"kernel_size {[kh, kw]}, depth_multiplier {mult}"
    _check_shape(layer, "kernel", w["kernel"], (kh, kw, None, mult), why)
    if layer.config.get("use_bias", True):
        w["bias"] = _weight(layer, weights, "bias", 1)
        _check_shape(layer, "bias", w["bias"], (w["kernel"].shape[2] * mult,), why)
    return _with_activation(layer, "depthwise_conv2d", attrs, w)


def batch_norm(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    cfg = layer.config
    axis = cfg.get("axis", -1)
    if isinstance(axis, list):
        axis = axis[0] if len(axis) == 1 else axis
    if not _is_int(axis) or axis == 0 or axis < -1:
        raise ModelError(f"layer {layer.name!r} (BatchNormalization): axis={axis!r}; only the last axis "
                         "(channels or features)")
    mean = _weight(layer, weights, "moving_mean", 1)
    w = {
        "gamma": _weight(layer, weights, "gamma", 1) if cfg.get("scale", True) else np.ones_like(mean),
        "beta": _weight(layer, weights, "beta", 1) if cfg.get("center", True) else np.zeros_like(mean),
        "mean": mean,
        "variance": _weight(layer, weights, "moving_variance", 1),
    }
    for key, v in w.items():
        _check_shape(layer, key, v, mean.shape, f"{mean.size} channels of moving_mean")
    attrs: dict[str, Any] = {"epsilon": float(cfg.get("epsilon", 1e-3))}
    if axis > 0:  # counts the batch axis: the importer checks it is the last one (it knows the rank)
        attrs["keras_axis"] = axis
    return [Node(layer.name, "batch_norm", list(layer.inputs), attrs, w, layer.class_name)]


def _number(layer: KerasLayer, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ModelError(f"layer {layer.name!r} ({layer.class_name}): bad {field} {value!r:.60} "
                         "(expected a finite number)")
    return float(value)


def relu(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    cfg = layer.config
    max_value = cfg.get("max_value")
    attrs = {
        "max_value": None if max_value is None else _number(layer, "max_value", max_value),
        "negative_slope": _number(layer, "negative_slope", cfg.get("negative_slope", 0.0) or 0.0),
        "threshold": _number(layer, "threshold", cfg.get("threshold", 0.0) or 0.0),
    }
    return [Node(layer.name, "relu", list(layer.inputs), attrs, {}, layer.class_name)]


def leaky_relu(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    slope = layer.config.get("negative_slope", layer.config.get("alpha", 0.3))
    attrs = {"max_value": None, "negative_slope": _number(layer, "negative_slope", slope), "threshold": 0.0}
    return [Node(layer.name, "relu", list(layer.inputs), attrs, {}, layer.class_name)]


def activation(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    nodes = _activation(layer, layer.name, layer.inputs[0])
    return nodes or [Node(layer.name, "identity", list(layer.inputs), {}, {}, layer.class_name)]


def zero_padding(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    _channels_last(layer)
    pad = layer.config.get("padding", 1)
    if isinstance(pad, int):
        pads = (pad, pad, pad, pad)
    elif len(pad) == 2 and all(isinstance(p, int) for p in pad):
        pads = (pad[0], pad[0], pad[1], pad[1])
    elif len(pad) == 2:
        pads = (int(pad[0][0]), int(pad[0][1]), int(pad[1][0]), int(pad[1][1]))
    else:
        raise ModelError(f"layer {layer.name!r} (ZeroPadding2D): bad padding {pad!r}")
    return [Node(layer.name, "pad", list(layer.inputs), {"pads": pads}, {}, layer.class_name)]


def add(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    if len(layer.inputs) < 2:
        raise ModelError(f"layer {layer.name!r} (Add): needs at least 2 inputs, has {len(layer.inputs)}")
    return [Node(layer.name, "add", list(layer.inputs), {}, {}, layer.class_name)]


def concatenate(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    axis = layer.config.get("axis", -1)
    if axis not in (-1, 3):
        raise ModelError(f"layer {layer.name!r} (Concatenate): axis={axis}; only channels (-1) is supported")
    return [Node(layer.name, "concat", list(layer.inputs), {"axis": -1}, {}, layer.class_name)]


def upsampling(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    _channels_last(layer)
    interp = layer.config.get("interpolation", "nearest")
    if interp not in ("nearest", "bilinear"):
        raise ModelError(
            f"layer {layer.name!r} (UpSampling2D): interpolation={interp!r}; supported: nearest, bilinear"
        )
    size = _pair(layer.config.get("size", 2), "size", layer)
    return [Node(layer.name, "upsample", list(layer.inputs), {"size": size, "interpolation": interp},
                 {}, layer.class_name)]


def dense(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    units = _positive_int(layer, "units")
    w = {"kernel": _weight(layer, weights, "kernel", 2)}
    _check_shape(layer, "kernel", w["kernel"], (None, units), f"units {units}")
    if layer.config.get("use_bias", True):
        w["bias"] = _weight(layer, weights, "bias", 1)
        _check_shape(layer, "bias", w["bias"], (units,), f"units {units}")
    return _with_activation(layer, "dense", {}, w)


def separable_conv2d(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    """Depthwise (``<name>_depthwise``, no bias) then a 1x1 conv with the bias and activation."""
    attrs = _conv_common(layer)
    kh, kw = _pair(layer.config.get("kernel_size"), "kernel_size", layer)
    mult = _positive_int(layer, "depth_multiplier", 1)
    filters = _positive_int(layer, "filters")
    depthwise = _weight(layer, weights, "kernel", 4)
    _check_shape(layer, "depthwise_kernel", depthwise, (kh, kw, None, mult),
                 f"kernel_size {[kh, kw]}, depth_multiplier {mult}")
    pointwise = _weight(layer, weights, "pointwise_kernel", 4)
    _check_shape(layer, "pointwise_kernel", pointwise, (1, 1, depthwise.shape[2] * mult, filters),
                 f"filters {filters} after {depthwise.shape[2]}x{mult} depthwise channels")
    w = {"kernel": pointwise}
    if layer.config.get("use_bias", True):
        w["bias"] = _weight(layer, weights, "bias", 1)
        _check_shape(layer, "bias", w["bias"], (filters,), f"filters {filters}")
    dw_name = f"{layer.name}_depthwise"
    dw = Node(dw_name, "depthwise_conv2d", list(layer.inputs), attrs, {"kernel": depthwise}, layer.class_name)
    pw_attrs = {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilation": (1, 1)}
    act = _activation(layer, layer.name, f"{layer.name}_linear")
    pw = Node(f"{layer.name}_linear" if act else layer.name, "conv2d", [dw_name], pw_attrs, w, layer.class_name)
    return [dw, pw] + act


def _pool(op: str):
    def convert_pool(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
        _channels_last(layer)
        cfg = layer.config
        padding = cfg.get("padding", "valid")
        if padding not in ("same", "valid"):
            raise ModelError(f"layer {layer.name!r} ({layer.class_name}): padding={padding!r} not supported")
        pool = _pair(cfg.get("pool_size", 2), "pool_size", layer)
        strides = pool if cfg.get("strides") is None else _pair(cfg["strides"], "strides", layer)
        attrs = {"pool_size": pool, "strides": strides, "pads": "same" if padding == "same" else (0, 0, 0, 0)}
        return [Node(layer.name, op, list(layer.inputs), attrs, {}, layer.class_name)]
    return convert_pool


def _global_pool(op: str):
    def convert_global(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
        _channels_last(layer)
        keepdims = layer.config.get("keepdims", False)
        if not isinstance(keepdims, bool):
            raise ModelError(f"layer {layer.name!r} ({layer.class_name}): bad keepdims {keepdims!r}")
        return [Node(layer.name, op, list(layer.inputs), {"keepdims": keepdims}, {}, layer.class_name)]
    return convert_global


def flatten_layer(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    _channels_last(layer)
    return [Node(layer.name, "reshape", list(layer.inputs), {"shape": (-1,)}, {}, layer.class_name)]


def reshape(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    target = layer.config.get("target_shape")
    if not isinstance(target, (list, tuple)) or not target or not all(
            _is_int(d) and (d >= 1 or d == -1) for d in target):
        raise ModelError(f"layer {layer.name!r} (Reshape): bad target_shape {target!r}")
    return [Node(layer.name, "reshape", list(layer.inputs), {"shape": tuple(target)}, {}, layer.class_name)]


def softmax(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    axis = layer.config.get("axis", -1)
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    if not _is_int(axis) or axis == 0:
        raise ModelError(f"layer {layer.name!r} (Softmax): axis={axis!r}; one non-batch axis is supported")
    # a positive Keras axis counts the batch axis: the importer makes it negative (it knows the rank)
    return [Node(layer.name, "softmax", list(layer.inputs), {"axis": axis}, {}, layer.class_name)]


def multiply(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    if len(layer.inputs) < 2:
        raise ModelError(f"layer {layer.name!r} (Multiply): needs at least 2 inputs, has {len(layer.inputs)}")
    return [Node(layer.name, "multiply", list(layer.inputs), {}, {}, layer.class_name)]


def _vector(layer: KerasLayer, field: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64) if not isinstance(value, (str, dict, bool)) else np.array([])
    except (ValueError, TypeError):  # ragged or non-numeric lists
        arr = np.array([])
    per_channel = arr.ndim <= 1 or arr.size == arr.shape[-1]  # (C,) or e.g. (1, 1, 1, C): broadcasts per channel
    if arr.size == 0 or not per_channel or arr.dtype.kind != "f" or not np.all(np.isfinite(arr)):
        raise ModelError(f"layer {layer.name!r} ({layer.class_name}): bad {field} {value!r:.60} "
                         "(expected a finite number or a list of them, one per channel)")
    return arr.reshape(-1)


def _rescale(layer: KerasLayer, scale: np.ndarray, offset: np.ndarray) -> list[Node]:
    """A rescale node; scalars are broadcast to the channels by the importer (shape known there)."""
    size = max(scale.size, offset.size)
    if scale.size not in (1, size) or offset.size not in (1, size):
        raise ModelError(f"layer {layer.name!r} ({layer.class_name}): scale ({scale.size} values) and offset "
                         f"({offset.size}) do not match")
    w = {"scale": np.broadcast_to(scale, (size,)).astype(np.float32),
         "offset": np.broadcast_to(offset, (size,)).astype(np.float32)}
    return [Node(layer.name, "rescale", list(layer.inputs), {}, w, layer.class_name)]


def rescaling(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    """Keras Rescaling: x * scale + offset."""
    return _rescale(layer, _vector(layer, "scale", layer.config.get("scale", 1.0)),
                    _vector(layer, "offset", layer.config.get("offset", 0.0)))


NORMALIZATION_EPSILON = 1e-7  # keras.backend.epsilon(): Normalization divides by max(sqrt(var), eps)


def normalization(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    """Keras Normalization: (x - mean) / max(sqrt(variance), 1e-7); ``invert``: x * sd + mean."""
    cfg = layer.config
    axis = cfg.get("axis", -1)
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    if not _is_int(axis) or axis == 0 or axis < -1:
        raise ModelError(f"layer {layer.name!r} (Normalization): axis={axis!r}; only the last axis")
    if cfg.get("mean") is not None:
        mean, variance = _vector(layer, "mean", cfg["mean"]), _vector(layer, "variance", cfg.get("variance"))
    else:
        mean = _weight(layer, weights, "mean", np.ndim(weights.get("mean", 0))).astype(np.float64).reshape(-1)
        variance = _weight(layer, weights, "variance", np.ndim(weights.get("variance", 0)))
        variance = variance.astype(np.float64).reshape(-1)
    if mean.size != variance.size:
        raise ModelError(f"layer {layer.name!r} (Normalization): mean has {mean.size} values, variance "
                         f"{variance.size}")
    sd = np.maximum(np.sqrt(np.maximum(variance, 0.0)), NORMALIZATION_EPSILON)
    nodes = _rescale(layer, sd, mean) if cfg.get("invert", False) else _rescale(layer, 1.0 / sd, -mean / sd)
    if axis > 0:  # counts the batch axis: the importer checks it is the last one (it knows the rank)
        nodes[0].attrs["keras_axis"] = axis
    return nodes


def _op_arith(kind: str):
    """Keras 3 ops on symbolic tensors: tensor (op) constant -> rescale; tensor (op) tensor -> add/multiply."""
    def convert_op(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
        n_tensors, consts = len(layer.inputs), layer.constants
        if n_tensors >= 2 and not consts and kind in ("add", "multiply"):
            return [Node(layer.name, kind, list(layer.inputs), {}, {}, layer.class_name)]
        if n_tensors != 1 or len(consts) != 1:
            raise ModelError(f"layer {layer.name!r} ({layer.class_name}): {n_tensors} tensor(s) and "
                             f"{len(consts)} constant(s); supported: tensor and one constant, or tensors only "
                             "for add/multiply")
        c = _vector(layer, "constant", consts[0])
        one, zero = np.ones(1), np.zeros(1)
        if kind == "divide" and np.any(c == 0):
            raise ModelError(f"layer {layer.name!r} ({layer.class_name}): division by zero")
        scale, offset = {"add": (one, c), "subtract": (one, -c), "multiply": (c, zero),
                         "divide": (1.0 / np.where(c == 0, 1, c), zero)}[kind]
        return _rescale(layer, scale, offset)
    return convert_op


def identity(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    """Inference-time no-ops (Dropout and friends)."""
    if len(layer.inputs) != 1:
        raise ModelError(f"layer {layer.name!r} ({layer.class_name}): expected one input")
    return [Node(layer.name, "identity", list(layer.inputs), {}, {}, layer.class_name)]


CONVERTERS: dict[str, Converter] = {
    "Conv2D": conv2d,
    "DepthwiseConv2D": depthwise_conv2d,
    "BatchNormalization": batch_norm,
    "ReLU": relu,
    "LeakyReLU": leaky_relu,
    "Activation": activation,
    "ZeroPadding2D": zero_padding,
    "Add": add,
    "Concatenate": concatenate,
    "UpSampling2D": upsampling,
    "Dense": dense,
    "SeparableConv2D": separable_conv2d,
    "Flatten": flatten_layer,
    "Reshape": reshape,
    "AveragePooling2D": _pool("avg_pool"),
    "MaxPooling2D": _pool("max_pool"),
    "GlobalAveragePooling2D": _global_pool("global_avg_pool"),
    "GlobalMaxPooling2D": _global_pool("global_max_pool"),
    "Softmax": softmax,
    "Multiply": multiply,
    "Rescaling": rescaling,
    "Normalization": normalization,
    "ops.Add": _op_arith("add"),
    "ops.Subtract": _op_arith("subtract"),
    "ops.Multiply": _op_arith("multiply"),
    "ops.Divide": _op_arith("divide"),
    "ops.TrueDivide": _op_arith("divide"),
    "Dropout": identity,
    "SpatialDropout2D": identity,
    "GaussianNoise": identity,
    "GaussianDropout": identity,
    "AlphaDropout": identity,
    "ActivityRegularization": identity,
}
SUPPORTED = ("InputLayer",) + tuple(CONVERTERS) + ("Functional/Model/Sequential (inlined)",)


def convert(layer: KerasLayer, weights: dict[str, np.ndarray]) -> list[Node]:
    """Nodes of one Keras layer; `ModelError` for an unsupported class."""
    fn = CONVERTERS.get(layer.class_name)
    if fn is None:
        raise ModelError(
            f"layer {layer.name!r} has unsupported type {layer.class_name!r}; supported: "
            + ", ".join(SUPPORTED)
        )
    return fn(layer, weights)
