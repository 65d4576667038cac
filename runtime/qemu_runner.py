"""Run aarch64 model libraries (compiler.build targets aarch64 / aarch64-dotprod) on an x86-64 host
under qemu-user, with an arm64 Python 3.11 + aarch64 TVM runtime tree.  For correctness checks only:
emulated time says nothing about Arm performance.

One-time setup (~2 min, ~450 MB; needs apt-get, pip and network):

    runtime/arm64/build_arm64_root.sh            # -> $YUAN_ARM64_ROOT or ~/.cache/yuan/arm64-root

Command line (host side):

    python -m yuan.runtime.qemu_runner model.so --input x.npy [--input y.npy] --out outdir [--cpu cortex-a76]

From Python:

    from yuan.runtime import qemu_runner
    res = qemu_runner.run_models([{"lib": "a.so", "inputs": [x]}, {"lib": "b.so", "inputs": [x]}],
                                 cpu="cortex-a76")
    res.outputs[i]      # list of np.ndarray for case i (None when that case did not finish)
    res.returncode      # qemu's exit status (-4 = SIGILL, e.g. a dotprod build on -cpu cortex-a53)

`import tvm` takes ~13 s under qemu, so run_models runs every case in ONE emulated process. This file
is also the guest-side script (`python3.11 qemu_runner.py --guest manifest.json`), which imports only
tvm and numpy.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

MARKER = ".yuan-arm64-ok"
# Package data next to this file, so an installed Yuan can build the tree too. Found through
# __file__, not importlib.resources: this file also runs as a plain script inside the arm64 guest,
# where no yuan package is installed.
BUILD_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "arm64", "build_arm64_root.sh")


class QemuRunnerError(RuntimeError):
    """qemu-aarch64 or the arm64 Python tree is missing, or the emulated run failed."""


def arm64_root() -> str:
    """$YUAN_ARM64_ROOT, else ~/.cache/yuan/arm64-root."""
    return os.path.abspath(os.path.expanduser(
        os.environ.get("YUAN_ARM64_ROOT") or os.path.join("~", ".cache", "yuan", "arm64-root")))


def qemu_binary() -> str | None:
    return shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")


def guest_python(root: str | None = None) -> str:
    return os.path.join(root or arm64_root(), "usr", "bin", "python3.11")


def guest_site(root: str | None = None) -> str:
    """The aarch64 wheels' site-packages in the tree (tvm/, tvm_ffi/: runtime libraries and headers)."""
    return os.path.join(root or arm64_root(), "opt", "site")


def root_ready(root: str | None = None) -> bool:
    """True when the tree was built completely (marker written by the build script)."""
    root = root or arm64_root()
    return os.path.exists(os.path.join(root, MARKER)) and os.path.exists(guest_python(root))


