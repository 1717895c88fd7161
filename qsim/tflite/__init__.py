"""TFLite int8 / uint8 models, bit-exact with TFLite's reference kernels (BUILTIN_REF).

* `read_tflite` (reader.py): the .tflite flatbuffer, subgraph 0, without TensorFlow.
* `arith.py`: QuantizeMultiplier / MultiplyByQuantizedMultiplier (double or single rounding).
* `ops.py`: the vectorised integer kernels; `ref.py`: their slow Python-int twins.
* `_mac.py`: the compiled fused operators (MAC, ADD/MUL, pools, the requantization tail);
  `_numba.py`: compiled MBQM and SOFTMAX rows. Same bits as ops.py (tests/tflite).
* `executor.py`: `prepare(model, options) -> Program` (op table keyed by builtin code,
  one walker that records every tensor and the overflow counters), and the what-ifs.
"""
from qsim.tflite.reader import TfliteError, TfliteModel, read_tflite, read_tflite_bytes

__all__ = ["TfliteError", "TfliteModel", "read_tflite", "read_tflite_bytes"]
from qsim.tflite.executor import (
    OP_TABLE,
    Program,
    TfliteOptions,
    TfliteRun,
    prepare,
    quantize_input,
    whatif_report,
)

__all__ += ["OP_TABLE", "Program", "TfliteOptions", "TfliteRun", "prepare", "quantize_input", "whatif_report"]
