"""Number formats as rows of a measurement: what `sweep` and `eval` compare, named once.

A `NumberFormat` is one row: a label, the backend that runs it, its plan or options, and
what it costs. `parse_formats` reads ``"fp32,fp16,q9,Q4.11,plan.json,k210,tflite:F"``:

==============  =====================================================================
``fp32``        the float executor (float32, as TensorFlow)
``fp16``        IEEE half parameters (``mode="weights"``) or parameters and activations
                (``mode="full"``), `qsim.executors.fp16_exec`
``q9`` ...      the paper's Qn = a 16-bit word with n fraction bits (Q(15-n).n), or any
                `QFormat.parse` spelling (``Q6.9``, ``ap_fixed<16,7>``): ``Plan.uniform``;
                ``mode="weights"`` = quantized parameters, float activations (the paper's
                protocol), ``mode="full"`` = every tensor an integer, overflow counted
``*.json``      a plan file (`qsim.plan`; its own mode wins)
``k210``        the K210 KPU simulator, quantized on an explicit ``calibration`` (a folder
                of images, a range table or an ``.npy`` batch: `qsim.k210.calibration`)
``tflite:F``    the int8/uint8 TFLite model F (a conversion of the model), bit-exact with
                TFLite's reference kernels (`qsim.tflite.runner`)
==============  =====================================================================

Each row knows its cache key (`NumberFormat.key`: a hash of the backend, the plan's JSON
and the options, so one plan reached through two spellings shares its results), its
storage (`NumberFormat.size`), and the network function it runs (`NumberFormat.function`:
float input -> float output 0 and the run's overflow counters). Applications add their own
kinds of rows by subclassing (the face detectors of `qsim.facedet.sweep`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from qsim.analysis.store import content_key, file_sha256
from qsim.errors import InputError, QsimError
from qsim.fixed.format import QFormat
from qsim.graph.ops import MAC_OPS
from qsim.plan import Plan
from qsim.runtime import backend_for, get_backend, prepare

FLOAT_NAMES = ("fp32", "float", "float32")
TFLITE_PREFIX = "tflite:"
WORD_BITS = {"float": 32, "fp16": 16, "k210": 8}  # storage of one parameter where no plan says it

NetworkFunction = Callable[[np.ndarray], "tuple[np.ndarray, dict | None]"]


@dataclass
class NumberFormat:
    """One row: ``name``, the backend (``executor``; a plan's own for plans), ``plan``, ``options``.

    ``options`` are the backend's own, JSON-ready (k210: ``calibration`` path and
    ``calibration_count``); they enter the key.
    """

    name: str
    executor: str
    plan: Plan | None = None
    options: dict = field(default_factory=dict)
    needs_model: ClassVar[bool] = True  # runs the loaded graph (a detector row may not)

    @property
    def mode(self) -> str:
        """``float``, ``weights`` (quantized parameters, float activations) or ``full``."""
        if self.plan is None:
            return "float" if self.executor == "float" else "full"
        if self.plan.mode.value == "fp16":  # half parameters; half activations too = "full"
            return "full" if self.plan.fp16_activations else "weights"
        return self.plan.mode.value

    def key_doc(self) -> dict:
        """Everything that determines this row's numbers (JSON-ready)."""
        doc = {"executor": self.executor, "plan": None if self.plan is None else self.plan.to_dict()}
        if self.options:
            doc["options"] = self.options
        return doc

    def key(self) -> str:
        """Stable short content hash of `key_doc`, prefixed by the name."""
        return content_key(self.name, self.key_doc())

    def check(self) -> None:
        """Fail now, not after hours of work, on a backend this machine cannot run."""
        get_backend(self.executor)

    def size(self, graph: Any) -> tuple[int | None, int | None]:
        """(parameters, bytes) of the graph's MAC weights and biases stored in this format."""
        params = bits = 0
        for node in graph:
            if node.op not in MAC_OPS:
                continue
            for key, value in node.weights.items():
                n = int(np.size(value))
                params += n
                if self.plan is None or self.executor in WORD_BITS:
                    bits += WORD_BITS.get(self.executor, 32) * n
                else:
                    node_plan = self.plan.for_node(node.name)
                    fmt = node_plan.bias if key in ("bias", "beta", "mean") else node_plan.weights
                    bits += fmt.word_bits * n
        return params, (bits + 7) // 8

    def program(self, graph: Any):
        """The runtime program of this row on ``graph`` (calibration loaded here, explicitly)."""
        options = dict(self.options)
        if self.executor == "k210":
            from qsim.k210.calibration import calibration_hw, load_calibration

            options = {"calibration": load_calibration(options["calibration"], options["calibration_count"],
                                                       calibration_hw(graph))}
        return prepare(graph, self.plan, executor=self.executor, **options)

    def function(self, graph: Any) -> NetworkFunction:
        """``f(x) -> (output 0, counters as JSON or None)``, prepared once."""
        program = self.program(graph)
        counting = self.executor != "float"

        def run(x: np.ndarray):
            trace = program.run(x, counters=counting, keep_values=False)
            counters = None
            if counting:
                counters = {node: {site: c.to_dict() for site, c in sites.items()}
                            for node, sites in trace.counters.items()}
            return trace.output(0), counters

        return run


