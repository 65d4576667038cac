"""C++ deployment (runtime/cpp/, `yuan deploy-kit`): yuan_run loads a compiled module with the TVM
runtime of the wheels alone (no Python) and must give the quantized model's own output bit for bit
(the NumPy frontend model is the reference; the Python runtime must agree too):

* built with g++ on x86-64 and run on an x86 module;
* cross-built with aarch64-linux-gnu-g++ against the aarch64 wheels of the arm64 tree and run under
  qemu-aarch64 on an aarch64 module;
* the android-arm64 system-lib archive NAME.a linked INTO the aarch64 program (what an Android / iOS
  app does) and run with --system-lib under qemu;
* bad input is one line on stderr, exit status 1.
Skips what needs a missing tool (make/g++, the arm64 tree, clang-14 + lld + llvm-ar-14)."""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from yuan import runtime
from yuan.compiler.build import compile_graph
from yuan.runtime import deploy_kit, qemu_runner


@pytest.fixture(scope="module")
def model(small_cnn_int8):
    return small_cnn_int8


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    if shutil.which("make") is None or shutil.which("g++") is None:
        pytest.skip("make and g++ are needed to build the C++ kit")
    folder = tmp_path_factory.mktemp("kit")
    deploy_kit.copy_kit(str(folder))
    return folder


@pytest.fixture(scope="module")
def x86(model, kit):
    """The x86 module and yuan_run built for this machine."""
    return {"lib": compile_graph(model["graph"], "x86", str(model["dir"] / "small_cnn_x86.so")),
            "program": deploy_kit.build(str(kit), str(kit / "build"))}


def _run(argv, **kw):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, **kw)


def _check_output(proc, out_dir, expected):
    assert proc.returncode == 0, proc.stderr
    got = np.load(out_dir / "output.npy")
    np.testing.assert_array_equal(got, expected)
    # the printed summary describes the same array
    line = next(line for line in proc.stdout.splitlines() if line.startswith("output:"))
    assert line.startswith(f"output: float32{list(expected.shape)}")
    argmax = re.search(r"argmax per row: \[([0-9, ]*)\]", line).group(1)
    assert [int(v) for v in argmax.split(",")] == expected.reshape(len(expected), -1).argmax(axis=1).tolist()


def test_x86_program_matches_python_runtime_and_reference(model, x86, tmp_path):
    python_out = runtime.load(x86["lib"]).run(model["x"])["output"]
    np.testing.assert_array_equal(python_out, model["expected"])
    proc = _run([x86["program"], x86["lib"], "-i", model["x_path"], "-o", tmp_path, "--repeat", "3"])
    _check_output(proc, tmp_path, model["expected"])
    assert re.search(r"median [0-9.]+ ms over 3 runs", proc.stdout)


def test_x86_program_bad_input_is_one_line(model, x86, tmp_path):
    program, lib = x86["program"], x86["lib"]
    np.save(tmp_path / "wrong.npy", np.zeros((1, 3, 16, 16), np.float32))
    np.save(tmp_path / "ints.npy", np.zeros((2, 3, 16, 16), np.int8))
    cases = {"wrong.npy": "input 'input' .*expected shape \\[2, 3, 16, 16\\], got \\[1, 3, 16, 16\\]",
             "ints.npy": "input 'input' .*expected dtype float32",
             "missing.npy": "cannot open '.*missing.npy'"}
    for name, message in cases.items():
        proc = _run([program, lib, "-i", tmp_path / name])
        assert proc.returncode == 1 and proc.stdout == ""
        assert len(proc.stderr.strip().splitlines()) == 1 and re.search(message, proc.stderr), proc.stderr
    proc = _run([program, tmp_path / "nope.so", "-i", model["x_path"]])
    assert proc.returncode == 1 and proc.stderr.strip() == f"yuan_run: error: model library '{tmp_path}/nope.so' does not exist"


def test_aarch64_program_runs_under_qemu(model, kit, arm64_root, tmp_path):
    lib = compile_graph(model["graph"], "aarch64", str(model["dir"] / "small_cnn_aarch64.so"))
    program = deploy_kit.build(str(kit), str(kit / "build-aarch64"), cxx="aarch64-linux-gnu-g++",
                               site=qemu_runner.guest_site(arm64_root))
    if shutil.which("file"):
        assert "ARM aarch64" in _run(["file", "-b", program]).stdout
    proc = _run([qemu_runner.qemu_binary(), "-L", arm64_root, program, lib, "-i", model["x_path"], "-o", tmp_path])
    _check_output(proc, tmp_path, model["expected"])


def test_android_static_archive_linked_into_the_program(model, kit, arm64_root, tmp_path):
    """NAME.a registers the model as the system library; linked in whole, --system-lib runs it."""
    if not (shutil.which("clang-14") and shutil.which("llvm-ar-14")
            and (shutil.which("ld.lld-14") or shutil.which("ld.lld"))):
        pytest.skip("needs clang-14, lld-14 and llvm-14 (apt-get install clang-14 lld-14 llvm-14)")
    lib = compile_graph(model["graph"], "android-arm64", str(model["dir"] / "libsmallcnn.so"))
    archive = os.path.splitext(lib)[0] + ".a"
    program = deploy_kit.build(str(kit), str(kit / "build-aarch64"), cxx="aarch64-linux-gnu-g++",
                               site=qemu_runner.guest_site(arm64_root), model_lib=archive, program="smallcnn_run")
    sidecar = os.path.splitext(lib)[0] + ".json"
    proc = _run([qemu_runner.qemu_binary(), "-L", arm64_root, program, "--system-lib", sidecar,
                 "-i", model["x_path"], "-o", tmp_path])
    _check_output(proc, tmp_path, model["expected"])


def test_deploy_kit_command_copies_the_kit(tmp_path):
    from click.testing import CliRunner

    from yuan.cli import main
    result = CliRunner().invoke(main, ["deploy-kit", str(tmp_path / "kit")])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path / "kit")) == sorted(deploy_kit.KIT_FILES)
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(main, ["deploy-kit", str(tmp_path / "file")])
    assert result.exit_code == 1 and result.output.strip().splitlines() == [
        f"Error: DeployKitError: '{tmp_path / 'file'}' exists and is not a folder"]
