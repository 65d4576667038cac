"""Writing output files safely: checked before the slow work, moved into place only when complete.

    path = output_in_folder(output, "model.so")    # `-o DIR` or `-o DIR/` -> DIR/model.so
    check_output_paths([path], inputs=[model])      # before any slow work; OutputPathError names the path
    with atomic_outputs([so, sidecar]) as staged:   # write staged[i]; moved over so, sidecar on success
        ...
    file_sha256(path)

Why: a command must never destroy its own input or a good earlier result. Every file is first written
into a hidden staging folder (`.yuan-*.tmp`) created inside the destination folder, so it is on the same
filesystem and os.replace moves it into place atomically. Any exception (a full disk, Ctrl-C, a build
error) removes the staging folder and leaves the previous files exactly as they were.

A symbolic link at an output path is replaced by the new file (its target is left alone); an output
that resolves to an input (through links, `./x`, a hard link) is refused.

compiler.build uses this for modules and sidecars, the application layer for ONNX files, checkpoints
and `yuan run` outputs. Standard library only.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
import tempfile
from contextlib import contextmanager

STAGING_PREFIX = ".yuan-"
STAGING_SUFFIX = ".tmp"
_FALLBACK_NAME_MAX = 255
_NOT_REGULAR = {stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device",
                stat.S_ISFIFO: "a named pipe", stat.S_ISSOCK: "a socket"}


class OutputPathError(ValueError):
    """An output path that must not, or cannot, be written. The message names the path."""


# ------------------------------------------------------------------ choosing and checking paths

def output_in_folder(output, default_name: str) -> str:
    """`output` itself, unless it names a folder: an existing one, or any path ending in a separator
    (created when written). Then the file goes inside it, as `default_name`."""
    output = os.fspath(output)
    separators = tuple(s for s in (os.sep, os.altsep) if s)
    if output.endswith(separators) or os.path.isdir(output):
        return os.path.join(output, default_name)
    return output


def same_file(a, b) -> bool:
    """Whether paths `a` and `b` name one file: after resolving links and `..`, or as hard links."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:     # one of them does not exist (yet)
        return False


def check_output_paths(paths, inputs=()) -> None:
    """Raise OutputPathError unless every path in `paths` can be written without harm: none is one of
    `inputs` or another of `paths`, none is a folder or an existing non-regular file (a device, a pipe),
    none is an existing read-only file, every file name fits the filesystem, and each destination folder
    exists, or can be created, and is writable (probed by creating and removing a file, which also
    catches read-only filesystems)."""
    paths = [os.fspath(p) for p in paths]
    if not all(paths):
        raise OutputPathError("the output path is empty")
    for path in paths:
        _refuse_inputs(path, [os.fspath(i) for i in inputs])
    _refuse_duplicates(paths)
    for path in paths:
        refuse_non_regular_file(path)
        _refuse_read_only_file(path)
        _refuse_unwritable_folder(path)


def _refuse_inputs(path: str, inputs) -> None:
    for given in inputs:
        if same_file(path, given):
            raise OutputPathError(f"output '{path}' is the input '{given}'; writing it would destroy "
                                  f"the input: choose another output path")


def _refuse_duplicates(paths) -> None:
    for i, path in enumerate(paths):
        for other in paths[i + 1:]:
            if same_file(path, other):
                raise OutputPathError(f"outputs '{path}' and '{other}' are the same file; "
                                      f"choose another output path")


def refuse_non_regular_file(path) -> None:
    """OutputPathError when `path` exists and is not a regular file: a folder, a device such as
    /dev/null, a named pipe, a socket (replacing those would break the system or lose data)."""
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode    # follows links: a link to /dev/null is refused too
    except OSError:
        return                          # nothing there yet (or unreadable: the write probe decides)
    if stat.S_ISDIR(mode):
        raise OutputPathError(f"output '{path}' is a folder; give a file path inside it")
    for test, kind in _NOT_REGULAR.items():
        if test(mode):
            raise OutputPathError(f"output '{path}' exists and is {kind}, not a regular file; "
                                  f"refusing to replace it")


