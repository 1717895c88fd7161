"""qsim: bit-accurate fixed-point (Q-format) and Kendryte K210 simulation of MobileNetV2-style CNNs.

qsim never imports TensorFlow: models are read with h5py, executed with NumPy/Numba.
"""
from qsim.errors import QsimError
from qsim.fixed import Overflow, QFormat, Rounding
from qsim.model import load_model
from qsim import executors

__version__ = "0.1.0"
__all__ = ["QsimError", "QFormat", "Rounding", "Overflow", "load_model", "executors", "__version__"]
