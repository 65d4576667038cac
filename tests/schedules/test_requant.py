"""The 32-bit requantize epilogue (schedules/requant.py, requant32) equals the integer spec
((acc * m + 2^(n-1)) >> n) + zy, clamped, for every int32 acc, m in [0, 2^31) and n in [33, 62]: edge values
(Python integers) and random sweeps (NumPy int64), and the VNNI conv that uses it stays bit-exact and keeps
its epilogue in 32-bit lanes."""
import numpy as np
import pytest
import tvm
from tvm import s_tir, te

from tests.schedules.conftest import HAS_VNNI, HOST, build, check_qconv, execute, qconv_inputs, ref_qconv, \
    ref_requant, run
from yuan.compiler.backends.pipelines import TIR_PIPELINE
from yuan.schedules.requant import EXACT32_SHIFTS, QADD32_SHIFTS, exact32_applies, qadd32, qadd_value, requant32, \
    requant32_rounded, rounded32_applies

I32_MIN, I32_MAX = -2 ** 31, 2 ** 31 - 1
SHIFTS = np.arange(EXACT32_SHIFTS[0], EXACT32_SHIFTS[1] + 1)


def spec(acc, m, n, zy, lo, hi):
    """SPEC §4 in NumPy int64: |acc * m| < 2^62, so acc * m + 2^(n-1) cannot overflow."""
    acc, m, n = (np.asarray(v, np.int64) for v in (acc, m, n))
    return np.clip(((acc * m + (np.int64(1) << (n - 1))) >> n) + zy, lo, hi)


def edge_accs():
    powers = [s * (2 ** k) + d for k in range(31) for s in (1, -1) for d in (-1, 0, 1)]
    threes = [s * 3 * 2 ** k for k in range(30) for s in (1, -1)]   # rounding ties for m = 2^30
    vals = [I32_MIN, I32_MIN + 1, I32_MAX, I32_MAX - 1, 0] + powers + threes
    return sorted({v for v in vals if I32_MIN <= v <= I32_MAX})


EDGE_MULTS = [0, 1, 2, 3, 2 ** 29, 2 ** 30 - 1, 2 ** 30, 2 ** 30 + 1, 3 * 2 ** 29, 2 ** 31 - 2, 2 ** 31 - 1,
              1518500250, 1073741827]


def run_elementwise(fn, arrays, out_dtype, in_dtype="int32"):
    """y[i] = fn(*(array[i] for array in arrays)) compiled for this CPU (vectorised, as in the kernels)."""
    size = len(arrays[0])
    ins = [te.placeholder((size,), in_dtype, f"in{k}") for k in range(len(arrays))]
    y = te.compute((size,), lambda i: fn(*(t[i] for t in ins)), name="y")
    sch = s_tir.Schedule(te.create_prim_func(ins + [y]).with_attr("global_symbol", "elementwise"))
    sch.vectorize(sch.split(sch.get_loops(sch.get_sblock("y"))[0], [None, 16])[1])
    lib = tvm.compile(sch.mod, HOST.tvm, tir_pipeline=TIR_PIPELINE)
    return execute(sch.mod["main"], lib, [np.asarray(v, in_dtype) for v in arrays], ((size,), out_dtype))


def run_requant32(acc, m, n, zy, lo, hi, out_dtype):
    return run_elementwise(lambda a, mm, nn: requant32(a, mm, nn, zy, lo, hi, out_dtype), [acc, m, n], out_dtype)


def edge_grid():
    acc, m, n = np.meshgrid(np.array(edge_accs(), np.int64), np.array(EDGE_MULTS, np.int64), SHIFTS, indexing="ij")
    return acc.ravel(), m.ravel(), n.ravel()


def random_cases(rng, count):
    """Uniform acc, and accumulators next to a rounding tie ((q + 1/2) * 2^n / m, +-1) of the same m, n."""
    m = rng.integers(0, 2 ** 31, count)
    n = rng.integers(EXACT32_SHIFTS[0], EXACT32_SHIFTS[1] + 1, count)
    acc = rng.integers(I32_MIN, I32_MAX + 1, count)
    half = count // 2
    q = rng.integers(-300, 300, half).astype(np.float64)
    tie = np.floor((q + 0.5) * np.exp2(n[:half].astype(np.float64)) / np.maximum(m[:half], 1))
    tie = np.clip(tie + rng.integers(-1, 2, half), I32_MIN, I32_MAX)
    acc[:half] = np.where(np.isfinite(tie), tie, 0).astype(np.int64)
    return acc, m, n


@pytest.mark.parametrize("zy", [0, 2 ** 30 - 1, -(2 ** 30 - 1)])
def test_requant32_equals_spec_int32_range(zy):
    acc, m, n = edge_grid()
    racc, rm, rn = random_cases(np.random.default_rng(abs(zy) % 97), 400_000)
    acc, m, n = np.concatenate([acc, racc]), np.concatenate([m, rm]), np.concatenate([n, rn])
    y = run_requant32(acc, m, n, zy, I32_MIN, I32_MAX, "int32")
    np.testing.assert_array_equal(y, spec(acc, m, n, zy, I32_MIN, I32_MAX))


