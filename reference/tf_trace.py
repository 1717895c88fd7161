"""Every layer's output of a Keras model, by layer name (TensorFlow side, for comparisons).

`trace_model(model, x)` builds one functional sub-model whose outputs are all layer
outputs and runs it once. Nested models (a backbone used as a layer) are traced inside
too, fed with the value of the tensor the outer model passes them, so the names match
the flattened graph of `qsim.load_model` (inner names that collide with outer ones are
prefixed ``"<nested model>/"`` there and here).
"""
from __future__ import annotations

import numpy as np


def _is_model(layer) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def trace_model(model, x: np.ndarray) -> dict[str, np.ndarray]:
    """``{layer name: output array}`` for every layer (inputs included) of ``model`` on ``x``."""
    import keras

    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    fetch, keys = [], []
    for layer in layers:
        if not _is_model(layer):
            fetch.append(layer.output)
            keys.append(("out", layer.name))
        else:
            node = layer._inbound_nodes[-1]  # its call inside `model` (layer.output is the inner one)
            fetch.append(node.output_tensors[0])
            keys.append(("out", layer.name))
            for i, tensor in enumerate(node.input_tensors):
                fetch.append(tensor)
                keys.append(("nested_in", layer.name, i))
    probe = keras.Model(model.inputs, fetch)
    values = probe([x], training=False)
    if not isinstance(values, (list, tuple)):
        values = [values]
    out: dict[str, np.ndarray] = {}
    for inp_layer in [layer for layer in model.layers if isinstance(layer, keras.layers.InputLayer)]:
        out[inp_layer.name] = x
    nested_inputs: dict[str, list[np.ndarray]] = {}
    for key, value in zip(keys, values):
        value = np.asarray(value)
        if key[0] == "out":
            out[key[1]] = value
        else:
            nested_inputs.setdefault(key[1], []).append(value)
    for layer in layers:
        if _is_model(layer):
            inner = trace_model(layer, nested_inputs[layer.name][0])
            for name, value in inner.items():
                if any(name == inp.name for inp in layer.layers if isinstance(inp, keras.layers.InputLayer)):
                    continue  # the nested model's input is the outer tensor feeding it
                out[name if name not in out else f"{layer.name}/{name}"] = value
    return out
