"""Generic CPU schedule for the PrimFuncs the Relax lowering leaves unscheduled.

    mod = schedule_cpu(mod)                      # report in mod.attrs["yuan.cpu_schedule"]
    mod, report = schedule_cpu_with_report(mod)

Used by the CPU backend (compiler/backends/cpu.py) for every LLVM target.

Heavy ops reach the module as hand-scheduled kernels (attrs tirx.is_scheduled, op_pattern=8);
everything else (pools, element-wise maths, softmax, reductions, shuffles, quantize/dequantize) is
Relax ops or emit_te computes that TVM's CPU pipeline would legalize into naive serial loops.
This pass legalizes them now, fuses chains of light ops (add+relu, max+min, sum+divide, ...) into
one PrimFunc with FuseOps/FuseTIR (the kernels' op_pattern=8 keeps them out of every group), and
gives every PrimFunc without tirx.is_scheduled a modest generic schedule:

* injective producers are inlined into their consumers where the schedule allows it;
* an element-wise block gets its contiguous innermost loops fused into one (only where every access
  indexes them in order, or not at all: no div/mod enters an index), the innermost loop split by
  16/8/4 and vectorised when its extent is a multiple of the factor (a ragged split makes TVM's
  vectoriser emit one scalar load per lane), and its outer loops parallel;
* a block with reduction loops (pools, mean, softmax pieces) is parallel over its leading spatial
  loops and keeps the reduction serial; its innermost spatial loop is moved inside the reduction
  and vectorised only when every access along it is unit-stride and no condition depends on it
  (a padded NCHW window's if_then_else or a strided load makes TVM scalarise it: ResNet's 3x3/2
  max pool ran 2.5x slower that way than as the plain loop LLVM optimises itself), or when it is
  a 16k-channel loop over a reduction of the trailing axes (global pool, mean over H x W: 16 sums
  per gathered vector instead of one serial chain each);
* parallel loops only when there is enough work to pay for the thread-pool launch, and over as few
  outer loops as give enough chunks (fusing inner loops in costs a div/mod per element).

A function whose scheduling raises is kept unscheduled (it is correct) and recorded; this pass never
fails the build. Reshape-pattern functions are left alone: RewriteDataflowReshape (in tvm.compile)
turns them into free views only if their body is the plain copy it recognises.
"""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm import relax, s_tir, tirx

from ..tvm_errors import error_line

SCHEDULED = "tirx.is_scheduled"
REPORT_ATTR = "yuan.cpu_schedule"

VEC_FACTORS = (16, 8, 4)
PARALLEL_MIN_WORK = 16384   # scalar ops below which a parallel launch costs more than it saves
PARALLEL_CHUNKS = 32        # parallel iterations wanted before fusing in another (inner) loop
_IF_THEN_ELSE = tirx.if_then_else(tirx.Var("c", "bool"), 0, 1).op   # registered as prim.if_then_else
_get_realize = tvm_ffi.get_global_func("s_tir.schedule.GetSBlockRealize")


class CpuScheduleReport(dict):
    """scheduled: [names] given the generic schedule; kernels: how many functions were already
    scheduled (hand kernels, untouched); views: [names] of reshape copies left for
    RewriteDataflowReshape; failed: {name: error} kept unscheduled; fused: FuseOps/FuseTIR ran."""

    @property
    def left(self) -> list[str]:
        """Functions still without a schedule after the pass (views and failures)."""
        return sorted(self["views"]) + sorted(self["failed"])


def _empty_report() -> CpuScheduleReport:
    return CpuScheduleReport(scheduled=[], kernels=0, views=[], failed={}, fused=False, error="")


def _describe(exc) -> str:
    return f"{type(exc).__name__}: {error_line(exc)}"


def _is_scheduled(func) -> bool:
    return bool(func.attrs is not None and SCHEDULED in func.attrs and bool(func.attrs[SCHEDULED]))


def _fuse(mod):
    """Group light ops into fused PrimFuncs; opaque kernels (op_pattern=8) stay single."""
    seq = tvm.transform.Sequential([relax.transform.AnnotateTIROpPattern(),
                                    relax.transform.FuseOps(),
                                    relax.transform.FuseTIR()])
    return seq(mod)


