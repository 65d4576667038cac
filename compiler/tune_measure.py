"""Measuring one conv/linear shape for `yuan compile --tune` (compiler/tuning.py decides what to measure).

    entry = measure(call, target)      # call: a schedules.choices.SelectCall recorded by the lowering

Every kernel that applies to the node on this target (except the generic fallbacks) is built as a
standalone PrimFunc module and run on the same random inputs; an output that differs from the rule's
pick (int8 bit for bit, fp32 beyond 1e-3 of the output's magnitude) rejects the candidate, which is
reported and never chosen. The survivors are timed in interleaved rounds (A, B, C, A, B, C, ...) with
TVM's time evaluator on this process's thread pool (TVM_NUM_THREADS), and the lowest median wins when it
beats the rule's pick by MIN_GAIN (a near-tie keeps the rule).
"""
from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass

import numpy as np
import tvm

from yuan.schedules import get_kernel, kernel_inputs
from yuan.schedules.registry import build_kernel

from .backends.pipelines import TIR_PIPELINE
from .errors import BuildError

_log = logging.getLogger(__name__)

ROUNDS = 7                 # interleaved rounds per shape (one sample per candidate each)
REPEATS = 3                # a sample is the fastest of this many back-to-back timings (see time_kernel)
SAMPLE_SECONDS = 0.004     # calls per sample are sized so one sample lasts about this long
FP32_TOLERANCE = 1e-3      # relative to the largest |output| of the rule's pick
MIN_GAIN = 0.05            # another kernel replaces the rule's pick only when its median is this much lower
FALLBACK_MODULES = ("generic", "generic_nhwc")   # schedules/ files of the kernels every target has


def timed_candidates(call) -> list[str]:
    """The candidates worth timing, rule order: the portable fallbacks (schedules/generic.py and
    generic_nhwc.py: plain loops, 10-20x slower) are left out, so a big shape costs seconds, not minutes."""
    return [name for name in call.candidates
            if get_kernel(name).builder.__module__.rpartition(".")[2] not in FALLBACK_MODULES]


def measure(call, target, rounds: int = ROUNDS) -> dict:
    """Build, check and time every candidate of one selection; the cache entry (see tune_cache.py)."""
    arrays = _random_inputs(call)
    runs, rejected, reference, rule = [], {}, None, None
    for name in timed_candidates(call):
        try:
            cand = _compiled(get_kernel(name), call, target, arrays)
            y = cand.run()
        except Exception as exc:   # a candidate that cannot be built here simply does not compete
            rejected[name] = f"failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            _log.warning("tuning %s: kernel %s %s", call.label(), name, rejected[name])
            continue
        if reference is None:
            reference, rule = y, name
        else:
            why = _disagreement(y, reference, rule)
            if why:
                rejected[name] = why
                _log.warning("tuning %s: kernel %s rejected: %s", call.label(), name, why)
                continue
        runs.append(cand)
    if not runs:
        raise BuildError(f"tuning {call.label()}: no candidate kernel could be built and run: "
                         + "; ".join(f"{k}: {v}" for k, v in rejected.items()))
    number = _calls_per_sample(runs)
    samples = {cand.name: [] for cand in runs}
    for _ in range(rounds):                  # interleaved: machine noise hits every candidate alike
        for cand in runs:
            samples[cand.name].append(time_kernel(cand, number))
    medians = {name: statistics.median(s) * 1e6 for name, s in samples.items()}
    best = min(medians, key=medians.get)
    if medians[best] > (1 - MIN_GAIN) * medians[rule]:   # a near-tie is noise: keep the rule's pick
        best = rule
    return {"op": call.op, "kernel": best, "rule": rule, "medians_us": {k: round(v, 2) for k, v in medians.items()},
            "rejected": rejected, "number": number, "rounds": rounds,
            "threads": int(tvm.get_global_func("runtime.NumThreads")())}


