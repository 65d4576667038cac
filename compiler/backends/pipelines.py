"""The pipelines every Yuan build compiles with: TVM's default TIR pipeline plus one x86 rewrite of vectorised
code (TIR_PIPELINE), and for CPU targets a Relax pipeline without per-value kills (cpu_relax_pipeline).

    tvm.compile(mod, target, relax_pipeline=cpu_relax_pipeline(target), tir_pipeline=TIR_PIPELINE)

TIR. Why the rewrite: the 32-bit requantize (schedules/requant.py, requant32) takes the high half of an int32 x
int32 product, written as `int32((int64(a) * int64(m)) >> 32)`. LLVM turns that into one high multiply
(even lanes with `vpmuldq`, odd lanes shifted down and multiplied, one `vpermt2d` to merge) only when both
sign extensions sit in the same basic block; in a kernel the multiplier is a loop invariant, LICM hoists
its extension out of the loop, and LLVM falls back to widening both operands to 64-bit lanes and narrowing
back: 7 cross-lane shuffles per 16 outputs. On MobileNetV2's 16 -> 96 1x1 int8 conv at 112x112 (Zen 4,
1 thread) the shuffles were the bottleneck: 316-334 us, 226-244 us with the rewrite.

The rewrite states the even/odd form in TIR itself, on the 64-bit view of the vectors (`reinterpret`):
lane 2i of an int32 vector is the low half of 64-bit lane i and lane 2i+1 its high half, so
    even = sext32(a) * sext32(m)        (shift left 32 then arithmetic right 32: the low halves, signed)
    odd  = (a >> 32) * (m >> 32)        (arithmetic shift: the high halves, signed)
are the exact 64-bit products of lanes 2i and 2i+1 (|a * m| < 2^63), and the result takes bits 32..63 of
each: `(even >> 32) & 0xffffffff` into the low halves, `odd & ~0xffffffff` into the high halves, the same
bits `int32((int64(a) * int64(m)) >> 32)` keeps. Only x86 LLVM targets (NEON and CUDA have their own
high multiplies) and only whole vectors of an even lane count, 4 or more, are touched.

Relax. TVM's build pipeline for CPUs (LegalizeOps and the VM lowering) ends with KillAfterLastUse, which
frees every value after its last use: one `vm.builtin.null_value` call per value per run (MobileNetV2:
165 of the VM's 333 builtin calls, beside 106 for the weights' tuple items). A Yuan module's shapes are all
static and StaticPlanBlockMemory has already placed every activation in a few planned buffers, so the kills
free nothing: peak resident memory of MobileNetV2 fp32 221.8 vs 222.4 MiB, while old / new modules
interleaved (Zen 4, 1 thread) ran x0.985 (int8) and x0.975 (fp32). cpu_relax_pipeline is TVM's own CPU
passes (tvm.relax.backend.cpu_generic) without FuseOps / FuseTIR (the kernels come scheduled) and without
KillAfterLastUse. GPU targets keep TVM's default.
"""
from __future__ import annotations

import platform

import tvm
import tvm.ir.prim.expr as E
import tvm_ffi
from tvm import relax, tirx
from tvm.relax.backend.cpu_generic import pipeline as cpu_generic
from tvm.tirx import compilation_pipeline

TIR_PIPELINE = "yuan"


def _is_x86_llvm(target) -> bool:
    if target is None or target.kind.name != "llvm":
        return False
    triple = str(dict(target.attrs).get("mtriple") or "")
    if not triple:   # a host target: what this machine is
        return platform.machine().lower() in ("x86_64", "amd64", "i686")
    return triple.startswith(("x86_64", "i686", "i386"))


def _lanes(expr, kind):
    """The lane count of a vector dtype `kind`xL (e.g. "int32x16" -> 16), else None."""
    ty = str(expr.ty)
    return int(ty[len(kind) + 1:]) if ty.startswith(kind + "x") else None


def _int32_factor(expr, lanes):
    """x when expr is int64(x) for an int32 vector x (or a broadcast int32 scalar), else None."""
    if isinstance(expr, E.Cast) and _lanes(expr.value, "int32") == lanes:
        return expr.value
    if isinstance(expr, E.Broadcast) and isinstance(expr.value, E.Cast) and str(expr.value.value.ty) == "int32":
        return E.Broadcast(expr.value.value, lanes)
    return None


def _splat(value, lanes):
    return E.Broadcast(tirx.const(value, "int64"), lanes)


def _high_product(cast):
    """int32((int64(a) * int64(m)) >> 32) on int32 vectors -> the even/odd form (module docstring); any other
    Cast unchanged."""
    lanes = _lanes(cast, "int32")
    shift = cast.value
    if not lanes or lanes < 4 or lanes % 2 or not isinstance(shift, E.RShift):   # int64 halves: 2 lanes at least
        return cast
    amount, product = shift.b, shift.a
    if not (isinstance(amount, E.Broadcast) and isinstance(amount.value, E.IntImm) and int(amount.value.value) == 32
            and isinstance(product, E.Mul) and _lanes(product, "int64") == lanes):
        return cast
    a, m = _int32_factor(product.a, lanes), _int32_factor(product.b, lanes)
    if a is None or m is None:
        return cast
    half = lanes // 2
    k32 = _splat(32, half)
    a64, m64 = tirx.reinterpret(f"int64x{half}", a), tirx.reinterpret(f"int64x{half}", m)
    low = lambda v: tirx.shift_right(tirx.shift_left(v, k32), k32)   # noqa: E731  sign-extended low halves
    even = low(a64) * low(m64)
    odd = tirx.shift_right(a64, k32) * tirx.shift_right(m64, k32)
    high = tirx.bitwise_or(tirx.bitwise_and(tirx.shift_right(even, k32), _splat(0xFFFFFFFF, half)),
                           tirx.bitwise_and(odd, _splat(-(1 << 32), half)))
    return tirx.reinterpret(f"int32x{lanes}", high)


@tirx.transform.prim_func_pass(opt_level=0, name="YuanHighMultiplyAsLanePairs")
def high_multiply_as_lane_pairs(func, mod, ctx):
    """The module docstring's rewrite, on x86 LLVM functions."""
    if not _is_x86_llvm(func.attrs.get("target") if func.attrs else None):
        return func
    body = tvm_ffi.structural_map(func.body, [(E.Cast, _high_product)])
    return func if body.same_as(func.body) else func.with_body(body)


def _yuan_pipeline():
    pipeline, finalize_host, finalize_device = compilation_pipeline.get_tir_pipeline("default")

    @tvm.transform.module_pass(opt_level=0, name="YuanTIRPipeline")
    def _run(mod, ctx):
        return high_multiply_as_lane_pairs(pipeline(mod))

    return _run, finalize_host, finalize_device


compilation_pipeline.register_tir_pipeline(TIR_PIPELINE, _yuan_pipeline)


def cpu_relax_pipeline(target):
    """TVM's CPU build passes, legalization without fusion, and no KillAfterLastUse (module docstring)."""
    finalize = [p for p in cpu_generic.finalize_passes(target) if p.info.name != "KillAfterLastUse"]
    passes = (cpu_generic.library_dispatch_passes(target) + [relax.transform.LegalizeOps()]
              + cpu_generic.dataflow_lower_passes(target) + finalize)
    return tvm.transform.Sequential(passes, name="YuanCPURelaxPipeline")
