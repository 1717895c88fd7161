"""`qsim search`: the budget, the greedy path, the measured answer, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from qsim.analysis.evaluate import evaluate
from qsim.analysis.formats import NumberFormat
from qsim.analysis.search import Budget, Knob, SearchSpace, greedy_path, search
from qsim.errors import InputError
from qsim.executors import run
from qsim.plan import Plan
from qsim.runtime import backend_for
from tests.analysis.test_eval import classifier


def test_budget_spellings():
    b = Budget.parse("top1>=fp32-0.005")
    assert (b.metric, b.op, b.relative, b.value) == ("top1", ">=", True, -0.005)
    assert b.threshold(0.9) == pytest.approx(0.895) and b.holds(0.8951, 0.9) and not b.holds(0.894, 0.9)
    assert str(b) == "top1>=fp32-0.005"
    s = Budget.parse("sqnr >= 30")
    assert not s.relative and s.holds(30.0, 99.0) and not s.holds(29.9, 0.0)
    m = Budget.parse("mse<=fp32+0.01")
    assert m.holds(0.105, 0.1) and not m.holds(0.111, 0.1)
    for bad in ("top1", "top1>fp32", "top1>=fp33-1", ">=3"):
        with pytest.raises(InputError, match="--budget"):
            Budget.parse(bad)


@pytest.fixture(scope="module")
def task():
    g = classifier()
    x = np.random.default_rng(1).uniform(-1, 1, (200, 8, 8, 3)).astype(np.float32)
    y = np.argmax(run(g, x, executor="float").output(0).reshape(200, -1), axis=1)

    def measure(plan):
        return evaluate(g, x, y, [NumberFormat("p", backend_for(plan), plan)], metric="top1", use_cache=False,
                        progress=False).rows[0].value

    return g, x, measure


def test_path_narrows_one_bit_per_step_and_costs_less_each_time(task):
    g, x, _ = task
    space = SearchSpace(g, x[:16], range(4, 13))
    noise = {k: {b: float(13 - b) for b in space.words} for k in space.knobs}
    path = greedy_path(space, noise)
    assert path[0] == {k: 12 for k in space.knobs} and path[-1] == {k: 4 for k in space.knobs}
    assert len(path) == 1 + len(space.knobs) * 8
    costs = [space.objective(p) for p in path]
    assert all(a > b for a, b in zip(costs, costs[1:]))
    assert all(sum(abs(p[k] - q[k]) for k in space.knobs) == 1 for p, q in zip(path, path[1:]))
    # equal noise per bit: the bigger kernel (most bits saved per unit of noise) goes first
    big = max(space.knobs, key=lambda k: space.size[k])
    assert path[1][big] == 11
    assert str(space.plan(path[0]).for_node("c1").weights) == str(space.fmt[Knob("c1", "weights")][12])


def test_search_answers_a_measured_plan_within_budget_cheaper_than_uniform(task):
    g, x, measure = task
    space = SearchSpace(g, x[:16], range(2, 17))
    budget = Budget.parse("top1>=fp32-0.02")
    res = search(space, measure, 1.0, budget, baselines={"q8": Plan.uniform("q8", mode="weights")}, progress=False)
    assert res.best is not None and res.best.within and res.best.value >= 0.98
    assert measure(res.best_plan) == res.best.value  # the plan reported is the plan measured
    q8 = res.baselines[0]
    assert res.best.objective < q8.objective / 1.5  # far fewer weight bits than the 16-bit uniform plan
    # bisection: the next step on the path was measured and left the budget (or the path ended)
    steps = {p.step: p for p in res.points}
    assert res.best.step + 1 not in steps or not steps[res.best.step + 1].within
    assert res.runs["proxy"] == 1 + len(space.knobs) * (len(space.words) - 1)
    assert set(res.reasons.values()) <= {"narrowest", "budget", "proxy"} and "budget" in res.reasons.values()
    front = res.pareto()
    assert all(a.objective <= b.objective and a.value < b.value for a, b in zip(front, front[1:]))
    doc = res.to_dict()
    assert doc["best"]["plan"]["qsim_plan"] == 1 and doc["threshold"] == pytest.approx(0.98)


def test_search_full_mode_searches_activations_too(task):
    g, x, _ = task
    space = SearchSpace(g, x[:8], (6, 8, 16), mode="full", objective="bitops")
    kinds = {k.kind for k in space.knobs}
    assert kinds == {"weights", "act"}
    plan = space.plan(space.widest())
    assert plan.mode.value == "full" and plan.for_node("r1").act.word_bits == 16
    assert space.objective({k: 8 for k in space.knobs}) == pytest.approx(space.objective(space.widest()) / 4)
    with pytest.raises(InputError, match="act-memory"):
        SearchSpace(g, x[:8], (8, 16), objective="act-memory")


def test_cli_search_writes_a_plan_every_verb_loads(tmp_path, capsys, task):
    from qsim.cli import main

    keras = pytest.importorskip("keras")
    inp = keras.Input((8, 8, 3))
    out = keras.layers.Conv2D(10, 8)(keras.layers.Conv2D(8, 1, activation="relu")(inp))
    model = keras.Model(inp, out)
    model.save(tmp_path / "m.h5")
    x = np.random.default_rng(2).uniform(-1, 1, (64, 8, 8, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.argmax(model.predict(x, verbose=0).reshape(64, -1), axis=1))
    args = ["search", str(tmp_path / "m.h5"), "--data", str(tmp_path / "d.npz"), "--budget", "top1>=fp32-0.05",
            "--words", "3..12", "--no-cache", "--compare", "q8", "--plan-out", str(tmp_path / "best.json"),
            "--json", str(tmp_path / "s.json"), "--plot", str(tmp_path / "s.png")]
    assert main(args) == 0
    assert "best: path step" in capsys.readouterr().out
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["best"]["within_budget"] and doc["baselines"][0]["label"] == "q8"
    assert (tmp_path / "s.png").stat().st_size > 0
    assert main(["eval", str(tmp_path / "m.h5"), "--data", str(tmp_path / "d.npz"), "--no-cache",
                 "--formats", f"fp32,{tmp_path / 'best.json'}"]) == 0
    assert main(["search", str(tmp_path / "m.h5"), "--data", str(tmp_path / "d.npz"), "--budget", "AP>=fp32-0.1",
                 "--no-cache"]) == 1
    assert "metric 'ap'" in capsys.readouterr().err


def test_k210_ram_objective_is_the_largest_layer_in_plus_out_map(task):
    """k210-ram: per MAC layer its input and output maps resident at once (the KPU's rule);
    the objective is the largest such pair, in bytes per sample."""
    g, x, measure = task
    space = SearchSpace(g, x, (6, 8, 16), mode="full", objective="k210-ram", acc_bits=48)  # 16x16-bit sums fit
    wide = space.widest()
    assert space.objective(wide) == (8 * 8 * 3 + 6 * 6 * 8) * 16 / 8  # c1: image in, 6x6x8 out
    narrow_c1 = {**wide, Knob("image", "act"): 8, Knob("c1", "act"): 8}
    assert space.objective(narrow_c1) == (6 * 6 * 8 + 10) * 16 / 8  # now the head's pair is the peak
    assert space.objective({**wide, Knob("logits", "act"): 6}) == space.objective(wide)  # not on the peak
    assert all(space.size[k] == 0 for k in space.knobs if k.kind == "weights")  # maps only
    result = search(space, measure, 1.0, Budget.parse("top1>=fp32-0.05"), progress=False)
    assert result.best is not None and result.best.objective < space.objective(wide)
    with pytest.raises(InputError, match="k210-ram"):
        SearchSpace(g, x[:8], (8, 16), objective="k210-ram")
