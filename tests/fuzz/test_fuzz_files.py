"""Fuzz every file qsim reads: the only allowed outcomes are a result or a one-line `QsimError`.

Each reader gets hypothesis-driven truncations, byte flips and structural edits (JSON values
replaced, keys dropped) of a valid file built here from code, never a binary blob:

* ``.h5`` (Keras 2 legacy layout, `tests.graph.keras2_files`) and ``.keras`` (zip) -> `qsim.load_model`;
* ``.kmodel`` v4 (slim-320 from ../shared/data/kmodels) -> `read_kmodel`;
* plan JSON -> `Plan.load` + `Plan.validate`;
* ``.npy`` -> `qsim.cli.files.read_npy` and `qsim quantize`'s reader;
* sweep cache entries -> `qsim.facedet.sweep.load_candidates` (None = recompute; it never raises).

The regression corpus of issue 17 (the audit's cases) is given as explicit ``@example``s, so it
runs on every seed. Budget: about 30 s for the whole module (`FUZZ` settings).
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from graph.keras2_files import keras2_config, write_legacy_h5  # tests/ is on sys.path (its conftest)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import qsim
from qsim.errors import QsimError

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                      st.text(max_size=8))
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                             st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                          max_leaves=6)


def outcome(fn, *args):
    """Run `fn`: its result, or the QsimError it raised, whose message must be one line."""
    try:
        return fn(*args)
    except QsimError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, f"QsimError message is not one line: {msg!r}"
        return exc


# --- mutations -------------------------------------------------------------------------------
@st.composite
def byte_edits(draw, size: int, max_flips: int = 8):
    """(cut, [(offset, xor)]): truncate to `cut` bytes after xor-ing bytes at offsets."""
    cut = draw(st.one_of(st.just(size), st.integers(0, size)))
    flips = draw(st.lists(st.tuples(st.integers(0, max(size - 1, 0)), st.integers(1, 255)), max_size=max_flips))
    return cut, flips


def apply_edits(data: bytes, edits) -> bytes:
    cut, flips = edits
    buf = bytearray(data)
    for off, x in flips:
        if off < len(buf):
            buf[off] ^= x
    return bytes(buf[:cut])


@st.composite
def json_edits(draw, doc):
    """A structural edit of a JSON document: one value somewhere replaced or deleted."""
    doc = json.loads(json.dumps(doc))
    node, path = doc, []
    for _ in range(draw(st.integers(0, 6))):
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            key = draw(st.integers(0, len(node) - 1))
        else:
            break
        path.append(key)
        node = node[key]
    if not path:
        return draw(JSON_VALUE)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON_VALUE)
    return doc


# --- Keras .h5 / .keras ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def h5_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "k2.h5"
    write_legacy_h5(path)
    return path.read_bytes()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@FUZZ
@given(data=st.data())
def test_h5_truncated_and_flipped(h5_bytes, tmp_path_factory, data):
    edits = data.draw(byte_edits(len(h5_bytes)))
    path = _write(tmp_path_factory.mktemp("h5"), "m.h5", apply_edits(h5_bytes, edits))
    outcome(qsim.load_model, path)


def _h5_with_config(path: Path, config) -> Path:
    import h5py

    write_legacy_h5(path)
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
    return path


@FUZZ
@given(config=json_edits(keras2_config()))
@example(config={"class_name": "Functional", "config": {"name": "m", "layers": 7}})  # issue 17 #2
@example(config={"class_name": "Functional", "config": {"name": "m", "layers": ["conv", "bn"]}})
def test_h5_config_edits(tmp_path_factory, config):
    outcome(qsim.load_model, _h5_with_config(tmp_path_factory.mktemp("cfg") / "m.h5", config))


@FUZZ
@given(config=json_edits(keras2_config()), edits=st.data())
@example(config=None, edits=None)  # issue 17: config.json of `null`
def test_keras_zip_edits(h5_bytes, tmp_path_factory, config, edits):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", h5_bytes)
    data = buf.getvalue()
    if edits is not None:
        data = apply_edits(data, edits.draw(byte_edits(len(data), max_flips=3)))
    outcome(qsim.load_model, _write(tmp_path_factory.mktemp("keras"), "m.keras", data))


# --- kmodel v4 -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kmodel_bytes(data_dir) -> bytes:
    return (data_dir / "kmodels" / "slim-320.kmodel").read_bytes()


@FUZZ
@given(data=st.data(), header_only=st.booleans())
def test_kmodel_truncated_and_flipped(kmodel_bytes, data, header_only):
    from qsim.k210 import read_kmodel

    # flips inside the header and node table hit the fields a reader must validate
    size = 600 if header_only else len(kmodel_bytes)
    cut, flips = data.draw(byte_edits(size))
    edits = (len(kmodel_bytes) if header_only else cut, flips)
    outcome(read_kmodel, apply_edits(kmodel_bytes, edits))


def test_kmodel_corpus(kmodel_bytes):
    """Issue 17 #7: byte 84 XOR 0x61 (output 0's size) is refused at load."""
    from qsim.k210 import read_kmodel

    assert isinstance(outcome(read_kmodel, apply_edits(kmodel_bytes, (len(kmodel_bytes), [(84, 0x61)]))),
                      QsimError)


