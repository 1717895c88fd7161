"""Executor: the fused compiled MAC tail == the NumPy composition (codes and every counter),
for the reference and the what-if options; counters and options behave as documented."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.errors import QsimError
from qsim.tflite import TfliteOptions, prepare, read_tflite_bytes

OPTIONS = [TfliteOptions(), TfliteOptions(single_rounding=True), TfliteOptions(acc_bits=14, acc_overflow="saturate"),
           TfliteOptions(acc_bits=15, acc_overflow="wrap", multiplier_bits=9), TfliteOptions(multiplier_bits=4),
           TfliteOptions(acc_bits=64), TfliteOptions(acc_bits=64, acc_overflow="saturate", single_rounding=True)]


@pytest.mark.parametrize("name", ["mobilenet", "legacy_u8", "resnet8_pow2"])
def test_fused_tail_equals_numpy_path(tflite_model_bytes, name):
    m = read_tflite_bytes(tflite_model_bytes(name))
    t = m.tensors[m.inputs[0]]
    rng = np.random.default_rng(3)
    x = rng.integers(np.iinfo(t.dtype).min, np.iinfo(t.dtype).max + 1, t.shape).astype(t.dtype)
    for opt in OPTIONS:
        fast = prepare(m, opt)
        slow = prepare(m, opt)
        for k in slow.kernels:
            if hasattr(k, "fused"):
                k.fused = False
        a, b = fast.run(x), slow.run(x)
        for i in a.tensors:
            np.testing.assert_array_equal(a.tensors[i], b.tensors[i])
        assert a.counters.keys() == b.counters.keys()
        for key in a.counters:
            assert a.counters[key].to_dict() == b.counters[key].to_dict(), (opt, key)


def test_options_are_validated():
    for bad in ({"acc_bits": 1}, {"acc_overflow": "clip"}, {"multiplier_bits": 40}, {"fc_requant": "x"}):
        with pytest.raises(QsimError):
            TfliteOptions(**bad)


def test_narrow_accumulator_counts_and_saturates(tflite_model_bytes):
    m = read_tflite_bytes(tflite_model_bytes("resnet8"))
    x = np.full(m.tensors[m.inputs[0]].shape, 127, np.int8)
    ref = prepare(m).run(x)
    assert all(c.events == 0 for k, c in ref.counters.items() if k.endswith("/acc"))
    narrow = prepare(m, TfliteOptions(acc_bits=12, acc_overflow="saturate")).run(x)
    acc = [c for k, c in narrow.counters.items() if k.endswith("/acc")]
    assert sum(c.events for c in acc) > 0 and all(c.limit == 2**11 for c in acc)


def test_a_failing_operator_is_named(tflite_model_bytes):
    """Program.run's one error handler names the operator (label and type) that raised."""
    m = read_tflite_bytes(tflite_model_bytes("dscnn"))
    prog = prepare(m)
    x = np.zeros(m.tensors[m.inputs[0]].shape, np.int8)
    prog.run(x)
    k = prog.kernels[3]

    def broken(ins, ctx):
        raise ValueError("boom")

    k.run = broken
    with pytest.raises(QsimError, match=rf"node 'op3 {k.op.name} -> .*' \({k.op.name}\): ValueError: boom"):
        prog.run(x)


def test_counters_are_built_once_in_op_order(tflite_model_bytes):
    m = read_tflite_bytes(tflite_model_bytes("resnet8"))
    run = prepare(m).run(np.full(m.tensors[m.inputs[0]].shape, 127, np.int8))
    keys = list(run.counters)
    assert run.counters is run.counters
    ops_seen = [int(k.split()[0][2:]) for k in keys]
    assert ops_seen == sorted(ops_seen) and keys[0].startswith("op0 ")
    assert all(c.elements > 0 for c in run.counters.values())


@pytest.mark.parametrize("name", ["mobilenet", "resnet8", "legacy_u8"])
def test_threads_change_no_bit_and_no_count(tflite_model_bytes, name, monkeypatch):
    """prepare(threads=2): the row-parallel MAC kernels (forced on for every layer here)
    give the same tensors and counters as the serial ones."""
    from qsim.tflite import _mac

    monkeypatch.setattr(_mac, "PARALLEL_MIN_MACS", 0)
    m = read_tflite_bytes(tflite_model_bytes(name))
    t = m.tensors[m.inputs[0]]
    x = np.random.default_rng(4).integers(np.iinfo(t.dtype).min, np.iinfo(t.dtype).max + 1, t.shape).astype(t.dtype)
    for opt in OPTIONS[:3]:
        a, b = prepare(m, opt).run(x), prepare(m, opt, threads=2).run(x)
        for i in a.tensors:
            np.testing.assert_array_equal(a.tensors[i], b.tensors[i])
        assert {k: c.to_dict() for k, c in a.counters.items()} == {k: c.to_dict() for k, c in b.counters.items()}


