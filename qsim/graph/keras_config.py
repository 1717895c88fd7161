"""Flatten a Keras model config (JSON) into one list of layers with resolved inputs.

Handles both config dialects:

* Keras 2: ``inbound_nodes = [[["layer", node_index, tensor_index, {kwargs}], ...]]``,
  ``InputLayer`` with ``batch_input_shape``, nested models of class ``Model``/``Functional``.
* Keras 3: ``inbound_nodes = [{"args": [...], "kwargs": {...}}]`` where tensors are
  ``{"class_name": "__keras_tensor__", "config": {"keras_history": [layer, node, tensor]}}``
  anywhere inside ``args`` (``Add`` receives a list), ``InputLayer`` with ``batch_shape``,
  ``output_layers`` a single ``[name, 0, 0]`` when the model has one output. Arithmetic on
  symbolic tensors (``x + 3.0`` in MobileNetV3) is an op of module ``keras.src.ops.*``: its
  class becomes ``ops.<Class>`` (``ops.Add``: not the ``Add`` layer; see `_class_name`) and
  its numeric arguments are kept in call order (`KerasLayer.constants`).

Nested models (``Functional``/``Model``/``Sequential`` used as a layer, e.g. a MobileNetV2
backbone) are inlined: their input layers are bound to the tensors feeding them and their
outputs replace the nested layer. A layer called more than once (shared weights) is not
supported and raises `ModelError`. Inner names that collide with outer ones are prefixed
``"<nested model>/"``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qsim.errors import ModelError

MODEL_CLASSES = ("Functional", "Model")
SEQUENTIAL_CLASSES = ("Sequential",)


@dataclass
class KerasLayer:
    """One (non-model) Keras layer call of the flattened graph."""

    name: str  # unique name in the flattened graph (the Keras layer name unless it collided)
    class_name: str
    config: dict[str, Any]
    inputs: list[str] = field(default_factory=list)
    keras_name: str = ""  # the layer's own name, used to find its weights
    constants: list[Any] = field(default_factory=list)  # Keras 3 op calls: non-tensor args (x + 3.0)
    keras_major: int = 3  # the Keras that wrote the file (2 or 3): hard_sigmoid differs


@dataclass
class FlatModel:
    name: str
    layers: list[KerasLayer]
    outputs: list[str]


def check_structure(model_config: Any, source: str) -> None:
    """Raise `ModelError` unless `model_config` has the shape every reader here relies on.

    A model is an object with a string ``class_name``; its ``config`` an object (or, in very old
    Sequential files, the layer list); ``layers`` a list of objects, each with a string
    ``class_name``, an object ``config`` and a list ``inbound_nodes`` when present. Nested models
    are checked the same way. Values inside a layer's config are checked by its converter.
    """
    if not isinstance(model_config, dict) or not isinstance(model_config.get("class_name"), str):
        got = type(model_config).__name__ if not isinstance(model_config, dict) else "object without 'class_name'"
        raise ModelError(f"{source}: not a Keras model config (got {got})")
    _check_model(model_config, source, model_config.get("config", {}).get("name", "model")
                 if isinstance(model_config.get("config"), dict) else "model")


def _check_model(mcfg: dict, source: str, scope: str) -> None:
    cfg = mcfg.get("config", {})
    if isinstance(cfg, list) and mcfg["class_name"] in SEQUENTIAL_CLASSES:
        specs = cfg
    elif isinstance(cfg, dict):
        specs = cfg.get("layers", [])
    else:
        raise ModelError(f"{source}: model {scope!r}: 'config' is a {type(cfg).__name__}, expected an object")
    if not isinstance(specs, list):
        raise ModelError(f"{source}: model {scope!r}: 'layers' is a {type(specs).__name__}, expected a list")
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
            raise ModelError(f"{source}: model {scope!r}: layer #{i} is {spec!r:.60}, expected an object "
                             "with a 'class_name'")
        if not isinstance(spec.get("config", {}), dict):
            raise ModelError(f"{source}: model {scope!r}: layer #{i} ({spec['class_name']}) has a "
                             f"{type(spec['config']).__name__} 'config', expected an object")
        name = _layer_name(spec)
        if not isinstance(name, str) or not name:
            raise ModelError(f"{source}: model {scope!r}: layer #{i} ({spec['class_name']}) has no name")
        if not isinstance(spec.get("inbound_nodes", []), list):
            raise ModelError(f"{source}: layer {name!r}: 'inbound_nodes' is not a list")
        if spec["class_name"] in MODEL_CLASSES + SEQUENTIAL_CLASSES:
            _check_model(spec, source, name)


def layer_tree(model_config: dict) -> list[dict]:
    """``[{name, class_name, config, children}]`` in config order (nested models recurse)."""
    cfg = model_config.get("config", {})
    out = []
    for spec in cfg.get("layers", []):
        cls = spec.get("class_name", "")
        name = _layer_name(spec)
        children = layer_tree(spec) if cls in MODEL_CLASSES + SEQUENTIAL_CLASSES else None
        out.append({"name": name, "class_name": cls, "config": spec.get("config", {}),
                    "children": children})
    return out


def flatten(model_config: dict, source: str = "") -> FlatModel:
    """Inline every nested model; return layers in topological order and the outputs."""
    if not isinstance(model_config, dict) or "class_name" not in model_config:
        raise ModelError(f"{source}: not a Keras model config (no 'class_name')")
    cls = model_config["class_name"]
    if cls not in MODEL_CLASSES + SEQUENTIAL_CLASSES:
        raise ModelError(
            f"{source}: top-level object is a {cls!r}, expected a Functional or Sequential model"
        )
    check_structure(model_config, source)
    flat = _Flattener(source, _keras_major(model_config))
    try:
        outputs = flat.model(model_config, bindings=None, scope=model_config.get("config", {}).get("name", ""))
    except (TypeError, KeyError, IndexError, ValueError, AttributeError) as exc:
        # a tensor reference or name list of the wrong shape deep inside inbound_nodes
        where = f" after layer {flat.layers[-1].name!r}" if flat.layers else ""
        raise ModelError(f"{source}: malformed layer connections{where}: {type(exc).__name__}: {exc}") from None
    return FlatModel(model_config.get("config", {}).get("name", "model"), flat.layers,
                     [o for o in outputs])


def _layer_name(spec: dict) -> str:
    return spec.get("config", {}).get("name") or spec.get("name", "")


def _refs_of_list(refs: Any) -> list[list]:
    """``input_layers``/``output_layers``: ``[name, 0, 0]`` or ``[[name, 0, 0], ...]``."""
    if not refs:
        return []
    if isinstance(refs[0], str):
        return [refs]
    return [list(r) for r in refs]


def _constants(call: Any) -> list[Any]:
    """Numeric (non-tensor) positional arguments of a Keras 3 call, in order."""
    def numeric(a: Any) -> bool:
        if isinstance(a, list):
            return bool(a) and all(numeric(v) for v in a)
        return isinstance(a, (int, float)) and not isinstance(a, bool)

    if not isinstance(call, dict):
        return []
    return [a for a in call.get("args", []) if numeric(a)]


def _class_name(spec: dict, call: Any) -> str:
    """``ops.<Class>`` for a Keras 3 op on symbolic tensors, else the layer class.

    A ``.keras`` config names the op's module (``keras.src.ops.numpy``); a legacy ``.h5``
    written by Keras 3 drops it, but an op is called with several positional arguments
    (``x, 3.0``) where a layer gets one (a tensor, or the list of an ``Add``'s inputs).
    """
    cls = spec.get("class_name", "")
    module = spec.get("module") or ""
    several_args = isinstance(call, dict) and isinstance(call.get("args"), list) and len(call["args"]) > 1
    is_op = (isinstance(module, str) and module.startswith("keras.src.ops")) or several_args
    return f"ops.{cls}" if is_op else cls


def _keras_major(model_config: dict) -> int:
    version = str(model_config.get("keras_version") or "3")
    return 2 if version.startswith("2") else 3


def _tensor_refs(call: Any) -> list[tuple[str, int, int]]:
    """Every input tensor reference in one inbound-node entry, in argument order."""
    out: list[tuple[str, int, int]] = []
    if isinstance(call, dict) and ("args" in call or "kwargs" in call):  # Keras 3
        def walk(obj: Any) -> None:
            if isinstance(obj, dict):
                if obj.get("class_name") == "__keras_tensor__":
                    hist = obj["config"]["keras_history"]
                    out.append((hist[0], int(hist[1]), int(hist[2])))
                else:
                    for v in obj.values():
                        walk(v)
            elif isinstance(obj, (list, tuple)):
                for v in obj:
                    walk(v)
        walk(call.get("args", []))
        return out
    for ref in call:  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
        out.append((ref[0], int(ref[1]), int(ref[2])))
    return out


class _Flattener:
    def __init__(self, source: str, keras_major: int = 3) -> None:
        self.source = source
        self.keras_major = keras_major
        self.layers: list[KerasLayer] = []
        self.names: set[str] = set()

    def _unique(self, name: str, scope: str) -> str:
        unique = name if name not in self.names else f"{scope}/{name}"
        if unique in self.names:
            raise ModelError(f"{self.source}: duplicate layer name {name!r} in model {scope!r}")
        self.names.add(unique)
        return unique

    def _emit_input(self, spec_cfg: dict, name: str, scope: str) -> str:
        shape = spec_cfg.get("batch_shape") or spec_cfg.get("batch_input_shape")
        if shape is None:
            raise ModelError(f"{self.source}: input layer {name!r} has no shape")
        unique = self._unique(name, scope)
        self.layers.append(KerasLayer(unique, "InputLayer", {"batch_shape": list(shape)}, [], name))
        return unique

    def model(self, mcfg: dict, bindings: list[str] | None, scope: str) -> list[str]:
        if mcfg["class_name"] in SEQUENTIAL_CLASSES:
            return self.sequential(mcfg, bindings, scope)
        cfg = mcfg.get("config", {})
        specs = cfg.get("layers")
        if not isinstance(specs, list):
            raise ModelError(f"{self.source}: model {scope!r} config has no layer list")
        input_names = [r[0] for r in _refs_of_list(cfg.get("input_layers"))]
        if bindings is not None and len(bindings) != len(input_names):
            raise ModelError(
                f"{self.source}: nested model {scope!r} takes {len(input_names)} inputs, "
                f"called with {len(bindings)}"
            )
        local: dict[str, list[str]] = {}
        for spec in specs:
            cls = spec.get("class_name", "")
            name = _layer_name(spec)
            calls = spec.get("inbound_nodes") or []
            if cls == "InputLayer":
                if bindings is not None:
                    if name not in input_names:
                        raise ModelError(f"{self.source}: nested model {scope!r}: stray input {name!r}")
                    local[name] = [bindings[input_names.index(name)]]
                else:
                    local[name] = [self._emit_input(spec.get("config", {}), name, scope)]
                continue
            if len(calls) != 1:
                what = "never called" if not calls else f"called {len(calls)} times (shared layer)"
                raise ModelError(f"{self.source}: layer {name!r} ({cls}) is {what}; not supported")
            inputs = []
            for ref_name, _node, tensor in _tensor_refs(calls[0]):
                if ref_name not in local:
                    raise ModelError(
                        f"{self.source}: layer {name!r} reads {ref_name!r}, not defined before it"
                    )
                produced = local[ref_name]
                if tensor >= len(produced):
                    raise ModelError(f"{self.source}: layer {name!r} reads output {tensor} of {ref_name!r}")
                inputs.append(produced[tensor])
            if cls in MODEL_CLASSES + SEQUENTIAL_CLASSES:
                local[name] = self.model(spec, inputs, name)
                continue
            unique = self._unique(name, scope)
            self.layers.append(KerasLayer(unique, _class_name(spec, calls[0]), spec.get("config", {}), inputs, name,
                                          _constants(calls[0]), self.keras_major))
            local[name] = [unique]
        outputs = []
        for ref in _refs_of_list(cfg.get("output_layers")):
            if ref[0] not in local:
                raise ModelError(f"{self.source}: model {scope!r} output {ref[0]!r} is not a layer")
            outputs.append(local[ref[0]][int(ref[2])])
        return outputs

    def sequential(self, mcfg: dict, bindings: list[str] | None, scope: str) -> list[str]:
        specs = mcfg.get("config", {}).get("layers")
        if isinstance(mcfg.get("config"), list):  # very old Keras: config is the layer list
            specs = mcfg["config"]
        if not isinstance(specs, list):
            raise ModelError(f"{self.source}: Sequential model {scope!r} has no layer list")
        current: str | None = bindings[0] if bindings else None
        for spec in specs:
            cls = spec.get("class_name", "")
            cfg = spec.get("config", {})
            name = _layer_name(spec)
            if cls == "InputLayer":
                if current is None:
                    current = self._emit_input(cfg, name, scope)
                continue
            if current is None:
                current = self._emit_input(cfg, f"{name}_input", scope)
            if cls in MODEL_CLASSES + SEQUENTIAL_CLASSES:
                outs = self.model(spec, [current], name)
                if len(outs) != 1:
                    raise ModelError(f"{self.source}: nested model {name!r} in a Sequential has {len(outs)} outputs")
                current = outs[0]
                continue
            unique = self._unique(name, scope)
            self.layers.append(KerasLayer(unique, cls, cfg, [current], name, keras_major=self.keras_major))
            current = unique
        if current is None:
            raise ModelError(f"{self.source}: Sequential model {scope!r} is empty")
        return [current]
