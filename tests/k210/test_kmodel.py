"""kmodel v4: byte-identical to the vendor runtime on slim-320; clear errors for defective files."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from qsim.errors import InputError, KmodelError
from qsim.k210 import KmodelExecutor, KpuSwitches, read_kmodel


@pytest.fixture(scope="module")
def slim(data_dir):
    return data_dir / "kmodels" / "slim-320.kmodel"


@pytest.fixture(scope="module")
def golden(data_dir):
    return np.load(data_dir / "kmodels" / "slim-320-golden.npz")


@pytest.fixture(scope="module")
def executor(slim):
    return KmodelExecutor(slim)


def test_reader_structure(slim):
    m = read_kmodel(slim)
    assert (m.version, m.target, len(m.nodes)) == (4, "k210", 73)
    assert m.op_counts()["kpu_conv2d"] == 42 and m.op_counts()["kpu_upload"] == 1
    assert m.input_shapes == [(1, 3, 240, 320)]
    assert [(o.start, o.size, o.dtype.name) for o in m.outputs] == [(12056, 35360, "float32"), (165760, 70720, "float32")]
    convs = [n.body for n in m.nodes if n.name == "kpu_conv2d"]
    # decoded conventions of ncc 0.2 (k210-kpu.md §7.2): arg_add = K^2 * arg_x * arg_w, norm_shift 15
    for c in convs:
        k2 = c.args.kernel_size ** 2
        assert c.args.arg_add == k2 * c.args.arg_x * c.args.arg_w
        assert set(c.bn.shift.tolist()) == {15}
        assert c.args.pool_type in (0, 5)


def test_golden_outputs_byte_identical(executor, golden):
    """The acceptance test: all 9 recorded inputs, both outputs, every byte."""
    for i in range(len(golden["inputs"])):
        run = executor.run(golden["inputs"][i])
        assert run.outputs[0].tobytes() == golden["output0_bytes"][i].tobytes(), f"scores, input {i}"
        assert run.outputs[1].tobytes() == golden["output1_bytes"][i].tobytes(), f"boxes, input {i}"


def test_half_up_activation_rounding_breaks_bit_exactness(slim, golden):
    """The tie rule is observable on real data: the SDK kpu.c half-up rule does not reproduce the golden bytes."""
    run = KmodelExecutor(slim, KpuSwitches(act_rounding="half_up")).run(golden["inputs"][0])
    assert run.outputs[1].tobytes() != golden["output1_bytes"][0].tobytes()


def test_overflow_counters_and_trace(executor, golden):
    run = executor.run(golden["inputs"][0], keep=True, count_overflow=True)
    first = run.counters["node0_kpu_conv2d"]
    assert first["acc"].elements == 16 * 240 * 320 and first["acc"].events == 0
    assert all(c["bn"].events == 0 for c in run.counters.values())
    trace = run.to_trace(executor.model)
    assert trace.executor == "k210" and trace.output(0).shape == (8840,)
    assert trace.codes["node0_kpu_conv2d"].shape == (1, 16, 120, 160)
    assert 0 < run.kpu_ram_high_water <= 2 * 1024 * 1024


def test_input_shape_and_dtype_errors(executor):
    with pytest.raises(InputError, match=r"\(1, 3, 240, 320\)"):
        executor.run(np.zeros((3, 240, 321), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        executor.run(np.zeros((3, 240, 320), np.float32))
    with pytest.raises(InputError, match="1 input"):
        executor.run()


# ------------------------------------------------------------------ corrupted copies
def _write(tmp_path, data: bytes, name="bad.kmodel"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_truncated_files(slim, tmp_path):
    data = slim.read_bytes()
    with pytest.raises(KmodelError, match="truncated.*40"):
        read_kmodel(_write(tmp_path, data[:20]))
    with pytest.raises(KmodelError, match="truncated"):
        read_kmodel(_write(tmp_path, data[:60]))
    with pytest.raises(KmodelError, match=r"node \d+ \(kpu_conv2d.*truncated"):
        read_kmodel(_write(tmp_path, data[:5000]))
    with pytest.raises(KmodelError, match="truncated"):
        read_kmodel(_write(tmp_path, data[:-200]))
    # the last body legitimately lacks its padding: the real file reads
    assert len(read_kmodel(slim).nodes) == 73


def test_wrong_magic_version_target(slim, tmp_path):
    data = bytearray(slim.read_bytes())
    bad = bytearray(data)
    bad[:4] = b"TFL3"
    with pytest.raises(KmodelError, match="not a kmodel"):
        read_kmodel(_write(tmp_path, bytes(bad)))
    bad = bytearray(data)
    bad[4:8] = struct.pack("<I", 5)
    with pytest.raises(KmodelError, match="version 5"):
        read_kmodel(_write(tmp_path, bytes(bad)))
    bad = bytearray(data)
    bad[12:16] = struct.pack("<I", 7)
    with pytest.raises(KmodelError, match="target 7"):
        read_kmodel(_write(tmp_path, bytes(bad)))


def _node_table_offset(data: bytes) -> int:
    n_in, n_out = struct.unpack_from("<2I", data, 28)
    const = struct.unpack_from("<I", data, 16)[0]
    return 40 + n_in * 32 + n_out * 16 + const


def test_unknown_opcode_names_opcode_and_node(slim, tmp_path):
    data = bytearray(slim.read_bytes())
    off = _node_table_offset(data) + 8 * 17  # node 17 (a transpose)
    struct.pack_into("<I", data, off, 0x3333)
    with pytest.raises(KmodelError, match=r"node 17: unknown opcode 0x3333"):
        read_kmodel(_write(tmp_path, bytes(data)))


def test_known_but_unsupported_opcode(slim, tmp_path):
    data = bytearray(slim.read_bytes())
    off = _node_table_offset(data) + 8 * 17
    struct.pack_into("<I", data, off, 0x0F)  # quantized_conv2d: readable, not executable
    model = read_kmodel(_write(tmp_path, bytes(data)))
    with pytest.raises(KmodelError, match=r"node 17 \(quantized_conv2d, opcode 0xf\).*not supported"):
        KmodelExecutor(model)


def test_bad_enum_in_body(slim, tmp_path):
    data = bytearray(slim.read_bytes())
    model = read_kmodel(slim)
    node = model.nodes[51]  # unary exp: 2 memory ranges then the op
    assert node.name == "unary"
    struct.pack_into("<I", data, node.body_offset + 32, 99)
    with pytest.raises(KmodelError, match=r"node 51 \(unary.*unknown unary op 99"):
        read_kmodel(_write(tmp_path, bytes(data)))


def test_memory_range_outside_memory_is_an_error(slim, tmp_path):
    data = bytearray(slim.read_bytes())
    model = read_kmodel(slim)
    node = model.nodes[17]  # transpose: input range first
    struct.pack_into("<I", data, node.body_offset + 8, 10_000_000)  # input.start
    with pytest.raises(KmodelError, match=r"node 17 \(transpose.*runs past"):  # at load (issue 17 #7)
        read_kmodel(_write(tmp_path, bytes(data)))


def test_layout_registers_that_disagree_with_the_layout_are_refused(slim, tmp_path):
    data = bytearray(slim.read_bytes())
    model = read_kmodel(slim)
    node = model.nodes[2]  # a kpu_conv2d; words start after main_mem_output (16) + batches + reserved
    off = node.body_offset + 24 + 8 * 7  # kernel_calc_type_cfg
    word = struct.unpack_from("<Q", data, off)[0]
    word = (word & ~(0x7 << 28)) | (3 << 28)  # coef_group = 3 (no layout has 3 channels per line)
    struct.pack_into("<Q", data, off, word)
    with pytest.raises(KmodelError, match=r"node 2 \(kpu_conv2d.*layout registers"):
        KmodelExecutor(read_kmodel(_write(tmp_path, bytes(data))))


def test_unmodelled_register_fields_are_refused(slim, tmp_path):
    data = bytearray(slim.read_bytes())
    node = read_kmodel(slim).nodes[0]
    off = node.body_offset + 24 + 8 * 4  # kernel_pool_type_cfg: bypass_conv is bit 9
    word = struct.unpack_from("<Q", data, off)[0] | (1 << 9)
    struct.pack_into("<Q", data, off, word)
    with pytest.raises(KmodelError, match="bypass_conv"):
        KmodelExecutor(read_kmodel(_write(tmp_path, bytes(data))))


def test_corrupt_output_range_is_refused_at_load_issue17(slim, tmp_path):
    """Issue 17 #7: slim-320 with byte 84 XOR 0x61 (output 0's size: 35393 bytes, not whole
    float32s) failed with a ValueError only after the whole inference; now `read_kmodel` refuses."""
    data = bytearray(slim.read_bytes())
    data[84] ^= 0x61
    with pytest.raises(KmodelError, match=r"bad\.kmodel.*output 0.*35393.*float32"):
        read_kmodel(_write(tmp_path, bytes(data)))


@pytest.mark.parametrize("offset, value, match", [
    (80, 236000, r"output 0.*runs past.*main memory of 236480"),  # output 0 start
    (48, 3 << 20, r"input 0.*runs past.*KPU RAM"),  # input 0 start
    (56, 0, r"input 0.*shape \(0, 3, 240, 320\)"),  # input 0 shape N
    (64, 2000, r"input 0.*shape.*needs 1920000 bytes.*230400"),  # input 0 shape H
])
def test_header_ranges_and_shapes_checked_at_load(slim, tmp_path, offset, value, match):
    data = bytearray(slim.read_bytes())
    struct.pack_into("<I", data, offset, value)
    with pytest.raises(KmodelError, match=match):
        read_kmodel(_write(tmp_path, bytes(data)))
