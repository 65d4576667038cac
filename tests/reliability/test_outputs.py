"""Outputs never clobber inputs or good files.

Every writer (compile: module + sidecar; export / quantize: ONNX; training: checkpoints; `yuan run -o`)
refuses an output that is one of its inputs, a device or an unwritable place before any slow work, in
one `Error:` line, and writes through a staging folder in the destination folder, so a failure
mid-write leaves the previous file byte for byte and no `*.tmp*` file behind."""
import errno
import os

import numpy as np
import pytest
from click.testing import CliRunner

from yuan import runtime
from yuan.checkpoint import save_checkpoint
from yuan.cli import main
from yuan.compiler.build import compile_graph, sidecar_path
from yuan.compiler.onnx import export_onnx
from yuan.compiler.output_files import OutputPathError, atomic_output
from yuan.frontend.models import get_model
from yuan.frontend.random import manual_seed
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace

MLP_ARGS = dict(in_features=4, num_classes=2, hidden=(4,))
BATCH = 2


def _one_error_line(res, *fragments):
    """A user error: non-zero exit, a click exit (no traceback), one `Error:` line naming `fragments`."""
    assert res.exit_code != 0 and isinstance(res.exception, SystemExit), res.output
    lines = res.output.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "Traceback" not in res.output, res.output
    for fragment in fragments:
        assert fragment in lines[-1], res.output
    return lines[-1]


def _snapshot(folder):
    """{name: bytes} of every file in `folder`: equal before and after means nothing was touched."""
    return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder)) if (folder / n).is_file()}


def _leftovers(folder):
    return [n for n in os.listdir(folder) if ".tmp" in n or n.startswith(".yuan-")]


def _mlp():
    manual_seed(0)
    return get_model("mlp", **MLP_ARGS).eval()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A float ONNX model, a checkpoint of it, an input and calibration data, and the model compiled
    once (m.so + m.json). Tests copy what they overwrite."""
    folder = tmp_path_factory.mktemp("work")
    model = _mlp()
    graph = trace(model, Tensor(np.zeros((BATCH, 4), np.float32)))
    export_onnx(graph, str(folder / "m.onnx"))
    config = {"model": {"name": "mlp", "args": {"in_features": 4, "num_classes": 2, "hidden": [4]}}}
    save_checkpoint(str(folder / "last.npz"), model, config, input_shape=[1, 4])
    rng = np.random.default_rng(0)
    np.save(folder / "x.npy", rng.standard_normal((BATCH, 4)).astype(np.float32))
    np.save(folder / "calib.npy", rng.standard_normal((8, 4)).astype(np.float32))
    compile_graph(graph, "x86", str(folder / "m.so"))
    return folder


@pytest.fixture
def here(work, tmp_path, monkeypatch):
    """A fresh folder holding copies of the work files; the current directory."""
    for name in os.listdir(work):
        (tmp_path / name).write_bytes((work / name).read_bytes())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# ------------------------------------------------------------------ an output that is an input

@pytest.mark.parametrize("args", [
    ["compile", "m.onnx", "-o", "m.onnx"],
    ["compile", "m.onnx", "-o", "./m.onnx"],
    ["export", "last.npz", "-o", "last.npz"],
    ["quantize", "last.npz", "-o", "last.npz"],
    ["quantize", "m.onnx", "--calib", "calib.npy", "-o", "m.onnx"],
    ["quantize", "m.onnx", "--calib", "calib.npy", "-o", "calib.npy"],
    ["run", "m.so", "-i", "x.npy", "-o", "x.npy"],
    ["run", "m.so", "-i", "x.npy", "-o", "m.so"],
], ids=lambda a: " ".join(a))
def test_an_output_that_is_an_input_is_refused(here, args):
    before = _snapshot(here)
    _one_error_line(_invoke(*args), "is the input")
    assert _snapshot(here) == before and not _leftovers(here)


def test_a_symlink_to_the_input_is_refused(here):
    os.symlink("m.onnx", here / "link.so")
    before = _snapshot(here)
    _one_error_line(_invoke("compile", "m.onnx", "-o", "link.so"), "link.so", "is the input")
    assert _snapshot(here) == before


def test_a_module_whose_sidecar_would_replace_the_input_is_refused(here):
    """The model is an ONNX file named m.json: m.so's sidecar m.json would overwrite it."""
    os.replace(here / "m.onnx", here / "model.json")
    before = _snapshot(here)
    _one_error_line(_invoke("compile", "model.json", "-o", "model.so"), "model.json", "is the input")
    assert _snapshot(here) == before


