"""Where corpora come from: file listings, fingerprints, UTF-8 checks and the train/val split.

Conventions:
- A corpus is a sorted list of files, each named by its path relative to the corpus root in POSIX
  form; sorting is by that string, so the order is the same on every machine.
- The content hash is sha256 over, per included file in order: relpath, NUL, 8-byte length, bytes.
  It names the data; the cheap listing key (paths, sizes, mtimes) only finds a cached content hash.
- Splitting by file: a file is held out when the first 8 bytes of sha256(relpath), read as a
  fraction of 2**64, fall below `val_fraction`. This is stable across machines and grows the
  held-out set monotonically with `val_fraction`. At least one file lands on each side. A
  held-out file that is a near-copy of training files then joins the train split (overlap.py;
  after that step the held-out set need not grow monotonically).
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import stat
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sweeps.errors import UserError

__all__ = [
    "SourceFile",
    "Corpus",
    "list_pystdlib",
    "list_text",
    "listing_key",
    "read_corpus",
    "split_by_file",
    "read_token_file",
]

# Folders of the stdlib tree that are not the standard library's own sources, or that differ
# between two builds of the same Python version (so would break cross-machine identity).
_PYSTDLIB_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__"}
_PYSTDLIB_SKIP_PREFIXES = ("config-", "_sysconfigdata_")


@dataclass(frozen=True)
class SourceFile:
    relpath: str  # POSIX path relative to the corpus root: what is hashed and split on
    path: str  # absolute path on this machine
    size: int  # bytes
    mtime_ns: int


@dataclass(frozen=True)
class Corpus:
    """The decoded text of a listing, in order, with its fingerprint."""

    relpaths: list[str]
    texts: list[str]
    n_bytes_per_file: list[int]
    content_hash: str  # hex sha256 (see the module docstring)
    skipped: list[str]  # relpaths left out because they are not valid UTF-8 (pystdlib only)


def not_a_file(path: Path) -> str | None:
    """What a path is when it is not a regular file or a folder, in words, or None: a FIFO or a
    device would block or never end a read, and a dangling or looping link reads as 'missing'."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        return None  # nothing there at all
    if stat.S_ISLNK(mode):
        try:
            path.stat()
        except OSError as e:  # ELOOP or ENOENT behind the link
            return f"a symbolic link that {'loops' if e.errno == errno.ELOOP else 'points nowhere'}"
        mode = path.stat().st_mode
    kinds = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))  # fmt: skip
    return next((what for test, what in kinds if test(mode)), None)


def _stat(root: Path, path: Path) -> SourceFile:
    st = path.stat()
    return SourceFile(path.relative_to(root).as_posix(), str(path), st.st_size, st.st_mtime_ns)


def list_pystdlib() -> tuple[Path, list[SourceFile]]:
    """Every `.py` file of the running interpreter's standard library, test folders included.

    Tests are kept: they are ordinary Python source and more than half of the ~30 MB, which the
    larger budgets of a sweep need to avoid repeating data. Skipped: site-packages, __pycache__,
    and the build-specific `config-*` folder and `_sysconfigdata_*` module.
    """
    root = Path(sysconfig.get_paths()["stdlib"]).resolve()
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d
            for d in dirnames
            if d not in _PYSTDLIB_SKIP_DIRS and not d.startswith(_PYSTDLIB_SKIP_PREFIXES)
        ]
        for name in filenames:
            if name.endswith(".py") and not name.startswith(_PYSTDLIB_SKIP_PREFIXES):
                files.append(_stat(root, Path(dirpath, name)))
    return root, sorted(files, key=lambda f: f.relpath)


