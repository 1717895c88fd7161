"""``qsim inspect MODEL``: layers, output shapes, params, MACs, folded BNs, K210 KPU fit.

Examples::

    qsim inspect A98_alpha0.5.h5 --size 224x224
    qsim inspect A98_alpha1.0.keras --size 500x500 --json a98.json
    qsim inspect weights.h5 --arch model.json --no-fold-bn
"""
from __future__ import annotations

import sys

from qsim.errors import InputError


def add_arguments(parser) -> None:
    parser.add_argument("model", help="Keras .h5 / .keras file (or weights file with --arch)")
    parser.add_argument("--size", default=None, help="input size HxW for shapes and MACs (e.g. 224x224)")
    parser.add_argument("--json", default=None, metavar="OUT", help="also write the table as JSON")
    parser.add_argument("--no-fold-bn", action="store_true", help="keep BatchNorm layers unfolded")
    parser.add_argument("--symmetric-pads", action="store_true",
                        help="rewrite stride-2 pads to the K210's symmetric padding (paper §V-D)")
    parser.add_argument("--arch", default=None, help="architecture JSON for a weights-only file")
    parser.add_argument("--notes", action="store_true", help="print every pass note (BN folds, pads)")


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"224x224"`` → (224, 224); ``"500"`` → (500, 500).

    >>> parse_size("240x320"), parse_size("500"), parse_size(None)
    ((240, 320), (500, 500), None)
    """
    if text is None:
        return None
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise InputError(f"--size {text!r}: expected HxW, e.g. 224x224") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise InputError(f"--size {text!r}: expected HxW with positive integers")
    return (values[0], values[1])


def _fmt_count(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def _shape(shape) -> str:
    return "x".join("?" if d is None else str(d) for d in shape)


def render(summary: dict) -> str:
    """The human table (Markdown-compatible) of a `qsim.graph.summary.summarize` result."""
    rows = summary["layers"]
    header = ["#", "name", "op", "output", "params", "MACs", "pads", "K210 KPU", "fused"]
    lines_data = []
    for i, r in enumerate(rows):
        pads = r["pads"]
        pads_txt = "" if pads is None else (pads if isinstance(pads, str) else ",".join(map(str, pads)))
        op = r["op"]
        if r["kernel"]:
            op += f" {r['kernel'][0]}x{r['kernel'][1]}" + (f"/s{r['strides'][0]}" if r["strides"] and
                                                          max(r["strides"]) > 1 else "")
        fused = "+".join(r["fused"]) if r["fused"] else ""
        lines_data.append([str(i), r["name"], op, _shape(r["output_shape"]), _fmt_count(r["params"]),
                           _fmt_count(r["macs"]), pads_txt, r["kpu"], fused])
    widths = [max(len(h), *(len(row[j]) for row in lines_data)) for j, h in enumerate(header)]
    out = [f"model {summary['model']} ({summary['source']})",
           "inputs: " + ", ".join(f"{k} {_shape(v)}" for k, v in summary["inputs"].items())
           + "   outputs: " + ", ".join(f"{k} {_shape(v)}" for k, v in summary["outputs"].items()), ""]
    out.append("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    out.append("  ".join("-" * w for w in widths))
    for row in lines_data:
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    t = summary["totals"]
    out.append("")
    macs = t["macs"]
    out.append(f"total: {t['nodes']} nodes, {t['params']:,} params, "
               + (f"{macs:,} MACs ({macs / 1e9:.3f} GMAC)" if macs is not None
                  else "MACs unknown (give --size)"))
    out.append(f"BatchNorm: {t['folded_bn']} folded into convs, {t['batch_norm_left']} left as batch_norm")
    out.append(f"K210 KPU: {t['kpu_convs']}/{t['convs']} convs fit ({t['kpu_cpu_pad']} need a CPU pad: "
               "asymmetric TF padding; see --symmetric-pads); memory plan: qsim k210")
    return "\n".join(out)


def run(args) -> int:
    from qsim.cli.files import check_outputs, write_json_file
    from qsim.graph.summary import inspect_model

    check_outputs(args, files=("--json",))
    size = parse_size(args.size)
    summary = inspect_model(args.model, size, fold_bn=not args.no_fold_bn, arch=args.arch,
                            symmetric_pads=args.symmetric_pads)
    print(render(summary))
    if args.notes:
        print("\npass notes:")
        for note in summary["notes"]:
            print("  " + note)
        for backend, notes in summary.get("backend_notes", {}).items():
            print(f"\n{backend} backend passes (run by qsim.prepare on its own copy):")
            for note in notes:
                print("  " + note)
    if args.json:
        write_json_file(summary, args.json)
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0