@dataclass
class TfliteFormat(NumberFormat):
    """A ``tflite:F`` row: the int8/uint8 model F instead of the graph's parameters."""

    @property
    def path(self) -> str:
        return self.options["path"]

    @property
    def mode(self) -> str:
        return "full"

    def key_doc(self) -> dict:  # the file's content, not where it lies
        return {"executor": self.executor, "tflite": file_sha256(self.path)}

    def check(self) -> None:
        from qsim.tflite import read_tflite

        read_tflite(self.path)

    def size(self, graph: Any) -> tuple[int | None, int | None]:
        from qsim.tflite.runner import constant_bytes

        return constant_bytes(self.path)

    def function(self, graph: Any) -> NetworkFunction:
        from qsim.tflite.runner import TfliteFunction

        tflite = TfliteFunction(self.path)
        return lambda x: (tflite(x), None)


def parse_format(item: str, *, mode: str = "weights", acc_bits: int = 32, rounding: str = "half_up",
                 overflow: str = "saturate", calibration: Any = None, calibration_count: int = 8) -> NumberFormat:
    """One row from its spelling (the table of this module's docstring)."""
    low = item.lower()
    if low in FLOAT_NAMES:
        return NumberFormat("fp32", "float")
    if low == "fp16":
        return NumberFormat("fp16", "fp16", Plan.uniform("Q6.9", mode="fp16", fp16_activations=mode == "full"))
    if low == "k210":
        if calibration is None:
            raise InputError("format k210 needs calibration (--calibration DIR|RANGES.json|X.npy): the KPU "
                             "quantizer's ranges come from explicit data")
        return NumberFormat("k210", "k210", options={"calibration": str(Path(calibration).resolve()),
                                                     "calibration_count": int(calibration_count)})
    if low.startswith(TFLITE_PREFIX):
        path = item[len(TFLITE_PREFIX):]
        if not Path(path).is_file():
            raise InputError(f"format {item!r}: TFLite file {path} not found")
        return TfliteFormat("tflite", "tflite", options={"path": path})
    if low.endswith(".json"):
        plan = Plan.load(item)
        return NumberFormat(Path(item).name, backend_for(plan), plan)
    try:
        QFormat.parse(item)
    except QsimError as exc:
        raise InputError(f"format {item!r}: {exc}; or use fp32, fp16, k210, tflite:F or a plan .json") from None
    plan = Plan.uniform(item, acc_bits=acc_bits, rounding=rounding, overflow=overflow, mode=mode)
    return NumberFormat(low, backend_for(plan), plan)


def parse_formats(formats: "str | Sequence[str]", *, mode: str = "weights",
                  parse: Callable[..., NumberFormat] = parse_format, **options: Any) -> list[NumberFormat]:
    """Rows from ``"fp32,fp16,q9,..."`` (or a list), each read by ``parse(item, mode=, **options)``.

    >>> [(f.name, f.executor, f.mode) for f in parse_formats("fp32,fp16,q9,Q6.9")]
    [('fp32', 'float', 'float'), ('fp16', 'fp16', 'weights'), ('q9', 'weights', 'weights'), \
('q6.9', 'weights', 'weights')]
    """
    if mode not in ("weights", "full"):
        raise InputError(f"mode must be 'weights' or 'full'; got {mode!r}")
    items = [f.strip() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    if not items:
        raise InputError("no format given")
    out = [parse(item, mode=mode, **options) for item in items]
    names = [f.name for f in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"format(s) listed twice: {', '.join(dup)}")
    return out
