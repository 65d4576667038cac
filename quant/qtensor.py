"""How quantization parameters travel with tensors between QAT / quantized modules.

A module output carries two attributes:

* `qparams`: the `QuantParams` its values are quantized with (None when they are not,
  e.g. with fake quant disabled). QAT modules in eval mode read them to recover the
  integer codes of their inputs; quantized modules read them to check their inputs.
* `qprovider`: the fake-quant module that defines those parameters. QAT modules record
  the providers of their inputs on every call, so conversion knows which scale each
  input has (`provider.qparams()`) without another forward pass.

Functional data movement in user code (`F.split` in ShuffleNetV2, slicing, reshapes)
returns NumPy *views* of a quantized array in fresh Tensors without these attributes.
A view of quantized data is quantized data with the same parameters, so the attributes
are also remembered per owning NumPy array (weakly) and found again from any view.
"""
import weakref

import numpy as np

_by_owner = {}   # id(owning ndarray) -> (weakref to it, qparams, provider)


def _owner(array):
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def attach(tensor, qparams, provider=None):
    """Label `tensor` with its quantization parameters and their provider; returns it."""
    tensor.qparams = qparams
    tensor.qprovider = provider
    owner = _owner(tensor.data)
    key = id(owner)
    _by_owner[key] = (weakref.ref(owner, lambda _ref, key=key: _forget(key, _ref)), qparams, provider)
    return tensor


def _forget(key, ref):
    entry = _by_owner.get(key)
    if entry is not None and entry[0] is ref:
        del _by_owner[key]


def _lookup(tensor):
    data = getattr(tensor, "data", None)
    if not isinstance(data, np.ndarray):
        return None
    owner = _owner(data)
    entry = _by_owner.get(id(owner))
    if entry is None or entry[0]() is not owner:
        return None
    return entry


def qparams_of(tensor):
    """The QuantParams a tensor's values are quantized with, or None."""
    if hasattr(tensor, "qprovider") or getattr(tensor, "qparams", None) is not None:
        return getattr(tensor, "qparams", None)
    entry = _lookup(tensor)
    return None if entry is None else entry[1]


def provider_of(tensor):
    """The fake-quant module that defines a tensor's quantization parameters, or None."""
    if hasattr(tensor, "qprovider"):
        return tensor.qprovider
    entry = _lookup(tensor)
    return None if entry is None else entry[2]


def tag_fusion(tensor, tag):
    """Mark the output of a fused module (see quant.fused.FusedAway)."""
    if tag is not None:
        tensor.fusion_tag = tag
    return tensor
