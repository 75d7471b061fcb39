"""The on-disk cache of encoded corpora: one folder per dataset id, built once, safe under races.

Layout under the cache root (`data.cache_dir`, else `$SCALING_SWEEPS_CACHE`, else
`${XDG_CACHE_HOME:-~/.cache}/scaling-sweeps`):

    <root>/<dataset_id>/meta.json        what the entry holds (dtype, token counts, info)
    <root>/<dataset_id>/train.bin        raw little-endian token ids, dtype from meta.json
    <root>/<dataset_id>/val.bin
    <root>/<dataset_id>/tokenizer.json   BPE only: the trained HF `tokenizers` model
    <root>/<dataset_id>.lock             flock'ed while the entry is being built
    <root>/listings/<key>.json           cheap file listing (paths, sizes, mtimes) -> content hash

An entry is built in a private temp folder and renamed into place under an exclusive lock, so a
folder that exists is complete: readers memory-map it without taking the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sweeps import records
from sweeps.errors import UserError

__all__ = ["cache_root", "read_json", "open_entry", "build_entry"]

META = "meta.json"


def cache_root(cache_dir: str) -> Path:
    """The cache folder, created if needed; an unusable one is a `data.cache_dir` UserError."""
    if cache_dir:
        root = Path(cache_dir).expanduser()
    elif os.environ.get("SCALING_SWEEPS_CACHE"):
        root = Path(os.environ["SCALING_SWEEPS_CACHE"]).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = Path(xdg) / "scaling-sweeps"
    try:
        (root / "listings").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            "data.cache_dir",
            f"cannot create the data cache folder {str(root)!r} ({e.strerror})",
            "set data.cache_dir (or $SCALING_SWEEPS_CACHE) to a writable folder",
        ) from None
    if not os.access(root, os.W_OK):
        raise UserError(
            "data.cache_dir",
            f"the data cache folder {str(root)!r} is not writable",
            "set data.cache_dir (or $SCALING_SWEEPS_CACHE) to a writable folder",
        )
    return root


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at `path`, or None when it is absent or unreadable (a cache miss)."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def open_entry(entry: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray] | None:
    """(meta, train, val) of a complete entry, memory-mapped read-only; None when absent."""
    meta = read_json(entry / META)
    if meta is None:
        return None
    dtype = np.dtype(meta["dtype"])
    train = np.memmap(entry / "train.bin", dtype=dtype, mode="r", shape=(meta["n_train_tokens"],))
    val = np.memmap(entry / "val.bin", dtype=dtype, mode="r", shape=(meta["n_val_tokens"],))
    return meta, train, val


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    # The kernel drops a flock when its process dies: a killed builder never wedges the others.
    # A failed build deletes its lock file (nothing left behind), so a waiter may wake up holding
    # a lock on a deleted file: it then locks the path's current file instead.
    while True:
        f = open(lock_path, "a")
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            same = os.path.samestat(os.fstat(f.fileno()), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()
    try:
        yield
    finally:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        f.close()


def build_entry(root: Path, key: str, build: Callable[[Path], None]) -> Path:
    """Make `<root>/<key>/` exist, calling `build(tmp_dir)` at most once across all processes.

    `build` writes train.bin, val.bin and meta.json (last) into the folder it is given. Whoever
    takes the lock first builds; the others wait on the lock and then find the finished entry.
    """
    entry = root / key
    with _locked(root / f"{key}.lock"):
        if (entry / META).exists():
            return entry
        # Leftovers of a builder that was killed mid-way (we hold the lock, so none is live).
        for stale in root.glob(f".{key}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        if entry.exists():  # a folder without meta.json is incomplete: never trust it
            shutil.rmtree(entry)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{key}.", suffix=".tmp"))
        tmp.chmod(records.umask_mode(0o777))  # not 0700: a shared cache stays readable
        try:
            build(tmp)
            os.replace(tmp, entry)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            # still under the lock: a waiter re-locks the path (see _locked) and builds itself
            (root / f"{key}.lock").unlink(missing_ok=True)
            raise
    return entry
