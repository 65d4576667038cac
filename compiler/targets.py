"""Compile targets: a name from configs/targets.yaml resolved ONCE into a `Target`.

    target = resolve_target("x86")          # or "aarch64-dotprod", "x86-avx2", "cuda", ...
    target.tvm                              # tvm.target.Target (with its host)
    target.isa, target.features             # "x86", {"cpu", "x86", "avx2", "fma", "avx512", ...}
    target.backend                          # "cpu" | "cuda": which compiler/backends pipeline builds it
    target.toolchain                        # how the artifacts are linked / archived
    target.runs_here                        # its modules can be loaded on this machine
    Target.from_tvm({"kind": "llvm", "mcpu": "znver4"})   # an ad-hoc target (tests, experiments)

Everything below the CLI (passes, lowering, kernel selection, backends) takes this object; nothing
re-parses the name, the triple or mcpu/mattr. "mcpu: host" means this machine's CPU: the LLVM CPU
name is detected and the features come from the CPU's own flags. An unknown name raises
UnknownTargetError listing the known ones.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import glob
import importlib.resources
import os
import shlex
import shutil
from dataclasses import dataclass, field

import tvm

from . import target_features


class UnknownTargetError(ValueError):
    """The target name is not in configs/targets.yaml."""


class ToolchainError(RuntimeError):
    """The compiler/linker a target needs is not installed."""


@dataclass(frozen=True)
class Toolchain:
    """How a target's artifacts are written (the `toolchain` section of targets.yaml).

    cross_compiler / cross_options: the C++ compiler that links the shared library (None: TVM's
    default host compiler). ndk_compiler: the Android NDK clang++ preferred when present.
    archiver / archiver_format: llvm-ar for system-lib static archives. artifacts: what is
    written, from ("so", "a")."""
    target_name: str
    artifacts: tuple = ("so",)
    cross_compiler: str | None = None
    cross_options: tuple = ()
    ndk_compiler: str | None = None
    archiver: str = "llvm-ar"
    archiver_format: str | None = None
    install_hint: str = ""

    @classmethod
    def from_config(cls, target_name: str, cfg: dict) -> "Toolchain":
        known = {"artifacts", "cross_compiler", "cross_options", "ndk_compiler", "archiver",
                 "archiver_format", "install_hint"}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"targets.yaml: target '{target_name}': unknown toolchain key(s) {unknown}; "
                             f"allowed: {sorted(known)}")
        artifacts = tuple(cfg.get("artifacts", ["so"]))
        if not artifacts or not set(artifacts) <= {"so", "a"}:
            raise ValueError(f"targets.yaml: target '{target_name}': artifacts must be a non-empty "
                             f"subset of [so, a], got {list(artifacts)}")
        return cls(target_name, artifacts, cfg.get("cross_compiler"),
                   tuple(str(o) for o in cfg.get("cross_options", [])), cfg.get("ndk_compiler"),
                   cfg.get("archiver", "llvm-ar"), cfg.get("archiver_format"), cfg.get("install_hint", ""))

    def missing(self, what: str) -> ToolchainError:
        return ToolchainError(f"target '{self.target_name}' needs {what}, which is not installed"
                              + (f"; install it with: {self.install_hint}" if self.install_hint else ""))

    def compiler_command(self) -> list[str] | None:
        """The C++ compiler command (with its options) that links the shared library; None for
        TVM's default host compiler or when no shared library is written. Raises ToolchainError
        (with the install hint) when it is missing."""
        if "so" not in self.artifacts:
            return None
        ndk = _ndk_compiler(self.ndk_compiler)
        if ndk is not None:
            return [ndk]
        if not self.cross_compiler:
            return None
        argv = shlex.split(self.cross_compiler)
        if shutil.which(argv[0]) is None:
            raise self.missing(f"the cross compiler '{argv[0]}'")
        if "-fuse-ld=lld" in self.cross_options and not _have_lld(argv[0]):
            raise self.missing("the LLVM linker lld (ld.lld)")
        return argv + list(self.cross_options)

    def archiver_command(self) -> list[str] | None:
        """llvm-ar (or ar) for the static archive; None when the target writes none."""
        if "a" not in self.artifacts:
            return None
        for cand in (self.archiver, "llvm-ar"):
            if shutil.which(cand):
                return [cand] + ([f"--format={self.archiver_format}"] if self.archiver_format else [])
        raise self.missing(f"the archiver '{self.archiver}'")


@dataclass(frozen=True, eq=False)
class Target:
    """One compile target, resolved once. See the module docstring."""
    name: str
    config: dict                      # the TVM target dict, "mcpu: host" resolved
    host_config: dict | None
    isa: str                          # "x86" | "aarch64" | "cuda" | "generic"
    features: frozenset
    toolchain: Toolchain = field(default=None)
    description: str = ""
    host_cpu: bool = False            # "mcpu: host": features are this machine's CPU flags

    @functools.cached_property
    def tvm(self) -> tvm.target.Target:
        if self.host_config is not None:
            return tvm.target.Target(self.config, host=self.host_config)
        return tvm.target.Target(self.config)

    @property
    def kind(self) -> str:
        return self.config["kind"]

    @property
    def backend(self) -> str:
        """Name of the compiler/backends pipeline: GPU kinds have their own, LLVM is "cpu"."""
        return "cuda" if self.kind == "cuda" else "cpu"

    @property
    def runs_here(self) -> bool:
        """True when this machine can load and run the target's modules: a CPU target of this
        machine's ISA, for Linux, whose features this CPU has."""
        if self.backend != "cpu" or "so" not in self.toolchain.artifacts:
            return False
        triple = str(self.config.get("mtriple") or "")
        if triple and ("linux" not in triple or "android" in triple):   # Android, iOS: another OS
            return False
        isa, feats = target_features.host_features()
        return isa == self.isa and self.features <= feats

    def with_config(self, **changes) -> "Target":
        """The same target with TVM target keys changed (e.g. arch="sm_90" for another GPU) and its
        features detected again."""
        cfg = {**self.config, **changes}
        isa, feats = target_features.detect(cfg, host_cpu=self.host_cpu)
        return dataclasses.replace(self, config=cfg, isa=isa, features=feats)

    def __repr__(self) -> str:
        return f"Target({self.name!r}, {self.config}, features={sorted(self.features)})"

    @classmethod
    def from_tvm(cls, target, name: str | None = None, host=None) -> "Target":
        """An ad-hoc Target from a tvm.target.Target, a TVM target dict or string (features
        detected from its triple / mcpu / mattr; a host-CPU target when it has neither)."""
        if not isinstance(target, tvm.target.Target):
            target = tvm.target.Target(target)
        cfg = {k: _plain(v) for k, v in target.export().items()
               if k in ("kind", "mtriple", "mcpu", "mattr", "arch") and v not in (None, "", [])}
        if target.host is not None and host is None:
            host = {k: _plain(v) for k, v in target.host.export().items()
                    if k in ("kind", "mtriple", "mcpu", "mattr") and v not in (None, "", [])}
        host_cpu = cfg.get("kind") == "llvm" and "mtriple" not in cfg and "mcpu" not in cfg
        if host_cpu:
            cfg["mcpu"] = host_mcpu()
        isa, feats = target_features.detect(cfg, host_cpu=host_cpu)
        return cls(name or str(target), cfg, host, isa, feats, Toolchain(name or "adhoc"), "", host_cpu)


