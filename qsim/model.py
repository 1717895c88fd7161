"""`load_model`: a Keras file → an executable, validated `Graph` (no TensorFlow).

Usage (see README "Importing models")::

    graph = qsim.load_model("A98_alpha1.0.h5")      # BN folded, pads explicit where known
    trace = qsim.run(graph, image)        # float32 Trace, every layer by name
"""
from __future__ import annotations

import os
from typing import Any

from qsim.errors import ModelError
from qsim.graph.ir import Graph
from qsim.graph.keras_import import import_keras
from qsim.graph.passes import DEFAULT_PASSES, run_passes
from qsim.graph.shapes import image_shape
from qsim.graph.validate import validate


def load_model(path: str | os.PathLike, fold_bn: bool = True, arch: Any = None, *,
               input_hw: tuple[int, int] | None = None, symmetric_pads: bool = False,
               passes: tuple[str, ...] | None = None) -> Graph:
    """Read a Keras model and run the graph passes.

    Args:
        path: legacy-HDF5 full model (``.h5``), Keras 3 archive (``.keras``), or a
            weights-only file (legacy ``.h5`` or ``.weights.h5``) together with ``arch``.
        fold_bn: fold BatchNorms into the preceding convs (False keeps ``batch_norm`` nodes).
        arch: architecture for a weights-only file: JSON path/string (``model.to_json()``)
            or dict; overrides the file's own config if given.
        input_hw: fix the input size (H, W) so ``"same"`` pads become explicit; by default
            the model's declared input size (often None × None: pads resolved per image).
        symmetric_pads: rewrite asymmetric stride-2 pads to the K210's symmetric padding
            (changes the numbers; see `qsim.graph.passes.symmetric_pads`).
        passes: explicit pass list (overrides ``fold_bn``/``symmetric_pads``).

    Returns:
        The validated `Graph`; ``graph.notes`` lists what the passes changed.

    Raises:
        ModelError: unreadable/corrupt file, unsupported layer, missing or non-finite weights.
    """
    graph = import_keras(path, arch)
    if input_hw is not None:
        for node in graph.inputs:
            try:
                node.attrs["shape"] = image_shape(node, tuple(node.attrs["shape"]), input_hw)
            except ModelError as exc:
                raise ModelError(f"{path}: {exc}") from None
    validate(graph)
    if passes is None:
        passes = tuple(p for p in DEFAULT_PASSES if fold_bn or p != "fold_bn")
        if symmetric_pads:
            passes += ("symmetric_pads",)
    return run_passes(graph, passes)
