"""Face-detection accuracy per number format: the paper's Table II (and the VJ row of Table IV).

For each format (`qsim.facedet.sweep_formats.parse_formats`: the number formats of
`qsim.analysis.formats`, plus the ``vj`` and ``kmodel:PATH`` detectors), every image of a
`FaceDataset` goes through the pyramid detector (`qsim.facedet.detector`: 0.5x/1x/2x,
decode, NMS at IoU 0.3) with the network run by the format's backend; AP is measured at
IoU >= 0.5 (`qsim.facedet.metrics`, all-point interpolation). Results:
`qsim.facedet.sweep_result`; the paper's figures beside them: `qsim.facedet.paper`.

Parameters and size: the parameter count of the loaded graph (BatchNorm folded into the
convolutions: kernels + biases), and its storage: 4 bytes each in fp32, 2 in fp16, the
plan's weight/bias word sizes for fixed point, 1 byte for K210 (uint8).

Caching (`qsim.analysis.store`): each (model hash, format key, image, pyramid settings)
result is an entry ``<cache>/sweep/<model>/<format>/<image>.npz`` (default
``~/.cache/qsim``, or ``$QSIM_CACHE``): the candidate boxes before NMS with score >=
``CANDIDATE_THRESHOLD`` and the overflow counters. A rerun, or a run with a larger
``--limit``, only computes what is missing. Work runs in this process or in ``workers``
processes or on a Dask cluster (`qsim.analysis.tasks.map_tasks`); results do not depend on
where they ran.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qsim.analysis.formats import NumberFormat
from qsim.analysis.store import ResultStore, cache_root, model_hash
from qsim.analysis.tasks import map_tasks
from qsim.errors import InputError
from qsim.facedet.paper import PAPER_TABLE_II, is_paper_a98
from qsim.facedet.sweep_formats import DetectorFormat, parse_formats
from qsim.facedet.sweep_result import SweepResult, SweepRow

CANDIDATE_THRESHOLD = 0.01  # sigmoid scores kept in the cache (AP uses everything above)
CACHE_VERSION = 2  # 2: entries of `qsim.analysis.store` (named arrays + JSON + checksum)

__all__ = ["sweep", "parse_formats", "SweepResult", "SweepRow", "NumberFormat", "infer_stride",
           "PAPER_TABLE_II", "is_paper_a98", "CANDIDATE_THRESHOLD"]


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


# --- one picture, one format ------------------------------------------------------------------

class PictureRunner:
    """One format on one picture: candidates (before NMS for networks) and overflow counters."""

    def __init__(self, graph: Any, fmt: NumberFormat, settings: dict):
        self.graph, self.fmt, self.settings = graph, fmt, settings
        self._detect = None  # the detector or network function, made on first use

    def __call__(self, image_path: Path):
        from qsim.facedet.detector import candidates_from_outputs, run_pyramid
        from qsim.images import load_image

        img = load_image(image_path)
        if isinstance(self.fmt, DetectorFormat):
            self._detect = self._detect or self.fmt.detector(CANDIDATE_THRESHOLD)
            boxes, scores = self._detect(img)
            return boxes, scores, []
        self._detect = self._detect or self.fmt.function(self.graph)
        counters: list = []

        def network(x):
            out, run_counters = self._detect(x)
            if run_counters is not None:
                counters.append(run_counters)
            return out

        raw = run_pyramid(img, network, self.settings["scales"], self.settings["max_side"],
                          self.settings["input_hw"])
        boxes, scores = candidates_from_outputs(raw, img.shape[:2], stride=self.settings["stride"],
                                                score_threshold=CANDIDATE_THRESHOLD)
        return boxes, scores, counters


def image_key(path: Path, settings: dict) -> str:
    """The picture's bytes and the pyramid settings that shape its candidates."""
    h = hashlib.sha256(Path(path).read_bytes())
    shape = {k: settings[k] for k in ("scales", "max_side", "stride")}
    if settings["input_hw"] is not None:  # absent otherwise: earlier cache keys stay valid
        shape["input_hw"] = settings["input_hw"]
    h.update(json.dumps(shape, sort_keys=True).encode())
    h.update(f"v{CACHE_VERSION}".encode())
    return f"{Path(path).stem[:40]}-{h.hexdigest()[:16]}"


