"""`qsim` command line: one subcommand per API verb.

Each verb lives in ``qsim/cli/<verb>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``. `COMMANDS` is the one registry (a literal, so grep finds it).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from qsim.errors import QsimError

# verb -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("qsim.cli.demo", "run the bundled face detector at FP32 and Q formats on a bundled image"),
    "quantize": ("qsim.cli.quantize", "quantize a tensor (or bundled weights) to a Q format: error and overflow table"),
    "inspect": ("qsim.cli.inspect", "layers, shapes, params, MACs of a Keras model"),
    "run": ("qsim.cli.run", "bit-accurate inference of a model on an image"),
    "compare": ("qsim.cli.compare", "layer-by-layer error of a quantized run against float"),
    "profile": ("qsim.cli.profile", "per-layer ranges on calibration images and a suggested plan"),
    "sweep": ("qsim.cli.sweep", "face-detection AP per number format (the paper's Tables II-IV)"),
    "search": ("qsim.cli.search", "mixed-precision plan search: per-layer words under a task-metric budget"),
    "eval": ("qsim.cli.eval", "accuracy (or agreement with float) of any model per number format, on your data"),
    "k210": ("qsim.cli.k210", "Kendryte K210: run a .kmodel or quantize a Keras model for the KPU"),
    "export": ("qsim.cli.export", "quantized weights and biases as C headers, ap_fixed types and an hls4ml config"),
    "vectors": ("qsim.cli.vectors", "golden test vectors per layer: input, parameters, accumulators, output codes"),
    "tflite": ("qsim.cli.tflite", "run an int8/uint8 .tflite bit-exactly as TFLite's reference kernels, with what-ifs"),
}


# verbs that run Numba kernels (integer executors, KPU simulator)
KERNEL_VERBS = ("demo", "run", "compare", "profile", "sweep", "eval", "search", "k210")


def numba_cache_is_empty() -> bool:
    """True when no compiled kernel is cached yet (a fresh install): the first run compiles."""
    from pathlib import Path

    root = os.environ.get("NUMBA_CACHE_DIR")
    where = Path(root) if root else Path(__file__).resolve().parent.parent
    return next(where.glob("**/*.nbi"), None) is None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qsim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for verb, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        p.add_argument("--max-pixels", type=int, metavar="N",
                       help="largest picture read, in pixels (default $QSIM_MAX_PIXELS or 32000000; 0 = no limit)")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    if args.max_pixels is not None and args.max_pixels < 0:
        parser.error("--max-pixels must be >= 0 (0 = no limit)")
    saved_limit = os.environ.get("QSIM_MAX_PIXELS")
    try:
        if args.max_pixels is not None:
            # the environment, so that worker processes (sweep --workers) read the same limit
            os.environ["QSIM_MAX_PIXELS"] = str(args.max_pixels)
        if args.command in KERNEL_VERBS and numba_cache_is_empty():
            print("compiling kernels… (first use after install, about 10 s; cached afterwards)", file=sys.stderr)
        return int(module.run(args) or 0)
    except QsimError as exc:
        print(f"qsim {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C: one line and the shell's convention for SIGINT (128 + 2), no traceback
        print(f"qsim {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `qsim ... | head` closed the pipe: not an error. Point stdout at devnull so the
        # interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        # a write that fails after the up-front checks of qsim.cli.files (disk full, a folder
        # removed meanwhile): the file system's own one-line reason, not a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"qsim {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        if args.max_pixels is not None:  # main() may be called again in this process (tests, notebooks)
            if saved_limit is None:
                os.environ.pop("QSIM_MAX_PIXELS", None)
            else:
                os.environ["QSIM_MAX_PIXELS"] = saved_limit


if __name__ == "__main__":
    sys.exit(main())
