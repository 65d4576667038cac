"""Image transforms on NumPy arrays.

After ``ToTensor`` images are CHW (or HW); every spatial transform works on the last two
axes, so the same code handles one image and a whole (N, C, H, W) batch. Random
transforms take an ``np.random.Generator`` (``rng``); without one they use their own,
seeded by ``seed``. Each transform has ``__call__(x, rng=None)`` for one sample and
``batch(x, rng=None)`` for a batch whose first axis is the sample axis (random choices are
made per sample, vectorised).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from yuan.compiler.ir.image_ops import resize_array


def _pair(size) -> tuple[int, int]:
    if np.isscalar(size):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)


class Transform:
    """Base class: deterministic transforms only implement ``__call__``; its default
    ``batch`` loops over samples, so override it when a vectorised form exists."""

    def __init__(self, seed: int | None = None):
        self._rng = np.random.default_rng(seed)

    def _rng_or_own(self, rng):
        return self._rng if rng is None else rng

    def __call__(self, x, rng=None):
        raise NotImplementedError

    def batch(self, x, rng=None):
        rng = self._rng_or_own(rng)
        return np.stack([self(sample, rng) for sample in x])

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def _call(transform, x, rng):
    return transform(x, rng) if isinstance(transform, Transform) else transform(x)


class Compose(Transform):
    """Apply transforms in order (plain callables ``f(x)`` are allowed too)."""

    def __init__(self, transforms):
        super().__init__()
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        for t in self.transforms:
            x = _call(t, x, rng)
        return x

    def batch(self, x, rng=None):
        for t in self.transforms:
            x = t.batch(x, rng) if hasattr(t, "batch") else t(x)
        return x


class ToTensor(Transform):
    """HWC or HW image -> CHW float32; uint8 is scaled to [0, 1], other dtypes are not."""

    def __call__(self, x, rng=None):
        x = np.asarray(x)
        chw = x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)
        return self._to_float(chw)

    def batch(self, x, rng=None):
        x = np.asarray(x)
        nchw = x[:, None] if x.ndim == 3 else np.moveaxis(x, -1, 1)
        return self._to_float(nchw)

    @staticmethod
    def _to_float(x):
        if x.dtype == np.uint8:
            return x.astype(np.float32) / np.float32(255)
        return np.ascontiguousarray(x, dtype=np.float32)


class Normalize(Transform):
    """``(x - mean[c]) / std[c]`` per channel of a CHW image (scalars apply to all)."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if np.any(self.std == 0):
            raise ValueError("Normalize: std must be non-zero")

    def __call__(self, x, rng=None):
        return self._normalize(np.asarray(x, dtype=np.float32), channel_axis=-3)

    def batch(self, x, rng=None):
        return self._normalize(np.asarray(x, dtype=np.float32), channel_axis=1)

    def _normalize(self, x, channel_axis):
        if self.mean.size == 1 and self.std.size == 1:
            return (x - self.mean[0]) / self.std[0]
        shape = [1] * x.ndim
        shape[channel_axis] = -1
        return (x - self.mean.reshape(shape)) / self.std.reshape(shape)


def _pads(padding) -> tuple[int, int, int, int]:
    """torchvision order -> (left, top, right, bottom)."""
    if np.isscalar(padding):
        p = int(padding)
        return p, p, p, p
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        return padding[0], padding[1], padding[0], padding[1]
    if len(padding) == 4:
        return tuple(padding)
    raise ValueError(f"padding must be an int, (lr, tb) or (left, top, right, bottom); got {padding}")


def _pad_spatial(x, padding, fill=0.0, mode="constant"):
    left, top, right, bottom = _pads(padding)
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=fill)
    if mode in ("edge", "reflect", "symmetric"):
        return np.pad(x, widths, mode=mode)
    raise ValueError(f"unknown padding mode {mode!r} (constant, edge, reflect, symmetric)")


