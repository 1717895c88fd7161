"""Plots are written as real PNGs (and fail clearly on a bad path)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from qsim.analysis.compare import Comparison, ErrorStats, LayerError
from qsim.analysis.plots import plot_comparison, plot_heatmap, plot_profile
from qsim.analysis.profile import Profile
from qsim.errors import QsimError
from qsim.graph import Graph, Node
from qsim.trace import Trace

PNG = b"\x89PNG\r\n\x1a\n"


def _comparison():
    rows = [LayerError(f"l{i}", "conv2d", (1, 2), "Q6.9",
                       ErrorStats(4, 0.1, 0.05, 1.0, s, 2 ** -9, 0.0))
            for i, s in enumerate([math.inf, 40.0, 25.0, 12.0])]
    return Comparison("float", "fixed", 2, rows)


def test_plots_write_png(tmp_path):
    p = plot_comparison(_comparison(), tmp_path / "c.png", sqnr_threshold_db=20)
    assert p.read_bytes()[:8] == PNG
    g = Graph([Node("x", "input"), Node("c", "conv2d", ["x"], weights={"kernel": np.ones((1, 1, 1, 1))})],
              outputs=["c"])
    prof = Profile(g).update(Trace("float", values={"x": np.array([-1.0, 1.0]), "c": np.array([0.0, 3.0])}))
    assert plot_profile(prof, tmp_path / "p.png").read_bytes()[:8] == PNG
    m = np.array([[0.0, 1e-4], [0.5, 0.0]])
    assert plot_heatmap(m, ["a", "b"], ["Q2.13", "Q3.12"], tmp_path / "h.png").read_bytes()[:8] == PNG


def test_plot_bad_folder_and_shape(tmp_path):
    with pytest.raises(QsimError, match="does not exist"):
        plot_comparison(_comparison(), tmp_path / "missing" / "c.png")
    with pytest.raises(QsimError, match="does not match"):
        plot_heatmap(np.zeros((2, 2)), ["a"], ["b", "c"], tmp_path / "h.png")
