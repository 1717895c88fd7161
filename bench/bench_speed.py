"""Speed: qsim's fixed-point and float executors vs TensorFlow float32 on the same graph.

One process, one image, one model (default: A98 alpha 1.0 at 500x500, see `common`):

1. TensorFlow float32: the Keras model loaded from the same ``.h5``, called through a
   ``tf.function`` (graph mode, no Python per layer).
2. qsim float executor (float32).
3. qsim fixed executor, full-integer 16-bit plan (``--format``, default Q6.9, acc 32),
   with overflow counting (``counters=True``) and without (``counters=False``).

Each is warmed up (Numba compilation, TF tracing) then timed ``--repeats`` times; the
median is reported. Then three more fixed runs with every node's kernel wrapped in a timer
(wall or, ``--clock cpu``, process CPU time; the fastest of the three per node)
(the op table of one prepared program, wrapped) gives per-node seconds and
GMAC/s, summed per kernel kind (conv kxk / 1x1, depthwise kxk). The fixed outputs with and
without counting are checked bit-identical (counting must not change a result).

Threads: Numba's (``NUMBA_NUM_THREADS``) and the GEMM pool's (``QSIM_GEMM_THREADS``,
`qsim.kernels.blas`) default to the CPU count (at most 2); TensorFlow uses its defaults.

Prints Markdown (paste into RESULTS.md) and optionally writes JSON. Run it only on a quiet
machine (``uptime``), and say what the load was: it is printed with the figures.

    nice -n 10 python bench/bench_speed.py --repeats 5 --json bench/speed.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fddb_images, machine_facts, model_path, node_times


def _median_time(fn, repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def _kernel_kind(node) -> str:
    if node.op in ("conv2d", "depthwise_conv2d"):
        kh, kw = node.weights["kernel"].shape[:2]
        return f"{'conv' if node.op == 'conv2d' else 'depthwise'} {kh}x{kw}"
    return node.op


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="Keras .h5 (default: bundled A98 alpha 1.0, see bench/common.py)")
    p.add_argument("--image", help="image (default: the first FDDB image of the data folder's sample)")
    p.add_argument("--size", type=int, default=500, help="square input size (500)")
    p.add_argument("--format", default="Q6.9", help="16-bit format of the uniform plan (Q6.9)")
    p.add_argument("--acc-bits", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5, help="timed runs per engine; the median is kept (5)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="per-node timer: wall time, or CPU time of the process (use with "
                        "NUMBA_NUM_THREADS=1 QSIM_GEMM_THREADS=1 for load-independent work figures)")
    p.add_argument("--json", help="write the figures as JSON")
    args = p.parse_args(argv)

    import qsim
    from qsim.cli.run import load_input
    from qsim.executors import fixed_exec, float_exec
    from qsim.graph.shapes import count_macs, infer_shapes
    from qsim.kernels import blas
    from qsim.plan import Plan

    facts_before = machine_facts()
    path = model_path(args.model)
    image = Path(args.image) if args.image else fddb_images(1)[0]
    graph = qsim.load_model(path)
    x, _ = load_input(image, (args.size, args.size))
    plan = Plan.uniform(args.format, acc_bits=args.acc_bits).validate(graph)
    shapes = infer_shapes(graph, (args.size, args.size))
    macs = {n.name: count_macs(n, shapes[n.name]) or 0 for n in graph}
    total_gmac = sum(macs.values()) / 1e9

    import keras
    import tensorflow as tf

    kmodel = keras.models.load_model(path, compile=False)
    tf_fn = tf.function(lambda t: kmodel(t, training=False))
    x_tf = tf.constant(x)
    results = {}
    results["tf_float32"], _ = _median_time(lambda: tf_fn(x_tf).numpy(), args.repeats, warmup=2)
    fprog = float_exec.prepare(graph)  # programs prepared once: the runs time the kernels only
    xprog = fixed_exec.prepare(graph, plan)
    results["qsim_float32"], _ = _median_time(lambda: fprog.run(x, keep_values=False), args.repeats)
    results["qsim_fixed_counting"], _ = _median_time(
        lambda: xprog.run(x, counters=True, keep_values=False), args.repeats)
    results["qsim_fixed_no_counting"], _ = _median_time(
        lambda: xprog.run(x, counters=False, keep_values=False), args.repeats)
    from qsim.k210 import executor as k210_exec

    kprog = k210_exec.prepare(graph, calibration=x)  # calibrated on the input itself: the work, not the AP
    results["qsim_k210"], _ = _median_time(lambda: kprog.run(x, counters=True, keep_values=False), args.repeats)

    with_c = xprog.run(x, counters=True, keep_values=False)
    without_c = xprog.run(x, counters=False, keep_values=False)
    identical = all(np.array_equal(with_c.codes[o], without_c.codes[o]) for o in graph.outputs)
    tf_out = tf_fn(x_tf).numpy()
    fl_out = fprog.run(x, keep_values=False).output(0)
    float_vs_tf = float(np.max(np.abs(fl_out - tf_out)) / max(np.max(np.abs(tf_out)), 1e-30))

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    spent = node_times(xprog, x, clock)  # the fastest of three runs per node: less noise from other jobs
    kinds: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for node in graph:
        if node.name in spent:
            k = kinds[_kernel_kind(node)]
            k[0] += spent[node.name]
            k[1] += macs[node.name]
            k[2] += 1
    slowest = sorted(((spent[n], n) for n in spent), reverse=True)[:8]
    facts_after = machine_facts()

    t_tf = results["tf_float32"]
    summary = {
        "model": str(path), "image": str(image), "input": [1, args.size, args.size, 3],
        "gmac": total_gmac, "plan": plan.describe(), "repeats": args.repeats, "per_node_clock": args.clock,
        "median_s": results,
        "ratio_fixed_counting_vs_tf": results["qsim_fixed_counting"] / t_tf,
        "ratio_fixed_no_counting_vs_tf": results["qsim_fixed_no_counting"] / t_tf,
        "ratio_float_vs_tf": results["qsim_float32"] / t_tf,
        "ratio_k210_vs_fixed": results["qsim_k210"] / results["qsim_fixed_counting"],
        "counting_overhead": results["qsim_fixed_counting"] / results["qsim_fixed_no_counting"] - 1,
        "fixed_outputs_identical_with_and_without_counting": identical,
        "float_vs_tf_max_rel_err": float_vs_tf,
        "per_kind": {k: {"seconds": v[0], "gmac": v[1] / 1e9, "nodes": v[2],
                         "gmac_per_s": (v[1] / 1e9 / v[0]) if v[1] and v[0] else None}
                     for k, v in sorted(kinds.items(), key=lambda kv: -kv[1][0])},
        "slowest_nodes": [{"name": n, "seconds": s, "gmac_per_s": (macs[n] / 1e9 / s) if macs[n] else None}
                          for s, n in slowest],
        "machine_before": facts_before, "machine_after": facts_after, "gemm_threads": blas.get_threads(),
    }
    print(render(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def render(s: dict) -> str:
    from qsim.analysis.report import fmt_num, markdown_table

    m = s["median_s"]
    rows = [
        ["TensorFlow float32 (tf.function)", m["tf_float32"] * 1e3, 1.0, s["gmac"] / m["tf_float32"]],
        ["qsim float32", m["qsim_float32"] * 1e3, s["ratio_float_vs_tf"], s["gmac"] / m["qsim_float32"]],
        ["qsim fixed, counting overflow", m["qsim_fixed_counting"] * 1e3, s["ratio_fixed_counting_vs_tf"],
         s["gmac"] / m["qsim_fixed_counting"]],
        ["qsim fixed, no counting", m["qsim_fixed_no_counting"] * 1e3, s["ratio_fixed_no_counting_vs_tf"],
         s["gmac"] / m["qsim_fixed_no_counting"]],
    ]
    if "qsim_k210" in m:
        rows.append(["qsim k210 (uint8 KPU), counting", m["qsim_k210"] * 1e3, m["qsim_k210"] / m["tf_float32"],
                     s["gmac"] / m["qsim_k210"]])
    lines = [
        f"model {Path(s['model']).name}, input {s['input']}, {fmt_num(s['gmac'])} GMAC, plan {s['plan']}, "
        f"median of {s['repeats']}",
        "",
        markdown_table(["engine", "median ms", "x TF", "GMAC/s"], rows),
        "",
        f"overflow counting costs {fmt_num(100 * s['counting_overhead'], 3)}% "
        f"(outputs identical with and without: {s['fixed_outputs_identical_with_and_without_counting']}); "
        f"float executor vs TF: max |err| / max |out| = {fmt_num(s['float_vs_tf_max_rel_err'])}"
        + (f"; k210 / fixed = {fmt_num(s['ratio_k210_vs_fixed'], 3)}" if "ratio_k210_vs_fixed" in s else ""),
        "",
        f"per-node {s.get('per_node_clock', 'wall')} time, fastest of 3 runs:",
        "",
        markdown_table(["kernel kind", "nodes", "seconds", "GMAC", "GMAC/s"],
                       [[k, str(v["nodes"]), v["seconds"], v["gmac"], v["gmac_per_s"]] for k, v in s["per_kind"].items()]),
        "",
        markdown_table(["slowest node", "seconds", "GMAC/s"],
                       [[r["name"], r["seconds"], r["gmac_per_s"]] for r in s["slowest_nodes"]]),
        "",
        f"machine: {s['machine_before']['nproc']} x {s['machine_before']['cpu']}, load average before "
        f"{s['machine_before']['loadavg']}, after {s['machine_after']['loadavg']}; numba threads "
        f"{s['machine_before']['numba_threads']}, GEMM pool threads {s.get('gemm_threads')} "
        f"(OpenBLAS pinned to 1); TF {s['machine_after'].get('tensorflow')}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
