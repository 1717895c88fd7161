"""qsim: bit-accurate fixed-point (Q-format) and Kendryte K210 simulation of MobileNetV2-style CNNs.

qsim never imports TensorFlow: models are read with h5py, executed with NumPy/Numba.

The Python API has the CLI's verbs::

    import qsim
    graph = qsim.load_model("A98.h5")
    trace = qsim.run(graph, x, executor="fixed", plan=qsim.Plan.uniform("Q6.9", acc_bits=32,
                     rounding="half_up", overflow="saturate"))
    comparison = qsim.compare(graph, images, executor="fixed", plan=...)   # per-layer error vs float
    profile = qsim.profile(graph, images)                                 # ranges, suggested plan
    table = qsim.sweep("A98.h5", "fddb", "fp32,fp16,q9,q8", mode="weights")
"""
from qsim import executors
from qsim.errors import QsimError
from qsim.fixed import Overflow, QFormat, Rounding
from qsim.model import load_model

__version__ = "0.1.0"

# Verbs whose modules are heavier to import (Numba kernels, analysis) load on first use.
_LAZY = {
    "run": ("qsim.executors", "run"),
    "Plan": ("qsim.plan", "Plan"),
    "compare": ("qsim.analysis", "compare_model"),
    "profile": ("qsim.analysis", "profile_model"),
    "sweep": ("qsim.analysis", "sweep"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        return getattr(importlib.import_module(module_name), attr)
    raise AttributeError(f"module 'qsim' has no attribute {name!r}")


__all__ = ["QsimError", "QFormat", "Rounding", "Overflow", "load_model", "executors", "__version__", *_LAZY]
