"""Fusing conv+bn(+relu/relu6), conv+relu, linear+relu and add+relu into one module.

`fuse_modules(model, patterns)` fuses the named groups; `fuse_known_patterns(model)` finds
them: consecutive children of one module (registration order) whose types match a
pattern. The first module of a group is replaced by the fused module; the others by
`FusedAway` placeholders that check at run time that the dataflow really was the chain
fusion assumed (in a Sequential it always is; in a custom forward it usually is, and a
clear error says so when not).
"""
import copy

from yuan.frontend import nn

from . import fused
from .errors import QuantError
from .qat.module import QATModule
from .quantized.module import QuantizedModule

# Type sequences (exact types) -> fused class, longest first so conv+bn+relu beats conv+bn.
FUSION_PATTERNS = [
    ((nn.Conv2d, nn.BatchNorm2d, nn.ReLU), fused.ConvBnReLU2d),
    ((nn.Conv2d, nn.BatchNorm2d, nn.ReLU6), fused.ConvBnReLU62d),
    ((nn.Conv2d, nn.BatchNorm2d), fused.ConvBn2d),
    ((nn.Conv2d, nn.ReLU), fused.ConvReLU2d),
    ((nn.Conv2d, nn.ReLU6), fused.ConvReLU62d),
    ((nn.Linear, nn.ReLU), fused.LinearReLU),
    ((nn.Linear, nn.ReLU6), fused.LinearReLU6),
    ((nn.Add, nn.ReLU), fused.AddReLU),
    ((nn.Add, nn.ReLU6), fused.AddReLU6),
]


def _match(modules):
    types = tuple(type(m) for m in modules)
    for pattern, fused_class in FUSION_PATTERNS:
        if types[:len(pattern)] == pattern:
            return len(pattern), fused_class
    return 0, None


def _build(fused_class, modules, tag):
    first = modules[0]
    if issubclass(fused_class, fused._ConvFused):
        module = fused_class(first, modules[1] if fused_class.has_bn else None)
    elif issubclass(fused_class, fused.LinearReLU):
        module = fused_class(first)
    else:
        module = fused_class()
    module.fusion_tag = tag
    if "qconfig" in first.__dict__:   # a qconfig the user set on the group's first layer stays with it
        module.qconfig = first.qconfig
    return module


def submodule_at(model, path):
    """The module at the dotted `path` ('' is the model itself), or None where there is none."""
    module = model
    for part in path.split(".") if path else []:
        module = module._modules.get(part)
        if module is None:
            return None
    return module


def _get(model, path):
    module = submodule_at(model, path)
    if module is None:
        raise QuantError(f"fuse_modules: '{path}' is not a submodule of {type(model).__name__}")
    return module


def _fuse_group(model, paths):
    """Fuse the modules at `paths` (siblings or not) into one; returns True if a pattern matched."""
    modules = [_get(model, p) for p in paths]
    length, fused_class = _match(modules)
    if length != len(modules):
        raise QuantError("fuse_modules: no fusion pattern for " +
                         " + ".join(f"'{p}' ({type(m).__name__})" for p, m in zip(paths, modules)) +
                         "; known: " + ", ".join("+".join(t.__name__ for t in pat) for pat, _ in FUSION_PATTERNS))
    tag = paths[0]
    _set(model, paths[0], _build(fused_class, modules, tag))
    for path, module in zip(paths[1:], modules[1:]):
        _set(model, path, fused.FusedAway(tag, type(module).__name__))


def _set(model, path, module):
    parent_path, _, name = path.rpartition(".")
    _get(model, parent_path)._modules[name] = module


def fuse_modules(model, patterns=None, inplace=False):
    """Fuse groups of modules. `patterns`: list of lists of module paths, e.g.
    [["conv1", "bn1", "relu1"], ["layer1.0.add", "layer1.0.relu_out"]]; None finds every
    known pattern (`fuse_known_patterns`). Returns the fused model (a copy unless inplace)."""
    if not inplace:
        model = copy.deepcopy(model)
    if patterns is None:
        return fuse_known_patterns(model, inplace=True)
    for group in patterns:
        _fuse_group(model, list(group))
    return model


def find_fusable(model):
    """Groups of sibling paths that match a fusion pattern, in registration order."""
    groups = []
    for prefix, module in model.named_modules():
        if isinstance(module, (fused.FusedModule, fused.FusedAway, QATModule, QuantizedModule)):
            continue   # their children are already one layer
        names = list(module._modules)
        children = [module._modules[n] for n in names]
        i = 0
        while i < len(children):
            length, _ = _match([c for c in children[i:i + 3] if c is not None])
            if length and all(c is not None for c in children[i:i + length]):
                groups.append([f"{prefix}.{n}" if prefix else n for n in names[i:i + length]])
                i += length
            else:
                i += 1
    return groups


def fuse_known_patterns(model, inplace=False):
    """Fuse every known pattern found among consecutive children (see module docstring)."""
    if not inplace:
        model = copy.deepcopy(model)
    for group in find_fusable(model):
        _fuse_group(model, group)
    return model
