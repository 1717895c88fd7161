"""Per-layer table of a graph: shapes, params, MACs, and a quick K210 KPU fit check.

`summarize(graph, input_hw)` returns a JSON-ready dict used by ``qsim inspect``.
The KPU column applies nncase's conditions for lowering a conv to the KPU
(see ``k210-kpu.md`` §2.1, N19 ``kpu_utils.h``): groups 1 or depthwise with multiplier
1, dilation 1, square 1×1 or 3×3 kernel, stride 1 or 2, input 4 ≤ H ≤ 256 and
4 ≤ W ≤ 512, channels ≤ 1024 in and out. Pads other than the KPU's symmetric k//2 need a
CPU pad (noted, not a failure). Memory (2 MiB KPU RAM) is the K210 planner's business.
"""
from __future__ import annotations

from typing import Any

from qsim.graph.ir import Graph, Node, resolve_pads
from qsim.graph.shapes import Shape, count_macs, count_params, infer_shapes

KPU_MAX_CHANNELS = 1024
KPU_H_RANGE = (4, 256)
KPU_W_RANGE = (4, 512)


def kpu_fit(node: Node, in_shape: Shape) -> str:
    """``"yes"``, ``"yes (CPU pad)"``, ``"no: <reason>"`` for a conv; ``""`` for other ops."""
    if node.op not in ("conv2d", "depthwise_conv2d"):
        return ""
    kh, kw, cin, last = node.weights["kernel"].shape
    cout = last if node.op == "conv2d" else cin * last
    reasons = []
    if kh != kw or kh not in (1, 3):
        reasons.append(f"kernel {kh}x{kw} (1x1/3x3 only)")
    if node.op == "depthwise_conv2d" and last != 1:
        reasons.append(f"depth multiplier {last}")
    if tuple(node.attrs.get("dilation", (1, 1))) != (1, 1):
        reasons.append("dilation")
    strides = tuple(node.attrs.get("strides", (1, 1)))
    if strides[0] != strides[1] or strides[0] not in (1, 2):
        reasons.append(f"stride {strides}")
    if cin > KPU_MAX_CHANNELS or cout > KPU_MAX_CHANNELS:
        reasons.append(f"channels {cin}->{cout} > {KPU_MAX_CHANNELS}")
    h, w = in_shape[0], in_shape[1]
    if h is not None and not KPU_H_RANGE[0] <= h <= KPU_H_RANGE[1]:
        reasons.append(f"input H {h} outside {KPU_H_RANGE}")
    if w is not None and not KPU_W_RANGE[0] <= w <= KPU_W_RANGE[1]:
        reasons.append(f"input W {w} outside {KPU_W_RANGE}")
    if reasons:
        return "no: " + "; ".join(reasons)
    pads = node.attrs.get("pads", (0, 0, 0, 0))
    if pads == "same" and h is not None and w is not None:
        pads = resolve_pads(pads, (h, w), (kh, kw), strides)
    native = ((kh - 1) // 2,) * 4
    if pads == "same":
        return "yes (pads per size)" if strides != (1, 1) else "yes"
    return "yes" if tuple(pads) == native else "yes (CPU pad)"


def window(node: Node) -> list[int] | None:
    """The node's kernel or pool window (KH, KW); a dense layer's (Cin, Cout); None otherwise."""
    if "pool_size" in node.attrs:
        return list(node.attrs["pool_size"])
    if "kernel" in node.weights:
        return list(node.weights["kernel"].shape[:2])
    return None


def summarize(graph: Graph, input_hw: tuple[int, int] | None = None) -> dict[str, Any]:
    """Rows (one per node) and totals for ``graph`` at input size ``input_hw``."""
    shapes = infer_shapes(graph, input_hw)
    rows = []
    for node in graph:
        in_shape = shapes[node.inputs[0]] if node.inputs else shapes[node.name]
        pads = node.attrs.get("pads")
        rows.append({
            "name": node.name,
            "op": node.op,
            "inputs": list(node.inputs),
            "output_shape": list(shapes[node.name]),
            "params": count_params(node),
            "macs": count_macs(node, shapes[node.name]),
            "kernel": window(node),
            "strides": list(node.attrs["strides"]) if "strides" in node.attrs else None,
            "pads": pads if pads is None or pads == "same" else list(pads),
            "fused": list(node.attrs.get("fused", [])),
            "kpu": kpu_fit(node, in_shape),
        })
    convs = [r for r in rows if r["kpu"]]
    macs = [r["macs"] for r in rows]
    return {
        "model": graph.name,
        "source": graph.source,
        "input_hw": list(input_hw) if input_hw else None,
        "inputs": {n.name: list(shapes[n.name]) for n in graph.inputs},
        "outputs": {o: list(shapes[o]) for o in graph.outputs},
        "layers": rows,
        "totals": {
            "nodes": len(rows),
            "params": sum(r["params"] for r in rows),
            "macs": None if any(m is None for m in macs) else sum(macs),
            "convs": len(convs),
            "kpu_convs": sum(1 for r in convs if r["kpu"].startswith("yes")),
            "kpu_cpu_pad": sum(1 for r in convs if r["kpu"] == "yes (CPU pad)"),
            "folded_bn": sum(1 for note in graph.notes if note.startswith("fold_bn:")),
            "batch_norm_left": sum(1 for r in rows if r["op"] == "batch_norm"),
        },
        "notes": list(graph.notes),
    }


def inspect_model(path, size: tuple[int, int] | None = None, fold_bn: bool = True, arch=None,
                  symmetric_pads: bool = False) -> dict[str, Any]:
    """Python twin of ``qsim inspect``: load ``path`` and `summarize` it at ``size`` (H, W)."""
    from qsim.graph.passes import run_passes
    from qsim.model import load_model

    graph = load_model(path, fold_bn=fold_bn, arch=arch, input_hw=size, symmetric_pads=symmetric_pads)
    summary = summarize(graph, size)
    # what the integer (fixed) backend's own pass does to this graph (on a copy)
    fixed = run_passes(graph, ("fuse_activation",))
    summary["backend_notes"] = {"fixed": fixed.notes[len(graph.notes):]}
    return summary