def build_root(root: str | None = None, log_path: str | None = None, timeout: float = 900) -> str:
    """Run runtime/arm64/build_arm64_root.sh. Raises QemuRunnerError (with the log tail) on failure."""
    root = root or arm64_root()
    if qemu_binary() is None:
        raise QemuRunnerError("qemu-aarch64 is not installed (apt-get install qemu-user)")
    if not os.path.exists(BUILD_SCRIPT):
        raise QemuRunnerError(f"build script not found: {BUILD_SCRIPT}")
    os.makedirs(os.path.dirname(root), exist_ok=True)
    log_path = log_path or root + ".build.log"
    with open(log_path, "w") as log:
        try:
            rc = subprocess.run(["sh", BUILD_SCRIPT, root], stdout=log, stderr=subprocess.STDOUT,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    if rc != 0 or not root_ready(root):
        tail = open(log_path, errors="replace").read()[-1500:]
        raise QemuRunnerError(f"building the arm64 Python tree failed ({rc}); log {log_path}:\n{tail}")
    return root


@dataclass
class QemuResult:
    returncode: int
    outputs: list = field(default_factory=list)     # per case: list of np.ndarray, or None
    errors: list = field(default_factory=list)      # per case: error text from the guest, or None
    stdout: str = ""
    stderr: str = ""

    @property
    def crashed_by_signal(self) -> int | None:
        """Signal number when qemu died from a signal (SIGILL = 4), else None."""
        if self.returncode < 0:
            return -self.returncode
        if self.returncode > 128:
            return self.returncode - 128
        return None


def run_models(cases, cpu: str | None = None, root: str | None = None, timeout: float = 600,
               num_threads: int = 1, qemu_args=()) -> QemuResult:
    """Run each case {"lib": path, "inputs": [np arrays], "entry": "main"} in one qemu-aarch64 process.
    cpu: qemu -cpu model (e.g. "cortex-a76" has dotprod, "cortex-a53" does not; None = qemu's default).
    Cases run in order; a crash (e.g. SIGILL) leaves the later cases' outputs as None. A case's "repeat"
    (default 1) runs it that many times; qemu_args go before the program (e.g. a counting -plugin)."""
    import numpy as np
    root = root or arm64_root()
    qemu = qemu_binary()
    if qemu is None:
        raise QemuRunnerError("qemu-aarch64 is not installed (apt-get install qemu-user)")
    if not root_ready(root):
        raise QemuRunnerError(f"no arm64 Python tree at {root}; build it with {BUILD_SCRIPT} "
                              f"(or set YUAN_ARM64_ROOT)")
    work = tempfile.mkdtemp(prefix="yuan_qemu_")
    try:
        manifest = []
        for i, case in enumerate(cases):
            ins = []
            for j, a in enumerate(case["inputs"]):
                p = os.path.join(work, f"case{i}_in{j}.npy")
                np.save(p, np.ascontiguousarray(a))
                ins.append(p)
            manifest.append({"lib": os.path.abspath(case["lib"]), "inputs": ins,
                             "entry": case.get("entry", "main"), "out": os.path.join(work, f"case{i}"),
                             "repeat": int(case.get("repeat", 1))})
        mpath = os.path.join(work, "manifest.json")
        with open(mpath, "w") as f:
            json.dump(manifest, f)
        argv = [qemu, "-L", root] + (["-cpu", cpu] if cpu else []) + list(qemu_args) + \
            [guest_python(root), os.path.abspath(__file__), "--guest", mpath]
        env = dict(os.environ, PYTHONPATH=guest_site(root), PYTHONNOUSERSITE="1",
                   TVM_NUM_THREADS=str(num_threads))
        env.pop("PYTHONHOME", None)
        env.pop("LD_LIBRARY_PATH", None)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise QemuRunnerError(f"qemu-aarch64 run timed out after {timeout}s") from exc
        res = QemuResult(proc.returncode, stdout=proc.stdout, stderr=proc.stderr)
        for m in manifest:
            done = m["out"] + ".done.json"
            if not os.path.exists(done):
                res.outputs.append(None)
                res.errors.append(None)
                continue
            info = json.load(open(done))
            if info.get("error"):
                res.outputs.append(None)
                res.errors.append(info["error"])
            else:
                res.outputs.append([np.load(p) for p in info["outputs"]])
                res.errors.append(None)
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------- guest side
def _guest_main(manifest_path: str) -> int:
    """Runs inside the arm64 Python: imports only tvm + numpy."""
    import traceback

    import numpy as np
    import tvm
    from tvm import relax
    dev = tvm.cpu()
    status = 0
    for case in json.load(open(manifest_path)):
        info = {"outputs": [], "error": None}
        try:
            vm = relax.VirtualMachine(tvm.runtime.load_module(case["lib"]), dev)
            args = [tvm.runtime.tensor(np.load(p), dev) for p in case["inputs"]]
            for _ in range(case.get("repeat", 1)):
                ret = vm[case["entry"]](*args)
            outs = list(ret) if not hasattr(ret, "numpy") else [ret]
            for j, o in enumerate(outs):
                p = f"{case['out']}_out{j}.npy"
                np.save(p, o.numpy())
                info["outputs"].append(p)
        except Exception:  # report per case, keep going
            info["error"] = traceback.format_exc()[-3000:]
            status = 1
        with open(case["out"] + ".done.json", "w") as f:
            json.dump(info, f)
        print(f"[guest] {os.path.basename(case['lib'])}: {'error' if info['error'] else 'ok'}", flush=True)
    return status


def _host_main(argv=None) -> int:
    import argparse

    import numpy as np
    ap = argparse.ArgumentParser(description="run an aarch64 model library under qemu-aarch64")
    ap.add_argument("lib")
    ap.add_argument("--input", action="append", default=[], help=".npy input (repeat, in model order)")
    ap.add_argument("--out", default=".", help="directory for output_<i>.npy")
    ap.add_argument("--cpu", default=None, help="qemu -cpu model (cortex-a76: dotprod; cortex-a53: none)")
    ap.add_argument("--entry", default="main")
    ap.add_argument("--build-root", action="store_true", help="build the arm64 tree first if missing")
    a = ap.parse_args(argv)
    if a.build_root and not root_ready():
        build_root()
    res = run_models([{"lib": a.lib, "inputs": [np.load(p) for p in a.input], "entry": a.entry}], cpu=a.cpu)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    if res.errors[0]:
        sys.stderr.write(res.errors[0])
    if res.outputs[0] is None:
        print(f"run failed (qemu exit status {res.returncode})", file=sys.stderr)
        return 1
    os.makedirs(a.out, exist_ok=True)
    for j, o in enumerate(res.outputs[0]):
        p = os.path.join(a.out, f"output_{j}.npy")
        np.save(p, o)
        print(f"{p}: {o.dtype} {list(o.shape)}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--guest":
        sys.exit(_guest_main(sys.argv[2]))
    sys.exit(_host_main())