class Pad(Transform):
    """Pad the last two axes; ``padding`` is int, (left/right, top/bottom) or
    (left, top, right, bottom) as in torchvision."""

    def __init__(self, padding, fill: float = 0.0, mode: str = "constant"):
        super().__init__()
        _pads(padding)  # validate now, not on the first sample
        self.padding, self.fill, self.mode = padding, fill, mode

    def __call__(self, x, rng=None):
        return _pad_spatial(np.asarray(x), self.padding, self.fill, self.mode)

    batch = __call__  # spatial axes are the last two either way


class RandomCrop(Transform):
    """Pad by ``padding`` then crop a random ``size`` window (the shift augmentation)."""

    def __init__(self, size, padding=0, fill: float = 0.0, pad_mode: str = "constant",
                 seed: int | None = None):
        super().__init__(seed)
        self.size = _pair(size)
        self.padding, self.fill, self.pad_mode = padding, fill, pad_mode

    def _padded(self, x):
        x = _pad_spatial(np.asarray(x), self.padding, self.fill, self.pad_mode)
        h, w = self.size
        if x.shape[-2] < h or x.shape[-1] < w:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the padded image "
                             f"{x.shape[-2:]}")
        return x

    def __call__(self, x, rng=None):
        rng = self._rng_or_own(rng)
        x = self._padded(x)
        h, w = self.size
        top = rng.integers(0, x.shape[-2] - h + 1)
        left = rng.integers(0, x.shape[-1] - w + 1)
        return x[..., top:top + h, left:left + w].copy()

    def batch(self, x, rng=None):
        rng = self._rng_or_own(rng)
        x = self._padded(x)
        n, h, w = x.shape[0], self.size[0], self.size[1]
        tops = rng.integers(0, x.shape[-2] - h + 1, size=n)
        lefts = rng.integers(0, x.shape[-1] - w + 1, size=n)
        # All windows as a strided view; pick one window per sample (only it is copied).
        windows = sliding_window_view(x, (h, w), axis=(-2, -1))
        middle = (slice(None),) * (x.ndim - 3)
        return windows[(np.arange(n),) + middle + (tops, lefts)]


class RandomHorizontalFlip(Transform):
    """Mirror the last axis with probability ``p``."""

    def __init__(self, p: float = 0.5, seed: int | None = None):
        super().__init__(seed)
        self.p = float(p)

    def __call__(self, x, rng=None):
        x = np.asarray(x)
        return x[..., ::-1].copy() if self._rng_or_own(rng).random() < self.p else x

    def batch(self, x, rng=None):
        x = np.asarray(x)
        flip = self._rng_or_own(rng).random(len(x)) < self.p
        return np.where(flip.reshape((-1,) + (1,) * (x.ndim - 1)), x[..., ::-1], x)


class Resize(Transform):
    """Resize the last two axes to ``size`` (int = square) by ``"nearest"`` or
    ``"bilinear"`` sampling (half-pixel centres, edges clamped, like OpenCV/PIL; nearest rounds
    halves up). The arithmetic is the IR ``resize`` op's (compiler/ir/image_ops.py), the one the
    compiler deploys. uint8 input stays uint8 (rounded); other input becomes float32 for bilinear."""

    def __init__(self, size, interpolation: str = "bilinear"):
        super().__init__()
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"Resize: interpolation must be 'nearest' or 'bilinear', "
                             f"got {interpolation!r}")
        self.size, self.interpolation = _pair(size), interpolation

    def __call__(self, x, rng=None):
        x = np.asarray(x)
        attrs = {"size": list(self.size), "coordinate_mode": "half_pixel", "scales": None,
                 "mode": "nearest" if self.interpolation == "nearest" else "linear",
                 "nearest_mode": "round_prefer_ceil"}
        if self.interpolation == "nearest":
            return resize_array(x, attrs, axes=(-2, -1))
        out = resize_array(x.astype(np.float32), attrs, axes=(-2, -1))
        if x.dtype == np.uint8:
            return np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return out

    batch = __call__  # spatial axes are the last two either way