# --- plan JSON -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_graph(tmp_path_factory):
    path = tmp_path_factory.mktemp("plan") / "k2.h5"
    write_legacy_h5(path)
    return qsim.load_model(path)


def _plan_doc() -> dict:
    from qsim.plan import Plan

    return Plan.uniform("Q6.9", acc_bits=32).with_nodes({"conv": {"weights": "Q1.14"}}).to_dict()


@FUZZ
@given(doc=json_edits(_plan_doc()))
@example(doc={"qsim_plan": 1, "mode": "full", "default": {"weights": "Q6.9", "bias": "Q6.9", "act": "Q6.9",
                                                          "acc_bits": 1e300, "rounding": "half_up",
                                                          "overflow": "saturate"}})
def test_plan_json_edits(small_graph, tmp_path_factory, doc):
    from qsim.plan import Plan

    path = tmp_path_factory.mktemp("p") / "plan.json"
    path.write_text(json.dumps(doc))
    plan = outcome(Plan.load, path)
    if not isinstance(plan, QsimError):
        outcome(plan.validate, small_graph)


@FUZZ
@given(data=st.binary(max_size=300))
def test_plan_random_bytes(tmp_path_factory, data):
    from qsim.plan import Plan

    outcome(Plan.load, _write(tmp_path_factory.mktemp("pb"), "plan.json", data))


# --- .npy ------------------------------------------------------------------------------------
def _npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


NPY = _npy_bytes(np.arange(24, dtype=np.float32).reshape(2, 3, 4))


@FUZZ
@given(edits=byte_edits(len(NPY)))
@example(edits=(0, []))  # issue 17 #6: a zero-byte .npy
def test_npy_truncated_and_flipped(tmp_path_factory, edits):
    from qsim.cli.files import read_npy
    from qsim.cli.quantize import read_tensors

    path = _write(tmp_path_factory.mktemp("npy"), "x.npy", apply_edits(NPY, edits))
    outcome(read_npy, path, "--input")
    outcome(read_tensors, path)


# --- sweep cache entries ---------------------------------------------------------------------
@FUZZ
@given(data=st.data())
def test_cache_entry_edits(tmp_path_factory, data):
    from qsim.analysis.store import ResultStore
    from qsim.facedet.sweep import load_candidates, save_candidates

    store = ResultStore(tmp_path_factory.mktemp("cache"))
    path = store.path("fp32", "e")
    boxes, scores = np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([0.5])
    save_candidates(store, path, boxes, scores, [])
    raw = path.read_bytes()
    path.write_bytes(apply_edits(raw, data.draw(byte_edits(len(raw)))))
    got = load_candidates(store, path)  # never raises: None means "recompute"
    if got is not None:  # only an entry whose checksum still matches is trusted
        assert np.array_equal(got[0], boxes) and np.array_equal(got[1], scores)
