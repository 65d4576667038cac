"""`Tensor`: a NumPy array plus the bookkeeping reverse-mode autograd needs.

Every operator and method below is a thin call into an op in `frontend.ops`,
so eager execution, gradients and tracing all go through `Function.apply`.
"""
import numbers

import numpy as np

from . import autograd


def _as_array(data, dtype):
    """NumPy array for `data`: float32 unless `dtype` says otherwise; ints/bools keep their dtype."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    array = np.asarray(data)
    if array.dtype.kind == "f" and array.dtype != np.float32:
        return array.astype(np.float32)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"Tensor: unsupported data type {array.dtype}")
    return array


class Tensor:
    """N-d array with optional gradient tracking.

    `Tensor(data, requires_grad=False, dtype=None)`: float input becomes float32
    unless `dtype` is given (gradient checks use float64); integer and bool
    arrays keep their dtype. `.grad` is a NumPy array or None.
    """

    # NumPy must hand `ndarray <op> Tensor` to our reflected operators.
    __array_ufunc__ = None
    # __eq__ returns a Tensor, so restore identity hashing (tensors are dict keys).
    __hash__ = object.__hash__

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self._ctx = None           # the Function call that produced this tensor
        self._output_index = 0     # which output of that call
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _from_op(cls, array, ctx, index):
        """Output of a Function call (no conversion; `ctx` is None when no grad flows)."""
        t = object.__new__(Tensor)
        t.data = array if type(array) is np.ndarray else np.asarray(array)
        t.grad = None
        t._ctx = ctx
        t._output_index = index
        t.requires_grad = ctx is not None
        return t

    # ------------------------------------------------------------ basic properties

    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    @property
    def is_leaf(self):
        return self._ctx is None

    def numpy(self):
        return self.data

    def item(self):
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self):
        """Same data, cut from the graph."""
        return Tensor._from_op(self.data, None, 0)

    def clone(self):
        return _shape.copy(self)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only float tensors can require grad, got {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self):
        self.grad = None

    def backward(self, grad=None, retain_graph=False):
        autograd.backward(self, grad, retain_graph)

    def astype(self, dtype):
        if np.dtype(dtype) == self.dtype:
            return self
        return _ew.Cast.apply(self, dtype=np.dtype(dtype))

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", precision=4, threshold=20,
                               prefix="Tensor(")
        extra = ""
        if self.data.dtype != np.float32:
            extra += f", dtype={self.data.dtype}"
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"Tensor({body}{extra})"

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.data)

    def __int__(self):
        return int(self.data)

    def __array__(self, dtype=None, copy=None):
        array = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return array.copy() if copy else array

    # ------------------------------------------------------------ arithmetic

    def _operand(self, other):
        return as_operand(other, like=self)

    def _binary(self, op, other, reflected=False):
        other = as_operand(other, like=self)
        a, b = (other, self) if reflected else (self, other)
        # int (op) float computes in the float dtype, not NumPy's float64 promotion
        if a.dtype.kind != b.dtype.kind and "f" in (a.dtype.kind, b.dtype.kind):
            target = a.dtype if a.dtype.kind == "f" else b.dtype
            a, b = a.astype(target), b.astype(target)
        return op.apply(a, b)

    def __add__(self, other):
        return self._binary(_ew.Add, other)

    def __radd__(self, other):
        return self._binary(_ew.Add, other, reflected=True)

    def __sub__(self, other):
        return self._binary(_ew.Sub, other)

    def __rsub__(self, other):
        return self._binary(_ew.Sub, other, reflected=True)

    def __mul__(self, other):
        return self._binary(_ew.Mul, other)

    def __rmul__(self, other):
        return self._binary(_ew.Mul, other, reflected=True)

    def __truediv__(self, other):
        return self._binary(_ew.Div, other)

    def __rtruediv__(self, other):
        return self._binary(_ew.Div, other, reflected=True)

    def __pow__(self, exponent):
        return self._binary(_ew.Pow, exponent)

    def __rpow__(self, base):
        return self._binary(_ew.Pow, base, reflected=True)

    def __neg__(self):
        return _ew.Neg.apply(self)

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return self._binary(_mm.MatMul, other)

    def __rmatmul__(self, other):
        return self._binary(_mm.MatMul, other, reflected=True)

    # Comparisons carry no gradient and return bool tensors.
    def __lt__(self, other):
        return _ew.Less.apply(self, self._operand(other))

    def __le__(self, other):
        return _ew.LessEqual.apply(self, self._operand(other))

    def __gt__(self, other):
        return _ew.Less.apply(self._operand(other), self)

    def __ge__(self, other):
        return _ew.LessEqual.apply(self._operand(other), self)

    def __eq__(self, other):
        return _ew.Equal.apply(self, self._operand(other))

    def __ne__(self, other):
        return _ew.NotEqual.apply(self, self._operand(other))

    # ------------------------------------------------------------ element-wise math

    def exp(self):
        return _ew.Exp.apply(self)

    def log(self):
        return _ew.Log.apply(self)

    def sqrt(self):
        return _ew.Sqrt.apply(self)

    def abs(self):
        return _ew.Abs.apply(self)

    def tanh(self):
        return _ew.Tanh.apply(self)

    def sigmoid(self):
        return _ew.Sigmoid.apply(self)

    def relu(self):
        return _ew.Relu.apply(self)

    def clip(self, min=None, max=None):
        return _ew.clip(self, min, max)

    clamp = clip

    # ------------------------------------------------------------ reductions

    def sum(self, axis=None, keepdims=False):
        return _red.reduce_sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _red.reduce_mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _red.reduce_max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return -_red.reduce_max(-self, axis, keepdims)

    def argmax(self, axis=None, keepdims=False):
        return _red.ArgMax.apply(self, axis=axis, keepdims=keepdims)

    # ------------------------------------------------------------ shape

    def reshape(self, *shape):
        """`t.reshape(2, -1)` or `t.reshape((2, -1))`."""
        return _shape.reshape(self, _axes_args(shape))

    view = reshape

    def transpose(self, *axes):
        """NumPy semantics: no axes reverses, a full permutation permutes; two axes
        on a tensor of another rank swap those two axes (PyTorch's transpose)."""
        return _shape.transpose(self, _axes_args(axes))

    def permute(self, *axes):
        return _shape.transpose(self, _axes_args(axes))

    @property
    def T(self):
        return _shape.transpose(self, ())

    def flatten(self, start_axis=0):
        return _shape.flatten(self, start_axis)

    def squeeze(self, axis=None):
        return _shape.squeeze(self, axis)

    def unsqueeze(self, axis):
        return _shape.unsqueeze(self, axis)

    def __getitem__(self, key):
        return _indexing.getitem(self, key)


def _axes_args(args):
    """Accept both f(1, 2) and f((1, 2)) spellings of a shape / axes argument."""
    if len(args) == 1 and not isinstance(args[0], numbers.Integral):
        return tuple(args[0])
    return args


def as_operand(value, like):
    """Wrap a scalar / array operand as a constant Tensor whose dtype suits `like`.

    Python and NumPy scalars take the float dtype of `like` (so float32 stays
    float32 and float64 gradient checks stay float64); float arrays do too.
    """
    if isinstance(value, Tensor):
        return value
    float_like = like.dtype.kind == "f"
    if isinstance(value, (numbers.Number, np.generic)) and not isinstance(value, np.ndarray):
        if isinstance(value, (bool, np.bool_)) or isinstance(value, numbers.Integral):
            dtype = like.dtype if (float_like or like.dtype.kind in "iu") else np.int64
            return Tensor(np.asarray(value, dtype=dtype))
        return Tensor(np.asarray(value, dtype=like.dtype if float_like else np.float32))
    array = np.asarray(value)
    if array.dtype.kind == "f" and float_like:
        return Tensor(array, dtype=like.dtype)
    return Tensor(array)


# Op modules import Tensor from here; import them last to close the cycle.
from .ops import elementwise as _ew  # noqa: E402
from .ops import matmul as _mm  # noqa: E402
from .ops import reduction as _red  # noqa: E402
from .ops import indexing as _indexing  # noqa: E402
from .ops import shape as _shape  # noqa: E402
