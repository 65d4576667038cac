"""The quantization workflow: float model -> QAT model -> quantized model.

    qat = quantize_qat(model)      # fuse, wrap in Quant/DequantStub, swap in QAT modules
    ...train qat as usual (or calibrate(qat, batches) for post-training quantization)...
    qmodel = quantize(qat)         # swap in integer modules

Conversion is table lookup: `QAT_MODULES` maps float classes to QAT classes
(`from_float_module(module, qconfig)`), `QUANTIZED_MODULES` maps QAT classes to quantized
classes (`from_qat_module(module)`). Register a new layer by adding to both tables.

Per-module control (paths as in the float model):
* `qconfig_dict={"layer3": qconfig, "fc": "minmax"}`: the longest matching module-path prefix
  wins, "" is the default; values are QConfigs or preset names.
* `skip=["classifier"]`, `qconfig_dict={"classifier": None}` or `model.classifier.qconfig = None`
  before quantize_qat: that subtree stays in float, as a `FloatIsland` (dequantize its input,
  run the float module, quantize its output so quantized layers can follow). A float subtree
  must return one tensor; everything inside it stays float.

What a forward() may do with quantized tensors: call modules (merges through nn.Add / nn.Concat
modules, not `+` or F.concat), and move data (F.split, reshape, slicing: views keep their
parameters). Arithmetic on quantized tensors outside modules is not seen by quantization.
"""
import copy
import numbers

import numpy as np

from yuan.frontend import autograd, nn
from yuan.frontend.tensor import Tensor

from . import fused, qat, quantized, spec, stubs
from .errors import QuantError
from .fake_quant import FakeQuantizeBase
from .fuse import fuse_known_patterns, submodule_at
from .int32_range import checked_bias_codes
from .qat.module import QATModule, float_path, name_module_in_error
from .qconfig import default_qconfig, get_qconfig
from .quantized.module import QuantizedModule

# float class -> QAT class
QAT_MODULES = {
    stubs.QuantStub: qat.QuantStub, stubs.DequantStub: qat.DequantStub,
    nn.Conv2d: qat.Conv2d, fused.ConvReLU2d: qat.ConvReLU2d, fused.ConvReLU62d: qat.ConvReLU62d,
    fused.ConvBn2d: qat.ConvBn2d, fused.ConvBnReLU2d: qat.ConvBnReLU2d, fused.ConvBnReLU62d: qat.ConvBnReLU62d,
    nn.Linear: qat.Linear, fused.LinearReLU: qat.LinearReLU, fused.LinearReLU6: qat.LinearReLU6,
    nn.Add: qat.Add, fused.AddReLU: qat.AddReLU, fused.AddReLU6: qat.AddReLU6, nn.Concat: qat.Concat,
    nn.MaxPool2d: qat.MaxPool2d, nn.AvgPool2d: qat.AvgPool2d, nn.GlobalAvgPool2d: qat.GlobalAvgPool2d,
    nn.AdaptiveAvgPool2d: qat.AdaptiveAvgPool2d,
    nn.ReLU: qat.ReLU, nn.ReLU6: qat.ReLU6, nn.Hardswish: qat.Hardswish, nn.Hardsigmoid: qat.Hardsigmoid,
    nn.Sigmoid: qat.Sigmoid, nn.Tanh: qat.Tanh,
    nn.Identity: qat.Identity, nn.Flatten: qat.Flatten, nn.Dropout: qat.Dropout,
    nn.ChannelShuffle: qat.ChannelShuffle,
}

# QAT class -> quantized class (BN is folded away: ConvBn* become plain integer convs)
QUANTIZED_MODULES = {
    qat.QuantStub: quantized.QuantStub, qat.DequantStub: quantized.DequantStub,
    qat.FloatIsland: quantized.FloatIsland,
    qat.Conv2d: quantized.Conv2d, qat.ConvBn2d: quantized.Conv2d,
    qat.ConvReLU2d: quantized.ConvReLU2d, qat.ConvBnReLU2d: quantized.ConvReLU2d,
    qat.ConvReLU62d: quantized.ConvReLU62d, qat.ConvBnReLU62d: quantized.ConvReLU62d,
    qat.Linear: quantized.Linear, qat.LinearReLU: quantized.LinearReLU, qat.LinearReLU6: quantized.LinearReLU6,
    qat.Add: quantized.Add, qat.AddReLU: quantized.AddReLU, qat.AddReLU6: quantized.AddReLU6,
    qat.Concat: quantized.Concat,
    qat.MaxPool2d: quantized.MaxPool2d, qat.AvgPool2d: quantized.AvgPool2d,
    qat.GlobalAvgPool2d: quantized.GlobalAvgPool2d, qat.AdaptiveAvgPool2d: quantized.AdaptiveAvgPool2d,
    qat.ReLU: quantized.ReLU, qat.ReLU6: quantized.ReLU6, qat.Hardswish: quantized.Hardswish,
    qat.Hardsigmoid: quantized.Hardsigmoid, qat.Sigmoid: quantized.Sigmoid, qat.Tanh: quantized.Tanh,
    qat.Identity: quantized.Identity, qat.Flatten: quantized.Flatten, qat.Dropout: quantized.Dropout,
    qat.ChannelShuffle: quantized.ChannelShuffle,
}

