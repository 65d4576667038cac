"""The exact int8 Winograd F(4x4, 3x3) on VNNI's int16 dot product (schedules/x86_vnni_winograd_int8.py): bit for
bit the NumPy integer conv on odd shapes, at the int8 extremes up to the recovery bound (one channel group and
two), with a fused residual add; the transform bounds it relies on; where the registry picks it."""
import numpy as np
import pytest
import tvm

from tests.schedules.conftest import DEV, HAS_VNNI, HOST, ref_qconv, requant_attrs
from yuan.compiler.backends.pipelines import TIR_PIPELINE
from yuan.schedules import kernel_inputs, registry, select_kernel
from yuan.schedules import x86_vnni_winograd_int8 as W

NAME = "qconv2d_int8_nhwc_winograd_vnni"
needs_vnni = pytest.mark.skipif(not HAS_VNNI, reason="host lacks avx512_vnni")


def run_winograd(x, w, b, attrs, residual=None):
    """The kernel built for this node whatever its rule says (registry.build_kernel), run here."""
    inputs = [x, w, b] + ([residual] if residual is not None else [])
    in_types = [None if a is None else (a.shape, str(a.dtype)) for a in inputs]
    out_type = (ref_qconv(x, w, b, attrs).shape, attrs["out_dtype"])
    registry._ensure_loaded()
    f = registry.build_kernel(registry.get_kernel(NAME), "qconv2d", attrs, in_types, out_type, HOST)
    plan = kernel_inputs(f, attrs, in_types, inputs)
    lib = tvm.compile(tvm.IRModule({"main": f}), HOST.tvm, tir_pipeline=TIR_PIPELINE)
    out = tvm.runtime.empty(out_type[0], out_type[1], DEV)
    lib["main"](*[tvm.runtime.tensor(np.ascontiguousarray(inputs[p] if isinstance(p, int) else p), DEV)
                  for p in plan], out)
    return out.numpy()


CASES = [
    # x NHWC, O, pads, bias, per-channel, x dtype, out dtype
    ((1, 12, 9, 40), 32, [1, 1, 1, 1], True, True, "int8", "int8"),        # C = 40, 12 x 9 map (partial tiles)
    ((2, 10, 7, 20), 16, [1, 1, 1, 1], False, False, "uint8", "uint8"),    # batch 2, uint8, per-tensor
    ((1, 9, 11, 3), 16, [0, 0, 0, 0], True, True, "int8", "int8"),         # C = 3, no padding (7 x 9 out)
    ((1, 8, 8, 33), 48, [2, 0, 1, 1], True, True, "uint8", "int8"),        # asymmetric pads, O = 48
    ((1, 14, 14, 128), 128, [1, 1, 1, 1], True, True, "int8", "int8"),     # weights past L2: channel blocks, 16 tiles
]


@needs_vnni
@pytest.mark.parametrize("case", range(len(CASES)))
def test_exact_on_odd_shapes(case):
    xs, O, pads, has_b, per_ch, xdt, odt = CASES[case]
    rng = np.random.default_rng(case)
    info = np.iinfo(xdt)
    x = rng.integers(info.min, info.max + 1, xs).astype(xdt)
    w = rng.integers(-128, 128, (O, xs[3], 3, 3)).astype("int8")
    b = rng.integers(-5000, 5000, O).astype("int32") if has_b else None
    zx = -7 if xdt == "int8" else 131
    attrs = dict(layout="NHWC", pads=pads, **requant_attrs(rng, O if per_ch else 1, odt, zx, (36, 42)))
    ref = ref_qconv(x, w, b, attrs)
    assert ref.std() > 0
    np.testing.assert_array_equal(run_winograd(x, w, b, attrs), ref)


@needs_vnni
@pytest.mark.parametrize("xdt, zx", [("int8", -128), ("int8", 127), ("uint8", 0), ("uint8", 255)])
def test_exact_with_extreme_padding_values(xdt, zx):
    """d' = x - m read in place by the input transform: the padding value zx - m at both ends of int8's range
    (and 24 channels: the padded ones read as 0)."""
    rng = np.random.default_rng(zx + 300)
    info = np.iinfo(xdt)
    x = rng.integers(info.min, info.max + 1, (1, 6, 7, 24)).astype(xdt)
    w = rng.integers(-128, 128, (16, 24, 3, 3)).astype("int8")
    attrs = dict(layout="NHWC", pads=[1, 1, 1, 1], **requant_attrs(rng, 16, "int8", zx, (36, 42)))
    ref = ref_qconv(x, w, None, attrs)
    assert ref.std() > 0
    np.testing.assert_array_equal(run_winograd(x, w, None, attrs), ref)


