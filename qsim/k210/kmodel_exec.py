"""Run a kmodel v4: its KPU conv nodes through `qsim.k210.kpu`, its CPU nodes through `cpu_ops`.

Memory model (as the K210 SDK's ``nncase/v0`` runtime): three flat byte spaces, constants
(read-only, from the file), main memory (``main_mem_size`` bytes, zero-filled here; the
runtime leaves it uninitialised) and the 2 MiB KPU RAM (zero-filled). Each node reads and
writes `MemoryRange`s of these. A model input in KPU RAM is fed as the caller's compact
NCHW uint8 tensor and uploaded into the KPU layout (§1.2); an input in main memory is copied
raw. Outputs are returned in their memory's own dtype (float32 or uint8).

A KPU conv node reads its input map from KPU RAM at ``image_src_addr*64`` (per batch
advanced by the map size), runs conv/BN/activation/pool (`KpuLayer.run`) and writes the
result back at ``image_dst_addr*64`` and, when ``main_mem_output`` is non-empty, compact
NCHW to main memory as well.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qsim.errors import InputError, KmodelError, QsimError
from qsim.k210 import cpu_ops, layout
from qsim.k210.kmodel import (
    Binary,
    Concat,
    Kmodel,
    KmodelNode,
    KpuConv2d,
    KpuUpload,
    MemoryCopy,
    MemoryRange,
    Pad,
    QuantizedBinary,
    QuantParamOp,
    Reduce,
    ResizeImage,
    Softmax,
    Transpose,
    Unary,
    read_kmodel,
)
from qsim.k210.kpu import KpuLayer, KpuSwitches
from qsim.trace import Trace


@dataclass
class NodeRecord:
    """What one node did: shapes, where it wrote, and (optionally) the bytes it produced."""

    index: int
    op: str
    in_shape: tuple
    out_shape: tuple
    output: str  # memory range written, as text
    kpu_ram: tuple[int, int] | None = None  # (input bytes, output bytes) resident for a KPU layer
    data: np.ndarray | None = None  # the node's output (uint8 codes or float32), if kept


@dataclass
class KmodelRun:
    outputs: list[np.ndarray]
    records: list[NodeRecord]
    counters: dict[str, dict] = field(default_factory=dict)
    kpu_ram_high_water: int = 0  # highest KPU RAM byte address written + 1

    def to_trace(self, model: Kmodel) -> Trace:
        """A `Trace` keyed ``output0``.. for the model outputs and ``node<i>_<op>`` per kept node.

        Outputs are float32: float outputs as they are, uint8 outputs as their codes (a kmodel
        does not store the quantization of an output it leaves quantized).
        """
        trace = Trace(executor="k210")
        for i, out in enumerate(self.outputs):
            trace.outputs[f"output{i}"] = out.astype(np.float32)
        for rec in self.records:
            if rec.data is not None:
                key = f"node{rec.index}_{rec.op}"
                if rec.data.dtype == np.uint8:
                    trace.codes[key] = rec.data.astype(np.int64)
                trace.values[key] = rec.data.astype(np.float32)
        trace.counters = self.counters
        return trace


class KmodelExecutor:
    """Bit-exact executor of a kmodel v4 (see module docstring).

    Args:
        model: a `Kmodel` or a path to a ``.kmodel`` file.
        switches: the KPU's open points (defaults = the vendor emulator).

    >>> # ex = KmodelExecutor("slim-320.kmodel"); run = ex.run(image_nchw_uint8)
    """

    def __init__(self, model: Kmodel | str | Path, switches: KpuSwitches = KpuSwitches()):
        self.model = model if isinstance(model, Kmodel) else read_kmodel(model)
        self.switches = switches
        self.stages: dict[int, dict[str, np.ndarray]] | None = None  # see run(stages=...)
        self.layers: dict[int, KpuLayer] = {}
        for node in self.model.nodes:
            if node.name not in _HANDLERS:
                raise KmodelError(f"{self.model.path}: {node}: op {node.name!r} is not supported by "
                                  f"qsim's kmodel executor (supported: {', '.join(sorted(_HANDLERS))})")
            if isinstance(node.body, KpuConv2d):
                b = node.body
                check_layer_registers(b.args, f"{self.model.path}: {node}")
                self.layers[node.index] = KpuLayer.from_registers(
                    b.args, b.bn, b.act, b.weights, name=f"{self.model.path}: {node}")

    # ----------------------------------------------------------------------------
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(s) for s in self.model.input_shapes]

    def run(self, *inputs: np.ndarray, keep: bool = False, count_overflow: bool = False,
            stages: dict | None = None) -> KmodelRun:
        """Execute once. Each input is the tensor its input memory holds (e.g. uint8 NCHW).

        Args:
            inputs: one array per model input, shaped as the header says (a missing batch
                axis of 1 is accepted), dtype of the input memory (uint8 or float32).
            keep: keep every node's output in the records (for `to_trace` / the CLI).
            count_overflow: collect `OverflowCounter`s per KPU layer (36-bit ALU, act clamp).
            stages: a dict that receives, per KPU conv node index, the layer's uint8 input
                ``"input"`` (N, IC, H, W), its stages ``"A"``, ``"B"`` (int64), ``"Z"``
                (uint8, before pooling) and ``"output"`` (N, OC, OH, OW), batches stacked
                (`qsim.vectors.k210`).
        """
        m = self.model
        if len(inputs) != len(m.inputs):
            raise InputError(f"{m.path}: the model has {len(m.inputs)} input(s), got {len(inputs)}")
        self._mem = {0: np.frombuffer(m.constants, np.uint8).copy(),
                     1: np.zeros(m.main_mem_size, np.uint8),
                     2: np.zeros(layout.KPU_RAM_BYTES, np.uint8)}
        self._high = 0
        self.stages = stages
        for k, (arr, rng, shape) in enumerate(zip(inputs, m.inputs, m.input_shapes)):
            self._feed(k, np.asarray(arr), rng, tuple(shape))
        records: list[NodeRecord] = []
        counters: dict[str, dict] = {}
        for node in m.nodes:
            rec = run_handler(_HANDLERS, self, node, counters if count_overflow else None, m.path)
            if not keep:
                rec.data = None
            records.append(rec)
        outs = [self._view(rng, f"output {i}").copy() for i, rng in enumerate(m.outputs)]
        return KmodelRun(outs, records, counters, self._high)

    # ----------------------------------------------------------------------------
    def _feed(self, k: int, arr: np.ndarray, rng: MemoryRange, shape: tuple) -> None:
        if arr.ndim == len(shape) - 1:
            arr = arr[None]
        if tuple(arr.shape) != shape:
            raise InputError(f"{self.model.path}: input {k} must have shape {shape} (NCHW), got {tuple(arr.shape)}")
        if arr.dtype != rng.dtype:
            if rng.datatype == 1 and np.issubdtype(arr.dtype, np.integer) and arr.size and \
                    (arr.min() < 0 or arr.max() > 255):
                raise InputError(f"{self.model.path}: input {k} is uint8; values {arr.min()}..{arr.max()} do not fit")
            if rng.datatype == 1 and not np.issubdtype(arr.dtype, np.integer):
                raise InputError(f"{self.model.path}: input {k} is uint8 (raw codes), got {arr.dtype}")
            arr = arr.astype(rng.dtype)
        if rng.memory_type == 2:
            layout.upload(self._mem[2], rng.start, arr)
            n, c, h, w = shape
            self._high = max(self._high, rng.start + n * layout.fmap_bytes(w, h, c))
        else:
            self._view(rng, f"input {k}")[:] = arr.reshape(-1)

    def _view(self, rng: MemoryRange, what: str) -> np.ndarray:
        mem = self._mem[rng.memory_type]
        if rng.start + rng.size > mem.size:
            raise KmodelError(f"{what}: range {rng} runs past the {mem.size}-byte memory")
        if rng.size % rng.dtype.itemsize or (rng.datatype == 0 and rng.start % 4):
            return mem[rng.start:rng.start + rng.size].copy().view(rng.dtype)
        return mem[rng.start:rng.start + rng.size].view(rng.dtype)

    def _write(self, rng: MemoryRange, data: np.ndarray, what: str) -> np.ndarray:
        out = self._view(rng, what)
        flat = np.asarray(data).reshape(-1)
        if flat.dtype != rng.dtype:
            flat = flat.view(np.uint8).view(rng.dtype) if flat.dtype.itemsize != rng.dtype.itemsize \
                else flat.astype(rng.dtype)
        if flat.size > out.size:
            raise KmodelError(f"{what}: {flat.size} values do not fit the output range {rng}")
        raw = self._mem[rng.memory_type]
        raw[rng.start:rng.start + flat.nbytes] = flat.view(np.uint8)
        return flat


def run_handler(handlers: dict, ex, item, counters, path) -> "NodeRecord":
    """``handlers[item.name](ex, item, counters)``, any error re-raised naming the file and the
    node or layer (a defect surfacing as a NumPy/Numba error becomes a `KmodelError`)."""
    try:
        return handlers[item.name](ex, item, counters)
    except QsimError as exc:
        if str(item) in str(exc):
            raise
        raise type(exc)(f"{path}: {item}: {exc}") from exc
    except Exception as exc:
        raise KmodelError(f"{path}: {item}: {type(exc).__name__}: {exc}") from exc


def check_layer_registers(a, where: str) -> None:
    """Refuse register values whose behaviour qsim does not model (rather than compute wrong bytes)."""
    unmodelled = {f: getattr(a, f) for f in ("pad_type", "first_stride", "bypass_conv", "coef_size",
                                              "coef_column_offset", "coef_row_offset", "ram_flag", "full_add")
                  if getattr(a, f)}
    if unmodelled:
        raise KmodelError(f"{where}: register fields with unknown semantics are set: {unmodelled}")
    h, w = a.in_hw
    oh, ow = a.out_hw
    want_in = layout.layout_registers(a.in_channels, h, w)
    got_in = (a.channel_switch_addr, a.row_switch_addr, a.coef_group)
    want_out = layout.layout_registers(a.out_channels, oh, ow)
    got_out = (a.wb_channel_switch_addr, a.wb_row_switch_addr, a.wb_group)
    if got_in != want_in or got_out != want_out:
        raise KmodelError(f"{where}: layout registers (channel_switch, row_switch, group) input {got_in}, "
                          f"output {got_out}; the KPU RAM layout of a {a.in_channels}x{h}x{w} -> "
                          f"{a.out_channels}x{oh}x{ow} layer needs {want_in} and {want_out}")


# ---------------------------------------------------------------- handlers
def _kpu_conv2d(ex: KmodelExecutor, node: KmodelNode, counters) -> NodeRecord:
    body: KpuConv2d = node.body
    layer = ex.layers[node.index]
    a = body.args
    ic, (h, w) = a.in_channels, a.in_hw
    oc, (oh, ow) = a.out_channels, a.out_hw
    in_bytes = layout.fmap_bytes(w, h, ic)
    out_bytes = layout.fmap_bytes(ow, oh, oc)
    ram = ex._mem[2]
    outs = []
    layer_counters = counters.setdefault(f"node{node.index}_kpu_conv2d", {}) if counters is not None else None
    kept: dict[str, list] = {"input": [], "A": [], "B": [], "Z": []}
    for b in range(body.batches):
        x = layout.download(ram, a.image_src_addr * 64 + b * in_bytes, (ic, h, w))
        stage = {} if ex.stages is not None else None
        y = layer.run(x, ex.switches, counters=layer_counters, keep=stage)
        if stage is not None:
            stage["input"] = x
            for key in kept:
                kept[key].append(stage[key])
        layout.upload(ram, a.image_dst_addr * 64 + b * out_bytes, y)
        outs.append(y)
    ex._high = max(ex._high, a.image_dst_addr * 64 + body.batches * out_bytes)
    data = np.stack(outs)
    if ex.stages is not None:
        ex.stages[node.index] = {**{key: np.stack(v) for key, v in kept.items()}, "output": data}
    if body.main_mem_output.size:
        ex._write(body.main_mem_output, data, "main_mem_output")
    return NodeRecord(node.index, node.name, (body.batches, ic, h, w), data.shape,
                      f"kpu[{a.image_dst_addr * 64}:{a.image_dst_addr * 64 + body.batches * out_bytes}]"
                      + (f" + {body.main_mem_output}" if body.main_mem_output.size else ""),
                      (body.batches * in_bytes, body.batches * out_bytes), data)


def _kpu_upload(ex, node, counters) -> NodeRecord:
    b: KpuUpload = node.body
    x = ex._view(b.input, "input").view(np.uint8)[: int(np.prod(b.in_shape))].reshape(b.in_shape)
    if b.output.memory_type != 2:
        raise KmodelError(f"kpu_upload writes to {b.output}, not KPU RAM")
    layout.upload(ex._mem[2], b.output.start, x)
    n, c, h, w = b.in_shape
    ex._high = max(ex._high, b.output.start + n * layout.fmap_bytes(w, h, c))
    return NodeRecord(node.index, node.name, b.in_shape, b.in_shape, str(b.output), None, x.copy())


def _simple(fn):
    def handler(ex, node, counters) -> NodeRecord:
        body = node.body
        out, in_shape, out_shape = fn(ex, body)
        written = ex._write(body.output, out, "output")
        return NodeRecord(node.index, node.name, tuple(in_shape), tuple(out_shape), str(body.output),
                          None, written.copy())
    return handler


def _quantize(ex, b: QuantParamOp):
    x = ex._view(b.input, "input")
    return cpu_ops.quantize(x, b.zero_point, b.scale), x.shape, x.shape


def _dequantize(ex, b: QuantParamOp):
    q = ex._view(b.input, "input")
    return cpu_ops.dequantize(q, b.zero_point, b.scale), q.shape, q.shape


def _transpose(ex, b: Transpose):
    x = ex._view(b.input, "input")[: int(np.prod(b.in_shape))]
    out_shape = tuple(b.in_shape[p] for p in b.perm)
    return cpu_ops.transpose(x, b.in_shape, b.perm), b.in_shape, out_shape


def _concat(ex, b: Concat):
    ins = [ex._view(r, f"input {i}") for i, r in enumerate(b.inputs)]
    out = cpu_ops.concat(ins, b.dims, b.inner_size, b.outer_size).view(b.output.dtype)
    return out, (len(ins), b.outer_size, sum(b.dims), b.inner_size), out.shape


def _pad(ex, b: Pad):
    x = ex._view(b.input, "input")[: int(np.prod(b.in_shape))]
    value = np.frombuffer(b.pad_storage, x.dtype if x.dtype.itemsize <= 4 else np.uint8)[0]
    out_shape = tuple(s + p0 + p1 for s, (p0, p1) in zip(b.in_shape, b.paddings))
    return cpu_ops.pad(x, b.in_shape, b.paddings, value), b.in_shape, out_shape


def _reduce(ex, b: Reduce):
    x = ex._view(b.input, "input")
    return cpu_ops.reduce(x, b.op, b.in_shape, b.out_shape, b.init_value), b.in_shape, b.out_shape


def _qbinary(ex, b: QuantizedBinary):
    qa, qb = ex._view(b.input_a, "input a"), ex._view(b.input_b, "input b")
    out = cpu_ops.quantized_binary(qa[: int(np.prod(b.in_a_shape))], qb[: int(np.prod(b.in_b_shape))], b.op,
                                   b.in_a_shape, b.in_b_shape, b.out_shape, b.a_offset, b.a_mul, b.a_shift,
                                   b.b_offset, b.b_mul, b.b_shift, b.out_offset, b.out_mul, b.out_shift)
    return out, b.in_a_shape, b.out_shape


def _binary(ex, b: Binary):
    fa, fb = ex._view(b.input_a, "input a"), ex._view(b.input_b, "input b")
    out = cpu_ops.binary(fa[: int(np.prod(b.in_a_shape))], fb[: int(np.prod(b.in_b_shape))], b.op,
                         b.in_a_shape, b.in_b_shape, b.out_shape, b.act_min, b.act_max)
    return out, b.in_a_shape, b.out_shape


def _unary(ex, b: Unary):
    x = ex._view(b.input, "input")
    return cpu_ops.unary(x, b.op), x.shape, x.shape


def _memory_copy(ex, b: MemoryCopy):
    x = ex._view(b.input, "input")
    return x.copy(), x.shape, x.shape


def _softmax(ex, b: Softmax):
    x = ex._view(b.input, "input")[: b.outer_size * b.inner_size]
    return cpu_ops.softmax(x, b.outer_size, b.inner_size, b.beta), (b.outer_size, b.inner_size), (b.outer_size, b.inner_size)


def _resize(ex, b: ResizeImage):
    x = ex._view(b.input, "input")[: int(np.prod(b.in_shape))]
    out_shape = (b.in_shape[0], b.in_shape[1], b.out_h, b.out_w)
    return cpu_ops.resize_image(x, b.in_shape, b.out_h, b.out_w, b.mode, b.align_corners), b.in_shape, out_shape


_HANDLERS = {
    "kpu_conv2d": _kpu_conv2d,
    "kpu_upload": _kpu_upload,
    "quantize": _simple(_quantize),
    "dequantize": _simple(_dequantize),
    "transpose": _simple(_transpose),
    "concat": _simple(_concat),
    "pad": _simple(_pad),
    "reduce": _simple(_reduce),
    "quantized_binary": _simple(_qbinary),
    "binary": _simple(_binary),
    "unary": _simple(_unary),
    "memory_copy": _simple(_memory_copy),
    "softmax": _simple(_softmax),
    "resize_image": _simple(_resize),
}


def run_kmodel(path: str | Path, *inputs: np.ndarray, switches: KpuSwitches = KpuSwitches()) -> list[np.ndarray]:
    """Convenience: the outputs of `path` for `inputs` (each in its output memory's dtype)."""
    return KmodelExecutor(path, switches).run(*inputs).outputs
