"""Kendryte K210: bit-exact KPU layer model, kmodel v4 reader/executor, memory plan, FPS model.

Modules: `fields` (register words), `layout` (KPU RAM layout), `kpu` (one KPU layer, Numba),
`ref` (slow Python-int references), `kmodel` (v4 reader), `cpu_ops` + `kmodel_exec` (run a
kmodel), `quantize` (qsim Graph -> KPU layers, nncase 1.x recipe), `memory` (planner),
`perf` (latency model), `executor` (the ``"k210"`` executor for qsim Graphs).
"""
from qsim.k210.kmodel import Kmodel, read_kmodel
from qsim.k210.kmodel_exec import KmodelExecutor, KmodelRun, run_kmodel
from qsim.k210.kpu import KpuLayer, KpuSwitches

__all__ = ["Kmodel", "read_kmodel", "KmodelExecutor", "KmodelRun", "run_kmodel", "KpuLayer", "KpuSwitches"]