def save_candidates(store: ResultStore, path: Path | None, boxes, scores, counters) -> None:
    store.save(path, {"boxes": np.asarray(boxes, np.float64), "scores": np.asarray(scores, np.float64)},
               counters)


def load_candidates(store: ResultStore, path: Path | None):
    """(boxes, scores, counters) of a stored entry, or None to compute it."""
    hit = store.load(path)
    if hit is None or set(hit[0]) != {"boxes", "scores"}:
        return None
    arrays, counters = hit
    return arrays["boxes"], arrays["scores"], counters


def _init_runners(graph: Any, fmts: list, settings: dict) -> list:
    return [PictureRunner(graph, fmt, settings) for fmt in fmts]


def _run_picture(runners: list, task: tuple):
    f_idx, path, _ = task
    return runners[f_idx](Path(path))


# --- the sweep ----------------------------------------------------------------------------------

def sweep(model: Any, dataset: Any, formats: "str | Sequence[str] | Sequence[NumberFormat]", *,
          mode: str = "weights", scales: Sequence[float] = (0.5, 1.0, 2.0), max_side: int | None = None,
          input_hw: tuple[int, int] | None = None, symmetric_pads: bool = False,
          score_threshold: float = CANDIDATE_THRESHOLD, nms_iou: float = 0.3, iou_threshold: float = 0.5,
          cache_dir: Any = None, use_cache: bool = True, workers: int = 1, scheduler: str | None = None,
          progress: bool = True, graph: Any = None, bootstrap: int = 0, seed: int = 0) -> SweepResult:
    """AP (and size, overflow) of a face detector per number format.

    Args:
        model: model file (.h5/.keras), or a `Graph`.
        dataset: a `qsim.facedet.annotations.FaceDataset` (`load_fddb`, `load_wider`).
        formats: ``"fp32,fp16,q9,..."`` or a list of names / `NumberFormat` (see `parse_formats`).
        mode: ``"weights"`` (the paper's Table II) or ``"full"`` (integer activations, overflow).
        scales, max_side: image pyramid (`qsim.facedet.detector`).
        input_hw: a fixed network input, e.g. ``(224, 224)`` as on the paper's K210: each
            picture letterboxed into it (`qsim.facedet.detector.fixed_input_sizes`).
        symmetric_pads: load ``model`` with the K210's symmetric stride-2 padding, the paper's
            Sec. V-D change (`qsim.graph.passes.symmetric_pads`; another network, cached apart).
        score_threshold: lowest sigmoid score entering the PR curve (>= the cached 0.01).
        nms_iou, iou_threshold: NMS overlap and the IoU a match needs.
        cache_dir: cache root (default ``$QSIM_CACHE`` or ``~/.cache/qsim``); ``use_cache=False``
            neither reads nor writes it.
        workers: processes for the images (1 = in this process).
        scheduler: ``"tcp://HOST:PORT"`` (a Dask cluster) or ``"local:N"`` (a LocalCluster of N
            workers) instead of ``workers`` (`qsim.analysis.tasks`); same numbers.
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

    if score_threshold < CANDIDATE_THRESHOLD:
        raise InputError(f"score_threshold must be >= {CANDIDATE_THRESHOLD} (the cached candidates)")
    if workers < 1:
        raise InputError(f"workers must be >= 1; got {workers}")
    if len(dataset) == 0:
        raise InputError(f"dataset {dataset.name} has no image on disk")
    fmts = [f for f in formats if isinstance(f, NumberFormat)] if not isinstance(formats, str) else []
    if not fmts:
        fmts = parse_formats(formats, mode=mode)
    for fmt in fmts:  # fail before hours of work, not after
        fmt.check()
    needs_model = any(f.needs_model for f in fmts)
    if graph is None and needs_model:
        graph = _load_graph(model, symmetric_pads)
    if needs_model:
        m_hash = model_hash(model if isinstance(model, (str, Path)) else graph)
        if symmetric_pads:  # the same file computes other numbers: never share its entries
            m_hash = hashlib.sha256(f"{m_hash}|symmetric_pads".encode()).hexdigest()[:16]
        stride = infer_stride(graph)
    else:
        m_hash, stride = "no-model", None
    settings = {"scales": [float(s) for s in scales], "max_side": max_side, "stride": stride,
                "input_hw": None if input_hw is None else [int(v) for v in input_hw],
                "score_threshold": score_threshold, "nms_iou": nms_iou, "iou_threshold": iou_threshold,
                "mode": mode, "candidate_threshold": CANDIDATE_THRESHOLD}
    store = ResultStore(cache_root(cache_dir) if use_cache else None, "sweep", m_hash)

    # what is stored, what must run
    results: dict[tuple[int, str], tuple] = {}
    todo: list[tuple[int, str, Path | None]] = []
    cached = [0] * len(fmts)
    for f_idx, fmt in enumerate(fmts):
        f_key = fmt.key()
        for im in dataset.images:
            cpath = store.path(f_key, image_key(im.path, settings))
            hit = load_candidates(store, cpath)
            if hit is not None:
                results[(f_idx, str(im.path))] = hit
                cached[f_idx] += 1
            else:
                todo.append((f_idx, str(im.path), cpath))

    seconds = [0.0] * len(fmts)
    for (f_idx, path, cpath), result, secs in map_tasks(
            todo, init=_init_runners, init_args=(graph, fmts, settings), work=_run_picture, workers=workers,
            scheduler=scheduler, progress=progress, desc="sweep", unit="img"):
        save_candidates(store, cpath, *result)  # by the client, as results arrive: a killed run keeps them
        results[(f_idx, path)] = result
        seconds[f_idx] += secs

    label = str(model) if isinstance(model, (str, Path)) else (graph.name if graph is not None else "(no model)")
    out = SweepResult(label, dataset.name, len(dataset), dataset.n_faces, settings,
                      skipped_images=len(dataset.missing), paper_model=is_paper_a98(graph))
    for f_idx, fmt in enumerate(fmts):
        per_image = []
        report = None
        for im in dataset.images:
            boxes, scores, counters = results[(f_idx, str(im.path))]
            if not isinstance(fmt, DetectorFormat):  # a detector applied its own NMS
                sel = scores >= score_threshold
                boxes, scores = boxes[sel], scores[sel]
                keep = nms(boxes, scores, nms_iou)
                boxes, scores = boxes[keep], scores[keep]
            per_image.append((boxes, scores, im.boxes, im.ignore))
            for run_counters in counters:
                report = report or OverflowReport(graph)
                report.update_counters(fmt.executor, run_counters)
        params, size = fmt.size(graph) if graph is not None or not fmt.needs_model else (None, None)
        interval = bootstrap_ap(per_image, iou_threshold, n_boot=bootstrap, seed=seed) if bootstrap > 0 else None
        out.rows.append(SweepRow(fmt.name, fmt.executor, fmt.mode, evaluate(per_image, iou_threshold),
                                 params, size, report, seconds[f_idx], cached[f_idx], interval))
    return out


def _load_graph(model: Any, symmetric_pads: bool = False):
    if isinstance(model, (str, Path)):
        import qsim

        if not Path(model).is_file():
            raise InputError(f"model file {model} not found")
        return qsim.load_model(model, symmetric_pads=symmetric_pads)
    if symmetric_pads and model is not None:
        raise InputError("symmetric_pads needs a model file (load a Graph with "
                         "qsim.load_model(..., symmetric_pads=True) instead)")
    if model is None:
        raise InputError("a model is needed for formats other than vj and kmodel:PATH")
    return model
