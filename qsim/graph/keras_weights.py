"""Read Keras weight arrays from HDF5 with h5py (no TensorFlow), in every layout Keras writes.

Three layouts exist; `read_weights` detects which and returns ``{layer_name: {var: array}}``
with canonical variable names (``kernel``, ``bias``, ``gamma``, ``beta``, ``moving_mean``,
``moving_variance``):

* **Legacy HDF5** (Keras 2 and Keras 3 ``model.save("x.h5")`` / ``save_weights("x.h5")``
  in legacy mode): one group per top-level layer (under ``model_weights/`` in a full-model
  file, at the root in a weights-only file) whose attribute ``weight_names`` lists
  datasets named ``<layer>/<var>`` (``:0`` suffix in Keras 2). A nested model's group holds
  the weights of all its inner layers, named after the inner layers, so the layer is the
  second-to-last path component. Keras 2 calls the depthwise kernel ``depthwise_kernel`` (also SeparableConv2D's).
* **Keras 3** (``model.weights.h5`` inside a ``.keras`` zip, or ``x.weights.h5``): groups
  follow the object tree, ``layers/<key>/vars/<i>`` with keys derived from class names
  (``conv2d``, ``conv2d_1``, ``functional/layers/batch_normalization`` …) and variables
  numbered in creation order. Recent Keras 3 releases (3.15 here) write the layer name as
  a ``name`` attribute on each ``vars`` group; files without it are placed by recomputing
  the keys from the architecture the way Keras generates them (`keras3_keys`).
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from qsim.errors import ModelError

# Keras 3 numbers a layer's variables in creation order; these are the orders of the
# layers that have weights (BatchNormalization drops gamma/beta when scale/center=False).
KERAS3_VAR_ORDER = {
    "Conv2D": ("kernel", "bias"),
    "DepthwiseConv2D": ("kernel", "bias"),
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "Dense": ("kernel", "bias"),
    "SeparableConv2D": ("kernel", "pointwise_kernel", "bias"),  # kernel: the depthwise one
    "Normalization": ("mean", "variance", "count"),
}
# Keras 2 variable names that differ from the canonical ones.
VAR_ALIASES = {"depthwise_kernel": "kernel"}

Weights = dict[str, dict[str, np.ndarray]]


def to_snake_case(name: str) -> str:
    """Keras' class-name → object-key rule (``DepthwiseConv2D`` → ``depthwise_conv2d``).

    >>> to_snake_case("BatchNormalization"), to_snake_case("ReLU"), to_snake_case("Conv2D")
    ('batch_normalization', 're_lu', 'conv2d')
    """
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def read_weights(h5: Any, source: str, layer_specs: list[dict] | None = None) -> Weights:
    """All weights in an open h5py File/Group, keyed by layer name then canonical var name.

    Args:
        h5: the open file (or its ``model_weights`` group for a full legacy model).
        source: file name, for messages.
        layer_specs: the architecture's layer tree (see `keras_config.layer_tree`), needed
            only to place Keras 3 weights written without ``name`` attributes.
    """
    if "layers" in h5 and "weight_names" not in h5["layers"].attrs:
        return _read_keras3(h5, source, layer_specs)
    return _read_legacy(h5, source)


def _read_legacy(group: Any, source: str) -> Weights:
    out: Weights = {}
    for top_name in group:
        top = group[top_name]
        if not hasattr(top, "attrs") or "weight_names" not in top.attrs:
            continue
        for raw in top.attrs["weight_names"]:
            wname = raw.decode() if isinstance(raw, bytes) else str(raw)
            try:
                array = np.asarray(top[wname])
            except KeyError:
                raise ModelError(
                    f"{source}: weight {top_name}/{wname} is listed but missing (truncated file?)"
                ) from None
            except OSError as exc:
                raise ModelError(f"{source}: cannot read weight {top_name}/{wname}: {exc}") from exc
            parts = wname.split(":")[0].split("/")
            layer = parts[-2] if len(parts) >= 2 else top_name
            var = VAR_ALIASES.get(parts[-1], parts[-1])
            out.setdefault(layer, {})[var] = array
    return out


def keras3_keys(layer_specs: list[dict], prefix: str = "layers") -> dict[str, str]:
    """Map ``vars`` group paths to layer names the way Keras 3 names its object tree.

    Keras saves a model's ``layers`` list with one key per layer: the snake-cased class
    name, suffixed ``_1``, ``_2`` … for repeats, in layer order; nested models recurse.
    """
    keys: dict[str, str] = {}
    used: dict[str, int] = {}
    for spec in layer_specs:
        base = to_snake_case(spec["class_name"])
        count = used.get(base, 0)
        used[base] = count + 1
        key = f"{prefix}/{base}" if count == 0 else f"{prefix}/{base}_{count}"
        keys[f"{key}/vars"] = spec["name"]
        if spec.get("children"):
            keys.update(keras3_keys(spec["children"], f"{key}/layers"))
    return keys


def _read_keras3(h5: Any, source: str, layer_specs: list[dict] | None) -> Weights:
    var_groups: list[tuple[str, Any]] = []

    def visit(path: str, obj: Any) -> None:
        if path.endswith("/vars") and hasattr(obj, "keys") and len(obj.keys()) > 0:
            var_groups.append((path, obj))

    try:
        h5.visititems(visit)
    except (OSError, RuntimeError) as exc:
        raise ModelError(f"{source}: corrupt weights file: {exc}") from exc
    fallback = keras3_keys(layer_specs) if layer_specs else {}
    classes = _classes(layer_specs or [])
    out: Weights = {}
    for path, group in var_groups:
        layer = group.attrs.get("name")
        if isinstance(layer, bytes):
            layer = layer.decode()
        if not layer:
            layer = fallback.get(path)
        if not layer:
            raise ModelError(f"{source}: cannot tell which layer owns weights group {path!r}")
        try:
            arrays = [np.asarray(group[str(i)]) for i in range(len(group.keys()))]
        except (KeyError, OSError) as exc:
            raise ModelError(f"{source}: cannot read weights of layer {layer!r}: {exc}") from exc
        order = KERAS3_VAR_ORDER.get(classes.get(layer, ""))
        if order is None:
            # A class we do not convert (the converter names it) or a layer absent from the
            # architecture (reported as unused): keep the arrays under their indices.
            out[layer] = {str(i): a for i, a in enumerate(arrays)}
            continue
        if classes[layer] == "BatchNormalization":
            spec = _find(layer_specs or [], layer)
            cfg = spec["config"] if spec else {}
            order = tuple(v for v in order if not (v == "gamma" and cfg.get("scale") is False)
                          and not (v == "beta" and cfg.get("center") is False))
        if len(arrays) > len(order):
            raise ModelError(
                f"{source}: layer {layer!r} ({classes[layer]}) has {len(arrays)} weight arrays, "
                f"expected at most {len(order)}"
            )
        out[layer] = dict(zip(order, arrays))
    return out


def _classes(specs: list[dict]) -> dict[str, str]:
    out: dict[str, str] = {}
    for spec in specs:
        out[spec["name"]] = spec["class_name"]
        out.update(_classes(spec.get("children") or []))
    return out


def _find(specs: list[dict], name: str) -> dict | None:
    for spec in specs:
        if spec["name"] == name:
            return spec
        found = _find(spec.get("children") or [], name)
        if found:
            return found
    return None
