"""Fixtures: test models converted once per session (TensorFlow needed, see models.py)."""
from __future__ import annotations

import pytest
import tflite_testmodels as models


@pytest.fixture(scope="session")
def tflite_model_bytes(tf, tmp_path_factory):
    """name -> .tflite bytes; names are models.MODELS keys, with a '_pow2' variant each."""
    cache: dict[str, bytes] = {}

    def get(name: str) -> bytes:
        if name not in cache:
            base = name.removesuffix("_pow2")
            cache[name] = models.MODELS[base](tf, pow2=(base != name))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def tflite_model_path(tflite_model_bytes, tmp_path_factory):
    """name -> path of the converted .tflite file in a session temp dir."""
    root = tmp_path_factory.mktemp("tflite_models")

    def get(name: str):
        p = root / f"{name}.tflite"
        if not p.exists():
            p.write_bytes(tflite_model_bytes(name))
        return p

    return get
