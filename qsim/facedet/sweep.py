"""Face-detection accuracy per number format: the paper's Table II (and the VJ row of Table IV).

For each format, every image of a `FaceDataset` goes through the pyramid detector
(`qsim.facedet.detector`: 0.5x/1x/2x, decode, NMS at IoU 0.3) with the network run by the
format's executor; AP is measured at IoU >= 0.5 (`qsim.facedet.metrics`, all-point
interpolation). Formats (`parse_formats`):

==============  =====================================================================
``fp32``        the float executor (float32, as TensorFlow)
``fp16``        IEEE half parameters (``--mode weights``) or parameters and activations
                (``--mode full``), `qsim.executors.fp16_exec`
``q9`` ...      the paper's Qn = a 16-bit word with n fraction bits (Q(15-n).n), or any
                `QFormat.parse` spelling (``Q6.9``, ``ap_fixed<16,7>``): ``Plan.uniform``;
                ``--mode weights`` = the paper's protocol (quantized parameters, float
                activations), ``--mode full`` = every tensor an integer, overflow counted
``*.json``      a plan file (`qsim.plan`; its own mode wins)
``k210``        the K210 KPU simulator, quantized on an explicit ``calibration`` (a folder
                of images, a range table or an ``.npy`` batch: `qsim.k210.calibration`)
``vj``          the OpenCV Viola-Jones baseline (`qsim.facedet.viola_jones`), greyscale
``kmodel:PATH``  a kmodel v3 YOLOv2 face detector (e.g. the vendor's ``detect.kmodel``) run
                bit-exactly by `qsim.k210.kmodel_v3_exec` on the picture resized to its input,
                decoded with its own NMS (`qsim.facedet.region`); no MODEL needed (docs/k210-v3.md)
``tflite:F``    the int8/uint8 TFLite model F (a conversion of MODEL), bit-exact with
                TFLite's reference kernels at every pyramid size (`qsim.tflite.runner`)
==============  =====================================================================

Parameters and size: the parameter count of the loaded graph (BatchNorm folded into the
convolutions: kernels + biases), and its storage: 4 bytes each in fp32, 2 in fp16, the
plan's weight/bias word sizes for fixed point, 1 byte for K210 (uint8).

Caching: each (model hash, format, image, pyramid settings) result is stored under
``<cache>/sweep/<model>/<format>/<image>.npz`` (default ``~/.cache/qsim``, or ``$QSIM_CACHE``):
the candidate boxes before NMS with score >= ``CANDIDATE_THRESHOLD`` and the overflow
counters. A rerun, or a run with a larger ``--limit``, only computes what is missing.
The format key hashes the executor and the plan's JSON, so the same plan reached through
different spellings shares its cache. Results do not depend on ``workers``.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qsim.errors import InputError, QsimError

CANDIDATE_THRESHOLD = 0.01  # sigmoid scores kept in the cache (AP uses everything above)
CACHE_VERSION = 1
# The paper's Table II (A98, alpha 1.0, FDDB-C) and Table IV (Viola-Jones): AP, params, MB.
PAPER_TABLE_II = {
    "fp32": (0.891, "1.37M", "5.25MB"),
    "fp16": (0.891, "1.37M", "2.63MB"),
    "q9": (0.886, "1.37M", "2.63MB"),
    "q8": (0.884, "1.37M", "2.63MB"),
    "q7": (0.814, "1.37M", "2.63MB"),
    "q6": (0.027, "1.37M", "2.63MB"),
    "vj": (0.738, "-", "-"),
}
FLOAT_NAMES = ("fp32", "float", "float32")


def is_paper_a98(graph: Any) -> bool:
    """Whether `graph` is an A98 at alpha 1.0 (head on breakpoint A, 576 channels): the model
    the paper's Table II measures, so its figures may stand beside ours."""
    if graph is None or len(graph.outputs) != 1:
        return False
    head = graph[graph.outputs[0]]
    kernel = head.weights.get("kernel")
    return (head.op == "conv2d" and head.inputs == ["block_13_expand_relu"] and kernel is not None
            and kernel.shape[2:] == (576, 125))
