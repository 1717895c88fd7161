"""``qsim k210 MODEL.h5``: a Keras model on the K210: memory plan, FPS estimate, quantization, simulation.

Steps: `qsim.load_model` (BN folded; ``symmetric_pads=True`` unless ``--keep-pads``: the
K210's own "full padding", as the paper does), the memory plan (`qsim.k210.memory`), the
latency model (`qsim.k210.perf`), quantization on the calibration pictures of ``--calib``
(required; `quantize_graph`, nncase 1.x recipe) and, with ``--image``, the bit-exact KPU simulation compared with the
float executor (cosine and max |error| per output). Pictures are resized (half-pixel
bilinear) and scaled like MobileNetV2 expects, ``x / 127.5 - 1``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qsim.errors import InputError

MIB = 1024 * 1024


def _size(text: str | None, graph) -> tuple[int, int]:
    if text:
        try:
            h, w = (int(v) for v in text.lower().split("x"))
        except ValueError as exc:
            raise InputError(f"--size must be HxW, got {text!r}") from exc
        return h, w
    shape = tuple(graph.inputs[0].attrs["shape"])
    if len(shape) != 3:  # the KPU convolves images; feature models have nothing for it to run
        raise InputError(f"{graph.source}: input {graph.inputs[0].name!r} has shape {shape}, not an image "
                         "(H, W, C): the K210 path takes image models")
    h, w, _ = shape
    return (int(h), int(w)) if h and w else (224, 224)


def _picture(path, hw) -> np.ndarray:
    from qsim.images import load_image, mobilenet_preprocess, resize_bilinear

    return mobilenet_preprocess(resize_bilinear(load_image(path), hw)).astype(np.float32)


def run_keras_cli(args, switches) -> int:
    from qsim.executors.float_exec import run as float_run
    from qsim.images import list_images
    from qsim.k210.executor import prepare as k210_prepare
    from qsim.k210.memory import plan_memory
    from qsim.k210.perf import estimate
    from qsim.k210.quantize import quantize_graph
    from qsim.model import load_model

    if args.input:
        raise InputError("--input feeds a kmodel's raw input memory; for a Keras model use --image")
    probe = load_model(args.model)
    hw = _size(args.size, probe)
    graph = load_model(args.model, input_hw=hw, symmetric_pads=not getattr(args, "keep_pads", False))
    plan = plan_memory(graph, hw)
    est = estimate(graph, hw)
    report = {"qsim_k210": 1, "kind": "keras", "file": str(args.model), "input_hw": list(hw),
              "memory": plan.to_dict(), "perf": est.to_dict(), "notes": list(graph.notes)}
    print(f"{args.model}: {len(graph)} nodes at {hw[0]}x{hw[1]}")
    print(f"  KPU RAM: {plan.verdict()}")
    if not args.quiet:
        print(plan.to_markdown())
    print(f"  latency model: {est.macs / 1e6:.1f} MMAC, KPU {est.kpu_seconds * 1e3:.1f} ms + CPU "
          f"{est.cpu_seconds * 1e3:.1f} ms -> {est.fps:.1f} FPS (400 MHz; see qsim.k210.perf)")
    calib_dir = args.calib
    if calib_dir is None:  # explicit: the same command gives the same numbers on every machine
        raise InputError("a Keras model on the K210 needs --calib DIR (calibration pictures for the quantizer)")
    paths = list_images(calib_dir, n=args.calib_count)
    if not paths:
        raise InputError(f"no calibration pictures in {calib_dir}")
    cal = np.stack([_picture(p, hw) for p in paths])
    prog = quantize_graph(graph, cal, hw)
    n_kpu = sum(s.kind in ("kpu", "add_kpu") for s in prog.steps)
    n_cpu = sum(s.kind == "cpu" for s in prog.steps)
    print(f"  quantized (nncase 1.x recipe) on {len(paths)} pictures from {calib_dir}: {n_kpu} KPU layers, "
          f"{n_cpu} CPU ops" + (f"; {'; '.join(prog.notes)}" if prog.notes else ""))
    report["quantization"] = {"calibration_images": [str(p) for p in paths], "kpu_layers": n_kpu, "cpu_ops": n_cpu,
                              "notes": prog.notes}
    if args.image:
        x = _picture(args.image, hw)[None]
        tk = k210_prepare(graph, calibration=prog, switches=switches).run(x)
        tf_ = float_run(graph, x)
        outs = []
        for name in graph.outputs:
            a = tk.outputs[name].astype(np.float64).ravel()
            b = tf_.outputs[name].astype(np.float64).ravel()
            cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))
            outs.append({"name": name, "shape": list(tk.outputs[name].shape), "cosine_vs_float": cos,
                         "max_abs_error": float(np.max(np.abs(a - b)))})
            print(f"  output {name} {tuple(tk.outputs[name].shape)}: cosine vs float {cos:.4f}, "
                  f"max |err| {np.max(np.abs(a - b)):.4g}")
        alu = sum(c[s].events for c in tk.counters.values() for s in ("acc", "bn") if s in c)
        print(f"  36-bit ALU overflow events: {alu}")
        report["run"] = {"image": str(args.image), "outputs": outs, "alu_overflow_events": int(alu)}
        if args.save_outputs:
            np.savez(args.save_outputs, **{n: tk.outputs[n] for n in graph.outputs})
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0
