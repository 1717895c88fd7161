"""`qsim export MODEL.tflite --target c`: the headers, re-read, are the model's stored parameters,
and those arrays and #defines alone (Python-int twins, `qsim.tflite.ref`) reproduce TFLite's
BUILTIN_REF output of every CONV_2D / DEPTHWISE_CONV_2D (and FULLY_CONNECTED within 1 LSB, where
the reference requantizes in double and the export gives the integer multiplier)."""
from __future__ import annotations

import re

import numpy as np
import pytest
from test_tflite_vs_builtin_ref import builtin_ref, inputs_for

from qsim.cli import main
from qsim.tflite import read_tflite
from qsim.tflite import ref as tref
from qsim.tflite.arith import quantize_multiplier
from tests.testing.test_export import parse_header

MAC = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def export_ops(tflite_model_path, name, out):
    path = tflite_model_path(name)
    assert main(["export", str(path), "--out", str(out)]) == 0
    model = read_tflite(path)
    ops = [op for op in model.operators if op.name in MAC]
    model_h = (out / "model.h").read_text()
    assert f"#define QSIM_N_OPS {len(ops)}" in model_h
    headers = {}
    for op in ops:
        stem = f"op{op.index}_{op.name.lower()}"
        assert f'#include "{stem}.h"' in model_h
        text = (out / f"{stem}.h").read_text()
        arrays, defines = parse_header(text)
        scales = dict(re.findall(r"#define \w+_(INPUT|OUTPUT)_SCALE (\S+)f", text))
        headers[op.index] = (stem, {k.removeprefix(stem + "_"): v for k, v in arrays.items()},
                             {k.removeprefix(stem.upper() + "_"): v for k, v in defines.items()},
                             {k: float(v) for k, v in scales.items()}, text)
    return path, model, ops, headers


@pytest.mark.parametrize("name", ["mobilenet", "legacy_u8", "fcdeep", "dscnn_pow2"])
def test_exported_arrays_reproduce_builtin_ref(tf, tflite_model_path, tflite_model_bytes, tmp_path, name):
    path, model, ops, headers = export_ops(tflite_model_path, name, tmp_path)
    x = inputs_for(model, 0)[0]
    it = builtin_ref(tf, tflite_model_bytes(name), x)
    for op in ops:
        stem, arrays, d, scales, text = headers[op.index]
        t_in, t_w, t_out = (model.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        w_type, w = arrays["weights"]
        assert w_type == {"int8": "int8_t", "uint8": "uint8_t"}[t_w.dtype.name]
        np.testing.assert_array_equal(w, t_w.data.ravel())
        bias = arrays["bias"][1] if "bias" in arrays else None
        if bias is not None:
            np.testing.assert_array_equal(bias, model.tensors[op.inputs[2]].data)
        assert scales == {"INPUT": float(t_in.quant.scale[0]), "OUTPUT": float(t_out.quant.scale[0])}
        assert [d[f"OUTPUT_{a}"] for a in ("NHWC" if len(t_out.shape) == 4 else "NC")] == list(t_out.shape)
        xin = it.get_tensor(t_in.index)
        w4 = t_w.data.reshape(t_w.shape)
        if op.name == "FULLY_CONNECTED":
            xin2 = xin.reshape(-1, t_w.shape[1]).astype(np.int64)
            acc = [[(0 if bias is None else int(bias[o])) + sum((int(wv) + d["FILTER_OFFSET"]) * (xv + d["INPUT_OFFSET"])
                                                                for wv, xv in zip(w4[o], row))
                    for o in range(t_w.shape[0])] for row in xin2.tolist()]
        else:
            oh, ow = t_out.shape[1:3]
            args = (xin.tolist(), -d["INPUT_OFFSET"], w4.tolist(), -d["FILTER_OFFSET"],
                    None if bias is None else bias.tolist(), (d["STRIDE_H"], d["STRIDE_W"]),
                    (d["DILATION_H"], d["DILATION_W"]), (d["PADDING_H"], d["PADDING_W"]), (oh, ow))
            acc = tref.depthwise(*args, d["CH_MULT"]) if op.name == "DEPTHWISE_CONV_2D" else tref.conv2d(*args)
        acc = np.array(acc, dtype=np.int64).reshape(t_out.shape)
        q, sh = arrays["output_multiplier"][1], arrays["output_shift"][1]
        oc = acc.shape[-1]
        q, sh = np.broadcast_to(q, (oc,)), np.broadcast_to(sh, (oc,))
        got = np.array([tref.clamp(tref.mbqm(tref.wrap(int(a), 32), int(q[i[-1]]), int(sh[i[-1]]), False)
                                   + d["OUTPUT_OFFSET"], d["ACTIVATION_MIN"], d["ACTIVATION_MAX"])
                        for i, a in np.ndenumerate(acc)]).reshape(acc.shape)
        want = it.get_tensor(t_out.index).astype(np.int64)
        if op.name == "FULLY_CONNECTED" and t_w.dtype == np.dtype(np.int8):
            assert "NOTE: TFLite's reference FULLY_CONNECTED (int8) requantizes" in text
            in_s, out_s = float(t_in.quant.scale[0]), float(t_out.quant.scale[0])
            assert [quantize_multiplier(in_s * float(s) / out_s) for s in np.broadcast_to(t_w.quant.scale, (oc,))] \
                == list(zip(q.tolist(), sh.tolist()))
            assert np.abs(got - want).max() <= 1
        else:
            np.testing.assert_array_equal(got, want, err_msg=f"{name} {stem}")


def test_tflite_export_refuses_hls_and_plans(tflite_model_path, tmp_path, capsys):
    path = tflite_model_path("mobilenet")
    assert main(["export", str(path), "--out", str(tmp_path), "--target", "hls"]) == 1
    assert "--target c" in capsys.readouterr().err
    assert main(["export", str(path), "--out", str(tmp_path), "--format", "Q6.9"]) == 1
    assert "carries its own quantization" in capsys.readouterr().err
