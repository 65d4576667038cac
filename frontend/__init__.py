"""Yuan's training frontend: NumPy tensors with autograd, layers, optimizers, data and tracing."""
from . import functional
from . import functional as F
from .autograd import no_grad
from .random import manual_seed
from .tensor import Tensor
from . import data, nn, optim  # noqa: E402  (after Tensor: they build on it)
from .trace import trace

__all__ = ["Tensor", "F", "functional", "no_grad", "manual_seed", "nn", "optim", "data", "trace"]
