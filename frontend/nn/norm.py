"""Batch normalisation."""
import numpy as np

from .. import functional as F
from ..tensor import Tensor
from .module import Module, Parameter


class BatchNorm2d(Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, np.float32)) if affine else None
        self.bias = Parameter(np.zeros(num_features, np.float32)) if affine else None
        self.register_buffer("running_mean", Tensor(np.zeros(num_features, np.float32)))
        self.register_buffer("running_var", Tensor(np.ones(num_features, np.float32)))

    def forward(self, x):
        weight, bias = self.weight, self.bias
        if weight is None:  # non-affine: normalise with a fixed unit scale and zero shift
            weight = Tensor(np.ones(self.num_features, np.float32))
            bias = Tensor(np.zeros(self.num_features, np.float32))
        return F.batch_norm(x, self.running_mean, self.running_var, weight, bias,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
