"""Image preprocessing IR ops: the interpreter against ONNX Runtime running the exported ONNX
(standard ops only), the ONNX round trip, and the import of Resize."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import run_ort
from yuan.compiler.ir import Graph
from yuan.compiler.ir.errors import GraphError
from yuan.compiler.ir.interpreter import run_graph
from yuan.compiler.onnx import OnnxImportError, export_onnx, import_onnx

RNG = np.random.default_rng(12)


def one_op_graph(op, shape, dtype, **attrs):
    g = Graph(f"one_{op}")
    x = g.add_input("x", shape, dtype)
    g.mark_output(g.add_node(op, [x], attrs, name=op).outputs[0])
    return g


def image(shape, dtype="float32"):
    if dtype == "uint8":
        return RNG.integers(0, 256, shape).astype(np.uint8)
    return RNG.uniform(-2, 2, shape).astype(dtype)


def check_against_ort(g, x, exact):
    model = export_onnx(g)
    assert {n.op_type for n in model.graph.node} <= {"Resize", "Slice", "Sub", "Div", "Transpose",
                                                      "Cast", "Mul"}
    want = list(run_ort(model, {"x": x}).values())[0]
    got = run_graph(g, {"x": x})[g.outputs[0]]
    assert got.shape == want.shape and got.dtype == want.dtype
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    back = import_onnx(model)                    # round trip: the re-imported graph computes the same
    np.testing.assert_array_equal(run_graph(back, {"x": x})[back.outputs[0]], got)
    return got


RESIZE_CASES = [(mode, coord, layout, shape, size)
                for mode in ("linear", "nearest")
                for coord in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
                for layout, shape in (("NCHW", (2, 3, 7, 9)), ("NHWC", (1, 5, 11, 3)))
                for size in ([4, 5], [13, 17], [1, 1])]


@pytest.mark.parametrize("mode,coord,layout,shape,size", RESIZE_CASES)
def test_resize_matches_onnx_runtime(mode, coord, layout, shape, size):
    g = one_op_graph("resize", shape, "float32", size=size, mode=mode, coordinate_mode=coord, layout=layout)
    check_against_ort(g, image(shape), exact=mode == "nearest")


@pytest.mark.parametrize("coord", ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"])
@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_nearest_resize_keeps_integer_pixels_like_onnx_runtime(coord, dtype):
    for layout, shape in (("NHWC", (1, 7, 9, 3)), ("NCHW", (2, 3, 5, 4))):
        g = one_op_graph("resize", shape, dtype, size=[11, 3], mode="nearest", coordinate_mode=coord, layout=layout)
        x = RNG.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
        assert check_against_ort(g, x, exact=True).dtype == dtype


@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
def test_nearest_modes_break_ties_like_onnx_runtime(nearest_mode):
    # 4 -> 8 half-pixel and 8 -> 4 asymmetric land exactly on .5 / integer coordinates: ties decide
    for shape, size, coord in (((1, 1, 4, 4), [8, 8], "half_pixel"), ((1, 1, 3, 3), [6, 6], "align_corners")):
        g = one_op_graph("resize", shape, "float32", size=size, mode="nearest", coordinate_mode=coord,
                         nearest_mode=nearest_mode)
        check_against_ort(g, image(shape), exact=True)


def test_resize_with_scales_uses_them_for_coordinates():
    g = one_op_graph("resize", (1, 2, 5, 5), "float32", size=[12, 12], scales=[2.5, 2.5],
                     coordinate_mode="asymmetric")
    check_against_ort(g, image((1, 2, 5, 5)), exact=False)


def test_align_corners_keeps_the_corner_pixels():
    x = image((1, 1, 4, 6))
    y = run_graph(one_op_graph("resize", x.shape, "float32", size=[7, 11], coordinate_mode="align_corners"),
                  {"x": x})["resize"]
    np.testing.assert_array_equal(y[0, 0, [0, 0, -1, -1], [0, -1, 0, -1]], x[0, 0, [0, 0, -1, -1], [0, -1, 0, -1]])


@pytest.mark.parametrize("op,shape,dtype,attrs", [
    ("crop", (2, 6, 8, 3), "uint8", dict(top=1, left=2, height=4, width=5, layout="NHWC")),
    ("crop", (1, 3, 6, 8), "float32", dict(top=0, left=3, height=6, width=5)),
    ("bgr_to_rgb", (2, 4, 5, 3), "uint8", dict(layout="NHWC")),
    ("bgr_to_rgb", (1, 3, 4, 5), "float32", {}),
    ("hwc_to_chw", (2, 4, 5, 3), "uint8", {}),
    ("to_float", (1, 4, 5, 3), "uint8", {}),
    ("to_float", (1, 4, 5, 3), "uint8", dict(scale=1 / 255)),
])
def test_exact_ops_match_onnx_runtime(op, shape, dtype, attrs):
    x = image(shape, dtype)
    got = check_against_ort(one_op_graph(op, shape, dtype, **attrs), x, exact=True)
    expected = {"crop": lambda: x[:, 1:5, 2:7] if attrs.get("layout") == "NHWC" else x[:, :, 0:6, 3:8],
                "bgr_to_rgb": lambda: x[..., ::-1] if attrs.get("layout") == "NHWC" else x[:, ::-1],
                "hwc_to_chw": lambda: x.transpose(0, 3, 1, 2),
                "to_float": lambda: x.astype(np.float32) * np.float32(attrs.get("scale", 1.0))}[op]()
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("layout,shape", [("NHWC", (2, 4, 5, 3)), ("NCHW", (1, 3, 4, 5))])
def test_normalize_matches_onnx_runtime(layout, shape):
    g = one_op_graph("normalize", shape, "float32", mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                     layout=layout)
    check_against_ort(g, image(shape), exact=False)


@pytest.mark.parametrize("op,shape,dtype,attrs,message", [
    ("crop", (1, 6, 8, 3), "uint8", dict(top=2, left=0, height=5, width=4, layout="NHWC"), r"leaves the 6x8 image"),
    ("normalize", (1, 3, 4, 4), "float32", dict(mean=[0, 0, 0], std=[1, 0, 1]), r"std must be non-zero"),
    ("normalize", (1, 3, 4, 4), "float32", dict(mean=[0, 0], std=[1]), r"mean has 2 values; the input has 3"),
    ("resize", (1, 3, 4, 4), "uint8", dict(size=[2, 2]), r"is uint8: mode 'linear' needs a float tensor"),
    ("resize", (1, 3, 4, 4), "float32", dict(size=[2, 2], mode="cubic"), r"mode must be one of"),
    ("to_float", (1, 3, 4, 4), "float32", {}, r"must be an integer tensor"),
    ("bgr_to_rgb", (1, 4, 4, 4), "uint8", {}, r"must have 3 channels"),
])
def test_bad_attributes_are_one_line_errors(op, shape, dtype, attrs, message):
    with pytest.raises(GraphError, match=message) as info:
        one_op_graph(op, shape, dtype, **attrs)
    assert "\n" not in str(info.value) and f"({op})" in str(info.value)


def _resize_model(**attrs):
    sizes = numpy_helper.from_array(np.array([1, 3, 8, 8], np.int64), "sizes")
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="up", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])], [sizes])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def test_imported_resize_defaults_match_onnx_runtime():
    model = _resize_model()            # ONNX defaults: nearest, half_pixel, round_prefer_floor
    x = image((1, 3, 4, 4))
    g = import_onnx(model)
    assert [n.op for n in g.nodes] == ["resize"]
    np.testing.assert_array_equal(run_graph(g, {"x": x})["y"], run_ort(model, {"x": x})["y"])


@pytest.mark.parametrize("attrs,named", [
    (dict(mode="cubic"), "mode='cubic'"),
    (dict(mode="linear", coordinate_transformation_mode="tf_crop_and_resize"),
     "coordinate_transformation_mode='tf_crop_and_resize'"),
    (dict(mode="linear", antialias=1), "antialias=1"),
])
def test_unsupported_resize_modes_are_refused_naming_node_and_attribute(attrs, named):
    with pytest.raises(OnnxImportError, match=rf"node 'up' \(Resize\): attribute {named} is not supported") as info:
        import_onnx(_resize_model(**attrs))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("shape,scales,sizes,layout", [
    ((1, 2, 5, 7), [1, 1, 2.5, 1.5], None, "NCHW"),       # output floor(in * scale); coordinates use scale
    ((1, 5, 7, 3), None, [1, 9, 4, 3], "NHWC"),            # only H, W change: channels-last
])
def test_imported_resize_with_scales_or_nhwc_sizes_matches_onnx_runtime(shape, scales, sizes, layout):
    inits = [numpy_helper.from_array(np.array(scales or [], np.float32), "scales")]
    inputs = ["x", "", "scales"]
    if sizes:
        inits.append(numpy_helper.from_array(np.array(sizes, np.int64), "sizes"))
        inputs = ["x", "", "", "sizes"]
    node = helper.make_node("Resize", inputs, ["y"], name="r", mode="linear",
                            coordinate_transformation_mode="asymmetric")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    g = import_onnx(model)
    assert g.nodes[0].attrs["layout"] == layout
    x = image(shape)
    want = run_ort(model, {"x": x})["y"]
    np.testing.assert_allclose(run_graph(g, {"x": x})["y"], want, rtol=0, atol=1e-5)