def _plain(v):
    """A TVM attribute value (ffi String / Array) as plain Python."""
    if isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, str):
        return str(v)
    return [str(x) for x in v]


def _ndk_compiler(name: str | None) -> str | None:
    """The Android NDK clang++ ($TVM_NDK_CC, else under $ANDROID_NDK_HOME / $ANDROID_NDK_ROOT)."""
    if not name:
        return None
    cc = os.environ.get("TVM_NDK_CC")
    if cc:
        return cc if shutil.which(cc) else None
    for var in ("ANDROID_NDK_HOME", "ANDROID_NDK_ROOT", "ANDROID_NDK"):
        home = os.environ.get(var)
        if home:
            found = sorted(glob.glob(os.path.join(home, "toolchains", "llvm", "prebuilt", "*", "bin", name)))
            if found:
                return found[0]
    return None


def _have_lld(compiler: str) -> bool:
    """clang finds ld.lld next to itself (/usr/lib/llvm-N/bin) or on PATH."""
    if shutil.which("ld.lld"):
        return True
    real = os.path.realpath(shutil.which(compiler) or compiler)
    if os.path.exists(os.path.join(os.path.dirname(real), "ld.lld")):
        return True
    ver = compiler.rsplit("-", 1)[-1]
    return ver.isdigit() and (shutil.which(f"ld.lld-{ver}") is not None
                              or os.path.exists(f"/usr/lib/llvm-{ver}/bin/ld.lld"))


@functools.lru_cache(maxsize=1)
def host_mcpu() -> str:
    """LLVM CPU name of this machine (e.g. 'znver4'); falls back on the CPU flags."""
    try:
        mcpu = str(tvm.target.Target.from_device(tvm.cpu()).attrs.get("mcpu", ""))
        if mcpu and mcpu != "generic":
            return mcpu
    except Exception:  # detection is best effort
        pass
    feats = target_features.host_x86_features()
    if "avx512_vnni" in feats:
        return "cascadelake"
    if "avx512" in feats:
        return "skylake-avx512"
    if "avx2" in feats:
        return "haswell"
    return "generic"


@functools.lru_cache(maxsize=1)
def _bundled_config() -> dict:
    import yaml
    text = importlib.resources.files("yuan.configs").joinpath("targets.yaml").read_text()
    return yaml.safe_load(text) or {}


def list_targets() -> list[str]:
    return list(_bundled_config())


def _resolve_mcpu(cfg: dict) -> tuple[dict, bool]:
    cfg = copy.deepcopy(cfg)
    host_cpu = cfg.get("mcpu") == "host"
    if host_cpu:
        cfg["mcpu"] = host_mcpu()
    return cfg, host_cpu


@functools.lru_cache(maxsize=None)
def _resolve_name(name: str) -> Target:
    config = _bundled_config()
    if name not in config:
        raise UnknownTargetError(f"unknown target '{name}'; known targets: {', '.join(config)}")
    entry = config[name]
    cfg, host_cpu = _resolve_mcpu(entry["target"])
    host = _resolve_mcpu(entry["host"])[0] if entry.get("host") else None
    isa, feats = target_features.detect(cfg, host_cpu=host_cpu)
    return Target(name, cfg, host, isa, feats, Toolchain.from_config(name, dict(entry.get("toolchain") or {})),
                  entry.get("description", ""), host_cpu)


def resolve_target(target) -> Target:
    """A Target from a name of configs/targets.yaml (or a Target, returned as is)."""
    if isinstance(target, Target):
        return target
    if not isinstance(target, str):
        raise TypeError(f"target must be a target name or a yuan Target, got {type(target).__name__}; "
                        f"use Target.from_tvm(...) for a TVM target")
    return _resolve_name(target)


__all__ = ["Target", "Toolchain", "resolve_target", "list_targets", "host_mcpu", "UnknownTargetError",
           "ToolchainError"]
