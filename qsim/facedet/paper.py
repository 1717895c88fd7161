"""The paper's published figures, kept as data beside the code that measures ours.

Table II (A98, alpha 1.0, FDDB-C: AP, parameters, size per number format) and Table IV's
Viola-Jones row. They stand beside a sweep's rows only where they describe the same
thing: Viola-Jones always (on FDDB), the A98 rows only when the swept model is an A98 at
alpha 1.0 (`is_paper_a98`).
"""
from __future__ import annotations

from typing import Any

PAPER_TABLE_II = {
    "fp32": (0.891, "1.37M", "5.25MB"),
    "fp16": (0.891, "1.37M", "2.63MB"),
    "q9": (0.886, "1.37M", "2.63MB"),
    "q8": (0.884, "1.37M", "2.63MB"),
    "q7": (0.814, "1.37M", "2.63MB"),
    "q6": (0.027, "1.37M", "2.63MB"),
    "vj": (0.738, "-", "-"),
}


def is_paper_a98(graph: Any) -> bool:
    """Whether `graph` is an A98 at alpha 1.0 (head on breakpoint A, 576 channels): the model
    the paper's Table II measures, so its figures may stand beside ours."""
    if graph is None or len(graph.outputs) != 1:
        return False
    head = graph[graph.outputs[0]]
    kernel = head.weights.get("kernel")
    return (head.op == "conv2d" and head.inputs == ["block_13_expand_relu"] and kernel is not None
            and kernel.shape[2:] == (576, 125))


def paper_row(dataset: str, fmt: str, paper_model: bool):
    """The paper's (AP, params, size) for a row, or None where it does not apply."""
    if not dataset.startswith("fddb") or (fmt != "vj" and not paper_model):
        return None
    return PAPER_TABLE_II.get(fmt)
