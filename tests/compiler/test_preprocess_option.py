"""`--preprocess` as an inline key=value list or a bundled name (compiler/ir/preprocess_option.py): the
pipeline it builds against NumPy written here, the CLI path end to end, and one-line errors."""
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from yuan import runtime
from yuan.cli import main
from yuan.compiler.ir import Graph
from yuan.compiler.ir.interpreter import run_graph
from yuan.compiler.ir.preprocess import PreprocessSpecError, build_preprocess_graph, prepend_preprocess
from yuan.compiler.ir.preprocess_option import PreprocessOption
from yuan.compiler.onnx import import_onnx

RNG = np.random.default_rng(7)


def _model_graph(h, w):
    g = Graph("m")
    g.add_input("input", (1, 3, h, w), "float32")
    return g


def test_inline_pipeline_equals_numpy():
    option = PreprocessOption("input=6x8,crop=4,normalize=0.5/0.4/0.3:0.2/0.25/0.5,order=bgr,dtype=uint8")
    pre = build_preprocess_graph(option.spec_for(_model_graph(4, 4)))
    x = RNG.integers(0, 256, (1, 6, 8, 3)).astype(np.uint8)
    f = x.astype(np.float32) * np.float32(1 / 255)
    f = f[..., ::-1][:, 1:5, 2:6, :]                                   # BGR -> RGB, centre 4x4
    want = ((f - np.float32([0.5, 0.4, 0.3])) / np.float32([0.2, 0.25, 0.5])).transpose(0, 3, 1, 2)
    got = run_graph(pre, {pre.inputs[0]: x})[pre.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_inline_defaults_to_the_models_size_and_hwc_uint8():
    spec = PreprocessOption("normalize=imagenet").spec_for(_model_graph(5, 7))
    assert spec["input"] == {"shape": [1, 5, 7, 3], "dtype": "uint8", "layout": "NHWC"}


def test_bundled_name_is_the_shipped_yaml():
    from yuan.compiler.ir.preprocess import load_spec
    assert PreprocessOption("imagenet").spec_for(_model_graph(224, 224)) == \
        load_spec("configs/imagenet_preprocess.yaml")


def _onnx_model():
    w = numpy_helper.from_array(np.random.default_rng(3).normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 1, 1])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_compile_with_inline_preprocess(tmp_path):
    onnx.save(_onnx_model(), tmp_path / "net.onnx")
    text = "input=12x16,resize=8,crop=8,normalize=imagenet,order=bgr"
    result = CliRunner().invoke(main, ["compile", str(tmp_path / "net.onnx"), "--preprocess", text,
                                       "-o", str(tmp_path / "net.so")])
    assert result.exit_code == 0, result.output
    assert "input 'image' uint8[1, 12, 16, 3]" in result.output
    graph = import_onnx(str(tmp_path / "net.onnx"))
    reference = prepend_preprocess(graph, PreprocessOption(text).spec_for(graph), text)
    frame = RNG.integers(0, 256, (1, 12, 16, 3)).astype(np.uint8)
    want = run_graph(reference, {"image": frame})["y"]
    got = runtime.load(str(tmp_path / "net.so")).run({"image": frame})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("text, names", [
    ("resize=256,colour=rgb", "unknown key 'colour'"),
    ("resize=0", "resize=0"),
    ("input=480", "input=480"),
    ("crop=224,crop=200", "'crop' is given twice"),
    ("layout=hw", "layout=hw"),
    ("normalize=1/2/3", "normalize=1/2/3"),
    ("scale=1/0", "scale=1/0"),
    ("resize", None),                              # no '=': a file or bundled name that does not exist
    ("input=8x8,crop=10", "crop"),                 # crop larger than the image: the spec's own check
])
def test_bad_inline_options_name_the_key(text, names):
    with pytest.raises(PreprocessSpecError) as err:
        PreprocessOption(text).spec_for(_model_graph(8, 8))
    message = str(err.value)
    assert "\n" not in message and text in message
    assert names is None or names in message


def test_cli_reports_a_bad_inline_option_in_one_line(tmp_path):
    onnx.save(_onnx_model(), tmp_path / "net.onnx")
    result = CliRunner().invoke(main, ["compile", str(tmp_path / "net.onnx"), "--preprocess", "resize=8,bogus=1",
                                       "-o", str(tmp_path / "net.so")])
    assert result.exit_code != 0 and "unknown key 'bogus'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "net.so").exists()
