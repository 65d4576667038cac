"""Preprocessing on real photos (scikit-learn's sample images china.jpg / flower.jpg, 427x640x3
uint8): the frontend transforms, the NumPy reference (the IR interpreter) and the compiled x86
module (and aarch64 under qemu, when installed) agree bit for bit on the integer ops and within 1e-6 on the float ones, for odd crops, odd
resize targets (down from the whole photo, up from a small crop), both modes, every coordinate
convention and nearest rounding; the reference itself is checked against NumPy slicing and ONNX
Runtime's Resize."""
import numpy as np
import pytest

from tests.frontend.test_preprocess_transforms import _ort_resize as ort_resize
from yuan import runtime
from yuan.compiler.build import compile_graph
from yuan.compiler.ir import Graph
from yuan.compiler.ir.interpreter import run_graph
from yuan.frontend.data import BgrToRgb, CropImage, HwcToChw, NormalizeImage, ResizeImage, ToFloat

SIZE = [37, 53]                                    # odd target: small outputs, fast compiles
BOX = dict(top=113, left=171, height=201, width=311)   # odd crop
PATCH = dict(top=200, left=300, height=9, width=11)    # a small crop resized up
COORDS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
IMAGENET = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


@pytest.fixture(scope="session")
def photos():
    """[2, 427, 640, 3] uint8: china.jpg and flower.jpg as decoded (RGB)."""
    pytest.importorskip("PIL", reason="pillow is needed to decode the sample photos (pip install '.[test]')")
    datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn ships the sample photos "
                                                              "(pip install '.[data]')")
    images = np.stack(datasets.load_sample_images().images)
    assert images.shape == (2, 427, 640, 3) and images.dtype == np.uint8
    return images


def _cases():
    """{output name: the frontend transforms that compute it from the photos}, one module."""
    to_float = ToFloat(scale=1 / 255)
    cases = {"crop": [CropImage(**BOX, layout="NHWC")],
             "crop_rgb": [CropImage(**BOX, layout="NHWC"), BgrToRgb(layout="NHWC")],
             "crop_chw": [CropImage(**BOX, layout="NHWC"), HwcToChw()],
             "crop_float": [CropImage(**BOX, layout="NHWC"), to_float]}
    for coord in COORDS:
        for mode in ("linear", "nearest"):
            cases[f"down_{mode}_{coord}"] = [to_float, ResizeImage(SIZE, mode=mode, coordinate_mode=coord, layout="NHWC")]
            cases[f"up_{mode}_{coord}"] = [CropImage(**PATCH, layout="NHWC"), HwcToChw(), to_float,
                                          ResizeImage(SIZE, mode=mode, coordinate_mode=coord)]
        # nearest on the uint8 pixels themselves: the deployed module resizes before converting
        cases[f"u8_down_nearest_{coord}"] = [ResizeImage(SIZE, mode="nearest", coordinate_mode=coord, layout="NHWC")]
        cases[f"u8_up_nearest_{coord}"] = [CropImage(**PATCH, layout="NHWC"), HwcToChw(),
                                           ResizeImage(SIZE, mode="nearest", coordinate_mode=coord)]
    for rounding in ("round_prefer_ceil", "floor", "ceil"):
        cases[f"up_nearest_{rounding}"] = [CropImage(**PATCH, layout="NHWC"), to_float,
                                           ResizeImage(SIZE, mode="nearest", coordinate_mode="asymmetric",
                                                       nearest_mode=rounding, layout="NHWC")]
    cases["imagenet"] = [to_float, ResizeImage(SIZE, layout="NHWC"), NormalizeImage(**IMAGENET, layout="NHWC"),
                         HwcToChw()]
    return cases


def _graph(cases, shape):
    """The cases as one Graph: each transform becomes its IR op (the same op and attributes)."""
    g = Graph("photos")
    photo = g.add_input("photo", shape, "uint8")
    for name, transforms in cases.items():
        x = photo
        for k, t in enumerate(transforms):
            x = g.add_node(t.op, [x], dict(t.attrs), name=f"{name}.{k}").outputs[0]
        g.mark_output(x)
    return g


