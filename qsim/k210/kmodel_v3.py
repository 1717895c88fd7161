"""Reader for Kendryte kmodel v3 files (nncase 0.1 / MAIX toolbox / MaixPy), run by the SDK's ``kpu.c``.

The format, as the K210 standalone SDK v0.5.x reads it (``lib/drivers/include/kpu.h`` and
``kpu_load_kmodel`` / ``ai_step`` in ``lib/drivers/kpu.c``, commit 804a11f of 2019-05-31, the
last before kmodel v4 support); every word is little-endian:

* header, 7 x uint32: version (3), flags (bit 0 = the KPU's eight-bit mode), arch (0),
  layers_length, max_start_address, main_mem_usage, output_count;
* per output an (address, size) pair of uint32: a byte range of main memory;
* per layer a (type, body_size) pair of uint32;
* the layer bodies, back to back from there (``ai_step`` advances by ``body_size``).

A body is a packed C struct whose first word is ``flags`` (bit 0 = the layer writes main
memory). Addresses named ``main_mem_*`` are byte offsets into one ``main_mem_usage``-byte
buffer; ``kpu_mem_*`` are 64-byte line numbers of the 2 MiB KPU RAM. A K210_CONV body holds
six words (flags, main_mem_out_address, layer_offset, weights_offset, bn_offset, act_offset):
the last four are *file* offsets of the 12 KPU register words, the uint8 weights, the BN
entries (one uint64 per output channel) and the 18-word activation table, which sit inside
the body (256-byte aligned in the vendor's files).

Layer types are `LAYER_TYPES` (``kpu_model_layer_type_t``). Seven of them are declared in
the enum but have neither a body struct nor a case in ``ai_step`` (the runtime asserts
"Layer is not supported"): `UNIMPLEMENTED_TYPES`; qsim refuses them with that reason.

Validation at load: every count and address is checked against the file and the main
memory / KPU RAM sizes before anything runs, and every failure is a `KmodelError` naming
the file, the layer index, its type and the field at fault.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qsim.errors import KmodelError
from qsim.k210 import layout
from qsim.k210.fields import ActTable, BatchNorm, LayerArgs, decode_act, decode_bn, decode_layer
from qsim.k210.kmodel import MemoryRange, count_names, read_source

VERSION = 3
HEADER_WORDS = 7
FLAG_MAIN_MEM_OUT = 1  # KLF_MAIN_MEM_OUT
SRAM_BYTES = 8 * 1024 * 1024  # the K210's on-chip SRAM: main_mem_usage beyond it cannot be malloc'ed

# kpu_model_layer_type_t
LAYER_TYPES: dict[int, str] = {
    1: "add", 2: "quantized_add", 3: "global_max_pool2d", 4: "quantized_global_max_pool2d",
    5: "global_average_pool2d", 6: "quantized_global_average_pool2d", 7: "max_pool2d",
    8: "quantized_max_pool2d", 9: "average_pool2d", 10: "quantized_average_pool2d",
    11: "quantize", 12: "dequantize", 13: "requantize", 14: "l2_normalization", 15: "softmax",
    16: "concat", 17: "quantized_concat", 18: "fully_connected", 19: "quantized_fully_connected",
    20: "tensorflow_flatten", 21: "quantized_tensorflow_flatten", 22: "resize_nearest_neighbor",
    23: "quantized_resize_nearest_neighbor", 24: "channelwise_dequantize", 25: "logistic",
    10240: "k210_conv", 10241: "k210_add_padding", 10242: "k210_remove_padding", 10243: "k210_upload",
}
UNIMPLEMENTED_TYPES = frozenset({3, 4, 6, 7, 10, 19, 21})
ACTIVATIONS = ("linear", "relu", "relu6")  # kpu_model_activation_t

# Fixed part of each body: (field, kind) with kind "I" uint32, "i" int32, "f" float32,
# "shape" = kpu_model_shape_t (width, height, channels). Names are kpu.h's.
_IN_OUT = (("flags", "I"), ("main_mem_in_address", "I"), ("main_mem_out_address", "I"))
_POOL = _IN_OUT + (("in_shape", "shape"), ("out_shape", "shape"), ("kernel_width", "I"), ("kernel_height", "I"),
                   ("stride_width", "I"), ("stride_height", "I"), ("padding_width", "I"), ("padding_height", "I"))
_RESIZE = _IN_OUT + (("in_shape", "shape"), ("out_width", "I"), ("out_height", "I"), ("align_corners", "I"))
BODY_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "add": (("flags", "I"), ("main_mem_in_a_address", "I"), ("main_mem_in_b_address", "I"),
            ("main_mem_out_address", "I"), ("count", "I")),
    "quantized_add": (("flags", "I"), ("main_mem_in_a_address", "I"), ("main_mem_in_b_address", "I"),
                      ("main_mem_out_address", "I"), ("count", "I"), ("in_a_offset", "i"), ("in_a_mul", "i"),
                      ("in_a_shift", "i"), ("in_b_offset", "i"), ("in_b_mul", "i"), ("in_b_shift", "i"),
                      ("out_offset", "i"), ("out_mul", "i"), ("out_shift", "i")),
    "global_average_pool2d": _IN_OUT + (("kernel_size", "I"), ("channels", "I")),
    "quantized_max_pool2d": _POOL,
    "average_pool2d": _POOL + (("act", "I"),),
    "quantize": (("flags", "I"), ("main_mem_in_address", "I"), ("mem_out_address", "I"), ("count", "I"),
                 ("scale", "f"), ("bias", "f")),
    "dequantize": _IN_OUT + (("count", "I"), ("scale", "f"), ("bias", "f")),
    "requantize": _IN_OUT + (("count", "I"),),  # + uint8 table[256]
    "l2_normalization": _IN_OUT + (("channels", "I"),),
    "softmax": _IN_OUT + (("channels", "I"),),
    "concat": (("flags", "I"), ("main_mem_out_address", "I"), ("input_count", "I")),  # + ranges
    "quantized_concat": (("flags", "I"), ("main_mem_out_address", "I"), ("input_count", "I")),
    "fully_connected": _IN_OUT + (("in_channels", "I"), ("out_channels", "I"), ("act", "I")),  # + floats
    "tensorflow_flatten": _IN_OUT + (("shape", "shape"),),
    "resize_nearest_neighbor": _RESIZE,
    "quantized_resize_nearest_neighbor": _RESIZE,
    "channelwise_dequantize": _IN_OUT + (("channels", "I"), ("channel_size", "I")),  # + (scale, bias)[]
    "logistic": _IN_OUT + (("channels", "I"),),
    "k210_conv": (("flags", "I"), ("main_mem_out_address", "I"), ("layer_offset", "I"), ("weights_offset", "I"),
                  ("bn_offset", "I"), ("act_offset", "I")),
    "k210_add_padding": (("flags", "I"), ("main_mem_in_address", "I"), ("kpu_mem_out_address", "I"),
                         ("channels", "I")),
    "k210_remove_padding": _IN_OUT + (("channels", "I"),),
    "k210_upload": (("flags", "I"), ("main_mem_in_address", "I"), ("kpu_mem_out_address", "I"), ("width", "I"),
                    ("height", "I"), ("channels", "I")),
}
# the variable-length tail of a body, parsed after the fixed fields
_TAILS: dict[str, tuple[tuple[str, Any], ...]] = {
    "requantize": (("table", np.ndarray),),
    "concat": (("inputs", list),),
    "quantized_concat": (("inputs", list),),
    "fully_connected": (("weights", np.ndarray), ("bias", np.ndarray)),
    "channelwise_dequantize": (("scales", np.ndarray), ("biases", np.ndarray)),
    "k210_conv": (("args", LayerArgs), ("bn", BatchNorm), ("act", ActTable), ("weights", np.ndarray)),
}
_PY_TYPES = {"I": int, "i": int, "f": float, "shape": tuple}


def _class_name(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_")) + "Body"


# one dataclass per layer type, declared by the tables above (attribute access, no dicts)
BODY_CLASSES: dict[str, type] = {
    name: make_dataclass(_class_name(name), [(f, _PY_TYPES[k]) for f, k in spec]
                         + [(f, t, field(default=None)) for f, t in _TAILS.get(name, ())])
    for name, spec in BODY_FIELDS.items()
}
FLOAT_OUTPUT_TYPES = frozenset({"add", "global_average_pool2d", "average_pool2d", "dequantize", "l2_normalization",
                                "softmax", "fully_connected", "tensorflow_flatten", "resize_nearest_neighbor",
                                "channelwise_dequantize", "logistic"})


@dataclass
class V3Layer:
    index: int
    type: int
    name: str
    body: Any
    body_offset: int
    body_size: int

    def __str__(self) -> str:
        return f"layer {self.index} ({self.name}, type {self.type})"


@dataclass
class KmodelV3:
    """A parsed kmodel v3. `inputs`/`outputs` describe memories as v4's `MemoryRange`s."""

    path: str
    version: int
    flags: int
    arch: int
    max_start_address: int
    main_mem_size: int
    outputs: list[MemoryRange]
    layers: list[V3Layer] = field(default_factory=list)
    inputs: list[MemoryRange] = field(default_factory=list)
    input_shapes: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def eight_bit_mode(self) -> bool:
        return bool(self.flags & 1)

    def op_counts(self) -> dict[str, int]:
        return count_names(self.layers)


