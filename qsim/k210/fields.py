"""KPU register words: decoding and encoding of the 12-word layer argument, BN entries, activation table.

Bit map (LSB = bit 0) from the K210 SDK's ``kpu.h``; see ``k210-kpu.md`` §1.4. Signedness and
widths are those the vendor emulator decodes with:

=====================  ==========================  =========================================
field                  bits                         type
=====================  ==========================  =========================================
arg_x, arg_w           conv_value [55:32], [31:8]   int24 (two's complement)
shr_x, shr_w           conv_value [7:4], [3:0]      uint4
arg_add                conv_value2 [39:0]           int40
norm_mul / add / shift BN entry [23:0] [55:24]      int24 / int32 / uint4
                       [59:56]
x_start / y_mul /      act segment [59:24] [23:8]   int36 / int16 / uint8
shift_number           [7:0]
bias                   bytes of act words 16, 17    uint8
=====================  ==========================  =========================================

`LayerArgs` keeps every field by its SDK name; `encode_layer` is the exact inverse of
`decode_layer` for in-range values (tests round-trip them), so the quantizer can emit real
register words.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from qsim.errors import KmodelError

# word index -> [(field, lsb, width, signed)]
LAYER_FIELDS: tuple[tuple[tuple[str, int, int, bool], ...], ...] = (
    (("int_en", 0, 1, False), ("ram_flag", 1, 1, False), ("full_add", 2, 1, False),
     ("depth_wise_layer", 3, 1, False)),
    (("image_src_addr", 0, 15, False), ("image_dst_addr", 32, 15, False)),
    (("i_ch_num", 0, 10, False), ("o_ch_num", 32, 10, False), ("o_ch_num_coef", 48, 10, False)),
    (("i_row_wid", 0, 10, False), ("i_col_high", 10, 9, False), ("o_row_wid", 32, 10, False),
     ("o_col_high", 42, 9, False)),
    (("kernel_type", 0, 3, False), ("pad_type", 3, 1, False), ("pool_type", 4, 4, False),
     ("first_stride", 8, 1, False), ("bypass_conv", 9, 1, False), ("load_para", 10, 1, False),
     ("dma_burst_size", 16, 8, False), ("pad_value", 24, 8, False), ("bwsx_base_addr", 32, 32, False)),
    (("load_coor", 0, 1, False), ("load_time", 1, 6, False), ("para_size", 15, 17, False),
     ("para_start_addr", 32, 32, False)),
    (("coef_column_offset", 0, 4, False), ("coef_row_offset", 4, 12, False)),
    (("channel_switch_addr", 0, 15, False), ("row_switch_addr", 16, 4, False),
     ("coef_size", 20, 8, False), ("coef_group", 28, 3, False), ("load_act", 31, 1, False),
     ("active_addr", 32, 32, False)),
    (("wb_channel_switch_addr", 0, 15, False), ("wb_row_switch_addr", 16, 4, False),
     ("wb_group", 20, 3, False)),
    (("shr_w", 0, 4, False), ("shr_x", 4, 4, False), ("arg_w", 8, 24, True), ("arg_x", 32, 24, True)),
    (("arg_add", 0, 40, True),),
    (("send_data_out", 0, 1, False), ("channel_byte_num", 16, 16, False),
     ("dma_total_byte", 32, 32, False)),
)

ACT_SEGMENTS = 16


def to_signed(value: int, bits: int) -> int:
    """Two's complement value of the low `bits` bits of `value`.

    >>> to_signed(0xFFFFFF, 24), to_signed(0x7FFFFF, 24), to_signed(0x800000000, 36)
    (-1, 8388607, -34359738368)
    """
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _field(word: int, lsb: int, width: int, signed: bool) -> int:
    raw = (word >> lsb) & ((1 << width) - 1)
    return to_signed(raw, width) if signed else raw


@dataclass
class LayerArgs:
    """The 12 KPU layer-argument words, one attribute per SDK field (raw register values)."""

    int_en: int = 0
    ram_flag: int = 0
    full_add: int = 0
    depth_wise_layer: int = 0
    image_src_addr: int = 0
    image_dst_addr: int = 0
    i_ch_num: int = 0
    o_ch_num: int = 0
    o_ch_num_coef: int = 0
    i_row_wid: int = 0
    i_col_high: int = 0
    o_row_wid: int = 0
    o_col_high: int = 0
    kernel_type: int = 0
    pad_type: int = 0
    pool_type: int = 0
    first_stride: int = 0
    bypass_conv: int = 0
    load_para: int = 0
    dma_burst_size: int = 0
    pad_value: int = 0
    bwsx_base_addr: int = 0
    load_coor: int = 0
    load_time: int = 0
    para_size: int = 0
    para_start_addr: int = 0
    coef_column_offset: int = 0
    coef_row_offset: int = 0
    channel_switch_addr: int = 0
    row_switch_addr: int = 0
    coef_size: int = 0
    coef_group: int = 0
    load_act: int = 0
    active_addr: int = 0
    wb_channel_switch_addr: int = 0
    wb_row_switch_addr: int = 0
    wb_group: int = 0
    shr_w: int = 0
    shr_x: int = 0
    arg_w: int = 0
    arg_x: int = 0
    arg_add: int = 0
    send_data_out: int = 0
    channel_byte_num: int = 0
    dma_total_byte: int = 0

    # derived, in natural units
    @property
    def in_channels(self) -> int:
        return self.i_ch_num + 1

    @property
    def out_channels(self) -> int:
        return self.o_ch_num + 1

    @property
    def in_hw(self) -> tuple[int, int]:
        return self.i_col_high + 1, self.i_row_wid + 1

    @property
    def out_hw(self) -> tuple[int, int]:
        return self.o_col_high + 1, self.o_row_wid + 1

    @property
    def kernel_size(self) -> int:
        """1 (kernel_type 0) or 3 (kernel_type 1); anything else is not a KPU kernel."""
        if self.kernel_type not in (0, 1):
            raise KmodelError(f"kernel_type {self.kernel_type} is not a KPU kernel (0 = 1x1, 1 = 3x3)")
        return 1 if self.kernel_type == 0 else 3

    @property
    def depthwise(self) -> bool:
        return bool(self.depth_wise_layer)

    def weight_count(self) -> int:
        k2 = self.kernel_size ** 2
        return self.out_channels * k2 * (1 if self.depthwise else self.in_channels)


def decode_layer(words) -> LayerArgs:
    """Decode 12 uint64 register words into a `LayerArgs`."""
    words = [int(w) for w in words]
    if len(words) != 12:
        raise KmodelError(f"a KPU layer argument has 12 words, got {len(words)}")
    values = {}
    for word, spec in zip(words, LAYER_FIELDS):
        for name, lsb, width, signed in spec:
            values[name] = _field(word, lsb, width, signed)
    return LayerArgs(**values)


def encode_layer(args: LayerArgs) -> list[int]:
    """The 12 uint64 words of `args`; raises if a field does not fit its width."""
    words = []
    for spec in LAYER_FIELDS:
        word = 0
        for name, lsb, width, signed in spec:
            value = int(getattr(args, name))
            lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
            if not lo <= value <= hi:
                raise KmodelError(f"KPU field {name}={value} does not fit {width} bits "
                                  f"({'signed' if signed else 'unsigned'})")
            word |= (value & ((1 << width) - 1)) << lsb
        words.append(word)
    return words


@dataclass
class BatchNorm:
    """Per-output-channel BN registers: B = floor(A * mul / 2**shift) + add."""

    mul: np.ndarray    # int64, int24 range
    shift: np.ndarray  # int64, 0..15
    add: np.ndarray    # int64, int32 range


def decode_bn(entries: np.ndarray) -> BatchNorm:
    """Decode uint64 BN entries (norm_mul[23:0], norm_add[55:24], norm_shift[59:56])."""
    e = [int(v) for v in np.asarray(entries, dtype=np.uint64)]
    return BatchNorm(
        mul=np.array([_field(v, 0, 24, True) for v in e], dtype=np.int64),
        shift=np.array([_field(v, 56, 4, False) for v in e], dtype=np.int64),
        add=np.array([_field(v, 24, 32, True) for v in e], dtype=np.int64),
    )


def encode_bn(bn: BatchNorm) -> np.ndarray:
    """uint64 BN entries of `bn` (inverse of `decode_bn`)."""
    out = []
    for m, s, a in zip(bn.mul.tolist(), bn.shift.tolist(), bn.add.tolist()):
        if not (-(1 << 23) <= m < (1 << 23) and 0 <= s < 16 and -(1 << 31) <= a < (1 << 31)):
            raise KmodelError(f"BN entry (mul={m}, shift={s}, add={a}) does not fit int24/uint4/int32")
        out.append((m & 0xFFFFFF) | ((a & 0xFFFFFFFF) << 24) | (s << 56))
    return np.array(out, dtype=np.uint64)


@dataclass
class ActTable:
    """The 16-segment activation table: Z = clamp(round((B - x_start)*y_mul / 2**shift) + bias, 0, 255)."""

    x_start: np.ndarray  # int64, int36 range
    y_mul: np.ndarray    # int64, int16 range
    shift: np.ndarray    # int64, 0..255 (nncase uses 0..43)
    bias: np.ndarray     # int64, 0..255


def decode_act(words) -> ActTable:
    """Decode the 18 uint64 words of an activation table."""
    w = [int(v) for v in words]
    if len(w) != 18:
        raise KmodelError(f"an activation table has 18 words, got {len(w)}")
    seg = w[:ACT_SEGMENTS]
    bias = [(w[16 + i // 8] >> (8 * (i % 8))) & 0xFF for i in range(ACT_SEGMENTS)]
    return ActTable(
        x_start=np.array([_field(v, 24, 36, True) for v in seg], dtype=np.int64),
        y_mul=np.array([_field(v, 8, 16, True) for v in seg], dtype=np.int64),
        shift=np.array([_field(v, 0, 8, False) for v in seg], dtype=np.int64),
        bias=np.array(bias, dtype=np.int64),
    )


def encode_act(table: ActTable) -> np.ndarray:
    """The 18 uint64 words of `table` (inverse of `decode_act`)."""
    words = []
    for xs, m, s in zip(table.x_start.tolist(), table.y_mul.tolist(), table.shift.tolist()):
        if not (-(1 << 35) <= xs < (1 << 35) and -(1 << 15) <= m < (1 << 15) and 0 <= s < 256):
            raise KmodelError(f"activation segment (x_start={xs}, y_mul={m}, shift={s}) "
                              "does not fit int36/int16/uint8")
        words.append(s | ((m & 0xFFFF) << 8) | ((xs & ((1 << 36) - 1)) << 24))
    for half in range(2):
        word = 0
        for k in range(8):
            b = int(table.bias[8 * half + k])
            if not 0 <= b <= 255:
                raise KmodelError(f"activation bias {b} of segment {8 * half + k} is not a uint8")
            word |= b << (8 * k)
        words.append(word)
    return np.array(words, dtype=np.uint64)


def layer_field_names() -> list[str]:
    return [f.name for f in fields(LayerArgs)]
