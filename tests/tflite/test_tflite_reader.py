"""qsim.tflite.reader: subgraph 0, quantization, options; corrupt files give TfliteError."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.errors import ModelError
from qsim.tflite.reader import TfliteError, read_tflite, read_tflite_bytes


def test_reads_tensors_quantization_and_options(tflite_model_bytes, tf):
    buf = tflite_model_bytes("mobilenet")
    m = read_tflite_bytes(buf)
    interp = tf.lite.Interpreter(model_content=buf)
    details = {d["index"]: d for d in interp.get_tensor_details()}
    assert len(m.tensors) == len(details)
    for t in m.tensors:
        d = details[t.index]
        assert t.name == d["name"]
        assert list(t.shape) == list(d["shape"])
        assert t.dtype == np.dtype(d["dtype"])
        qp = d["quantization_parameters"]
        if t.quant is None:
            assert len(qp["scales"]) == 0
        else:
            np.testing.assert_array_equal(t.quant.scale, qp["scales"].astype(np.float32))
            np.testing.assert_array_equal(t.quant.zero_point, qp["zero_points"])
            assert t.quant.axis == qp["quantized_dimension"]
        if t.is_constant:
            np.testing.assert_array_equal(t.data, interp.get_tensor(t.index))
    names = [op.name for op in m.operators]
    assert names[:3] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"]
    dw = m.operators[5]
    assert dw.options["depth_multiplier"] == 2 and dw.options["padding"] == 1  # VALID
    conv_w = m.tensors[m.operators[0].inputs[1]]
    assert conv_w.quant.per_channel and conv_w.quant.axis == 0
    dw_w = m.tensors[dw.inputs[1]]
    assert dw_w.quant.per_channel and dw_w.quant.axis == 3
    assert m.inputs == (0,) and len(m.outputs) == 1


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(TfliteError, match="cannot read"):
        read_tflite(tmp_path / "nope.tflite")
    p = tmp_path / "x.tflite"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(TfliteError, match="not a TFLite flatbuffer"):
        read_tflite(p)


def _load_all(buf: bytes):
    """Read, prepare and run: any failure must be a QsimError."""
    from qsim.tflite import prepare

    m = read_tflite_bytes(buf, name="fuzz.tflite")
    prog = prepare(m)
    # every input (a flip can leave none: then the run itself must succeed or raise a QsimError)
    prog.run({i: np.zeros(m.tensors[i].shape, m.tensors[i].dtype) for i in m.inputs})


def test_truncations_and_byte_flips_never_crash(tflite_model_bytes):
    """Fuzz: every truncation point class and random byte flips give a model or a ModelError/QsimError."""
    from qsim.errors import QsimError

    buf = tflite_model_bytes("opmix")
    rng = np.random.default_rng(0)
    cuts = sorted(set(rng.integers(8, len(buf), 60).tolist() + [8, 12, 16, 32, len(buf) - 1]))
    errors = 0
    for n in cuts:
        with pytest.raises(ModelError) as ei:
            read_tflite_bytes(buf[:n], name="cut.tflite")
        assert "cut.tflite" in str(ei.value)
        errors += 1
    # flips inside the flatbuffer structure (first part of the file: tables, vtables, offsets)
    for _ in range(300):
        b = bytearray(buf)
        for pos in rng.integers(0, len(b), 3):
            b[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            _load_all(bytes(b))
        except QsimError as exc:
            assert str(exc)
    assert errors == len(cuts)


def test_error_names_field_and_offset(tflite_model_bytes):
    buf = bytearray(tflite_model_bytes("opmix"))
    with pytest.raises(TfliteError, match=r"field .* offset"):
        read_tflite_bytes(bytes(buf[: len(buf) // 2]), name="half.tflite")