def test_run_refuses_to_write_over_the_modules_sidecar(here):
    before = _snapshot(here)
    _one_error_line(_invoke("run", "m.so", "-i", "x.npy", "-o", "m.json"), "m.json")
    assert _snapshot(here) == before


def test_train_refuses_a_checkpoint_path_that_is_its_config(here, monkeypatch):
    (here / "last.npz").write_text("model: {name: mlp, args: {in_features: 4}}\n")
    monkeypatch.setattr("yuan.train.fit", _must_not_run)
    before = _snapshot(here)
    _one_error_line(_invoke("train", "last.npz", "-o", "."), "is the input")
    assert _snapshot(here) == before


def _must_not_run(*args, **kwargs):
    raise AssertionError("the slow work started although the output was refused")


# ------------------------------------------------------------------ `-o DIR`: the file goes inside

@pytest.mark.parametrize("slash", ["", "/"], ids=["DIR", "DIR/"])
def test_output_folder_gets_the_file_named_after_the_input(here, slash):
    (here / "out").mkdir()
    out = "out" + slash
    assert _invoke("compile", "m.onnx", "-o", out).exit_code == 0
    assert sorted(os.listdir(here / "out")) == ["m.json", "m.so"]
    assert _invoke("export", "last.npz", "-o", out).exit_code == 0
    assert _invoke("quantize", "m.onnx", "--calib", "calib.npy", "-o", out).exit_code == 0
    assert _invoke("run", "out/m.so", "-i", "x.npy", "-o", out).exit_code == 0
    assert sorted(os.listdir(here / "out")) == ["last.onnx", "m.json", "m.so", "m_int8.onnx", "m_outputs.npz"]
    assert not os.path.exists(here / "out.so") and not _leftovers(here / "out")


def test_a_new_folder_ending_in_a_slash_is_created(here):
    res = _invoke("compile", "m.onnx", "-o", "new/sub/")
    assert res.exit_code == 0, res.output
    assert sorted(os.listdir(here / "new" / "sub")) == ["m.json", "m.so"]


def test_compile_graph_refuses_a_folder(work, tmp_path):
    with pytest.raises(OutputPathError, match="is a folder"):
        compile_graph(trace(_mlp(), Tensor(np.zeros((1, 4), np.float32))), "x86", str(tmp_path))
    assert os.listdir(tmp_path) == [] and not os.path.exists(str(tmp_path) + ".so")


# ------------------------------------------------------------------ devices, pipes

@pytest.mark.parametrize("args", [
    ["compile", "m.onnx", "-o", "/dev/null"],
    ["export", "last.npz", "-o", "/dev/null"],
    ["quantize", "m.onnx", "--calib", "calib.npy", "-o", "/dev/null"],
    ["run", "m.so", "-i", "x.npy", "-o", "/dev/null"],
], ids=lambda a: a[0])
def test_dev_null_is_refused_and_nothing_is_created_in_dev(here, args):
    before = set(os.listdir("/dev"))
    _one_error_line(_invoke(*args), "/dev/null", "not a regular file")
    assert set(os.listdir("/dev")) == before


def test_a_named_pipe_is_refused(here):
    os.mkfifo(here / "pipe.so")
    _one_error_line(_invoke("compile", "m.onnx", "-o", "pipe.so"), "pipe.so", "named pipe")


def test_an_empty_output_path_is_refused(here):
    before = _snapshot(here)
    for args in (["compile", "m.onnx"], ["export", "last.npz"], ["quantize", "m.onnx", "--calib", "calib.npy"]):
        _one_error_line(_invoke(*args, "-o", ""), "output path is empty")
    assert _snapshot(here) == before


