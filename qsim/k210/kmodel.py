"""Reader for Kendryte kmodel v4 files (ncc 0.2 / nncase v0.2, the K210 SDK's ``nncase/v0`` runtime).

Container (little-endian; ``k210-kpu.md`` §6 and §7.2):

* header: 10 x uint32 = identifier ``"KMDL"``, version (4), flags, target (0 CPU, 1 K210),
  constants size, main-memory size, node count, input count, output count, reserved;
* per input a `MemoryRange` (memory type 0 const / 1 main / 2 KPU RAM, datatype 0 float32 /
  1 uint8, start, size), then per input an int32[4] NCHW shape, then per output a
  `MemoryRange`;
* the constants blob; per node an (opcode, body_size) pair of uint32; then the bodies, each
  padded to a multiple of 8 bytes *except the last* (ncc seeks instead of writing padding).

Op bodies are decoded into small dataclasses (`OPCODES`: opcode -> name, body class). A KPU
conv body holds its 12 register words, then BN entries, the activation table and the weights,
each preceded by a skip whose length the compiler stored in ``bwsx_base_addr``,
``active_addr`` and ``para_start_addr``.

Every defect (truncated file, wrong magic/version/target, unknown opcode, a body that runs
past its end) is a `KmodelError` naming the file and, for nodes, the node index and opcode.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from qsim.errors import KmodelError
from qsim.k210.fields import ActTable, BatchNorm, LayerArgs, decode_act, decode_bn, decode_layer

MAGIC = b"LDMK"  # the C multi-char constant 'KMDL' stored little-endian
VERSION = 4
TARGETS = {0: "cpu", 1: "k210"}
MEMORY_TYPES = {0: "const", 1: "main", 2: "kpu"}
DATATYPES = {0: np.dtype("<f4"), 1: np.dtype("u1")}
BINARY_OPS = ("add", "sub", "mul", "div", "min", "max")
REDUCE_OPS = ("mean", "min", "max", "sum")
UNARY_OPS = ("abs", "ceil", "cos", "exp", "floor", "log", "neg", "rsqrt", "sin", "square")


@dataclass(frozen=True)
class MemoryRange:
    memory_type: int
    datatype: int
    start: int
    size: int

    @property
    def dtype(self) -> np.dtype:
        return DATATYPES[self.datatype]

    @property
    def count(self) -> int:
        return self.size // self.dtype.itemsize

    def __str__(self) -> str:
        return (f"{MEMORY_TYPES.get(self.memory_type, self.memory_type)}"
                f"[{self.start}:{self.start + self.size}] {self.dtype.name}")


class _Reader:
    """Bounded little-endian reader; errors name the file and node."""

    def __init__(self, buf: bytes, pos: int, end: int, where: str):
        self.buf, self.pos, self.end, self.where = buf, pos, end, where

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise KmodelError(f"{self.where}: truncated (needs {n} bytes at offset {self.pos}, "
                              f"{max(self.end - self.pos, 0)} left)")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def i32(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def f32(self) -> float:
        return float(np.frombuffer(self.take(4), "<f4")[0])

    def u8(self) -> int:
        return self.take(1)[0]

    def shape(self) -> tuple[int, int, int, int]:
        return struct.unpack("<4i", self.take(16))

    def array(self, dtype: str, count: int) -> np.ndarray:
        dt = np.dtype(dtype)
        return np.frombuffer(self.take(dt.itemsize * count), dt).copy()

    def mrange(self) -> MemoryRange:
        mtype, dtype, start, size = struct.unpack("<4I", self.take(16))
        if mtype not in MEMORY_TYPES:
            raise KmodelError(f"{self.where}: unknown memory type {mtype} (0 const, 1 main, 2 KPU)")
        if dtype not in DATATYPES:
            raise KmodelError(f"{self.where}: unknown datatype {dtype} (0 float32, 1 uint8)")
        return MemoryRange(mtype, dtype, start, size)


# ---------------------------------------------------------------- op bodies
@dataclass
class Binary:
    input_a: MemoryRange
    input_b: MemoryRange
    output: MemoryRange
    op: str
    in_a_shape: tuple
    in_b_shape: tuple
    out_shape: tuple
    act_min: float
    act_max: float


@dataclass
class QuantizedBinary:
    input_a: MemoryRange
    input_b: MemoryRange
    output: MemoryRange
    op: str
    in_a_shape: tuple
    in_b_shape: tuple
    out_shape: tuple
    a_offset: int
    a_mul: int
    a_shift: int
    b_offset: int
    b_mul: int
    b_shift: int
    out_offset: int
    out_mul: int
    out_shift: int


@dataclass
class Concat:
    output: MemoryRange
    inner_size: int
    outer_size: int
    inputs: list
    dims: list


@dataclass
class QuantParamOp:  # quantize / dequantize
    input: MemoryRange
    output: MemoryRange
    zero_point: int
    scale: float  # the reciprocal of the quantization step (ncc convention)


@dataclass
class Pad:
    input: MemoryRange
    output: MemoryRange
    in_shape: tuple
    paddings: tuple  # 4 x (before, after)
    pad_datatype: int
    pad_storage: bytes


@dataclass
class Reduce:
    input: MemoryRange
    output: MemoryRange
    op: str
    in_shape: tuple
    out_shape: tuple
    init_value: float


@dataclass
class MemoryCopy:
    input: MemoryRange
    output: MemoryRange


@dataclass
class ResizeImage:
    input: MemoryRange
    output: MemoryRange
    in_shape: tuple
    out_h: int
    out_w: int
    mode: str
    align_corners: bool


@dataclass
class Softmax:
    input: MemoryRange
    output: MemoryRange
    inner_size: int
    outer_size: int
    beta: float


@dataclass
class Transpose:
    input: MemoryRange
    output: MemoryRange
    in_shape: tuple
    perm: tuple


@dataclass
class Unary:
    input: MemoryRange
    output: MemoryRange
    op: str


@dataclass
class KpuUpload:
    input: MemoryRange
    output: MemoryRange
    in_shape: tuple


@dataclass
class KpuConv2d:
    main_mem_output: MemoryRange
    batches: int
    args: LayerArgs
    bn: BatchNorm
    act: ActTable
    weights: np.ndarray  # uint8, flat


@dataclass
class Unsupported:
    """A body of a known v4 opcode that qsim's executor does not run (kept raw)."""

    raw: bytes


