"""``qsim sweep --formats fp32,tflite:MODEL.tflite``: the A98 int8 row (Table II) on FDDB images."""
from __future__ import annotations

import numpy as np

from qsim.datasets import REPO_ROOT
from qsim.facedet.fddb import load_fddb
from qsim.facedet.sweep import parse_formats, sweep
from qsim.tflite.runner import TfliteFunction

A98 = REPO_ROOT / "qsim" / "assets" / "a98_alpha1.0.h5"


def test_tflite_function_runs_any_pyramid_size(tflite_model_path):
    f = TfliteFunction(tflite_model_path("a98"))  # dynamic H x W, run at pyramid sizes
    for hw in ((64, 64), (48, 80), (96, 64), (37, 53)):
        out = f(np.zeros((1, *hw, 3), np.float32))
        assert out.shape[0] == 1 and out.shape[3] == 125 and out.dtype == np.float32
        if hw[0] % 16 == 0 and hw[1] % 16 == 0:
            assert out.shape[1:3] == (hw[0] // 16, hw[1] // 16)
    assert len(f._programs) == 4


def test_fixed_size_model_refuses_other_sizes(tflite_model_path):
    import pytest

    from qsim.errors import InputError

    f = TfliteFunction(tflite_model_path("mobilenet"))  # converted at a fixed 24x24
    f(np.zeros((1, 24, 24, 3), np.float32))
    with pytest.raises(InputError, match="dynamic H x W"):
        f(np.zeros((1, 32, 24, 3), np.float32))


def test_parse_tflite_format(tflite_model_path, tmp_path):
    (fmt,) = parse_formats(f"tflite:{tflite_model_path('a98')}")
    assert (fmt.name, fmt.executor, fmt.mode) == ("tflite", "tflite", "full")
    assert fmt.key() == parse_formats([f"tflite:{tflite_model_path('a98')}"])[0].key()
    import pytest

    from qsim.errors import InputError

    with pytest.raises(InputError, match="not found"):
        parse_formats(f"tflite:{tmp_path / 'none.tflite'}")


def test_sweep_has_a_tflite_row(tflite_model_path, data_dir, tmp_path):
    ds = load_fddb(data_dir / "fddb").limit(2)
    res = sweep(str(A98), ds, f"fp32,tflite:{tflite_model_path('a98')}", scales=(0.5,), cache_dir=tmp_path,
                progress=False)
    rows = {r.format: r for r in res.rows}
    assert set(rows) == {"fp32", "tflite"}
    t = rows["tflite"]
    assert 0.0 <= t.ap <= 1.0 and t.mode == "full"
    assert t.params > 0
    assert t.size_bytes < rows["fp32"].size_bytes / 3  # int8 weights (+ int32 biases) vs float32
    assert "tflite" in res.markdown()
    again = sweep(str(A98), ds, f"tflite:{tflite_model_path('a98')}", scales=(0.5,), cache_dir=tmp_path,
                  progress=False)
    assert again.rows[0].cached_images == 2 and again.rows[0].ap == t.ap


def test_dynamic_model_is_the_keras_network_at_odd_sizes(tflite_model_path):
    """The pyramid's odd sizes: same output grid as the float graph, close values."""
    import qsim
    from qsim.executors import run

    g = qsim.load_model(A98)
    f = TfliteFunction(tflite_model_path("a98"))
    x = np.random.default_rng(0).uniform(-1, 1, (1, 45, 67, 3)).astype(np.float32)
    want = np.asarray(run(g, x, executor="float").output(0))
    got = f(x)
    assert got.shape == want.shape
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.9