def _refuse_read_only_file(path: str) -> None:
    # os.replace needs only the folder's permission, but a read-only file was made so on purpose.
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise OutputPathError(f"output '{path}' is read-only; refusing to replace it")


def _refuse_unwritable_folder(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    existing = _nearest_existing(folder)
    if not os.path.isdir(existing):
        raise OutputPathError(f"output '{path}': cannot create the folder '{folder}': "
                              f"'{existing}' is a file, not a folder")
    _refuse_long_names(path, existing)
    try:
        _probe_write(existing)
    except OSError as exc:
        raise OutputPathError(f"output '{path}': cannot write in the folder '{existing}' "
                              f"({exc.strerror})") from None


def _nearest_existing(folder: str) -> str:
    """`folder`, or its closest ancestor that exists (the one missing folders would be created in)."""
    while not os.path.lexists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def _refuse_long_names(path: str, existing_folder: str) -> None:
    try:
        name_max = os.pathconf(existing_folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = _FALLBACK_NAME_MAX
    for part in os.path.abspath(path).split(os.sep):
        size = len(os.fsencode(part))
        if size > name_max:
            raise OutputPathError(f"output '{path}': the name '{part[:40]}...' is too long "
                                  f"({size} bytes; this filesystem allows {name_max})")


def _probe_write(folder: str) -> None:
    """Create and remove a file in `folder`: the only test that is right for root, ACLs and
    read-only mounts alike (os.access is not)."""
    probe = os.path.join(folder, f"{STAGING_PREFIX}probe-{secrets.token_hex(4)}{STAGING_SUFFIX}")
    os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    os.unlink(probe)


# ------------------------------------------------------------------ writing

@contextmanager
def atomic_outputs(paths):
    """Yield one staged path per destination in `paths` (same file name, in a hidden staging folder
    made inside the destination folder, which is created if missing). When the block ends without an
    exception, each staged file is synced to disk and moved over its destination with os.replace, in
    the order given (write a sidecar last). Whatever happens, the staging folder is removed. An OSError
    while writing (a full disk, ...) becomes OutputPathError naming the destination. The destinations
    must share one folder: os.replace is atomic only within a filesystem."""
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    folders = {os.path.dirname(p) for p in paths}
    if len(folders) != 1:
        raise ValueError(f"atomic_outputs: the outputs must share one folder, got {sorted(folders)}")
    staging = _make_staging_folder(folders.pop(), paths[0])
    try:
        staged = [os.path.join(staging, os.path.basename(p)) for p in paths]
        try:
            yield staged
            for source in staged:
                _sync(source)
            for source, destination in zip(staged, paths):
                os.replace(source, destination)
        except OSError as exc:
            raise _write_error(paths[0], exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def atomic_output(path):
    """atomic_outputs for one file: yields the staged path to write."""
    with atomic_outputs([path]) as (staged,):
        yield staged


def _make_staging_folder(folder: str, first_path: str) -> str:
    try:
        os.makedirs(folder, exist_ok=True)
        return tempfile.mkdtemp(prefix=STAGING_PREFIX, suffix=STAGING_SUFFIX, dir=folder)
    except OSError as exc:
        raise _write_error(first_path, exc) from None


def _sync(path: str) -> None:
    """Flush a staged file to disk, so that a crash after the rename cannot leave an empty file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(path: str, exc: OSError) -> OutputPathError:
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    return OutputPathError(f"cannot write '{path}': {reason}")


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes (recorded in a module's sidecar, checked by yuan.runtime.load)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = ["OutputPathError", "output_in_folder", "same_file", "check_output_paths", "refuse_non_regular_file",
           "atomic_outputs",
           "atomic_output", "file_sha256", "STAGING_PREFIX", "STAGING_SUFFIX"]
