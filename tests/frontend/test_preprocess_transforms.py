"""Training transforms that are the deployable preprocessing ops: each against an independent
computation (NumPy slicing, ONNX Runtime's own Resize), and a spec pipeline against ONNX Runtime."""
import numpy as np
import pytest
from onnx import helper, numpy_helper

from tests.conftest import run_ort
from yuan.compiler.ir.preprocess import PreprocessSpecError, build_preprocess_graph
from yuan.compiler.onnx import export_onnx
from yuan.frontend.data import (BgrToRgb, CropImage, HwcToChw, NormalizeImage, Preprocess, ResizeImage,
                                ToFloat)

RNG = np.random.default_rng(56)
FRAMES = RNG.integers(0, 256, (3, 9, 14, 3)).astype(np.uint8)   # odd sizes, NHWC BGR


def test_exact_transforms_match_numpy():
    x = FRAMES
    np.testing.assert_array_equal(ToFloat(scale=0.5).batch(x), x.astype(np.float32) * np.float32(0.5))
    np.testing.assert_array_equal(BgrToRgb(layout="NHWC").batch(x), x[..., ::-1])
    np.testing.assert_array_equal(HwcToChw().batch(x), x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(CropImage(top=2, left=5, height=6, width=7, layout="NHWC").batch(x),
                                  x[:, 2:8, 5:12])
    np.testing.assert_array_equal(CropImage(top=2, left=5, height=6, width=7, layout="NHWC")(x[1]), x[1, 2:8, 5:12])
    mean, std = np.float32([10, 20, 30]), np.float32([2, 4, 8])
    np.testing.assert_array_equal(NormalizeImage(mean=mean, std=std, layout="NHWC").batch(x.astype(np.float32)),
                                  (x.astype(np.float32) - mean) / std)


def _ort_resize(x, sizes, **attrs):
    """ONNX Runtime's Resize of `x` (any dtype it takes) to the full output shape `sizes`."""
    elem = helper.np_dtype_to_tensor_dtype(x.dtype)
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], **attrs)
    graph = helper.make_graph([node], "r", [helper.make_tensor_value_info("x", elem, list(x.shape))],
                              [helper.make_tensor_value_info("y", elem, list(sizes))],
                              [numpy_helper.from_array(np.array(sizes, np.int64), "sizes")])
    return run_ort(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), {"x": x})["y"]


@pytest.mark.parametrize("coord", ["half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"])
@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_resize_transform_matches_onnx_runtime(coord, mode):
    x = FRAMES.astype(np.float32)
    got = ResizeImage((5, 17), mode=mode, coordinate_mode=coord, layout="NHWC").batch(x)
    want = _ort_resize(x, (3, 5, 17, 3), mode=mode, coordinate_transformation_mode=coord)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 if mode == "linear" else 0)


SPEC = {"input": {"shape": [1, 9, 14, 3], "dtype": "uint8", "layout": "HWC"},
        "steps": [{"to_float": {"scale": 1 / 255}}, "bgr_to_rgb", {"resize": {"size": 8}},
                  {"center_crop": {"size": [6, 7]}}, {"normalize": "imagenet"}, "hwc_to_chw"]}


def test_spec_pipeline_matches_onnx_runtime_for_any_batch_size():
    pipeline = Preprocess.from_spec(SPEC)
    got = pipeline.batch(FRAMES)
    assert got.shape == (3, 3, 6, 7) and got.dtype == np.float32
    model = export_onnx(build_preprocess_graph(SPEC))
    for k, frame in enumerate(FRAMES):
        want = list(run_ort(model, {"image": frame[None]}).values())[0][0]
        np.testing.assert_allclose(got[k], want, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(pipeline(frame), got[k])


def test_bad_spec_fails_when_the_transform_is_made():
    with pytest.raises(PreprocessSpecError, match=r"steps\[1\] \(flip\): unknown op 'flip'"):
        Preprocess.from_spec({"input": SPEC["input"], "steps": ["to_float", "flip"]})
