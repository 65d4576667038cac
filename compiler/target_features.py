"""What a target's instruction set offers, as a set of feature names the kernel registry matches.

    detect(target_dict) -> (isa, frozenset of features)

Detection is explicit per ISA, from the target's `mtriple` / `mcpu` / `mattr` (or, for
`mcpu: host`, from this machine's CPU flags):

| isa | features |
|---|---|
| x86 | cpu, x86, avx2, fma, avx512, avx512_vnni |
| aarch64 | cpu, aarch64, neon, dotprod, i8mm |
| cuda | cuda, gpu, dp4a (sm_61+), imma (sm_75+) |
| generic (riscv64, ppc64le, ... any other LLVM triple) | cpu |

A kernel that requires {"avx512_vnni"} is therefore never chosen for an Arm, RISC-V or
plain x86-64 target. Names are the vocabulary of `schedules.register_kernel(requires=...)`.
"""
from __future__ import annotations

import functools
import platform

X86_FEATURES = ("avx2", "fma", "avx512", "avx512_vnni")
ARM_FEATURES = ("neon", "dotprod", "i8mm")

# LLVM -mcpu names -> what they guarantee. A CPU missing from these tables gets the baseline of
# its ISA (plain x86-64 / Armv8-A NEON): slower kernels, never wrong ones.
_X86_AVX2 = {"haswell", "broadwell", "skylake", "alderlake", "raptorlake", "meteorlake", "arrowlake",
             "znver1", "znver2", "znver3", "x86-64-v3", "gracemont", "sierraforest", "grandridge"}
# "avx512" means the Skylake-X set (F, BW, DQ, VL) the AVX-512 kernels use (the int8 ones need BW):
# Xeon Phi (knl, knm) has AVX-512F without BW, so it counts as AVX2 only.
_X86_AVX512 = {"skylake-avx512", "cannonlake", "x86-64-v4"}
_X86_AVX2 |= {"knl", "knm"}
_X86_VNNI = {"cascadelake", "cooperlake", "icelake-client", "icelake-server", "tigerlake", "rocketlake",
             "sapphirerapids", "emeraldrapids", "graniterapids", "graniterapids-d", "znver4", "znver5",
             "diamondrapids"}
_ARM_DOTPROD = {"cortex-a55", "cortex-a65", "cortex-a75", "cortex-a76", "cortex-a77", "cortex-a78",
                "cortex-a710", "cortex-a715", "cortex-x1", "cortex-x2", "cortex-x3", "neoverse-n1",
                "neoverse-n2", "neoverse-v1", "neoverse-v2", "apple-a12", "apple-a13", "apple-a14",
                "apple-a15", "apple-a16", "apple-m1", "apple-m2"}
_ARM_I8MM = {"cortex-a710", "cortex-a715", "cortex-x2", "cortex-x3", "neoverse-n2", "neoverse-v1",
             "neoverse-v2", "apple-a15", "apple-a16", "apple-m2"}

# mattr flag -> feature it adds (its "-flag" form removes the feature)
_X86_MATTR = {"avx2": "avx2", "fma": "fma", "avx512f": "avx512", "avx512bw": "avx512",
              "avx512vnni": "avx512_vnni"}
_ARM_MATTR = {"neon": "neon", "dotprod": "dotprod", "i8mm": "i8mm"}


def isa_of(target: dict) -> str:
    """'x86', 'aarch64', 'cuda' or 'generic' for a TVM target dict."""
    kind = target.get("kind")
    if kind == "cuda":
        return "cuda"
    if kind != "llvm":
        return "generic"
    triple = str(target.get("mtriple") or "")
    arch = triple.split("-", 1)[0] if triple else platform.machine().lower()
    if arch in ("x86_64", "amd64", "i386", "i686"):
        return "x86"
    if arch in ("aarch64", "arm64", "arm64e"):
        return "aarch64"
    return "generic"


def detect(target: dict, host_cpu: bool = False) -> tuple[str, frozenset]:
    """(isa, features) of a TVM target dict. host_cpu: the target means "this machine's CPU"
    (mcpu: host), so the CPU's own flags decide."""
    isa = isa_of(target)
    if isa == "cuda":
        return isa, _cuda_features(str(target.get("arch") or ""))
    if isa == "generic":
        return isa, frozenset({"cpu"})
    mcpu = str(target.get("mcpu") or "")
    mattr = [str(m) for m in (target.get("mattr") or [])]
    if isa == "x86":
        feats = set(host_x86_features()) if host_cpu else _x86_from_mcpu(mcpu)
        feats = _apply_mattr(feats, mattr, _X86_MATTR)
        if "avx512" not in feats:
            feats.discard("avx512_vnni")
        return isa, frozenset({"cpu", "x86"} | feats)
    feats = set(host_arm_features()) if host_cpu else _arm_from_mcpu(mcpu)
    feats = _apply_mattr(feats, mattr, _ARM_MATTR)
    if "neon" not in feats:
        feats -= {"dotprod", "i8mm"}
    return isa, frozenset({"cpu", "aarch64"} | feats)


def _x86_from_mcpu(mcpu: str) -> set:
    if mcpu in _X86_VNNI:
        return {"avx2", "fma", "avx512", "avx512_vnni"}
    if mcpu in _X86_AVX512:
        return {"avx2", "fma", "avx512"}
    if mcpu in _X86_AVX2:
        return {"avx2", "fma"}
    return set()


def _arm_from_mcpu(mcpu: str) -> set:
    feats = {"neon"}           # Armv8-A (AArch64) always has Advanced SIMD
    if mcpu in _ARM_DOTPROD:
        feats.add("dotprod")
    if mcpu in _ARM_I8MM:
        feats.add("i8mm")
    return feats


def _apply_mattr(feats: set, mattr: list, table: dict) -> set:
    feats = set(feats)
    for flag in mattr:
        sign, name = flag[:1], flag[1:]
        if name in table:
            (feats.add if sign == "+" else feats.discard)(table[name])
    return feats


def _cuda_features(arch: str) -> frozenset:
    feats = {"cuda", "gpu"}
    if arch.startswith("sm_") and arch[3:].rstrip("af").isdigit():
        sm = int(arch[3:].rstrip("af"))
        if sm >= 61:
            feats.add("dp4a")
        if sm >= 75:
            feats.add("imma")
    return frozenset(feats)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset:
    """The flags ("flags" on x86, "Features" on Arm) of this machine's /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def host_x86_features() -> frozenset:
    flags = cpu_flags()
    feats = set()
    if "avx2" in flags:
        feats.add("avx2")
    if "fma" in flags:
        feats.add("fma")
    if {"avx512f", "avx512bw"} <= flags:   # the Skylake-X set (see _X86_AVX512)
        feats.add("avx512")
        if "avx512_vnni" in flags or "avx512vnni" in flags:
            feats.add("avx512_vnni")
    return frozenset(feats)


def host_arm_features() -> frozenset:
    flags = cpu_flags()
    feats = {"neon"} if ("asimd" in flags or not flags) else set()
    if "asimddp" in flags:
        feats.add("dotprod")
    if "i8mm" in flags:
        feats.add("i8mm")
    return frozenset(feats)


def host_features() -> tuple[str, frozenset]:
    """(isa, features) of the machine this process runs on."""
    return detect({"kind": "llvm"}, host_cpu=True)


__all__ = ["detect", "isa_of", "cpu_flags", "host_features", "host_x86_features", "host_arm_features",
           "X86_FEATURES", "ARM_FEATURES"]
