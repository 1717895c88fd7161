"""The shared machinery of sweep and eval: the result store and the task runner."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.analysis import store as store_mod
from qsim.analysis.store import ResultStore, content_key, load_entry, save_entry
from qsim.analysis.tasks import map_tasks


def test_entry_round_trip_and_every_kind_of_damage_means_recompute(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(store_mod, "_WARNED", set())
    path = tmp_path / "a" / "b.npz"
    arrays = {"x": np.arange(6, dtype=np.int16).reshape(2, 3), "y": np.array([0.5, -1.0])}
    save_entry(path, arrays, {"n": 2, "note": "ok"})
    got, meta = load_entry(path)
    assert meta == {"n": 2, "note": "ok"} and set(got) == {"x", "y"}
    assert got["x"].dtype == np.int16 and np.array_equal(got["x"], arrays["x"])
    assert not list(path.parent.glob("*.tmp.npz"))  # the temporary file was renamed over
    with np.load(path) as z:  # a valid npz with other content: its checksum no longer matches
        fields = {k: z[k] for k in z.files}
    fields["a_y"] = np.array([0.5, 1.0])
    np.savez(path, **fields)
    assert load_entry(path) is None
    assert "checksum" in capsys.readouterr().err
    path.write_bytes(path.read_bytes()[:40])  # truncated
    assert load_entry(path) is None
    assert load_entry(tmp_path / "missing.npz") is None
    del fields["sha256"]  # written without a checksum (an older qsim): recomputed silently
    np.savez(path, **fields)
    assert load_entry(path) is None and capsys.readouterr().err == ""


def test_store_without_root_stores_nothing(tmp_path):
    off = ResultStore(None, "sweep", "m")
    assert off.path("f", "i") is None and off.load(None) is None
    off.save(None, {"x": np.zeros(1)}, {})
    on = ResultStore(tmp_path, "sweep", "m")
    assert on.path("f", "i") == tmp_path / "sweep" / "m" / "f" / "i.npz"


def test_content_key_depends_on_content_only():
    assert content_key("q9", {"a": 1, "b": [2]}) == content_key("q9", {"b": [2], "a": 1})
    assert content_key("q9", {"a": 1}) != content_key("q9", {"a": 2})
    assert content_key("a/b", {}).startswith("a_b-")


def _init(offset):
    return {"offset": offset}


def _square(state, task):
    return task * task + state["offset"]


@pytest.mark.parametrize("workers", [1, 2])
def test_map_tasks_same_results_in_process_and_in_workers(workers):
    out = {task: result for task, result, secs in map_tasks(list(range(7)), init=_init, init_args=(3,),
                                                            work=_square, workers=workers, progress=False)}
    assert out == {t: t * t + 3 for t in range(7)}
    assert list(map_tasks([], init=_init, init_args=(0,), work=_square)) == []
    with pytest.raises(ValueError, match="workers"):
        list(map_tasks([1], init=_init, init_args=(0,), work=_square, workers=0))
