"""CLI validation: out-of-range options are refused up front naming the option and the range; `yuan run`
handles empty batches and several outputs; quantizing twice is refused; a float ONNX file can be
post-training quantized by `yuan quantize`; too little calibration data is one clear line."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from yuan.cli import main
from yuan.compiler.build import compile_graph
from yuan.compiler.ir import Graph
from yuan.compiler.onnx import export_onnx
from yuan.frontend.models import get_model
from yuan.frontend.random import manual_seed
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace

BATCH = 2


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _error_line(res, *fragments):
    """A user error: non-zero exit, a click exit (no traceback); its `Error:` line names `fragments`."""
    assert res.exit_code != 0 and isinstance(res.exception, SystemExit), res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and "Traceback" not in res.output, res.output
    for fragment in fragments:
        assert fragment in line, res.output
    return line


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A float MLP as ONNX and compiled (batch 2), an input, calibration data, a two-output module."""
    folder = tmp_path_factory.mktemp("cli")
    manual_seed(0)
    model = get_model("mlp", in_features=4, num_classes=2, hidden=(4,)).eval()
    graph = trace(model, Tensor(np.zeros((BATCH, 4), np.float32)))
    export_onnx(graph, str(folder / "m.onnx"))
    compile_graph(graph, "x86", str(folder / "m.so"))
    compile_graph(_two_output_graph(), "x86", str(folder / "two.so"))
    rng = np.random.default_rng(0)
    np.save(folder / "x.npy", rng.standard_normal((BATCH, 4)).astype(np.float32))
    np.save(folder / "calib.npy", rng.standard_normal((16, 4)).astype(np.float32))
    np.save(folder / "one_sample.npy", rng.standard_normal((1, 4)).astype(np.float32))
    return folder


def _two_output_graph():
    g = Graph("two_outputs")
    x = g.add_input("x", (BATCH, 4))
    g.mark_output(g.add_node("relu", [x]).outputs[0])
    g.mark_output(g.add_node("add", [x, x]).outputs[0])
    return g


# ------------------------------------------------------------------ option ranges

@pytest.mark.parametrize("args, option, allowed", [
    (["train", "c.yaml", "--epochs", "0"], "--epochs", "x>=1"),
    (["train", "c.yaml", "--epochs", "-2"], "--epochs", "x>=1"),
    (["export", "c.npz", "-o", "c.onnx", "--batch", "0"], "--batch", "x>=1"),
    (["export", "c.npz", "-o", "c.onnx", "--batch", "-1"], "--batch", "x>=1"),
    (["bench", "m.so", "--repeat", "0"], "--repeat", "x>=1"),
    (["bench", "m.so", "--warmup", "-1"], "--warmup", "x>=0"),
    (["quantize", "c.npz", "-o", "q.onnx", "--epochs", "0"], "--epochs", "x>=1"),
    (["quantize", "c.npz", "-o", "q.onnx", "--calib-batches", "0"], "--calib-batches", "x>=1"),
    (["demo", "--epochs", "0"], "--epochs", "x>=1"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_out_of_range_options_are_refused_up_front(tmp_path, monkeypatch, args, option, allowed):
    monkeypatch.chdir(tmp_path)
    res = _invoke(*args)
    assert res.exit_code == 2, res.output
    _error_line(res, option, allowed)
    assert not list(tmp_path.iterdir())


def test_bench_accepts_no_warmup(files):
    res = _invoke("bench", files / "m.so", "--repeat", "1", "--warmup", "0")
    assert res.exit_code == 0 and "over 1 runs" in res.output, res.output


# ------------------------------------------------------------------ yuan run

def test_an_empty_batch_is_a_clear_error(files, tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 4), np.float32))
    _error_line(_invoke("run", files / "m.so", "-i", tmp_path / "empty.npy"), "expected shape [2, 4]", "[0, 4]")


def test_npz_gets_every_output_and_npy_the_first(files, tmp_path):
    x = np.load(files / "x.npy")
    res = _invoke("run", files / "two.so", "-i", files / "x.npy", "-o", tmp_path / "all.npz")
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "all.npz") as saved:
        outputs = [saved[name] for name in saved.files]
    assert len(outputs) == 2
    np.testing.assert_allclose(outputs[0], np.maximum(x, 0))
    np.testing.assert_allclose(outputs[1], x + x)
    res = _invoke("run", files / "two.so", "-i", files / "x.npy", "-o", tmp_path / "first.npy")
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(np.load(tmp_path / "first.npy"), np.maximum(x, 0))