@needs_vnni
@pytest.mark.parametrize("C, groups", [(224, 1), (256, 2), (512, 3)])
def test_exact_at_the_recovery_bound(C, groups):
    """|Y| near 9 * 128 * 128 * C (x mostly -128 against weights of -128): just under 2^25 in one group
    (C = 224), ~37 M = 1.1 * 2^25 over two groups (C = 256, where one group would wrap), ~74 M over three
    (C = 512, the issue's large-C case)."""
    assert W.channel_groups(C, 128)[0] == groups
    rng = np.random.default_rng(C)
    x = np.where(rng.random((1, 8, 8, C)) < 0.99, -128, 127).astype("int8")
    w = np.where(rng.random((16, C, 3, 3)) < 0.5, 127, -128).astype("int8")
    w[:8] = -128   # these output channels reach the largest |Y|: x mostly -128 times -128
    attrs = dict(layout="NHWC", pads=[1, 1, 1, 1], x_zero_point=0, multiplier=[1 << 30] * 16, shift=[48] * 16,
                 y_zero_point=0, out_dtype="int8", out_min=-128, out_max=127)
    acc = ref_qconv(x, w, None, dict(attrs, multiplier=[1 << 30] * 16, shift=[31] * 16, out_dtype="int32",
                                     out_min=-2 ** 31, out_max=2 ** 31 - 1))
    peak = np.abs(acc).max() * 2   # ~|Y|: close to the bound, past 2^25 with two groups
    assert peak > 0.95 * 9 * 128 * 128 * C and (peak > 2 ** 25) == (groups > 1)
    ref = ref_qconv(x, w, None, attrs)
    assert len(np.unique(ref)) > 10
    np.testing.assert_array_equal(run_winograd(x, w, None, attrs), ref)


@needs_vnni
def test_fused_residual_add():
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (1, 9, 10, 32)).astype("int8")
    w = rng.integers(-127, 128, (32, 32, 3, 3)).astype("int8")
    b = rng.integers(-5000, 5000, 32).astype("int32")
    attrs = dict(layout="NHWC", pads=[1, 1, 1, 1], **requant_attrs(rng, 32, "int8", -3, (38, 42)))
    qadd = dict(a_zero_point=4, b_zero_point=-6, a_multiplier=1518500250, b_multiplier=1300000000, shift=31,
                y_zero_point=-3, out_min=-3, out_max=127, out_dtype="int8")
    conv = ref_qconv(x, w, b, attrs).astype(np.int64)
    residual = rng.integers(-128, 128, conv.shape).astype(np.int8)
    from tests.schedules.test_requant import qadd_spec
    ref = qadd_spec(conv - 4, residual.astype(np.int64) + 6, 1518500250, 1300000000, 31, -3, -3, 127).astype(np.int8)
    attrs["fused_add"] = dict(qadd=qadd, conv_input=0, conv_dtype="int8", residual_dtype="int8")
    np.testing.assert_array_equal(run_winograd(x, w, b, attrs, residual), ref)


def test_transform_bounds_fit_int16_and_recovery_constants():
    AT, SG, BT, scales = W.int_matrices()
    assert [abs(s) for s in scales] == [4, 6, 6, 24, 24, 1]
    assert np.abs(BT).sum(1).max() ** 2 * 128 < 2 ** 15                 # |V| <= 12800
    assert np.abs(SG).sum(1).max() ** 2 * 128 < 2 ** 15                 # |U'| <= 6272
    L, r = W.output_scales()
    inverse, shift = W.recovery_constants()
    assert L == 576 and (L * inverse) % 2 ** 32 == 1 << shift and shift == 6
    assert W.max_channels(128) == 227 and 9 * 128 * 128 * 227 < 2 ** 25 <= 9 * 128 * 128 * 228


class _Bound:
    """An int16 value known only by the bound on its magnitude: every partial sum of an expression over
    _Bounds records its own bound in `seen` (the factored transform rows must keep each below 2^15)."""
    seen = []

    def __init__(self, b):
        self.b = b
        _Bound.seen.append(b)

    def __add__(self, other):
        return _Bound(self.b + other.b)

    __sub__ = __add__

    def __mul__(self, c):
        return _Bound(self.b * abs(c))


def test_factored_input_transform_partial_sums_fit_int16():
    """winograd_common.transform_rows' factored BT (shared differences): both passes of the input transform,
    d' within D = 128, then the first pass's rows (|t| <= 10 D) as the second's inputs: every partial sum fits
    int16, and the factored rows are BT's (checked at import on random integers, here on a unit basis)."""
    from yuan.schedules.winograd_common import FACTORED_ROWS, _key
    _, _, BT, _ = W.int_matrices()
    rows = FACTORED_ROWS[_key(BT)]
    assert np.array_equal(np.array(rows(list(np.eye(6, dtype=np.int64)), int)), BT)
    _Bound.seen = []
    first = rows([_Bound(128) for _ in range(6)], int)
    assert max(v.b for v in first) <= 1280 == np.abs(BT).sum(1).max() * 128
    rows([_Bound(max(v.b for v in first)) for _ in range(6)], int)
    assert max(_Bound.seen) < 2 ** 15, max(_Bound.seen)


