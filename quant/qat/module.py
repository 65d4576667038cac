"""Base of the QAT modules: fake-quant bookkeeping and the eval-mode integer path.

Modes of a QAT module:

* training: float arithmetic on fake-quantized values, gradients by straight-through
  estimators (SPEC §8's one exception).
* eval with fake quant enabled ("integer mode"): the SPEC §5 integer arithmetic, exactly:
  input codes are recovered from the input's `.qparams` (q = rint(x / s) + z is exact for
  fake-quantized values), accumulators are exact, requantization is `spec.requantize`.
  The output is the dequantized codes, carrying `.qparams`. Observers are frozen: this is
  what the converted model computes, bit for bit.
* eval with fake quant disabled (calibration): float arithmetic; observers still watch.
* tracing (frontend.trace): the float path, so the fake quants record quantize/dequantize
  pairs (a QDQ graph of the QAT model).
"""
from contextlib import contextmanager

import numpy as np

from yuan.frontend import autograd, nn
from yuan.frontend.tensor import Tensor

from .. import spec
from ..errors import QuantError
from ..qtensor import attach, provider_of, qparams_of, tag_fusion


_float_path_forced = [False]


@contextmanager
def float_path():
    """Run QAT modules on their float path even in eval mode (calibration warm-up)."""
    previous, _float_path_forced[0] = _float_path_forced[0], True
    try:
        yield
    finally:
        _float_path_forced[0] = previous


def name_module_in_error(exc, module):
    """The QuantError `exc`, prefixed once with the module that raised it (the innermost)."""
    if getattr(exc, "names_module", False):
        return exc
    named = QuantError(f"{module.describe()}: {exc}")
    named.names_module = True
    return named


def fake_quant_enabled(fq):
    """Whether a fake-quant module currently quantizes."""
    return bool(fq.fake_quant_enabled)


class QATModule(nn.Module):
    """Common state: `qconfig`, the output fake quant `act_fake_quant` (when the module
    produces new quantization parameters), the input providers seen on the last call."""

    fusion_tag = None

    def __init__(self, qconfig=None, has_output_fake_quant=True):
        super().__init__()
        self.qconfig = qconfig
        self.qat_name = ""    # set by quantize_qat: the module path, for error messages
        self._input_providers = None
        if has_output_fake_quant:
            if qconfig is None:
                raise QuantError(f"{type(self).__name__} needs a qconfig")
            self.act_fake_quant = qconfig.act_fake_quant()

    @classmethod
    def from_float_module(cls, module, qconfig):
        """The QAT module that replaces the float `module`; `copy_settings` takes what the
        forward needs from it."""
        qat = cls(qconfig)
        qat.copy_settings(module)
        return qat

    def copy_settings(self, module):
        pass

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except QuantError as exc:
            raise name_module_in_error(exc, self) from None

    # --- wiring, for conversion ---------------------------------------------------
    def record_inputs(self, *inputs):
        self._input_providers = [provider_of(x) for x in inputs]

    def input_qparams_for_conversion(self):
        """QuantParams of each input at conversion time (from the recorded providers)."""
        if self._input_providers is None:
            raise QuantError(f"{self.describe()} has never run: run the QAT model on data (calibrate() "
                             f"or training) before converting it with quantize()")
        params = []
        for i, provider in enumerate(self._input_providers):
            if provider is None:
                raise QuantError(f"input {i} of {self.describe()} does not come from a quantized module "
                                 f"(QuantStub or QAT layer); computed by float code in forward()?")
            params.append(provider.qparams())
        return params

    def describe(self):
        return f"'{self.qat_name}' ({type(self).__name__})" if self.qat_name else type(self).__name__

    # --- modes ----------------------------------------------------------------------
    def integer_mode(self):
        # While tracing, the float path runs so the fake quants record quantize/dequantize pairs.
        if self.training or autograd.active_tracer() is not None or _float_path_forced[0]:
            return False
        fqs = [m for m in (getattr(self, "act_fake_quant", None), getattr(self, "weight_fake_quant", None))
               if m is not None]
        return all(fake_quant_enabled(fq) for fq in fqs)

    def input_qparams(self, x, index=0):
        qp = qparams_of(x)
        if qp is None:
            raise QuantError(f"input {index} of {self.describe()} carries no quantization parameters; in eval "
                             f"mode a QAT layer needs a quantized input: put a QuantStub before it, and merge "
                             f"tensors with nn.Add / nn.Concat modules rather than tensor arithmetic")
        if qp.axis is not None:
            raise QuantError(f"input {index} of {self.describe()} is quantized per channel; activations "
                             f"must be per tensor (SPEC §1)")
        return qp

    def input_codes(self, x, index=0):
        """(codes int64, qparams) of a fake-quantized input."""
        qp = self.input_qparams(x, index)
        return spec.codes_of(x.data, qp), qp

    def output_qparams(self):
        return self.act_fake_quant.qparams()

    # --- outputs --------------------------------------------------------------------
    def quantize_output(self, y):
        """Float path: the output fake quant (observes / fake-quantizes per its flags)."""
        fq = self.act_fake_quant
        out = fq(y)
        qp = getattr(out, "qparams", None) if fake_quant_enabled(fq) else None
        if out is y and not (y.requires_grad and y._ctx is None):
            out = Tensor._from_op(y.data, y._ctx, y._output_index)   # label a new tensor, not the caller's
        return self.finish(out, qp, fq)

    def integer_output(self, codes, qp):
        """Integer path: dequantized codes as a constant Tensor labelled with `qp`."""
        return self.finish(Tensor(spec.dequantize(codes, qp)), qp, self.act_fake_quant)

    def finish(self, out, qp, provider):
        attach(out, qp, provider)
        return tag_fusion(out, self.fusion_tag)

    def extra_repr(self):
        return self.qat_name


class KeepsInputQParams(QATModule):
    """Base of modules without an output fake quant (ReLU, dequant stub, data movement): the
    output keeps the input's parameters, so the qconfig they are built with is not used."""

    def __init__(self, qconfig=None):
        super().__init__(None, has_output_fake_quant=False)


class FromFusedFloat:
    """Mixin for QAT modules made from a fused float module (conv+relu, linear+relu): build
    from the wrapped layer named `fused_layer` and keep the group's fusion tag."""
    fused_layer = None

    @classmethod
    def from_float_module(cls, module, qconfig):
        qat = super().from_float_module(getattr(module, cls.fused_layer), qconfig)
        qat.fusion_tag = module.fusion_tag
        return qat


def check_symmetric_weights(qp, who):
    if np.any(np.asarray(qp.zero_point) != 0):
        raise QuantError(f"{who}: weights must be symmetric (zero point 0, SPEC §1); the weight "
                         f"observer produced zero points {np.asarray(qp.zero_point).ravel()[:4]}...")
    return qp
