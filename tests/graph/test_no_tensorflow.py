"""``import qsim``, loading and running a model never import TensorFlow or Keras."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from .keras2_files import write_legacy_h5

REPO = Path(__file__).resolve().parents[2]


def test_load_and_run_without_tensorflow(tmp_path):
    path = tmp_path / "k2.h5"
    write_legacy_h5(path)
    script = textwrap.dedent(f"""
        import sys
        for blocked in ("tensorflow", "keras", "tf_keras", "onnxruntime", "cv2"):
            sys.modules[blocked] = None  # any import of them now raises ImportError
        import numpy as np
        import qsim
        from qsim.cli import main
        from qsim.graph.summary import summarize
        graph = qsim.load_model({str(path)!r})
        trace = qsim.run(graph, np.zeros((16, 16, 3), np.float32))
        assert trace.outputs["prob"].shape == (1, 8, 8, 5)
        summarize(graph, (16, 16))
        assert main(["inspect", {str(path)!r}, "--size", "16x16"]) == 0
        loaded = [m for m in ("tensorflow", "keras") if sys.modules.get(m) is not None]
        assert not loaded, loaded
        print("OK")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")
