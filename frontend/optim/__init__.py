"""Optimizers and learning-rate schedules over duck-typed parameters (``.data``/``.grad``)."""
from . import lr_scheduler
from .adam import Adam, AdamW
from .lr_scheduler import CosineAnnealingLR, LinearWarmup, LRScheduler, MultiStepLR, StepLR
from .optimizer import Optimizer
from .sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW",
    "lr_scheduler", "LRScheduler", "StepLR", "MultiStepLR", "CosineAnnealingLR", "LinearWarmup",
]
