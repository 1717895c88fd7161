"""Fixed-point (Q-format) arithmetic core."""
from qsim.fixed.format import QFormat
from qsim.fixed.modes import Overflow, Rounding

__all__ = ["QFormat", "Rounding", "Overflow"]
