"""Deployment export of a kmodel v4: every KPU layer's register block and tables as C arrays.

``export(model, out_dir)`` writes, per ``kpu_conv2d`` node, ``node3_kpu_conv2d.h``:

* ``<stem>_layer_args`` ``uint64_t[12]``: the layer-argument words exactly as the kmodel
  stores them (SDK ``kpu_layer_argument_t`` order, ``k210-kpu.md`` §1.4). ``image_src_addr``
  / ``image_dst_addr`` are KPU RAM 64-byte line indices; ``bwsx_base_addr``, ``active_addr``
  and ``para_start_addr`` hold the kmodel's body skips: firmware writes into them the bus
  addresses (CPU address - 0x40000000) of the three arrays below (the activation table
  256-byte aligned), as the SDK runtime does;
* ``<stem>_bn`` ``uint64_t[OC]`` (norm_mul, norm_add, norm_shift), ``<stem>_act``
  ``uint64_t[18]`` (16 segments + 2 bias words), ``<stem>_weights`` ``uint8_t``
  (OC, IC|1, K, K) - the bytes the KPU reads;
* ``#define``s for the shapes, kernel, depthwise, pad value, conv offsets, pool type and
  batches (the same names as the C vectors of `qsim.vectors.k210`);

and ``model.h`` including them with a table of the layers. CPU nodes are not exported (the
kmodel runtime's own code runs them; `qsim.k210.cpu_ops` documents their arithmetic).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qsim.errors import InputError
from qsim.export import c_array, model_header, write_files
from qsim.k210.fields import encode_act, encode_bn, encode_layer
from qsim.k210.kmodel import Kmodel, KpuConv2d, read_kmodel
from qsim.k210.kpu import POOL_TYPES, KpuLayer
from qsim.vectors.k210 import layer_entry, layer_name, layer_stem


def u64_array(name: str, words, per_line: int = 4) -> str:
    """``static const uint64_t name[N]`` in hex (values up to 2**64 - 1, no int64 detour)."""
    vals = [f"0x{int(w):016x}ULL" for w in words]
    rows = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return f"static const uint64_t {name}[{len(vals)}] = {{\n    " + ",\n    ".join(rows) + "\n};\n"


def layer_header(index: int, body: KpuConv2d, model_name: str) -> str:
    a = body.args
    layer = KpuLayer.from_registers(a, body.bn, body.act, body.weights, name=layer_name(index))
    stem = layer_stem(index)
    L = stem.upper()
    _, defines = layer_entry(layer_name(index), layer, body.batches)
    lines = [f"/* qsim export: KPU layer {layer_name(index)} of '{model_name}', generated; do not edit.",
             f"   {'depthwise ' if a.depthwise else ''}{a.kernel_size}x{a.kernel_size} conv {a.in_channels}x"
             f"{a.in_hw[0]}x{a.in_hw[1]} -> {a.out_channels}x{a.out_hw[0]}x{a.out_hw[1]}, pool "
             f"{POOL_TYPES[a.pool_type][0]}; layer_args as stored: set bwsx_base_addr, active_addr, para_start_addr",
             "   to the bus addresses of _bn, _act (256-byte aligned) and _weights before sending the layer */",
             f"#ifndef QSIM_{L}_H", f"#define QSIM_{L}_H", "#include <stdint.h>"]
    lines += [f"#define {L}_{name} {value}" for name, value in defines] + [""]
    lines += ["/* kpu_layer_argument_t, 12 x 64-bit words */", u64_array(f"{stem}_layer_args", encode_layer(a)),
              "/* BN table: norm_mul[23:0], norm_add[55:24], norm_shift[59:56] per output channel */",
              u64_array(f"{stem}_bn", encode_bn(body.bn)),
              "/* activation table: 16 x (shift[7:0], y_mul[23:8], x_start[59:24]), 2 words of 8 uint8 biases */",
              u64_array(f"{stem}_act", encode_act(body.act)),
              "/* weights, uint8 (OC, IC|1, K, K) */", c_array("uint8_t", f"{stem}_weights", np.asarray(body.weights)),
              f"#endif /* QSIM_{L}_H */", ""]
    return "\n".join(lines)


def export(model: "Kmodel | str | Path", out_dir: "str | Path", *, model_name: str = "") -> list[Path]:
    """Write ``node<i>_kpu_conv2d.h`` per KPU layer and ``model.h``; returns the files."""
    model = model if isinstance(model, Kmodel) else read_kmodel(model)
    nodes = [n for n in model.nodes if isinstance(n.body, KpuConv2d)]
    if not nodes:
        raise InputError(f"export: {model.path} has no kpu_conv2d node")
    name = model_name or Path(model.path).name
    files = [(f"{layer_stem(n.index)}.h", layer_header(n.index, n.body, name)) for n in nodes]
    comment = [f"/* qsim export: kmodel '{name}' (v{model.version}, target {model.target}), KPU layers; "
               "generated; do not edit.", "   layer | kernel | in C x H x W | out C x H x W | pool | batches */"]
    for n in nodes:
        a = n.body.args
        comment.append(f"/* {layer_stem(n.index)} | {'dw ' if a.depthwise else ''}{a.kernel_size}x{a.kernel_size} | "
                       f"{a.in_channels}x{a.in_hw[0]}x{a.in_hw[1]} | {a.out_channels}x{a.out_hw[0]}x{a.out_hw[1]} | "
                       f"{POOL_TYPES[a.pool_type][0]} | {n.body.batches} */")
    files.append(("model.h", model_header(comment, f"QSIM_N_KPU_LAYERS {len(nodes)}", [f for f, _ in files])))
    return write_files(out_dir, files)
