"""Model edges of a quantized model: QuantStub (float -> codes), DequantStub (codes -> float)
and FloatIsland (a float subtree between quantized layers)."""
import numpy as np

from yuan.frontend.tensor import Tensor

from .. import spec
from ..errors import QuantError
from ..qtensor import attach, qparams_of
from .module import QuantizedModule, trace_dequantize, trace_output, tracer


class QuantStub(QuantizedModule):
    """q = clamp(round_half_even(x / s) + z) (SPEC §3); buffers `output_scale`, `output_zero_point`."""
    @classmethod
    def from_qat_module(cls, qat):
        module = cls.named_after(qat)
        module.store_qparams("output", qat.output_qparams())
        return module

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(np.asarray(x, np.float32))
        qp = self.qparams("output")
        out = self.output(spec.quantize(x.data, qp), qp)
        t = tracer()
        if t is not None:
            trace_output(t, self, x, out)
        return out


class DequantStub(QuantizedModule):
    """r = float32(q - z) * s (SPEC §3) with the parameters the input carries (one stub may end
    several outputs); buffers `input_scale`, `input_zero_point` hold those of the last input seen
    during conversion and name the graph constants."""

    @classmethod
    def from_qat_module(cls, qat):
        module = cls.named_after(qat)
        module.store_input_qparams(qat)
        return module

    def forward(self, x):
        qp = qparams_of(x)
        if qp is None or np.asarray(x.data).dtype.kind not in "iu":
            raise QuantError(f"{self.describe()} got a tensor that is not quantized")
        out = attach(Tensor(spec.dequantize(x.data, qp)), None)
        t = tracer()
        if t is not None:
            if qp == self.qparams("input"):
                scale, zero_point = self.input_scale, self.input_zero_point
            else:
                scale = Tensor(np.array(qp.scale, np.float32))
                zero_point = Tensor(np.asarray(qp.zero_point).astype(spec.storage_dtype(qp.bits, qp.signed)))
            trace_dequantize(t, x, scale, zero_point, out=out)
        return out


class FloatIsland(QuantizedModule):
    """Dequantize the inputs, run the float `module`, quantize its output."""
    @classmethod
    def from_qat_module(cls, qat):
        module = cls()
        module.qat_name, module.fusion_tag = qat.qat_name, qat.fusion_tag
        module.module = qat.module
        module.num_inputs = 0
        for i, qp in enumerate(qat.input_qparams_for_conversion()):
            module.store_qparams(f"input{i}", qp)
            module.num_inputs += 1
        module.store_qparams("output", qat.output_qparams())
        return module

    def forward(self, *inputs):
        if len(inputs) != self.num_inputs:
            raise QuantError(f"{self.describe()} was converted for {self.num_inputs} inputs, got {len(inputs)}")
        t = tracer()
        floats = []
        for i, x in enumerate(inputs):
            f = attach(Tensor(spec.dequantize(self.input_codes(x, f"input{i}", i), self.qparams(f"input{i}"))), None)
            if t is not None:  # the float module's ops read this real tensor, so record it as the output
                trace_dequantize(t, x, getattr(self, f"input{i}_scale"), getattr(self, f"input{i}_zero_point"), out=f)
            floats.append(f)
        y = self.module(*floats)
        qp = self.qparams("output")
        out = self.output(spec.quantize(y.data, qp), qp)
        if t is not None:
            trace_output(t, self, y, out)
        return out
