"""Write kmodel v3 files: the exact inverse of `qsim.k210.kmodel_v3` (tests and small synthetic models).

`build_kmodel_v3` lays a file out as the vendor's are: header, output table, layer table,
then the bodies back to back. A K210_CONV body gets its register words, BN entries,
activation table and weights appended inside the body at 256-byte aligned file offsets (as
in the public models), and its six-word head points at them.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qsim.errors import KmodelError
from qsim.k210.fields import encode_act, encode_bn, encode_layer
from qsim.k210.kmodel_v3 import BODY_FIELDS, LAYER_TYPES, VERSION

_CODES = {name: code for code, name in LAYER_TYPES.items()}


@dataclass
class LayerSpec:
    """One layer to write: its type name and kpu.h field values (tails by their reader names)."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)


def _pack_fixed(name: str, values: dict) -> bytes:
    out = bytearray()
    for f, kind in BODY_FIELDS[name]:
        if f in ("layer_offset", "weights_offset", "bn_offset", "act_offset"):
            out += b"\0\0\0\0"  # filled in by the conv layout
            continue
        v = values.get(f, 0)
        out += struct.pack("<3I", *v) if kind == "shape" else struct.pack("<" + kind, v)
    return bytes(out)


def _pack_tail(name: str, v: dict) -> bytes:
    if name == "requantize":
        return np.asarray(v["table"], np.uint8).tobytes()
    if name in ("concat", "quantized_concat"):
        return b"".join(struct.pack("<2I", s, n) for s, n in v["inputs"])
    if name == "fully_connected":
        return np.asarray(v["weights"], "<f4").tobytes() + np.asarray(v["bias"], "<f4").tobytes()
    if name == "channelwise_dequantize":
        return np.stack([np.asarray(v["scales"], "<f4"), np.asarray(v["biases"], "<f4")], 1).tobytes()
    return b""


def _conv_body(values: dict, body_offset: int) -> bytes:
    """Head + registers + BN + activation + weights, each at a 256-byte aligned file offset."""
    layer = values["layer"]  # a KpuLayer (args, bn, act, weights)
    parts = [struct.pack("<12Q", *encode_layer(layer.args)), encode_bn(layer.bn).astype("<u8").tobytes(),
             encode_act(layer.act).astype("<u8").tobytes(), np.asarray(layer.weights, np.uint8).tobytes()]
    body = bytearray(_pack_fixed("k210_conv", values))
    offsets = []
    for p in parts:
        pad = -(body_offset + len(body)) % 256
        body += b"\0" * pad
        offsets.append(body_offset + len(body))
        body += p
    layer_off, bn_off, act_off, w_off = offsets
    struct.pack_into("<4I", body, 8, layer_off, w_off, bn_off, act_off)
    return bytes(body)


def build_kmodel_v3(layers: list[LayerSpec], outputs: list[tuple[int, int]], main_mem_usage: int,
                    flags: int = 1, max_start_address: int = 0) -> bytes:
    """The bytes of a kmodel v3 with these layers (in order) and output ranges of main memory."""
    for spec in layers:
        if spec.name not in _CODES:
            raise KmodelError(f"unknown v3 layer type {spec.name!r}")
    pos = 4 * 7 + 8 * len(outputs) + 8 * len(layers)
    bodies = []
    for spec in layers:
        if spec.name == "k210_conv":
            body = _conv_body(spec.values, pos)
        else:
            body = _pack_fixed(spec.name, spec.values) + _pack_tail(spec.name, spec.values)
        bodies.append(body)
        pos += len(body)
    head = struct.pack("<7I", VERSION, flags, 0, len(layers), max_start_address, main_mem_usage, len(outputs))
    head += b"".join(struct.pack("<2I", a, s) for a, s in outputs)
    head += b"".join(struct.pack("<2I", _CODES[s.name], len(b)) for s, b in zip(layers, bodies))
    return head + b"".join(bodies)