def _enum(r: _Reader, names: tuple[str, ...], what: str) -> str:
    v = r.u32()
    if v >= len(names):
        raise KmodelError(f"{r.where}: unknown {what} {v} (known: {', '.join(names)})")
    return names[v]


def _binary(r):
    a, b, o = r.mrange(), r.mrange(), r.mrange()
    op = _enum(r, BINARY_OPS, "binary op")
    sa, sb, so = r.shape(), r.shape(), r.shape()
    return Binary(a, b, o, op, sa, sb, so, r.f32(), r.f32())


def _quantized_binary(r):
    a, b, o = r.mrange(), r.mrange(), r.mrange()
    op = _enum(r, BINARY_OPS, "binary op")
    sa, sb, so = r.shape(), r.shape(), r.shape()
    v = [r.i32() for _ in range(9)]
    # field order in the file: a (offset, mul, shift), b (...), output (offset, mul, shift)
    return QuantizedBinary(a, b, o, op, sa, sb, so, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8])


def _concat(r):
    out = r.mrange()
    inner, outer, n = r.u32(), r.u32(), r.u32()
    if n > 4096:
        raise KmodelError(f"{r.where}: implausible concat input count {n}")
    inputs = [r.mrange() for _ in range(n)]
    dims = [r.i32() for _ in range(n)]
    return Concat(out, inner, outer, inputs, dims)


def _quant(r):
    return QuantParamOp(r.mrange(), r.mrange(), r.i32(), r.f32())


def _pad(r):
    i, o, s = r.mrange(), r.mrange(), r.shape()
    pads = tuple((r.i32(), r.i32()) for _ in range(4))
    dtype = r.u32()
    return Pad(i, o, s, pads, dtype, r.take(4))


def _reduce(r):
    i, o = r.mrange(), r.mrange()
    op = _enum(r, REDUCE_OPS, "reduce op")
    return Reduce(i, o, op, r.shape(), r.shape(), r.f32())


def _resize(r):
    i, o, s = r.mrange(), r.mrange(), r.shape()
    oh, ow = r.i32(), r.i32()
    mode = _enum(r, ("bilinear", "nearest"), "resize mode")
    return ResizeImage(i, o, s, oh, ow, mode, bool(r.u8()))


def _softmax(r):
    return Softmax(r.mrange(), r.mrange(), r.i32(), r.i32(), r.f32())