class _Body:
    """Bounded reader of one body; every error names the layer and the field."""

    def __init__(self, buf: bytes, pos: int, end: int, where: str):
        self.buf, self.pos, self.end, self.where = buf, pos, end, where

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise KmodelError(f"{self.where}: field {what}: truncated (needs {n} bytes at offset {self.pos}, "
                              f"{max(self.end - self.pos, 0)} left in the body)")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def value(self, name: str, kind: str):
        if kind == "shape":
            return struct.unpack("<3I", self.take(12, name))
        v = struct.unpack("<" + kind, self.take(4, name))[0]
        return float(np.float32(v)) if kind == "f" else v


def kmodel_version(source: str | Path | bytes) -> int | None:
    """3 for a kmodel v3 (first word 3), 4 for a v4 ('KMDL' identifier), None otherwise."""
    if isinstance(source, (bytes, bytearray)):
        head = bytes(source[:8])
    else:
        try:
            with open(source, "rb") as fh:
                head = fh.read(8)
        except OSError as exc:
            raise KmodelError(f"{source}: cannot read: {exc}") from exc
    if head[:4] == b"LDMK":
        return 4
    if len(head) >= 4 and struct.unpack("<I", head[:4])[0] == VERSION:
        return 3
    return None


def _file_span(buf: bytes, where: str, name: str, offset: int, nbytes: int) -> bytes:
    if offset + nbytes > len(buf):
        raise KmodelError(f"{where}: field {name}: file offset {offset} + {nbytes} bytes runs past the "
                          f"{len(buf)}-byte file")
    return buf[offset:offset + nbytes]


