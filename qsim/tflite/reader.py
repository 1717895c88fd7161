"""Read a ``.tflite`` flatbuffer into plain Python objects, without TensorFlow.

The schema accessors come from the ``tflite`` PyPI package (flatc-generated Python
bindings of TFLite's ``schema.fbs``, on top of the ``flatbuffers`` runtime); see
docs/tflite.md for why. Only subgraph 0 is read: its tensors (shape, dtype,
quantization, constant data), its operators (builtin code, inputs, outputs, options).

Flatbuffers are not self-checking: a truncated or corrupted file makes the generated
accessors raise ``struct.error``/``IndexError`` from deep inside, or return garbage.
Every accessor call here goes through `_Reader.get`, which turns any such failure
into a `TfliteError` naming the field path and the table offset, and every vector
length is checked against the file size before it is iterated. Garbage that still
parses is caught by the consistency checks (tensor/buffer indices in range, data
size equal to shape x itemsize, known tensor types).

>>> from qsim.tflite.reader import read_tflite_bytes
>>> read_tflite_bytes(b"TFL3")
Traceback (most recent call last):
...
qsim.tflite.reader.TfliteError: <bytes>: file too short (4 bytes) for a flatbuffer
"""
from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qsim.errors import ModelError


class TfliteError(ModelError):
    """A .tflite file that cannot be read or executed (names file, field/op and value)."""


