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


def compare_with_qsim(path: str, size: tuple[int, int], fold_bn: bool = True, seed: int = 0) -> list[tuple]:
    """``[(max|err| / max|act|, layer, max|err|)]`` of qsim's float executor vs TF, worst first."""
    import keras

    import qsim
    from qsim.executors import float_exec

    model = keras.models.load_model(path, compile=False)
    x = np.random.default_rng(seed).uniform(-1, 1, (1, *size, 3)).astype(np.float32)
    reference = trace_model(model, x)
    values = float_exec.run(qsim.load_model(path, fold_bn=fold_bn), x).values
    rows = []
    for name, got in values.items():
        if name in reference:
            err = float(np.max(np.abs(got.astype(np.float64) - reference[name])))
            rows.append((err / max(float(np.max(np.abs(reference[name]))), 1e-30), name, err))
    return sorted(rows, reverse=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m reference.tf_trace MODEL --size 224x224 [--no-fold-bn]``: worst layers."""
    import argparse

    parser = argparse.ArgumentParser(description="qsim float executor vs TensorFlow, layer by layer")
    parser.add_argument("model")
    parser.add_argument("--size", default="224x224")
    parser.add_argument("--no-fold-bn", action="store_true")
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    rows = compare_with_qsim(args.model, (h, w), fold_bn=not args.no_fold_bn)
    print(f"{len(rows)} layers compared; worst max|err| / max|activation|:")
    for ratio, name, err in rows[: args.top]:
        print(f"  {ratio:.2e}  {name}  (max|err| {err:.3g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
