"""Integer element-wise product of n tensors (Keras Multiply; squeeze-and-excitation scaling).

Contract
--------
* Inputs: n >= 2 code tensors, input ``i`` in ``in_fmts[i]``, of one rank; on every axis
  the sizes are equal or 1 (a size-1 axis broadcasts, as an SE block scales (N, H, W, C) by
  (N, 1, 1, C)); the batch axis never broadcasts.
* The product of the codes is exact: ``prod`` has ``sum(frac_i)`` fraction bits, in int64
  while ``prod(max|code_i|) < 2**63`` (from the formats), in Python ints beyond.
* One rounding into ``out_fmt`` (the node's ``act``) at site ``mul``: `qsim.fixed.rescale`
  of the exact product with the plan's rounding and overflow; the counter sees the rounded
  value before narrowing. So ``a * b * c`` rounds once, never per factor.
* Element-wise: no dependence on batch size or threads.

The slow twin is `qsim.kernels.ref.multiply.multiply_ref`.
"""
from __future__ import annotations

import math

import numpy as np

from qsim.errors import InputError
from qsim.fixed.cast import rescale
from qsim.fixed.counters import OverflowCounter
from qsim.fixed.format import QFormat


def broadcast_shape(shapes) -> tuple[int, ...]:
    """The output shape of a product (`InputError` naming the shapes when they do not broadcast)."""
    shapes = [tuple(s) for s in shapes]
    if len({len(s) for s in shapes}) != 1 or len({s[0] for s in shapes if s}) > 1:
        raise InputError(f"multiply operands must have one rank and one batch size, got shapes {shapes}")
    out = []
    for sizes in zip(*shapes):
        big = {d for d in sizes if d != 1}
        if len(big) > 1:
            raise InputError(f"multiply operands of shapes {shapes} do not broadcast (sizes equal or 1 per axis)")
        out.append(big.pop() if big else 1)
    return tuple(out)


def multiply(inputs, in_fmts, *, out_fmt: QFormat, rounding, overflow,
             counter: OverflowCounter | None = None) -> np.ndarray:
    """Exact product of the operands (broadcasting size-1 axes), rounded once to `out_fmt`."""
    if len(inputs) < 2 or len(inputs) != len(in_fmts):
        raise InputError(f"multiply needs at least 2 operands with one format each, got {len(inputs)} "
                         f"operand(s) and {len(in_fmts)} format(s)")
    arrs = []
    for a in inputs:
        a = np.asarray(a)
        if a.dtype.kind not in "if":
            raise InputError(f"multiply operand codes must be integers, got dtype {a.dtype}")
        arrs.append(a.astype(np.int64, copy=False))
    broadcast_shape([a.shape for a in arrs])
    bound = math.prod(max(abs(f.min_code), f.max_code) for f in in_fmts)
    if bound >= 2**63:  # the exact product may leave int64: Python ints
        arrs = [a.astype(object) for a in arrs]
    prod = arrs[0]
    for a in arrs[1:]:
        prod = prod * a
    return rescale(prod, sum(f.frac_bits for f in in_fmts), out_fmt, rounding=rounding, overflow=overflow,
                   counter=counter)


__all__ = ["multiply", "broadcast_shape"]
