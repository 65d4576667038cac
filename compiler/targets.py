"""Compile targets (configs/targets.yaml): name -> TVM target dict + toolchain information.

    get_target("x86")            -> TargetInfo(name, target dict, host dict | None, toolchain)
    get_target("x86").tvm_target() -> tvm.target.Target (what tvm.compile needs)
    list_targets()               -> known names

"mcpu: host" is resolved to the detected host CPU. An unknown name raises UnknownTargetError
listing the known ones.
"""
from __future__ import annotations

import copy
import functools
import glob
import os
import shlex
import shutil
from dataclasses import dataclass, field

CONFIG_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "configs", "targets.yaml")


class UnknownTargetError(ValueError):
    """The target name is not in configs/targets.yaml."""


class ToolchainError(RuntimeError):
    """The compiler/linker a target needs is not installed."""


@dataclass
class TargetInfo:
    name: str
    target: dict
    host: dict | None = None
    toolchain: dict = field(default_factory=dict)
    description: str = ""

    @property
    def kind(self) -> str:
        return self.target["kind"]

    @property
    def is_host(self) -> bool:
        """True when artifacts for this target can be loaded and run on this machine."""
        return self.kind == "llvm" and "mtriple" not in self.target

    @property
    def features(self) -> set[str]:
        """CPU features the target promises ('avx512', 'vnni', 'avx2', 'neon', 'dotprod')."""
        feats = set()
        mattr = [m.lstrip("+") for m in self.target.get("mattr", [])]
        feats.update(m for m in mattr if m in ("neon", "dotprod"))
        if self.is_host:
            flags = _cpu_flags()
            if "avx512f" in flags:
                feats.add("avx512")
            if "avx512_vnni" in flags or "avx512vnni" in flags:
                feats.add("vnni")
            if "avx2" in flags:
                feats.add("avx2")
        return feats

    def tvm_target(self):
        import tvm
        if self.host is not None:
            return tvm.target.Target(self.target, host=self.host)
        return tvm.target.Target(self.target)

    @property
    def artifact(self) -> str:
        """Main artifact kind: 'so' (shared library) or 'a' (system-lib static archive)."""
        return str(self.toolchain.get("artifact", "so"))

    @property
    def static_lib(self) -> bool:
        """True when a system-lib static archive (.a) is written (beside the .so, or as the artifact)."""
        return self.artifact == "a" or bool(self.toolchain.get("static_lib", False))

    def _missing(self, what: str) -> ToolchainError:
        hint = self.toolchain.get("install_hint", "")
        return ToolchainError(f"target '{self.name}' needs {what}, which is not installed"
                              + (f"; install it with: {hint}" if hint else ""))

    def _ndk_compiler(self) -> str | None:
        """The Android NDK clang++ ($TVM_NDK_CC, else under $ANDROID_NDK_HOME / $ANDROID_NDK_ROOT)."""
        name = self.toolchain.get("ndk_compiler")
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

    def compiler_command(self) -> list[str] | None:
        """The C++ compiler command (with its options) used to link the shared library (None: TVM's
        default host g++, or no shared library at all for artifact 'a').
        Raises ToolchainError with an install hint when it is missing."""
        if self.artifact == "a":
            return None
        ndk = self._ndk_compiler()
        if ndk is not None:
            return [ndk]
        cmd = self.toolchain.get("cross_compiler")
        if not cmd:
            return None
        argv = shlex.split(cmd)
        if shutil.which(argv[0]) is None:
            raise self._missing(f"the cross compiler '{argv[0]}'")
        opts = [str(o) for o in self.toolchain.get("cross_options", [])]
        if any(o == "-fuse-ld=lld" for o in opts) and not _have_lld(argv[0]):
            raise self._missing("the LLVM linker lld (ld.lld)")
        return argv + opts

    def archiver_command(self) -> list[str] | None:
        """llvm-ar (or ar) command used for the static archive; None when the target writes none.
        Raises ToolchainError when missing."""
        if not self.static_lib:
            return None
        name = self.toolchain.get("archiver", "llvm-ar")
        for cand in (name, "llvm-ar"):
            if shutil.which(cand):
                argv = [cand]
                if self.toolchain.get("archiver_format"):
                    argv.append(f"--format={self.toolchain['archiver_format']}")
                return argv
        raise self._missing(f"the archiver '{name}'")


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
def _cpu_flags() -> frozenset:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def host_mcpu() -> str:
    """LLVM CPU name of this machine (e.g. 'znver4'); falls back on the CPU flags."""
    try:
        import tvm
        mcpu = str(tvm.target.Target.from_device(tvm.cpu()).attrs.get("mcpu", ""))
        if mcpu and mcpu != "generic":
            return mcpu
    except Exception:  # detection is best effort
        pass
    flags = _cpu_flags()
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "cascadelake"
    if "avx512f" in flags:
        return "skylake-avx512"
    if "avx2" in flags:
        return "haswell"
    return "x86-64"


@functools.lru_cache(maxsize=4)
def _load_config(path: str) -> dict:
    import yaml
    with open(path) as f:
        return yaml.safe_load(f) or {}


def list_targets(config_path: str = CONFIG_PATH) -> list[str]:
    return list(_load_config(config_path))


def _resolve(target: dict) -> dict:
    target = copy.deepcopy(target)
    if target.get("mcpu") == "host":
        target["mcpu"] = host_mcpu()
    return target


def get_target(name: str, config_path: str = CONFIG_PATH) -> TargetInfo:
    config = _load_config(config_path)
    if name not in config:
        raise UnknownTargetError(f"unknown target '{name}'; known targets: {', '.join(config)}")
    entry = config[name]
    host = entry.get("host")
    return TargetInfo(name=name, target=_resolve(entry["target"]),
                      host=_resolve(host) if host else None,
                      toolchain=dict(entry.get("toolchain") or {}),
                      description=entry.get("description", ""))


__all__ = ["TargetInfo", "get_target", "list_targets", "host_mcpu", "UnknownTargetError",
           "ToolchainError", "CONFIG_PATH"]
