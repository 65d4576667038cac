"""The pieces of `yuan profile --rpc` that need no server (runtime/remote_profiler.py), checked
against what a local run of the same library does: the bytecode's op sequence is the VM's calls,
each parsed signature is the shapes and dtypes of the tensors the VM passes, and the library with
its module blob hidden loads as the kernel library itself."""
import numpy as np
import pytest
import tvm

import yuan
from yuan.runtime.profiler import _owner, _record_calls
from yuan.runtime.remote import RemoteError
from yuan.runtime.remote_profiler import kernel_library, op_sequence, parse_signature, synthetic


@pytest.fixture(scope="module")
def recorded(small_module):
    """(predictor, [(function, argument tensors)] of one instrumented local run)."""
    predictor = yuan.load(small_module)
    return predictor, _record_calls(predictor, predictor.device_inputs(predictor.random_inputs()))[0]


def _runs_without_arguments(function) -> bool:
    try:
        function()
    except Exception:   # a kernel: its argument check refuses the call
        return False
    return True


def test_op_sequence_is_the_calls_the_vm_makes(recorded):
    predictor, calls = recorded
    ops, builtins = op_sequence(predictor.module["as_text"](), predictor.entry)
    # functions without parameters (the weights accessor) are dropped by the probe, as locally
    takes_none = {op for op in ops if _runs_without_arguments(_owner(predictor.module, op).get_function(op))}
    assert [op for op in ops if op not in takes_none] == [name for name, _ in calls] and builtins > 0


def test_signature_from_the_kernels_argument_check_is_what_the_vm_passes(recorded, tmp_path):
    predictor, calls = recorded
    path = tmp_path / "kernels.so"
    path.write_bytes(kernel_library(predictor.path))
    library = tvm.runtime.load_module(str(path))
    assert library.kind == "library"          # the blob hidden: the loader returns the kernels' module
    for name, args in calls:
        with pytest.raises(Exception) as info:
            library.get_function(name)()      # no arguments: TVM's check names every parameter
        assert parse_signature(name, str(info.value)) == [(list(a.shape), str(a.dtype)) for a in args], name


def test_signature_that_cannot_be_replayed_is_one_line():
    dynamic = "Expected 2 arguments when calling:\n  `f(x: Tensor([n, T.int64(3)], float32), y: Tensor([T.int64(3)], float32))`"
    with pytest.raises(RemoteError, match=r"^cannot profile 'f' over RPC: parameter 'x' has a dynamic shape \[n, T.int64\(3\)\]$"):
        parse_signature("f", dynamic)
    scalar = "Expected 2 arguments when calling:\n  `g(x: Tensor([T.int64(3)], float32), k: int32)`"
    with pytest.raises(RemoteError, match=r"^cannot profile 'g' over RPC: its parameters are not all tensors \(g\(x: .*, k: int32\)\)$"):
        parse_signature("g", scalar)


def test_control_flow_and_foreign_files_are_refused(tmp_path):
    text = "@main:\n  call  f in: %0 dst: %1\n  If    %1, 3\n  ret   %1\n"
    with pytest.raises(RemoteError, match=r"'main' has control flow \('If    %1, 3'\)"):
        op_sequence(text, "main")
    with pytest.raises(RemoteError, match=r"no function 'run'"):
        op_sequence(text, "run")
    (tmp_path / "plain.so").write_bytes(b"\x7fELF not a TVM library")
    with pytest.raises(RemoteError, match=r"has no TVM module blob"):
        kernel_library(str(tmp_path / "plain.so"))


def test_synthetic_data_stays_in_range():
    rng = np.random.default_rng(0)
    assert np.abs(synthetic([64], "float32", rng)).max() <= 1
    u8 = synthetic([4096], "uint8", rng)
    assert u8.dtype == np.uint8 and u8.min() == 0 and u8.max() == 255
    assert not synthetic([8], "int32", rng).any()      # shifts, multipliers, indices: zero is always valid
