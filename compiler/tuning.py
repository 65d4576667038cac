"""Per-shape algorithm choice by measurement (`yuan compile --tune`, MegEngine's "fast-run" idea).

    mod, lowered, summary = lower_with_choices(graph, target, mode)

mode: "rule" (the registry's written rule: highest priority that applies), "cached" (measured choices
from the tuning cache where present, else the rule; the default), "tune" (measure the shapes the cache
lacks first), "retune" (measure every shape of this graph again).

The lowering records every conv/linear selection (schedules/choices.py); each distinct shape with two or
more competing kernels is measured once (compiler/tune_measure.py: checked outputs, interleaved medians;
the key ignores requantization values) and the results go to the cache (compiler/tune_cache.py), so
later compiles of the same shape for the same target reuse them without timing.
"""
from __future__ import annotations

import logging
import time

from yuan.schedules.choices import ChoiceTable, using_choices

from . import tune_measure
from .errors import BuildError
from .relax import lower_graph
from .tune_cache import TuneCache, cache_path, check_writable

_log = logging.getLogger(__name__)

MODES = ("rule", "cached", "tune", "retune")


def lower_with_choices(graph, target, mode: str = "cached", *, rounds: int = tune_measure.ROUNDS):
    """Lower `graph` with the per-shape kernel choices `mode` asks for. Returns (mod, lowered, summary):
    `lowered` as lower_graph's, its kernel_info entries of tunable calls carrying "choice" ("rule" or
    "tuned") and, when tuned, "tuned_us" (the medians); `summary` is the sidecar's "kernel_choice"."""
    measuring = check_tuning(target, mode)
    cache = None if mode == "rule" else TuneCache(target)
    table = ChoiceTable(target, cache.choices() if cache else {})
    with using_choices(table):
        mod, lowered = lower_graph(graph, target)
    t0 = time.perf_counter()
    measured = []
    if measuring:
        measured = _to_measure(table.calls, cache.entries, retune=mode == "retune")
        for i, call in enumerate(measured):
            _log.info("tuning %d/%d: %s", i + 1, len(measured), call.label())
            cache.entries[call.key] = tune_measure.measure(call, target, rounds)
        if measured:
            cache.save()
            table = ChoiceTable(target, cache.choices())
            with using_choices(table):
                mod, lowered = lower_graph(graph, target)
    _annotate(lowered["kernel_info"], table, cache)
    return mod, lowered, _summary(mode, cache, table, measured, time.perf_counter() - t0)


def check_tuning(target, mode: str) -> bool:
    """Whether `mode` measures; raises BuildError / TuneCacheError at once (before any slow work) when it
    measures and cannot: a target whose modules do not run here, a cache folder that cannot be written."""
    if mode not in MODES:
        raise ValueError(f"kernel choice mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode not in ("tune", "retune"):
        return False
    if not getattr(target, "runs_here", False):
        raise BuildError(f"--tune times kernels on this machine, and modules for target '{target.name}' do "
                         f"not run here; tune on the device itself, or compile without --tune")
    check_writable(cache_path(target))
    return True


def _to_measure(calls, entries, retune):
    """One call per distinct key with two or more timed candidates, not yet in the cache (all with retune)."""
    todo = {}
    for call in calls:
        if len(tune_measure.timed_candidates(call)) > 1 and (retune or call.key not in entries):
            todo.setdefault(call.key, call)
    return list(todo.values())


def _annotate(kernel_info, table, cache) -> None:
    """Mark each tunable call in kernel_info with where its kernel choice came from."""
    by_symbol = {c.symbol: c for c in table.calls}
    for symbol, info in kernel_info.items():
        call = by_symbol.get(symbol)
        if call is None and symbol.rpartition("_")[2].isdigit():   # lowering's _1, _2 ... repeats
            call = by_symbol.get(symbol.rpartition("_")[0])
        if call is None:
            continue
        info["choice"] = call.source
        if call.source == "tuned":
            info["tuned_us"] = cache.entries[call.key]["medians_us"]


def _summary(mode, cache, table, measured, seconds) -> dict:
    keys = {c.key for c in table.calls if len(tune_measure.timed_candidates(c)) > 1}
    entries = cache.entries if cache else {}
    tuned = {c.key for c in table.calls if c.source == "tuned"}
    return {"mode": mode, "cache": cache.path if cache else None,
            "shapes": len(keys), "tuned_shapes": len(tuned),
            "differ_from_rule": sum(1 for k in tuned if entries[k]["kernel"] != entries[k].get("rule")),
            "calls": len(table.calls), "tuned_calls": sum(1 for c in table.calls if c.source == "tuned"),
            "measured_now": len(measured), "tune_seconds": round(seconds, 3) if measured else 0.0}


def describe_choice(summary) -> str:
    """One line for `yuan compile`: where the per-shape kernel choices came from."""
    if not summary or summary.get("mode") == "rule" or not summary.get("shapes"):
        return "kernel choice: the written rule"
    line = (f"kernel choice: {summary['tuned_shapes']} of {summary['shapes']} conv/linear shapes with competing "
            f"kernels measured ({summary['differ_from_rule']} differ from the written rule)")
    if summary.get("measured_now"):
        line += f", {summary['measured_now']} measured now in {summary['tune_seconds']:.1f}s"
    return line + f"; cache {summary['cache']}"