def test_requant32_int8_clamp():
    acc, m, n = edge_grid()
    racc, rm, rn = random_cases(np.random.default_rng(5), 200_000)
    acc, m, n = np.concatenate([acc, racc]), np.concatenate([m, rm]), np.concatenate([n, rn])
    ref = spec(acc, m, n, -5, -120, 127)
    assert len(np.unique(ref)) == 248   # every output code occurs, both clamps bite
    np.testing.assert_array_equal(run_requant32(acc, m, n, -5, -120, 127, "int8"), ref)


@pytest.mark.parametrize("zy, max_shift", [(0, 62), (-1, 62), (3, 60), (-128, 55), (255, 54), (-5, 59)])
def test_requant32_rounded_equals_spec(zy, max_shift):
    """The rounding and zero point folded into one add (requant32_rounded) wherever rounded32_applies: every
    shift up to the largest it allows for this zy (the next one is refused)."""
    assert rounded32_applies([max_shift], zy) and not rounded32_applies([max_shift + 1], zy)
    acc, m, n = edge_grid()
    racc, rm, rn = random_cases(np.random.default_rng(zy % 101), 300_000)
    acc, m, n = np.concatenate([acc, racc]), np.concatenate([m, rm]), np.concatenate([n, rn])
    keep = n <= max_shift
    acc, m, n = acc[keep], m[keep], n[keep]
    fn = lambda a, mm, nn: requant32_rounded(a, mm, nn, zy, I32_MIN, I32_MAX, "int32")   # noqa: E731
    np.testing.assert_array_equal(run_elementwise(fn, [acc, m, n], "int32"), spec(acc, m, n, zy, I32_MIN, I32_MAX))
    fn8 = lambda a, mm, nn: requant32_rounded(a, mm, nn, zy, -120, 127, "int8")   # noqa: E731
    np.testing.assert_array_equal(run_elementwise(fn8, [acc, m, n], "int8"), spec(acc, m, n, zy, -120, 127))


def test_requantize_of_int32_beyond_int32_after_the_zero_point():
    """requantize's accumulator x - zx is int64 (it may leave int32): the epilogue keeps the int64 form."""
    x = np.array([I32_MAX, I32_MAX - 5, I32_MIN, 0, 123456789], np.int32)
    attrs = dict(x_zero_point=-1000, multiplier=[2 ** 31 - 1], shift=[40], y_zero_point=0, out_min=I32_MIN,
                 out_max=I32_MAX, out_dtype="int32")
    y = run("requantize", attrs, [x], ((5,), "int32"), HOST)
    np.testing.assert_array_equal(y, ref_requant(x.astype(np.int64) + 1000, [2 ** 31 - 1], [40], 0, I32_MIN, I32_MAX))


def test_exact32_applies_only_inside_its_proof():
    assert exact32_applies([2 ** 30, 2 ** 31 - 1], [33, 62], 2 ** 30 - 1)
    assert exact32_applies([0], [40], -(2 ** 30 - 1))
    assert not exact32_applies([2 ** 30, 2 ** 30], [33, 32], 0)     # one channel below 33
    assert not exact32_applies([2 ** 30], [63], 0)
    assert not exact32_applies([-1], [40], 0)
    assert not exact32_applies([2 ** 31], [40], 0)
    assert not exact32_applies([2 ** 30], [40], 2 ** 30)


def qadd_spec(A, B, ma, mb, n, zy, lo, hi):
    """SPEC §5 add with Python-sized integers (NumPy int64: |A * ma + B * mb| < 2^41)."""
    A, B = np.asarray(A, np.int64), np.asarray(B, np.int64)
    return np.clip(((A * ma + B * mb + (1 << (n - 1))) >> n) + zy, lo, hi)


QADD_CASES = [   # (ma, mb, n, zy, lo, hi, out dtype): multipliers and shifts at the ends of qadd32's range
    (2 ** 31 - 1, 2 ** 31 - 1, QADD32_SHIFTS[0], 2 ** 30 - 1, I32_MIN, I32_MAX, "int32"),
    (2 ** 31 - 1, 2 ** 31 - 1, QADD32_SHIFTS[1], -(2 ** 30 - 1), I32_MIN, I32_MAX, "int32"),
    (2 ** 30, 0, 31, 0, I32_MIN, I32_MAX, "int32"),
    (1518500250, 2 ** 16 - 1, 30, 3, -128, 127, "int8"),
    (2 ** 16, 2 ** 31 - 2, 18, -7, -20, 127, "int8"),
    (1073741827, 1431655765, 32, 0, 0, 255, "uint8"),
    (0, 1, 45, 0, I32_MIN, I32_MAX, "int32"),
]


