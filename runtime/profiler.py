"""Per-op time of a compiled module: which kernel or fused light op the time goes to.

    prof = profile(yuan.load("model.so"), {"x": x}, repeat=20)
    print(prof.table())                    # sorted: time, share, GOPS, node, op, kernel, layout, shapes
    print(prof.kernel_table())             # the same time grouped by kernel / light-op function
    prof.write_chrome_trace("trace.json")  # one slice per op per run (Perfetto, chrome://tracing)

How: one run of the Relax VM with an instrument callback records the sequence of calls and their
argument tensors (TVM 0.27 has no VM profiler, and timing inside the Python callback would measure
the callback); the instrument is removed again (a Python callback left in place costs microseconds
per call in every later run). Then each round runs the whole model once, timed, and replays the
recorded calls in order on the very tensors the VM used (its planned buffers), timing each: every
op finds the cache as the model leaves it (its input just written by the op before it), which
TVM's time_evaluator does not give (it runs a call once untimed first, so its weights are in the
cache: MobileNetV2 int8 summed to 0.84 of the whole model that way, against 0.99 replayed). The
table shows each op's median over the rounds; a timed call includes the ~1 us of a Python call,
about what the VM spends dispatching it. The VM's own work between the calls (`vm_builtin_calls`: tensor
views of the planned storage, shape checks) is in no op, so `end_to_end_s` (measured as `yuan
bench` measures it, interleaved with the replays) can be compared with the per-op sum (`replay_s`:
the median of the rounds' sums, so that both are medians of whole runs, equally exposed to other
processes taking the CPU; docs/tools.md gives the ratios measured on the zoo models).

What each kernel computes (node, op, layout, logical shapes, multiply-adds) comes from the sidecar's
"kernel_info" (written by compile_graph); a fused light op shows its function name and the shapes of
the tensors it was called with (the last one is its output).
"""
from __future__ import annotations

import json
import os
import re
import statistics
import time
from dataclasses import dataclass, field

_VM_BUILTIN = "vm.builtin."
_CPU = 1   # DLPack's kDLCPU: kernels return when done, no device sync needed per call


@dataclass
class OpTime:
    index: int                 # position in the run
    symbol: str                # the function the VM called
    seconds: float             # median over the repeats
    runs: list = field(default_factory=list)   # one time per repeat
    info: dict = field(default_factory=dict)   # node, op, kernel, layout, inputs, output, macs

    @property
    def gops(self) -> float:
        macs = self.info.get("macs", 0)
        return 2 * macs / self.seconds / 1e9 if macs and self.seconds > 0 else 0.0

    @property
    def name(self) -> str:
        """The kernel's name (schedules registry) or, for a light op, its function."""
        return self.info.get("kernel", self.symbol)

    @property
    def shapes(self) -> str:
        ins = " ".join(str(s) for s in self.info.get("inputs", []) if s)
        return f"{ins} -> {self.info.get('output', '')}"


