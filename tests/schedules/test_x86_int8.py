"""x86 int8 fast paths (schedules/x86_int8.py): the VNNI conv in both layouts (bit-exact, vpdpbusd in the
asm) and the NCHW depthwise qconv2d."""
import numpy as np
import pytest

from tests.schedules.conftest import HAS_VNNI, HOST, check_qconv, nhwc_case, qconv_inputs, ref_qconv
from yuan.schedules import kernel_inputs, select_kernel

RNG = np.random.default_rng(1)
needs_vnni = pytest.mark.skipif(not HAS_VNNI, reason="host lacks avx512_vnni")

VNNI_CASES = [
    # x shape (NCHW), w shape, conv attrs, bias, per-channel, x dtype, out dtype
    ((1, 8, 7, 6), (32, 8, 3, 3), dict(pads=[1, 1, 1, 1]), True, True, "int8", "int8"),
    ((2, 4, 9, 8), (16, 4, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2]), False, False,
     "uint8", "uint8"),
    ((1, 12, 5, 5), (16, 12, 1, 1), dict(), True, False, "int8", "int8"),
    # C not a multiple of 4 (RGB stem), O not a multiple of 16
    ((1, 3, 20, 18), (16, 3, 7, 7), dict(strides=[2, 2], pads=[3, 3, 3, 3]), True, True, "int8", "int8"),
    ((1, 5, 9, 8), (24, 5, 3, 3), dict(pads=[1, 1, 1, 1]), True, True, "int8", "int8"),
    ((2, 8, 7, 9), (8, 8, 1, 1), dict(strides=[2, 2]), False, False, "uint8", "uint8"),
    # C = 12, O = 20, dilation 2, asymmetric pads
    ((1, 12, 9, 10), (20, 12, 3, 3), dict(pads=[2, 0, 1, 2], dilations=[2, 2]), True, True, "int8", "int8"),
    # C = 6, O = 33, stride 2 and pads wider on one side
    ((1, 6, 11, 7), (33, 6, 3, 3), dict(strides=[2, 2], pads=[1, 2, 0, 1]), True, False, "uint8", "uint8"),
    # kernel columns folded into the reduction (column_fold.py): 5 x 3 -> 16, dilation along H only
    ((1, 5, 9, 11), (20, 5, 3, 3), dict(strides=[2, 2], pads=[1, 2, 0, 1], dilations=[2, 1]), True, True,
     "int8", "int8"),
    # C = 1, stride 2 along W only, uint8; a 7x7 stem on a 7x7 image (1x1 output map)
    ((2, 1, 8, 13), (17, 1, 5, 5), dict(strides=[1, 2], pads=[2, 2, 2, 2]), False, True, "uint8", "uint8"),
    ((1, 3, 7, 7), (16, 3, 7, 7), dict(), True, True, "int8", "int8"),
    # dilation along W: not folded
    ((1, 3, 9, 12), (16, 3, 3, 3), dict(pads=[1, 2, 1, 2], dilations=[1, 2]), True, True, "int8", "int8"),
]


@needs_vnni
@pytest.mark.parametrize("case", range(len(VNNI_CASES)))
def test_qconv2d_nchw_vnni_exact(case):
    x, w, b, attrs = qconv_inputs(RNG, VNNI_CASES[case])
    lib = check_qconv(x, w, b, attrs, HOST, "qconv2d_int8_nchw_vnni")
    if case == 0:
        assert "vpdpbusd" in lib.mod.inspect_source("asm")


@needs_vnni
@pytest.mark.parametrize("case", range(len(VNNI_CASES)))
def test_qconv2d_nhwc_vnni_exact(case):
    x, w, b, attrs = qconv_inputs(RNG, nhwc_case(VNNI_CASES[case]))
    lib = check_qconv(x, w, b, dict(attrs, layout="NHWC"), HOST, "qconv2d_int8_nhwc_vnni")
    if case == 0:
        assert "vpdpbusd" in lib.mod.inspect_source("asm")