def schedule_cpu_with_report(mod: tvm.IRModule, fuse: bool = True):
    """(scheduled module, CpuScheduleReport). See the module docstring. The schedule is
    target-neutral: LLVM picks the vector ISA when the module is compiled."""
    report = _empty_report()
    try:
        mod = relax.transform.LegalizeOps()(mod)
    except Exception as exc:  # tvm.compile legalizes again and reports the real problem
        report["error"] = f"LegalizeOps: {_describe(exc)}"
        return mod, report
    if fuse:
        try:
            mod = _fuse(mod)
            report["fused"] = True
        except Exception as exc:  # unfused light ops are slower, never wrong
            report["error"] = f"fusion skipped: {_describe(exc)}"
    updates = {}
    for gv, func in mod.functions.items():
        if not isinstance(func, tirx.PrimFunc):
            continue
        name = gv.name_hint
        if _is_scheduled(func):
            report["kernels"] += 1
            continue
        if relax.analysis.has_reshape_pattern(func):
            report["views"].append(name)
            continue
        try:
            new = _schedule_func(func)
        except Exception as exc:
            report["failed"][name] = _describe(exc)
            continue
        updates[gv] = new.with_attr(SCHEDULED, True)
        report["scheduled"].append(name)
    if updates:
        mod = mod.clone()   # update_func mutates in place; the caller's module stays as it was
        for gv, func in updates.items():
            mod.update_func(gv, func)
    return mod, report


def schedule_cpu(mod: tvm.IRModule) -> tvm.IRModule:
    """Legalize, fuse and schedule the light ops of a lowered module for a CPU target.
    The report is kept as the module attr "yuan.cpu_schedule" (see cpu_schedule_report)."""
    mod, report = schedule_cpu_with_report(mod)
    try:
        mod = mod.with_attr(REPORT_ATTR, {
            "scheduled": len(report["scheduled"]), "kernels": report["kernels"],
            "views": list(report["views"]), "failed": [f"{k}: {v}" for k, v in report["failed"].items()],
            "fused": int(report["fused"]), "error": report["error"]})
    except Exception:  # the report is informative only
        pass
    return mod


def cpu_schedule_report(mod: tvm.IRModule) -> dict | None:
    """The report schedule_cpu attached to `mod`, as plain Python (None when absent)."""
    if mod.attrs is None or REPORT_ATTR not in mod.attrs:
        return None
    r = mod.attrs[REPORT_ATTR]
    return {"scheduled": int(r["scheduled"]), "kernels": int(r["kernels"]),
            "views": [str(v) for v in r["views"]], "failed": [str(v) for v in r["failed"]],
            "fused": bool(int(r["fused"])), "error": str(r["error"]) if "error" in r else ""}


# ---------------------------------------------------------------- the generic schedule

def _schedule_func(func: tirx.PrimFunc) -> tirx.PrimFunc:
    sch = s_tir.Schedule(func)
    _inline_injective(sch)
    root = _root(sch)
    for blk in sch.get_child_blocks(root):
        if sch.get_child_blocks(blk):
            _schedule_nested(sch, blk)
        else:
            _schedule_block(sch, blk)
    return sch.mod["main"]


def _schedule_nested(sch, blk):
    """A block holding blocks (e.g. an adaptive pool's variable-size windows): only its leading
    spatial loops are made parallel; what is inside stays as TOPI wrote it."""
    loops = sch.get_loops(blk)
    if not loops:
        return
    kinds = _loop_kinds(sch, blk, loops)
    n_lead = len(kinds) - len("".join(kinds).lstrip("S"))
    _parallel_leading(sch, list(loops[:n_lead]), _work(sch, loops))


def _root(sch):
    return sch.get_sblock(sch.mod["main"].body.block.name_hint)


def _inline_injective(sch):
    """compute_inline every block that allows it (injective, not an output), repeat until fixed."""
    changed = True
    while changed:
        changed = False
        for blk in sch.get_child_blocks(_root(sch)):
            if any(iv.iter_type != tirx.IterVar.DataPar for iv in sch.get(blk).iter_vars):
                continue
            try:
                sch.compute_inline(blk)
            except Exception:  # an output, or not inlinable into its consumer: keep it
                continue
            changed = True
            break


def _vars_in(expr) -> set:
    found = set()
    tvm_ffi.structural_walk(expr, (tirx.Var, found.add))
    return found


def _loop_kinds(sch, blk, loops):
    """'S' for a loop that only drives spatial block iters, 'R' for one that drives a reduction."""
    block = sch.get(blk)
    realize = _get_realize(sch, blk)
    reduce_vars = set()
    for iv, value in zip(block.iter_vars, realize.iter_values):
        if iv.iter_type == tirx.IterVar.CommReduce:
            reduce_vars |= _vars_in(value)
        elif iv.iter_type != tirx.IterVar.DataPar:
            raise ValueError(f"block '{block.name_hint}' has an opaque iterator")
    return ["R" if sch.get(lp).loop_var in reduce_vars else "S" for lp in loops]


def _extent(sch, loop) -> int:
    ext = sch.get(loop).extent
    if not isinstance(ext, tirx.IntImm):
        raise ValueError("symbolic loop extent")
    return int(ext)


def _vec_factor(extent: int, whole_max: int = 16) -> int | None:
    for f in VEC_FACTORS:
        if extent % f == 0:
            return f
    if 4 <= extent <= whole_max:
        return extent
    return None