# Modules that are the same object in all three trees.
KEPT_MODULES = (fused.FusedAway,)


def _resolve_qconfig(value):
    return None if value is None else get_qconfig(value)


def _matches(path, prefix):
    return prefix == "" or path == prefix or path.startswith(prefix + ".")


def propagate_qconfig(model, qconfig=None, qconfig_dict=None, skip=()):
    """Set `module.qconfig` on every module. Precedence: a qconfig the user already set on the
    module (None = keep in float) > `skip` (float) > the longest matching `qconfig_dict` prefix >
    the parent's. The root defaults to `qconfig` (default: the "ema" preset)."""
    qconfig_dict = dict(qconfig_dict or {})
    root_default = _resolve_qconfig(qconfig_dict.pop("", qconfig if qconfig is not None else default_qconfig))
    for prefix in list(qconfig_dict) + list(skip):
        _find(model, prefix)

    def visit(module, path, inherited):
        if "qconfig" in module.__dict__:
            chosen = _resolve_qconfig(module.__dict__["qconfig"])
        elif any(_matches(path, s) for s in skip):
            chosen = None
        else:
            keys = [k for k in qconfig_dict if _matches(path, k)]
            chosen = _resolve_qconfig(qconfig_dict[max(keys, key=len)]) if keys else inherited
        module.qconfig = chosen
        for name, child in module.named_children():
            visit(child, f"{path}.{name}" if path else name, chosen)

    visit(model, "", root_default)
    return model


def _find(model, path):
    module = submodule_at(model, path)
    if module is None:
        raise QuantError(f"no submodule '{path}' in {type(model).__name__} (from qconfig_dict / skip)")
    return module


def _has_stub(model):
    return any(isinstance(m, stubs.QuantStub) for m in model.modules())


def _own_state(module):
    return list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))


def quantize_qat(model, qconfig=None, inplace=False, fuse=True, qconfig_dict=None, skip=()):
    """A QAT copy of a float model (the model itself with inplace=True).

    Fuses known patterns (fuse=True), wraps the model in `QuantWrapper` unless it already
    contains a `QuantStub`, assigns qconfigs (see `propagate_qconfig`) and swaps every
    module for its QAT class. Unsupported layers raise one QuantError listing all of them.
    """
    if not inplace:
        model = copy.deepcopy(model)
    was_training = model.training
    if fuse:
        model = fuse_known_patterns(model, inplace=True)
    for path in list(qconfig_dict or {}) + list(skip):
        _find(model, path)    # a typo in a path is an error, not a silent no-op
    wrapped = not _has_stub(model)
    if wrapped:
        model = stubs.QuantWrapper(model)
        # Paths the user gave are relative to their model, now the wrapper's child "model".
        qconfig_dict = {(f"model.{k}" if k else k): v for k, v in (qconfig_dict or {}).items()}
        skip = [f"model.{p}" if p else "model" for p in skip]
    propagate_qconfig(model, qconfig, qconfig_dict, skip)
    unsupported = []
    _swap_to_qat(model, "", unsupported)
    if unsupported:
        if wrapped:   # name them as in the user's model
            unsupported = [(p[len("model."):] if p.startswith("model.") else p, t) for p, t in unsupported]
        raise QuantError(
            f"quantize_qat: {len(unsupported)} module(s) have no quantized version: " +
            ", ".join(f"'{p}' ({t})" for p, t in unsupported) +
            "; leave them in float with quantize_qat(..., skip=[path]) or module.qconfig = None")
    return model.train(was_training)


def _swap_to_qat(module, prefix, unsupported):
    for name, child in list(module.named_children()):
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(child, KEPT_MODULES + (QATModule, QuantizedModule)):
            continue
        if child.qconfig is None:
            new = qat.FloatIsland(child, module.qconfig or default_qconfig)
        elif type(child) in QAT_MODULES:
            new = QAT_MODULES[type(child)].from_float_module(child, child.qconfig)
        elif any(True for _ in child.named_children()) and not _own_state(child):
            _swap_to_qat(child, path, unsupported)   # a container: its forward stays, its layers change
            continue
        else:
            unsupported.append((path, type(child).__name__))
            continue
        new.qat_name = path
        new.train(child.training)
        module._modules[name] = new


def quantize(qat_model, inplace=False):
    """The integer model of a QAT model (a copy unless inplace), in eval mode.

    Its outputs equal the QAT model's eval-mode outputs bit for bit. The QAT model must
    have run at least once (training or `calibrate`) so each layer knows its input's scale.
    """
    if not any(isinstance(m, QATModule) for m in qat_model.modules()):
        raise QuantError("quantize: the model has no QAT modules; prepare it with quantize_qat() first")
    model = qat_model if inplace else copy.deepcopy(qat_model)
    unsupported = []
    _swap_to_quantized(model, "", unsupported)
    if unsupported:
        raise QuantError("quantize: no quantized version of " +
                         ", ".join(f"'{p}' ({t})" for p, t in unsupported))
    return model.eval()