@pytest.fixture(scope="session")
def compiled(photos, tmp_path_factory):
    cases = _cases()
    g = _graph(cases, photos.shape)
    lib = compile_graph(g, "x86", str(tmp_path_factory.mktemp("photos") / "photos.so"))
    return cases, g, runtime.load(lib).run({"photo": photos})


def _frontend(transforms, photos):
    x = photos
    for t in transforms:
        x = t.batch(x)
    return x


def test_frontend_reference_and_compiled_module_agree(photos, compiled):
    cases, g, got = compiled
    reference = run_graph(g, {"photo": photos})
    for (name, transforms), out in zip(cases.items(), g.outputs):
        want = reference[out]
        front = _frontend(transforms, photos)
        assert front.dtype == want.dtype and front.shape == want.shape, name
        np.testing.assert_array_equal(front, want, err_msg=name)       # the same kernel: bit for bit
        assert got[out].dtype == want.dtype and got[out].shape == want.shape, name
        if want.dtype == np.uint8:
            np.testing.assert_array_equal(got[out], want, err_msg=name)
        else:
            np.testing.assert_allclose(got[out], want, rtol=0, atol=1e-6, err_msg=name)


def test_integer_ops_are_numpy_slicing(photos, compiled):
    _, g, got = compiled
    crop, rgb, chw, as_float = (got[out] for out in g.outputs[:4])
    box = photos[:, BOX["top"]:BOX["top"] + BOX["height"], BOX["left"]:BOX["left"] + BOX["width"]]
    assert crop.shape == (2, 201, 311, 3)
    np.testing.assert_array_equal(crop, box)
    np.testing.assert_array_equal(rgb, box[..., ::-1])
    np.testing.assert_array_equal(chw, box.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(as_float, box.astype(np.float32) * np.float32(1 / 255))


@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_reference_resize_is_onnx_runtimes_on_the_photos(photos, compiled, coord, mode):
    cases, g, got = compiled
    outputs = dict(zip(cases, g.outputs))
    whole = photos.astype(np.float32) * np.float32(1 / 255)
    patch = whole[:, 200:209, 300:311].transpose(0, 3, 1, 2)
    atol = 1e-6 if mode == "linear" else 0
    cases = [(f"down_{mode}_{coord}", whole, (2, *SIZE, 3)), (f"up_{mode}_{coord}", patch, (2, 3, *SIZE))]
    if mode == "nearest":
        cases += [(f"u8_down_nearest_{coord}", photos, (2, *SIZE, 3)),
                  (f"u8_up_nearest_{coord}", photos[:, 200:209, 300:311].transpose(0, 3, 1, 2), (2, 3, *SIZE))]
    for name, x, sizes in cases:
        want = ort_resize(x, sizes, mode=mode, coordinate_transformation_mode=coord)
        assert got[outputs[name]].dtype == want.dtype, name
        np.testing.assert_allclose(got[outputs[name]], want, rtol=0, atol=atol, err_msg=name)


def test_aarch64_module_agrees_under_qemu(photos, compiled, tmp_path):
    import shutil

    from yuan.runtime import qemu_runner
    if shutil.which("aarch64-linux-gnu-g++") is None or qemu_runner.qemu_binary() is None:
        pytest.skip("aarch64 cross compiler or qemu-aarch64 not installed")
    if not qemu_runner.root_ready(qemu_runner.arm64_root()):
        pytest.skip("no arm64 Python tree (runtime/arm64/build_arm64_root.sh)")
    cases, g, _ = compiled
    lib = compile_graph(g, "aarch64", str(tmp_path / "photos_arm.so"))
    res = qemu_runner.run_models([{"lib": lib, "inputs": [photos]}], cpu="cortex-a76")
    assert res.returncode == 0, (res.errors, res.stderr[-2000:])
    reference = run_graph(g, {"photo": photos})
    for name, out, got in zip(cases, g.outputs, res.outputs[0]):
        want = reference[out]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        if want.dtype == np.uint8:
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=name)
