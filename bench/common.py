"""Shared by the benchmarks: which model, which images, which machine.

* `model_path`: ``--model`` if given, else the bundled trained detector
  ``qsim/assets/a98_alpha1.0.h5``, else the same architecture built by
  ``reference.models.build_model(head="A", alpha=1.0, frozen=98)`` with the ImageNet
  backbone and a seeded random head, saved once under ``.qsim-cache/`` (speed and
  overflow of the backbone do not depend on the head's training).
* `machine_facts`: nproc, CPU model, load averages, library versions, thread settings
  (recorded next to every figure in RESULTS.md).
"""
from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ASSET = REPO / "qsim" / "assets" / "a98_alpha1.0.h5"
CACHE = REPO / ".qsim-cache"


def model_path(arg: str | None) -> Path:
    """The model to benchmark (see the module docstring); builds the fallback once."""
    if arg:
        return Path(arg)
    if ASSET.is_file():
        return ASSET
    CACHE.mkdir(exist_ok=True)
    path = CACHE / "a98_alpha1.0_imagenet_randomhead.h5"
    if not path.is_file():
        from reference.models import build_model

        print(f"building {path.name} (A98 alpha 1.0, ImageNet backbone, random head)", file=sys.stderr)
        build_model(head="A", alpha=1.0, frozen=98, weights="imagenet", seed=0).save(path)
    return path


def fddb_images(n: int, seed: int = 0) -> list[Path]:
    """``n`` FDDB images of the data folder (deterministic sample)."""
    from qsim.datasets import data_path
    from qsim.images import list_images

    return list_images(data_path("fddb", "originalPics"), n=n, seed=seed)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> dict:
    import numba
    import numpy

    facts = {
        "nproc": os.cpu_count(), "cpu": cpu_model(), "loadavg": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(), "numpy": numpy.__version__, "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
    }
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        facts["tensorflow"] = tf.__version__
        facts["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
    return facts


def print_and_save(result: dict, json_path: str | None) -> None:
    """Print a benchmark's result as JSON, and write it to ``json_path`` when given."""
    import json

    print(json.dumps(result, indent=2))
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(result, fh, indent=2)


def node_times(program, x, clock=time.process_time) -> dict[str, float]:
    """Seconds in each node's kernel, fastest of three runs (a program's op table, wrapped)."""
    spent: dict[str, float] = {}
    table = dict(program.ops)

    def timed(fn):
        def wrapper(prog, node, *args, **kwargs):
            t0 = clock()
            out = fn(prog, node, *args, **kwargs)
            dt = clock() - t0
            spent[node.name] = min(spent.get(node.name, dt), dt)
            return out
        return wrapper

    program.ops = {op: timed(fn) for op, fn in table.items()}
    try:
        for _ in range(3):
            program.run(x, counters=True, keep_values=False)
    finally:
        program.ops = table
    return spent
