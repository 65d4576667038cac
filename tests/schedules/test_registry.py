"""Kernel selection: the registry picks by op, dtype, layout, target features, constant inputs and priority,
with a generic fallback for every op on every target."""
import pytest

from yuan import schedules
from yuan.compiler.ir.layout import LAYOUT_OPS
from yuan.compiler.targets import Target
from yuan.schedules import applicable, kernels, preferred_layouts, select_kernel
from tests.schedules.conftest import AARCH64, AARCH64_DOT, CUDA, GENERIC, RISCV, ZNVER4

QATTRS = dict(x_zero_point=0, multiplier=[1 << 30], shift=[31], y_zero_point=0)


def test_registry_wants_a_resolved_target():
    with pytest.raises(TypeError, match="resolved yuan Target"):
        select_kernel("lut", {}, [((4,), "int8"), ((256,), "int8")], ((4,), "int8"), "llvm")


def test_fallback_everywhere():
    """Every op has a kernel on every target kind, and priority decides."""
    tconv = [((1, 4, 6, 6), "int8"), ((8, 4, 3, 3), "int8"), None]
    for tgt in [GENERIC, AARCH64, ZNVER4, RISCV]:
        for op in ["conv2d", "qconv2d", "linear", "qlinear", "qadd", "requantize", "qglobal_avg_pool2d",
                   "qavg_pool2d", "lut"]:
            assert schedules.kernels(op), op
        ks = schedules.applicable("qconv2d", QATTRS, tconv, ((1, 8, 4, 4), "int8"), tgt)
        assert ks and ks[-1].name == "qconv2d_nchw_generic"
    with pytest.raises(NotImplementedError):
        schedules.select("nonexistent_op", {}, [((1,), "float32")], ((1,), "float32"), GENERIC)


def test_other_isas_get_only_generic_kernels():
    """An LLVM target that is neither x86 nor Arm (riscv64) never gets an ISA-specific kernel."""
    assert RISCV.isa == "generic" and RISCV.features == {"cpu"}
    conv = [((1, 16, 8, 8), "int8"), ((32, 16, 3, 3), "int8")]
    attrs = dict(QATTRS, pads=[1, 1, 1, 1])
    for op, types, out in [("qconv2d", conv, ((1, 32, 8, 8), "int8")),
                           ("conv2d", [((1, 16, 8, 8), "float32"), ((32, 16, 3, 3), "float32")],
                            ((1, 32, 6, 6), "float32"))]:
        names = [k.name for k in schedules.applicable(op, attrs if op == "qconv2d" else {}, types, out, RISCV)]
        assert names and all("generic" in n for n in names), names


def test_unique_names():
    a = schedules.select("conv2d", {}, [((1, 2, 5, 5), "float32"), ((3, 2, 3, 3), "float32")],
                         ((1, 3, 3, 3), "float32"), GENERIC)
    b = schedules.select("conv2d", {"strides": [2, 2]}, [((1, 2, 5, 5), "float32"), ((3, 2, 3, 3), "float32")],
                         ((1, 3, 2, 2), "float32"), GENERIC)
    assert a.attrs["global_symbol"] != b.attrs["global_symbol"]


def test_vnni_selected_only_with_feature():
    x, w = ((1, 8, 7, 6), "int8"), ((32, 8, 3, 3), "int8")
    attrs = dict(pads=[1, 1, 1, 1], multiplier=[1 << 30], shift=[20])
    out = ((1, 32, 7, 6), "int8")
    assert select_kernel("qconv2d", attrs, [x, w], out, ZNVER4)[0].name == "qconv2d_int8_nchw_vnni"
    assert select_kernel("qconv2d", attrs, [x, w], out, GENERIC)[0].name == "qconv2d_nchw_generic"
    # weight not constant -> generic
    assert select_kernel("qconv2d", attrs, [x, w], out, ZNVER4, constants={})[0].name == "qconv2d_nchw_generic"
    # O not a multiple of 16 -> still VNNI (output channels zero-padded); grouped (not depthwise) -> generic
    assert select_kernel("qconv2d", attrs, [x, ((8, 8, 3, 3), "int8")], ((1, 8, 7, 6), "int8"),
                         ZNVER4)[0].name == "qconv2d_int8_nchw_vnni"
    assert select_kernel("qconv2d", dict(attrs, group=2), [x, ((32, 4, 3, 3), "int8")], out,
                         ZNVER4)[0].name == "qconv2d_nchw_generic"
    # depthwise -> the x86 depthwise kernel
    assert select_kernel("qconv2d", dict(attrs, group=8), [x, ((8, 1, 3, 3), "int8")], ((1, 8, 7, 6), "int8"),
                         ZNVER4)[0].name == "qconv2d_dw_int8_nchw_x86"


