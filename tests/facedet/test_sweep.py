"""`qsim sweep`: formats, sizes, AP end to end on FDDB images, cache, workers, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qsim.analysis.formats import NumberFormat
from qsim.errors import InputError
from qsim.executors import run
from qsim.facedet.detector import detect
from qsim.facedet.fddb import load_fddb
from qsim.facedet.metrics import evaluate
from qsim.facedet.sweep import parse_formats, sweep
from qsim.facedet.sweep_formats import ViolaJonesFormat
from qsim.graph.ir import Graph, Node
from qsim.plan import Plan


def tiny_face_graph(seed: int = 0) -> Graph:
    """A stride-16 'detector': one 16x16/16 conv straight to the 125-channel head, with logits
    biased towards ~0.1-0.9 so every format yields plenty of candidates."""
    rng = np.random.default_rng(seed)
    kernel = rng.normal(0, 0.02, (16, 16, 3, 125)).astype(np.float32)
    bias = np.zeros(125, np.float32)
    bias[:25] = rng.uniform(-2.0, 1.0, 25)
    return Graph([
        Node("image", "input", attrs={"shape": (None, None, 3)}),
        Node("head", "conv2d", ["image"], {"strides": (16, 16), "pads": "same", "dilation": (1, 1)},
             {"kernel": kernel, "bias": bias}),
    ], ["head"], name="tiny_face")


def test_parse_formats(tmp_path):
    with pytest.raises(InputError, match="k210 needs calibration"):
        parse_formats("fp32,k210")
    fmts = parse_formats("fp32, fp16,q9,Q4.11,k210,vj", mode="full", acc_bits=24, calibration=tmp_path)
    assert [f.name for f in fmts] == ["fp32", "fp16", "q9", "q4.11", "k210", "vj"]
    assert [f.executor for f in fmts] == ["float", "fp16", "fixed", "fixed", "k210", "viola_jones"]
    assert fmts[4].options == {"calibration": str(tmp_path.resolve()), "calibration_count": 8}
    assert parse_formats("k210", calibration=tmp_path, calibration_count=4)[0].key() != fmts[4].key()
    assert [f.executor for f in parse_formats("q9,fp16")] == ["weights", "fp16"]
    assert fmts[1].plan.fp16_activations and fmts[1].mode == "full"
    assert str(fmts[2].plan.for_node("x").act) == "Q6.9" and fmts[2].plan.for_node("x").acc_bits == 24
    assert parse_formats("fp16")[0].mode == "weights"
    assert parse_formats("q9")[0].key() == parse_formats("Q6.9")[0].key().replace("q6.9", "q9")
    assert parse_formats("q9", mode="full")[0].key() != parse_formats("q9")[0].key()
    with pytest.raises(InputError, match="'q99'"):
        parse_formats("q99")
    with pytest.raises(InputError, match="twice"):
        parse_formats("fp32,float")
    with pytest.raises(InputError, match="mode"):
        parse_formats("q9", mode="half")
    with pytest.raises(InputError, match="no format"):
        parse_formats(" , ")


def test_plan_file_format(tmp_path):
    path = Plan.uniform("Q7", mode="full").save(tmp_path / "my_plan.json")
    (f,) = parse_formats(str(path))
    assert f.name == "my_plan.json" and f.executor == "fixed" and f.mode == "full"


def test_model_size():
    g = tiny_face_graph()
    n = 16 * 16 * 3 * 125 + 125
    assert NumberFormat("fp32", "float").size(g) == (n, 4 * n)
    assert parse_formats("fp16")[0].size(g) == (n, 2 * n)
    assert parse_formats("q9")[0].size(g) == (n, 2 * n)
    mixed = NumberFormat("mixed", "fixed", Plan.uniform("Q9", weights="Q1.6", bias="Q9.22"))
    assert mixed.size(g) == (n, (8 * (n - 125) + 32 * 125) // 8)
    assert ViolaJonesFormat("vj", "viola_jones").size(g) == (None, None)


def test_sweep_end_to_end(data_dir, tmp_path):
    ds = load_fddb(data_dir / "fddb").limit(3)
    g = tiny_face_graph()
    res = sweep(g, ds, "fp32,q9,q14", mode="full", scales=(0.5, 1.0), cache_dir=tmp_path, progress=False)
    assert [r.format for r in res.rows] == ["fp32", "q9", "q14"]
    assert res.n_images == 3 and res.n_faces == sum(im.n_faces for im in ds.images)
    assert res.settings["stride"] == 16
    # fp32 row = the detector and metrics called directly (an independent path through the API)
    per_image = []
    for im in ds.images:
        from qsim.images import load_image

        det = detect(load_image(im.path), lambda x: run(g, x).output(0), stride=16, scales=(0.5, 1.0),
                     score_threshold=0.01)
        per_image.append((det.boxes, det.scores, im.boxes, im.ignore))
    want = evaluate(per_image)
    fp32 = res.rows[0]
    assert fp32.ap == want.ap and fp32.eval.tp.tolist() == want.tp.tolist()
    assert fp32.overflow is None and fp32.size_bytes == 2 * res.rows[1].size_bytes
    # Q9 = Q6.9 holds these activations; Q14 = Q1.14 (|x| < 2) does not: overflow is counted
    assert res.rows[1].overflow.total_events == 0
    assert res.rows[2].overflow.total_events > 0
    assert res.rows[2].overflow.n_images == 3 * 2  # images x pyramid levels
    # table, JSON, plot
    table = res.markdown()  # a tiny model, not the paper's A98: no paper figures beside it (issue 17)
    assert "| q9 | full |" in table and "0.886" not in table and "0.891" not in table and not res.paper_model
    doc = json.loads(json.dumps(res.to_dict(), default=str))
    assert doc["rows"][2]["overflow_events"] > 0 and doc["rows"][0]["paper_ap"] is None
    res.paper_model = True  # what sweep() sets for an A98 alpha 1.0 (is_paper_a98)
    assert "0.886" in res.markdown() and res.to_dict()["rows"][0]["paper_ap"] == 0.891
    assert res.plot(tmp_path / "ap.png").stat().st_size > 0
    # second run: everything from the cache, same numbers
    again = sweep(g, ds, "fp32,q9,q14", mode="full", scales=(0.5, 1.0), cache_dir=tmp_path, progress=False)
    assert [r.cached_images for r in again.rows] == [3, 3, 3]
    assert [r.ap for r in again.rows] == [r.ap for r in res.rows]
    assert again.rows[2].overflow.total_events == res.rows[2].overflow.total_events
    # a different pyramid is a different cache entry
    other = sweep(g, ds, "fp32", scales=(1.0,), cache_dir=tmp_path, progress=False)
    assert other.rows[0].cached_images == 0
    # a corrupt cache entry is recomputed, not trusted
    entry = next((tmp_path / "sweep").rglob("*.npz"))
    entry.write_bytes(b"garbage")
    healed = sweep(g, ds, "fp32,q9,q14", mode="full", scales=(0.5, 1.0), cache_dir=tmp_path, progress=False)
    assert sum(r.cached_images for r in healed.rows) == 8
    assert [r.ap for r in healed.rows] == [r.ap for r in res.rows]


def test_sweep_workers_give_the_same_numbers(data_dir):
    ds = load_fddb(data_dir / "fddb").limit(2)
    g = tiny_face_graph(1)
    one = sweep(g, ds, "fp32,q8", scales=(1.0,), use_cache=False, progress=False)
    two = sweep(g, ds, "fp32,q8", scales=(1.0,), use_cache=False, progress=False, workers=2)
    for a, b in zip(one.rows, two.rows):
        assert a.ap == b.ap and a.eval.fp.tolist() == b.eval.fp.tolist()


def test_sweep_errors(data_dir, tmp_path):
    ds = load_fddb(data_dir / "fddb").limit(1)
    with pytest.raises(InputError, match="not found"):
        sweep(tmp_path / "none.h5", ds, "fp32")
    with pytest.raises(InputError, match="score_threshold"):
        sweep(tiny_face_graph(), ds, "fp32", score_threshold=0.001)
    with pytest.raises(InputError, match="k210 needs calibration"):
        sweep(tiny_face_graph(), ds, "k210")
    bad = Graph([Node("image", "input", attrs={"shape": (None, None, 3)}),
                 Node("head", "conv2d", ["image"], {"strides": (16, 16), "pads": "same", "dilation": (1, 1)},
                      {"kernel": np.zeros((1, 1, 3, 7), np.float32)})], ["head"])
    with pytest.raises(InputError, match="125"):
        sweep(bad, ds, "fp32")


def test_sweep_cli(tf, data_dir, tmp_path, capsys):
    import keras

    from qsim.cli import main

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3))
    out = keras.layers.Conv2D(125, 16, strides=16, padding="same", name="head")(inp)
    path = tmp_path / "tiny.h5"
    keras.Model(inp, out).save(path)
    code = main(["sweep", str(path), "--dataset", "fddb", "--data", str(data_dir / "fddb"), "--formats", "fp32,q9",
                 "--limit", "2", "--scales", "1", "--cache", str(tmp_path / "c"), "--json", str(tmp_path / "s.json"),
                 "--plot", str(tmp_path / "s.png")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| fp32 | float |" in printed and "| q9 | weights |" in printed
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["n_images"] == 2 and [r["format"] for r in doc["rows"]] == ["fp32", "q9"]
    assert (tmp_path / "s.png").stat().st_size > 0
    # another FDDB box rule: same cached detections, other ground truth
    assert main(["sweep", str(path), "--data", str(data_dir / "fddb"), "--formats", "fp32", "--limit", "2",
                 "--scales", "1", "--cache", str(tmp_path / "c"), "--fddb-alpha", "1.0", "--fddb-beta", "0",
                 "--json", str(tmp_path / "s2.json")]) == 0
    doc2 = json.loads((tmp_path / "s2.json").read_text())
    assert doc2["rows"][0]["cached_images"] == 2
    capsys.readouterr()
    # a looser match: the same cached detections, scored at IoU 0.3 (never lower AP here)
    assert main(["sweep", str(path), "--data", str(data_dir / "fddb"), "--formats", "fp32", "--limit", "2",
                 "--scales", "1", "--cache", str(tmp_path / "c"), "--match-iou", "0.3",
                 "--json", str(tmp_path / "s3.json")]) == 0
    assert "AP at IoU >= 0.3" in capsys.readouterr().out
    doc3 = json.loads((tmp_path / "s3.json").read_text())
    assert doc3["rows"][0]["cached_images"] == 2 and doc3["rows"][0]["ap"] >= doc["rows"][0]["ap"]
    assert main(["sweep", str(tmp_path / "missing.h5"), "--formats", "fp32"]) == 1
    assert main(["sweep", str(path), "--formats", "q99", "--data", str(data_dir / "fddb")]) == 1
    assert "q99" in capsys.readouterr().err


def test_cache_entry_edited_by_hand_is_recomputed_with_one_warning_issue17(tmp_path, capsys, monkeypatch):
    """Issue 17 #11: a hand-edited entry that is still a valid .npz was trusted (AP 0.579 -> 0.514)."""
    from qsim.analysis import store as store_mod
    from qsim.facedet.sweep import load_candidates, save_candidates

    monkeypatch.setattr(store_mod, "_WARNED", set(), raising=False)
    store = store_mod.ResultStore(tmp_path, "sweep", "m")
    boxes = np.array([[1.0, 2.0, 30.0, 40.0], [5.0, 5.0, 9.0, 9.0]])
    scores = np.array([0.9, 0.2])
    paths = [store.path("fp32", f"img{i}") for i in range(2)]
    for p in paths:
        save_candidates(store, p, boxes, scores, [{"conv": {"acc": {"events": 0}}}])
        got = load_candidates(store, p)
        assert np.array_equal(got[0], boxes) and np.array_equal(got[1], scores)
        assert got[2] == [{"conv": {"acc": {"events": 0}}}]
    assert capsys.readouterr().err == ""
    for p in paths:  # the edit the audit made: same keys, other scores, a valid npz
        with np.load(p) as z:
            fields = {k: z[k] for k in z.files}
        fields["a_scores"] = np.array([0.1, 0.95])
        np.savez(p, **fields)
    assert load_candidates(store, paths[0]) is None and load_candidates(store, paths[1]) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checksum" in err and "img0" in err and "recomput" in err