def _conditional_on(block, var) -> bool:
    """Whether a condition in the block body depends on `var` (the vectoriser scalarises a loop
    whose lanes take different branches; a lane-invariant condition stays a plain branch)."""
    hit = []

    def visit(call):
        if isinstance(call.op, tvm.ir.Op) and call.op.same_as(_IF_THEN_ELSE) \
                and var in _vars_in(call.args[0]):
            hit.append(call)
    tvm_ffi.structural_walk(block.body, (tvm.ir.expr.Call, visit))
    body = block.body
    return bool(hit) or (isinstance(body, tirx.IfThenElse) and var in _vars_in(body.condition))


def _bound_iter(block, realize, loop_var):
    """The one block iter bound to exactly `loop_var` (the plain case), else None."""
    bound = [(iv.var, value) for iv, value in zip(block.iter_vars, realize.iter_values)
             if loop_var in _vars_in(value)]
    if len(bound) != 1 or not (isinstance(bound[0][1], tirx.Var) and bound[0][1].same_as(loop_var)):
        return None
    return bound[0][0]


def _unit_stride(block, realize, loop_var):
    """The block iter bound to `loop_var` when every buffer access varies along it with stride 1
    in its last axis (or not at all), else None. Only the plain case is accepted: one block iter
    bound to exactly that loop variable."""
    from tvm.sym import detect_linear_equation
    ivar = _bound_iter(block, realize, loop_var)
    if ivar is None:
        return None
    for region in list(block.reads) + list(block.writes):
        for axis, rng in enumerate(region.region):
            if not isinstance(rng.extent, tirx.IntImm) or int(rng.extent) != 1:
                return None
            coef = detect_linear_equation(rng.min, [ivar])
            if len(coef) == 0 or not isinstance(coef[0], tirx.IntImm):
                return None
            c = int(coef[0])
            if c != 0 and not (c == 1 and axis == len(region.region) - 1):
                return None
    return ivar


def _work(sch, loops) -> int:
    total = 1
    for lp in loops:
        total *= _extent(sch, lp)
    return total


def _schedule_block(sch, blk):
    loops = sch.get_loops(blk)
    if not loops:
        return
    kinds = _loop_kinds(sch, blk, loops)
    work = _work(sch, loops)
    if "R" not in kinds:
        _schedule_spatial(sch, blk, loops, work)
    else:
        _schedule_reduction(sch, blk, loops, kinds, work)


def _contiguous_tail(sch, blk, loops) -> int:
    """How many innermost loops can be fused into one without index arithmetic: every buffer access
    either indexes its last axes with exactly those loops' iterators, in order, or uses none of
    them (a broadcast). Fusing the rows of a 7x7 or 14x14 map gives LLVM a long contiguous loop to
    vectorise (4x faster than 7- or 14-wide rows); fusing under a transposed or partly broadcast
    access would put a div/mod in every index (2x slower on a transposing quantize)."""
    block = sch.get(blk)
    realize = _get_realize(sch, blk)
    ivars = []
    for lp, iv, value in zip(loops, block.iter_vars, realize.iter_values):
        if not (isinstance(value, tirx.Var) and value.same_as(sch.get(lp).loop_var)):
            return 1
        ivars.append(iv.var)
    if len(ivars) != len(loops):
        return 1
    extents = [_extent(sch, lp) for lp in loops]
    accesses = []
    for region in list(block.reads) + list(block.writes):
        if any(not isinstance(r.extent, tirx.IntImm) or int(r.extent) != 1 for r in region.region):
            return 1
        accesses.append(([r.min for r in region.region], list(region.source.shape)))
    best = 1
    for m in range(2, len(loops) + 1):
        tail = ivars[-m:]
        for idx, shape in accesses:
            used = [bool(set(tail) & _vars_in(e)) for e in idx]
            if not any(used):
                continue   # broadcast along the whole tail
            last = idx[-m:] if len(idx) >= m else []
            if len(last) != m or any(not (isinstance(e, tirx.Var) and e.same_as(v))
                                     for e, v in zip(last, tail)) or any(used[:-m]):
                return best
            # the buffer's inner axes must be exactly as long as the loops (not a slice of a row)
            if any(not isinstance(d, tirx.IntImm) or int(d) != e
                   for d, e in zip(shape[-m + 1:], extents[-m + 1:])):
                return best
        best = m
    return best


