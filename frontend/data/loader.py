"""DataLoader: batches of (x float32, y int64) NumPy arrays with reproducible shuffling."""
from __future__ import annotations

import numpy as np

from .dataset import ArrayDataset, Dataset, Subset


def default_collate(samples):
    """Stack ``[(x, y), ...]`` into ``(x float32 batch, y batch)``; integer labels become
    int64, floating targets (regression) stay float32."""
    xs, ys = zip(*samples)
    return np.stack(xs).astype(np.float32, copy=False), _labels(np.asarray(ys))


def _labels(y: np.ndarray) -> np.ndarray:
    if np.issubdtype(y.dtype, np.floating):
        return y.astype(np.float32, copy=False)
    return y.astype(np.int64, copy=False)


def _plain_arrays(dataset: Dataset):
    """``(x, y, index_map)`` when ``dataset`` is an ArrayDataset without a transform,
    possibly behind Subsets; else None. index_map=None means the identity."""
    index_map = None
    while isinstance(dataset, Subset):
        index_map = dataset.indices if index_map is None else dataset.indices[index_map]
        dataset = dataset.dataset
    if type(dataset) is ArrayDataset and dataset.transform is None:
        return dataset.x, dataset.y, index_map
    return None


class DataLoader:
    """Iterate ``dataset`` in batches.

    * ``shuffle``: a new order each epoch, drawn from ``(seed, epoch)`` so reruns with the
      same seed repeat exactly; ``seed=None`` draws a fresh base seed.
    * ``transform``: applied to each whole x batch. Transforms from ``transforms`` use their
      vectorised ``.batch(x, rng)``; any other callable is called as ``transform(x, rng)``.
      The rng is also derived from ``(seed, epoch)``.
    * ``collate``: turns a list of samples into a batch (``default_collate``).
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None, transform=None,
                 collate=default_collate):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(np.random.SeedSequence().entropy) if seed is None else int(seed)
        self.transform = transform
        self.collate = collate
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next iteration uses (e.g. when resuming training)."""
        self.epoch = int(epoch)

    def __iter__(self):
        order_seed, transform_seed = np.random.SeedSequence([self.seed, self.epoch]).spawn(2)
        self.epoch += 1
        n = len(self.dataset)
        order = (np.random.default_rng(order_seed).permutation(n) if self.shuffle
                 else np.arange(n))
        transform_rng = np.random.default_rng(transform_seed)
        fast = _plain_arrays(self.dataset) if self.collate is default_collate else None
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch_indices = order[start:start + self.batch_size]
            if fast is not None:
                x_all, y_all, index_map = fast
                rows = batch_indices if index_map is None else index_map[batch_indices]
                batch = x_all[rows].astype(np.float32, copy=False), _labels(y_all[rows])
            else:
                batch = self.collate([self.dataset[int(i)] for i in batch_indices])
            if self.transform is not None:  # a custom collate must then return (x, y)
                x, y = batch
                batch = self._apply_transform(x, transform_rng), y
            yield batch

    def _apply_transform(self, x, rng):
        batch = getattr(self.transform, "batch", None)
        out = batch(x, rng) if batch is not None else self.transform(x, rng)
        return np.asarray(out, dtype=np.float32)
