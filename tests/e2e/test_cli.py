"""The `yuan` command line: train -> checkpoint -> export -> ONNX Runtime agrees with eager."""
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from yuan.cli import main

pytest.importorskip("sklearn")


def _write_config(path, out_dir, **extra):
    cfg = {
        "name": "cli_test", "seed": 0,
        "model": {"name": "small_cnn", "args": {"in_channels": 1, "num_classes": 10, "input_size": 8}},
        "data": {"name": "digits", "batch_size": 64},
        "optim": {"name": "adam", "lr": 0.003},
        "train": {"epochs": 1, "max_batches_per_epoch": 5},
        "output": {"dir": str(out_dir)},
    }
    cfg.update(extra)
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_train_then_export_matches_onnxruntime(tmp_path):
    import onnxruntime as ort
    runner = CliRunner()
    cfg = _write_config(tmp_path / "c.yaml", tmp_path / "run")
    res = runner.invoke(main, ["train", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "results:" in res.output
    ckpt = tmp_path / "run" / "last.npz"
    onnx_path = tmp_path / "m.onnx"
    res = runner.invoke(main, ["export", str(ckpt), "-o", str(onnx_path)])
    assert res.exit_code == 0, res.output

    from yuan.export import model_from_checkpoint
    from yuan.frontend.tensor import Tensor
    model, _, _ = model_from_checkpoint(str(ckpt))
    x = np.random.default_rng(0).random((1, 1, 8, 8)).astype(np.float32)
    eager = model(Tensor(x)).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, eager, rtol=1e-5, atol=1e-5)


def test_quantize_command_writes_qdq_onnx_that_onnxruntime_runs(tmp_path):
    import onnxruntime as ort
    runner = CliRunner()
    cfg = _write_config(tmp_path / "c.yaml", tmp_path / "run", train={"epochs": 1, "max_batches_per_epoch": 10})
    assert runner.invoke(main, ["train", str(cfg)]).exit_code == 0
    out = tmp_path / "q.onnx"
    res = runner.invoke(main, ["quantize", str(tmp_path / "run" / "last.npz"), "-o", str(out),
                               "--calib-batches", "3"])
    assert res.exit_code == 0, res.output
    assert "int8 (ptq) accuracy" in res.output
    import onnx
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 1, 8, 8)).astype(np.float32)
    assert sess.run(None, {sess.get_inputs()[0].name: x})[0].shape == (1, 10)


def test_unknown_config_key_is_a_clear_error(tmp_path):
    cfg = _write_config(tmp_path / "c.yaml", tmp_path / "run", trian={"epochs": 1})
    res = CliRunner().invoke(main, ["train", str(cfg)])
    assert res.exit_code != 0
    assert "unknown key" in res.output and "'trian'" in res.output
    assert isinstance(res.exception, SystemExit)  # a ClickException, not a crash


def test_export_of_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    res = CliRunner().invoke(main, ["export", str(bad), "-o", str(tmp_path / "x.onnx")])
    assert res.exit_code != 0 and "bad.npz" in res.output and isinstance(res.exception, SystemExit)  # a ClickException, not a crash
    assert not (tmp_path / "x.onnx").exists()
