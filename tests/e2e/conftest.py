"""Fixtures shared by the end-to-end tests of this folder."""
import os
import shutil

import numpy as np
import pytest

from tests.conftest import int8_zoo_model, zoo_input
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace
from yuan.runtime import qemu_runner


@pytest.fixture(scope="session")
def small_cnn_int8(tmp_path_factory):
    """small_cnn int8 traced on a batch of 2: graph, the batch (array and x.npy in `dir`) and the
    reference output computed by the NumPy frontend model."""
    qmodel = int8_zoo_model("small_cnn")
    x = zoo_input(16, 7)
    out = tmp_path_factory.mktemp("small_cnn_int8")
    np.save(out / "x.npy", x)
    return {"graph": trace(qmodel, Tensor(x)), "dir": out, "x": x, "x_path": out / "x.npy",
            "expected": qmodel(Tensor(x)).data}


@pytest.fixture(scope="session")
def arm64_root():
    """The arm64 Python + aarch64 TVM runtime tree (runtime/arm64/build_arm64_root.sh) with qemu-aarch64
    and the aarch64 cross compiler. Skips when one is missing, unless YUAN_BUILD_ARM64=1, which builds
    the tree once (~2 min)."""
    if qemu_runner.qemu_binary() is None:
        pytest.skip("qemu-aarch64 not installed (apt-get install qemu-user)")
    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("aarch64-linux-gnu-g++ not installed (apt-get install g++-aarch64-linux-gnu)")
    root = qemu_runner.arm64_root()
    if not qemu_runner.root_ready(root):
        if os.environ.get("YUAN_BUILD_ARM64") != "1":
            pytest.skip(f"no arm64 Python tree at {root}: run runtime/arm64/build_arm64_root.sh "
                        f"or set YUAN_BUILD_ARM64=1 to build it here (~2 min)")
        try:
            qemu_runner.build_root(root)
        except qemu_runner.QemuRunnerError as exc:
            # CI asked for the tree (YUAN_BUILD_ARM64=1): failing to build it is a failure, not a skip.
            pytest.fail(f"could not build the arm64 Python tree: {exc}")
    return root