def test_run_output_must_be_npy_or_npz(files, tmp_path):
    _error_line(_invoke("run", files / "m.so", "-i", files / "x.npy", "-o", tmp_path / "y.txt"), ".npz", ".npy")
    assert not (tmp_path / "y.txt").exists()


def test_an_npz_input_is_a_clear_error(files, tmp_path):
    np.savez(tmp_path / "in.npz", x=np.load(files / "x.npy"))
    _error_line(_invoke("run", files / "m.so", "-i", tmp_path / "in.npz"), "in.npz", ".npy")


# ------------------------------------------------------------------ quantization

@pytest.fixture(scope="module")
def qdq_onnx(files):
    """`yuan quantize m.onnx --calib calib.npy`: the float ONNX file post-training quantized."""
    out = files / "m_int8.onnx"
    res = _invoke("quantize", files / "m.onnx", "--calib", files / "calib.npy", "-o", out)
    assert res.exit_code == 0, res.output
    return out


def test_quantize_accepts_a_float_onnx_model(files, qdq_onnx):
    ops = {n.op_type for n in onnx.load(str(qdq_onnx)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = np.load(files / "x.npy")
    session = ort.InferenceSession(str(qdq_onnx), providers=["CPUExecutionProvider"])
    quantized = session.run(None, {session.get_inputs()[0].name: x})[0]
    session = ort.InferenceSession(str(files / "m.onnx"), providers=["CPUExecutionProvider"])
    reference = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(quantized, reference, atol=0.1)


def test_a_quantized_onnx_model_compiles_and_runs(files, qdq_onnx, tmp_path):
    res = _invoke("compile", qdq_onnx, "-o", tmp_path / "q.so")
    assert res.exit_code == 0 and "qlinear" in res.output, res.output
    assert _invoke("run", tmp_path / "q.so", "-i", files / "x.npy").exit_code == 0


def test_quantizing_a_quantized_model_again_is_refused(files, qdq_onnx, tmp_path):
    _error_line(_invoke("compile", qdq_onnx, "--quantize", "int8", "--calib", files / "calib.npy",
                        "-o", tmp_path / "qq.so"), "m_int8.onnx", "already quantized", "without --quantize")
    _error_line(_invoke("quantize", qdq_onnx, "--calib", files / "calib.npy", "-o", tmp_path / "qq.onnx"),
                "already quantized")
    assert not list(tmp_path.iterdir())


def test_calibration_data_smaller_than_one_batch_is_a_clear_error(files, tmp_path):
    small = files / "one_sample.npy"
    for args in (["compile", files / "m.onnx", "--quantize", "int8", "--calib", small, "-o", tmp_path / "m.so"],
                 ["quantize", files / "m.onnx", "--calib", small, "-o", tmp_path / "m.onnx"]):
        _error_line(_invoke(*args), "one_sample.npy", "1 sample(s)", "batches of 2")
    assert not list(tmp_path.iterdir())


def test_calibration_data_of_the_wrong_shape_is_a_clear_error(files, tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((8, 5), np.float32))
    _error_line(_invoke("quantize", files / "m.onnx", "--calib", tmp_path / "wrong.npy", "-o", tmp_path / "q.onnx"),
                "wrong.npy", "(5,)", "(4,)")


@pytest.mark.parametrize("args, message", [
    (["--method", "qat", "--calib", "calib.npy"], "needs a training checkpoint"),
    ([], "needs --calib"),
], ids=["qat", "no calib"])
def test_quantize_onnx_usage_errors(files, tmp_path, args, message):
    res = _invoke("quantize", files / "m.onnx", "-o", tmp_path / "q.onnx",
                  *[files / a if a.endswith(".npy") else a for a in args])
    _error_line(res, message)


def test_quantize_checkpoint_refuses_calib(files, tmp_path):
    from yuan.checkpoint import save_checkpoint
    manual_seed(0)
    model = get_model("mlp", in_features=4, num_classes=2, hidden=(4,))
    save_checkpoint(str(tmp_path / "c.npz"), model, {"model": {"name": "mlp", "args": {"in_features": 4}}},
                    input_shape=[1, 4])
    _error_line(_invoke("quantize", tmp_path / "c.npz", "--calib", files / "calib.npy", "-o", tmp_path / "q.onnx"),
                "--calib is for an ONNX model")


def test_compile_quantize_without_calib_fails_before_importing(tmp_path):
    _error_line(_invoke("compile", tmp_path / "missing.onnx", "--quantize", "int8", "-o", tmp_path / "m.so"),
                "--quantize needs --calib")
