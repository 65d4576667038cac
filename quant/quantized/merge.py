"""Integer add (+ fused ReLU / ReLU6) and concat (SPEC §5)."""
import numpy as np

from yuan.frontend.nn.misc import concat_operands
from yuan.frontend.tensor import Tensor

from .. import spec
from .module import QuantizedModule, trace_activation, trace_input, trace_op, trace_output, tracer


class Add(QuantizedModule):
    """Buffers: scales / zero points of `a`, `b`, `output`; `multiplier_a`, `multiplier_b`, `shift`."""
    activation = None

    @classmethod
    def from_qat_module(cls, qat):
        module = cls()
        module.qat_name, module.fusion_tag = qat.qat_name, qat.fusion_tag
        qp_a, qp_b = qat.input_qparams_for_conversion()
        qp_y = qat.output_qparams()
        for edge, qp in (("a", qp_a), ("b", qp_b), ("output", qp_y)):
            module.store_qparams(edge, qp)
        m_a, m_b, n = spec.add_multipliers(spec.scalar_scale(qp_a), spec.scalar_scale(qp_b),
                                           spec.scalar_scale(qp_y))
        module.register_buffer("multiplier_a", Tensor(np.array(m_a, np.int64)))
        module.register_buffer("multiplier_b", Tensor(np.array(m_b, np.int64)))
        module.register_buffer("shift", Tensor(np.array(n, np.int64)))
        module.bounds = spec.activation_bounds(qp_y, cls.activation)
        return module

    def forward(self, a, b):
        q_a, q_b = self.input_codes(a, "a", 0), self.input_codes(b, "b", 1)
        codes = spec.add_int(q_a, self.zero_point("a"), q_b, self.zero_point("b"), int(self.multiplier_a.data),
                             int(self.multiplier_b.data), int(self.shift.data), self.zero_point("output"),
                             *self.bounds)
        out = self.output(codes, self.qparams("output"))
        t = tracer()
        if t is not None:
            y = trace_op(t, "add", {}, [trace_input(t, self, a, "a"), trace_input(t, self, b, "b")], out.shape)
            trace_output(t, self, trace_activation(t, y, self.activation), out)
        return out


class AddReLU(Add):
    activation = "relu"


class AddReLU6(Add):
    activation = "relu6"


class Concat(QuantizedModule):
    """Buffers: `input{i}_scale` / `input{i}_zero_point` per input, output scale / zero point."""
    @classmethod
    def from_qat_module(cls, qat):
        module = cls()
        module.qat_name, module.axis = qat.qat_name, qat.axis
        module.num_inputs = len(qat.input_qparams_for_conversion())
        for i, qp in enumerate(qat.input_qparams_for_conversion()):
            module.store_qparams(f"input{i}", qp)
        module.store_qparams("output", qat.output_qparams())
        return module

    def forward(self, *tensors):
        tensors = concat_operands(tensors)
        codes = [self.input_codes(x, f"input{i}", i) for i, x in enumerate(tensors)]
        qp_y = self.qparams("output")
        axis = self.axis % tensors[0].ndim
        out = self.output(spec.concat(codes, [self.qparams(f"input{i}") for i in range(len(codes))], qp_y, axis),
                          qp_y)
        t = tracer()
        if t is not None:
            floats = [trace_input(t, self, x, f"input{i}") for i, x in enumerate(tensors)]
            trace_output(t, self, trace_op(t, "concat", {"axis": axis}, floats, out.shape), out)
        return out
