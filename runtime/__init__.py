"""Yuan runtime: load a library built by compiler.build and run it with NumPy arrays.

    p = yuan.load("model.so")             # (yuan.runtime.load) reads the sidecar model.json too
    outputs = p.run({"input": x})         # or p.run(x) for a one-input model -> {name: array}
    p.benchmark(repeat=50, warmup=5)      # {"median_ms", "mean_ms", ...}
    p.metadata                            # the sidecar dict
    p.vm, p.module, p.entry               # the Relax VM, the loaded library, the entry function (tools)
    p.random_inputs(), p.device_inputs(x) # inputs of the sidecar's shapes; x checked as run() does

On the CPU, run() reuses one input tensor per input (or passes an aligned array without a copy:
runtime/staging.py), so one Predictor runs one call at a time.

load() checks the sidecar before it touches the library: it must be valid JSON of the Yuan format
(inputs/outputs as lists of {name: str, shape: [int >= 0, ...], dtype: a NumPy dtype name}, entry a
string), and the library's SHA-256 must equal the one recorded at compile time ("sha256" -> "so"), so
a file changed or damaged since it was compiled is refused with RuntimeLoadError instead of crashing
the process inside TVM. Sidecars written before hashes were recorded (format version 1) are accepted
without the hash check, for compatibility: recompile such a module to get the check. A version 2+
sidecar without a hash is refused (it was edited).

Imports only tvm, numpy, json and hashlib (plus the standard library).
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
import time

import numpy as np

from .staging import InputStaging, outputs_to_numpy

__all__ = ["load", "Predictor", "RuntimeInputError", "RuntimeLoadError"]

_ELF_MACHINES = {62: "x86_64", 183: "aarch64", 40: "arm", 3: "x86"}
_HASHED_SINCE_VERSION = 2   # sidecar format version from which compile_graph records "sha256"


class RuntimeLoadError(RuntimeError):
    """The artifact or its sidecar cannot be loaded."""


class RuntimeInputError(ValueError):
    """The inputs given to Predictor.run do not match the model."""


def sidecar_path(artifact_path: str) -> str:
    return os.path.splitext(artifact_path)[0] + ".json"


def _host_machine() -> str:
    import platform
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def _check_library_file(path: str) -> None:
    """Cheap ELF sanity checks before dlopen: a truncated or foreign file would otherwise crash
    the process (SIGBUS) or give a long TVM traceback."""
    try:
        with open(path, "rb") as f:
            data = f.read(64)
            size = os.fstat(f.fileno()).st_size
            if data[:4] != b"\x7fELF":
                raise RuntimeLoadError(f"'{path}' is not a compiled model library (not an ELF shared "
                                       f"object); rebuild it with compiler.build.compile_graph")
            if len(data) < 64 or data[4] != 2:
                raise RuntimeLoadError(f"'{path}' is not a 64-bit ELF shared object")
            order = "little" if data[5] == 1 else "big"
            u = lambda a, b: int.from_bytes(data[a:b], order)  # noqa: E731
            e_type, machine = u(16, 18), u(18, 20)
            arch = _ELF_MACHINES.get(machine, f"ELF machine {machine}")
            if arch != _host_machine():
                raise RuntimeLoadError(f"'{path}' was built for {arch}, this machine is {_host_machine()}; "
                                       f"run it on a {arch} device, or rebuild it for this host")
            if e_type != 3:
                raise RuntimeLoadError(f"'{path}' is not a shared library (ELF type {e_type})")
            phoff, shoff = u(32, 40), u(40, 48)
            phentsize, phnum, shentsize, shnum = u(54, 56), u(56, 58), u(58, 60), u(60, 62)
            truncated = phoff + phentsize * phnum > size or shoff + shentsize * shnum > size
            if not truncated:
                f.seek(phoff)
                headers = f.read(phentsize * phnum)
                for k in range(phnum):
                    h = headers[k * phentsize:(k + 1) * phentsize]
                    offset = int.from_bytes(h[8:16], order)
                    filesz = int.from_bytes(h[32:40], order)
                    if offset + filesz > size:
                        truncated = True
                        break
            if truncated:
                raise RuntimeLoadError(f"cannot load model library '{path}': the file is truncated "
                                       f"or corrupt ({size} bytes); rebuild it")
    except OSError as exc:
        raise RuntimeLoadError(f"cannot read model library '{path}': {exc.strerror}") from None


class Predictor:
    """A loaded model: run(inputs) -> {output name: array}."""

    def __init__(self, path: str, module, metadata: dict, device):
        import tvm
        from tvm.runtime.vm import VirtualMachine   # relax.VirtualMachine, without TVM's compiler (runtime-only TVM)
        self.path = path
        self.metadata = metadata
        self.device = device
        self.module = module                   # the loaded library (tools look functions up in it)
        self._vm = VirtualMachine(module, device)
        self._entry = metadata.get("entry", "main")
        self._tvm = tvm
        self.input_names = [i["name"] for i in metadata["inputs"]]
        self.output_names = [o["name"] for o in metadata["outputs"]]
        self._staging = None   # run()'s InputStaging on the CPU (False elsewhere), made on first use
        # the entry's function, looked up once: the VM's lookup by name cost ~20 us per run() after a model's
        # run had left the caches cold (ResNet-18 int8, Zen 4)
        self._entry_fn = None
        self._input_types = [(tuple(i["shape"]), np.dtype(i["dtype"])) for i in metadata["inputs"]]

    def __repr__(self):
        return (f"Predictor({os.path.basename(self.path)}, target={self.metadata.get('target')}, "
                f"inputs={self.input_names}, outputs={self.output_names})")

    @property
    def vm(self):
        """The Relax VirtualMachine that runs the module (the profiler instruments it)."""
        return self._vm

    @property
    def entry(self) -> str:
        """The VM function that runs the model ("main")."""
        return self._entry

    def random_inputs(self, seed: int = 0) -> dict:
        """Deterministic random inputs of the sidecar's shapes and dtypes: standard normal floats,
        integers over their whole range."""
        rng = np.random.default_rng(seed)
        inputs = {}
        for s in self.metadata["inputs"]:
            dt = np.dtype(s["dtype"])
            if dt.kind == "f":
                inputs[s["name"]] = rng.standard_normal(s["shape"]).astype(dt)
            else:
                info = np.iinfo(dt)
                inputs[s["name"]] = rng.integers(info.min, info.max, s["shape"], dtype=dt, endpoint=True)
        return inputs

    def device_inputs(self, inputs) -> list:
        """`inputs` checked as run() checks them, as device tensors in the entry's argument order."""
        return self._feed(inputs)

    # -------------------------------------------------------------- inputs
    def _feed(self, inputs) -> list:
        return [self._tvm.runtime.tensor(np.ascontiguousarray(a), self.device) for a in self._checked(inputs)]

    def _checked(self, inputs) -> list:
        """`inputs` as NumPy arrays in the entry's argument order, their names, shapes and dtypes checked."""
        specs = self.metadata["inputs"]
        if isinstance(inputs, np.ndarray) and len(specs) == 1 and inputs.shape == self._input_types[0][0] \
                and inputs.dtype == self._input_types[0][1]:
            return [inputs]   # the common case, without the general checks' Python work (run() is timed)
        if not isinstance(inputs, dict):
            if len(specs) != 1:
                raise RuntimeInputError(f"the model has {len(specs)} inputs {self.input_names}; "
                                        f"pass a dict name -> array")
            inputs = {specs[0]["name"]: inputs}
        missing = [s["name"] for s in specs if s["name"] not in inputs]
        if missing:
            raise RuntimeInputError(f"missing input(s) {missing}; the model expects {self.input_names}")
        extra = [k for k in inputs if k not in self.input_names]
        if extra:
            raise RuntimeInputError(f"unexpected input(s) {extra}; the model expects {self.input_names}")
        arrays = []
        for spec in specs:
            name, shape, dtype = spec["name"], tuple(spec["shape"]), np.dtype(spec["dtype"])
            a = inputs[name]
            a = a.numpy() if hasattr(a, "numpy") and not isinstance(a, np.ndarray) else a
            a = a.data if not isinstance(a, np.ndarray) and isinstance(getattr(a, "data", None), np.ndarray) else a
            if not isinstance(a, np.ndarray):
                a = np.asarray(a)
                if a.dtype.kind == "f" and dtype.kind == "f":
                    a = a.astype(dtype)
            if a.shape != shape:
                raise RuntimeInputError(f"input '{name}': expected shape {list(shape)}, "
                                        f"got {list(a.shape)}")
            if a.dtype != dtype:
                raise RuntimeInputError(f"input '{name}': expected dtype {dtype.name}, "
                                        f"got {a.dtype.name}")
            arrays.append(a)
        return arrays

    def _outputs(self, result) -> dict:
        items = [result] if isinstance(result, self._tvm.runtime.Tensor) else list(result)
        return {name: t.numpy() for name, t in zip(self.output_names, items)}

    # -------------------------------------------------------------- running
    def run(self, inputs) -> dict:
        if self._staging is None:   # on the CPU: no allocation per run (runtime/staging.py)
            self._entry_fn = self._vm[self._entry]
            cpu = self.device.dlpack_device_type() == self._tvm.cpu().dlpack_device_type()
            self._staging = InputStaging(self._input_types, self.device) if cpu else False
        if not self._staging:
            return self._outputs(self._entry_fn(*self._feed(inputs)))
        args = self._staging.tensors(self._checked(inputs))
        return outputs_to_numpy(self._entry_fn(*args), self.output_names)

    __call__ = run

    def benchmark(self, inputs=None, repeat: int = 20, warmup: int = 3) -> dict:
        """Time `repeat` calls (after `warmup`) on `inputs` (random data of the right shapes
        when None). Returns median/mean/min/max/std in milliseconds."""
        args = self._feed(self.random_inputs() if inputs is None else inputs)
        fn = self._vm[self._entry]
        for _ in range(max(0, int(warmup))):
            fn(*args)
        times = []
        for _ in range(max(1, int(repeat))):
            t0 = time.perf_counter()
            fn(*args)
            self.device.sync()
            times.append((time.perf_counter() - t0) * 1e3)
        return {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times),
                "min_ms": min(times), "max_ms": max(times),
                "std_ms": statistics.pstdev(times), "repeat": len(times), "warmup": int(warmup)}


