"""Arm int8 Winograd without dotprod: ``qconv2d_int8_nchw_winograd_neon`` / ``qconv2d_int8_nhwc_winograd_neon``
(requires aarch64 + neon, priority 7): the exact float-intermediate F(2x2, 3x3) of winograd_int8.py with the
NEON fp32 Winograd's GEMM schedule (aarch64_winograd_fp32.py): 4 input channels per step, each tile's 4 V
values one vector load feeding ``fmla`` by element, a register tile of 4 tiles x 16 output channels (16
accumulators), or 5 where that pads fewer tiles (`fewer_padded_tile`), loops of 4-step bodies; the input
transform vectorised over 4 channels, the output transform over 8 (4: +1 %, 16: +1 %).

Priority 7 puts it above the smull/smlsl2 direct conv (aarch64_int8.py, 5) and below sdot (10): dotprod
CPUs never use it. Where it applies (``neon_winograd_wins``) is measured in instructions under qemu by
``python bench/winograd_int8.py --arm --cpu cortex-a76 --shapes all`` (direct NEON int8 vs Winograd per
layer).

Params: x, u_packed f32 [16, Op/16, Cp, 16], (bias), zero_point_corr, mult, shift -> y (winograd_int8.py).
"""
from __future__ import annotations

from .dot_product import round_up
from .winograd_common import gemm_tile, pads_within
from .winograd_int8 import WinogradInt8Conv, register_winograd_int8


def neon_winograd_wins(attrs, in_types, out_type):
    """Where Winograd needs fewer instructions than the NEON direct conv: C >= 32 and O >= 16.

    bench/winograd_int8.py --arm --cpu cortex-a76 --shapes all (qemu-aarch64, instructions executed in the
    conv's code, one inference, C = O, 3x3 pad 1), direct (smull/smlsl2) / Winograd: 1.46 (64@56x56),
    1.48 (128@28), 1.77 (256@14), 1.34 (512@7), the ResNet-18 layers (115.8 -> 77.2 M, 1.50 over the four;
    1.16 before the flush classes and this schedule, 1.41 with the V vectors in heap workspace); 1.47-1.73
    (64@28, 64@14, 128@14), 1.31-1.33 (128@7, 256@7: the 2x2 tiles of a 7x7 map waste 23 % of their
    outputs), 1.12-1.13 (32@56, 32@28); 1.06 at C = 16 (56x56, the only C = 16 shape measured: kept direct)
    and 0.61 at C = 8, where the transforms outweigh the narrow GEMMs: direct. Multiplies per output:
    9 C direct, 4 C for Winograd (16 fp32 lanes per 2x2 tile; 5.3 C on 7x7 maps). MobileNetV2 /
    ShuffleNetV2 have no dense 3x3 stride-1 conv (their 3x3 convs are depthwise or the stride-2 stem), so
    only the small-C shapes above stand for them."""
    return in_types[1][0][1] >= 32 and in_types[1][0][0] >= 16


def fewer_padded_tile(P, tiles):
    """gemm_tile, except that of the first two heights within its padding allowance the one padding P less wins
    (ties to the first): 5 tiles cost a few % more per tile than 4 where they pad as little (64@56: +4 %), less
    where 4 pads more (256@14, P = 49: 52 vs 50 tiles, -5 %)."""
    fits = [t for t in tiles[:2] if pads_within(P, t)]
    return min(fits, key=lambda t: round_up(P, t)) if fits else gemm_tile(P, tiles)   # min keeps the first tie


NEON_WINOGRAD = WinogradInt8Conv("qconv2d_int8_winograd_neon", tiles=(4, 5, 3, 2, 1), wins=neon_winograd_wins,
                                 step=4, transform_lanes=4, out_lanes=(8, 4), tile_rule=fewer_padded_tile)
register_winograd_int8(NEON_WINOGRAD, "neon", {"aarch64", "neon"}, 7)
