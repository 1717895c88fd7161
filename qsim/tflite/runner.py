"""A TFLite model as a float-in / float-out network function, at any input size.

For the face detector's image pyramid (`qsim.facedet.detector.run_pyramid`) and the
sweep's ``tflite:MODEL.tflite`` format: float NHWC input (MobileNet-preprocessed) ->
quantized with the input tensor's parameters -> the reference-kernel run (one prepared
`Program` per input shape, as TFLite's ``resize_tensor_input``) -> the first output
dequantized to float32.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from qsim.errors import InputError
from qsim.tflite.executor import TfliteOptions, prepare, quantize_input
from qsim.tflite.ops import dequantize
from qsim.tflite.reader import TfliteModel, read_tflite


def file_hash(path) -> str:
    """sha256 of the file (cache keys)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def constant_bytes(path) -> tuple[int, int]:
    """(parameters, bytes) of the constant tensors of subgraph 0 (weights, biases)."""
    m = read_tflite(path)
    consts = [t for t in m.tensors if t.data is not None and t.dtype.kind in "iuf"]
    return sum(int(t.data.size) for t in consts), sum(int(t.data.nbytes) for t in consts)


class TfliteFunction:
    """Callable ``f(x float NHWC) -> float32 output 0`` running a .tflite file bit-exactly."""

    def __init__(self, path_or_model, options: TfliteOptions | None = None) -> None:
        """`path_or_model`: a .tflite path, or an already read `TfliteModel`."""
        self.model = path_or_model if isinstance(path_or_model, TfliteModel) else read_tflite(path_or_model)
        self.path = self.model.path
        self.options = options or TfliteOptions()
        self.t_in = self.model.tensors[self.model.inputs[0]]
        self._programs: dict[tuple, object] = {}

    def program(self, shape: tuple):
        """The prepared program for an input of `shape` (only -1 dimensions of the input's
        shape_signature may differ: a converter folds padding for the size it was given, so
        a fixed-size model run at another size is not the network it was converted from)."""
        shape = tuple(int(d) for d in shape)
        prog = self._programs.get(shape)
        if prog is None:
            same = shape == tuple(self.t_in.shape)
            sig = self.t_in.signature or self.t_in.shape
            if not same and (len(shape) != len(sig) or
                             any(a != b and s_ != -1 for a, b, s_ in zip(shape, self.t_in.shape, sig))):
                raise InputError(f"{self.path}: input {list(self.t_in.shape)} (shape_signature {list(sig)}) cannot "
                                 f"run at {list(shape)}; convert the model with a dynamic H x W "
                                 "(keras.Input((None, None, 3), batch_size=1)) to run an image pyramid")
            prog = prepare(self.model, self.options, input_shapes=None if same else {self.t_in.index: shape})
            if len(self._programs) > 16:  # a pyramid has a handful of shapes per image
                self._programs.clear()
            self._programs[shape] = prog
        return prog

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        prog = self.program(x.shape)
        run = prog.run(quantize_input(self.t_in, x))
        out_idx = prog.model.outputs[0]
        t = prog.model.tensors[out_idx]
        v = run.tensors[out_idx]
        if t.quant is not None and t.dtype.kind in "iu":
            return dequantize(v, float(t.quant.scale[0]), int(t.quant.zero_point[0]))
        return np.asarray(v, np.float32)
