"""Per-node bit hashes: the invariant every refactor and speed step must keep.

`node_hashes()` runs the committed A98 through every executor configuration below and the
real slim-320.kmodel through the kmodel runtime, and hashes, per node, the codes (int64
bytes), the values (their dtype's bytes), the format (text) and the overflow counters
(canonical JSON). `tests/runtime/test_bits.py` compares them with `node_hashes.json`,
first written at 3efbc78, before the runtime refactor.

Integer runs (`fixed_*`, the kmodel) are the same bits on every machine and are compared
exactly everywhere. Runs that go through float BLAS (`FLOAT_RUNS`: the float, weights-only
and fp16 backends, and the K210 run whose calibration ranges come from a float run) are
the same bits only on the same BLAS kernel and Numba target: OpenBLAS picks its GEMM
kernel by CPU, and a 2-core AMD EPYC and an Intel Xeon (both AVX-512) differ in the last
bit of the first convolution. Their hashes are therefore stored per `platform()`, exact
where the platform is stored, and everywhere else checked by per-node statistics (mean,
RMS, max |v| of the values) within `STATS_RTOL`, so a real change of results still fails
on any machine:

    python -m tests.runtime.bits --write          # only when a change of bits is intended and said
    python -m tests.runtime.bits --add-platform   # this machine's float hashes, after checking the rest
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
FLOAT_RUNS = frozenset({"float32", "float64", "fp16", "fp16_weights", "weights_q9", "weights_q6_floor",
                        "k210_calibrated_on_input"})
# float32 reordering errors are ~1e-6 relative per layer; a changed rounding of one layer's
# weights moves a node's RMS by more than 1e-3 of it
STATS_RTOL = 1e-3
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


def trace_stats(trace) -> dict[str, list[float]]:
    """node -> [mean, RMS, max |v|] of its values (float64), for platform-free checks."""
    out = {}
    for name, v in trace.values.items():
        a = np.asarray(v, np.float64)
        if a.size:
            out[name] = [float(a.mean()), float(np.sqrt(np.mean(a * a))), float(np.abs(a).max())]
    return out


def stats_differ(got: list[float], want: list[float]) -> bool:
    """True when two [mean, RMS, max] triples differ by more than STATS_RTOL of the RMS/max."""
    mean, rms, peak = got
    return (abs(mean - want[0]) > STATS_RTOL * max(want[1], 1e-12)
            or abs(rms - want[1]) > STATS_RTOL * max(want[1], 1e-12)
            or abs(peak - want[2]) > STATS_RTOL * max(want[2], 1e-12))


def platform() -> str:
    """What float results depend on: the BLAS library, its kernel, and Numba's LLVM target."""
    import llvmlite.binding as llvm
    from threadpoolctl import threadpool_info

    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    own = [i for i in libs if "numpy" in str(i.get("filepath"))] or libs  # not scipy's, loaded or not
    blas = sorted({f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}" for i in own})
    return f"numpy {np.__version__}; {', '.join(blas) or 'no BLAS'}; llvm {llvm.get_host_cpu_name()}"


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


def node_hashes(data_dir: Path | None, stats: dict | None = None) -> dict[str, dict[str, str]]:
    """run -> node -> hash; fills ``stats`` (run -> node -> [mean, RMS, max]) for FLOAT_RUNS if given."""
    import qsim

    graph = qsim.load_model(A98)
    x = a98_input()
    result = {}
    for name, fn in configurations().items():
        trace = fn(graph, x)
        result[name] = trace_hashes(trace)
        if stats is not None and name in FLOAT_RUNS:
            stats[name] = trace_stats(trace)
    if data_dir is not None:
        from qsim.k210.kmodel_exec import KmodelExecutor

        ex = KmodelExecutor(data_dir / "kmodels" / "slim-320.kmodel")
        golden = np.load(data_dir / "kmodels" / "slim-320-golden.npz")
        run = ex.run(golden["inputs"][0], keep=True, count_overflow=True)
        result["kmodel_slim320"] = trace_hashes(run.to_trace(ex.model))
    return result


def load_store() -> dict:
    """{"exact": {run: {node: hash}}, "float": {platform: {run: {node: hash}}}, "stats": {run: ...}}."""
    return json.loads(STORE.read_text())


def check(hashes: dict, stats: dict, store: dict, here: str) -> dict[str, str]:
    """run -> what differs ('' when nothing): exact runs and known platforms by hash, else by stats."""
    out = {}
    for run, want in store["exact"].items():
        changed = [n for n in want if hashes.get(run, {}).get(n) != want[n]]
        out[run] = f"{len(changed)} node(s) changed bits, first {changed[0]!r}" if changed else ""
    known = store["float"].get(here)
    for run, want in store["stats"].items():
        if known is not None:
            changed = [n for n in known[run] if hashes.get(run, {}).get(n) != known[run][n]]
            out[run] = f"{len(changed)} node(s) changed bits on {here!r}, first {changed[0]!r}" if changed else ""
        else:
            changed = [n for n in want if n not in stats.get(run, {}) or stats_differ(stats[run][n], want[n])]
            out[run] = (f"{len(changed)} node(s) moved beyond rtol {STATS_RTOL} (platform {here!r} has no stored "
                        f"hashes), first {changed[0]!r}: {stats[run].get(changed[0])} vs {want[changed[0]]}"
                        if changed else "")
    return out


if __name__ == "__main__":
    from qsim.datasets import data_root

    stats: dict = {}
    hashes = node_hashes(data_root(required=True), stats)
    here = platform()
    if "--write" in sys.argv:
        store = {"exact": {r: h for r, h in hashes.items() if r not in FLOAT_RUNS},
                 "float": {here: {r: h for r, h in hashes.items() if r in FLOAT_RUNS}}, "stats": stats}
    elif "--add-platform" in sys.argv:
        store = load_store()
        bad = {r: why for r, why in check(hashes, stats, store, here).items() if why}
        if bad:
            sys.exit(f"not adding {here!r}: {bad}")
        store["float"][here] = {r: h for r, h in hashes.items() if r in FLOAT_RUNS}
    else:
        print(here, json.dumps({k: len(v) for k, v in hashes.items()}))
        sys.exit(0)
    STORE.write_text(json.dumps(store, indent=1, sort_keys=True) + "\n")
    print(f"wrote {STORE}: platforms {sorted(store['float'])}")
