"""The one error family of qsim.

Every error a user can provoke (bad file, bad format string, bad plan, bad image)
is a `QsimError` whose message names the file, layer/node and value at fault.
Executors re-raise kernel failures wrapped with the node name (see `node_context`).
"""
from __future__ import annotations

from contextlib import contextmanager


class QsimError(Exception):
    """Base class of every error qsim raises on purpose."""


class FormatError(QsimError, ValueError):
    """An invalid or unparsable number format (e.g. ``"Q-1.3"``, word > 64 bits)."""


class QuantizationError(QsimError, ValueError):
    """A value that cannot be quantized as asked (NaN, Inf under ``wrap``)."""


class ModelError(QsimError):
    """A model file that cannot be read: corrupt, truncated, unsupported layer, NaN weights."""


class PlanError(QsimError):
    """A quantization plan that does not fit the graph (unknown layer, impossible format)."""


class InputError(QsimError, ValueError):
    """An input tensor or image of the wrong rank, shape, dtype or content."""


class KmodelError(ModelError):
    """A K210 .kmodel file that cannot be read or executed."""


@contextmanager
def node_context(node_name: str, op: str):
    """Re-raise any exception inside an op as a QsimError naming the node (like ONNX's OpRun.run)."""
    try:
        yield
    except QsimError as exc:
        if f"node '{node_name}'" in str(exc):
            raise
        raise type(exc)(f"node '{node_name}' ({op}): {exc}") from exc
    except Exception as exc:  # a bug or a numpy error deep inside a kernel
        raise QsimError(f"node '{node_name}' ({op}): {type(exc).__name__}: {exc}") from exc