def _device(name: str):
    import tvm
    kinds = {"cpu": tvm.cpu, "llvm": tvm.cpu, "cuda": tvm.cuda, "gpu": tvm.cuda}
    kind, _, index = str(name).partition(":")
    if kind not in kinds:
        raise RuntimeLoadError(f"unknown device '{name}'; use one of {sorted(kinds)} (optionally ':N')")
    try:
        dev = kinds[kind](int(index or 0))
    except ValueError:
        raise RuntimeLoadError(f"bad device '{name}': the index after ':' must be an integer") from None
    if not dev.exist:   # e.g. cuda on a machine without a GPU or driver
        raise RuntimeLoadError(f"device '{name}' is not available on this machine")
    return dev


def _first_error_line(exc) -> str:
    lines = str(exc).strip().splitlines()
    return (next((line for line in lines if "rror" in line), lines[0] if lines else type(exc).__name__)).strip()[:300]


def _read_sidecar(path: str, meta_path: str) -> dict:
    try:
        with open(meta_path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise RuntimeLoadError(f"'{path}' has no sidecar metadata '{meta_path}' (it is written "
                               f"next to the library by compile_graph)") from None
    except OSError as exc:
        raise RuntimeLoadError(f"cannot read sidecar metadata '{meta_path}': {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:    # JSONDecodeError, bytes that are not UTF-8, ...
        raise RuntimeLoadError(f"sidecar metadata '{meta_path}' is not valid JSON: {_one_line(exc)}") from None


def _one_line(exc) -> str:
    return " ".join(str(exc).split())[:200]


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _tensor_spec_problem(spec) -> str | None:
    """What is wrong with one inputs/outputs entry of a sidecar, or None."""
    if not isinstance(spec, dict):
        return f"must be an object, got {_short(spec)}"
    if not isinstance(spec.get("name"), str):
        return f"'name' must be a string, got {_short(spec.get('name'))}"
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        return f"'shape' must be a list of non-negative integers, got {_short(shape)}"
    dtype = spec.get("dtype")
    try:
        if not isinstance(dtype, str):
            raise TypeError
        np.dtype(dtype)
    except TypeError:
        return f"'dtype' must be a NumPy dtype name such as 'float32', got {_short(dtype)}"
    return None


def _sidecar_problem(metadata: dict) -> str | None:
    """What makes a Yuan sidecar unusable (wrong types, missing keys), or None."""
    for key in ("inputs", "outputs"):
        if key not in metadata:
            return f"it has no '{key}'"
        if not isinstance(metadata[key], list):
            return f"'{key}' must be a list, got {_short(metadata[key])}"
        for i, spec in enumerate(metadata[key]):
            problem = _tensor_spec_problem(spec)
            if problem:
                return f"{key}[{i}]: {problem}"
    entry = metadata.get("entry", "main")
    if not isinstance(entry, str) or not entry:
        return f"'entry' must be a function name, got {_short(entry)}"
    hashes = metadata.get("sha256")
    if hashes is not None and not (isinstance(hashes, dict) and all(isinstance(v, str) for v in hashes.values())):
        return f"'sha256' must map artifact kinds to hex digests, got {_short(hashes)}"
    return None


def _validate_sidecar(metadata, meta_path: str) -> None:
    if not isinstance(metadata, dict) or metadata.get("format") != "yuan-tvm":
        raise RuntimeLoadError(f"'{meta_path}' is not Yuan model metadata")
    problem = _sidecar_problem(metadata)
    if problem:
        raise RuntimeLoadError(f"sidecar metadata '{meta_path}' is invalid: {problem}; recompile the model")


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_library_hash(path: str, metadata: dict, meta_path: str) -> str | None:
    """The library must be byte for byte what compile_graph wrote: TVM aborts the whole process on
    some damaged libraries, so this runs before the library is loaded. Returns the SHA-256 (None for
    a version 1 sidecar, which records none)."""
    expected = (metadata.get("sha256") or {}).get("so")
    if expected is None:
        version = metadata.get("version", 1)
        if isinstance(version, int) and version < _HASHED_SINCE_VERSION:
            return   # written before hashes were recorded: accepted unchecked (see the module docstring)
        raise RuntimeLoadError(f"sidecar metadata '{meta_path}' records no SHA-256 of the library; "
                               f"recompile the model")
    try:
        actual = _file_sha256(path)
    except OSError as exc:
        raise RuntimeLoadError(f"cannot read model library '{path}': {exc.strerror}") from None
    if actual != expected.lower():
        raise RuntimeLoadError(f"model library '{path}' has changed since it was compiled (its SHA-256 "
                               f"differs from the one in '{meta_path}'); recompile it or restore the file")
    return actual


def load(path: str, device: str = "cpu") -> Predictor:
    """Load a model library and its sidecar JSON. Errors are RuntimeLoadError with a short message.
    A library recompiled at a path loaded before in this process is loaded afresh (fresh_load.py)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise RuntimeLoadError(f"model library '{path}' does not exist")
    meta_path = sidecar_path(path)
    metadata = _read_sidecar(path, meta_path)
    _validate_sidecar(metadata, meta_path)
    _check_library_file(path)
    digest = _check_library_hash(path, metadata, meta_path) or _file_sha256(path)
    from .fresh_load import load_library
    try:
        module = load_library(path, digest)   # a library recompiled at this path is loaded afresh
    except Exception as exc:
        raise RuntimeLoadError(f"cannot load model library '{path}': {_first_error_line(exc)}") from None
    try:
        dev = _device(device)
    except RuntimeLoadError:
        raise
    except Exception as exc:
        raise RuntimeLoadError(f"device '{device}' is not available here: {_first_error_line(exc)}") from None
    try:
        return Predictor(path, module, metadata, dev)
    except RuntimeLoadError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()
        raise RuntimeLoadError(f"'{path}' is not a Yuan/TVM Relax model library: "
                               f"{(first[-1] if first else type(exc).__name__)[:300]}") from None