def _transpose(r):
    return Transpose(r.mrange(), r.mrange(), r.shape(), r.shape())


def _unary(r):
    i, o = r.mrange(), r.mrange()
    return Unary(i, o, _enum(r, UNARY_OPS, "unary op"))


def _kpu_upload(r):
    return KpuUpload(r.mrange(), r.mrange(), r.shape())


def _kpu_conv2d(r):
    out = r.mrange()
    batches, _reserved = r.i32(), r.i32()
    words = r.array("<u8", 12)
    args = decode_layer(words)
    r.take(args.bwsx_base_addr)
    bn = decode_bn(r.array("<u8", args.out_channels))
    r.take(args.active_addr)
    act = decode_act(r.array("<u8", 18))
    r.take(args.para_start_addr)
    if args.kernel_type not in (0, 1):
        raise KmodelError(f"{r.where}: kernel_type {args.kernel_type} is not a KPU kernel (0 = 1x1, 1 = 3x3)")
    weights = r.array("u1", args.weight_count())
    if batches < 1:
        raise KmodelError(f"{r.where}: batches = {batches}")
    return KpuConv2d(out, batches, args, bn, act, weights)


def _raw(r):
    return Unsupported(r.take(r.end - r.pos))


# opcode -> (name, body parser)
OPCODES: dict[int, tuple[str, Any]] = {
    0x00: ("binary", _binary),
    0x01: ("concat", _concat),
    0x02: ("conv2d", _raw),
    0x03: ("dequantize", _quant),
    0x04: ("matmul", _raw),
    0x05: ("pad", _pad),
    0x06: ("quantize", _quant),
    0x07: ("reduce", _reduce),
    0x08: ("reduce_window2d", _raw),
    0x09: ("memory_copy", lambda r: MemoryCopy(r.mrange(), r.mrange())),
    0x0A: ("resize_image", _resize),
    0x0B: ("softmax", _softmax),
    0x0C: ("transpose", _transpose),
    0x0D: ("strided_slice", _raw),
    0x0E: ("unary", _unary),
    0x0F: ("quantized_conv2d", _raw),
    0x10: ("quantized_matmul", _raw),
    0x11: ("quantized_binary", _quantized_binary),
    0x12: ("table_lookup1d", _raw),
    0x13: ("conv2d_transpose", _raw),
    0x14: ("nnil_unary_method", _raw),
    0x1001: ("cpu_conv2d", _raw),
    0x1002: ("cpu_depthwise_conv2d", _raw),
    0x1003: ("cpu_reduce_window2d", _raw),
    0x1004: ("cpu_quantized_conv2d", _raw),
    0x1005: ("cpu_quantized_depthwise_conv2d", _raw),
    0x2001: ("kpu_upload", _kpu_upload),
    0x2002: ("kpu_conv2d", _kpu_conv2d),
}


@dataclass
class KmodelNode:
    index: int
    opcode: int
    name: str
    body: Any
    body_offset: int
    body_size: int

    def __str__(self) -> str:
        return f"node {self.index} ({self.name}, opcode 0x{self.opcode:x})"


@dataclass
class Kmodel:
    path: str
    version: int
    flags: int
    target: str
    main_mem_size: int
    inputs: list[MemoryRange]
    input_shapes: list[tuple[int, int, int, int]]
    outputs: list[MemoryRange]
    constants: bytes
    nodes: list[KmodelNode] = field(default_factory=list)

    def op_counts(self) -> dict[str, int]:
        return count_names(self.nodes)


def read_source(source: str | Path | bytes) -> tuple[bytes, str]:
    """(the file's bytes, its name for messages) of a kmodel path or bytes; `KmodelError` if unreadable."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "<kmodel bytes>"
    try:
        return Path(source).read_bytes(), str(source)
    except OSError as exc:
        raise KmodelError(f"{source}: cannot read: {exc}") from exc


def count_names(items) -> dict[str, int]:
    """name -> how many of `items` (nodes or layers) carry it, in order of first appearance."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item.name] = counts.get(item.name, 0) + 1
    return counts


