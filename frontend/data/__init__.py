"""Datasets, loaders, transforms and readers; batches are (x float32, y int64) NumPy arrays."""
from . import transforms
from .bundled import DatasetUnavailableError, get_dataset, load_digits, load_mnist_5k, register_dataset
from .dataset import ArrayDataset, Dataset, DatasetError, Subset, random_split
from .image_codecs import ImageDecodeError, decode_netpbm, decode_png, load_image
from .loader import DataLoader, default_collate
from .readers import ImageFolder, read_cifar10, read_idx, read_mnist_idx
from .preprocess import (BgrToRgb, CropImage, HwcToChw, ImageOp, NormalizeImage, Preprocess, ResizeImage,
                         ToFloat)
from .transforms import (Compose, Normalize, Pad, RandomCrop, RandomHorizontalFlip, Resize,
                         ToTensor, Transform)

__all__ = [
    "Dataset", "ArrayDataset", "Subset", "random_split", "DataLoader", "default_collate",
    "transforms", "Transform", "Compose", "ToTensor", "Normalize", "RandomCrop",
    "RandomHorizontalFlip", "Pad", "Resize",
    "ImageOp", "ResizeImage", "CropImage", "NormalizeImage", "BgrToRgb", "HwcToChw", "ToFloat", "Preprocess",
    "read_idx", "read_mnist_idx", "read_cifar10", "ImageFolder",
    "load_image", "decode_png", "decode_netpbm", "ImageDecodeError",
    "load_mnist_5k", "load_digits", "get_dataset", "register_dataset", "DatasetError", "DatasetUnavailableError",
]
