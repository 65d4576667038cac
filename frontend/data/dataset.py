"""Map-style datasets: an index -> (x, y) sample interface, in-memory arrays, subsets."""
from __future__ import annotations

import math

import numpy as np


class DatasetError(ValueError):
    """A dataset name, split or option that does not exist, or a dataset that cannot be used
    (e.g. one with no samples)."""


class Dataset:
    """Abstract map-style dataset: ``ds[i] -> (x, y)`` and ``len(ds)``."""

    def __getitem__(self, index: int):
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def labels(self):
        """Every sample's label as an array, when known without loading the samples; else None
        (so checks before training can skip a dataset that would have to decode everything)."""
        return None


class ArrayDataset(Dataset):
    """Samples ``(transform(x[i]), y[i])`` from two equal-length arrays.

    With ``transform=None`` the DataLoader batches it by fancy indexing (no per-sample loop).
    """

    def __init__(self, x, y, transform=None):
        self.x = np.asarray(x)
        self.y = np.asarray(y)
        if len(self.x) != len(self.y):
            raise ValueError(f"ArrayDataset: x has {len(self.x)} samples but y has {len(self.y)}")
        self.transform = transform

    def __getitem__(self, index):
        x = self.x[index]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.y[index]

    def __len__(self) -> int:
        return len(self.x)

    def labels(self):
        return self.y


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(dataset)
        if self.indices.size and (self.indices.min() < -n or self.indices.max() >= n):
            raise IndexError(f"Subset indices out of range for a dataset of {n} samples")

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def __len__(self) -> int:
        return len(self.indices)

    def labels(self):
        parent = self.dataset.labels()
        return None if parent is None else np.asarray(parent)[self.indices]


def random_split(dataset: Dataset, lengths, seed: int = 0) -> list[Subset]:
    """Split into non-overlapping random Subsets. ``lengths`` are sizes summing to
    ``len(dataset)``, or fractions summing to 1 (remainders go round-robin, as in PyTorch)."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(0 <= f <= 1 for f in lengths) and math.isclose(sum(lengths), 1.0) \
            and sum(lengths) != n:
        sizes = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        lengths = sizes
    if any(int(k) != k or k < 0 for k in lengths) or sum(lengths) != n:
        raise ValueError(f"random_split: lengths {lengths} must be non-negative sizes summing to "
                         f"{n} or fractions summing to 1")
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0] + [int(k) for k in lengths])
    return [Subset(dataset, order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