KMODEL_PREFIX = "kmodel:"
SELF_CONTAINED = ("viola_jones", "kmodel")  # detectors that run on the picture, without MODEL or pyramid


# --- formats ----------------------------------------------------------------------------

@dataclass
class SweepFormat:
    """One row of the sweep: a label, the backend (the plan's, for plans) and its plan or options.

    ``options``: the backend's own, JSON-ready (k210: ``calibration`` path and
    ``calibration_count``); they enter the cache key.
    """

    name: str
    executor: str
    plan: Any = None
    options: dict = field(default_factory=dict)
    path: str | None = None  # the .kmodel of a "kmodel" row
    tflite: str | None = None  # the .tflite file of a "tflite:F" row

    @property
    def mode(self) -> str:
        if self.executor == "viola_jones":
            return "-"
        if self.executor == "kmodel":
            return "k210 v3"
        if self.executor == "tflite":
            return "full"
        if self.executor == "float":
            return "float"
        if self.executor == "k210":
            return "full"
        if self.plan.mode.value == "fp16":  # half parameters; half activations too = "full"
            return "full" if self.plan.fp16_activations else "weights"
        return self.plan.mode.value

    def key(self) -> str:
        """Stable short hash of what determines the numbers (executor + plan JSON)."""
        doc = {"executor": self.executor, "plan": None if self.plan is None else self.plan.to_dict()}
        if self.options:
            doc["options"] = self.options
        if self.executor == "viola_jones":
            from qsim.facedet.viola_jones import MIN_NEIGHBORS, MIN_SIZE, SCALE_FACTOR

            try:
                import cv2

                cv_version = cv2.__version__
            except ImportError:
                cv_version = None
            doc["vj"] = [SCALE_FACTOR, MIN_NEIGHBORS, list(MIN_SIZE), cv_version]
        if self.executor == "kmodel":
            doc["kmodel"] = model_hash(self.path)
        if self.tflite is not None:
            from qsim.tflite.runner import file_hash

            doc["tflite"] = file_hash(self.tflite)
        text = json.dumps(doc, sort_keys=True, default=str)
        return f"{self.name.replace('/', '_')[:24]}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    def spec(self) -> dict:
        """Picklable description (for worker processes)."""
        return {"name": self.name, "executor": self.executor,
                "plan": None if self.plan is None else self.plan.to_dict(), "options": dict(self.options),
                "path": self.path, "tflite": self.tflite}

    @classmethod
    def from_spec(cls, spec: dict) -> "SweepFormat":
        from qsim.plan import Plan

        plan = None if spec["plan"] is None else Plan.from_dict(spec["plan"])
        return cls(spec["name"], spec["executor"], plan, dict(spec.get("options") or {}), spec.get("path"),
                   spec.get("tflite"))


