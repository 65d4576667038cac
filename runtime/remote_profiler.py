"""Per-op time of a model running on a remote device through TVM's RPC (`yuan profile --rpc`).

The local profiler instruments the Relax VM with a Python callback; TVM's RPC cannot send a
callback to the server, and TVM's time evaluator looks a function up in the module it is given
without searching that module's imports, so it finds no kernel in a loaded model (the Relax VM
executable, whose import is the library with the kernels). Instead, on the RPC server:

* the op sequence is the entry function's bytecode (`as_text` of the remote executable, the same
  instructions the VM runs; straight-line code for Yuan's models), VM builtins left out;
* the library is uploaded a second time with TVM's module-blob symbol renamed, so TVM's loader
  returns the kernel library itself, whose functions the time evaluator finds;
* each kernel's parameters (static shapes and dtypes) come from the argument check TVM compiles
  into it: called with no arguments, it names them all in its error;
* each op is timed by TVM's time evaluator on tensors allocated on the device (synthetic data of
  those shapes), in rounds interleaved with timed whole-model runs (the VM's invoke_stateful).

The time evaluator runs each call once untimed first, so an op starts with its own data in the
cache, which the model run does not always give it; docs/tools.md has the measured ratios.
"""
from __future__ import annotations

import os
import re
import statistics

import numpy as np

from .profiler import OpTime, Profile, light_op_info
from .remote import RemoteError, RemotePredictor, _reason, _raise_released

_BLOB_SYMBOL = b"__tvm_ffi__library_bin\0"     # tvm/ffi/extra/module.h: symbol::tvm_ffi_library_bin
_HIDDEN_BLOB = b"__tvm_ffi__library_off\0"     # same length: nothing else in the file moves
_TENSOR_PARAM = re.compile(r"(\w+): Tensor\(\[([^\]]*)\], (\w+)\)")
_STATIC_DIM = re.compile(r"T\.int(?:32|64)\((\d+)\)|(\d+)")


def op_sequence(executable_text: str, entry: str) -> tuple[list, int]:
    """([function called], VM builtin calls) of `entry` in the executable's bytecode text."""
    body = executable_text.split(f"@{entry}:\n", 1)
    if len(body) != 2:
        raise RemoteError(f"the remote module has no function '{entry}' in its bytecode")
    lines = [line.strip() for line in body[1].split("\n\n", 1)[0].splitlines() if line.strip()]
    branches = [line for line in lines if not line.startswith(("call ", "ret "))]
    if branches:
        raise RemoteError(f"'{entry}' has control flow ({branches[0]!r}); per-op profiling over RPC "
                          f"needs straight-line code")
    called = [line.split()[1] for line in lines if line.startswith("call ")]
    ops = [name for name in called if not name.startswith("vm.builtin.")]
    return ops, len(called) - len(ops)


def kernel_library(path: str) -> bytearray:
    """The library file with TVM's module blob hidden: loaded, it is the kernel library itself."""
    with open(path, "rb") as f:
        data = f.read()
    if _BLOB_SYMBOL not in data:
        raise RemoteError(f"'{path}' has no TVM module blob ({_BLOB_SYMBOL[:-1].decode()}); "
                          f"is it a Yuan/TVM Relax library?")
    return bytearray(data.replace(_BLOB_SYMBOL, _HIDDEN_BLOB))


def parse_signature(symbol: str, message: str) -> list:
    """[(shape, dtype)] of `symbol`'s parameters from TVM's argument-count error, e.g.
    "Expected 2 arguments when calling: `f(x: Tensor([T.int64(4), T.int64(8)], float32), ...)`"."""
    expected = re.search(r"Expected (\d+) argument", message)
    params = _TENSOR_PARAM.findall(message)
    if expected is None or int(expected.group(1)) != len(params):
        called = re.search(r"`([^`]+)`", message)   # the signature TVM printed, else its first line
        raise RemoteError(f"cannot profile '{symbol}' over RPC: its parameters are not all tensors "
                          f"({called.group(1) if called else _reason(message)})")
    signature = []
    for name, dims, dtype in params:
        parts = [d.strip() for d in dims.split(",") if d.strip()]
        matches = [_STATIC_DIM.fullmatch(d) for d in parts]
        if not all(matches):
            raise RemoteError(f"cannot profile '{symbol}' over RPC: parameter '{name}' has a dynamic "
                              f"shape [{dims}]")
        signature.append(([int(m.group(1) or m.group(2)) for m in matches], dtype))
    return signature


