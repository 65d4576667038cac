"""Training speed of Yuan's NumPy frontend next to PyTorch CPU, one thread each.

Both train the same architecture (PyTorch runs a twin built from Yuan's traced
graph, with the same initial weights) on the same batches of the bundled MNIST
subset. Epochs alternate Yuan, PyTorch, Yuan, PyTorch, ... and the script prints
the median epoch time of each and their ratio.

    python bench/train_speed.py [--epochs 3] [--models small_cnn,resnet_small]
"""
import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"   # must be set before NumPy/PyTorch load their BLAS

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from yuan.frontend import functional as F  # noqa: E402
from yuan.config import load_config  # noqa: E402
from yuan.frontend import optim  # noqa: E402
from yuan.frontend.data import get_dataset  # noqa: E402
from yuan.frontend.models import get_model  # noqa: E402
from yuan.frontend.random import manual_seed  # noqa: E402
from yuan.frontend.tensor import Tensor  # noqa: E402
from yuan.frontend.trace import trace  # noqa: E402

# The architectures of the bundled training configs, so the bench times what `yuan train` runs.
CONFIGS = {"small_cnn": "configs/mnist_small_cnn.yaml", "resnet_small": "configs/mnist_resnet_small.yaml"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def yuan_epoch(model, opt, batches):
    model.train()
    for x, y in batches:
        loss = F.cross_entropy(model(Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.item())


def torch_epoch(torch, model, opt, batches):
    model.train()
    for x, y in batches:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.item())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per framework")
    ap.add_argument("--models", default=",".join(CONFIGS))
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    train = get_dataset("mnist5k", split="train")
    x_all = np.stack([train[i][0] for i in range(len(train))]).astype(np.float32)
    y_all = np.array([train[i][1] for i in range(len(train))], np.int64)
    bs = args.batch_size
    batches = [(x_all[i:i + bs], y_all[i:i + bs]) for i in range(0, len(x_all) - bs + 1, bs)]

    try:
        import torch
        torch.set_num_threads(1)
        from torch_mirror import TorchMirror
    except ImportError:
        torch = None
        print("PyTorch is not installed: timing Yuan only (pip install torch==2.13.0 for the comparison)")

    print(f"{len(batches)} batches of {bs} per epoch, 1 thread, {args.epochs} alternating timed epochs")
    print(f"{'model':<14} {'yuan s/epoch':>13} {'torch s/epoch':>14} {'ratio':>7}")
    for name in args.models.split(","):
        manual_seed(0)
        model_cfg = load_config(os.path.join(ROOT, CONFIGS[name]))["model"]
        model = get_model(model_cfg["name"], **model_cfg["args"])
        opt = optim.SGD(list(model.parameters()), lr=0.01, momentum=0.9)
        if torch is not None:
            graph = trace(model, Tensor(x_all[:bs]))
            twin = TorchMirror(graph)
            topt = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9)
            tbatches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
        # One untimed warm-up epoch each, then alternate.
        yuan_epoch(model, opt, batches[:5])
        if torch is not None:
            torch_epoch(torch, twin, topt, tbatches[:5])
        yuan_times, torch_times = [], []
        for _ in range(args.epochs):
            t0 = time.perf_counter()
            yuan_epoch(model, opt, batches)
            yuan_times.append(time.perf_counter() - t0)
            if torch is not None:
                t0 = time.perf_counter()
                torch_epoch(torch, twin, topt, tbatches)
                torch_times.append(time.perf_counter() - t0)
        ys = statistics.median(yuan_times)
        if torch_times:
            ts = statistics.median(torch_times)
            print(f"{name:<14} {ys:>13.2f} {ts:>14.2f} {ys / ts:>6.2f}x")
        else:
            print(f"{name:<14} {ys:>13.2f} {'-':>14} {'-':>7}")


if __name__ == "__main__":
    main()
