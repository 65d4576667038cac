"""The planned memory in the sidecar: weights are the model's constants, Relax's static planning
shares activation buffers, the peak is their sum; `yuan bench` prints planned and measured memory."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import yuan
from yuan.cli import main
from yuan.compiler.build import compile_graph, sidecar_path
from yuan.compiler.ir import Graph
from yuan.compiler.library_weights import WEIGHTS_FUNCTION

C, HW = 16, 8                        # 16 channels: the x86 kernels pack weights without padding
TENSOR_BYTES = C * HW * HW * 4       # one fp32 activation of the chain


def conv_chain(depth=4, seed=0, channels=C, hw=HW):
    """x -> conv -> conv -> ... (same shape): without reuse every output has its own buffer;
    with reuse two buffers suffice (each conv reads one and writes the other)."""
    rng = np.random.default_rng(seed)
    g = Graph("conv_chain")
    y = g.add_input("x", (1, channels, hw, hw))
    arrays = []
    for i in range(depth):
        w = rng.standard_normal((channels, channels, 3, 3)).astype(np.float32)
        b = rng.standard_normal(channels).astype(np.float32)
        arrays += [w, b]
        y = g.add_node("conv2d", [y, g.add_constant(f"w{i}", w), g.add_constant(f"b{i}", b)],
                       {"pads": [1, 1, 1, 1]}, name=f"conv{i}").outputs[0]
    g.mark_output(y)
    g.validate()
    return g, arrays


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    g, arrays = conv_chain()
    path = compile_graph(g, "x86", str(tmp_path_factory.mktemp("chain") / "chain.so"))
    with open(sidecar_path(path)) as f:
        return path, json.load(f)["memory"], arrays


def library_weights(path) -> list:
    """The tensors the built library hands the VM (compiler/library_weights.py): what the module
    holds, read from the library itself rather than from the Relax module the plan reads."""
    module = yuan.load(path).module
    owner = next(m for m in [module, *module.imports] if m.implements_function(WEIGHTS_FUNCTION))
    return [t.numpy() for t in owner.get_function(WEIGHTS_FUNCTION)()]


def test_weights_are_the_constants(chain):
    path, memory, arrays = chain
    assert memory["weights_bytes"] == sum(a.nbytes for a in library_weights(path))
    # every weight and bias of the graph, packed: padding or a transform (Winograd) only add bytes
    assert memory["weights_bytes"] >= sum(a.nbytes for a in arrays)


def test_planning_reuses_activation_buffers(chain):
    _, memory, _ = chain
    assert memory["tensors"] == 4 and memory["intermediate_bytes"] == 4 * TENSOR_BYTES   # one per conv
    assert memory["outputs_bytes"] == TENSOR_BYTES      # the model's output is never planned
    assert memory["activations_bytes"] == 2 * TENSOR_BYTES and memory["storages"] == 2   # ping-pong


def test_peak_is_the_sum(chain, small_module):
    for memory in (chain[1], json.load(open(sidecar_path(small_module)))["memory"]):
        # planning shares buffers: fewer storages, fewer bytes than the intermediate tensors
        assert memory["activations_bytes"] < memory["intermediate_bytes"] and memory["storages"] < memory["tensors"]
        assert memory["peak_bytes"] == memory["weights_bytes"] + memory["activations_bytes"] + memory["outputs_bytes"]
        assert memory["peak_bytes"] >= max(memory["weights_bytes"], memory["activations_bytes"])


def test_bench_prints_planned_and_measured_memory(chain):
    res = CliRunner().invoke(main, ["bench", chain[0], "--repeat", "2", "--warmup", "0"])
    assert res.exit_code == 0, res.output
    planned = [line for line in res.output.splitlines() if line.startswith("memory (planned)")]
    held = sum(a.nbytes for a in library_weights(chain[0]))
    assert len(planned) == 1 and f"weights {held / 1024:.1f} KiB" in planned[0]
    assert "memory (measured): peak resident" in res.output