def _schedule_spatial(sch, blk, loops, work):
    """Element-wise: the contiguous innermost loops fused (see _contiguous_tail), split by 16/8/4
    with the inner part vectorised when the innermost extent is a multiple of the factor, outer
    loops parallel. With a ragged factor the lanes straddle a row end, the index becomes a ramp
    modulo the row length and TVM emits one scalar load per lane (5x slower on 56x56 maps); then
    the fused loop is left to LLVM's vectoriser."""
    loops = list(loops)
    inner_ext = _extent(sch, loops[-1])
    m = _contiguous_tail(sch, blk, loops)
    if m > 1:
        loops = loops[:-m] + [sch.fuse(*loops[-m:])]
    f = next((f for f in VEC_FACTORS if inner_ext % f == 0), None)
    if f is not None:
        if _extent(sch, loops[-1]) > f:
            outer, vec = sch.split(loops[-1], [None, f])
            loops[-1] = outer
        else:
            vec = loops.pop()
        sch.vectorize(vec)
    _parallel_leading(sch, loops, work)


def _parallel_leading(sch, loops, work):
    """Parallel over as few leading loops as give PARALLEL_CHUNKS iterations: fusing inner loops
    too turns their strength-reduced indices into a div/mod per element (a 3x3/2 max pool ran 2x
    slower with its rows fused in, 4x with its columns too)."""
    if not loops or work < PARALLEL_MIN_WORK:
        return
    group, ext = [], 1
    for lp in loops:
        group.append(lp)
        ext *= _extent(sch, lp)
        if ext >= PARALLEL_CHUNKS:
            break
    if ext > 1:
        sch.parallel(sch.fuse(*group) if len(group) > 1 else group[0])


def _schedule_reduction(sch, blk, loops, kinds, work):
    """Parallel over the leading spatial loops, reduction serial; see _reduction_vector_loop."""
    n_lead = len(kinds) - len("".join(kinds).lstrip("S"))
    spatial = list(loops[:n_lead])
    vec_loop = None
    if "S" not in kinds[n_lead:]:   # spatial loops under a reduction loop: leave the nest alone
        vec_loop = _reduction_vector_loop(sch, blk, loops, kinds)
    if vec_loop is not None:
        reduce_loops = list(loops[n_lead:])
        pos = [sch.get(lp).loop_var for lp in spatial].index(sch.get(vec_loop).loop_var)
        ext = _extent(sch, vec_loop)
        f = _vec_factor(ext)
        if f < ext:
            spatial[pos], inner = sch.split(vec_loop, [None, f])
        else:
            inner = spatial.pop(pos)
        sch.reorder(*spatial, *reduce_loops, inner)
        sch.vectorize(inner)
    _parallel_leading(sch, spatial, work)


def _reduction_vector_loop(sch, blk, loops, kinds):
    """The innermost spatial loop, when moving it inside the reduction and vectorising it pays: every access
    unit-stride along it, or (`_reduces_trailing_axes`) a reduction over the trailing axes of a map with 16k
    channels (global average pool, mean over H x W: 16 channels gathered per vector, 16 independent sums
    instead of one latency-bound serial chain per channel; MobileNetV2's 1280 x 7 x 7 mean 47 -> 22 us)."""
    n_lead = len(kinds) - len("".join(kinds).lstrip("S"))
    lead = [lp for lp in loops[:n_lead] if _extent(sch, lp) > 1]   # a kept dim (keepdims) has extent 1
    if not lead:
        return None
    cand = lead[-1]
    ext = _extent(sch, cand)
    if ext < 4 or _vec_factor(ext) is None:
        return None
    block = sch.get(blk)
    realize = _get_realize(sch, blk)
    var = sch.get(cand).loop_var
    ivar = _unit_stride(block, realize, var)
    if ivar is None and ext % VEC_FACTORS[0] == 0:
        ivar = _reduces_trailing_axes(block, realize, var)
    if ivar is None or _conditional_on(block, ivar):
        return None
    return cand


def _reduces_trailing_axes(block, realize, loop_var):
    """The block iter bound to `loop_var` when the block reads one buffer, indexes its last axis with a
    reduction iter alone and its other axes with single iters (no window arithmetic: a pool's strided or
    padded window keeps its serial loop), `loop_var`'s among them; else None."""
    ivar = _bound_iter(block, realize, loop_var)
    if ivar is None:
        return None
    reduce_vars = [iv.var for iv in block.iter_vars if iv.iter_type == tirx.IterVar.CommReduce]
    reads = [region for region in block.reads
             if not any(region.source.same_as(w.source) for w in block.writes)]
    if len(reads) != 1:
        return None
    index = [rng.min for rng in reads[0].region]
    if any(not isinstance(rng.extent, tirx.IntImm) or int(rng.extent) != 1 for rng in reads[0].region) \
            or any(not isinstance(e, tirx.Var) for e in index):
        return None
    if not any(index[-1].same_as(reduce_var) for reduce_var in reduce_vars) \
            or not any(e.same_as(ivar) for e in index[:-1]):
        return None
    return ivar


__all__ = ["schedule_cpu", "schedule_cpu_with_report", "cpu_schedule_report", "CpuScheduleReport",
           "REPORT_ATTR"]
