"""Checkpoints: one .npz holding the weights plus the config that produced them.

The config travels with the weights so `yuan export CHECKPOINT` can rebuild the
model (and its input shape) without the original YAML file.
"""
import json
import os

import numpy as np

from yuan.compiler.output_files import atomic_output

_META_KEY = "__yuan_meta__"
_MODEL_PREFIX = "model/"
_OPTIM_PREFIX = "optim/"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    pass


def save_checkpoint(path, model, config=None, optimizer=None, **meta):
    """Write model weights, optional optimizer state and metadata (epoch, metrics, ...) to `path`
    (its folder is created if missing). The file is replaced only once the new one is complete."""
    arrays = {_MODEL_PREFIX + k: v for k, v in model.state_dict().items()}
    optim_meta = None
    if optimizer is not None:
        optim_state = optimizer.state_dict()
        optim_arrays, optim_meta = _flatten_arrays(optim_state)
        arrays.update({_OPTIM_PREFIX + k: v for k, v in optim_arrays.items()})
    header = {"format": FORMAT_VERSION, "config": config or {}, "meta": meta, "optimizer": optim_meta}
    arrays[_META_KEY] = np.frombuffer(json.dumps(header, default=_json_default).encode(), dtype=np.uint8)
    # Staged in the destination folder and renamed into place: an interrupted save or a full disk
    # leaves the previous checkpoint intact and no stray file (OutputPathError names the path).
    with atomic_output(path) as staged, open(staged, "wb") as f:
        np.savez(f, **arrays)    # a file object: np.savez would append ".npz" to a path without it
    return path


def load_checkpoint(path):
    """-> dict(config=..., meta=..., model_state={name: array}, optimizer_state=... or None)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zip/npz corruption surfaces as many exception types
        raise CheckpointError(f"checkpoint '{path}' is not a readable .npz file ({exc})") from None
    if _META_KEY not in arrays:
        raise CheckpointError(f"'{path}' is an .npz file but not a Yuan checkpoint (no metadata)")
    try:
        header = json.loads(arrays.pop(_META_KEY).tobytes().decode())
    except ValueError as exc:
        raise CheckpointError(f"checkpoint '{path}' has corrupt metadata ({exc})") from None
    model_state = {k[len(_MODEL_PREFIX):]: v for k, v in arrays.items() if k.startswith(_MODEL_PREFIX)}
    optim_arrays = {k[len(_OPTIM_PREFIX):]: v for k, v in arrays.items() if k.startswith(_OPTIM_PREFIX)}
    optimizer_state = _unflatten_arrays(optim_arrays, header["optimizer"]) if header.get("optimizer") else None
    return {"config": header.get("config", {}), "meta": header.get("meta", {}),
            "model_state": model_state, "optimizer_state": optimizer_state}


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in checkpoint metadata")


def _flatten_arrays(obj, prefix="", out=None):
    """Split a nested structure into {path: ndarray} and a JSON skeleton with placeholders."""
    out = {} if out is None else out
    if isinstance(obj, np.ndarray):
        out[prefix] = obj
        return out, {"__array__": prefix}
    if isinstance(obj, dict):
        skeleton = {}
        for k, v in obj.items():
            _, skeleton[str(k)] = _flatten_arrays(v, f"{prefix}/{k}" if prefix else str(k), out)
        return out, {"__dict__": skeleton, "__int_keys__": [str(k) for k in obj if isinstance(k, int)]}
    if isinstance(obj, (list, tuple)):
        items = [_flatten_arrays(v, f"{prefix}/{i}", out)[1] for i, v in enumerate(obj)]
        return out, {"__list__": items}
    return out, obj


def _unflatten_arrays(arrays, skeleton):
    if isinstance(skeleton, dict) and "__array__" in skeleton:
        return arrays[skeleton["__array__"]]
    if isinstance(skeleton, dict) and "__dict__" in skeleton:
        int_keys = set(skeleton.get("__int_keys__", []))
        return {(int(k) if k in int_keys else k): _unflatten_arrays(arrays, v) for k, v in skeleton["__dict__"].items()}
    if isinstance(skeleton, dict) and "__list__" in skeleton:
        return [_unflatten_arrays(arrays, v) for v in skeleton["__list__"]]
    return skeleton
