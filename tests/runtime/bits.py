"""Per-node bit hashes: the invariant every refactor and speed step must keep.

`node_hashes()` runs the committed A98 through every executor configuration below and the
real slim-320.kmodel through the kmodel runtime, and hashes, per node, the codes (int64
bytes), the values (their dtype's bytes), the format (text) and the overflow counters
(canonical JSON). `tests/runtime/test_bits.py` compares them with `node_hashes.json`,
which was written at 3efbc78, before the runtime refactor:

    python -m tests.runtime.bits --write    # only when a change of bits is intended and said
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
STORE = HERE / "node_hashes.json"
A98 = Path(__file__).resolve().parents[2] / "qsim" / "assets" / "a98_alpha1.0.h5"


def _digest(arr) -> str:
    a = np.ascontiguousarray(arr)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()[:16]


def _fmt_text(fmt) -> str:
    if fmt is None:
        return ""
    if hasattr(fmt, "scale"):  # K210 affine uint8
        return f"affine({float(fmt.scale)!r},{int(fmt.zero_point)})"
    return str(fmt)


def trace_hashes(trace) -> dict[str, str]:
    """node -> one hash of its codes, values, format and counters."""
    out = {}
    names = list(dict.fromkeys([*trace.values, *trace.codes, *trace.counters, *trace.outputs]))
    for name in names:
        h = hashlib.sha256()
        for part in (trace.codes.get(name), trace.values.get(name), trace.outputs.get(name)):
            h.update(b"-" if part is None else _digest(part).encode())
        h.update(_fmt_text(trace.formats.get(name)).encode())
        counters = trace.counters.get(name) or {}
        h.update(json.dumps({s: c.to_dict() for s, c in sorted(counters.items())}, sort_keys=True).encode())
        out[name] = h.hexdigest()[:16]
    return out


def a98_input() -> np.ndarray:
    """Two 80x96 crops of skimage's astronaut, MobileNet-preprocessed (deterministic)."""
    from skimage import data

    from qsim.images import mobilenet_preprocess, resize_bilinear

    img = np.ascontiguousarray(data.astronaut()[..., :3])
    crops = [resize_bilinear(img[:256, 128:384], (80, 96)), resize_bilinear(img[100:500, 50:450], (80, 96))]
    return np.stack([mobilenet_preprocess(c) for c in crops]).astype(np.float32)


def configurations():
    """name -> (callable(graph, x) -> Trace). The one place that speaks the executor API."""
    from qsim.executors import run
    from qsim.plan import Plan

    q69 = Plan.uniform("Q6.9", acc_bits=32, rounding="half_up", overflow="saturate")
    q411 = Plan.uniform("Q4.11", acc_bits=33, rounding="floor", overflow="wrap")
    d = Plan.uniform("Q2.5", acc_bits=20, rounding="half_even", overflow="saturate").to_dict()
    d["default"]["acc_saturation"] = "per_step"
    q25 = Plan.from_dict(d)
    q77 = Plan.uniform("Q7.8", acc_bits=32, rounding="half_away", overflow="saturate").with_nodes(
        {"block_1_project_BN": {"act": "Q3.12", "weights": "Q1.14"}, "bn_Conv1": {"act": "Q5.10"}})
    weights_q9 = Plan.uniform("Q9", mode="weights", rounding="half_up", overflow="saturate")
    weights_q6_floor = Plan.uniform("Q6", mode="weights", rounding="floor", overflow="saturate")
    fp16 = Plan.uniform("Q6.9", mode="fp16")
    fp16_w = Plan.uniform("Q6.9", mode="fp16", fp16_activations=False)
    return {
        "float32": lambda g, x: run(g, x, executor="float"),
        "float64": lambda g, x: run(g, x, executor="float", dtype=np.float64),
        "fixed_q6.9_acc32_half_up_sat": lambda g, x: run(g, x, plan=q69),
        "fixed_q4.11_acc33_floor_wrap": lambda g, x: run(g, x, plan=q411),
        "fixed_q2.5_acc20_half_even_per_step": lambda g, x: run(g, x, plan=q25),
        "fixed_q7.8_per_layer_half_away": lambda g, x: run(g, x, plan=q77),
        "weights_q9": lambda g, x: run(g, x, plan=weights_q9),
        "weights_q6_floor": lambda g, x: run(g, x, plan=weights_q6_floor),
        "fp16": lambda g, x: run(g, x, plan=fp16),
        "fp16_weights": lambda g, x: run(g, x, plan=fp16_w),
        "k210_calibrated_on_input": lambda g, x: run(g, x, executor="k210", calibration=x),
    }


def node_hashes(data_dir: Path | None) -> dict[str, dict[str, str]]:
    import qsim

    graph = qsim.load_model(A98)
    x = a98_input()
    result = {name: trace_hashes(fn(graph, x)) for name, fn in configurations().items()}
    if data_dir is not None:
        from qsim.k210.kmodel_exec import KmodelExecutor

        ex = KmodelExecutor(data_dir / "kmodels" / "slim-320.kmodel")
        golden = np.load(data_dir / "kmodels" / "slim-320-golden.npz")
        run = ex.run(golden["inputs"][0], keep=True, count_overflow=True)
        result["kmodel_slim320"] = trace_hashes(run.to_trace(ex.model))
    return result


if __name__ == "__main__":
    from qsim.datasets import data_root

    hashes = node_hashes(data_root(required=True))
    if "--write" in sys.argv:
        STORE.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
        print(f"wrote {STORE}: {sum(len(v) for v in hashes.values())} node hashes in {len(hashes)} runs")
    else:
        print(json.dumps({k: len(v) for k, v in hashes.items()}))
