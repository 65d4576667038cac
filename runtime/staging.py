"""Predictor.run's inputs and outputs on the CPU without an allocation per run.

A fresh device tensor per input and run (tvm.runtime.tensor: allocate, copy) cost MobileNetV2's 224x224 image
0.04-0.16 ms, and the VM then reads the newly mapped pages (Predictor.run measured 0.3-0.4 ms over calling the
VM on a tensor made once). Here an input that is C-contiguous, writeable and 64-byte aligned (what TVM's
kernels assume: tvm.runtime.from_dlpack asks for it too) is passed without a copy; any other is copied into
a tensor kept per input (NumPy copies through a view of it, so a strided or non-contiguous array needs no
temporary). The VM only reads its inputs. Outputs are copied out (np.from_dlpack(t).copy(): a tenth of
Tensor.numpy's Python cost): one can be a view of an input (a reshape), which the next run overwrites.

Not for concurrent calls: the kept tensors hold one run's inputs (Relax's VM runs one call at a time too).
"""
from __future__ import annotations

import numpy as np

ALIGNMENT = 64   # bytes: TVM's allocation alignment, assumed by the compiled kernels


class InputStaging:
    """Device tensors for a model's inputs, one kept per input for the arrays that cannot be passed as they are."""

    def __init__(self, input_types, device):
        """input_types: [(shape tuple, np.dtype)] per input, as Predictor reads them from the sidecar."""
        import tvm
        self._tvm = tvm
        self._specs = list(input_types)
        self._device = device
        self._kept: list = [None] * len(self._specs)    # (device tensor, NumPy view of it), made on first use

    def tensors(self, arrays) -> list:
        """Device tensors holding `arrays` (checked NumPy arrays of the input specs' shapes and dtypes)."""
        return [self._tensor(i, a) for i, a in enumerate(arrays)]

    def _tensor(self, i, a):
        if a.flags.c_contiguous and a.flags.writeable and a.ctypes.data % ALIGNMENT == 0 and a.size:
            return self._tvm.runtime.from_dlpack(a)   # NumPy exports no read-only array through DLPack
        if self._kept[i] is None:
            shape, dtype = self._specs[i]
            kept = self._tvm.runtime.empty(shape, dtype.name, self._device)
            self._kept[i] = (kept, np.from_dlpack(kept))
        kept, view = self._kept[i]
        np.copyto(view, a)
        return kept


def outputs_to_numpy(result, names) -> dict:
    """{name: NumPy array} of the VM's result (one tensor or a tuple) on the CPU."""
    import tvm
    items = [result] if isinstance(result, tvm.runtime.Tensor) else list(result)
    return {name: np.from_dlpack(t).copy() for name, t in zip(names, items)}