def read_kmodel(source: str | Path | bytes) -> Kmodel:
    """Parse a kmodel v4 file (path or bytes) into a `Kmodel`; `KmodelError` on any defect."""
    buf, where = read_source(source)
    if len(buf) < 40:
        raise KmodelError(f"{where}: truncated: {len(buf)} bytes, a kmodel header has 40")
    if buf[:4] != MAGIC:
        raise KmodelError(f"{where}: not a kmodel (identifier {buf[:4]!r}, expected b'LDMK' = 'KMDL')")
    r = _Reader(buf, 4, len(buf), where)
    version, flags, target, const_size, main_size, n_nodes, n_in, n_out, _reserved = (r.u32() for _ in range(9))
    if version != VERSION:
        raise KmodelError(f"{where}: kmodel version {version}; qsim reads version {VERSION} (ncc 0.2) only")
    if target not in TARGETS:
        raise KmodelError(f"{where}: unknown target {target} (0 = CPU, 1 = K210)")
    if n_in > 64 or n_out > 64 or n_nodes > 100000:
        raise KmodelError(f"{where}: implausible counts ({n_in} inputs, {n_out} outputs, {n_nodes} nodes)")
    r.where = f"{where} (header)"
    inputs = [r.mrange() for _ in range(n_in)]
    shapes = [r.shape() for _ in range(n_in)]
    outputs = [r.mrange() for _ in range(n_out)]
    constants = r.take(const_size)
    heads = [(r.u32(), r.u32()) for _ in range(n_nodes)]
    nodes: list[KmodelNode] = []
    pos = r.pos
    for idx, (opcode, size) in enumerate(heads):
        if opcode not in OPCODES:
            raise KmodelError(f"{where}: node {idx}: unknown opcode 0x{opcode:x} (body {size} bytes)")
        name, parse = OPCODES[opcode]
        # ncc pads each body to 8 bytes by seeking: the last body may lack its padding bytes
        end = min(pos + size, len(buf))
        node_where = f"{where}: node {idx} ({name}, opcode 0x{opcode:x})"
        if pos > len(buf):
            raise KmodelError(f"{node_where}: truncated (body starts at {pos}, file has {len(buf)} bytes)")
        body = parse(_Reader(buf, pos, end, node_where))
        nodes.append(KmodelNode(idx, opcode, name, body, pos, size))
        pos += size
    if pos - len(buf) >= 8:
        raise KmodelError(f"{where}: truncated: the node bodies need {pos} bytes, the file has {len(buf)}")
    model = Kmodel(where, version, flags, TARGETS[target], main_size, inputs, shapes, outputs, constants, nodes)
    _check_ranges(model)
    return model


def _check_range(rng: MemoryRange, capacity: dict[int, int], what: str) -> None:
    """`rng` holds whole elements and lies inside its memory (a corrupt field must fail here,
    at load, not as a NumPy error after the whole inference)."""
    names = {0: "constants", 1: "main memory", 2: "KPU RAM"}
    if rng.size % rng.dtype.itemsize:
        raise KmodelError(f"{what} {rng}: size {rng.size} bytes is not a whole number of "
                          f"{rng.dtype.name} ({rng.dtype.itemsize} bytes each)")
    cap = capacity[rng.memory_type]
    if rng.start + rng.size > cap:
        raise KmodelError(f"{what} {rng}: runs past the end of the {names[rng.memory_type]} of {cap} bytes")


def _check_ranges(m: Kmodel) -> None:
    """Every memory range of the header and of each node body, and the input shapes."""
    from qsim.k210.layout import KPU_RAM_BYTES

    capacity = {0: len(m.constants), 1: m.main_mem_size, 2: KPU_RAM_BYTES}
    for i, (rng, shape) in enumerate(zip(m.inputs, m.input_shapes)):
        _check_range(rng, capacity, f"{m.path}: input {i}")
        if min(shape) < 1:
            raise KmodelError(f"{m.path}: input {i} has shape {tuple(shape)}; every dimension must be >= 1")
        need = int(np.prod(np.array(shape, np.int64))) * rng.dtype.itemsize
        if need > rng.size:
            raise KmodelError(f"{m.path}: input {i} shape {tuple(shape)} needs {need} bytes, its range {rng} "
                              f"holds {rng.size}")
    for i, rng in enumerate(m.outputs):
        _check_range(rng, capacity, f"{m.path}: output {i}")
    for node in m.nodes:
        if isinstance(node.body, Unsupported):
            continue
        for f in fields(node.body):
            value = getattr(node.body, f.name)
            for j, rng in enumerate(value if isinstance(value, list) else [value]):
                if isinstance(rng, MemoryRange):
                    label = f.name if not isinstance(value, list) else f"{f.name}[{j}]"
                    _check_range(rng, capacity, f"{m.path}: {node} {label}")
