"""Arm int8 Winograd without dotprod: ``qconv2d_int8_nchw_winograd_neon`` / ``qconv2d_int8_nhwc_winograd_neon``
(requires aarch64 + neon, priority 7): the exact float-intermediate F(2x2, 3x3) of winograd_int8.py, its 16
batched GEMMs in NEON ``fmla`` (4 lanes; a register tile of 4 tiles x 16 output channels = 16 accumulators,
4 weight vectors and the tile values; 6 tiles spill and cost up to 30 % more instructions).

Priority 7 puts it above the smull/smlsl2 direct conv (aarch64_int8.py, 5) and below sdot (10): dotprod
CPUs never use it. Where it applies (``neon_winograd_wins``) is measured in instructions under qemu by
``python bench/winograd_int8.py --arm`` (direct NEON int8 vs Winograd per ResNet-18 3x3 stride-1 layer).

Params: x, u_packed f32 [16, Op/16, Cp, 16], (bias), mult, shift -> y (winograd_int8.py).
"""
from __future__ import annotations

from .winograd_int8 import WinogradInt8Conv, register_winograd_int8


def neon_winograd_wins(attrs, in_types, out_type):
    """Where Winograd needs fewer instructions than the NEON direct conv: C >= 16 and O >= 16.

    bench/winograd_int8.py --arm --shapes all (qemu-aarch64, instructions executed in the conv's code, one
    inference, C = O, 3x3 pad 1): direct / Winograd = 1.81 (64@56x56), 1.91 (128@28), 2.03 (256@14),
    1.73 (512@7), the ResNet-18 layers; 1.37 (16@56), 1.55 (32@56, 32@28), 1.81-1.98 (64@28, 64@14,
    128@14), 1.61-1.65 (128@7, 256@7: the 4x4 tiles of a 7x7 map waste 23 % of their outputs); 0.69 at
    C = 8, where the transforms outweigh the 8-channel GEMMs. Multiplies per output: 9 C direct, about 4 C
    for Winograd (16 fp32 lanes per 2x2 tile; 5.3 C on 7x7 maps). Those ratios are against the smull/sadalp
    conv before issue 10; against its smull/smlsl2 successor (about 1.6x fewer instructions) the ResNet-18
    layers measure 1.13, 1.16, 1.24, 1.06 (--shapes resnet), so the rule still holds there; C = 16 / 32 were
    not measured again and may now favour the direct conv."""
    return in_types[1][0][1] >= 16 and in_types[1][0][0] >= 16


NEON_WINOGRAD = WinogradInt8Conv("qconv2d_int8_winograd_neon", tiles=(4, 3, 2, 1), wins=neon_winograd_wins)
register_winograd_int8(NEON_WINOGRAD, "neon", {"aarch64", "neon"}, 7)
