"""compiler.targets / target_features: a target name resolves once into one object whose features
come from its own triple / mcpu / mattr (or this CPU's flags for `mcpu: host`), explicitly per ISA."""
import platform

import pytest

from yuan.compiler import target_features
from yuan.compiler.backends import backend_for
from yuan.compiler.targets import Target, Toolchain, UnknownTargetError, list_targets, resolve_target


def _cpuinfo_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.parametrize("name,isa,features,backend", [
    ("x86-avx2", "x86", {"cpu", "x86", "avx2", "fma"}, "cpu"),
    ("x86-avx512", "x86", {"cpu", "x86", "avx2", "fma", "avx512"}, "cpu"),
    ("x86-avx512-vnni", "x86", {"cpu", "x86", "avx2", "fma", "avx512", "avx512_vnni"}, "cpu"),
    ("aarch64", "aarch64", {"cpu", "aarch64", "neon"}, "cpu"),
    ("aarch64-dotprod", "aarch64", {"cpu", "aarch64", "neon", "dotprod"}, "cpu"),
    ("android-arm64", "aarch64", {"cpu", "aarch64", "neon", "dotprod"}, "cpu"),
    ("ios-arm64", "aarch64", {"cpu", "aarch64", "neon", "dotprod"}, "cpu"),
    ("cuda", "cuda", {"cuda", "gpu", "dp4a", "imma"}, "cuda"),
])
def test_named_targets(name, isa, features, backend):
    t = resolve_target(name)
    assert (t.isa, set(t.features), t.backend) == (isa, features, backend)
    assert resolve_target(name) is t                  # resolved once, shared
    assert resolve_target(t) is t
    assert type(backend_for(t)).__name__.lower().startswith(backend)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 host")
def test_host_target_takes_this_cpus_flags():
    t = resolve_target("x86")
    flags = _cpuinfo_flags()
    assert t.isa == "x86" and t.config["mcpu"] not in ("", "host")
    assert ("avx512" in t.features) == ("avx512f" in flags)
    assert ("avx512_vnni" in t.features) == ("avx512f" in flags and "avx512_vnni" in flags)
    assert ("avx2" in t.features) == ("avx2" in flags)
    assert t.runs_here
    # the portable builds run here exactly when this CPU has their features
    for name in ("x86-avx2", "x86-avx512", "x86-avx512-vnni"):
        assert resolve_target(name).runs_here == (resolve_target(name).features <= t.features)
    for name in ("aarch64", "android-arm64", "ios-arm64", "cuda"):
        assert not resolve_target(name).runs_here


@pytest.mark.parametrize("config,isa,features", [
    ({"kind": "llvm", "mtriple": "riscv64-linux-gnu"}, "generic", {"cpu"}),
    ({"kind": "llvm", "mtriple": "powerpc64le-linux-gnu", "mcpu": "pwr9"}, "generic", {"cpu"}),
    ({"kind": "llvm", "mtriple": "x86_64-linux-gnu"}, "x86", {"cpu", "x86"}),
    ({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "znver4"}, "x86",
     {"cpu", "x86", "avx2", "fma", "avx512", "avx512_vnni"}),
    ({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "skylake-avx512"}, "x86",
     {"cpu", "x86", "avx2", "fma", "avx512"}),
    ({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "znver4", "mattr": ["-avx512vnni"]}, "x86",
     {"cpu", "x86", "avx2", "fma", "avx512"}),
    ({"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mattr": ["+avx512vnni"]}, "x86", {"cpu", "x86"}),  # no AVX-512
    ({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a76"}, "aarch64",
     {"cpu", "aarch64", "neon", "dotprod"}),
    ({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a53"}, "aarch64", {"cpu", "aarch64", "neon"}),
    ({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon", "+dotprod", "+i8mm"]}, "aarch64",
     {"cpu", "aarch64", "neon", "dotprod", "i8mm"}),
    ({"kind": "cuda", "arch": "sm_60"}, "cuda", {"cuda", "gpu"}),
    ({"kind": "cuda", "arch": "sm_61"}, "cuda", {"cuda", "gpu", "dp4a"}),
    ({"kind": "cuda", "arch": "sm_90a"}, "cuda", {"cuda", "gpu", "dp4a", "imma"}),
])
def test_features_are_detected_per_isa(config, isa, features):
    assert target_features.detect(config) == (isa, frozenset(features))
    t = Target.from_tvm(config)
    assert (t.isa, set(t.features)) == (isa, features)


def test_with_config_detects_features_again():
    sm75 = resolve_target("cuda").with_config(arch="sm_60")
    assert sm75.config["arch"] == "sm_60" and "imma" not in sm75.features and sm75.tvm.arch == "sm_60"
    assert resolve_target("cuda").config["arch"] == "sm_80"     # the named target is unchanged


def test_unknown_target_and_bad_toolchain_config():
    with pytest.raises(UnknownTargetError, match="known targets: x86, x86-avx2"):
        resolve_target("riscv-toaster")
    with pytest.raises(TypeError, match="Target.from_tvm"):
        resolve_target({"kind": "llvm"})
    with pytest.raises(ValueError, match="unknown toolchain key.*artifact"):
        Toolchain.from_config("t", {"artifact": "so"})
    with pytest.raises(ValueError, match="artifacts must be"):
        Toolchain.from_config("t", {"artifacts": ["tar"]})
    assert list_targets()[0] == "x86"
