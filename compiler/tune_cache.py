"""The on-disk cache of measured per-shape kernel choices (`yuan compile --tune`).

One JSON file per target under ``<cache>/tune/`` (compiler/ir/cache_dir.py: ``$YUAN_CACHE_DIR``, else
``$XDG_CACHE_HOME/yuan``, else ``~/.cache/yuan``), named by a digest of the TVM target string and the features, holding those and
``entries``: shape key (schedules/choices.py) -> ``{"op", "kernel", "medians_us": {kernel: us},
"rejected": {kernel: why}, "number", "rounds"}``. A damaged or unreadable file is warned about and
ignored (the written rule applies); saving replaces the file atomically, so a compile killed while
saving leaves the old file, never half of one.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings

from yuan.schedules.choices import target_digest, target_fingerprint

from .errors import BuildError
from .ir.cache_dir import cache_dir

CACHE_FORMAT = "yuan-tune"
CACHE_VERSION = 1


class TuneCacheError(BuildError):
    """The tuning cache cannot be written (a folder that cannot be created, no write permission)."""


class TuneCacheWarning(UserWarning):
    """A tuning cache file was unreadable or damaged and is ignored."""


def _valid_entry(entry) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("kernel"), str)
            and isinstance(entry.get("medians_us"), dict) and entry["kernel"] in entry["medians_us"])


def cache_path(target) -> str:
    return os.path.join(cache_dir("tune"), f"{target_digest(target)}.json")


def check_writable(path: str) -> None:
    """Raise TuneCacheError now (before minutes of measuring) when the cache file could not be written."""
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise TuneCacheError(f"cannot create the tuning cache folder {folder}: {exc.strerror}; set "
                             f"YUAN_CACHE_DIR to a writable folder") from None
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise TuneCacheError(f"the tuning cache {path} is not writable; set YUAN_CACHE_DIR to a writable folder")


class TuneCache:
    """The measured choices for one target; `choices()` is what ChoiceTable takes."""

    def __init__(self, target, path: str | None = None):
        self.target = target
        self.path = path or cache_path(target)
        self.entries: dict = {}
        self._load()

    def _load(self) -> None:
        if not os.path.exists(self.path):
            return
        try:
            with open(self.path) as f:
                data = json.load(f)
            if not (isinstance(data, dict) and data.get("format") == CACHE_FORMAT
                    and isinstance(data.get("entries"), dict)):
                raise ValueError(f"not a {CACHE_FORMAT} file")
            if data.get("fingerprint") != target_fingerprint(self.target):
                raise ValueError("it was measured for another target")
            entries = {k: e for k, e in data["entries"].items() if _valid_entry(e)}
            if len(entries) < len(data["entries"]):
                raise ValueError(f"{len(data['entries']) - len(entries)} damaged entries")
        except (OSError, ValueError) as exc:   # json.JSONDecodeError is a ValueError
            warnings.warn(f"tuning cache {self.path} ignored ({type(exc).__name__}: {exc}); the written "
                          f"rule picks the kernels", TuneCacheWarning, stacklevel=2)
            return
        self.entries = entries

    def choices(self) -> dict:
        return {key: e["kernel"] for key, e in self.entries.items()}

    def save(self) -> None:
        check_writable(self.path)
        data = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "fingerprint": target_fingerprint(self.target),
                "target": str(self.target.tvm), "features": sorted(self.target.features), "entries": self.entries}
        folder = os.path.dirname(self.path)
        fd, tmp = tempfile.mkstemp(prefix=".tune-", suffix=".json", dir=folder)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise TuneCacheError(f"cannot write the tuning cache {self.path}: {exc}") from None