def parse_formats(formats: "str | Sequence[str]", *, mode: str = "weights", acc_bits: int = 32,
                  rounding: str = "half_up", overflow: str = "saturate", calibration: Any = None,
                  calibration_count: int = 8) -> list[SweepFormat]:
    """Sweep rows from ``"fp32,fp16,q9,...,plan.json,k210,vj"`` (k210 needs `calibration`).

    >>> [(f.name, f.executor, f.mode) for f in parse_formats("fp32,fp16,q9,Q6.9,vj")]
    [('fp32', 'float', 'float'), ('fp16', 'fp16', 'weights'), ('q9', 'weights', 'weights'), \
('q6.9', 'weights', 'weights'), ('vj', 'viola_jones', '-')]
    """
    from qsim.fixed.format import QFormat
    from qsim.plan import Plan
    from qsim.runtime import backend_for

    if mode not in ("weights", "full"):
        raise InputError(f"sweep mode must be 'weights' or 'full'; got {mode!r}")
    items = [f.strip() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    if not items:
        raise InputError("no format to sweep")
    out: list[SweepFormat] = []
    for item in items:
        low = item.lower()
        if low in FLOAT_NAMES:
            out.append(SweepFormat("fp32", "float"))
        elif low == "fp16":
            out.append(SweepFormat("fp16", "fp16", Plan.uniform("Q6.9", mode="fp16",
                                                                fp16_activations=mode == "full")))
        elif low == "k210":
            if calibration is None:
                raise InputError("format k210 needs calibration (--calibration DIR|RANGES.json|X.npy): the KPU "
                                 "quantizer's ranges come from explicit data")
            out.append(SweepFormat("k210", "k210", options={"calibration": str(Path(calibration).resolve()),
                                                            "calibration_count": int(calibration_count)}))
        elif low in ("vj", "viola_jones", "viola-jones"):
            out.append(SweepFormat("vj", "viola_jones"))
        elif low.startswith(KMODEL_PREFIX):
            from qsim.k210.kmodel_v3 import kmodel_version

            path = item[len(KMODEL_PREFIX):]
            if not Path(path).is_file():
                raise InputError(f"format {item!r}: kmodel file {path} not found")
            if kmodel_version(path) != 3:
                raise InputError(f"format {item!r}: {path} is not a kmodel v3 (a YOLOv2 region detector "
                                 "such as the vendor's detect.kmodel)")
            out.append(SweepFormat(f"kmodel:{Path(path).name}", "kmodel", path=str(path)))
        elif low.startswith("tflite:"):
            path = item.split(":", 1)[1]
            if not Path(path).is_file():
                raise InputError(f"format {item!r}: TFLite file {path} not found")
            out.append(SweepFormat("tflite", "tflite", tflite=path))
        elif low.endswith(".json"):
            plan = Plan.load(item)
            out.append(SweepFormat(Path(item).name, backend_for(plan), plan))
        else:
            try:
                QFormat.parse(item)
            except QsimError as exc:
                raise InputError(f"format {item!r}: {exc}; or use fp32, fp16, k210, vj or a plan .json") from None
            plan = Plan.uniform(item, acc_bits=acc_bits, rounding=rounding, overflow=overflow, mode=mode)
            out.append(SweepFormat(low, backend_for(plan), plan))
    names = [f.name for f in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"format(s) listed twice: {', '.join(dup)}")
    return out


def model_size(graph: Any, fmt: SweepFormat) -> tuple[int | None, int | None]:
    """(parameters, bytes) of the graph's weights and biases stored in ``fmt``."""
    from qsim.plan import MAC_OPS

    if fmt.executor == "viola_jones":
        return None, None
    if fmt.executor == "kmodel":  # its own uint8 KPU weights, not the graph's
        from qsim.k210.kmodel_v3 import read_kmodel_v3

        n = sum(int(layer.body.weights.size) for layer in read_kmodel_v3(fmt.path).layers
                if layer.name == "k210_conv")
        return n, n
    if fmt.executor == "tflite":
        from qsim.tflite.runner import constant_bytes

        return constant_bytes(fmt.tflite)
    params = 0
    bits = 0
    for node in graph:
        if node.op not in MAC_OPS:
            continue
        for key, value in node.weights.items():
            n = int(np.size(value))
            params += n
            if fmt.executor == "float":
                bits += 32 * n
            elif fmt.executor == "fp16":
                bits += 16 * n
            elif fmt.executor == "k210":
                bits += 8 * n
            else:
                np_ = fmt.plan.for_node(node.name)
                fmt_q = np_.bias if key in ("bias", "beta", "mean") else np_.weights
                bits += fmt_q.word_bits * n
    return params, (bits + 7) // 8


# --- per-image work -------------------------------------------------------------------------

def model_hash(model: Any) -> str:
    """sha256 of a model file, or of a graph's node names and weights."""
    h = hashlib.sha256()
    if isinstance(model, (str, Path)):
        with open(model, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    else:
        for node in model:
            h.update(f"{node.name}|{node.op}|{sorted(node.attrs.items())!r}".encode())
            for key in sorted(node.weights):
                h.update(key.encode())
                h.update(np.ascontiguousarray(node.weights[key]).tobytes())
    return h.hexdigest()[:16]


def cache_root(cache_dir: Any = None) -> Path:
    """``cache_dir``, else ``$QSIM_CACHE``, else ``~/.cache/qsim``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("QSIM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "qsim"


def infer_stride(graph: Any, run_fn: Any = None) -> int:
    """Input pixels per output cell, from one float run on a 64x64 input (a power of two)."""
    from qsim.executors import run

    shape = tuple(graph.inputs[0].attrs.get("shape") or (None, None, 3)) if run_fn is None else (None, None)
    size = int(shape[0]) if shape[0] else 64  # a model with a fixed input size is probed at that size
    x = np.zeros((1, size, int(shape[1]) if shape[1] else 64, 3), np.float32)
    out = np.asarray(run(graph, x, executor="float").output(0)) if run_fn is None else np.asarray(run_fn(x))
    if out.ndim != 4 or out.shape[-1] != 125:
        raise InputError(f"model output {out.shape} is not a 125-channel Tiny-Face head (N, h, w, 125)")
    return int(2 ** round(np.log2(size / out.shape[1])))


class _Runner:
    """Runs one format on one image: candidates before NMS, and overflow counters."""

    def __init__(self, graph: Any, fmt: SweepFormat, settings: dict):
        self.graph = graph
        self.fmt = fmt
        self.settings = settings
        self._vj = None
        self._program = None
        self._region = None
        self._tflite = None

    def program(self):
        """The format's runtime program, prepared once (calibration included) and kept."""
        if self._program is None:
            from qsim.runtime import prepare

            options = dict(self.fmt.options)
            if self.fmt.executor == "k210":
                from qsim.k210.calibration import calibration_hw, load_calibration

                options = {"calibration": load_calibration(options["calibration"], options["calibration_count"],
                                                           calibration_hw(self.graph))}
            self._program = prepare(self.graph, self.fmt.plan, executor=self.fmt.executor, **options)
        return self._program

    def run_fn(self, counters_out: list):
        if self.fmt.executor == "tflite":  # its own runner (the int8 model, not the graph)
            if self._tflite is None:
                from qsim.tflite.runner import TfliteFunction

                self._tflite = TfliteFunction(self.fmt.tflite)
            return self._tflite
        program = self.program()
        want_counters = self.fmt.executor != "float"

        def call(x):
            trace = program.run(x, counters=want_counters, keep_values=False)
            if want_counters:
                counters_out.append({node: {site: c.to_dict() for site, c in sites.items()}
                                     for node, sites in trace.counters.items()})
            return trace.output(0)

        return call

    def __call__(self, image_path: Path):
        from qsim.facedet.detector import candidates_from_outputs, run_pyramid
        from qsim.images import load_image

        img = load_image(image_path)
        if self.fmt.executor == "viola_jones":
            if self._vj is None:
                from qsim.facedet.viola_jones import ViolaJones

                self._vj = ViolaJones()
            boxes, scores = self._vj(img)
            return boxes, scores, []
        if self.fmt.executor == "kmodel":
            if self._region is None:
                from qsim.facedet.region import RegionDetector

                self._region = RegionDetector(self.fmt.path)
            found = self._region(img, threshold=CANDIDATE_THRESHOLD)  # decoded with its own NMS
            return found.boxes, found.scores, []
        counters: list = []
        raw = run_pyramid(img, self.run_fn(counters), self.settings["scales"], self.settings["max_side"])
        boxes, scores = candidates_from_outputs(raw, img.shape[:2], stride=self.settings["stride"],
                                                score_threshold=CANDIDATE_THRESHOLD)
        return boxes, scores, counters


def _image_key(path: Path, settings: dict) -> str:
    h = hashlib.sha256(Path(path).read_bytes())
    h.update(json.dumps({k: settings[k] for k in ("scales", "max_side", "stride")}, sort_keys=True).encode())
    h.update(f"v{CACHE_VERSION}".encode())
    return f"{Path(path).stem[:40]}-{h.hexdigest()[:16]}"


def _entry_digest(boxes: np.ndarray, scores: np.ndarray, counters_json: str) -> str:
    """sha256 of a cache entry's content (shapes, float64 bytes, counters JSON)."""
    h = hashlib.sha256()
    for a in (boxes, scores):
        h.update(repr(a.shape).encode())
        h.update(np.ascontiguousarray(a, "<f8").tobytes())
    h.update(counters_json.encode())
    return h.hexdigest()


_WARNED: set[str] = set()  # "checksum": the one stderr line per process about untrusted entries


def _save(path: Path, boxes, scores, counters) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    boxes, scores = np.asarray(boxes, np.float64), np.asarray(scores, np.float64)
    counters_json = json.dumps(counters)
    np.savez(tmp, boxes=boxes, scores=scores, counters=np.array(counters_json),
             sha256=np.array(_entry_digest(boxes, scores, counters_json)))
    os.replace(tmp, path)  # atomic: a killed run never leaves half a file


def _load(path: Path):
    """The entry's (boxes, scores, counters), or None to recompute it: unreadable, written
    without a checksum, or edited since (its sha256 no longer matches; said once on stderr)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            boxes, scores = z["boxes"].astype(np.float64), z["scores"].astype(np.float64)
            counters_json = str(z["counters"])
            stored = str(z["sha256"]) if "sha256" in z.files else None
        counters = json.loads(counters_json)
    except Exception:  # a corrupt cache entry is recomputed, never trusted
        return None
    if stored != _entry_digest(boxes, scores, counters_json):
        import sys

        if stored is not None and "checksum" not in _WARNED:
            _WARNED.add("checksum")
            print(f"qsim sweep: cache entry {path} does not match its checksum (edited or corrupt); "
                  "recomputing it (other such entries are recomputed without a message)", file=sys.stderr)
        return None
    return boxes, scores, counters


# worker-process state (spawned workers load the graph once)
_WORKER: dict[str, Any] = {}


def _worker_init(graph_bytes: bytes, specs: list, settings: dict) -> None:
    import pickle

    _WORKER["graph"] = pickle.loads(graph_bytes)
    _WORKER["runners"] = [_Runner(_WORKER["graph"], SweepFormat.from_spec(s), settings) for s in specs]


def _worker_task(task):
    f_idx, path, cache_path = task
    boxes, scores, counters = _WORKER["runners"][f_idx](Path(path))
    if cache_path is not None:
        _save(Path(cache_path), boxes, scores, counters)
    return f_idx, path, boxes, scores, counters


# --- results ----------------------------------------------------------------------------------

@dataclass
class SweepRow:
    """One format's result."""

    format: str
    executor: str
    mode: str
    eval: Any  # DetectionEval
    params: int | None
    size_bytes: int | None
    overflow: Any = None  # OverflowReport (fixed full / fp16 / k210), else None
    seconds: float = 0.0
    cached_images: int = 0
    ap_interval: tuple | None = None  # (low, high) bootstrap over pictures (sweep(bootstrap=N))

    @property
    def ap(self) -> float:
        return self.eval.ap

    def to_dict(self) -> dict:
        paper = PAPER_TABLE_II.get(self.format)
        out = {
            "format": self.format, "executor": self.executor, "mode": self.mode, "ap": self.ap,
            "paper_ap": None if paper is None else paper[0],
            "params": self.params, "size_bytes": self.size_bytes,
            "overflow_events": None if self.overflow is None else self.overflow.total_events,
            "first_overflow": None,
            "seconds": self.seconds, "cached_images": self.cached_images,
            "ap_interval": None if self.ap_interval is None else list(self.ap_interval),
            "eval": self.eval.to_dict(points=50),
        }
        if self.overflow is not None:
            first = self.overflow.first_overflow()
            out["first_overflow"] = None if first is None else first.name
            out["overflow"] = self.overflow.to_dict()
        return out


@dataclass
class SweepResult:
    """All rows of a sweep, with what was measured on what."""

    model: str
    dataset: str
    n_images: int
    n_faces: int
    settings: dict
    rows: list[SweepRow] = field(default_factory=list)
    skipped_images: int = 0
    paper_model: bool = False  # the model is the paper's A98 alpha 1.0 (`is_paper_a98`)

    def paper_row(self, fmt: str):
        """The paper's (AP, params, size) for a row: Viola-Jones always, the A98 rows only for an A98."""
        if not self.dataset.startswith("fddb") or (fmt != "vj" and not self.paper_model):
            return None
        return PAPER_TABLE_II.get(fmt)

    def to_dict(self) -> dict:
        return {"qsim_sweep": 1, "model": self.model, "dataset": self.dataset, "n_images": self.n_images,
                "n_faces": self.n_faces, "skipped_images": self.skipped_images, "settings": self.settings,
                "rows": [{**r.to_dict(), "paper_ap": (self.paper_row(r.format) or (None,))[0]} for r in self.rows]}

    def markdown(self) -> str:
        """The Table II layout, with the paper's numbers beside ours (FDDB only)."""
        from qsim.analysis.report import markdown_table

        headers = ["format", "mode", "AP", "AP (paper)", "parameters", "size", "params (paper)", "size (paper)",
                   "overflow events", "s/img"]
        rows = []
        for r in self.rows:
            p = self.paper_row(r.format)
            rows.append([
                r.format, r.mode,
                f"{r.ap:.3f}" + ("" if r.ap_interval is None else " [{:.3f}-{:.3f}]".format(*r.ap_interval)),
                "-" if p is None else f"{p[0]:.3f}",
                "-" if r.params is None else f"{r.params / 1e6:.3f}M",
                "-" if r.size_bytes is None else f"{r.size_bytes / 2**20:.2f}MB",
                "-" if p is None else p[1], "-" if p is None else p[2],
                "-" if r.overflow is None else str(r.overflow.total_events),
                f"{r.seconds / max(self.n_images, 1):.2f}",
            ])
        return markdown_table(headers, rows, align="llrrrrrrrr")

    def plot(self, path: Any) -> Path:
        """AP per format (ours, and the paper's where known) beside the precision/recall curves."""
        from qsim.analysis.plots import _check_path, _pyplot

        path = _check_path(path)
        plt = _pyplot()
        fig, (ax, ax_pr) = plt.subplots(1, 2, figsize=(max(4.0, 0.9 * len(self.rows) + 2) + 4, 3.4))
        xs = np.arange(len(self.rows))
        ax.bar(xs - 0.2, [r.ap for r in self.rows], 0.4, label="qsim")
        paper = [(self.paper_row(r.format) or (np.nan,))[0] for r in self.rows]
        if not np.all(np.isnan(paper)):
            ax.bar(xs + 0.2, paper, 0.4, label="paper")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{r.format}\n{r.mode}" for r in self.rows], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("AP (IoU >= 0.5)")
        ax.set_title(f"{Path(self.model).name} on {self.dataset} ({self.n_images} images)", fontsize=9)
        ax.legend(fontsize=8)
        for r in self.rows:
            ax_pr.plot(r.eval.recall, r.eval.precision, label=f"{r.format} ({r.ap:.3f})", lw=1)
        ax_pr.set_xlim(0, 1)
        ax_pr.set_ylim(0, 1.02)
        ax_pr.set_xlabel("recall")
        ax_pr.set_ylabel("precision")
        ax_pr.set_title("precision / recall", fontsize=9)
        ax_pr.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


# --- the sweep ----------------------------------------------------------------------------------

def sweep(model: Any, dataset: Any, formats: "str | Sequence[str] | Sequence[SweepFormat]", *,
          mode: str = "weights", scales: Sequence[float] = (0.5, 1.0, 2.0), max_side: int | None = None,
          score_threshold: float = CANDIDATE_THRESHOLD, nms_iou: float = 0.3, iou_threshold: float = 0.5,
          cache_dir: Any = None, use_cache: bool = True, workers: int = 1, progress: bool = True,
          graph: Any = None, bootstrap: int = 0, seed: int = 0) -> SweepResult:
    """AP (and size, overflow) of a face detector per number format.

    Args:
        model: model file (.h5/.keras), or a `Graph`.
        dataset: a `qsim.facedet.annotations.FaceDataset` (`load_fddb`, `load_wider`).
        formats: ``"fp32,fp16,q9,..."`` or a list of names / `SweepFormat` (see `parse_formats`).
        mode: ``"weights"`` (the paper's Table II) or ``"full"`` (integer activations, overflow).
        scales, max_side: image pyramid (`qsim.facedet.detector`).
        score_threshold: lowest sigmoid score entering the PR curve (>= the cached 0.01).
        nms_iou, iou_threshold: NMS overlap and the IoU a match needs.
        cache_dir: cache root (default ``$QSIM_CACHE`` or ``~/.cache/qsim``); ``use_cache=False``
            neither reads nor writes it.
        workers: processes for the images (1 = in this process).
        progress: tqdm bar on stderr.
        graph: the already loaded graph of ``model`` (saves loading it again).
        bootstrap, seed: ``bootstrap > 0`` adds each row's 95 % percentile bootstrap interval of
            AP over pictures (`qsim.facedet.metrics.bootstrap_ap`, that many resamples, seeded).

    The cache holds detections (before NMS and matching), not AP: the gt boxes (e.g. the FDDB
    box rule), ``iou_threshold``, ``nms_iou`` and ``score_threshold`` are applied afterwards, so
    changing them reruns no network.
    """
    from qsim.analysis.overflow import OverflowReport
    from qsim.facedet.metrics import bootstrap_ap, evaluate
    from qsim.facedet.nms import nms
    from qsim.fixed.counters import OverflowCounter
    from qsim.trace import Trace

    if score_threshold < CANDIDATE_THRESHOLD:
        raise InputError(f"score_threshold must be >= {CANDIDATE_THRESHOLD} (the cached candidates)")
    if workers < 1:
        raise InputError(f"workers must be >= 1; got {workers}")
    if len(dataset) == 0:
        raise InputError(f"dataset {dataset.name} has no image on disk")
    fmts = [f for f in formats if isinstance(f, SweepFormat)] if not isinstance(formats, str) else []
    if not fmts:
        fmts = parse_formats(formats, mode=mode)
    for fmt in fmts:  # fail before hours of work, not after
        if fmt.executor == "viola_jones":
            from qsim.facedet.viola_jones import ViolaJones

            ViolaJones()
        elif fmt.executor == "kmodel":
            from qsim.facedet.region import RegionDetector

            RegionDetector(fmt.path)
        elif fmt.executor == "tflite":
            from qsim.tflite import read_tflite

            read_tflite(fmt.tflite)
        else:
            from qsim.runtime import get_backend

            get_backend(fmt.executor)
    needs_model = any(f.executor not in SELF_CONTAINED for f in fmts)
    if graph is None and needs_model:
        if isinstance(model, (str, Path)):
            import qsim

            if not Path(model).is_file():
                raise InputError(f"model file {model} not found")
            graph = qsim.load_model(model)
        elif model is None:
            raise InputError("a model is needed for formats other than vj")
        else:
            graph = model
    if needs_model:
        m_hash = model_hash(model if isinstance(model, (str, Path)) else graph)
        stride = infer_stride(graph)
    else:
        m_hash, stride = "no-model", None
    settings = {"scales": [float(s) for s in scales], "max_side": max_side, "stride": stride,
                "score_threshold": score_threshold, "nms_iou": nms_iou, "iou_threshold": iou_threshold,
                "mode": mode, "candidate_threshold": CANDIDATE_THRESHOLD}
    root = cache_root(cache_dir) / "sweep" / m_hash if use_cache else None

    # what is cached, what must run
    results: dict[tuple[int, str], tuple] = {}
    todo: list[tuple[int, str, str | None]] = []
    cached = [0] * len(fmts)
    for f_idx, fmt in enumerate(fmts):
        for im in dataset.images:
            cpath = None
            if root is not None:
                cpath = root / fmt.key() / f"{_image_key(im.path, settings)}.npz"
                hit = _load(cpath) if cpath.is_file() else None
                if hit is not None:
                    results[(f_idx, str(im.path))] = hit
                    cached[f_idx] += 1
                    continue
            todo.append((f_idx, str(im.path), None if cpath is None else str(cpath)))

    seconds = [0.0] * len(fmts)
    if todo:
        bar = _progress(len(todo), progress, "sweep")
        if workers == 1:
            runners = [_Runner(graph, fmt, settings) for fmt in fmts]
            for f_idx, path, cpath in todo:
                t0 = time.perf_counter()
                boxes, scores, counters = runners[f_idx](Path(path))
                seconds[f_idx] += time.perf_counter() - t0
                if cpath is not None:
                    _save(Path(cpath), boxes, scores, counters)
                results[(f_idx, path)] = (boxes, scores, counters)
                bar.update(1)
        else:
            import multiprocessing as mp
            import pickle

            ctx = mp.get_context("spawn")  # no fork: Numba/OpenMP threads do not survive fork
            t0 = time.perf_counter()
            with ctx.Pool(workers, _worker_init,
                          (pickle.dumps(graph), [f.spec() for f in fmts], settings)) as pool:
                for f_idx, path, boxes, scores, counters in pool.imap_unordered(_worker_task, todo):
                    results[(f_idx, path)] = (boxes, scores, counters)
                    bar.update(1)
            wall = time.perf_counter() - t0
            per_fmt = [sum(1 for t in todo if t[0] == k) for k in range(len(fmts))]
            seconds = [wall * n / len(todo) for n in per_fmt]  # wall time shared by task count
        bar.close()

    label = str(model) if isinstance(model, (str, Path)) else (graph.name if graph is not None else "(no model)")
    out = SweepResult(label, dataset.name, len(dataset),
                      dataset.n_faces, settings, skipped_images=len(dataset.missing), paper_model=is_paper_a98(graph))
    for f_idx, fmt in enumerate(fmts):
        per_image = []
        report = None
        for im in dataset.images:
            boxes, scores, counters = results[(f_idx, str(im.path))]
            if fmt.executor not in SELF_CONTAINED:
                sel = scores >= score_threshold
                boxes, scores = boxes[sel], scores[sel]
                keep = nms(boxes, scores, nms_iou)
                boxes, scores = boxes[keep], scores[keep]
            per_image.append((boxes, scores, im.boxes, im.ignore))
            for trace_counters in counters:
                report = report or OverflowReport(graph)
                t = Trace(fmt.executor)
                t.counters = {node: {site: OverflowCounter.from_dict(c) for site, c in sites.items()}
                              for node, sites in trace_counters.items()}
                report.update(t)
        params, size = model_size(graph, fmt) if graph is not None or fmt.executor == "kmodel" else (None, None)
        interval = bootstrap_ap(per_image, iou_threshold, n_boot=bootstrap, seed=seed) if bootstrap > 0 else None
        out.rows.append(SweepRow(fmt.name, fmt.executor, fmt.mode, evaluate(per_image, iou_threshold),
                                 params, size, report, seconds[f_idx], cached[f_idx], interval))
    return out


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="img", disable=None)
