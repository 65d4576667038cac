"""Yuan's integer specification (SPEC.md): a re-export of compiler.ir.integer_spec.

The arithmetic lives in the compiler so compiled integer graphs and the quantized modules run
one implementation; quant code keeps importing it as `quant.spec`.
"""
from yuan.compiler.ir.integer_spec import *  # noqa: F401,F403
from yuan.compiler.ir.integer_spec import (  # noqa: F401  (private helpers quant modules use)
    _average, _broadcast, _check_int32, _hardsigmoid, _hardswish, _pairs, _same_params,
    _sigmoid, _taps, _window, _zero_point,
)
from yuan.compiler.ir.quant_params import QuantParams  # noqa: F401

from .errors import QuantError  # noqa: F401
