"""Run a compiled model on a remote device through TVM's own RPC (tvm.rpc), e.g. an Arm board that
runs `python -m tvm.exec.rpc_server --host 0.0.0.0 --port 9090` (it needs only the apache-tvm wheel,
no Yuan). The library is uploaded to the server, loaded there and run there; inputs and outputs
travel as tensors.

    p = remote.load("model.so", "192.168.1.20:9090")       # a server
    p = remote.load("model.so", "tracker-host:9190/rk3588")  # a tracker and a device key
    p.run(x), p.benchmark(repeat=50)                         # as runtime.Predictor

The sidecar and the library's SHA-256 are checked here before anything is sent. `yuan run`,
`yuan bench` and `yuan profile` (remote_profiler.py) take `--rpc ADDRESS` and use this instead of
runtime.load.

TVM 0.27 cannot send a VM's tuple result back over RPC (it arrives as an opaque RPCObjectRef), so
run() uses the VM's stateful API (set_input / invoke_stateful / get_outputs), and benchmark() times
invoke_stateful with the VM's time_evaluator on the device itself: the network is not in the figures.
"""
from __future__ import annotations

import os
import re
import socket
import statistics
from typing import NoReturn

from . import (Predictor, RuntimeLoadError, _check_library_hash, _first_error_line, _read_sidecar,
               _validate_sidecar, sidecar_path)

_DEVICE_KINDS = ("cpu", "cuda")
SERVER_HINT = "start one there with: python -m tvm.exec.rpc_server --host 0.0.0.0 --port {port}"


class RemoteError(RuntimeLoadError):
    """The RPC address is malformed or unreachable, or the remote side refused the model."""


def _reason(exc) -> str:
    """The informative line of a TVM/RPC error, without its 'Check failed: (...) is false:' prefix."""
    lines = [line for line in str(exc).splitlines() if line.strip() and "Error caught from RPC call" not in line]
    text = lines[0] if lines else _first_error_line(exc)
    return re.sub(r"^Check failed: \(.*?\) is false:\s*", "", text.strip())[:300]


def _raise_released(message: str) -> NoReturn:
    """Raise RemoteError(message) with nothing of a failed RPC call left holding its session. A server
    serves one session at a time and TVM ends a session only when nothing refers to it any more; the
    failure's traceback frames do. So the caller keeps only the message, leaves its except block (which
    drops the exception) and its own session references, and this collects the cycles that still hold
    the session before raising; otherwise the next client waits for ever."""
    import gc
    gc.collect()
    raise RemoteError(message)


def parse_address(address: str) -> tuple[str, int, str | None]:
    """'HOST:PORT' (an RPC server) or 'HOST:PORT/KEY' (a tracker and a device key) ->
    (host, port, key or None)."""
    text = str(address).strip()
    where, slash, key = text.partition("/")
    host, sep, port = where.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or (slash and not key):
        raise RemoteError(f"--rpc '{address}': expected HOST:PORT (an RPC server) or HOST:PORT/KEY "
                          f"(a tracker and a device key), with PORT in 1..65535")
    return host, int(port), key or None


def connect(address: str):
    """An RPC session: straight to a server, or through a tracker for a device of the key."""
    from tvm import rpc
    host, port, key = parse_address(address)
    try:
        if key is None:
            return rpc.connect(host, port)
        # TVM's tracker client retries a refused connection for a minute: probe once first
        socket.create_connection((host, port), timeout=10).close()
        return rpc.connect_tracker(host, port).request(key, max_retry=1)
    except Exception as exc:
        what = f"the RPC tracker at {host}:{port} (key '{key}')" if key else f"the TVM RPC server at {host}:{port}"
        hint = "" if key else "; " + SERVER_HINT.format(port=port)
        raise RemoteError(f"cannot reach {what}: {_reason(exc)}{hint}") from None