def _conv_tail(buf: bytes, body, where: str) -> None:
    words = np.frombuffer(_file_span(buf, where, "layer_offset", body.layer_offset, 96), "<u8")
    args = decode_layer(words)
    if args.kernel_type not in (0, 1):
        raise KmodelError(f"{where}: field kernel_type: {args.kernel_type} is not a KPU kernel (0 = 1x1, 1 = 3x3)")
    oc = args.out_channels
    bn = decode_bn(np.frombuffer(_file_span(buf, where, "bn_offset", body.bn_offset, 8 * oc), "<u8"))
    act = decode_act(np.frombuffer(_file_span(buf, where, "act_offset", body.act_offset, 8 * 18), "<u8"))
    weights = np.frombuffer(_file_span(buf, where, "weights_offset", body.weights_offset, args.weight_count()),
                            np.uint8).copy()
    body.args, body.bn, body.act, body.weights = args, bn, act, weights


def _parse_body(buf: bytes, layer_type: int, name: str, pos: int, size: int, where: str):
    r = _Body(buf, pos, pos + size, where)
    values = {f: r.value(f, k) for f, k in BODY_FIELDS[name]}
    body = BODY_CLASSES[name](**values)
    if name == "requantize":
        body.table = np.frombuffer(r.take(256, "table"), np.uint8).copy()
    elif name in ("concat", "quantized_concat"):
        n = body.input_count
        raw = r.take(8 * n, "inputs_mem")
        body.inputs = [struct.unpack_from("<2I", raw, 8 * i) for i in range(n)]
    elif name == "fully_connected":
        n_w = body.in_channels * body.out_channels
        body.weights = np.frombuffer(r.take(4 * n_w, "weights"), "<f4").copy()
        body.bias = np.frombuffer(r.take(4 * body.out_channels, "weights (bias)"), "<f4").copy()
        if body.act not in range(len(ACTIVATIONS)):
            raise KmodelError(f"{where}: field act: {body.act} (known: 0 linear, 1 relu, 2 relu6)")
    elif name == "average_pool2d":
        if body.act not in range(len(ACTIVATIONS)):
            raise KmodelError(f"{where}: field act: {body.act} (known: 0 linear, 1 relu, 2 relu6)")
    elif name == "channelwise_dequantize":
        q = np.frombuffer(r.take(8 * body.channels, "quant_params"), "<f4").reshape(-1, 2)
        body.scales, body.biases = q[:, 0].copy(), q[:, 1].copy()
    elif name == "k210_conv":
        _conv_tail(buf, body, where)
    return body