def test_sdot_selected_only_with_dotprod():
    x = ((1, 8, 7, 6), "int8")
    attrs = dict(pads=[1, 1, 1, 1], multiplier=[1 << 30], shift=[20])
    pick = lambda O, tgt, **kw: select_kernel("qconv2d", attrs, [x, ((O, 8, 3, 3), "int8")], ((1, O, 7, 6), "int8"),
                                              tgt, **kw)[0].name
    assert pick(12, AARCH64_DOT) == "qconv2d_int8_nchw_sdot"
    assert pick(12, AARCH64) == "qconv2d_int8_nchw_neon"   # no dotprod: the smull/sadalp conv
    assert pick(10, AARCH64_DOT) == "qconv2d_nchw_generic"   # sdot does not pad output channels
    assert pick(12, AARCH64_DOT, constants={}) == "qconv2d_nchw_generic"
    lin = lambda O, tgt: select_kernel("qlinear", attrs, [((2, 37), "uint8"), ((O, 37), "int8")], ((2, O), "int8"),
                                       tgt)[0].name
    assert lin(8, AARCH64_DOT) == "qlinear_int8_sdot"
    assert lin(8, AARCH64) == "qlinear_int8_neon"
    assert lin(6, AARCH64_DOT) == lin(6, AARCH64) == lin(8, ZNVER4) == "qlinear_generic"


