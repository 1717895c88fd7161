"""Kernels shared by the executors.

Integer kernels (Numba, exact): `conv` (conv2d / depthwise / pointwise), `eltwise`
(relu, add, concat, pad, nearest upsample), `upsample` (bilinear), `sigmoid`.
Each has a slow, obviously-correct twin in `qsim.kernels.ref` (Python ints, `Fraction`)
that the tests compare with for exact equality. `float_ops` holds the float kernels.

Every integer kernel follows one contract: codes in, exact integer arithmetic (int64, or
float64 BLAS only where ``|sum| < 2**53`` is proved for the data at hand), then one
`qsim.fixed.rescale` to the output format with the plan's rounding and overflow modes.
"""