def test_a_read_only_output_file_is_not_replaced(here, monkeypatch):
    (here / "kept.onnx").write_bytes(b"made read-only on purpose")
    (here / "kept.onnx").chmod(0o444)
    if os.geteuid() == 0:   # file modes do not stop root: let os.access answer as for anyone else
        real_access = os.access
        writable = lambda p, mode: not (mode & os.W_OK and str(p).endswith("kept.onnx")) and real_access(p, mode)  # noqa: E731
        monkeypatch.setattr(os, "access", writable)
    _one_error_line(_invoke("export", "last.npz", "-o", "kept.onnx"), "kept.onnx", "read-only")
    assert (here / "kept.onnx").read_bytes() == b"made read-only on purpose"


# ------------------------------------------------------------------ unwritable destinations, before the slow work

def _unwritable_folder(tmp_path):
    """A folder this process cannot write in: read-only by mode, or (as root, whom modes do not stop)
    a read-only system folder."""
    if os.geteuid() != 0:
        folder = tmp_path / "read_only"
        folder.mkdir(mode=0o555)
        return str(folder)
    try:
        open("/sys/yuan-probe", "w").close()
    except OSError:
        return "/sys"
    os.unlink("/sys/yuan-probe")
    pytest.skip("no read-only folder available to root here")


BAD_DESTINATIONS = {
    "read-only folder": lambda tmp: os.path.join(_unwritable_folder(tmp), "out.so"),
    "missing folder under a read-only one": lambda tmp: os.path.join(_unwritable_folder(tmp), "new", "out.so"),
    "folder that is a file": lambda tmp: os.path.join(str(tmp / "x.npy"), "sub", "out.so"),
    "file name too long": lambda tmp: str(tmp / ("n" * 300 + ".so")),
}

# command -> (arguments before -o, the function whose call is the slow work)
SLOW_WORK = {
    "compile": (["compile", "m.onnx"], "yuan.compiler.onnx.import_onnx"),
    "export": (["export", "last.npz"], "yuan.export.model_from_checkpoint"),
    "quantize checkpoint": (["quantize", "last.npz"], "yuan.export.model_from_checkpoint"),
    "quantize onnx": (["quantize", "m.onnx", "--calib", "calib.npy"], "yuan.compiler.onnx.import_onnx"),
    "train": (["train", "c.yaml"], "yuan.train.fit"),
    "run": (["run", "m.so", "-i", "x.npy"], "yuan.runtime.load"),
}


@pytest.mark.parametrize("command", sorted(SLOW_WORK))
@pytest.mark.parametrize("where", sorted(BAD_DESTINATIONS))
def test_unwritable_destination_fails_before_the_slow_work(here, monkeypatch, command, where):
    args, slow = SLOW_WORK[command]
    (here / "c.yaml").write_text("model: {name: mlp, args: {in_features: 4}}\n")
    destination = BAD_DESTINATIONS[where](here)
    if command == "train":
        destination = destination[:-3]      # train's -o is the folder of last.npz
    elif command == "run":
        destination = destination[:-3] + ".npy"
    monkeypatch.setattr(slow, _must_not_run)
    line = _one_error_line(_invoke(*args, "-o", destination))
    assert "OutputPathError" in line and os.path.basename(destination)[:20] in line


# ------------------------------------------------------------------ atomic writes

def _fail_after_partial_write(path, error):
    with open(path, "wb") as f:
        f.write(b"partial")
    raise error


def _disk_full():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("error", [_disk_full(), KeyboardInterrupt()], ids=["disk full", "interrupted"])
def test_a_failed_compile_keeps_the_previous_module_and_sidecar(here, monkeypatch, error):
    before = _snapshot(here)
    monkeypatch.setattr("yuan.compiler.backends.cpu.export_shared_library",
                        lambda executable, dest, *a: _fail_after_partial_write(dest, error))
    graph = trace(_mlp(), Tensor(np.zeros((BATCH, 4), np.float32)))
    with pytest.raises(OutputPathError if isinstance(error, OSError) else KeyboardInterrupt):
        compile_graph(graph, "x86", str(here / "m.so"))
    assert _snapshot(here) == before and not _leftovers(here)
    runtime.load(str(here / "m.so"))    # still the good, loadable module