@dataclass
class Candidate:
    """One candidate kernel compiled for this machine, with its argument tensors (output last)."""
    name: str
    lib: object
    symbol: str
    args: list

    def run(self):
        self.lib[self.symbol](*self.args)
        return self.args[-1].numpy()


def time_kernel(cand: Candidate, number: int) -> float:
    """Seconds per call, one sample: the fastest of REPEATS means of `number` back-to-back calls. On a
    shared machine a preempted timing is several milliseconds too slow; taking the fastest of a few
    filters those out, where a median over rounds alone is lost once half the rounds are hit."""
    timer = cand.lib.time_evaluator(cand.symbol, tvm.cpu(0), number=number, repeat=REPEATS)
    return min(timer(*cand.args).results)


def _calls_per_sample(runs) -> int:
    slowest = max(time_kernel(cand, 1) for cand in runs)   # also warms the caches
    return max(1, min(100, math.ceil(SAMPLE_SECONDS / max(slowest, 1e-7))))


def _compiled(kernel, call, target, arrays) -> Candidate:
    func = build_kernel(kernel, call.op, call.attrs, call.in_types, call.out_type, target)
    symbol = str(func.attrs["global_symbol"])
    lib = tvm.compile(tvm.IRModule({symbol: func}), target.tvm, tir_pipeline=TIR_PIPELINE).jit()   # the runtime.Module, loaded here
    plan = kernel_inputs(kernel, call.attrs, call.in_types,
                         [a if _is_constant(call, i) else None for i, a in enumerate(arrays)])
    dev = tvm.cpu(0)
    args = [tvm.runtime.tensor(np.ascontiguousarray(arrays[p] if isinstance(p, int) else p), dev) for p in plan]
    out = tvm.runtime.empty(call.out_type[0], call.out_type[1], dev)
    return Candidate(kernel.name, lib, symbol, args + [out])


def _is_constant(call, index) -> bool:
    # select_kernel's convention: no constants given means the weights and bias (inputs 1, 2) are
    return index in (1, 2) if call.constants is None else index in call.constants


def _random_inputs(call):
    """One array per node input: the same for every candidate (weights, bias and residual too)."""
    rng = np.random.default_rng(0)
    arrays = []
    for i, t in enumerate(call.in_types):
        if t is None:
            arrays.append(None)
            continue
        shape, dtype = t
        if np.dtype(dtype).kind == "f":
            fan_in = int(np.prod(shape[1:])) if i == 1 and len(shape) > 1 else 1
            arrays.append((rng.standard_normal(shape) / math.sqrt(fan_in)).astype(dtype))
        elif dtype == "int32":             # bias
            arrays.append(rng.integers(-5000, 5001, shape).astype(dtype))
        else:                              # int8 / uint8 codes over the whole range (weights: narrow)
            info = np.iinfo(dtype)
            lo = info.min + 1 if (i == 1 and info.min < 0) else info.min
            arrays.append(rng.integers(lo, int(info.max) + 1, shape).astype(dtype))
    return arrays


def _disagreement(y, ref, rule) -> str:
    """Why output `y` does not match the rule's pick `ref` ("" when it does)."""
    if y.shape != ref.shape or y.dtype != ref.dtype:
        return f"output {y.dtype}{list(y.shape)} differs from {rule}'s {ref.dtype}{list(ref.shape)}"
    if np.issubdtype(y.dtype, np.integer):
        bad = int(np.count_nonzero(y != ref))
        return f"{bad} of {y.size} outputs differ from {rule}'s" if bad else ""
    if not np.all(np.isfinite(y)):
        return "non-finite outputs"
    err = float(np.abs(y.astype(np.float64) - ref).max())
    limit = FP32_TOLERANCE * max(1.0, float(np.abs(ref).max()))
    return f"max |difference| {err:.3g} from {rule}'s exceeds {limit:.3g}" if err > limit else ""
