"""Model zoo: `get_model(name, **kwargs)` builds any registered network by name.

Every factory takes `num_classes` and (except `mlp`) `in_channels` and `width`;
see each factory's docstring for the rest.
"""
import inspect

from .mlp import MLP, mlp
from .mobilenet_v2 import MobileNetV2, mobilenet_v2
from .resnet import BasicBlock, Bottleneck, ResNet, SmallResNet, resnet18, resnet34, resnet50, resnet_small
from .shufflenet import ShuffleNetV1, ShuffleNetV2, shufflenet_v1, shufflenet_v2
from .small_cnn import SmallCNN


class ModelConfigError(ValueError, TypeError):
    """A bad model name or argument. A ValueError for config checks, a TypeError like any bad keyword."""


MODELS = {
    "mlp": mlp,
    "small_cnn": SmallCNN,
    "resnet_small": resnet_small,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "shufflenet_v2": shufflenet_v2,
    "shufflenet_v1": shufflenet_v1,
}


def list_models():
    """Registered model names, sorted."""
    return sorted(MODELS)


def model_arguments(name):
    """The keyword arguments `get_model(name, ...)` accepts, in order."""
    return list(inspect.signature(_factory(name)).parameters)


def _factory(name):
    key = str(name).strip().lower().replace("-", "_")
    if key not in MODELS:
        raise ModelConfigError(f"unknown model '{name}'; known models: {', '.join(list_models())}")
    return MODELS[key]


def get_model(name, **kwargs):
    """Build model `name` (see `list_models()`) with the factory's keyword arguments."""
    factory = _factory(name)
    accepted = model_arguments(name)
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise ModelConfigError(f"model '{name}' got unknown argument(s) {', '.join(map(repr, unknown))}; "
                               f"it accepts: {', '.join(accepted)}")
    return factory(**kwargs)


__all__ = [
    "MODELS", "ModelConfigError", "get_model", "list_models", "model_arguments",
    "MLP", "SmallCNN", "ResNet", "SmallResNet", "BasicBlock", "Bottleneck", "MobileNetV2",
    "ShuffleNetV1", "ShuffleNetV2",
    "mlp", "resnet_small", "resnet18", "resnet34", "resnet50", "mobilenet_v2", "shufflenet_v2", "shufflenet_v1",
]
