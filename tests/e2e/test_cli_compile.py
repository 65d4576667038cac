"""`yuan compile / run / bench / demo`: the deployment commands end to end."""
import numpy as np
import pytest
from click.testing import CliRunner

from yuan.compiler.onnx import export_onnx
from yuan.cli import main
from yuan.frontend.models import get_model
from yuan.frontend.random import manual_seed
from yuan.frontend.tensor import Tensor
from yuan.frontend.trace import trace

import onnxruntime as ort


@pytest.fixture(scope="module")
def float_onnx(tmp_path_factory):
    manual_seed(0)
    model = get_model("small_cnn", in_channels=1, num_classes=10, input_size=8).eval()
    x = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    path = str(tmp_path_factory.mktemp("m") / "cnn.onnx")
    export_onnx(trace(model, Tensor(x)), path)
    return path


def test_compile_run_bench_float(float_onnx, tmp_path):
    runner = CliRunner()
    out = str(tmp_path / "cnn.so")
    res = runner.invoke(main, ["compile", float_onnx, "--target", "x86", "-o", out])
    assert res.exit_code == 0, res.output
    assert "kernels" in res.output and "wrote" in res.output
    x = np.random.default_rng(1).random((2, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    res = runner.invoke(main, ["run", out, "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")])
    assert res.exit_code == 0, res.output
    sess = ort.InferenceSession(float_onnx, providers=["CPUExecutionProvider"])
    expect = sess.run(None, {"input": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expect, rtol=1e-4, atol=1e-5)
    res = runner.invoke(main, ["bench", out, "--repeat", "3", "--warmup", "1"])
    assert res.exit_code == 0 and "median" in res.output, res.output


def test_compile_with_post_training_quantization(float_onnx, tmp_path):
    pytest.importorskip("sklearn")
    out = str(tmp_path / "cnn_int8.so")
    res = CliRunner().invoke(main, ["compile", float_onnx, "-o", out, "--quantize", "int8", "--calib", "digits"])
    assert res.exit_code == 0, res.output
    assert "qconv2d" in res.output


def test_bad_inputs_are_one_clear_line(float_onnx, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["compile", float_onnx, "--target", "riscv", "-o", str(tmp_path / "a.so")])
    assert res.exit_code != 0 and "riscv" in res.output and "x86" in res.output
    assert isinstance(res.exception, SystemExit)  # a ClickException, not a crash and not (tmp_path / "a.so").exists()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    res = runner.invoke(main, ["compile", str(bad), "-o", str(tmp_path / "b.so")])
    assert res.exit_code != 0 and "bad.onnx" in res.output and isinstance(res.exception, SystemExit)  # a ClickException, not a crash
    res = runner.invoke(main, ["run", str(bad), "--input", str(bad)])
    assert res.exit_code != 0 and isinstance(res.exception, SystemExit)  # a ClickException, not a crash


def test_demo_runs_end_to_end(tmp_path):
    from yuan.demo import run_demo
    lines = []
    result = run_demo(str(tmp_path), epochs=1, log=lines.append)
    # The compiled int8 module computes exactly what the integer reference computes.
    assert result["identical"] == 1.0, lines
    assert result["compiled_acc"] == result["int8_ref_acc"]
    assert result["float_acc"] > 0.9 and result["int8_ref_acc"] > 0.9, lines


def test_output_named_like_the_metadata_file_is_refused(float_onnx, tmp_path):
    res = CliRunner().invoke(main, ["compile", float_onnx, "-o", str(tmp_path / "m.json")])
    assert res.exit_code != 0 and "metadata" in res.output and isinstance(res.exception, SystemExit)  # a ClickException, not a crash


def test_unknown_model_and_dataset_names_are_clear_errors(tmp_path):
    import yaml
    for section, bad in (("model", {"name": "nosuch"}), ("data", {"name": "nosuch"})):
        cfg = {"model": {"name": "small_cnn", "args": {"input_size": 8}}, "data": {"name": "digits"},
               "train": {"epochs": 1, "max_batches_per_epoch": 1}, "output": {"dir": str(tmp_path / "r")}}
        cfg[section] = bad
        path = tmp_path / f"{section}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        res = CliRunner().invoke(main, ["train", str(path)])
        assert res.exit_code != 0 and "nosuch" in res.output and isinstance(res.exception, SystemExit)  # a ClickException, not a crash, res.output