# ---------------------------------------------------------------- memory extents, for validation
def _align8(n: int) -> int:
    return (n + 7) & ~7


def main_memory_accesses(name: str, b) -> list[tuple[str, int, int]]:
    """(field, start, bytes) of every main-memory range layer body `b` reads or writes."""
    f = 4
    if name == "add":
        n = b.count * f
        return [("main_mem_in_a_address", b.main_mem_in_a_address, n), ("main_mem_in_b_address", b.main_mem_in_b_address, n),
                ("main_mem_out_address", b.main_mem_out_address, n)]
    if name == "quantized_add":  # kpu.c processes ALIGN_UP(count, 8) elements
        n = _align8(b.count)
        return [("main_mem_in_a_address", b.main_mem_in_a_address, n), ("main_mem_in_b_address", b.main_mem_in_b_address, n),
                ("main_mem_out_address", b.main_mem_out_address, n)]
    if name == "global_average_pool2d":
        return [("main_mem_in_address", b.main_mem_in_address, b.kernel_size * b.channels * f),
                ("main_mem_out_address", b.main_mem_out_address, b.channels * f)]
    if name in ("quantized_max_pool2d", "average_pool2d"):
        e = 1 if name.startswith("quantized") else f
        (iw, ih, ic), (ow, oh, oc) = b.in_shape, b.out_shape
        return [("main_mem_in_address", b.main_mem_in_address, iw * ih * max(ic, oc) * e),
                ("main_mem_out_address", b.main_mem_out_address, ow * oh * oc * e)]
    if name == "quantize":
        return [("main_mem_in_address", b.main_mem_in_address, b.count * f), ("mem_out_address", b.mem_out_address, b.count)]
    if name in ("dequantize", "requantize"):
        e = f if name == "dequantize" else 1
        return [("main_mem_in_address", b.main_mem_in_address, b.count),
                ("main_mem_out_address", b.main_mem_out_address, b.count * e)]
    if name in ("l2_normalization", "softmax", "logistic"):
        return [("main_mem_in_address", b.main_mem_in_address, b.channels * f),
                ("main_mem_out_address", b.main_mem_out_address, b.channels * f)]
    if name in ("concat", "quantized_concat"):
        out = [(f"inputs_mem[{i}]", s, n) for i, (s, n) in enumerate(b.inputs)]
        return out + [("main_mem_out_address", b.main_mem_out_address, sum(n for _, n in b.inputs))]
    if name == "fully_connected":
        return [("main_mem_in_address", b.main_mem_in_address, b.in_channels * f),
                ("main_mem_out_address", b.main_mem_out_address, b.out_channels * f)]
    if name == "tensorflow_flatten":
        n = int(np.prod(b.shape, dtype=object)) * f
        return [("main_mem_in_address", b.main_mem_in_address, n), ("main_mem_out_address", b.main_mem_out_address, n)]
    if name in ("resize_nearest_neighbor", "quantized_resize_nearest_neighbor"):
        e = 1 if name.startswith("quantized") else f
        w, h, c = b.in_shape
        return [("main_mem_in_address", b.main_mem_in_address, w * h * c * e),
                ("main_mem_out_address", b.main_mem_out_address, b.out_width * b.out_height * c * e)]
    if name == "channelwise_dequantize":
        n = b.channels * b.channel_size
        return [("main_mem_in_address", b.main_mem_in_address, n), ("main_mem_out_address", b.main_mem_out_address, n * f)]
    if name == "k210_conv":
        if not b.flags & FLAG_MAIN_MEM_OUT:
            return []
        a = b.args
        return [("main_mem_out_address", b.main_mem_out_address, a.out_channels * a.out_hw[0] * a.out_hw[1])]
    if name == "k210_add_padding":
        return [("main_mem_in_address", b.main_mem_in_address, b.channels)]
    if name == "k210_remove_padding":
        return [("main_mem_in_address", b.main_mem_in_address, (b.channels - 1) * 16 + 1 if b.channels else 0),
                ("main_mem_out_address", b.main_mem_out_address, b.channels)]
    if name == "k210_upload":
        return [("main_mem_in_address", b.main_mem_in_address, b.width * b.height * b.channels)]
    return []


