"""Readers for common on-disk dataset formats: MNIST IDX, CIFAR-10 python batches,
and class-per-subfolder image trees."""
from __future__ import annotations

import gzip
import os
import pickle

import numpy as np

from .dataset import Dataset, DatasetError
from .image_codecs import SUPPORTED_EXTENSIONS, load_image

# IDX type code -> big-endian dtype
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_maybe_gzip(path) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":  # gzip magic: trust content, not the file name
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise DatasetError(f"{path}: corrupt gzip file ({err})") from None
    return data


def read_idx(path) -> np.ndarray:
    """Any IDX file (raw or gzip) as an array of its native type and shape."""
    path = os.fspath(path)
    data = _read_maybe_gzip(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path}: not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header_end = 4 + 4 * ndim
    if len(data) < header_end:
        raise DatasetError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header_end != expected:
        raise DatasetError(f"{path}: IDX payload is {len(data) - header_end} bytes, "
                           f"header shape {shape} needs {expected}")
    array = np.frombuffer(data, dtype=dtype, offset=header_end).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def read_mnist_idx(images_path, labels_path) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-style IDX pair -> (images uint8 (N, H, W), labels int64 (N,))."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetError(f"{os.fspath(images_path)}: expected a 3-D unsigned-byte IDX image file "
                           f"(magic 0x00000803), got {images.dtype} with shape {images.shape}")
    if labels.ndim != 1:
        raise DatasetError(f"{os.fspath(labels_path)}: expected a 1-D IDX label file "
                           f"(magic 0x00000801), got shape {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(f"{os.fspath(images_path)} has {len(images)} images but "
                           f"{os.fspath(labels_path)} has {len(labels)} labels")
    return images, labels.astype(np.int64)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles; allow only what NumPy arrays need, so a hostile file
    cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles spell bytes
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        return super().find_class(module, name)


def _load_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArrayOnlyUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, TypeError, EOFError, ValueError) as err:
        raise DatasetError(f"{path}: not a CIFAR-10 python batch ({err})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DatasetError(f"{path}: CIFAR-10 batch has data {data.shape} and {len(labels)} labels; "
                           f"expected (N, 3072) and N")
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar10(folder, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 python batches -> (images uint8 (N, 3, 32, 32), labels int64).

    ``folder`` is ``cifar-10-batches-py`` or the folder that contains it."""
    folder = os.fspath(folder)
    nested = os.path.join(folder, "cifar-10-batches-py")
    if not os.path.exists(os.path.join(folder, "test_batch")) and os.path.isdir(nested):
        folder = nested
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    parts = []
    for name in names:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CIFAR-10 batch file not found: {path}")
        parts.append(_load_cifar_batch(path))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class ImageFolder(Dataset):
    """``root/<class>/<image>`` tree; classes are the sorted subfolder names.

    Samples are ``(transform(image), class_index)``; images decode to HW (grey) or HWC
    arrays (see ``image_codecs``). Hidden files are ignored; any other file with an
    unsupported type is an error naming it."""

    def __init__(self, root, transform=None):
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"ImageFolder root is not a directory: {self.root}")
        self.transform = transform
        self.classes = sorted(e.name for e in os.scandir(self.root)
                              if e.is_dir() and not e.name.startswith("."))
        if not self.classes:
            raise DatasetError(f"ImageFolder: no class subfolders in {self.root}")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = []
        for name in self.classes:
            folder = os.path.join(self.root, name)
            for dirpath, _, filenames in sorted(os.walk(folder)):
                for filename in sorted(filenames):
                    if filename.startswith("."):
                        continue
                    path = os.path.join(dirpath, filename)
                    if os.path.splitext(filename)[1].lower() not in SUPPORTED_EXTENSIONS:
                        raise DatasetError(f"ImageFolder: unsupported file {path} (supported: "
                                           f"{', '.join(SUPPORTED_EXTENSIONS)})")
                    self.samples.append((path, self.class_to_idx[name]))
        if not self.samples:
            raise DatasetError(f"ImageFolder: no images under {self.root}")
        self.targets = np.array([label for _, label in self.samples], dtype=np.int64)

    def __getitem__(self, index):
        path, label = self.samples[index]
        image = load_image(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, label

    def __len__(self) -> int:
        return len(self.samples)

    def labels(self):
        return self.targets
