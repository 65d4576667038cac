"""Central finite-difference gradient check in float64 (a test helper, not a test)."""
import numpy as np

from frontend.autograd import no_grad
from frontend.tensor import Tensor


def _outputs(result):
    return list(result) if isinstance(result, (tuple, list)) else [result]


def gradcheck(fn, *arrays, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0):
    """Check the gradients of every input of `fn(*tensors)` against central differences.

    The scalar being differentiated is sum_k <out_k, R_k> for fixed random R_k, so
    every output element matters with a different weight. Inputs are float64.
    """
    rng = np.random.default_rng(seed)
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    tensors = [Tensor(a.copy(), requires_grad=True, dtype=np.float64) for a in arrays]
    outs = _outputs(fn(*tensors))
    weights = [rng.standard_normal(o.shape) for o in outs]
    for o in outs:
        assert o.dtype == np.float64, f"op produced {o.dtype} from float64 inputs"
    total = outs[0] * weights[0]
    total = total.sum()
    for o, w in zip(outs[1:], weights[1:]):
        total = total + (o * w).sum()
    total.backward()

    def value(current):
        with no_grad():
            result = _outputs(fn(*[Tensor(a, dtype=np.float64) for a in current]))
        return sum(float(np.sum(o.data * w)) for o, w in zip(result, weights))

    for k, (a, t) in enumerate(zip(arrays, tensors)):
        assert t.grad is not None, f"input {k} got no gradient"
        assert t.grad.shape == a.shape and t.grad.dtype == np.float64
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus = [b.copy() for b in arrays]
            minus = [b.copy() for b in arrays]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            numeric[idx] = (value(plus) - value(minus)) / (2 * eps)
        np.testing.assert_allclose(t.grad, numeric, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {k} (shape {a.shape})")
