"""qsim: bit-accurate fixed-point (Q-format) and Kendryte K210 simulation of embedded CNNs.

qsim never imports TensorFlow: models are read with h5py, executed with NumPy/Numba.

The Python API has the CLI's verbs::

    import qsim
    graph = qsim.load_model("A98.h5")
    plan = qsim.Plan.uniform("Q6.9", acc_bits=32, rounding="half_up", overflow="saturate")
    trace = qsim.run(graph, x, plan=plan)                # the plan's mode picks the backend
    program = qsim.prepare(graph, plan)                  # once, then program.run(x) per input
    k210 = qsim.prepare(graph, executor="k210", calibration=images)   # explicit calibration
    comparison = qsim.compare(graph, images, plan=plan)  # per-layer error vs float
    profile = qsim.profile(graph, images)                                 # ranges, suggested plan
    table = qsim.sweep("A98.h5", "fddb", "fp32,fp16,q9,q8", mode="weights")
"""
from qsim.errors import QsimError
from qsim.fixed import Overflow, QFormat, Rounding
from qsim.model import load_model

__version__ = "0.1.0"

# Verbs whose modules are heavier to import (Numba kernels, analysis) load on first use.
_LAZY = {
    "run": ("qsim.runtime", "run"),
    "prepare": ("qsim.runtime", "prepare"),
    "Plan": ("qsim.plan", "Plan"),
    "compare": ("qsim.analysis", "compare_model"),
    "profile": ("qsim.analysis", "profile_model"),
    "sweep": ("qsim.facedet.sweep", "sweep"),
    "evaluate": ("qsim.analysis.evaluate", "evaluate"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        return getattr(importlib.import_module(module_name), attr)
    raise AttributeError(f"module 'qsim' has no attribute {name!r}")


__all__ = ["QsimError", "QFormat", "Rounding", "Overflow", "load_model", "__version__", *_LAZY]