def list_text(path: str) -> tuple[Path, list[SourceFile]]:
    """A UTF-8 corpus: one file, every non-hidden file under a folder, or the files of a glob."""
    p = Path(path).expanduser()
    if glob.has_magic(path):
        matches = [Path(m).resolve() for m in glob.glob(os.path.expanduser(path), recursive=True)]
        matches = [m for m in matches if m.is_file()]
        if not matches:
            raise UserError(
                "data.path", f"the glob {path!r} matches no file", "check the pattern in data.path"
            )
        root = Path(os.path.commonpath([m.parent for m in matches]))
        files = [_stat(root, m) for m in matches]
    elif p.is_file():
        p = p.resolve()
        root, files = p.parent, [_stat(p.parent, p)]
    elif p.is_dir():
        root = p.resolve()
        files = []
        odd = []
        for dirpath, dirnames, filenames in os.walk(root):
            # Hidden entries (.git, .DS_Store) are tooling, not text.
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for n in filenames:
                if n.startswith("."):
                    continue
                f = Path(dirpath, n)
                what = not_a_file(f)
                if what is None and not f.is_file():
                    what = "not a regular file"
                if what:  # a FIFO's read blocks for ever: named and passed over, never read
                    odd.append(f"{f.relative_to(root).as_posix()} ({what})")
                else:
                    files.append(_stat(root, f))
        if odd:
            print(f"data.path: skipped {len(odd)} entr{'y' if len(odd) == 1 else 'ies'} that "
                  f"{'is' if len(odd) == 1 else 'are'} not a regular file: "
                  f"{', '.join(odd[:5])}{' ...' if len(odd) > 5 else ''}",
                  file=sys.stderr, flush=True)  # fmt: skip
    else:
        what = not_a_file(p)
        raise UserError(
            "data.path",
            f"{path!r} is {what}, not a file or a folder" if what else f"{path!r} does not exist",
            "point data.path at a UTF-8 text file, a folder of them, or a glob like 'dir/*.txt'",
        )
    files = sorted(files, key=lambda f: f.relpath)
    if sum(f.size for f in files) == 0:
        raise UserError(
            "data.path",
            f"the corpus at {path!r} is empty ({len(files)} files, 0 bytes)",
            "point data.path at a non-empty UTF-8 text file or folder",
        )
    return root, files


def listing_key(name: str, root: Path, files: list[SourceFile]) -> str:
    """A cheap key of a listing: changes whenever a file is added, removed, resized or touched."""
    h = hashlib.sha256(json.dumps([name, str(root)]).encode())
    for f in files:
        h.update(f"{f.relpath}\0{f.size}\0{f.mtime_ns}\n".encode())
    return h.hexdigest()


def read_corpus(files: list[SourceFile], *, strict: bool, progress: bool) -> Corpus:
    """Read and UTF-8-decode every file; a bad file is a UserError if `strict`, else skipped."""
    h = hashlib.sha256()
    relpaths, texts, sizes, skipped = [], [], [], []
    total = sum(f.size for f in files)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="read corpus", disable=not progress)
    with bar:
        for f in files:
            data = Path(f.path).read_bytes()
            bar.update(f.size)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                if strict:
                    raise UserError(
                        "data.path",
                        f"{f.path} is not valid UTF-8 (byte offset {e.start}: {e.reason})",
                        "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8) or remove it",
                    ) from None
                skipped.append(f.relpath)
                continue
            h.update(f.relpath.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
            relpaths.append(f.relpath)
            texts.append(text)
            sizes.append(len(data))
    if sum(sizes) == 0:
        raise UserError("data.path", "the corpus is empty (0 bytes of text)", "add UTF-8 text")
    return Corpus(relpaths, texts, sizes, h.hexdigest(), skipped)


def split_by_file(relpaths: list[str], val_fraction: float) -> list[bool]:
    """is_val per file, by a hash of its relpath (see the module docstring); needs >= 2 files."""
    u = [int.from_bytes(hashlib.sha256(r.encode()).digest()[:8], "big") / 2**64 for r in relpaths]
    is_val = [x < val_fraction for x in u]
    # A tiny corpus can fall all on one side: then move the extreme file across.
    if not any(is_val):
        is_val[min(range(len(u)), key=u.__getitem__)] = True
    if all(is_val):
        is_val[max(range(len(u)), key=u.__getitem__)] = False
    return is_val


def read_token_file(path: str, token_dtype: str) -> np.ndarray:
    """A 1-D array of token ids from a nanoGPT raw `.bin` (dtype `token_dtype`) or a `.npy` file."""
    p = Path(path).expanduser()
    if not p.is_file():
        what = not_a_file(p)
        raise UserError(
            "data.path",
            f"{path!r} is {what}, not a file" if what else f"{path!r} is not a file",
            "point data.path at a token file (.bin of data.token_dtype, or .npy)",
        )
    if p.suffix == ".npy":
        try:
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as e:
            raise UserError(
                "data.path", f"{path} is not a readable .npy array ({e})", "save it with np.save"
            ) from None
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise UserError(
                "data.path",
                f"{path} holds a {arr.dtype} array of shape {arr.shape}",
                "save a 1-D integer array of token ids",
            )
    else:
        itemsize = np.dtype(token_dtype).itemsize
        size = p.stat().st_size
        if size % itemsize:
            raise UserError(
                "data.token_dtype",
                f"{path} has {size} bytes, not a whole number of {token_dtype} tokens",
                "set data.token_dtype to the dtype the file was written with (uint16 or uint32)",
            )
        arr = np.memmap(p, dtype=token_dtype, mode="r") if size else np.zeros(0, token_dtype)
    if arr.size == 0:
        raise UserError("data.path", f"{path} holds no tokens", "use a non-empty token file")
    return arr  # values are checked when the cache entry is built: a full scan, done once