def _remote_device(session, device: str):
    kind, _, index = str(device).partition(":")
    if kind not in _DEVICE_KINDS or not (index or "0").isdigit():
        raise RemoteError(f"unknown remote device '{device}'; use one of {list(_DEVICE_KINDS)} (optionally ':N')")
    dev = getattr(session, kind)(int(index or 0))
    if not dev.exist:
        raise RemoteError(f"device '{device}' is not available on the remote machine")
    return dev


class RemotePredictor(Predictor):
    """A model loaded on a remote device: the same run()/benchmark() as a local Predictor (and its
    input checks); the session is kept open while this object lives."""

    def __init__(self, path, module, metadata, device, session, address):
        super().__init__(path, module, metadata, device)
        self.session = session
        self.address = address

    def __repr__(self):
        return f"Remote{super().__repr__()[:-1]}, rpc={self.address})"

    def close(self) -> None:
        """End the RPC session. A server serves one session at a time: the next client waits until
        this one is gone, and TVM ends a session only when nothing refers to it any more."""
        self._vm = self.module = self.session = self.device = None
        import gc
        gc.collect()   # the VM wrappers hold reference cycles; free them now, not at some later GC

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def run(self, inputs) -> dict:
        self._vm.set_input(self._entry, *self._feed(inputs))
        self._vm.invoke_stateful(self._entry)
        return self._outputs(self._vm.get_outputs(self._entry))

    __call__ = run

    def benchmark(self, inputs=None, repeat: int = 20, warmup: int = 3) -> dict:
        """Time `repeat` calls on the remote device (its own timer) after `warmup` calls."""
        self._vm.set_input(self._entry, *self._feed(self.random_inputs() if inputs is None else inputs))
        for _ in range(max(0, int(warmup))):
            self._vm.invoke_stateful(self._entry)
        timer = self._vm.time_evaluator("invoke_stateful", self.device, number=1, repeat=max(1, int(repeat)))
        times = [t * 1e3 for t in timer(self._entry).results]
        return {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times),
                "min_ms": min(times), "max_ms": max(times),
                "std_ms": statistics.pstdev(times), "repeat": len(times), "warmup": int(warmup)}


def load(path: str, address: str, device: str = "cpu") -> RemotePredictor:
    """Check the model here, upload it to the RPC server (or tracker device) at `address` and load
    it there. Errors are one-line RuntimeLoadError / RemoteError."""
    path = os.fspath(path)
    parse_address(address)                       # a malformed address before any file work
    if not os.path.isfile(path):
        raise RuntimeLoadError(f"model library '{path}' does not exist")
    meta_path = sidecar_path(path)
    metadata = _read_sidecar(path, meta_path)
    _validate_sidecar(metadata, meta_path)
    if "so" not in metadata.get("artifacts", {"so": None}):
        raise RemoteError(f"'{path}' has no shared library to upload (target {metadata.get('target')} "
                          f"writes {sorted(metadata['artifacts'])}); link its archive into an app instead")
    _check_library_hash(path, metadata, meta_path)
    session = connect(address)
    try:
        return _load_on(session, path, metadata, device, address)
    except RemoteError as exc:
        message = str(exc)
    session = None                               # see _raise_released
    _raise_released(message)


def _load_on(session, path, metadata, device, address) -> RemotePredictor:
    name = os.path.basename(path)
    try:
        session.upload(path, name)
        module = session.load_module(name)
    except Exception as exc:
        raise RemoteError(f"the remote side cannot load '{path}' (built for target {metadata.get('target')}; "
                          f"is the remote machine one?): {_reason(exc)}") from None
    dev = _remote_device(session, device)
    try:
        return RemotePredictor(path, module, metadata, dev, session, address)
    except Exception as exc:
        raise RemoteError(f"'{path}' is not a Yuan/TVM Relax model library on the remote side: "
                          f"{_reason(exc)}") from None


__all__ = ["load", "connect", "parse_address", "RemotePredictor", "RemoteError"]