def test_only_an_a98_alpha1_is_the_papers_model():
    import qsim
    from qsim.facedet.sweep import is_paper_a98

    assets = Path(qsim.__file__).parent / "assets"
    assert is_paper_a98(qsim.load_model(assets / "a98_alpha1.0.h5"))
    assert not is_paper_a98(qsim.load_model(assets / "b133_alpha1.0.h5"))
    assert not is_paper_a98(tiny_face_graph())


def test_paper_eq5_reading_of_qn_is_our_q_n_minus_1():
    # eqs. (5)-(6) scale by 2^(n-1): the paper's "Qn" would hold n-1 fraction bits in a 16-bit
    # word, Q(16-n).(n-1), which is our q(n-1); same plan, same cache entry (docs/face-detection.md)
    for n in (9, 8, 7, 6):
        ours, eq5 = parse_formats([f"q{n - 1}", f"Q{16 - n}.{n - 1}"])
        assert ours.plan.to_dict() == eq5.plan.to_dict()
        assert ours.key().split("-")[1] == eq5.key().split("-")[1]


def test_fixed_input_size_and_symmetric_pads_are_their_own_cache_entries(data_dir, tmp_path):
    """`--input-size` and `--symmetric-pads` (the paper's K210 deployment, Sec. V-D) change
    what the network computes: the rows equal the detector called directly with the same
    settings, and no cache entry is shared with the plain sweep."""
    import qsim
    from qsim.images import load_image

    ds = load_fddb(data_dir / "fddb").limit(2)
    model = Path(qsim.__file__).parent / "assets" / "a98_alpha1.0.h5"
    kw = dict(scales=(1.0,), cache_dir=tmp_path, progress=False)
    plain = sweep(model, ds, "fp32", **kw)
    fixed = sweep(model, ds, "fp32", input_hw=(96, 96), **kw)
    sym = sweep(model, ds, "fp32", input_hw=(96, 96), symmetric_pads=True, **kw)
    assert [r.rows[0].cached_images for r in (plain, fixed, sym)] == [0, 0, 0]
    for res, pads in ((fixed, False), (sym, True)):
        graph = qsim.load_model(model, symmetric_pads=pads)
        per_image = []
        for im in ds.images:
            det = detect(load_image(im.path), lambda x, g=graph: run(g, x).output(0), stride=16,
                         scales=(1.0,), input_hw=(96, 96), score_threshold=0.01)
            per_image.append((det.boxes, det.scores, im.boxes, im.ignore))
        assert res.rows[0].ap == evaluate(per_image).ap
    assert sym.rows[0].eval.tp.tolist() != fixed.rows[0].eval.tp.tolist() or \
        sym.rows[0].ap != fixed.rows[0].ap  # the pads change the numbers
    assert sweep(model, ds, "fp32", input_hw=(96, 96), symmetric_pads=True, **kw).rows[0].cached_images == 2
    with pytest.raises(InputError, match="symmetric_pads needs a model file"):
        sweep(tiny_face_graph(), ds, "fp32", symmetric_pads=True, graph=None, use_cache=False, progress=False)