def test_a_multiplier_outside_the_compiled_range_stays_on_numpy(tflite_model_bytes, monkeypatch):
    """A shift the compiled tail refuses (> 30) puts that operator on its NumPy path at prepare."""
    from qsim.tflite import executor

    m = read_tflite_bytes(tflite_model_bytes("resnet8"))
    real = executor.Kernel.multiplier
    monkeypatch.setattr(executor.Conv2D, "multiplier", lambda self, r: (real(self, r)[0], 31))
    prog = prepare(m)
    macs = [k for k in prog.kernels if k.op.name == "CONV_2D"]
    assert macs and not any(k.fused for k in macs)


def test_a_64_bit_accumulator_has_no_events(tflite_model_bytes):
    """acc_bits=64 holds every exact sum: no acc event (the compiled tail once counted them all)."""
    m = read_tflite_bytes(tflite_model_bytes("mobilenet"))
    x = np.full(m.tensors[m.inputs[0]].shape, 127, np.int8)
    run = prepare(m, TfliteOptions(acc_bits=64)).run(x)
    acc = [c for k, c in run.counters.items() if k.endswith("/acc")]
    assert acc and all(c.events == 0 and c.elements > 0 for c in acc)


def test_the_runtime_walker_runs_the_program(tflite_model_bytes):
    """`qsim.runtime.run(model, x, "tflite")`: the walker's Trace holds the same codes as
    `Program.run` (node per operator, codes in the stored dtype), the outputs dequantized."""
    from qsim import runtime
    from qsim.tflite import ops

    m = read_tflite_bytes(tflite_model_bytes("resnet8"))
    t = m.tensors[m.inputs[0]]
    x = np.random.default_rng(5).integers(-128, 128, t.shape).astype(t.dtype)
    prog = prepare(m)
    assert "tflite" in runtime.BACKENDS and len(prog.graph) == len(m.inputs) + len(m.operators)
    run = prog.run(x)
    trace = runtime.run(m, x, "tflite")
    assert trace.executor == "tflite" and set(trace.codes) == set(run.trace.codes)
    for name, codes in trace.codes.items():
        np.testing.assert_array_equal(codes, run.tensors[prog.tensor_of[name]])
        assert codes.dtype == run.tensors[prog.tensor_of[name]].dtype
    o = m.tensors[m.outputs[0]]
    want = ops.dequantize(run.output(), float(o.quant.scale[0]), int(o.quant.zero_point[0]))
    got = trace.output()
    assert got.dtype == want.dtype and np.array_equal(got, want)
    lean = runtime.run(m, x, "tflite", keep_values=False)
    assert list(lean.codes) == prog.graph.outputs


def test_the_walker_checks_codes_not_floats(tflite_model_bytes):
    """Inputs are the stored dtype's codes (`Program.check_input`): a float image or a wrong
    shape is a one-line InputError naming the input tensor."""
    from qsim import runtime
    from qsim.errors import InputError

    m = read_tflite_bytes(tflite_model_bytes("resnet8"))
    t = m.tensors[m.inputs[0]]
    with pytest.raises(InputError, match=rf"input tensor {t.index} .*quantize float inputs") as e:
        runtime.run(m, np.zeros(t.shape, np.float32), "tflite")
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match=rf"input tensor {t.index} .*has shape"):
        prepare(m).run(np.zeros((1, 3, 3, 3), np.int8))
    with pytest.raises(InputError, match="values outside"):
        prepare(m).run(np.full(t.shape, 300, np.int16))


def test_trace_holds_formats_and_counters_per_node(tflite_model_bytes):
    """`TfliteRun.trace` is a full `Trace`: every node's affine format (lsb = its tensor's
    scale) and its counters by site, the same objects as `TfliteRun.counters`."""
    m = read_tflite_bytes(tflite_model_bytes("resnet8"))
    t = m.tensors[m.inputs[0]]
    prog = prepare(m)
    run = prog.run(np.random.default_rng(3).integers(-128, 128, t.shape).astype(t.dtype))
    trace = run.trace
    assert set(trace.formats) == set(trace.codes)
    for name, fmt in trace.formats.items():
        q = m.tensors[prog.tensor_of[name]].quant
        assert fmt.lsb == float(q.scale[0]) and str(int(q.zero_point[0])) in str(fmt)
    flat = {f"{node}/{site}": c for node, sites in trace.counters.items() for site, c in sites.items()}
    assert flat.keys() == run.counters.keys() and all(flat[k] is run.counters[k] for k in flat)
    assert {"acc", "requant"} <= set(trace.counters[next(n for n in trace.counters if "CONV_2D" in n)])
