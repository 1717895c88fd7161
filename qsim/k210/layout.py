"""KPU RAM: 2 MiB of 64-byte lines, and the channel-major padded-row layout of a uint8 feature map.

For a map of width W (``k210-kpu.md`` §1.2):

=============  ==========================  ============  ======================
W              channels per line (groups)   slot pitch    lines per row (row_len)
=============  ==========================  ============  ======================
W <= 16        4                            16 bytes      1
16 < W <= 32   2                            32 bytes      1
W > 32         1                            64 bytes      ceil(W / 64)
=============  ==========================  ============  ======================

Byte address of (c, y, x) from the tensor base:
``64*row_len*H*(c // groups) + pitch*(c % groups) + 64*row_len*y + x``;
size of an H x W x C map: ``64*row_len*H*ceil(C / groups)``. Batches are stacked at
multiples of that size. Padding bytes are left untouched ("don't care").
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qsim.errors import InputError

KPU_RAM_BYTES = 2 * 1024 * 1024
LINE_BYTES = 64
KPU_RAM_LINES = KPU_RAM_BYTES // LINE_BYTES


@dataclass(frozen=True)
class RowLayout:
    groups: int     # channels sharing one 64-byte line
    row_pitch: int  # bytes between those channels' slots
    row_len: int    # 64-byte lines per row


def row_layout(width: int) -> RowLayout:
    """The layout rule for a map `width` pixels wide.

    >>> row_layout(16), row_layout(20), row_layout(112)
    (RowLayout(groups=4, row_pitch=16, row_len=1), RowLayout(groups=2, row_pitch=32, row_len=1), RowLayout(groups=1, row_pitch=64, row_len=2))
    """
    if width < 1:
        raise InputError(f"feature-map width must be >= 1, got {width}")
    if width <= 16:
        return RowLayout(4, 16, 1)
    if width <= 32:
        return RowLayout(2, 32, 1)
    return RowLayout(1, 64, (width + 63) // 64)


def fmap_bytes(width: int, height: int, channels: int) -> int:
    """KPU RAM bytes of one W x H x C uint8 map (a multiple of 64).

    >>> fmap_bytes(224, 224, 3), fmap_bytes(112, 112, 32), fmap_bytes(7, 7, 1024)
    (172032, 458752, 114688)
    """
    lay = row_layout(width)
    return LINE_BYTES * lay.row_len * height * -(-channels // lay.groups)


def fmap_lines(width: int, height: int, channels: int) -> int:
    return fmap_bytes(width, height, channels) // LINE_BYTES


def layout_registers(channels: int, height: int, width: int) -> tuple[int, int, int]:
    """(channel_switch_addr, row_switch_addr, coef_group) of a map: the layout in register units.

    >>> layout_registers(16, 120, 160), layout_registers(128, 15, 20)
    ((360, 3, 1), (15, 1, 2))
    """
    lay = row_layout(width)
    return lay.row_len * height, lay.row_len, lay.groups


@lru_cache(maxsize=256)
def _addresses(channels: int, height: int, width: int) -> np.ndarray:
    lay = row_layout(width)
    c = np.arange(channels, dtype=np.int64)[:, None, None]
    y = np.arange(height, dtype=np.int64)[None, :, None]
    x = np.arange(width, dtype=np.int64)[None, None, :]
    addr = (LINE_BYTES * lay.row_len * height * (c // lay.groups) + lay.row_pitch * (c % lay.groups)
            + LINE_BYTES * lay.row_len * y + x)
    addr.setflags(write=False)
    return addr


def byte_addresses(channels: int, height: int, width: int) -> np.ndarray:
    """int64 array (C, H, W): byte offset of every pixel from the tensor base."""
    return _addresses(int(channels), int(height), int(width))


def _check_span(ram: np.ndarray, base: int, nbytes: int, what: str) -> None:
    if base < 0 or base + nbytes > ram.size:
        raise InputError(f"{what}: bytes [{base}, {base + nbytes}) fall outside the "
                         f"{ram.size}-byte KPU RAM")


def upload(ram: np.ndarray, base: int, fmap: np.ndarray) -> None:
    """Write a uint8 (N, C, H, W) or (C, H, W) map into `ram` (uint8, flat) at byte `base`."""
    fmap = np.asarray(fmap)
    if fmap.ndim == 3:
        fmap = fmap[None]
    n, c, h, w = fmap.shape
    size = fmap_bytes(w, h, c)
    _check_span(ram, base, n * size, f"upload of a {n}x{c}x{h}x{w} map")
    addr = byte_addresses(c, h, w)
    for b in range(n):
        ram[base + b * size + addr] = fmap[b]


def download(ram: np.ndarray, base: int, shape: tuple[int, ...]) -> np.ndarray:
    """Read a (C, H, W) or (N, C, H, W) uint8 map from `ram` at byte `base` (a copy)."""
    n, (c, h, w) = (1, shape) if len(shape) == 3 else (shape[0], shape[1:])
    size = fmap_bytes(w, h, c)
    _check_span(ram, base, n * size, f"download of a {n}x{c}x{h}x{w} map")
    addr = byte_addresses(c, h, w)
    out = np.stack([ram[base + b * size + addr] for b in range(n)])
    return out if len(shape) == 4 else out[0]
