"""Slow references of the K210 kernels (Python ints, `fractions.Fraction`), for tests."""