def _probe(function, symbol: str):
    """The parameters of a kernel, or None for a function without any (not an op: the weights
    accessor of compiler/library_weights.py, which the local profiler counts as the VM's work too)."""
    try:
        function()
    except Exception as exc:   # the kernel's own argument check: the signature is in the message
        return parse_signature(symbol, str(exc))
    return None


def synthetic(shape, dtype: str, rng) -> np.ndarray:
    """Data of a kernel parameter: floats in [-1, 1]; 8/16-bit integers over their range; wider
    integers (biases, requantization multipliers and shifts, indices) zero, always in range."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.uniform(-1, 1, shape).astype(dt)
    if dt.kind in "iu" and dt.itemsize <= 2:
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
    return np.zeros(shape, dt)


def profile_remote(predictor: RemotePredictor, inputs=None, repeat: int = 20) -> Profile:
    """As profiler.profile, for a model loaded with remote.load: `repeat` rounds of one timed
    whole-model run and one timed call of every op, all timed on the device by TVM. Errors are
    one-line RemoteErrors that keep nothing of the session alive (a server serves one at a time)."""
    feed = predictor.device_inputs(predictor.random_inputs() if inputs is None else inputs)   # checked first
    try:
        return _measure(predictor, feed, repeat)
    except RemoteError as exc:
        message = str(exc)
    except Exception as exc:   # an RPC failure on the way: its traceback holds the session
        message = f"profiling '{predictor.path}' on the RPC device {predictor.address} failed: {_reason(exc)}"
    _raise_released(message)


def _measure(predictor, feed, repeat) -> Profile:
    import tvm
    session, dev, entry = predictor.session, predictor.device, predictor.entry
    ops, builtin_calls = op_sequence(predictor.module["as_text"](), entry)
    library_name = os.path.splitext(os.path.basename(predictor.path))[0] + ".kernels.so"
    blob = kernel_library(predictor.path)
    try:
        session.upload(blob, library_name)
        library = session.load_module(library_name)
    except Exception as exc:
        raise RemoteError(f"the remote side cannot load the kernels of '{predictor.path}': {_reason(exc)}") from None
    rng = np.random.default_rng(0)
    signatures = {symbol: _probe(library.get_function(symbol), symbol) for symbol in dict.fromkeys(ops)}
    builtin_calls += sum(signatures[symbol] is None for symbol in ops)
    ops = [symbol for symbol in ops if signatures[symbol] is not None]
    arguments = {symbol: [tvm.runtime.tensor(synthetic(shape, dtype, rng), dev) for shape, dtype in signatures[symbol]]
                 for symbol in dict.fromkeys(ops)}
    predictor.vm.set_input(entry, *feed)
    run_model = predictor.vm.time_evaluator("invoke_stateful", dev, number=1, repeat=1)
    timers = [library.time_evaluator(symbol, dev, number=1, repeat=1) for symbol in ops]
    runs, whole = [[] for _ in ops], []
    for _ in range(repeat):
        whole.append(run_model(entry).results[0])
        for times, timer, symbol in zip(runs, timers, ops):
            times.append(timer(*arguments[symbol]).results[0])
    kernel_info = predictor.metadata.get("kernel_info", {})
    op_times = [OpTime(index, symbol, statistics.median(times), times,
                       kernel_info.get(symbol) or light_op_info([shape for shape, _ in signatures[symbol]]))
                for index, (symbol, times) in enumerate(zip(ops, runs))]
    replay = statistics.median(sum(round_) for round_ in zip(*runs)) if runs else 0.0
    return Profile(predictor.metadata.get("model", ""), op_times, statistics.median(whole), replay, builtin_calls,
                   where=f"RPC device {predictor.address} (TVM time evaluator, synthetic data)")


__all__ = ["profile_remote", "op_sequence", "kernel_library", "parse_signature"]