@dataclass
class Profile:
    model: str
    ops: list
    end_to_end_s: float         # median of the whole-model runs
    replay_s: float = 0.0       # median over the rounds of the sum of the round's op times
    vm_builtin_calls: int = 0   # per run: the VM's own calls between the ops
    where: str = ""             # where and how it was measured, when not here (remote_profiler)

    @property
    def total_s(self) -> float:
        return sum(op.seconds for op in self.ops)

    def table(self, top: int | None = None) -> str:
        """The calls sorted by time (the `top` slowest), then a line comparing the sum with the
        end-to-end time."""
        total = self.total_s or 1.0
        rows = sorted(self.ops, key=lambda op: -op.seconds)[:top]
        lines = [f"{'time (us)':>10} {'share':>6} {'GOPS':>7}  {'node':<24} {'op':<10} {'kernel / function':<32} "
                 f"{'layout':<6} shapes (in -> out)"]
        for op in rows:
            info = op.info
            lines.append(f"{op.seconds * 1e6:10.1f} {100 * op.seconds / total:5.1f}% {op.gops:7.1f}  "
                         f"{info.get('node', '-')[:24]:<24} {info.get('op', 'light op')[:10]:<10} {op.name[:32]:<32} "
                         f"{info.get('layout', ''):<6} {op.shapes}")
        if top is not None and top < len(self.ops):
            lines.append(f"... {len(self.ops) - top} faster calls not shown")
        ratio = self.replay_s / self.end_to_end_s if self.end_to_end_s else float("nan")
        lines.append(f"{len(self.ops)} calls: per-op sum {self.replay_s * 1e3:.3f} ms (median of the runs' sums), end to end "
                     f"{self.end_to_end_s * 1e3:.3f} ms (sum / end to end = {ratio:.2f}; the rest is the VM's "
                     f"own work, {self.vm_builtin_calls} builtin calls per run)")
        if self.where:
            lines.append(f"measured on the {self.where}")
        return "\n".join(lines)

    def by_kernel(self) -> list:
        """[(kernel or light-op function, seconds, calls)], slowest first: where the time goes
        when the same kernel serves many nodes (light-op functions numbered by TVM are grouped)."""
        groups = {}
        for op in self.ops:
            name = op.name if op.info.get("kernel") else re.sub(r"_?\d+$", "", op.name)
            seconds, calls = groups.get(name, (0.0, 0))
            groups[name] = (seconds + op.seconds, calls + 1)
        return sorted(((k, s, c) for k, (s, c) in groups.items()), key=lambda row: -row[1])

    def kernel_table(self, top: int | None = None) -> str:
        total = self.total_s or 1.0
        lines = [f"{'time (us)':>10} {'share':>6} {'calls':>5}  kernel / function"]
        lines += [f"{s * 1e6:10.1f} {100 * s / total:5.1f}% {c:5d}  {name}" for name, s, c in self.by_kernel()[:top]]
        return "\n".join(lines)

    def chrome_trace(self) -> dict:
        """Trace Event Format: complete events ("ph": "X", microseconds), one per op per run, the
        runs one after the other on one thread track, plus the process/thread name metadata."""
        meta = [{"name": "process_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": f"yuan {self.model}"}},
                {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "ops"}}]
        events, t = [], 0.0
        repeats = min(len(op.runs) for op in self.ops) if self.ops else 0
        for run in range(repeats):
            for op in self.ops:
                dur = op.runs[run] * 1e6
                args = {"symbol": op.symbol, "kernel": op.name, "run": run, "index": op.index, "shapes": op.shapes,
                        **{k: op.info[k] for k in ("node", "layout", "macs") if k in op.info}}
                events.append({"name": op.info.get("node", op.symbol), "cat": op.info.get("op", "light op"),
                               "ph": "X", "ts": round(t, 3), "dur": round(dur, 3), "pid": 1, "tid": 1,
                               "args": args})
                t += dur
        return {"traceEvents": meta + events, "displayTimeUnit": "ms",
                "otherData": {"model": self.model, "end_to_end_ms": self.end_to_end_s * 1e3,
                              **({"measured_on": self.where} if self.where else {})}}

    def write_chrome_trace(self, path: str) -> None:
        """Written whole or not at all (a temporary file renamed into place)."""
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(tmp, "w") as f:
                json.dump(self.chrome_trace(), f)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def _record_calls(predictor, args) -> tuple[list, int]:
    """([(function name, argument tensors)] of one run; how many calls were the VM's own work: its
    builtins and functions without arguments (the weights accessor, compiler/library_weights.py)."""
    calls, builtins = [], []

    def instrument(func, name, before_run, ret, *call_args):
        if before_run:
            own_work = str(name).startswith(_VM_BUILTIN) or not call_args
            (builtins.append(1) if own_work else calls.append((str(name), list(call_args))))
        return 0   # kNoOp: the VM goes on as usual

    predictor.vm.set_instrument(instrument)
    try:
        predictor.vm[predictor.entry](*args)
    finally:
        predictor.vm.set_instrument(None)   # no callback left behind: it would slow every later run
    return calls, len(builtins)


def _owner(module, name):
    """The (imported) runtime module that implements `name`."""
    stack = [module]
    while stack:
        m = stack.pop()
        try:
            if m.implements_function(name, False):
                return m
        except Exception:  # some module kinds cannot answer; look further
            pass
        stack.extend(m.imports)
    raise KeyError(f"function '{name}' is not in the module")


def light_op_info(shapes) -> dict:
    """What the table shows for a function without kernel_info: the shapes it was called with
    (the last one is its output)."""
    shapes = [list(s) for s in shapes]
    return {"inputs": shapes[:-1], "output": shapes[-1]} if shapes else {}


def profile(predictor, inputs=None, repeat: int = 20) -> Profile:
    """Time every op of one run of `predictor` (a yuan.runtime Predictor) on `inputs` (dict or
    array, as Predictor.run; None: Predictor.random_inputs()): `repeat` rounds of one timed
    whole-model run and one timed replay of its calls (after one untimed round). A model on an
    RPC device (remote.load) is timed there op by op (remote_profiler.py)."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    from .remote import RemotePredictor
    if isinstance(predictor, RemotePredictor):   # no instrument over RPC: timed op by op there
        from .remote_profiler import profile_remote
        return profile_remote(predictor, inputs, repeat)
    inputs = predictor.random_inputs() if inputs is None else inputs
    args = predictor.device_inputs(inputs)
    calls, builtin_calls = _record_calls(predictor, args)
    functions = [_owner(predictor.module, name).get_function(name) for name, _ in calls]
    run_model = predictor.vm[predictor.entry]
    sync = predictor.device.sync if predictor.device.dlpack_device_type() != _CPU else (lambda: None)
    clock = time.perf_counter
    runs, whole = [[] for _ in calls], []
    for _ in range(repeat + 1):
        t0 = clock()
        run_model(*args)
        predictor.device.sync()
        whole.append(clock() - t0)
        for times, function, (_, call_args) in zip(runs, functions, calls):
            t0 = clock()
            function(*call_args)
            sync()
            times.append(clock() - t0)
    runs, whole = [times[1:] for times in runs], whole[1:]   # the first round warms up
    kernel_info = predictor.metadata.get("kernel_info", {})
    ops = [OpTime(index, name, statistics.median(times), times,
                  kernel_info.get(name) or light_op_info(a.shape for a in call_args if hasattr(a, "shape")))
           for index, ((name, call_args), times) in enumerate(zip(calls, runs))]
    replay = statistics.median(sum(round_) for round_ in zip(*runs)) if runs else 0.0
    return Profile(predictor.metadata.get("model", ""), ops, statistics.median(whole), replay, builtin_calls)


__all__ = ["profile", "Profile", "OpTime", "light_op_info"]