@pytest.mark.parametrize("which,dtype", [("BT", "int16"), ("ATr", "uint32")])
def test_factored_rows_compile_to_the_matrix_product(which, dtype):
    """transform_rows as TVM compiles it (rows unrolled to constants, vectorised, on this host; no VNNI needed)
    equals the matrix product in the dtype's wrapping arithmetic: TVM 0.27 mis-simplified a uint32 row of the
    plain lincomb once (winograd_common.lincomb), so the factored rows are checked after TVM, not only in NumPy."""
    from tvm import s_tir, te
    from yuan.schedules.winograd_common import transform_rows
    AT, _, BT, _ = W.int_matrices()
    M = BT if which == "BT" else AT * W.output_scales()[1][None, :]
    rows, cols = M.shape
    t = te.placeholder((cols, 64), dtype, "t")
    y = te.compute((rows, 64), lambda j, i: transform_rows(M, j, lambda e: t[e, i], dtype), name="y")
    sch = s_tir.Schedule(te.create_prim_func([t, y]))
    j, i = sch.get_loops(sch.get_sblock("y"))
    sch.unroll(j)
    sch.vectorize(i)
    fn = tvm.compile(sch.mod, "llvm")
    info = np.iinfo(dtype)
    bound = 1280 if dtype == "int16" else info.max   # int16: the first pass's outputs bound the second's inputs
    rng = np.random.default_rng(11)
    data = rng.integers(-bound if dtype == "int16" else 0, bound, (cols, 64), endpoint=True).astype(dtype)
    out = tvm.runtime.empty((rows, 64), dtype, DEV)
    fn(tvm.runtime.tensor(data, DEV), out)
    ref = (M.astype(np.int64) @ data.astype(np.int64)) % (1 << info.bits)
    np.testing.assert_array_equal(out.numpy().astype(np.int64) % (1 << info.bits), ref)


@needs_vnni
def test_registry_picks_it_where_it_wins():
    attrs = dict(layout="NHWC", pads=[1, 1, 1, 1], x_zero_point=-128, multiplier=[1 << 30], shift=[40],
                 y_zero_point=0, out_dtype="int8")

    def pick(C, H):
        in_types = [((1, H, H, C), "int8"), ((C, C, 3, 3), "int8"), ((C,), "int32")]
        return select_kernel("qconv2d", attrs, in_types, ((1, H, H, C), "int8"), HOST)[0].name

    assert pick(64, 56) == NAME and pick(128, 28) == NAME
    assert pick(256, 14) == "qconv2d_int8_nhwc_vnni" and pick(512, 7) == "qconv2d_int8_nhwc_vnni"


@needs_vnni
@pytest.mark.parametrize("C, O, H", [(512, 32, 28), (32, 512, 28), (224, 64, 28), (128, 128, 28), (64, 64, 30)])
def test_every_node_it_accepts_builds(C, O, H):
    """applies() only says yes where the schedule builds (wide C with large weights is refused, not a crash)."""
    attrs = dict(layout="NHWC", pads=[1, 1, 1, 1], x_zero_point=-128, multiplier=[1 << 30], shift=[40],
                 y_zero_point=0, out_dtype="int8")
    in_types = [((1, H, H, C), "int8"), ((O, C, 3, 3), "int8"), ((O,), "int32")]
    out_type = ((1, H, H, O), "int8")
    if W.applies(attrs, in_types, out_type):
        registry._ensure_loaded()
        registry.build_kernel(registry.get_kernel(NAME), "qconv2d", attrs, in_types, out_type, HOST)
    else:
        assert (C, O) == (512, 32)   # 3 channel groups with 1.3 MB of transformed weights


def test_refuses_a_zero_point_outside_the_dtype():
    """A zero point outside int8's range widens d' = x - m past 128: V would leave int16, so the direct kernel
    takes the node."""
    attrs = dict(layout="NHWC", pads=[1, 1, 1, 1], multiplier=[1 << 30], shift=[40], y_zero_point=0,
                 out_dtype="int8")
    in_types = [((1, 28, 28, 64), "int8"), ((64, 64, 3, 3), "int8"), ((64,), "int32")]
    out_type = ((1, 28, 28, 64), "int8")
    assert W.applies(dict(attrs, x_zero_point=-128), in_types, out_type)
    assert not W.applies(dict(attrs, x_zero_point=-400), in_types, out_type)
