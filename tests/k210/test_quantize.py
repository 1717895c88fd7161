"""Keras-graph -> KPU quantization (nncase 1.x recipe), the "k210" executor, memory plan, FPS model."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qsim.errors import PlanError
from qsim.executors import run as run_executor
from qsim.graph.ir import Graph, Node
from qsim.k210 import perf
from qsim.k210.executor import run as k210_run
from qsim.k210.lowering import lower
from qsim.k210.memory import plan_memory
from qsim.k210.quantize import fixed_mul, make_kpu_layer, quant_param, quantize_graph


def test_quant_param_hand_values():
    assert quant_param(0.0, 6.0).zero_point == 0 and quant_param(0.0, 6.0).scale == pytest.approx(6 / 255)
    assert quant_param(-1.0, 1.0).zero_point == 128  # 127.5 rounds half away from zero
    assert quant_param(2.0, 5.0).scale == pytest.approx(5 / 255) and quant_param(2.0, 5.0).zero_point == 0
    assert quant_param(0.0, 0.0).scale == pytest.approx(0.1 / 255)
    assert quant_param(-3.0, -1.0).zero_point == 255
    with pytest.raises(PlanError):
        quant_param(0.0, float("inf"))


@given(st.floats(1e-3, 1e4), st.sampled_from([(22, 15), (16, 43)]))
def test_fixed_mul_contract(v, cfg):
    bits, max_shift = cfg
    mul, shift = fixed_mul(v, bits, max_shift)
    assert 0 <= shift <= max_shift and abs(mul) <= 2 ** (bits - 1)
    m, e = math.frexp(v)
    t = min(max_shift + e, bits - 1) if v <= 1 else None
    # the mantissa keeps all available bits: relative error <= 2^-(bits used) (+ rounding)
    used = (shift + e) if v > 1 else t
    assert abs(mul / 2 ** shift - v) <= 2.0 ** (e - used)


def _relu6_layer(rng, ic=3, oc=4, k=3, depthwise=False, h=6, w=5):
    kern = rng.normal(0, 0.5, (oc, 1 if depthwise else ic, k, k))
    bias = rng.normal(0, 0.1, oc)
    x = rng.uniform(-1, 1, (ic, h, w))
    in_q = quant_param(-1, 1)
    out_q = quant_param(0, 6)
    layer = make_kpu_layer("l", kern, bias, depthwise, in_q, out_q, ("relu", 6.0, 0.0), (h, w))
    return layer, kern, bias, x, in_q, out_q


@pytest.mark.parametrize("depthwise,k", [(False, 3), (False, 1), (True, 3)])
def test_kpu_layer_approximates_float(depthwise, k):
    rng = np.random.default_rng(1)
    ic = 4
    layer, kern, bias, x, in_q, out_q = _relu6_layer(rng, ic=ic, oc=ic if depthwise else 5, k=k, depthwise=depthwise)
    qx, _ = in_q.quantize(x)
    xr = in_q.dequantize(qx).astype(np.float64)  # the float model of the quantized input
    p = (k - 1) // 2
    xp = np.pad(xr, ((0, 0), (p, p), (p, p)))
    wq = (layer.weights.astype(np.float64) - 128)
    s_w = 2 * np.maximum(np.abs(kern).reshape(kern.shape[0], -1).max(1), 0.01) / 255
    ref = np.zeros((kern.shape[0], 6, 5))
    for o in range(kern.shape[0]):
        for y in range(6):
            for xx in range(5):
                win = xp[[o] if depthwise else slice(None), y:y + k, xx:xx + k]
                ref[o, y, xx] = np.sum(win * wq[o] * s_w[o]) + bias[o]
    ref = np.clip(ref, 0, 6)
    got = out_q.dequantize(layer.run(qx))
    assert np.max(np.abs(got - ref)) <= 1.01 * out_q.scale  # within one output LSB
    # registers follow the recipe
    a = layer.args
    assert (a.arg_x, a.arg_w, a.arg_add, a.pad_value) == (-128, -in_q.zero_point, k * k * 128 * in_q.zero_point,
                                                           in_q.zero_point)
    assert layer.act.x_start[1] == 0 and layer.act.bias[1] == 0 and layer.act.bias[2] == 255


def _toy_graph(rng, pads_s2="sym"):
    def conv(name, src, k, cin, cout, s=1, pads=None, dw=False):
        p = (k - 1) // 2
        kernel = rng.normal(0, 0.4, (k, k, cin, 1 if dw else cout)).astype(np.float32)
        return Node(name, "depthwise_conv2d" if dw else "conv2d", [src],
                    {"strides": (s, s), "pads": pads or (p, p, p, p), "dilation": (1, 1)},
                    {"kernel": kernel, "bias": rng.normal(0, 0.1, cout).astype(np.float32)})

    s2pads = (1, 1, 1, 1) if pads_s2 == "sym" else (0, 1, 0, 1)
    nodes = [
        Node("x", "input", attrs={"shape": (None, None, 3)}),
        conv("c1", "x", 3, 3, 8, s=2, pads=s2pads), Node("c1_relu", "relu", ["c1"], {"max_value": 6.0}),
        conv("dw", "c1_relu", 3, 8, 8, s=2, pads=s2pads, dw=True), Node("dw_relu", "relu", ["dw"], {"max_value": 6.0}),
        conv("pw", "dw_relu", 1, 8, 8),
        conv("e", "pw", 1, 8, 8), Node("e_relu", "relu", ["e"], {"max_value": 6.0}),
        conv("p2", "e_relu", 1, 8, 8),
        Node("add", "add", ["pw", "p2"]),
        conv("head", "add", 1, 8, 5),
    ]
    return Graph(nodes, ["head"], name="toy")


@pytest.mark.parametrize("pads_s2,add_mode", [("sym", "kpu"), ("tf", "kpu"), ("sym", "cpu")])
def test_executor_tracks_float_on_a_toy_graph(pads_s2, add_mode):
    from qsim.executors.float_exec import run as float_run

    rng = np.random.default_rng(7)
    g = _toy_graph(rng, pads_s2)
    cal = rng.uniform(-1, 1, (4, 16, 20, 3)).astype(np.float32)
    x = rng.uniform(-1, 1, (2, 16, 20, 3)).astype(np.float32)
    prog = quantize_graph(g, cal, add_mode=add_mode)
    tk = run_executor(g, x, executor="k210", calibration=prog)
    tf_ = float_run(g, x)
    assert tk.executor == "k210" and tk.output(0).shape == tf_.output(0).shape == (2, 4, 5, 5)
    for name in ("c1_relu", "dw_relu", "pw", "add", "head"):
        a, b = tk.values[name].ravel(), tf_.values[name].ravel()
        cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        assert cos > 0.98, (name, cos)
    assert "c1" not in tk.values  # pre-activation tensors do not exist on the KPU
    assert tk.formats["head"].scale > 0 and 0 <= tk.formats["head"].zero_point <= 255
    assert tk.counters["c1_relu"]["acc"].events == 0 and tk.counters["x"]["input"].elements == 2 * 16 * 20 * 3
    # codes and values agree; batch of 2 = two batches of 1
    one = k210_run(g, x[1:], calibration=prog)
    assert np.array_equal(one.codes["head"][0], tk.codes["head"][1])
    kinds = {s.name: s.kind for s in prog.steps}
    assert kinds["add"] == ("add_kpu" if add_mode == "kpu" else "cpu") and kinds["dw_relu"] == "kpu"
    if pads_s2 == "sym":
        c1 = next(s for s in prog.steps if s.name == "c1_relu")
        assert c1.layer.args.pool_type == 5 and c1.subsample is None  # stride 2 in the pool stage
    dw = next(s for s in prog.steps if s.name == "dw_relu")
    assert dw.layer.args.pool_type == 0 and dw.subsample[0] == 2  # depthwise never pools


def test_executor_wrong_size_is_an_error():
    rng = np.random.default_rng(0)
    g = _toy_graph(rng)
    prog = quantize_graph(g, rng.uniform(-1, 1, (1, 16, 20, 3)).astype(np.float32))
    from qsim.errors import InputError

    with pytest.raises(InputError, match="quantized for 16x20"):
        k210_run(g, np.zeros((1, 8, 8, 3), np.float32), calibration=prog)


def test_lowering_and_memory_on_toy_graph():
    g = _toy_graph(np.random.default_rng(0))
    steps = lower(g, (16, 20))
    kpu = [s for s in steps if s.kind == "kpu"]
    assert [s.name for s in kpu] == ["c1", "dw", "pw", "e", "p2", "add", "head"]
    dw = kpu[1]
    assert dw.in_shape == dw.out_shape == (8, 8, 10)  # full resolution
    assert kpu[2].pool_type == 5 and kpu[2].in_shape == (8, 8, 10) and kpu[2].out_shape == (8, 4, 5)
    assert kpu[5].in_shape == (16, 4, 5)  # add as concat + 1x1 conv
    plan = plan_memory(g, (16, 20))
    # c1: in 3 x 16 rows x 32-byte slots (2 per line) = 2 lines * 16 * 64; out 8 x 8 x 10 (4 per line)
    assert plan.layers[0].in_bytes == 64 * 16 * 2 and plan.layers[0].out_bytes == 64 * 8 * 2
    assert plan.fits and plan.first_unfit is None
    assert not plan_memory(g, (16, 20), ram_bytes=2048).fits


def test_perf_model_reproduces_sipeed_throughput():
    from qsim.k210.lowering import Step

    s = Step("big", "kpu", "conv2d", (128, 64, 64), (128, 64, 64), kernel=3, macs=128 * 128 * 9 * 64 * 64)
    cyc = perf.kpu_cycles(s)
    assert cyc == 128 * 128 * 64
    gmacs = s.macs / (cyc / 300e6) / 1e9
    assert 165 < gmacs < 175  # Sipeed: ~170 GMAC/s at 300 MHz
    est = perf.estimate(_toy_graph(np.random.default_rng(0)), (16, 20))
    assert est.fps > 0 and est.kpu_seconds > 0 and est.cpu_seconds > 0


def test_a98_memory_table_matches_hand_numbers(tf, tmp_path):
    """k210-kpu.md §3.1: MobileNetV2 at 224: alpha 1.0 needs 2.625 MiB (fails), alpha 0.5 1.3125 MiB (fits)."""
    from qsim.model import load_model
    from reference.export import export_h5
    from reference.models import build_model

    expect = {1.0: (2.625, False), 0.5: (1.3125, True)}
    for alpha, (mib, fits) in expect.items():
        path = export_h5(build_model("A", alpha=alpha, frozen=98, weights=None), tmp_path / f"a{alpha}.h5")
        plan = plan_memory(load_model(path, input_hw=(224, 224), symmetric_pads=True), (224, 224))
        assert plan.peak.total / 2**20 == pytest.approx(mib) and plan.fits is fits
        assert plan.peak.name == "block_1_depthwise_BN"
        plan320 = plan_memory(load_model(path, input_hw=(320, 320), symmetric_pads=True), (320, 320))
        assert not plan320.fits and plan320.first_limit is not None


def test_calibration_is_explicit_and_shared_across_sizes(tmp_path):
    from qsim.errors import PlanError
    from qsim.k210.calibration import load_calibration
    from qsim.k210.executor import prepare, save_ranges
    from qsim.k210.quantize import calibrate

    g = _toy_graph(np.random.default_rng(3))
    with pytest.raises(PlanError, match="needs calibration="):
        prepare(g)
    with pytest.raises(PlanError, match="calibration=, not a plan"):
        prepare(g, "Q6.9", calibration=np.zeros((1, 16, 20, 3), np.float32))
    cal = np.random.default_rng(4).uniform(-1, 1, (2, 16, 20, 3)).astype(np.float32)
    program = prepare(g, calibration=cal)
    p1, p2 = program.kpu_program((16, 20)), program.kpu_program((24, 32))
    assert p1.input_hw == (16, 20) and p2.input_hw == (24, 32)
    assert p1.params == p2.params  # same ranges, independent of the input size
    x2 = np.zeros((1, 24, 32, 3), np.float32)
    t = program.run(x2)
    assert t.output(0).shape == (1, 6, 8, 5)
    # a stored range table gives the same bits, and so does a .npy calibration batch
    table = save_ranges(calibrate(g, cal), tmp_path / "ranges.json")
    np.save(tmp_path / "cal.npy", cal)
    for source in (table, load_calibration(tmp_path / "cal.npy")):
        np.testing.assert_array_equal(prepare(g, calibration=source).run(x2).codes["head"], t.codes["head"])
    (tmp_path / "bad.json").write_text('{"qsim_k210_ranges": 1, "ranges": {"x": [1, 0]}}')
    with pytest.raises(PlanError, match="invalid range"):
        prepare(g, calibration=tmp_path / "bad.json")


def test_maps_beyond_size_registers_are_noted_not_refused():
    notes: list = []
    rng = np.random.default_rng(0)
    layer = make_kpu_layer("big", rng.normal(0, 1, (2, 1, 3, 3)), None, True, quant_param(-1, 1), quant_param(0, 6),
                           ("relu", 6.0, 0.0), (600, 8), 0, notes)
    assert layer.in_shape == (2, 600, 8) and "exceeds the KPU size registers" in notes[0]
    assert layer.run(np.full((2, 600, 8), 128, np.uint8)).shape == (2, 600, 8)


def test_quantized_layers_carry_consistent_layout_and_load_registers():
    from qsim.k210.fields import decode_layer, encode_layer
    from qsim.k210.kmodel_exec import check_layer_registers

    rng = np.random.default_rng(2)
    layer = make_kpu_layer("l", rng.normal(0, 1, (400, 96, 1, 1)), None, False, quant_param(-1, 1),
                           quant_param(0, 6), ("relu", 6.0, 0.0), (14, 14), 0)
    check_layer_registers(layer.args, "l")
    a = layer.args
    assert (a.o_ch_num_coef + 1, a.load_time + 1, a.para_size) == (320, 2, 320 * 96)  # 30720 // 96 = 320 per load
    assert decode_layer(encode_layer(a)) == a


def test_fused_sigmoid_uses_a_fitted_table():
    from qsim.executors.float_exec import run as float_run
    from qsim.k210.quantize import piecewise_fit

    # the fit of a convex function from chords: 15 pieces, continuous, endpoints exact
    fit = piecewise_fit(np.exp, 0.0, 2.0)
    assert len(fit) == 15 and fit[0][0] == 0.0 and fit[0][2] == 1.0
    rng = np.random.default_rng(4)
    g = Graph([Node("x", "input", attrs={"shape": (None, None, 3)}),
               Node("c", "conv2d", ["x"], {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilation": (1, 1)},
                    {"kernel": rng.normal(0, 1, (3, 3, 3, 4)).astype(np.float32),
                     "bias": np.zeros(4, np.float32)}),
               Node("s", "sigmoid", ["c"])], ["s"], name="sig")
    cal = rng.uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32)
    prog = quantize_graph(g, cal)
    step = next(st_ for st_ in prog.steps if st_.name == "s")
    assert step.kind == "kpu" and int(np.sum(step.layer.act.bias < 255)) >= 10  # many live segments
    x = rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    got = k210_run(g, x, calibration=prog).outputs["s"]
    ref = float_run(g, x).outputs["s"]
    assert np.max(np.abs(got - ref)) < 4 * prog.params["s"].scale


def test_leaky_relu_segment_below_int36_is_clamped_issue17():
    """Issue 17 #1: a 1-channel depthwise 1x1 leaky ReLU whose first piece starts below -2**35.

    Its tiny B unit (s_act_in) puts the domain's start (-2.0) at -4.6e10 units: beyond the int36
    ALU, so unreachable. The table must still increase and the layer must track float.
    """
    r = np.random.default_rng(0)
    kernel, bias = r.normal(0, 1, (1, 1, 1, 1)), r.normal(0, 0.5, 1)
    in_q, out_q = quant_param(-1, 1), quant_param(-2, 4)
    layer = make_kpu_layer("l", kernel, bias, True, in_q, out_q, ("relu", None, 0.1), (4, 4), 0)
    xs = layer.act.x_start.tolist()
    assert xs == sorted(xs) and len(set(xs)) == 16 and xs[0] == -(1 << 35)
    x = np.arange(0, 256, dtype=np.uint8)[:16].reshape(1, 4, 4)
    x = np.linspace(0, 255, 16).astype(np.uint8).reshape(1, 4, 4)
    y = kernel[0, 0, 0, 0] * in_q.dequantize(x) + bias[0]
    want = np.where(y < 0, 0.1 * y, y)
    got = out_q.dequantize(layer.run(x))
    assert np.max(np.abs(got - want)) <= 1.5 * out_q.scale
