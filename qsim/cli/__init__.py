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
    "k210": ("qsim.cli.k210", "Kendryte K210: run a .kmodel or quantize a Keras model for the KPU"),
    "tflite": ("qsim.cli.tflite", "run an int8/uint8 .tflite bit-exactly as TFLite's reference kernels, with what-ifs"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qsim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for verb, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
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
    try:
        return int(module.run(args) or 0)
    except QsimError as exc:
        print(f"qsim {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `qsim ... | head` closed the pipe: not an error. Point stdout at devnull so the
        # interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