def kpu_ram_accesses(name: str, b) -> list[tuple[str, int, int]]:
    """(field, byte start, bytes) of the KPU RAM a layer writes (conv reads and writes)."""
    if name == "k210_conv":
        a = b.args
        (h, w), (oh, ow) = a.in_hw, a.out_hw
        return [("image_src_addr", a.image_src_addr * 64, layout.fmap_bytes(w, h, a.in_channels)),
                ("image_dst_addr", a.image_dst_addr * 64, layout.fmap_bytes(ow, oh, a.out_channels))]
    if name == "k210_add_padding":
        c = b.channels
        return [("kpu_mem_out_address", b.kpu_mem_out_address * 64, ((c - 1) // 4) * 256 + ((c - 1) % 4) * 16 + 1 if c else 0)]
    if name == "k210_upload":
        if min(b.width, b.height, b.channels) == 0:
            return [("kpu_mem_out_address", b.kpu_mem_out_address * 64, 0)]
        return [("kpu_mem_out_address", b.kpu_mem_out_address * 64, layout.fmap_bytes(b.width, b.height, b.channels))]
    return []


def _validate(layer: V3Layer, main_size: int, where: str) -> None:
    name, b = layer.name, layer.body
    for fld, start, nbytes in main_memory_accesses(name, b):
        if start + nbytes > main_size:
            raise KmodelError(f"{where}: field {fld}: main memory [{start}, {start + nbytes}) runs past "
                              f"main_mem_usage = {main_size} bytes")
    for fld, start, nbytes in kpu_ram_accesses(name, b):
        if start + nbytes > layout.KPU_RAM_BYTES:
            raise KmodelError(f"{where}: field {fld}: KPU RAM [{start}, {start + nbytes}) runs past the 2 MiB KPU RAM")
    if name == "quantized_add":
        for fld in ("in_a_shift", "in_b_shift", "out_shift"):
            if not 0 <= getattr(b, fld) <= 63:  # a C shift of an int64 by <0 or >63 is undefined
                raise KmodelError(f"{where}: field {fld}: {getattr(b, fld)} (an int64 shift needs 0..63)")
    if name in ("quantize", "dequantize") and not np.isfinite([b.scale, b.bias]).all():
        raise KmodelError(f"{where}: field quant_param: scale {b.scale}, bias {b.bias} (must be finite)")
    if name == "quantize" and b.scale == 0:
        raise KmodelError(f"{where}: field quant_param.scale: 0 (kpu.c divides by it)")
    if name == "channelwise_dequantize" and not (np.isfinite(b.scales).all() and np.isfinite(b.biases).all()):
        raise KmodelError(f"{where}: field quant_params: a scale or bias is not finite")
    if name == "k210_conv":
        a = b.args
        n = a.out_channels * a.out_hw[0] * a.out_hw[1]
        if b.flags & FLAG_MAIN_MEM_OUT and a.dma_total_byte + 1 != n:
            raise KmodelError(f"{where}: field dma_total_byte: {a.dma_total_byte}; the {a.out_channels}x"
                              f"{a.out_hw[0]}x{a.out_hw[1]} output sent to main memory needs {n - 1}")


def read_kmodel_v3(source: str | Path | bytes) -> KmodelV3:
    """Parse a kmodel v3 (path or bytes) into a `KmodelV3`; `KmodelError` on any defect."""
    buf, where = read_source(source)
    if len(buf) < 4 * HEADER_WORDS:
        raise KmodelError(f"{where}: truncated: {len(buf)} bytes, a kmodel v3 header has {4 * HEADER_WORDS}")
    version, flags, arch, n_layers, max_start, main_size, n_out = struct.unpack_from("<7I", buf, 0)
    if version != VERSION:
        raise KmodelError(f"{where}: header field version: {version}; a kmodel v3 has 3")
    if arch != 0:
        raise KmodelError(f"{where}: header field arch: {arch}; kpu.c loads arch 0 only")
    if main_size > SRAM_BYTES:
        raise KmodelError(f"{where}: header field main_mem_usage: {main_size} bytes, more than the K210's "
                          f"{SRAM_BYTES} bytes of SRAM")
    pos = 4 * HEADER_WORDS
    if n_out > 64 or n_layers > 100000 or pos + 8 * (n_out + n_layers) > len(buf):
        raise KmodelError(f"{where}: header fields output_count {n_out} / layers_length {n_layers}: the output "
                          f"and layer tables need {pos + 8 * (n_out + n_layers)} bytes, the file has {len(buf)}")
    if n_layers == 0:
        raise KmodelError(f"{where}: header field layers_length: 0 (a model needs a layer)")
    outputs = []
    for i in range(n_out):
        address, size = struct.unpack_from("<2I", buf, pos + 8 * i)
        if address + size > main_size:
            raise KmodelError(f"{where}: output {i}: main memory [{address}, {address + size}) runs past "
                              f"main_mem_usage = {main_size} bytes")
        outputs.append((address, size))
    pos += 8 * n_out
    heads = [struct.unpack_from("<2I", buf, pos + 8 * i) for i in range(n_layers)]
    pos += 8 * n_layers
    layers: list[V3Layer] = []
    for idx, (ltype, size) in enumerate(heads):
        name = LAYER_TYPES.get(ltype)
        lwhere = f"{where}: layer {idx} ({name or 'unknown'}, type {ltype})"
        if name is None:
            raise KmodelError(f"{lwhere}: field type: unknown layer type (known: {sorted(LAYER_TYPES)})")
        if ltype in UNIMPLEMENTED_TYPES:
            raise KmodelError(f"{lwhere}: field type: the v3 runtime (kpu.c) declares this type but does not "
                              "implement it ('Layer is not supported')")
        if pos + size > len(buf):
            raise KmodelError(f"{lwhere}: field body_size: the body [{pos}, {pos + size}) runs past the "
                              f"{len(buf)}-byte file")
        layer = V3Layer(idx, ltype, name, _parse_body(buf, ltype, name, pos, size, lwhere), pos, size)
        _validate(layer, main_size, lwhere)
        layers.append(layer)
        pos += size
    model = KmodelV3(where, version, flags, arch, max_start, main_size, [], layers)
    model.outputs = [MemoryRange(1, 0 if _writes_float(layers, a, s) else 1, a, s) for a, s in outputs]
    _describe_input(model)
    return model


def _writes_float(layers: list[V3Layer], address: int, size: int) -> bool:
    """Whether the last layer writing main memory [address, address+size) writes float32."""
    for layer in reversed(layers):
        for fld, start, nbytes in main_memory_accesses(layer.name, layer.body):
            if "out" in fld and start <= address and address + size <= start + nbytes:
                return layer.name in FLOAT_OUTPUT_TYPES and size % 4 == 0
    return False


def _describe_input(model: KmodelV3) -> None:
    """The input as ``kpu_run_kmodel`` takes it: an image for a first K210_CONV, floats for a first FC."""
    first = model.layers[0]
    if first.name == "k210_conv":
        a = first.body.args
        h, w = a.in_hw
        model.inputs = [MemoryRange(2, 1, a.image_src_addr * 64, layout.fmap_bytes(w, h, a.in_channels))]
        model.input_shapes = [(1, a.in_channels, h, w)]
    elif first.name == "fully_connected":
        b = first.body
        model.inputs = [MemoryRange(1, 0, b.main_mem_in_address, 4 * b.in_channels)]
        model.input_shapes = [(1, b.in_channels, 1, 1)]
    else:
        raise KmodelError(f"{model.path}: {first}: kpu_run_kmodel starts only a model whose first layer is "
                          "k210_conv or fully_connected")
