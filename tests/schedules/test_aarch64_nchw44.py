"""The NCHW44 sdot conv (schedules/aarch64_nchw44_int8.py): selected only for layout "NCHW44" (which no planner
produces), indexed sdot in its asm, and bit-exact under qemu -cpu cortex-a76 against the NumPy integer reference
(computed on NCHW, repacked to NCHW44 here) on odd channel counts, strides 1 and 2, padding, dilation, 1x1 and
7x7 maps. The kernel calls run as one library of bare calls (compiler/kernel_module.py)."""
import numpy as np
import pytest

from yuan.compiler.kernel_module import KernelCall, kernel_library
from yuan.schedules import kernel_inputs, preferred_layouts, select_kernel
from yuan.schedules.aarch64_nchw44_int8 import NAME, TILES, nchw44_tile
from tests.schedules.conftest import (AARCH64, AARCH64_DOT, ZNVER4, compile_kernel, int_codes, out_shape, ref_qconv,
                                      requant_attrs)

RNG = np.random.default_rng(44)

CASES = [
    # x shape (NCHW), w shape, conv attrs, x dtype
    ((1, 6, 7, 7), (10, 6, 3, 3), dict(pads=[1, 1, 1, 1]), "int8"),                      # C, O % 4 != 0, 7x7
    ((1, 20, 9, 11), (12, 20, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1]), "uint8"),  # stride 2
    ((2, 16, 7, 7), (24, 16, 1, 1), {}, "int8"),                                          # 1x1, batch 2
    ((1, 12, 14, 14), (8, 12, 1, 1), dict(strides=[2, 2]), "uint8"),                      # 1x1 s2 -> 7x7
    ((1, 7, 10, 9), (6, 7, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 2]), "int8"),
    ((1, 8, 12, 13), (16, 8, 3, 3), dict(strides=[2, 2], pads=[2, 2, 2, 2], dilations=[2, 2]), "uint8"),
]


def _nchw44(a, fill):
    """NCHW -> [N, C/4, H, W, 4] with the padding channels set to fill (written out here, not the kernel's)."""
    n, c, h, w = a.shape
    p = np.concatenate([a, np.full((n, -c % 4, h, w), fill, a.dtype)], axis=1)
    return p.reshape(n, p.shape[1] // 4, 4, h, w).transpose(0, 1, 3, 4, 2).copy()


def _types(xs, ws, cattrs, xdt):
    attrs = dict(cattrs, layout="NCHW44", **requant_attrs(RNG, ws[0], "int8", -7 if xdt == "int8" else 131, (38, 41)))
    n, o, oh, ow = out_shape(xs, ws, cattrs)
    in_types = [((xs[0], (xs[1] + 3) // 4, xs[2], xs[3], 4), xdt), (ws, "int8"), ((ws[0],), "int32")]
    return attrs, in_types, ((n, (o + 3) // 4, oh, ow, 4), "int8")


def test_selected_only_for_the_nchw44_layout():
    attrs, in_types, out_type = _types(*CASES[0])
    assert select_kernel("qconv2d", attrs, in_types, out_type, AARCH64_DOT)[0].name == NAME
    for target in (AARCH64, ZNVER4):   # no dotprod: nothing implements NCHW44
        with pytest.raises(Exception):
            select_kernel("qconv2d", attrs, in_types, out_type, target)
    assert "NCHW44" not in preferred_layouts(AARCH64_DOT).values()


def test_asm_uses_the_indexed_sdot():
    attrs, in_types, out_type = _types(*CASES[0])
    f = select_kernel("qconv2d", attrs, in_types, out_type, AARCH64_DOT)[1]
    asm = compile_kernel(f, AARCH64_DOT).mod.inspect_source("asm")
    assert ".4b[3]" in asm


@pytest.mark.parametrize("width,o4", [(56, 16), (28, 32), (14, 64), (7, 128), (112, 8), (5, 3), (3, 5)])
def test_register_tile_fits_the_register_file(width, o4):
    blocks, groups = nchw44_tile(width, o4)
    assert (blocks, groups) in TILES and o4 % groups == 0
    assert 4 * blocks * groups + blocks + groups <= 31


def test_nchw44_convs_run_bit_exact_on_cortex_a76(arm64_root, tmp_path):
    from yuan.runtime import qemu_runner
    inputs, calls, expected = [], [], []
    for i, (xs, ws, cattrs, xdt) in enumerate(CASES):
        attrs, in_types, out_type = _types(xs, ws, cattrs, xdt)
        x, w = int_codes(RNG, xs, xdt), int_codes(RNG, ws, "int8")
        b = RNG.integers(-5000, 5000, ws[0]).astype("int32")
        f = select_kernel("qconv2d", attrs, in_types, out_type, AARCH64_DOT)[1]
        plan = kernel_inputs(f, attrs, in_types, [None, w, b])
        calls.append(KernelCall(f, [i if isinstance(p, int) else p for p in plan], out_type))
        inputs.append(_nchw44(x, attrs["x_zero_point"]))
        ref = ref_qconv(x, w, b, attrs)
        assert np.mean((ref == -128) | (ref == 127)) < 0.5, f"case {i} mostly clipped: a weak check"
        expected.append(_nchw44(ref, attrs["y_zero_point"]))
    lib = kernel_library([(a.shape, str(a.dtype)) for a in inputs], calls, AARCH64_DOT, str(tmp_path / "nchw44.so"))
    res = qemu_runner.run_models([{"lib": lib, "inputs": inputs}], cpu="cortex-a76", root=arm64_root)
    assert res.returncode == 0 and res.outputs[0] is not None, (res.returncode, res.errors, res.stderr[-2000:])
    for i, (got, want) in enumerate(zip(res.outputs[0], expected)):
        np.testing.assert_array_equal(got, want, err_msg=f"case {i}")