def _swap_to_quantized(module, prefix, unsupported):
    for name, child in list(module.named_children()):
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(child, KEPT_MODULES + (QuantizedModule,)):
            continue
        if type(child) in QUANTIZED_MODULES:
            try:
                module._modules[name] = QUANTIZED_MODULES[type(child)].from_qat_module(child)
            except QuantError as exc:
                raise name_module_in_error(exc, child) from None
        elif isinstance(child, QATModule) or not any(True for _ in child.named_children()):
            unsupported.append((path, type(child).__name__))
        else:
            _swap_to_quantized(child, path, unsupported)


# ------------------------------------------------------------------ flags and calibration

def fake_quant_modules(model):
    return [m for m in model.modules() if isinstance(m, FakeQuantizeBase)]


def enable_observer(model, flag=True):
    for fq in fake_quant_modules(model):
        fq.enable_observer(flag)
    return model


def disable_observer(model):
    return enable_observer(model, False)


def enable_fake_quant(model, flag=True):
    for fq in fake_quant_modules(model):
        fq.enable_fake_quant(flag)
    return model


def disable_fake_quant(model):
    return enable_fake_quant(model, False)


def _batch_input(batch):
    """The model input of a calibration batch: an array / Tensor, or the first item of (x, y, ...)."""
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise QuantError("calibrate: got an empty batch tuple")
        batch = batch[0]
    array = batch.data if isinstance(batch, Tensor) else np.asarray(batch)
    if array.dtype.kind not in "fiu":
        raise QuantError(f"calibrate: a batch must be a numeric array, got dtype {array.dtype}")
    return array.astype(np.float32, copy=False)


def calibrate(model, data, num_batches=None):
    """Post-training calibration: run `data` through a QAT model in eval mode with fake quant off
    and observers on, then switch fake quant on. `data`: an iterable of input arrays / Tensors or
    of (x, y, ...) batches; `num_batches` (a positive integer) limits how many are used. Observer
    flags and the train/eval mode are restored afterwards. Returns the model.

    Once the scales are known, every conv / linear is checked against the int32 range (SPEC §5),
    so bit widths the integer model cannot hold fail here, naming the layer, not after training."""
    fqs = fake_quant_modules(model)
    if not fqs:
        raise QuantError("calibrate: the model has no fake-quant modules; prepare it with quantize_qat() first")
    _check_calibration_arguments(data, num_batches)
    was_training = model.training
    observer_flags = [fq.observer_enabled for fq in fqs]
    first, count = None, 0
    model.eval()
    disable_fake_quant(model)
    enable_observer(model)
    try:
        with autograd.no_grad():
            for index, batch in enumerate(data):
                if num_batches is not None and count >= num_batches:
                    break
                x = _batch_input(batch)
                if not np.all(np.isfinite(x)):
                    raise QuantError(f"calibrate: batch {index} contains NaN or inf values")
                model(Tensor(x))
                first = x if first is None else first
                count += 1
        if count == 0:
            raise QuantError("calibrate: the data yielded no batches; pass an iterable of input arrays "
                             "or (x, y) batches")
        enable_fake_quant(model)
        if any(not getattr(fq, "is_initialized", True) for fq in fqs):
            # Learned-scale fake quants initialise from their observers on their first enabled
            # forward; give them one (float path, observers off so the statistics stay).
            disable_observer(model)
            with autograd.no_grad(), float_path():
                model(Tensor(first))
        check_int32_range(model)
    finally:
        for fq, flag in zip(fqs, observer_flags):
            fq.enable_observer(flag)
        enable_fake_quant(model)
        model.train(was_training)
    return model


def _check_calibration_arguments(data, num_batches):
    if num_batches is not None and (isinstance(num_batches, bool) or not isinstance(num_batches, numbers.Integral)
                                    or num_batches < 1):
        raise QuantError(f"calibrate: num_batches must be an integer >= 1 (or None for all), got {num_batches!r}")
    if not hasattr(data, "__iter__"):
        raise QuantError(f"calibrate: data must be an iterable of input arrays or (x, y) batches, "
                         f"got {type(data).__name__}")


def check_int32_range(model):
    """Refuse, naming the layer, a QAT conv / linear whose int32 bias would overflow with its
    current scales, and warn about one whose accumulator could (SPEC §5), as quantize() would."""
    for module in model.modules():
        if not _has_integer_accumulator(module):
            continue
        try:
            (qp_x,) = module.input_qparams_for_conversion()
            weight, bias = module.deploy_weight_bias()
            qp_w = module.weight_qparams()
            checked_bias_codes(bias, spec.quantize(weight, qp_w), qp_x, qp_w, module.describe())
        except QuantError as exc:
            raise name_module_in_error(exc, module) from None


def _has_integer_accumulator(module):
    """A QAT conv / linear that has run on a quantized input (others are checked at conversion)."""
    providers = getattr(module, "_input_providers", None)
    return (isinstance(module, QATModule) and hasattr(module, "deploy_weight_bias")
            and providers is not None and all(p is not None for p in providers))
