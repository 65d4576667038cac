"""Weights live once, in the library: the .so of a CPU target holds them as read-only data that the
kernels read in place (compiler/library_weights.py), not inside TVM's serialized VM executable,
whose loading held them four times at once. Outputs stay bit for bit those of TVM's own constants."""
import ctypes
import json
import subprocess
import sys

import numpy as np
import pytest
import tvm
from tvm import relax

import yuan
from tests.conftest import small_net
from tests.runtime.test_memory_plan import conv_chain
from yuan.compiler.backends import backend_for
from yuan.compiler.build import compile_graph, optimize, sidecar_path
from yuan.compiler.library_weights import lift_weights
from yuan.compiler.relax import lower_graph
from yuan.compiler.targets import resolve_target
from yuan.schedules import preferred_layouts

MIB = 2**20

# Loads and runs a module in a fresh process: resident KiB after the imports, the peak, and after
# the runs the anonymous memory and the pages mapped from the library file.
_MEASURE = """
import json, sys
import numpy as np
import tvm
import yuan.runtime as runtime
from yuan.runtime.resident import anonymous_kib, file_resident_kib, peak_kib, reset_peak, resident_kib
base, base_anon = resident_kib(), anonymous_kib()
reset_peak()
p = runtime.load(sys.argv[1])
for _ in range(3):
    p.run(p.random_inputs())
print(json.dumps({"growth": peak_kib() - base, "anon": anonymous_kib() - base_anon,
                  "file": file_resident_kib(sys.argv[1])}))
"""


@pytest.fixture(scope="module")
def heavy(tmp_path_factory):
    """A module whose weights (~9 MiB) dwarf its activations and the runtime's own first-run costs."""
    g, _ = conv_chain(depth=4, channels=256, hw=2)
    path = compile_graph(g, "x86", str(tmp_path_factory.mktemp("heavy") / "heavy.so"))
    with open(sidecar_path(path)) as f:
        return path, json.load(f)["memory"]


def test_the_vm_executable_holds_no_weights(heavy):
    path, memory = heavy
    assert memory["weights_bytes"] > 8 * MIB
    lib = ctypes.CDLL(path)   # the serialized executable: <nbytes: u64> <bytes>
    executable_bytes = ctypes.c_uint64.in_dll(lib, "__tvm_ffi__library_bin").value
    assert executable_bytes < memory["weights_bytes"] / 100


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_weights_are_resident_once_and_read_in_place(heavy):
    path, memory = heavy
    out = subprocess.run([sys.executable, "-c", _MEASURE, path], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    kib = json.loads(out.stdout.strip().splitlines()[-1])
    weights, working = memory["weights_bytes"], memory["activations_bytes"] + memory["outputs_bytes"]
    slack = 4 * MIB   # the runtime's own first-run allocations (thread pool, workspace, code pages)
    # the kernels read every weight from the library's pages ...
    assert kib["file"] * 1024 >= weights
    # ... and no anonymous copy of them exists (TVM's constants: >= one copy for good)
    assert kib["anon"] * 1024 < working + slack + weights / 4
    # the peak holds them once (TVM's constants: four times while loading)
    assert kib["growth"] * 1024 < weights + working + slack + weights / 4


def _lowered(graph, target):
    mod, _ = lower_graph(optimize(graph, integer=True, layouts=preferred_layouts(target)), target)
    return backend_for(target).schedule_light_ops(mod, target)[0]


def test_outputs_equal_tvm_constants_bit_for_bit(tmp_path):
    """small_net compiled by compile_graph (weights in the library) against the same lowered
    module built by plain tvm.compile, whose VM executable holds the constants."""
    target = resolve_target("x86")
    graph = small_net()
    path = compile_graph(graph, target, str(tmp_path / "lib.so"))
    mod = _lowered(graph, target)
    lifted, arrays = lift_weights(mod)
    assert arrays and "yuan_library_weights" in lifted["main"].script()
    reference = tvm.compile(mod, target.tvm)
    vm = relax.VirtualMachine(reference, tvm.cpu())
    ours = yuan.load(path)
    for seed in range(2):
        x = ours.random_inputs(seed)
        expected = vm["main"](*[tvm.runtime.tensor(a) for a in x.values()])
        expected = [expected] if isinstance(expected, tvm.runtime.Tensor) else list(expected)
        got = ours.run(x)
        assert len(got) == len(expected)
        for name, e in zip(ours.output_names, expected):
            np.testing.assert_array_equal(got[name], e.numpy())


def test_a_module_without_constants_is_unchanged():
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((2, 3), "float32"))
    with bb.function("main", [x]):
        bb.emit_func_output(bb.emit(relax.op.add(x, x)))
    mod = bb.get()
    lifted, arrays = lift_weights(mod)
    assert arrays == [] and lifted.same_as(mod)
