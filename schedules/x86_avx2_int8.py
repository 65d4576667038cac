"""x86 int8 conv without VNNI: the dot-product conv of dot_product.py on ``vpmaddwd`` (+ ``vpaddd``).

* ``qconv2d_int8_nchw_avx2`` / ``qconv2d_int8_nhwc_avx2`` (requires avx2, priority 7): 8 output channels
  (one ymm of int32) x 2 input channels per instruction. The input is staged as int16 (x unchanged, the
  zero point in the padding) and the weight packed as int8 [Op/8, KH, KW, Cp/2, 8, 2], sign-extended on load
  (vpmovsxbw, once per step of the register tile; an int16 packing measured ~5% faster on Zen 4 but doubles
  the library's weights), so every pair product sum |a*b + a'*b'| <= 2 * 255 * 128 fits int32: exact for
  any int8 / uint8 codes. ``vpmaddubsw`` (u8 x s8 pairs into a saturating int16) is twice as dense but
  saturates at 2 * 255 * 127 > 32767: the bug class this kernel avoids by construction.
* ``qconv2d_int8_nchw_avx512bw`` / ``qconv2d_int8_nhwc_avx512bw`` (requires avx512, priority 8): the same
  on zmm (16 channels), for AVX-512 CPUs without VNNI (Skylake-SP); VNNI (priority 10) wins where present.
Applies when group == 1 (any C, O: zero-padded in the packed weight); needs constant w (and b).
Params: x, w_packed int8, bias_eff int32 [O], mult, shift (, residual) -> y (as the VNNI kernels).
"""
from __future__ import annotations

from .dot_product import DotProductConv
from .intrinsics import PMADDWD_AVX2, PMADDWD_AVX512
from .registry import register_kernel

I8 = ("int8", "uint8")

# One group of 8 (ymm) or 16 (zmm) output channels per tile, up to 8 columns: measured on ResNet-18's 3x3
# layers (Zen 4, AVX2 build, best of 25) as fast as 4 columns x 2 groups on 56x56 / 28x28 and 1.5-1.8x faster
# on 14x14 / 7x7, where 7 columns x 2 groups (14 accumulators + 2 weights + 1 broadcast > 16 ymm) spill.
_TILE = dict(column_tiles=(8, 7, 6, 4, 5, 3, 2, 1), vectorize_nhwc_staging=True)
AVX2_CONV = DotProductConv(PMADDWD_AVX2, "the AVX2 int8 conv", **_TILE)
AVX512_CONV = DotProductConv(PMADDWD_AVX512, "the AVX-512 int8 conv", **_TILE)


def _register(conv, isa, requires, priority):
    """The NCHW and NHWC kernels of one instance."""
    common = dict(requires=requires, priority=priority, applies=conv.applies, prepare_constants=conv.prepare,
                  needs_constant=(1, 2))

    def nchw(attrs, in_types, out_type, target):
        return conv.build(attrs, in_types, out_type, channels_last=False)

    def nhwc(attrs, in_types, out_type, target):
        return conv.build(attrs, in_types, out_type, channels_last=True)

    nchw.__doc__ = f"Direct conv, NHWC int16 staging + {conv.intrin.name} ({conv.intrin.lanes} channels x 2)."
    nhwc.__doc__ = f"{conv.label} reading and writing NHWC (layout planning): staging is a contiguous copy."
    register_kernel("qconv2d", I8, name=f"qconv2d_int8_nchw_{isa}", **common)(nchw)
    register_kernel("qconv2d", I8, name=f"qconv2d_int8_nhwc_{isa}", layouts=("NHWC",), **common)(nhwc)


_register(AVX2_CONV, "avx2", {"avx2"}, 7)
_register(AVX512_CONV, "avx512bw", {"avx512"}, 8)
