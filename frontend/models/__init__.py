"""Model zoo: `get_model(name, **kwargs)` builds any registered network by name.

Every factory takes `num_classes` and (except `mlp`) `in_channels` and `width`;
see each factory's docstring for the rest.
"""
import inspect

from .common import ModelConfigError
from .mlp import MLP, mlp
from .mobilenet_v2 import MobileNetV2, mobilenet_v2
from .resnet import BasicBlock, Bottleneck, ResNet, SmallResNet, resnet18, resnet34, resnet50, resnet_small
from .shufflenet import ShuffleNetV1, ShuffleNetV2, shufflenet_v1, shufflenet_v2
from .small_cnn import SmallCNN


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


def resolve_model_arguments(name, **kwargs):
    """Every argument `get_model(name, **kwargs)` builds with: the given ones, the factory's
    defaults for the rest (e.g. the `num_classes` a training set's labels must fit)."""
    signature = inspect.signature(_factory(name))
    unknown = [k for k in kwargs if k not in signature.parameters]
    if unknown:
        raise ModelConfigError(f"model '{name}' got unknown argument(s) {', '.join(map(repr, unknown))}; "
                               f"it accepts: {', '.join(signature.parameters)}")
    return {key: kwargs.get(key, param.default) for key, param in signature.parameters.items()}


def get_model(name, **kwargs):
    """Build model `name` (see `list_models()`) with the factory's keyword arguments. Sizes that are
    zero, negative or fractional raise ModelConfigError naming the argument."""
    resolve_model_arguments(name, **kwargs)   # unknown arguments: one error listing the accepted ones
    return _factory(name)(**kwargs)


__all__ = [
    "MODELS", "ModelConfigError", "get_model", "list_models", "model_arguments", "resolve_model_arguments",
    "MLP", "SmallCNN", "ResNet", "SmallResNet", "BasicBlock", "Bottleneck", "MobileNetV2",
    "ShuffleNetV1", "ShuffleNetV2",
    "mlp", "resnet_small", "resnet18", "resnet34", "resnet50", "mobilenet_v2", "shufflenet_v2", "shufflenet_v1",
]