# TensorType enum (schema.fbs) -> NumPy dtype; the types qsim can hold in a tensor
TENSOR_DTYPES: dict[int, np.dtype] = {
    0: np.dtype(np.float32),
    1: np.dtype(np.float16),
    2: np.dtype(np.int32),
    3: np.dtype(np.uint8),
    4: np.dtype(np.int64),
    6: np.dtype(np.bool_),
    7: np.dtype(np.int16),
    9: np.dtype(np.int8),
    10: np.dtype(np.float64),
    12: np.dtype(np.uint64),
    15: np.dtype(np.uint32),
    16: np.dtype(np.uint16),
}
_TYPE_NAMES = {
    0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64", 5: "STRING", 6: "BOOL",
    7: "INT16", 8: "COMPLEX64", 9: "INT8", 10: "FLOAT64", 11: "COMPLEX128", 12: "UINT64",
    13: "RESOURCE", 14: "VARIANT", 15: "UINT32", 16: "UINT16", 17: "INT4", 18: "BFLOAT16",
}


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of one tensor: real = scale * (q - zero_point).

    ``scale`` (float32, as stored) and ``zero_point`` (int64) have one entry per tensor
    or one per slice along ``axis`` (the schema's ``quantized_dimension``).
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    @property
    def lsb(self) -> float:
        """The value of one code step (`qsim.trace.CodeFormat`; per-tensor quantization)."""
        if self.per_channel:
            raise ValueError(f"a per-channel quantization ({self.scale.size} scales) has no single lsb")
        return float(self.scale[0])

    def __str__(self) -> str:
        if self.per_channel:
            return f"affine per-channel ({self.scale.size} scales, axis {self.axis})"
        return f"affine(scale {float(self.scale[0])!r}, zero_point {int(self.zero_point[0])})"

    def to_dict(self) -> dict:
        return {
            "scale": [float(s) for s in self.scale],
            "zero_point": [int(z) for z in self.zero_point],
            "quantized_dimension": self.axis,
        }


@dataclass
class Tensor:
    """One tensor of subgraph 0. ``data`` is set for constant tensors (weights, biases)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    type_name: str
    quant: Quantization | None
    buffer: int
    data: np.ndarray | None = None
    # shape_signature: -1 marks a dynamic dimension (None when the file has none)
    signature: tuple[int, ...] | None = None

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass
class Operator:
    """One operator of subgraph 0: its builtin code, tensor indices (-1 = omitted), options."""

    index: int
    code: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TfliteModel:
    """Subgraph 0 of a .tflite file."""

    path: str
    version: int
    description: str
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    n_subgraphs: int = 1
    # set on the copy `prepare(..., input_shapes=...)` makes: op outputs take inferred shapes
    infer_shapes: bool = False

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]


def read_tflite(path: str | os.PathLike) -> TfliteModel:
    """Read subgraph 0 of the .tflite file at `path` (raises `TfliteError`)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError as exc:
        raise TfliteError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return read_tflite_bytes(buf, name=path)


def read_tflite_bytes(buf: bytes, name: str = "<bytes>") -> TfliteModel:
    """Read subgraph 0 from the bytes of a .tflite file (raises `TfliteError`)."""
    import tflite as schema  # the generated bindings; imported lazily (188 modules)

    buf = bytes(buf)
    if len(buf) < 8:
        raise TfliteError(f"{name}: file too short ({len(buf)} bytes) for a flatbuffer")
    if buf[4:8] != b"TFL3":
        raise TfliteError(f"{name}: not a TFLite flatbuffer (identifier {buf[4:8]!r} at offset 4, want b'TFL3')")
    r = _Reader(buf, name)
    model = r.get("model", 0, lambda: schema.Model.GetRootAs(buf, 0))
    version = r.get("model.version", model, model.Version)
    description = r.get("model.description", model, model.Description) or b""
    n_sub = r.length("model.subgraphs", model, model.SubgraphsLength, 4)
    if n_sub < 1:
        raise TfliteError(f"{name}: model has no subgraph")
    codes = []
    for j in range(r.length("model.operator_codes", model, model.OperatorCodesLength, 4)):
        oc = r.get(f"model.operator_codes[{j}]", model, lambda j=j: model.OperatorCodes(j))
        dep = r.get(f"model.operator_codes[{j}].deprecated_builtin_code", oc, oc.DeprecatedBuiltinCode)
        new = r.get(f"model.operator_codes[{j}].builtin_code", oc, oc.BuiltinCode)
        # schema >= 2.4 keeps the code in builtin_code; older files only in the int8 field
        codes.append(max(int(dep), int(new)))
    buffers = _read_buffers(r, model)
    sg = r.get("subgraphs[0]", model, lambda: model.Subgraphs(0))
    n_t = r.length("subgraphs[0].tensors", sg, sg.TensorsLength, 4)
    tensors = [_read_tensor(r, sg, i, buffers) for i in range(n_t)]
    inputs = _index_vector(r, "subgraphs[0].inputs", sg, sg.InputsLength, sg.InputsAsNumpy, n_t)
    outputs = _index_vector(r, "subgraphs[0].outputs", sg, sg.OutputsLength, sg.OutputsAsNumpy, n_t)
    operators = []
    for k in range(r.length("subgraphs[0].operators", sg, sg.OperatorsLength, 4)):
        operators.append(_read_operator(r, sg, k, codes, n_t))
    desc = description.decode("utf-8", "replace") if isinstance(description, bytes) else str(description)
    return TfliteModel(name, int(version), desc, tensors, operators, inputs, outputs, n_subgraphs=n_sub)


class _Reader:
    """Calls generated accessors and turns every failure into a TfliteError."""

    def __init__(self, buf: bytes, name: str) -> None:
        self.buf = buf
        self.name = name

    def fail(self, path: str, where: Any, what: str) -> TfliteError:
        pos = getattr(getattr(where, "_tab", None), "Pos", where if isinstance(where, int) else None)
        at = f" (table at offset {pos})" if isinstance(pos, int) else ""
        return TfliteError(f"{self.name}: field {path}{at}: {what}")

    def get(self, path: str, where: Any, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except TfliteError:
            raise
        except Exception as exc:  # struct.error, IndexError, ValueError, UnicodeError, ...
            raise self.fail(path, where, f"corrupt or truncated file ({type(exc).__name__}: {exc})") from None

    def length(self, path: str, where: Any, fn: Callable[[], int], elem_bytes: int) -> int:
        n = int(self.get(path + " length", where, fn))
        if n < 0 or n * elem_bytes > len(self.buf):
            raise self.fail(path, where, f"vector length {n} does not fit in a {len(self.buf)}-byte file")
        return n

    def array(self, path: str, where: Any, length_fn, numpy_fn, dtype) -> np.ndarray:
        n = self.length(path, where, length_fn, np.dtype(dtype).itemsize)
        if n == 0:
            return np.zeros(0, dtype)
        arr = self.get(path, where, numpy_fn)
        if not isinstance(arr, np.ndarray) or arr.size != n:
            raise self.fail(path, where, f"vector of {n} elements is cut off by the end of the file")
        return np.array(arr, dtype=dtype)


def _read_buffers(r: _Reader, model) -> list[bytes | None]:
    out: list[bytes | None] = []
    for b in range(r.length("model.buffers", model, model.BuffersLength, 4)):
        path = f"model.buffers[{b}]"
        buf = r.get(path, model, lambda b=b: model.Buffers(b))
        n = r.length(path + ".data", buf, buf.DataLength, 1)
        if n:
            data = r.array(path + ".data", buf, buf.DataLength, buf.DataAsNumpy, np.uint8)
            out.append(data.tobytes())
            continue
        off = int(r.get(path + ".offset", buf, buf.Offset))
        size = int(r.get(path + ".size", buf, buf.Size))
        if off > 1 and size > 0:  # large models keep data after the flatbuffer (offset from file start)
            if off + size > len(r.buf):
                raise r.fail(path, buf, f"data at offset {off} size {size} beyond the end of the {len(r.buf)}-byte file")
            out.append(r.buf[off:off + size])
        else:
            out.append(None)
    return out


def _read_tensor(r: _Reader, sg, i: int, buffers: list[bytes | None]) -> Tensor:
    path = f"subgraphs[0].tensors[{i}]"
    t = r.get(path, sg, lambda: sg.Tensors(i))
    raw_name = r.get(path + ".name", t, t.Name) or b""
    name = raw_name.decode("utf-8", "replace") if isinstance(raw_name, bytes) else str(raw_name)
    shape_arr = r.array(path + ".shape", t, t.ShapeLength, t.ShapeAsNumpy, np.int64)
    if np.any(shape_arr < 0) and shape_arr.size:
        raise r.fail(path + ".shape", t, f"tensor {i} '{name}': negative dimension in {shape_arr.tolist()}")
    shape = tuple(int(s) for s in shape_arr)
    if int(np.prod(shape_arr, dtype=np.float64)) > 2**31:
        raise r.fail(path + ".shape", t, f"tensor {i} '{name}': shape {list(shape)} has more than 2^31 elements")
    ttype = int(r.get(path + ".type", t, t.Type))
    tname = _TYPE_NAMES.get(ttype, f"type#{ttype}")
    dtype = TENSOR_DTYPES.get(ttype)
    bidx = int(r.get(path + ".buffer", t, t.Buffer))
    if bidx >= len(buffers):
        raise r.fail(path + ".buffer", t, f"tensor {i} '{name}': buffer index {bidx} out of range ({len(buffers)} buffers)")
    data = None
    raw = buffers[bidx]
    if raw is not None:
        if dtype is None:
            raise r.fail(path + ".type", t, f"tensor {i} '{name}': constant of unsupported type {tname}")
        want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if len(raw) != want:
            raise r.fail(path + ".buffer", t,
                         f"tensor {i} '{name}': buffer {bidx} has {len(raw)} bytes, shape {list(shape)} x {tname} needs {want}")
        data = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    quant = _read_quant(r, t, path + ".quantization", i, name, shape)
    sig = r.array(path + ".shape_signature", t, t.ShapeSignatureLength, t.ShapeSignatureAsNumpy, np.int64)
    signature = tuple(int(v) for v in sig) if sig.size else None
    return Tensor(i, name, shape, dtype if dtype is not None else np.dtype(np.void), tname, quant, bidx, data,
                  signature)


def _read_quant(r: _Reader, t, path: str, i: int, name: str, shape) -> Quantization | None:
    q = r.get(path, t, t.Quantization)
    if q is None:
        return None
    scale = r.array(path + ".scale", q, q.ScaleLength, q.ScaleAsNumpy, np.float32)
    zp = r.array(path + ".zero_point", q, q.ZeroPointLength, q.ZeroPointAsNumpy, np.int64)
    if scale.size == 0:
        return None  # min/max only (a float tensor), no affine parameters
    axis = int(r.get(path + ".quantized_dimension", q, q.QuantizedDimension))
    if zp.size == 0:
        zp = np.zeros(scale.size, np.int64)
    if zp.size != scale.size:
        raise r.fail(path, q, f"tensor {i} '{name}': {scale.size} scales but {zp.size} zero points")
    if scale.size > 1 and not (0 <= axis < len(shape) and shape[axis] == scale.size):
        raise r.fail(path + ".quantized_dimension", q,
                     f"tensor {i} '{name}': {scale.size} scales along axis {axis} of shape {list(shape)}")
    if not np.all(np.isfinite(scale)) or np.any(scale < 0):
        raise r.fail(path + ".scale", q, f"tensor {i} '{name}': invalid scale {scale.tolist()[:4]}")
    return Quantization(scale, zp, axis)


def _index_vector(r: _Reader, path, where, length_fn, numpy_fn, n_tensors: int, allow_omitted=False):
    idx = r.array(path, where, length_fn, numpy_fn, np.int64)
    lo = -1 if allow_omitted else 0
    bad = [int(v) for v in idx if not lo <= v < n_tensors]
    if bad:
        raise r.fail(path, where, f"tensor index {bad[0]} out of range ({n_tensors} tensors)")
    return tuple(int(v) for v in idx)


def _read_operator(r: _Reader, sg, k: int, codes: list[int], n_t: int) -> Operator:
    from tflite.utils import BUILTIN_OPCODE2NAME

    path = f"subgraphs[0].operators[{k}]"
    op = r.get(path, sg, lambda: sg.Operators(k))
    ci = int(r.get(path + ".opcode_index", op, op.OpcodeIndex))
    if not 0 <= ci < len(codes):
        raise r.fail(path + ".opcode_index", op, f"operator {k}: opcode index {ci} out of range ({len(codes)} codes)")
    code = codes[ci]
    name = BUILTIN_OPCODE2NAME.get(code, f"op#{code}")
    ins = _index_vector(r, path + ".inputs", op, op.InputsLength, op.InputsAsNumpy, n_t, allow_omitted=True)
    outs = _index_vector(r, path + ".outputs", op, op.OutputsLength, op.OutputsAsNumpy, n_t)
    options = _read_options(r, op, path + ".builtin_options")
    return Operator(k, code, name, ins, outs, options)


def _read_options(r: _Reader, op, path: str) -> dict[str, Any]:
    """The builtin options table as a dict of snake_case field -> value (vectors as lists)."""
    import tflite as schema

    otype = int(r.get(path + "_type", op, op.BuiltinOptionsType))
    if otype == 0:
        return {}
    cls_name = _OPTION_CLASS_NAMES().get(otype)
    if cls_name is None:
        return {}
    table = r.get(path, op, op.BuiltinOptions)
    if table is None:
        return {}
    cls = getattr(schema, cls_name)
    obj = cls()
    r.get(path, op, lambda: obj.Init(table.Bytes, table.Pos))
    out: dict[str, Any] = {}
    for meth in _option_fields(cls):
        key = re.sub(r"(?<!^)(?=[A-Z])", "_", meth).lower()
        if hasattr(cls, meth + "Length"):
            out[key] = r.array(f"{path}.{key}", obj, getattr(obj, meth + "Length"),
                               getattr(obj, meth + "AsNumpy"), np.int64).tolist()
        else:
            out[key] = r.get(f"{path}.{key}", obj, getattr(obj, meth))
    return out


_OPT_NAMES: dict[int, str] = {}
_FIELD_CACHE: dict[type, list[str]] = {}


def _OPTION_CLASS_NAMES() -> dict[int, str]:
    if not _OPT_NAMES:
        from tflite.BuiltinOptions import BuiltinOptions

        for k, v in vars(BuiltinOptions).items():
            if not k.startswith("_") and isinstance(v, int):
                _OPT_NAMES[v] = k
    return _OPT_NAMES


def _option_fields(cls) -> list[str]:
    """Scalar and vector field accessors of a generated options class."""
    if cls not in _FIELD_CACHE:
        names = []
        for meth, fn in vars(cls).items():
            if meth.startswith("_") or meth == "Init" or not inspect.isfunction(fn):
                continue
            if meth.startswith("GetRootAs") or meth.endswith(("BufferHasIdentifier", "Length", "IsNone", "AsNumpy")):
                continue
            names.append(meth)
        _FIELD_CACHE[cls] = names
    return _FIELD_CACHE[cls]