# ------------------------------------------------------------------ selection by layout
def _conv_types(layout, C=8, O=16, group=1):
    x = ((1, 7, 6, C), "int8") if layout == "NHWC" else ((1, C, 7, 6), "int8")
    w = ((O, C // group, 3, 3), "int8")
    out = ((1, 7, 6, O), "int8") if layout == "NHWC" else ((1, O, 7, 6), "int8")
    attrs = dict(pads=[1, 1, 1, 1], group=group, multiplier=[1 << 30], shift=[20], layout=layout)
    return attrs, [x, w], out


TARGETS = {"znver4": ZNVER4, "llvm": GENERIC, "aarch64": AARCH64, "aarch64-dotprod": AARCH64_DOT}


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("group", [1, 2, 8])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_applicable_kernels_match_the_layout(target, group, layout):
    attrs, in_types, out = _conv_types(layout, group=group, O=8 if group == 8 else 16)
    found = applicable("qconv2d", attrs, in_types, out, TARGETS[target])
    assert found, (target, group, layout)
    assert all(layout in k.layouts for k in found), [(k.name, k.layouts) for k in found]
    assert found[-1].name == f"qconv2d_{layout.lower()}_generic"   # the fallback is always there


def test_selection_per_layout_and_target():
    def pick(layout, target, **kw):
        attrs, in_types, out = _conv_types(layout, **kw)
        return select_kernel("qconv2d", attrs, in_types, out, target)[0].name

    assert pick("NHWC", ZNVER4) == "qconv2d_int8_nhwc_vnni"
    assert pick("NCHW", ZNVER4) == "qconv2d_int8_nchw_vnni"
    assert pick("NHWC", GENERIC) == "qconv2d_nhwc_generic"
    assert pick("NHWC", ZNVER4, group=8, O=8) == "qconv2d_dw_int8_nhwc"
    assert pick("NHWC", GENERIC, group=8, O=8) == "qconv2d_dw_int8_nhwc"
    assert pick("NCHW", ZNVER4, group=8, O=8) == "qconv2d_dw_int8_nchw_x86"
    assert pick("NHWC", ZNVER4, group=2) == "qconv2d_nhwc_generic"
    # the sdot conv has an NHWC variant, and so has the plain NEON (smull/sadalp) conv
    assert pick("NHWC", AARCH64_DOT) == "qconv2d_int8_nhwc_sdot"
    assert pick("NCHW", AARCH64_DOT) == "qconv2d_int8_nchw_sdot"
    assert pick("NHWC", AARCH64) == "qconv2d_int8_nhwc_neon"
    assert pick("NHWC", AARCH64, group=8, O=8) == "qconv2d_dw_int8_nhwc_neon"   # smlal, aarch64_depthwise.py
    # the VNNI NHWC kernel needs a constant weight, like the NCHW one
    attrs, in_types, out = _conv_types("NHWC")
    assert select_kernel("qconv2d", attrs, in_types, out, ZNVER4, constants={})[0].name == "qconv2d_nhwc_generic"


def test_nhwc_pools_never_get_an_nchw_kernel():
    x = ((2, 5, 4, 6), "int8")
    for target in (ZNVER4, GENERIC, AARCH64):
        gap = applicable("qglobal_avg_pool2d", dict(layout="NHWC", multiplier=[1 << 30], shift=[20]), [x],
                         ((2, 1, 1, 6), "int8"), target)
        assert [k.name for k in gap] == ["qglobal_avg_pool2d_nhwc_generic"]
        avg = applicable("qavg_pool2d", dict(layout="NHWC", kernel=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0]),
                         [x, ((2, 3), "int32"), ((2, 3), "int32")], ((2, 2, 2, 6), "int8"), target)
        assert [k.name for k in avg] == ["qavg_pool2d_nhwc_generic"]
        # and an NCHW pool never gets an NHWC kernel
        gap = applicable("qglobal_avg_pool2d", dict(multiplier=[1 << 30], shift=[20]), [((2, 6, 5, 4), "int8")],
                         ((2, 6, 1, 1), "int8"), target)
        assert gap and all("NCHW" in k.layouts for k in gap)


def test_no_nhwc_kernel_means_no_kernel():
    """An op without an NHWC kernel (qlinear, requantize) asked for NHWC: nothing is applicable, and
    select_kernel says so instead of returning an NCHW kernel."""
    attrs = dict(x_zero_point=0, multiplier=[1 << 30], shift=[20], layout="NHWC")
    assert applicable("qlinear", attrs, [((2, 8), "int8"), ((4, 8), "int8")], ((2, 4), "int8"), ZNVER4) == []
    with pytest.raises(NotImplementedError, match="qlinear"):
        select_kernel("qlinear", attrs, [((2, 8), "int8"), ((4, 8), "int8")], ((2, 4), "int8"), ZNVER4)
    with pytest.raises(NotImplementedError, match="requantize"):
        select_kernel("requantize", attrs, [((1, 3, 4, 5), "int8")], ((1, 3, 4, 5), "int8"), GENERIC)


OWN_LAYOUT_OPS = ("resize",)   # compiler/ir/image_ops.py: layout is the camera image's


def test_registry_nhwc_kernels_are_for_layout_ops():
    table = kernels()
    nhwc = {k.name for ks in table.values() for k in ks if "NHWC" in k.layouts}
    assert {"qconv2d_int8_nhwc_vnni", "qconv2d_int8_nhwc_sdot", "qconv2d_dw_int8_nhwc", "qconv2d_nhwc_generic",
            "qglobal_avg_pool2d_nhwc_generic", "qavg_pool2d_nhwc_generic"} <= nhwc
    for op, ks in table.items():
        for k in ks:
            # NCHW44: the Arm sdot conv measured against NHWC (aarch64_nchw44_int8.py); no planner produces it
            assert set(k.layouts) <= {"NCHW", "NHWC"} or k.layouts == ("NCHW44",) and op == "qconv2d", k.name
            if "NHWC" in k.layouts:
                # planned-layout ops, or ops whose own attr says how the user's image is laid out
                assert op in LAYOUT_OPS or op in OWN_LAYOUT_OPS, k.name
                # a generic NHWC fallback exists for the op on every CPU target
                assert any(g.requires <= {"cpu"} and "NHWC" in g.layouts for g in ks), op


def test_preferred_layouts():
    assert preferred_layouts(ZNVER4) == {"qconv2d": "NHWC"}
    assert preferred_layouts(Target.from_tvm({"kind": "llvm", "mtriple": "x86_64-linux-gnu",
                                              "mattr": ["+avx512f", "+avx512vnni"]})) == {"qconv2d": "NHWC"}
    # without VNNI the AVX2 / AVX-512 vpmaddwd conv (x86_avx2_int8.py) is channels-last too
    assert preferred_layouts(Target.from_tvm({"kind": "llvm", "mcpu": "znver4", "mattr": ["-avx512vnni"]})) == {
        "qconv2d": "NHWC"}
    assert preferred_layouts(GENERIC) == {}
    assert preferred_layouts(AARCH64) == {"qconv2d": "NHWC"}
    assert preferred_layouts(AARCH64_DOT) == {"qconv2d": "NHWC"}
    assert preferred_layouts(CUDA) == {}


def test_a_failing_kernel_falls_back_unless_strict(monkeypatch):
    """A builder that raises yields to the next kernel (logged); YUAN_STRICT_KERNELS=1 shows its error."""
    from tvm import te

    from yuan.schedules import registry
    registry.kernels()   # load the kernel modules before swapping the tables
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_BY_NAME", dict(registry._BY_NAME))

    @registry.register_kernel("yuan_test_negate", ("float32",), priority=1)
    def broken_negate(attrs, in_types, out_type, target):
        raise ValueError("bug in the fast path")

    @registry.register_kernel("yuan_test_negate", ("float32",), priority=0)
    def plain_negate(attrs, in_types, out_type, target):
        x = te.placeholder(in_types[0][0], "float32", name="x")
        y = te.compute(x.shape, lambda i: -x[i], name="y")
        return te.create_prim_func([x, y])

    types = ([((4,), "float32")], ((4,), "float32"))
    monkeypatch.delenv("YUAN_STRICT_KERNELS", raising=False)
    assert select_kernel("yuan_test_negate", {}, *types, GENERIC)[0].name == "plain_negate"
    monkeypatch.setenv("YUAN_STRICT_KERNELS", "1")
    with pytest.raises(ValueError, match="bug in the fast path"):
        select_kernel("yuan_test_negate", {"other": 1}, *types, GENERIC)


def test_built_kernels_are_cached_until_cleared(monkeypatch):
    """A node's kernel is built once per process; clear_built_kernels() makes the next selection build it again
    (what an in-process experiment with a patched schedule needs)."""
    from tvm import te

    from yuan.schedules import registry
    registry.kernels()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_BY_NAME", dict(registry._BY_NAME))
    monkeypatch.setattr(registry, "_CACHE", {})   # the other tests keep their built kernels
    built = []

    @registry.register_kernel("yuan_test_double", ("float32",), priority=0)
    def double(attrs, in_types, out_type, target):
        built.append(1)
        x = te.placeholder(in_types[0][0], "float32", name="x")
        return te.create_prim_func([x, te.compute(x.shape, lambda i: x[i] * 2, name="y")])

    types = ([((4,), "float32")], ((4,), "float32"))
    first = select_kernel("yuan_test_double", {}, *types, GENERIC)[1]
    assert select_kernel("yuan_test_double", {}, *types, GENERIC)[1] is first and len(built) == 1
    registry.clear_built_kernels()
    assert select_kernel("yuan_test_double", {}, *types, GENERIC)[1] is not first and len(built) == 2