@needs_vnni
@pytest.mark.parametrize("case, folded_kw", [(3, 1), (8, 1), (11, 3)])
def test_vnni_folds_kernel_columns_of_few_channel_convs(case, folded_kw):
    """C * KW rounded up to 4 once (the 7x7 RGB stem: 21 -> 24) beats C rounded up per column (28): the
    packed weight then has one kernel column of Kp = C * KW rounded up "channels"."""
    x, w, b, attrs = qconv_inputs(RNG, VNNI_CASES[case])
    in_types = [(x.shape, str(x.dtype)), (w.shape, "int8"), None if b is None else (b.shape, "int32")]
    out_type = (ref_qconv(x, w, b, attrs).shape, attrs["out_dtype"])
    f = select_kernel("qconv2d", attrs, in_types, out_type, HOST)[1]
    packed = kernel_inputs(f, attrs, in_types, [None, w, b])[1]
    O, C, KH, KW = w.shape
    kp = -(-C * KW // 4) * 4 if folded_kw == 1 else -(-C // 4) * 4
    assert packed.shape == (-(-O // 16), KH, folded_kw, kp // 4, 16, 4)


DW_CASES = [
    # x shape, w shape, conv attrs (group = C), bias, per-channel, x dtype, out dtype
    ((1, 8, 13, 12), (8, 1, 3, 3), dict(group=8, pads=[1, 1, 1, 1]), True, True, "int8", "int8"),
    ((2, 6, 11, 10), (12, 1, 3, 3), dict(group=6, strides=[2, 2], pads=[0, 1, 1, 1]), False, False, "uint8", "uint8"),
    ((1, 4, 9, 30), (4, 1, 5, 3), dict(group=4, strides=[1, 2], pads=[2, 1, 2, 1], dilations=[2, 1]), True, False,
     "int8", "uint8"),
    ((1, 16, 7, 7), (16, 1, 3, 3), dict(group=16, strides=[2, 2], pads=[1, 1, 1, 1]), True, True, "uint8", "int8"),
]


@pytest.mark.parametrize("case", range(len(DW_CASES)))
def test_dwconv2d_int8_nchw_exact(case):
    x, w, b, attrs = qconv_inputs(RNG, DW_CASES[case], shift=(8, 13))
    check_qconv(x, w, b, attrs, HOST, "qconv2d_dw_int8_nchw_x86")


@needs_vnni
def test_vnni_conv_exact_on_several_threads():
    """The parallel loops (image x row x channel block; the staging over pixels) split a 7x7 map's work over
    2 threads (21 chunks: uneven) and the outputs stay bit-exact, in both layouts (a fresh process: TVM sizes
    its thread pool once, at most one thread per core)."""
    import os
    import subprocess
    import sys
    code = (
        "import numpy as np\n"
        "from yuan.runtime.threads import num_threads\n"
        "from tests.schedules.conftest import HOST, check_qconv, nhwc_case, qconv_inputs\n"
        "print('threads', num_threads())\n"
        "rng = np.random.default_rng(5)\n"
        "for case in [((1, 20, 7, 7), (40, 20, 3, 3), dict(pads=[1, 1, 1, 1]), True, True, 'int8', 'int8'),\n"
        "             ((2, 8, 5, 9), (48, 8, 1, 1), dict(), False, True, 'uint8', 'uint8')]:\n"
        "    x, w, b, attrs = qconv_inputs(rng, case)\n"
        "    check_qconv(x, w, b, attrs, HOST, 'qconv2d_int8_nchw_vnni')\n"
        "    x, w, b, attrs = qconv_inputs(rng, nhwc_case(case))\n"
        "    check_qconv(x, w, b, dict(attrs, layout='NHWC'), HOST, 'qconv2d_int8_nhwc_vnni')\n"
        "print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, TVM_NUM_THREADS="2"))
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]
    if "threads 2" not in res.stdout:
        pytest.skip("one core: the kernels ran on one thread")
