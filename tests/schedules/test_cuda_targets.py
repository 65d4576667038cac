"""GPU generations as compile targets: `cuda` (sm_80), `cuda-sm75`, `cuda-sm89`, `cuda-sm90` (configs/targets.yaml,
`yuan compile -t cuda-sm90 ...`), or any arch through Target.with_config(arch=...). Each build embeds the
machine code of its arch AND its PTX (which the driver JIT-compiles on newer GPUs: cuda_toolchain._gencode),
checked in the fatbin without a GPU; the int8 kernel selection follows the arch's features."""
import numpy as np
import pytest

from yuan.compiler.backends.cuda_sass import compile_kernels, count_instructions, fatbin_contents, find_cuobjdump
from yuan.compiler.backends.cuda_toolchain import find_nvcc
from yuan.compiler.targets import resolve_target
from yuan.schedules import select_kernel
from tests.schedules.conftest import requant_attrs

ARCHS = {"cuda-sm75": "sm_75", "cuda": "sm_80", "cuda-sm89": "sm_89", "cuda-sm90": "sm_90"}


def _int8_conv(n):
    attrs = dict(pads=[1, 1, 1, 1], **requant_attrs(np.random.default_rng(1), 16, "int8", 3))
    return attrs, [((n, 8, 6, 6), "int8"), ((16, 8, 3, 3), "int8"), ((16,), "int32")], ((n, 16, 6, 6), "int8")


@pytest.mark.parametrize("name,arch", ARCHS.items())
def test_named_cuda_targets_select_by_arch(name, arch):
    t = resolve_target(name)
    assert t.backend == "cuda" and t.config["arch"] == arch and str(t.tvm.arch) == arch
    assert {"cuda", "dp4a", "imma"} <= t.features
    assert resolve_target("cuda").with_config(arch=arch).features == t.features
    attrs, in_types, out_type = _int8_conv(16)
    assert select_kernel("qconv2d", attrs, in_types, out_type, t)[0].name == "qconv2d_int8_nchw_imma_tiled"
    # before Turing there are no int8 tensor cores: dp4a at any batch
    old = t.with_config(arch="sm_61")
    assert "imma" not in old.features and "dp4a" in old.features
    assert select_kernel("qconv2d", attrs, in_types, out_type, old)[0].name == "qconv2d_int8_nchw_dp4a"


@pytest.mark.parametrize("name", ["cuda-sm75", "cuda-sm90"])
def test_fatbin_holds_the_arch_machine_code_and_ptx(name, tmp_path):
    if find_nvcc() is None or find_cuobjdump() is None:
        pytest.skip("nvcc or cuobjdump/nvdisasm not installed")
    target = resolve_target(name)
    f = select_kernel("qconv2d", *_int8_conv(1), target)[1]      # dp4a
    path, sass = compile_kernels([f], target, str(tmp_path))
    arch = ARCHS[name]
    assert fatbin_contents(path) == {("ELF", arch), ("PTX", arch)}
    code = sass[f.attrs["global_symbol"]]
    assert f"EF_CUDA_SM{arch[3:]}" in code and count_instructions(code, "IDP.4A") > 0
