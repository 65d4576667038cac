"""x86 int8 Winograd without VNNI: ``qconv2d_int8_nchw_winograd_avx2`` / ``qconv2d_int8_nhwc_winograd_avx2``
(requires avx2 + fma, priority 9): the exact float-intermediate F(2x2, 3x3) of winograd_int8.py, its 16
batched GEMMs in ymm FMAs (8 lanes; a register tile of up to 6 tiles x 16 output channels = 12 accumulators,
2 weight vectors and a broadcast in the 16 ymm registers).

Priority 9 puts it above the direct AVX2 / AVX-512BW int8 convs (x86_avx2_int8.py, 7 / 8) and below VNNI
(10), which always wins where present. Where it applies (``avx2_winograd_wins``) is measured by
``python bench/winograd_int8.py --x86`` against the direct vpmaddwd kernel the target gets otherwise: only
the wide convs on mid-size maps (ResNet-18's 128@28x28 and 256@14x14 layers). On x86-avx512 (no VNNI) the
same rule applies (ymm code; not measured against the zmm direct kernel).

Params: x, u_packed f32 [16, Op/16, Cp, 16], (bias), zero_point_corr, mult, shift -> y (winograd_int8.py).
"""
from __future__ import annotations

from .winograd_int8 import WinogradInt8Conv, register_winograd_int8


def avx2_winograd_wins(attrs, in_types, out_type):
    """Where Winograd beat the direct AVX2 int8 conv: C >= 128, O >= 128 and C * OH * OW >= 256 * 14 * 14
    (enough tiles to amortise the 16 transformed weight matrices, 16 / 9 x the direct kernel's bytes in fp32).

    bench/winograd_int8.py --x86 (AMD Zen4 running the x86-avx2 code, NHWC, 1 thread, interleaved rounds on
    a loaded 2-core machine; Winograd / direct as median, minima, over two runs): ResNet-18 128@28x28
    0.49-0.85 and 256@14x14 0.80-0.88 (won twice: the direct kernel drops to ~45 GMAC/s on these, its
    int16 weights no longer in L2), 64@56x56 0.95-1.06 (parity: direct), 512@7x7 1.28-2.25 (16.8 MB of
    fp32 weights for 16 tiles: direct); smaller convs of equal work (28.9 M MACs) 0.92-1.35 (direct).
    Why not more: a ymm FMA does 8 fp32 multiplies where vpmaddwd does 16 int16 MACs, so Winograd's 2.25x
    fewer multiplies leave ~1.1x, and the transforms take ~25 %."""
    C, O = in_types[1][0][1], in_types[1][0][0]
    OH, OW = out_type[0][1:3] if attrs.get("layout") == "NHWC" else out_type[0][2:4]
    return C >= 128 and O >= 128 and C * OH * OW >= 256 * 14 * 14


AVX2_WINOGRAD = WinogradInt8Conv("qconv2d_int8_winograd_avx2", tiles=(6, 4, 5, 3, 2, 1), wins=avx2_winograd_wins)
register_winograd_int8(AVX2_WINOGRAD, "avx2", {"avx2", "fma"}, 9)
