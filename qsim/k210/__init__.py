"""Kendryte K210: bit-exact KPU layer model, kmodel v4 reader/executor, memory plan, FPS model.

Modules: `fields` (register words), `layout` (KPU RAM layout), `kpu` (one KPU layer, Numba),
`ref` (slow Python-int references), `kmodel` (v4 reader), `cpu_ops` + `kmodel_exec` (run a
kmodel), `quantize` (qsim Graph -> KPU layers, nncase 1.x recipe), `memory` (planner),
`lowering` (Graph -> KPU/CPU steps), `perf` (latency model), `executor` (the ``"k210"``
backend for qsim Graphs), `calibration` (explicit calibration data); slim-320's decoding is
`qsim.facedet.ultraface`. ``qsim k210 MODEL.h5`` is `qsim.cli.k210_keras`.
"""
from qsim.k210.kmodel import Kmodel, read_kmodel
from qsim.k210.kmodel_exec import KmodelExecutor, KmodelRun, run_kmodel
from qsim.k210.kpu import KpuLayer, KpuSwitches
from qsim.k210.memory import MemoryPlan, plan_memory
from qsim.k210.perf import PerfEstimate, estimate
from qsim.k210.quantize import KpuProgram, quantize_graph

__all__ = ["Kmodel", "read_kmodel", "KmodelExecutor", "KmodelRun", "run_kmodel", "KpuLayer", "KpuSwitches",
           "MemoryPlan", "plan_memory", "PerfEstimate", "estimate", "KpuProgram", "quantize_graph"]
