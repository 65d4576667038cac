"""Base of the quantized (integer) modules, and how they trace into a QDQ graph.

Tensors between quantized modules hold integer codes (int8 by default) and carry
`.qparams`. Each module stores its integer constants as buffers (so the state dict and the
traced graph name them) and runs `quant.spec` on NumPy integer arrays.

Traced (frontend.trace), a module records the standard QDQ form: `dequantize` of its
integer input(s) and constants, the float op (plus relu / clip for a fused activation),
and `quantize` of the result with the output scale and zero point. The graph therefore
computes QDQ float semantics, which may differ from SPEC §5 by 1 LSB on rare ties.
"""
import numpy as np

from yuan.compiler.ir import QuantParams
from yuan.frontend import autograd, nn
from yuan.frontend.tensor import Tensor

from .. import spec
from ..errors import QuantError
from ..qat.module import name_module_in_error
from ..qtensor import attach, qparams_of, tag_fusion


class QuantizedModule(nn.Module):
    fusion_tag = None

    def __init__(self):
        super().__init__()
        self.qat_name = ""
        self._qtypes = {}     # edge name -> (axis, bits, signed, narrow_range)

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except QuantError as exc:
            raise name_module_in_error(exc, self) from None

    @classmethod
    def named_after(cls, qat):
        """A new module that takes the QAT module's path as its name (for error messages)."""
        module = cls()
        module.qat_name = qat.qat_name
        return module

    def store_input_qparams(self, qat):
        """Store the parameters of `qat`'s single input as edge "input"; returns them."""
        (qp,) = qat.input_qparams_for_conversion()
        self.store_qparams("input", qp)
        return qp

    def describe(self):
        return f"'{self.qat_name}' ({type(self).__name__})" if self.qat_name else type(self).__name__

    # --- quantization parameters as buffers -------------------------------------------
    def store_qparams(self, edge, qp):
        """Buffers `{edge}_scale` (float32) and `{edge}_zero_point` (storage dtype)."""
        self.register_buffer(f"{edge}_scale", Tensor(np.array(qp.scale, np.float32)))
        zero = np.asarray(qp.zero_point).astype(spec.storage_dtype(qp.bits, qp.signed))
        self.register_buffer(f"{edge}_zero_point", Tensor(zero))
        self._qtypes[edge] = (qp.axis, qp.bits, qp.signed, qp.narrow_range)

    def qparams(self, edge):
        axis, bits, signed, narrow = self._qtypes[edge]
        return QuantParams(getattr(self, f"{edge}_scale").data, getattr(self, f"{edge}_zero_point").data.astype(np.int64),
                           axis, bits, signed, narrow)

    def zero_point(self, edge):
        return int(np.asarray(getattr(self, f"{edge}_zero_point").data).reshape(-1)[0])

    # --- inputs and outputs --------------------------------------------------------------
    def input_codes(self, x, edge="input", index=0):
        """The integer codes of input `x`, after checking they have the parameters conversion assumed."""
        expected = self.qparams(edge)
        actual = qparams_of(x)
        if actual is None or np.asarray(x.data).dtype.kind not in "iu":
            raise QuantError(f"input {index} of {self.describe()} is not a quantized tensor; quantized modules "
                             f"take the integer output of a QuantStub or another quantized module")
        if actual != expected:
            raise QuantError(f"input {index} of {self.describe()} is quantized with {actual} but the module was "
                             f"converted for {expected}")
        return x.data

    def output(self, codes, qp):
        out = Tensor(spec.storage(codes, qp))
        return tag_fusion(attach(out, qp), self.fusion_tag)

    def extra_repr(self):
        return self.qat_name


# ------------------------------------------------------------------ tracing (QDQ form)

def tracer():
    return autograd.active_tracer()


def placeholder(shape, dtype=np.float32):
    """A stand-in tensor for an internal QDQ value: the tracer needs only its shape."""
    return Tensor._from_op(np.broadcast_to(np.zeros((), dtype), tuple(shape)), None, 0)


def trace_dequantize(t, q, scale, zero_point, axis=None, out=None):
    out = placeholder(q.shape) if out is None else out
    t.record("dequantize", {"axis": axis}, [q, scale, zero_point], [out])
    return out


def trace_quantize(t, x, scale, zero_point, qp, out):
    attrs = {"axis": qp.axis, "bits": qp.bits, "signed": int(qp.signed), "narrow_range": int(qp.narrow_range)}
    t.record("quantize", attrs, [x, scale, zero_point], [out])
    return out


def trace_op(t, op, attrs, inputs, shape):
    out = placeholder(shape)
    t.record(op, attrs, inputs, [out])
    return out


def trace_activation(t, y, activation):
    if activation == "relu":
        return trace_op(t, "relu", {}, [y], y.shape)
    if activation == "relu6":
        return trace_op(t, "clip", {"min": 0.0, "max": 6.0}, [y], y.shape)
    return y


def trace_input(t, module, x, edge="input"):
    """dequantize(x) with the module's `{edge}_scale` / `{edge}_zero_point` constants."""
    return trace_dequantize(t, x, getattr(module, f"{edge}_scale"), getattr(module, f"{edge}_zero_point"))


def trace_output(t, module, y, out, edge="output"):
    return trace_quantize(t, y, getattr(module, f"{edge}_scale"), getattr(module, f"{edge}_zero_point"),
                          module.qparams(edge), out)
