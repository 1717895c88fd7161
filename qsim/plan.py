"""`Plan`: the number format of every weight, bias, activation and accumulator.

A plan answers, for every graph node, "which integers does this layer hold?":

* ``weights`` - format of the kernel codes (conv2d, depthwise_conv2d, dense, batch_norm
  scale, rescale scale)
* ``bias``    - format of the bias codes (aligned into the accumulator by a left shift)
* ``act``     - format of the node's output activation codes (for an ``input`` node: the
  format the image is quantized into). A node's *input* format is its producer's ``act``
  (`Plan.activation_formats`); the pass-through ops (``pad``, ``identity``, ``reshape``,
  ``max_pool``, ``global_max_pool``) move codes unchanged, so their ``act`` is their
  input's format whatever the plan says.
* ``acc_bits`` - width of the accumulator of every MAC op (two's complement). Its
  fraction bits are ``input.frac_bits + weights.frac_bits`` (the product's).
* ``acc_saturation`` - ``"final"`` (saturate the exact sum once, at the end) or
  ``"per_step"`` (saturate after every addition, in the order bias, then kernel row,
  kernel column, input channel: the order of a sequential MAC unit). Used only when the
  ``acc`` site's overflow mode is ``saturate``; ``wrap`` of an exact sum equals the wrap of
  any running two's-complement sum, so it has no order.
* ``rounding`` / ``overflow`` - the default modes of every site, overridable per site.

Sites (also the keys of ``Trace.counters[node]``): ``weights`` and ``bias`` (quantizing
the float parameters), ``input`` (quantizing the image), ``acc`` (accumulator width),
``requant`` (accumulator to output format), ``add`` (residual add), ``upsample``,
``concat`` (aligning inputs to the output format), ``act`` (ReLU/ReLU6/sigmoid output),
``pool`` (the one rounded division of avg_pool / global_avg_pool into their ``act``) and
``mul`` (the exact product of a ``multiply`` rounded into its ``act``).

Modes (`Mode`):

* ``full``    - weights, biases, activations and accumulators are all integers.
* ``weights`` - the paper's Table II protocol: weights and biases are quantized and
  converted back to float; activations stay float ("converted back to a 32-bits floating
  point to simulate the network"). Only ``weights``/``bias`` formats and sites matter.
* ``fp16``    - weights (and activations if ``fp16_activations``) in IEEE binary16,
  round to nearest even (`qsim.executors.fp16_exec`). Formats are ignored.

JSON schema (``Plan.save``/``Plan.load``; a file users can edit and share)::

    {
      "qsim_plan": 1,
      "mode": "full",                      # full | weights | fp16
      "fp16_activations": true,            # fp16 mode only
      "default": {                         # every key required here
        "weights": "Q6.9", "bias": "Q6.9", "act": "Q6.9",   # any QFormat.parse spelling
        "acc_bits": 32,
        "acc_saturation": "final",         # final | per_step
        "rounding": "half_up",             # floor | toward_zero | half_up | half_even | half_away
        "overflow": "saturate",            # saturate | wrap
        "sites": {"acc": {"overflow": "wrap"}, "weights": {"rounding": "half_even"}}
      },
      "nodes": {                           # optional per-node overrides (any subset of keys)
        "bn_Conv1": {"weights": "Q1.14", "act": "Q4.11"},   # names after BN folding
        "input_layer": {"act": "Q0.15"}
      }
    }

A node override replaces the default key by key; its ``sites`` merge site by site.

>>> p = Plan.uniform("Q9", acc_bits=32)
>>> np_ = p.for_node("bn_Conv1")
>>> str(np_.weights), str(np_.act), np_.acc_bits, np_.rounding_at("requant").value
('Q6.9', 'Q6.9', 32, 'half_up')
>>> p2 = p.with_nodes({"bn_Conv1": {"act": "Q4.11"}})
>>> str(p2.for_node("bn_Conv1").act), str(p2.for_node("other").act)
('Q4.11', 'Q6.9')
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from qsim.errors import PlanError, QsimError
from qsim.fixed.format import QFormat
from qsim.fixed.modes import Overflow, Rounding
from qsim.graph.ops import MAC_OPS, PASSTHROUGH_OPS
from qsim.graph.passes.quantize_weights import mac_params

SCHEMA_VERSION = 1

SITES = ("weights", "bias", "input", "acc", "requant", "add", "upsample", "concat", "act", "pool", "mul")
FORMAT_KEYS = ("weights", "bias", "act")
NODE_KEYS = FORMAT_KEYS + ("acc_bits", "acc_saturation", "rounding", "overflow", "sites")
ACC_SATURATION = ("final", "per_step")
MAX_ACC_BITS = 64


class Mode(str, Enum):
    """What a plan quantizes."""

    FULL = "full"
    """Weights, biases, activations and accumulators all integer."""
    WEIGHTS = "weights"
    """Quantized weights and biases, float activations (the paper's Table II)."""
    FP16 = "fp16"
    """IEEE half precision weights (and optionally activations)."""

    @classmethod
    def parse(cls, value: "Mode | str") -> "Mode":
        if isinstance(value, Mode):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise PlanError(
                f"unknown plan mode {value!r}; expected one of {', '.join(m.value for m in cls)}"
            ) from None


@dataclass(frozen=True)
class NodePlan:
    """The resolved plan of one node: formats, accumulator and the modes of every site."""

    weights: QFormat
    bias: QFormat
    act: QFormat
    acc_bits: int
    acc_saturation: str
    rounding: Rounding
    overflow: Overflow
    sites: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def rounding_at(self, site: str) -> Rounding:
        """Rounding mode used at `site` (site override, else the node's default)."""
        return self.sites.get(site, {}).get("rounding", self.rounding)

    def overflow_at(self, site: str) -> Overflow:
        """Overflow mode used at `site` (site override, else the node's default)."""
        return self.sites.get(site, {}).get("overflow", self.overflow)

    def acc_frac_bits(self, in_fmt: QFormat) -> int:
        """Fraction bits of the accumulator: those of an input x weight product."""
        return in_fmt.frac_bits + self.weights.frac_bits

    def acc_need_bits(self, in_fmt: QFormat, fan_in: int) -> int:
        """Worst-case accumulator width (sign included) from the formats and the fan-in.

        ``|sum| <= fan_in * max|x| * max|w| + max|bias aligned|``; the result is the
        smallest two's-complement width holding that bound (the headroom proof, as code).

        >>> n = Plan.uniform("Q6.9").for_node("c")
        >>> n.acc_need_bits(QFormat.parse("Q6.9"), 9)   # 9 * 2^30 + 2^15 * 2^9 < 2^34
        35
        """
        return worst_case_acc(in_fmt, self.weights, self.bias, fan_in).bit_length() + 1


def _max_abs_code(fmt: QFormat) -> int:
    return max(abs(fmt.min_code), fmt.max_code)


def worst_case_acc(in_fmt: QFormat, w_fmt: QFormat, b_fmt: QFormat | None, fan_in: int) -> int:
    """Largest possible |accumulator| (in accumulator LSBs) for these formats and fan-in."""
    bound = fan_in * _max_abs_code(in_fmt) * _max_abs_code(w_fmt)
    if b_fmt is not None:
        shift = in_fmt.frac_bits + w_fmt.frac_bits - b_fmt.frac_bits
        bound += _max_abs_code(b_fmt) << max(shift, 0)
    return bound


# --- parsing of one node's spec (JSON spelling -> typed values) -----------------------

def _parse_format(value: Any, where: str) -> QFormat:
    try:
        return QFormat.parse(value)
    except QsimError as exc:
        raise PlanError(f"{where}: {exc}") from None


def _parse_spec(spec: Mapping[str, Any], where: str, complete: bool) -> dict[str, Any]:
    """Check and type one node spec (a partial one unless `complete`)."""
    if not isinstance(spec, Mapping):
        raise PlanError(f"{where}: expected an object of plan fields, got {spec!r}")
    unknown = sorted(set(spec) - set(NODE_KEYS))
    if unknown:
        raise PlanError(f"{where}: unknown field(s) {unknown}; known fields: {', '.join(NODE_KEYS)}")
    if complete:
        missing = [k for k in NODE_KEYS if k not in spec and k != "sites"]
        if missing:
            raise PlanError(f"{where}: missing field(s) {missing}")
    out: dict[str, Any] = {}
    for key, value in spec.items():
        here = f"{where} field {key!r}"
        if key in FORMAT_KEYS:
            out[key] = _parse_format(value, here)
        elif key == "acc_bits":
            if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= MAX_ACC_BITS:
                raise PlanError(f"{here}: accumulator width must be an int in 2..{MAX_ACC_BITS}, got {value!r}")
            out[key] = value
        elif key == "acc_saturation":
            if value not in ACC_SATURATION:
                raise PlanError(f"{here}: expected one of {ACC_SATURATION}, got {value!r}")
            out[key] = value
        elif key == "rounding":
            out[key] = _parse_mode(Rounding, value, here)
        elif key == "overflow":
            out[key] = _parse_mode(Overflow, value, here)
        elif key == "sites":
            out[key] = _parse_sites(value, here)
    return out


def _parse_mode(kind, value: Any, where: str):
    try:
        return kind.parse(value)
    except QsimError as exc:
        raise PlanError(f"{where}: {exc}") from None


def _parse_sites(sites: Any, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(sites, Mapping):
        raise PlanError(f"{where}: expected {{site: {{rounding, overflow}}}}, got {sites!r}")
    out: dict[str, dict[str, Any]] = {}
    for site, modes in sites.items():
        if site not in SITES:
            raise PlanError(f"{where}: unknown site {site!r}; sites are {', '.join(SITES)}")
        if not isinstance(modes, Mapping) or set(modes) - {"rounding", "overflow"}:
            raise PlanError(f"{where} site {site!r}: expected keys 'rounding'/'overflow', got {modes!r}")
        parsed: dict[str, Any] = {}
        if "rounding" in modes:
            parsed["rounding"] = _parse_mode(Rounding, modes["rounding"], f"{where} site {site!r}")
        if "overflow" in modes:
            parsed["overflow"] = _parse_mode(Overflow, modes["overflow"], f"{where} site {site!r}")
        out[site] = parsed
    return out


def _spell(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Typed spec -> JSON spelling."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key in FORMAT_KEYS:
            out[key] = str(value)
        elif key in ("rounding", "overflow"):
            out[key] = value.value
        elif key == "sites":
            out[key] = {s: {k: v.value for k, v in m.items()} for s, m in value.items()}
        else:
            out[key] = value
    return out


class Plan:
    """Formats and modes for every node of a graph: defaults plus per-node overrides.

    Build with `Plan.uniform`, `Plan.per_layer` or `Plan.load`; read with `for_node`.
    Plans are immutable in use: `with_nodes` returns a new plan.
    """

    def __init__(self, default: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]] | None = None,
                 *, mode: "Mode | str" = Mode.FULL, fp16_activations: bool = True, source: str = ""):
        where = f"plan {source}".strip()
        self.mode = Mode.parse(mode)
        self.fp16_activations = bool(fp16_activations)
        self.source = source
        self.default = _parse_spec(default, f"{where} default", complete=True)
        self.default.setdefault("sites", {})
        self.nodes: dict[str, dict[str, Any]] = {}
        for name, spec in (nodes or {}).items():
            if isinstance(spec, (str, QFormat)):  # shorthand: one format for all three
                spec = {k: spec for k in FORMAT_KEYS}
            self.nodes[str(name)] = _parse_spec(spec, f"{where} node {name!r}", complete=False)
        self._cache: dict[str, NodePlan] = {}

    # --- constructors ---------------------------------------------------------------
    @classmethod
    def uniform(cls, fmt: "str | QFormat", *, acc_bits: int = 32, rounding: "Rounding | str" = "half_up",
                overflow: "Overflow | str" = "saturate", mode: "Mode | str" = "full",
                weights: "str | QFormat | None" = None, bias: "str | QFormat | None" = None,
                acc_saturation: str = "final", sites: Mapping[str, Mapping[str, Any]] | None = None,
                fp16_activations: bool = True) -> "Plan":
        """One format everywhere (weights, biases and activations), e.g. the paper's ``"Q9"``.

        Args:
            fmt: activation format (and weight/bias format unless given), any
                `QFormat.parse` spelling: ``"Q6.9"``, the paper's ``"q9"`` (= Q6.9), ...
            acc_bits: accumulator width in bits.
            rounding, overflow: default modes of every site.
            mode: ``"full"``, ``"weights"`` or ``"fp16"``.
            weights, bias: formats of weights / biases if different from `fmt`.
            acc_saturation: ``"final"`` or ``"per_step"``.
            sites: per-site mode overrides, e.g. ``{"acc": {"overflow": "wrap"}}``.
        """
        fmt = str(QFormat.parse(fmt)) if not isinstance(fmt, QFormat) else str(fmt)
        default = {
            "weights": weights if weights is not None else fmt,
            "bias": bias if bias is not None else fmt,
            "act": fmt, "acc_bits": acc_bits, "acc_saturation": acc_saturation,
            "rounding": rounding, "overflow": overflow, "sites": dict(sites or {}),
        }
        return cls(default, mode=mode, fp16_activations=fp16_activations)

    @classmethod
    def per_layer(cls, layers: Mapping[str, Any], *, default: "str | QFormat" = "Q6.9", acc_bits: int = 32,
                  rounding: "Rounding | str" = "half_up", overflow: "Overflow | str" = "saturate",
                  mode: "Mode | str" = "full", sites: Mapping[str, Mapping[str, Any]] | None = None) -> "Plan":
        """A plan from a per-layer table (e.g. `qsim profile`'s suggestion).

        Args:
            layers: node name -> a format string (all of weights/bias/act) or a dict with
                any of ``weights``, ``bias``, ``act``, ``acc_bits``, ... (JSON spelling).
            default: format for nodes not listed.
        """
        base = cls.uniform(default, acc_bits=acc_bits, rounding=rounding, overflow=overflow,
                           mode=mode, sites=sites)
        return base.with_nodes(layers)

    def with_nodes(self, nodes: Mapping[str, Any]) -> "Plan":
        """A copy with per-node overrides added (merged into existing ones)."""
        merged = {n: _spell(s) for n, s in self.nodes.items()}
        for name, spec in nodes.items():
            if isinstance(spec, (str, QFormat)):
                spec = {k: str(spec) for k in FORMAT_KEYS}
            entry = merged.setdefault(str(name), {})
            for key, value in spec.items():
                if key == "sites":
                    sites = entry.setdefault("sites", {})
                    for site, modes in value.items():
                        sites.setdefault(site, {}).update(modes)
                else:
                    entry[key] = value
        return Plan(_spell(self.default), merged, mode=self.mode,
                    fp16_activations=self.fp16_activations, source=self.source)

    # --- JSON -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON document (schema in the module docstring)."""
        doc: dict[str, Any] = {"qsim_plan": SCHEMA_VERSION, "mode": self.mode.value}
        if self.mode is Mode.FP16:
            doc["fp16_activations"] = self.fp16_activations
        doc["default"] = _spell(self.default)
        doc["nodes"] = {n: _spell(s) for n, s in self.nodes.items()}
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], source: str = "") -> "Plan":
        where = f"plan {source}".strip()
        if not isinstance(doc, Mapping):
            raise PlanError(f"{where}: expected a JSON object, got {type(doc).__name__}")
        version = doc.get("qsim_plan")
        if version != SCHEMA_VERSION:
            raise PlanError(f"{where}: 'qsim_plan' must be {SCHEMA_VERSION} (schema version), got {version!r}")
        unknown = sorted(set(doc) - {"qsim_plan", "mode", "fp16_activations", "default", "nodes"})
        if unknown:
            raise PlanError(f"{where}: unknown top-level field(s) {unknown}")
        if "default" not in doc:
            raise PlanError(f"{where}: missing 'default'")
        nodes = doc.get("nodes", {})
        if not isinstance(nodes, Mapping):
            raise PlanError(f"{where}: 'nodes' must be an object of node name -> fields")
        return cls(doc["default"], nodes, mode=doc.get("mode", "full"),
                   fp16_activations=doc.get("fp16_activations", True), source=source)

    def save(self, path: "str | Path") -> Path:
        """Write the plan as indented JSON."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: "str | Path") -> "Plan":
        """Read a plan written by `save` (or by hand)."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PlanError(f"plan file {path} not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"plan file {path} is not valid JSON: {exc}") from None
        return cls.from_dict(doc, source=str(path))

    # --- queries ----------------------------------------------------------------------
    def for_node(self, name: str) -> NodePlan:
        """The resolved plan of node `name` (its overrides on top of the defaults)."""
        hit = self._cache.get(name)
        if hit is not None:
            return hit
        spec = dict(self.default)
        override = self.nodes.get(name, {})
        sites = {s: dict(m) for s, m in self.default["sites"].items()}
        for site, modes in override.get("sites", {}).items():
            sites.setdefault(site, {}).update(modes)
        spec.update({k: v for k, v in override.items() if k != "sites"})
        spec["sites"] = sites
        node_plan = NodePlan(**spec)
        self._cache[name] = node_plan
        return node_plan

    def activation_formats(self, graph) -> dict[str, QFormat]:
        """Output code format of every node (pass-through ops inherit their input's)."""
        formats: dict[str, QFormat] = {}
        for node in graph:
            if node.op in PASSTHROUGH_OPS and node.inputs:
                formats[node.name] = formats[node.inputs[0]]
            else:
                formats[node.name] = self.for_node(node.name).act
        return formats

    def validate(self, graph) -> "Plan":
        """Check the plan against `graph`; raise `PlanError` naming the layer and field.

        Checks: every overridden node exists; for full-integer plans, the accumulator is at
        least as wide as one product (``acc_bits >= input word + weight word``), the bias
        of a MAC that has one aligns into the accumulator exactly (bias fraction bits <=
        accumulator fraction bits, aligned bias fits ``acc_bits``), and ``acc_bits <= 64``.
        Returns the plan itself, so ``plan.validate(g)`` chains.
        """
        where = f"plan {self.source}".strip()
        unknown = [n for n in self.nodes if n not in graph]
        if unknown:
            known = ", ".join(n.name for n in list(graph)[:8])
            raise PlanError(f"{where}: unknown layer name(s) {unknown} (the graph has e.g. {known}, ...)")
        if self.mode is Mode.FP16:
            return self
        for node in graph:  # codes are int64: an unsigned 64-bit word cannot be held
            np_ = self.for_node(node.name)
            for key in FORMAT_KEYS:
                fmt = getattr(np_, key)
                if not fmt.signed and fmt.word_bits >= 64:
                    raise PlanError(f"{where}: layer '{node.name}' field '{key}': {fmt} is an unsigned "
                                    "64-bit word; codes are int64 (use at most 63 bits)")
        if self.mode is not Mode.FULL:
            return self
        formats = self.activation_formats(graph)
        for node in graph:
            if node.op not in MAC_OPS:
                continue
            np_ = self.for_node(node.name)
            in_fmt = formats[node.inputs[0]]
            acc_frac = np_.acc_frac_bits(in_fmt)
            product_bits = in_fmt.word_bits + np_.weights.word_bits
            if np_.acc_bits < product_bits:
                raise PlanError(
                    f"{where}: layer '{node.name}' field 'acc_bits': a {np_.acc_bits}-bit accumulator is "
                    f"narrower than one product of input {in_fmt} x weights {np_.weights} "
                    f"({product_bits} bits)"
                )
            if mac_params(node)[1] is None:  # no bias: its format is never used
                continue
            if np_.bias.frac_bits > acc_frac:
                raise PlanError(
                    f"{where}: layer '{node.name}' field 'bias': bias format {np_.bias} has "
                    f"{np_.bias.frac_bits} fraction bits, more than the accumulator's {acc_frac} "
                    f"(input {in_fmt} x weights {np_.weights}); it cannot be aligned exactly"
                )
            aligned = np_.bias.word_bits + acc_frac - np_.bias.frac_bits
            if aligned > np_.acc_bits:
                raise PlanError(
                    f"{where}: layer '{node.name}' field 'bias': bias {np_.bias} aligned to the "
                    f"accumulator's {acc_frac} fraction bits needs {aligned} bits > acc_bits={np_.acc_bits}"
                )
        return self

    def describe(self) -> str:
        """One line for reports, e.g. ``full Q6.9 acc32 half_up/saturate (+3 node overrides)``."""
        d = self.default
        text = (f"{self.mode.value} w={d['weights']} b={d['bias']} a={d['act']} acc{d['acc_bits']} "
                f"{d['rounding'].value}/{d['overflow'].value}")
        if self.nodes:
            text += f" (+{len(self.nodes)} node overrides)"
        return text

    def __repr__(self) -> str:
        return f"Plan({self.describe()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plan) and self.to_dict() == other.to_dict()

    __hash__ = None  # mutable-looking value object: compare, never hash


def as_plan(plan: Any) -> "Plan":
    """A `Plan`, or a format string / `QFormat` for `Plan.uniform` (e.g. ``"Q6.9"``)."""
    if isinstance(plan, Plan):
        return plan
    if isinstance(plan, (str, QFormat)):
        return Plan.uniform(plan)
    raise PlanError(f"expected a Plan (or a format string such as 'Q6.9'), got {type(plan).__name__}")