def test_a_full_disk_during_compile_is_one_line_naming_the_file(here, monkeypatch):
    before = _snapshot(here)
    monkeypatch.setattr("yuan.compiler.backends.cpu.export_shared_library",
                        lambda executable, dest, *a: _fail_after_partial_write(dest, _disk_full()))
    _one_error_line(_invoke("compile", "m.onnx", "-o", "m.so"), "m.so", "No space left on device")
    assert _snapshot(here) == before and not _leftovers(here)


def test_compile_stages_its_files_in_the_destination_folder(here, monkeypatch):
    """os.replace is atomic only within one filesystem: the staged files must sit beside the result."""
    moves = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (moves.append((src, dst)), real_replace(src, dst)))
    path = compile_graph(trace(_mlp(), Tensor(np.zeros((BATCH, 4), np.float32))), "x86", str(here / "m.so"))
    moves = [(src, dst) for src, dst in moves if os.path.dirname(dst) == str(here)]
    assert [dst for _, dst in moves] == [path, sidecar_path(path)]          # the sidecar last
    for src, dst in moves:
        assert os.path.dirname(os.path.dirname(src)) == os.path.dirname(dst)
    assert not _leftovers(here)


@pytest.mark.parametrize("args, output, patched", [
    (["export", "last.npz"], "good.onnx", "onnx.save"),
    (["quantize", "m.onnx", "--calib", "calib.npy"], "good.onnx", "onnx.save"),
    (["run", "m.so", "-i", "x.npy"], "good.npy", "numpy.save"),
    (["run", "m.so", "-i", "x.npy"], "good.npz", "numpy.savez"),
], ids=["export", "quantize", "run npy", "run npz"])
def test_a_full_disk_keeps_the_previous_output(here, monkeypatch, args, output, patched):
    (here / output).write_bytes(b"the previous good file")
    before = _snapshot(here)

    def full_disk(*args, **kwargs):
        target = args[1] if patched == "onnx.save" else args[0]     # onnx.save(model, path), np.save(file, ...)
        with open(target, "wb") if isinstance(target, str) else target as f:
            f.write(b"partial")
        raise _disk_full()
    monkeypatch.setattr(patched, full_disk)
    _one_error_line(_invoke(*args, "-o", output), output, "No space left on device")
    assert _snapshot(here) == before and not _leftovers(here)


def test_an_interrupted_checkpoint_save_keeps_the_previous_checkpoint(here, monkeypatch):
    before = _snapshot(here)
    monkeypatch.setattr(np, "savez", lambda f, **arrays: _fail_after_partial_write(f.name, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(str(here / "last.npz"), _mlp())
    monkeypatch.setattr(np, "savez", lambda f, **arrays: _fail_after_partial_write(f.name, _disk_full()))
    with pytest.raises(OutputPathError, match="last.npz.*No space left"):
        save_checkpoint(str(here / "last.npz"), _mlp())
    assert _snapshot(here) == before and not _leftovers(here)


def test_atomic_output_replaces_only_a_complete_file(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as staged:
            open(staged, "wb").write(b"half")
            raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.bin"]
    with atomic_output(target) as staged:
        open(staged, "wb").write(b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["a.bin"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())   # not mkstemp's 0600


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_outputs_that_work_leave_no_staging_files(here):
    assert _invoke("compile", "m.onnx", "-o", "again.so").exit_code == 0
    assert _invoke("export", "last.npz", "-o", "e.onnx").exit_code == 0
    assert _invoke("run", "again.so", "-i", "x.npy", "-o", "y.npz").exit_code == 0
    save_checkpoint(str(here / "last.npz"), _mlp())
    assert not _leftovers(here)