@pytest.mark.parametrize("case", QADD_CASES)
def test_qadd32_equals_spec_on_every_input_pair(case):
    ma, mb, n, zy, lo, hi, odt = case
    A, B = (v.ravel() for v in np.meshgrid(np.arange(-255, 256), np.arange(-255, 256), indexing="ij"))
    y = run_elementwise(lambda a, b: qadd32(a, b, ma, mb, n, zy, lo, hi, odt), [A, B], odt)
    np.testing.assert_array_equal(y, qadd_spec(A, B, ma, mb, n, zy, lo, hi))


@pytest.mark.parametrize("n, z, in_dtype", [(31, (-128, 127), "int8"), (12, (3, -4), "int8"), (31, (0, 0), "int16")])
def test_qadd_value_either_form_equals_spec(n, z, in_dtype):
    """qadd_value picks qadd32 only inside its proof (8-bit codes, n in [17, 46]); int64 elsewhere."""
    info = np.iinfo(in_dtype)
    rng = np.random.default_rng(n)
    a, b = (rng.integers(info.min, info.max + 1, 50_000) for _ in range(2))
    ma, mb = 2 ** 31 - 1, 1518500250
    y = run_elementwise(lambda x, w: qadd_value(x, w, z[0], z[1], (int(info.min), int(info.max)), ma, mb, n, 5,
                                                -128, 127, "int8"), [a, b], "int8", in_dtype)
    np.testing.assert_array_equal(y, qadd_spec(a - z[0], b - z[1], ma, mb, n, 5, -128, 127))


needs_vnni = pytest.mark.skipif(not HAS_VNNI, reason="host lacks avx512_vnni")
ZOO_SHIFTS = (33, 46)   # the zoo's convs have n in [35, 45]


@needs_vnni
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("channels", [48, 36])
def test_vnni_conv_with_requant32_exact_and_32bit(layout, channels):
    case = ((1, 20, 9, 8), (channels, 20, 3, 3), dict(pads=[1, 1, 1, 1]), True, True, "int8", "int8")
    rng = np.random.default_rng(3)
    x, w, b, attrs = qconv_inputs(rng, case, ZOO_SHIFTS)
    attrs["multiplier"][0] = 2 ** 31 - 1
    attrs["shift"][0] = 33
    b[:] = rng.integers(-2 ** 22, 2 ** 22, b.shape)   # large accumulators: saturation at both ends
    name = "qconv2d_int8_nchw_vnni"
    if layout == "NHWC":
        x, attrs, name = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), dict(attrs, layout="NHWC"), \
            "qconv2d_int8_nhwc_vnni"
    asm = check_qconv(x, w, b, attrs, HOST, name).mod.inspect_source("asm")
    if channels % 16 == 0:   # the vectorised write-back (O % 16 != 0 writes the last tile element by element)
        assert "vpmuldq" in asm and "vpsravd" in asm
        for wide in ("vpsravq", "vpmaxsq", "vpminsq", "vpmullq"):   # no 64-bit shift / clamp / multiply
            assert wide not in asm, wide
        # the high product in lane pairs (compiler/backends/pipelines.py), not widened to 64-bit lanes
        assert "vpmovqd" not in asm and "vpmovzxdq" not in asm


@needs_vnni
@pytest.mark.parametrize("layout, channels, conv_input", [("NCHW", 36, 0), ("NCHW", 32, 1), ("NHWC", 36, 1),
                                                          ("NHWC", 32, 0)])
def test_vnni_conv_with_fused_residual_add(layout, channels, conv_input):
    """attrs fused_add: the kernel writes qadd(conv, residual) (or qadd(residual, conv)), the conv's int8
    code computed first, as the unfused graph does."""
    case = ((1, 20, 9, 8), (channels, 20, 3, 3), dict(pads=[1, 1, 1, 1]), True, True, "int8", "int8")
    rng = np.random.default_rng(channels + conv_input)
    x, w, b, attrs = qconv_inputs(rng, case, ZOO_SHIFTS)
    qadd = dict(a_zero_point=4, b_zero_point=-6, a_multiplier=1518500250, b_multiplier=1300000000, shift=31,
                y_zero_point=-3, out_min=-3, out_max=127, out_dtype="int8")
    attrs["fused_add"] = dict(qadd=qadd, conv_input=conv_input, conv_dtype="int8", residual_dtype="int8")
    if layout == "NHWC":
        x, attrs = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), dict(attrs, layout="NHWC")
    conv = ref_qconv(x, w, b, attrs).astype(np.int64)
    residual = rng.integers(-128, 128, conv.shape).astype(np.int8)
    A, B = (conv, residual.astype(np.int64)) if conv_input == 0 else (residual.astype(np.int64), conv)
    ref = qadd_spec(A - 4, B + 6, 1518500250, 1300000000, 31, -3, -3, 127).astype(np.int8)
    assert np.unique(ref).size > 100
    out_type = (ref.shape, "int8")
    f, lib, args = build("qconv2d", attrs, [x, w, b, residual], out_type, HOST, f"qconv2d_int8_{layout.lower()}_vnni")
    np.testing.assert_array_equal(execute(f, lib, args, out_type), ref)
