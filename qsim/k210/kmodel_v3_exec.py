"""Run a kmodel v3 as ``kpu.c`` (SDK v0.5.x) does: KPU layers through `qsim.k210.kpu`, CPU layers exactly.

Memory model (``kpu_load_kmodel`` / ``kpu_run_kmodel`` / ``ai_step``): one main buffer of
``main_mem_usage`` bytes (``malloc``ed, so uninitialised on the device; zero-filled here),
the 2 MiB KPU RAM (zero-filled) and the model file itself (read-only: the K210_CONV layers'
registers, weights, BN and activation tables). Layers run in file order.

* Input: when the first layer is K210_CONV, the caller's uint8 NCHW image is written into
  KPU RAM at that layer's ``image_src_addr`` in the KPU layout (``kpu_upload_core`` and the
  DMA path give the same bytes); when it is FULLY_CONNECTED, float32 values go to its
  ``main_mem_in_address``.
* K210_CONV: the same `KpuLayer` as kmodel v4 (byte-exact on slim-320 there) reads its map
  from KPU RAM at ``image_src_addr``, writes the result at ``image_dst_addr``, and, with
  flag KLF_MAIN_MEM_OUT, also as compact NCHW bytes to ``main_mem_out_address`` (the DMA of
  ``dma_total_byte + 1`` bytes).
* Outputs: the header's (address, size) ranges of main memory, as float32 when the last
  layer writing them produces floats, else raw uint8.

The KPU's open points are `KpuSwitches` (``act_rounding``: ``"nncase"`` = the v4 runtime's
ties-to-even, qsim's default; ``"half_up"`` = nncase 0.1's emulator, which produced the
public v3 models). See docs/k210-v3.md.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qsim.errors import InputError, KmodelError
from qsim.k210 import kmodel_v3_ops as ops
from qsim.k210 import layout
from qsim.k210.kmodel_exec import KmodelRun, NodeRecord, check_layer_registers, run_handler
from qsim.k210.kmodel_v3 import FLAG_MAIN_MEM_OUT, KmodelV3, V3Layer, read_kmodel_v3
from qsim.k210.kpu import KpuLayer, KpuSwitches


class KmodelV3Executor:
    """Executor of a kmodel v3 (see module docstring); same `run` contract as `KmodelExecutor`.

    >>> # ex = KmodelV3Executor("detect.kmodel"); out = ex.run(image_nchw_uint8).outputs[0]
    """

    def __init__(self, model: KmodelV3 | str | Path, switches: KpuSwitches = KpuSwitches()):
        self.model = model if isinstance(model, KmodelV3) else read_kmodel_v3(model)
        self.switches = switches
        self.layers: dict[int, KpuLayer] = {}
        m = self.model
        if any(layer.name == "k210_conv" for layer in m.layers) and not m.eight_bit_mode:
            raise KmodelError(f"{m.path}: header field flags: eight_bit_mode = 0 (16-bit KPU weights) is not "
                              "modelled; qsim's KPU model is the 8-bit mode")
        for layer in m.layers:
            if layer.name not in _HANDLERS:
                raise KmodelError(f"{m.path}: {layer}: not run by qsim's v3 executor")
            if layer.name == "k210_conv":
                b = layer.body
                where = f"{m.path}: {layer}"
                check_layer_registers(b.args, where)
                self.layers[layer.index] = KpuLayer.from_registers(b.args, b.bn, b.act, b.weights, name=where)

    def input_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(s) for s in self.model.input_shapes]

    def run(self, *inputs: np.ndarray, keep: bool = False, count_overflow: bool = False) -> KmodelRun:
        """Execute once.

        Args:
            inputs: one array: uint8 NCHW (a first K210_CONV; a missing batch axis is accepted)
                or float32 (a first FULLY_CONNECTED).
            keep: keep every layer's output in the records (for `KmodelRun.to_trace`).
            count_overflow: `OverflowCounter`s per KPU layer (``layer<i>_k210_conv``: 36-bit
                ALU ``acc``/``bn``, activation clamp ``act``) and per QUANTIZE (``quantize``
                clamp to 0..255).
        """
        m = self.model
        if len(inputs) != 1:
            raise InputError(f"{m.path}: a kmodel v3 has one input, got {len(inputs)}")
        self._main = np.zeros(m.main_mem_size, np.uint8)
        self._kpu = np.zeros(layout.KPU_RAM_BYTES, np.uint8)
        self._high = 0
        self._feed(np.asarray(inputs[0]))
        counters: dict[str, dict] = {}
        records: list[NodeRecord] = []
        for layer in m.layers:
            rec = run_handler(_HANDLERS, self, layer, counters if count_overflow else None, m.path)
            if not keep:
                rec.data = None
            records.append(rec)
        outs = []
        for rng in m.outputs:
            raw = self._main[rng.start:rng.start + rng.size].copy()
            outs.append(raw.view(np.float32) if rng.datatype == 0 else raw)
        return KmodelRun(outs, records, counters, self._high)

    # ---------------------------------------------------------------- memory helpers
    def _feed(self, x: np.ndarray) -> None:
        m = self.model
        shape = m.input_shapes[0]
        rng = m.inputs[0]
        if rng.memory_type == 2:
            if x.ndim == 3:
                x = x[None]
            if tuple(x.shape) != shape:
                raise InputError(f"{m.path}: input must have shape {shape} (NCHW uint8), got {tuple(x.shape)}")
            if not np.issubdtype(x.dtype, np.integer) or (x.size and (x.min() < 0 or x.max() > 255)):
                raise InputError(f"{m.path}: input is uint8 codes; got {x.dtype} values "
                                 f"{x.min() if x.size else ''}..{x.max() if x.size else ''}")
            layout.upload(self._kpu, rng.start, x.astype(np.uint8))
            self._high = max(self._high, rng.start + rng.size)
        else:
            n = shape[1]
            if x.size != n:
                raise InputError(f"{m.path}: input must hold {n} float32 values, got shape {tuple(x.shape)}")
            self._put(rng.start, np.asarray(x, np.float32).reshape(-1))

    def _get(self, start: int, count: int, dtype) -> np.ndarray:
        dt = np.dtype(dtype)
        return self._main[start:start + count * dt.itemsize].copy().view(dt)

    def _put(self, start: int, data: np.ndarray) -> np.ndarray:
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        self._main[start:start + raw.size] = raw
        return np.ascontiguousarray(data)


# ---------------------------------------------------------------- handlers: (executor, layer, counters) -> NodeRecord
def _rec(layer: V3Layer, in_shape, out_shape, where: str, data, kpu_ram=None) -> NodeRecord:
    return NodeRecord(layer.index, layer.name, tuple(int(v) for v in in_shape), tuple(int(v) for v in out_shape),
                      where, kpu_ram, None if data is None else np.asarray(data).copy())


def _main_out(start: int, data: np.ndarray) -> str:
    return f"main[{start}:{start + np.asarray(data).nbytes}] {np.asarray(data).dtype.name}"


def _k210_conv(ex: KmodelV3Executor, layer: V3Layer, counters) -> NodeRecord:
    b = layer.body
    kl = ex.layers[layer.index]
    a = b.args
    (h, w), (oh, ow) = a.in_hw, a.out_hw
    in_bytes, out_bytes = layout.fmap_bytes(w, h, a.in_channels), layout.fmap_bytes(ow, oh, a.out_channels)
    x = layout.download(ex._kpu, a.image_src_addr * 64, (a.in_channels, h, w))
    site = counters.setdefault(f"layer{layer.index}_k210_conv", {}) if counters is not None else None
    y = kl.run(x, ex.switches, counters=site)
    layout.upload(ex._kpu, a.image_dst_addr * 64, y)
    ex._high = max(ex._high, a.image_dst_addr * 64 + out_bytes)
    where = f"kpu[{a.image_dst_addr * 64}:{a.image_dst_addr * 64 + out_bytes}]"
    if b.flags & FLAG_MAIN_MEM_OUT:
        ex._put(b.main_mem_out_address, y.reshape(-1))
        where += f" + {_main_out(b.main_mem_out_address, y)}"
    return _rec(layer, (1, a.in_channels, h, w), (1, *y.shape), where, y[None], (in_bytes, out_bytes))


def _add(ex, layer, counters):
    b = layer.body
    y = ops.add(ex._get(b.main_mem_in_a_address, b.count, np.float32), ex._get(b.main_mem_in_b_address, b.count, np.float32))
    ex._put(b.main_mem_out_address, y)
    return _rec(layer, (b.count,), (b.count,), _main_out(b.main_mem_out_address, y), y)


def _quantized_add(ex, layer, counters):
    b = layer.body
    n = (b.count + 7) & ~7  # kpu.c runs whole groups of 8 elements
    y = ops.quantized_add(ex._get(b.main_mem_in_a_address, n, np.uint8), ex._get(b.main_mem_in_b_address, n, np.uint8),
                          b.in_a_offset, b.in_a_mul, b.in_a_shift, b.in_b_offset, b.in_b_mul, b.in_b_shift,
                          b.out_offset, b.out_mul, b.out_shift)
    ex._put(b.main_mem_out_address, y)
    return _rec(layer, (n,), (n,), _main_out(b.main_mem_out_address, y), y)


def _global_average_pool2d(ex, layer, counters):
    b = layer.body
    x = ex._get(b.main_mem_in_address, b.kernel_size * b.channels, np.float32)
    y = ops.global_average_pool2d(x, b.kernel_size, b.channels)
    ex._put(b.main_mem_out_address, y)
    return _rec(layer, (b.channels, b.kernel_size), (b.channels,), _main_out(b.main_mem_out_address, y), y)


def _pool(average: bool):
    def handler(ex, layer, counters):
        b = layer.body
        (iw, ih, ic), (ow, oh, oc) = b.in_shape, b.out_shape
        dt = np.float32 if average else np.uint8
        x = ex._get(b.main_mem_in_address, iw * ih * max(ic, oc), dt)
        fn = ops.average_pool2d if average else ops.quantized_max_pool2d
        y = fn(x, b.in_shape, b.out_shape, (b.kernel_width, b.kernel_height), (b.stride_width, b.stride_height),
               (b.padding_width, b.padding_height))
        ex._put(b.main_mem_out_address, y)
        return _rec(layer, (ic, ih, iw), (oc, oh, ow), _main_out(b.main_mem_out_address, y), y)
    return handler


def _quantize(ex, layer, counters):
    b = layer.body
    x = ex._get(b.main_mem_in_address, b.count, np.float32)
    y = ops.quantize(x, b.scale, b.bias)
    if counters is not None:
        from qsim.fixed.counters import OverflowCounter

        with np.errstate(all="ignore"):
            pre = ops.f32_to_int32(ops.c_roundf((x - np.float32(b.bias)) * (np.float32(1) / np.float32(b.scale))))
        counters.setdefault(f"layer{layer.index}_quantize", {}).setdefault(
            "quantize", OverflowCounter("quantize")).observe(pre, 0, 255)
    ex._put(b.mem_out_address, y)
    return _rec(layer, (b.count,), (b.count,), _main_out(b.mem_out_address, y), y)


def _dequantize(ex, layer, counters):
    b = layer.body
    y = ops.dequantize(ex._get(b.main_mem_in_address, b.count, np.uint8), b.scale, b.bias)
    ex._put(b.main_mem_out_address, y)
    return _rec(layer, (b.count,), (b.count,), _main_out(b.main_mem_out_address, y), y)


def _channelwise_dequantize(ex, layer, counters):
    b = layer.body
    n = b.channels * b.channel_size
    y = ops.channelwise_dequantize(ex._get(b.main_mem_in_address, n, np.uint8), b.channel_size, b.scales, b.biases)
    ex._put(b.main_mem_out_address, y)
    return _rec(layer, (b.channels, b.channel_size), (b.channels, b.channel_size),
                _main_out(b.main_mem_out_address, y), y)


def _requantize(ex, layer, counters):
    b = layer.body
    y = ops.requantize(ex._get(b.main_mem_in_address, b.count, np.uint8), b.table)
    ex._put(b.main_mem_out_address, y)
    return _rec(layer, (b.count,), (b.count,), _main_out(b.main_mem_out_address, y), y)


def _vector(fn):
    def handler(ex, layer, counters):
        b = layer.body
        y = fn(ex._get(b.main_mem_in_address, b.channels, np.float32))
        ex._put(b.main_mem_out_address, y)
        return _rec(layer, (b.channels,), (b.channels,), _main_out(b.main_mem_out_address, y), y)
    return handler


def _concat(ex, layer, counters):
    b = layer.body
    # memcpy one range after the other; each source is read just before it is copied
    pos = b.main_mem_out_address
    for start, size in b.inputs:
        chunk = ex._main[start:start + size].copy()
        ex._main[pos:pos + size] = chunk
        pos += size
    total = pos - b.main_mem_out_address
    y = ex._main[b.main_mem_out_address:pos].copy()
    return _rec(layer, (len(b.inputs),), (total,), f"main[{b.main_mem_out_address}:{pos}] uint8", y)


def _fully_connected(ex, layer, counters):
    b = layer.body
    y = ops.fully_connected(ex._get(b.main_mem_in_address, b.in_channels, np.float32), b.weights, b.bias,
                            b.in_channels, b.out_channels, b.act)
    ex._put(b.main_mem_out_address, y)
    return _rec(layer, (b.in_channels,), (b.out_channels,), _main_out(b.main_mem_out_address, y), y)


def _tensorflow_flatten(ex, layer, counters):
    b = layer.body
    w, h, c = b.shape
    y = ops.tensorflow_flatten(ex._get(b.main_mem_in_address, w * h * c, np.float32), b.shape)
    ex._put(b.main_mem_out_address, y)
    return _rec(layer, (c, h, w), (h * w * c,), _main_out(b.main_mem_out_address, y), y)


def _resize(quantized: bool):
    def handler(ex, layer, counters):
        b = layer.body
        w, h, c = b.in_shape
        x = ex._get(b.main_mem_in_address, w * h * c, np.uint8 if quantized else np.float32)
        y = ops.resize_nearest_neighbor(x, b.in_shape, b.out_width, b.out_height)
        ex._put(b.main_mem_out_address, y)
        return _rec(layer, (c, h, w), (c, b.out_height, b.out_width), _main_out(b.main_mem_out_address, y), y)
    return handler


def _k210_add_padding(ex, layer, counters):
    b = layer.body
    src = ex._get(b.main_mem_in_address, b.channels, np.uint8)
    base = b.kpu_mem_out_address * 64
    oc = np.arange(b.channels)
    # kpu_add_padding: one byte per channel, 4 channels per line at a 16-byte pitch, 4 lines per group
    ex._kpu[base + (oc // 4) * 256 + (oc % 4) * 16] = src
    end = base + (((b.channels - 1) // 4) * 256 + 64 if b.channels else 0)
    ex._high = max(ex._high, end)
    return _rec(layer, (b.channels,), (b.channels, 1, 1), f"kpu[{base}:{end}]", src)


def _k210_remove_padding(ex, layer, counters):
    b = layer.body
    n = (b.channels - 1) * 16 + 1 if b.channels else 0
    y = ex._get(b.main_mem_in_address, n, np.uint8)[::16].copy()
    ex._put(b.main_mem_out_address, y)
    return _rec(layer, (b.channels, 16), (b.channels,), _main_out(b.main_mem_out_address, y), y)


def _k210_upload(ex, layer, counters):
    b = layer.body
    x = ex._get(b.main_mem_in_address, b.width * b.height * b.channels, np.uint8).reshape(b.channels, b.height, b.width)
    base = b.kpu_mem_out_address * 64
    if x.size:
        layout.upload(ex._kpu, base, x)
        ex._high = max(ex._high, base + layout.fmap_bytes(b.width, b.height, b.channels))
    return _rec(layer, x.shape, x.shape, f"kpu[{base}:]", x)


_HANDLERS = {
    "k210_conv": _k210_conv,
    "k210_add_padding": _k210_add_padding,
    "k210_remove_padding": _k210_remove_padding,
    "k210_upload": _k210_upload,
    "add": _add,
    "quantized_add": _quantized_add,
    "global_average_pool2d": _global_average_pool2d,
    "quantized_max_pool2d": _pool(False),
    "average_pool2d": _pool(True),
    "quantize": _quantize,
    "dequantize": _dequantize,
    "requantize": _requantize,
    "l2_normalization": _vector(ops.l2_normalization),
    "softmax": _vector(ops.softmax),
    "logistic": _vector(ops.logistic),
    "concat": _concat,
    "quantized_concat": _concat,
    "fully_connected": _fully_connected,
    "tensorflow_flatten": _tensorflow_flatten,
    "resize_nearest_neighbor": _resize(False),
    "quantized_resize_nearest_neighbor": _resize(True),
    "channelwise_dequantize": _channelwise_dequantize,
}
