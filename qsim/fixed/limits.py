"""The two limits every exact integer path relies on, spelled once.

* `FLOAT64_EXACT` (2**53): every integer of magnitude up to it is a float64, so float64 sums
  (BLAS) of integers stay exact while every partial sum is below it (a bound the caller
  proves from the formats or the data).
* `INT64_SAFE` (2**62): int64 partial sums, aligned biases and rounding offsets stay below
  it, so adding one more term or a half-LSB offset cannot overflow int64. It is also "no
  cap" for a clamp in the compiled kernels.
"""
FLOAT64_EXACT = 2**53
INT64_SAFE = 2**62
