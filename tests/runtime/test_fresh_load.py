"""A module recompiled at the same path is loaded afresh in the same process (dlopen would hand back
the library it already holds under that name); TVM's thread count follows set_num_threads."""
import os
import shutil
import subprocess
import sys

import numpy as np

import yuan
from tests.conftest import X_SHAPE, small_net
from yuan.compiler.build import compile_graph, sidecar_path


def test_recompiled_module_at_the_same_path_is_reloaded(small_module, tmp_path):
    x = np.random.default_rng(0).standard_normal(X_SHAPE).astype(np.float32)
    other = compile_graph(small_net(seed=5), "x86", str(tmp_path / "other.so"))   # other weights
    path = str(tmp_path / "m.so")
    for src, dst in ((small_module, path), (sidecar_path(small_module), sidecar_path(path))):
        shutil.copyfile(src, dst)
    first = yuan.load(path).run(x)["y"]
    np.testing.assert_array_equal(first, yuan.load(small_module).run(x)["y"])
    for src, dst in ((other, path), (sidecar_path(other), sidecar_path(path))):   # "recompiled" in place
        os.replace(shutil.copyfile(src, dst + ".new"), dst)
    again = yuan.load(path).run(x)["y"]
    np.testing.assert_array_equal(again, yuan.load(other).run(x)["y"])
    assert not np.array_equal(again, first)
    assert sorted(os.listdir(tmp_path)) == ["m.json", "m.so", "other.json", "other.so"]


def test_set_num_threads_in_a_fresh_process(small_module):
    """Up before the first run, then down: TVM's pool reports the count and runs that many threads."""
    script = (
        "import os, sys, yuan\n"
        "from yuan.runtime.threads import num_threads, set_num_threads\n"
        "p = yuan.load(sys.argv[1]); x = p.random_inputs()\n"
        "for n in (2, 1):\n"
        "    set_num_threads(n); p.run(x)\n"
        "    print(num_threads(), len(os.listdir('/proc/self/task')))\n")
    out = subprocess.run([sys.executable, "-c", script, small_module], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "TVM_NUM_THREADS"}, check=True)
    (two, tasks_two), (one, tasks_one) = [map(int, line.split()) for line in out.stdout.split("\n")[:2]]
    assert (two, one) == (min(2, os.cpu_count()), 1)
    assert tasks_two >= tasks_one and tasks_two >= two   # the worker threads exist
