"""What stops each kernel: every MAC node's time beside the floors of its exact arithmetic.

    NUMBA_NUM_THREADS=1 QSIM_GEMM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
        PYTHONPATH=. python bench/floors.py [--size 500] [--format Q6.9] [--acc-bits 32] [--json F]

One thread, CPU time (the work itself, whatever else the machine runs; the ratio to
TensorFlow is measured in the same process, TF on one thread too). For each conv node of
the A98 (fixed plan, counting on), the fastest of three runs of:

* ``fixed``: the node's kernel in the fixed executor (sums, bias, accumulator, rounding,
  saturation, fused ReLU6, counting);
* ``sums floor``: the exact sums alone, as fast as this CPU does them: one BLAS GEMM of the
  node's shape (M pixels x K taps*channels x N outputs) in float64 (exact below 2**53), or in
  float32 where the plan's formats prove every partial sum below 2**24 (words of 8 bits or
  less); for depthwise (no GEMM) the memory floor: its input and output codes (8 bytes each)
  at the measured copy bandwidth;
* ``tail``: the fused tail alone on those sums (bias, accumulator width, requantization,
  ReLU6, counters): the integer work that float arithmetic does not have;
* ``float32``: the same node in qsim's float executor (fused ReLU), TF-like arithmetic.

Summed per kernel kind; ``fixed - (sums floor + tail)`` is what the kernel loses to its own
structure (im2col, passes over memory, conversions), the rest is arithmetic the exact result
needs. GEMM rates come from the same shapes, so the roofline is the machine's own.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import numpy as np
from common import fddb_images, machine_facts, model_path, node_times


def _best(fn, repeats: int = 5) -> float:
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        out.append(time.process_time() - t0)
    return min(out)


def copy_bandwidth() -> float:
    """Bytes per second moved (read + write) by a 128 MiB float64 copy, one thread."""
    a = np.ones(16 << 20)
    b = np.empty_like(a)
    return 2 * a.nbytes / _best(lambda: np.copyto(b, a), 5)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model")
    p.add_argument("--size", type=int, default=500)
    p.add_argument("--format", default="Q6.9")
    p.add_argument("--acc-bits", type=int, default=32)
    p.add_argument("--json")
    args = p.parse_args(argv)

    import qsim
    from qsim.cli.run import load_input
    from qsim.executors import fixed_exec, float_exec
    from qsim.graph.ops import Op
    from qsim.graph.shapes import count_macs, infer_shapes
    from qsim.kernels import conv
    from qsim.kernels.blas import gemm
    from qsim.kernels.eltwise import relu_spec
    from qsim.kernels.tail import fused_tail
    from qsim.plan import Plan

    facts = machine_facts()
    path = model_path(args.model)
    graph = qsim.load_model(path)
    x, _ = load_input(fddb_images(1)[0], (args.size, args.size))
    plan = Plan.uniform(args.format, acc_bits=args.acc_bits).validate(graph)
    xprog, fprog = fixed_exec.prepare(graph, plan), float_exec.prepare(graph)
    shapes = infer_shapes(graph, (args.size, args.size))

    import keras
    import tensorflow as tf

    kmodel = keras.models.load_model(path, compile=False)
    tf_fn = tf.function(lambda t: kmodel(t, training=False))
    x_tf = tf.constant(x)
    t_tf = _best(lambda: tf_fn(x_tf).numpy(), 7)
    t_fixed = _best(lambda: xprog.run(x, counters=True, keep_values=False), 5)
    t_float = _best(lambda: fprog.run(x, keep_values=False), 5)

    fixed_t, float_t = node_times(xprog, x), node_times(fprog, x)
    bandwidth = copy_bandwidth()
    rng = np.random.default_rng(0)
    rows, kinds = [], defaultdict(lambda: defaultdict(float))
    for node in xprog.graph:
        if node.op not in (Op.CONV2D, Op.DEPTHWISE_CONV2D):
            continue
        np_ = xprog.node_plans[node.name]
        in_fmt = xprog.node_plans[node.inputs[0]].act
        w = xprog.params[node.name].conv_kernel
        depthwise = node.op == Op.DEPTHWISE_CONV2D
        kh, kw, cin, k4 = w.shape
        hin, win = shapes[node.inputs[0]][:2]
        ho, wo, cout = shapes[node.name][:3]
        m, k = ho * wo, kh * kw * cin
        kind = f"{'depthwise' if depthwise else 'conv'} {kh}x{kw}"
        fused = node.attrs.get("fused_activation")
        relu = None if fused is None else relu_spec(np_.act, xprog.node_plans[fused].act,
                                                    xprog.graph[fused].attrs.get("max_value"), "half_up", "saturate")
        paths = conv.conv_paths(np.zeros((1, 1, 1, cin)), w, depthwise=depthwise, in_fmt=in_fmt,
                                strides=node.attrs.get("strides", (1, 1)), pads=(0, 0, 0, 0), per_step=False,
                                in_tail=True, bias_max=0)
        f32 = conv.ConvPath.FLOAT32_SUMS in paths
        if depthwise:  # no GEMM: what its codes cost to read and write
            floor = (hin * win * cin + m * cout) * 8 / bandwidth
            floor_what = "memory"
        else:
            dt = np.float32 if f32 else np.float64
            a = rng.integers(-512, 512, (m, k)).astype(dt)
            b = rng.integers(-512, 512, (k, cout)).astype(dt)
            floor = _best(partial(gemm, a, b))
            floor_what = "gemm f32" if f32 else "gemm f64"
        acc = rng.integers(-(1 << 20), 1 << 20, (m, cout)).astype(np.float64)
        bias = rng.integers(-1000, 1000, cout).astype(np.int64)
        tail = _best(partial(fused_tail, acc, bias, acc_bits=np_.acc_bits, acc_overflow=np_.overflow_at("acc"),
                             acc_frac=in_fmt.frac_bits + np_.weights.frac_bits, out_fmt=np_.act,
                             rounding=np_.rounding_at("requant"), overflow=np_.overflow_at("requant"),
                             relu=relu, counters={}))
        macs = count_macs(graph[node.name], shapes[node.name]) or 0
        row = {"node": node.name, "kind": kind, "m": m, "k": k, "n": cout, "gmac": macs / 1e9,
               "fixed_s": fixed_t[node.name], "floor_s": floor, "floor": floor_what, "tail_s": tail,
               "float32_s": float_t.get(node.name, 0.0)}
        rows.append(row)
        agg = kinds[kind]
        agg["nodes"] += 1
        for key in ("gmac", "fixed_s", "floor_s", "tail_s", "float32_s"):
            agg[key] += row[key]
        agg["floor"] = floor_what
    other_fixed = sum(t for n, t in fixed_t.items() if n not in {r["node"] for r in rows})
    other_float = sum(t for n, t in float_t.items() if n not in {r["node"] for r in rows})
    summary = {"model": str(path), "size": args.size, "plan": plan.describe(), "tf_s": t_tf, "fixed_s": t_fixed,
               "float32_s": t_float, "copy_gb_s": bandwidth / 1e9, "kinds": kinds, "nodes": rows,
               "other_fixed_s": other_fixed, "other_float32_s": other_float, "machine": facts}
    print(render(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    return 0


def render(s: dict) -> str:
    ms = 1e3
    lines = [f"{Path(s['model']).name} at {s['size']}x{s['size']}, plan {s['plan']}; one thread, CPU time; "
             f"copy bandwidth {s['copy_gb_s']:.1f} GB/s",
             f"whole run: TF float32 {s['tf_s'] * ms:.1f} ms, qsim float32 {s['float32_s'] * ms:.1f} ms "
             f"({s['float32_s'] / s['tf_s']:.2f}x), qsim fixed {s['fixed_s'] * ms:.1f} ms ({s['fixed_s'] / s['tf_s']:.2f}x)",
             "",
             "| kernel kind | nodes | GMAC | fixed ms | sums floor ms (what) | tail ms | fixed - floor - tail | "
             "float32 ms | fixed GMAC/s | floor GMAC/s |",
             "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for kind, a in sorted(s["kinds"].items(), key=lambda kv: -kv[1]["fixed_s"]):
        lines.append(f"| {kind} | {int(a['nodes'])} | {a['gmac']:.3f} | {a['fixed_s'] * ms:.1f} | "
                     f"{a['floor_s'] * ms:.1f} ({a['floor']}) | {a['tail_s'] * ms:.1f} | "
                     f"{(a['fixed_s'] - a['floor_s'] - a['tail_s']) * ms:.1f} | {a['float32_s'] * ms:.1f} | "
                     f"{a['gmac'] / a['fixed_s']:.1f} | {a['gmac'] / a['floor_s']:.1f} |")
    lines.append(f"| everything else (adds, ...) | | | {s['other_fixed_s'] * ms:.1f} | | | | "
                 f"{s['other_float32_s'] * ms:.1f} | | |")
    m = s["machine"]
    lines += ["", f"machine: {m['nproc']} x {m['cpu']}, load average {m['loadavg']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
