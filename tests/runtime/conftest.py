"""Modules compiled once for the tests of this folder (each compile takes seconds)."""
import pytest

from tests.conftest import small_net
from yuan.compiler.build import compile_graph


@pytest.fixture(scope="package")
def small_module(tmp_path_factory):
    """tests.conftest.small_net (convs, depthwise conv, light ops, linear) compiled for x86."""
    return compile_graph(small_net(), "x86", str(tmp_path_factory.mktemp("small") / "small_net.so"))
