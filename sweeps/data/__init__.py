"""The data layer: a config -> cached, memory-mapped train/val token arrays with a fingerprint.

Sources (`data.name`): `pystdlib` (the running Python's standard library sources, the default),
`text` (UTF-8 file, folder or glob), `tokens` (nanoGPT `.bin` or `.npy` ids) and `synthetic`
(a seeded Markov chain, for tests). Tokenizers (`data.tokenizer`): `bytes` (vocab 256) and `bpe`
(byte-level BPE trained on the train split only). See sources.py for the split and fingerprint
conventions and cache.py for the on-disk layout.

Warm path (every run start): list the files and stat them (no reads), map that listing to its
content hash through a small JSON file, and memory-map the entry named by the dataset id.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sweeps import records
from sweeps.config import DataConfig
from sweeps.data import build, cache, sources, tokenizer
from sweeps.data.synthetic import GENERATOR_VERSION, synthetic_seed
from sweeps.data.windows import eval_windows
from sweeps.errors import UserError

__all__ = [
    "TokenData",
    "load_dataset",
    "vocab_size_of",
    "eval_windows",
    "check_bpe_vocab",
    "SPLIT_VERSION",
]

# Part of every dataset id: bump when the split or encoding rules change (old caches go unused).
# 2: held-out near-copies of training files are trained on (overlap.py); only sources of files
# (text, pystdlib) carry it: the tail split of tokens and synthetic data is as at version 1.
SPLIT_VERSION = 2


@dataclass(frozen=True)
class TokenData:
    """A tokenized corpus, split into train and validation.

    Ids are uint16 when vocab_size <= 65536, else uint32; arrays are usually read-only np.memmap.
    """

    train: np.ndarray  # 1-D token ids
    val: np.ndarray  # 1-D, the held-out split (never trained on)
    vocab_size: int  # ids lie in [0, vocab_size)
    dataset_id: str  # 12 hex chars of sha256(source, content hash, tokenizer, vocab, split)
    info: dict[str, Any]  # JSON-able fingerprint and sizes, recorded with every run
    unigram_entropy: float  # nats/token of the train split's unigram distribution
    val_bytes_per_token: float  # UTF-8 bytes of val text per val token; NaN for tokens/synthetic


def _dataset_id(cfg: DataConfig, content_hash: str) -> str:
    tok = {"bytes": "bytes", "bpe": f"bpe-{cfg.vocab_size}"}[cfg.tokenizer]
    if cfg.name in ("tokens", "synthetic"):
        tok = "pretokenized"
    blob = json.dumps(
        [cfg.name, content_hash, tok, repr(float(cfg.val_fraction)),
         SPLIT_VERSION if cfg.name in ("text", "pystdlib") else 1]
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _token_data(entry: Path) -> TokenData | None:
    opened = cache.open_entry(entry)
    if opened is None:
        return None
    meta, train, val = opened
    info = meta["info"]
    bpt = info["val_bytes_per_token"]
    return TokenData(
        train=train,
        val=val,
        vocab_size=int(meta["vocab_size"]),
        dataset_id=entry.name,
        info=info,
        unigram_entropy=float(info["unigram_entropy"]),
        val_bytes_per_token=math.nan if bpt is None else float(bpt),
    )


def _hash_file(path: str, prefix: bytes) -> str:
    h = hashlib.sha256(prefix)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def load_dataset(cfg: DataConfig, *, progress: bool = True) -> TokenData:
    """Load the corpus `cfg` names, building its cache entry first if needed (once, under a lock).

    Raises UserError naming the `data.*` field at fault (missing or empty path, a non-UTF-8 file,
    a token file of the wrong size, a split that leaves one side empty, ...).
    """
    root = cache.cache_root(cfg.cache_dir)
    if cfg.name in ("tokens", "synthetic") and cfg.tokenizer != "bytes":
        raise UserError(
            "data.tokenizer",
            f"data.name={cfg.name} is already tokenized, so data.tokenizer={cfg.tokenizer} has "
            "nothing to do",
            "drop data.tokenizer (or use data.name=text for a BPE on raw text)",
        )
    base: dict[str, Any] = {"name": cfg.name, "val_fraction": cfg.val_fraction}

    if cfg.name == "synthetic":
        seed = synthetic_seed(cfg.synthetic_n_tokens, cfg.synthetic_vocab_size)
        spec = [GENERATOR_VERSION, cfg.synthetic_n_tokens, cfg.synthetic_vocab_size, seed]
        content_hash = hashlib.sha256(json.dumps(spec).encode()).hexdigest()
        key = _dataset_id(cfg, content_hash)
        info = {
            **base,
            "content_hash": content_hash,
            "tokenizer": "synthetic",
            "seed": seed,
            "source": None,
            "dataset_id": key,
        }
        warm = _token_data(root / key)
        if warm is not None:
            return warm
        entry = cache.build_entry(
            root,
            key,
            lambda out: build.build_synthetic(
                out,
                n_tokens=cfg.synthetic_n_tokens,
                vocab_size=cfg.synthetic_vocab_size,
                seed=seed,
                val_fraction=cfg.val_fraction,
                info=info,
            ),
        )
        return _token_data(entry) or _missing(entry)

    # File-backed sources: a cheap listing first, which usually maps straight to a cached entry.
    if cfg.name == "pystdlib":
        src_root, files = sources.list_pystdlib()
        listing_name = f"pystdlib-{platform.python_version()}"
    elif cfg.name == "text":
        src_root, files = sources.list_text(str(cfg.path))
        listing_name = "text"
    else:
        ids = sources.read_token_file(str(cfg.path), cfg.token_dtype)  # validates before hashing
        p = Path(str(cfg.path)).expanduser().resolve()
        src_root = p.parent
        st = p.stat()
        files = [sources.SourceFile(p.name, str(p), st.st_size, st.st_mtime_ns)]
        listing_name = "tokens" if p.suffix == ".npy" else f"tokens-{cfg.token_dtype}"
    if cfg.tokenizer == "bpe":
        tokenizer.check_bpe_vocab(cfg.vocab_size, sum(f.size for f in files))
    listing_path = root / "listings" / f"{sources.listing_key(listing_name, src_root, files)}.json"
    listing = cache.read_json(listing_path)
    if listing is not None:
        warm = _token_data(root / _dataset_id(cfg, listing["content_hash"]))
        if warm is not None:
            return warm

    # Cold: read and fingerprint the content (several processes may do this at once; harmless).
    if cfg.name == "tokens":
        content_hash = _hash_file(files[0].path, f"{listing_name}\0".encode())
        fingerprint = {"content_hash": content_hash, "n_bytes": files[0].size, "n_files": 1}
    else:
        corpus = sources.read_corpus(files, strict=cfg.name == "text", progress=progress)
        content_hash = corpus.content_hash
        fingerprint = {
            "content_hash": content_hash,
            "n_bytes": sum(corpus.n_bytes_per_file),
            "n_files": len(corpus.relpaths),
            "n_skipped_files": len(corpus.skipped),
        }
        if cfg.name == "pystdlib":
            fingerprint["python_version"] = platform.python_version()
    key = _dataset_id(cfg, content_hash)
    source = files[0].path if cfg.name == "tokens" else str(src_root)
    info = {**base, **fingerprint, "source": source, "dataset_id": key}

    def _build(out: Path) -> None:
        if cfg.name == "tokens":
            build.build_tokens(
                out, ids, val_fraction=cfg.val_fraction, info={**info, "tokenizer": "pretokenized"}
            )
        else:
            bpe_vocab = cfg.vocab_size if cfg.tokenizer == "bpe" else None
            tok_info = {"tokenizer": cfg.tokenizer if bpe_vocab is None else f"bpe-{bpe_vocab}"}
            build.build_text(
                out,
                corpus,
                bpe_vocab_size=bpe_vocab,
                val_fraction=cfg.val_fraction,
                progress=progress,
                info={**info, **tok_info},
            )

    entry = cache.build_entry(root, key, _build)
    # the listing only once its entry exists: a failed build leaves neither behind
    records.write_json_atomic(listing_path, {**fingerprint, "listing": listing_name})
    return _token_data(entry) or _missing(entry)


def vocab_size_of(cfg: DataConfig) -> int:
    """The vocabulary size load_dataset(cfg) will have, without building or tokenizing anything
    (for naming runs in a sweep's launching process, which may sit on a cluster's login node).

    A BPE build stops with an error rather than make fewer symbols than data.vocab_size; token
    files are read (memory-mapped) for their largest id, as build_tokens does.
    """
    if cfg.name == "synthetic":
        return cfg.synthetic_vocab_size
    if cfg.name == "tokens":
        return int(sources.read_token_file(str(cfg.path), cfg.token_dtype).max()) + 1
    return cfg.vocab_size if cfg.tokenizer == "bpe" else 256


def check_bpe_vocab(cfg: DataConfig) -> None:
    """A BPE vocabulary the corpus cannot make, refused from a listing of its files (no read)."""
    if cfg.tokenizer != "bpe" or cfg.name not in ("text", "pystdlib"):
        return
    _, files = (
        sources.list_pystdlib() if cfg.name == "pystdlib" else sources.list_text(cfg.path or "")
    )
    tokenizer.check_bpe_vocab(cfg.vocab_size, sum(f.size for f in files))


def _missing(entry: Path) -> TokenData:
    raise RuntimeError(f"cache entry {entry} vanished right after it was built")
