"""Build one cache entry: split a corpus, encode it, and write train.bin, val.bin and meta.json.

Every builder writes into the private folder it is given (see cache.build_entry) and writes
meta.json last. The meta's `info` is what a run records about its data.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from sweeps.data import tokenizer
from sweeps.data.overlap import near_copies
from sweeps.data.sources import Corpus, split_by_file
from sweeps.data.synthetic import markov_tokens
from sweeps.errors import UserError
from sweeps.records import write_json_atomic

__all__ = ["unigram_entropy", "build_text", "build_tokens", "build_synthetic"]


def unigram_entropy(ids: np.ndarray, vocab_size: int) -> float:
    """Entropy in nats/token of the empirical unigram distribution of `ids` (0 log 0 = 0)."""
    counts = np.bincount(np.asarray(ids), minlength=vocab_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _write(
    out: Path,
    train: np.ndarray,
    val: np.ndarray,
    *,
    vocab_size: int,
    val_bytes_per_token: float,
    info: dict[str, Any],
    extra_meta: dict[str, Any] | None = None,
) -> None:
    if len(train) == 0 or len(val) == 0:
        raise UserError(
            "data.val_fraction",
            f"the split left {len(train)} train and {len(val)} validation tokens",
            "use a larger corpus, or a data.val_fraction that leaves tokens on both sides",
        )
    dtype = tokenizer.dtype_for(vocab_size)
    np.ascontiguousarray(train, dtype=dtype).tofile(out / "train.bin")
    np.ascontiguousarray(val, dtype=dtype).tofile(out / "val.bin")
    entropy = unigram_entropy(train, vocab_size)
    info = {
        **info,
        "vocab_size": vocab_size,
        "n_train_tokens": len(train),
        "n_val_tokens": len(val),
        "unigram_entropy": entropy,
        # JSON has no NaN: None means "no byte count" (pre-tokenized or synthetic data).
        "val_bytes_per_token": None if math.isnan(val_bytes_per_token) else val_bytes_per_token,
    }
    meta = {
        "dtype": dtype.name,
        "n_train_tokens": len(train),
        "n_val_tokens": len(val),
        "vocab_size": vocab_size,
        "info": info,
        **(extra_meta or {}),
    }
    write_json_atomic(out / "meta.json", meta)


def build_text(
    out: Path,
    corpus: Corpus,
    *,
    bpe_vocab_size: int | None,
    val_fraction: float,
    progress: bool,
    info: dict[str, Any],
) -> None:
    """Split by file (several files; a held-out near-copy of a training file is trained on,
    overlap.py) or by the last val_fraction of the text (one file); encode."""
    if len(corpus.texts) >= 2:
        is_val = split_by_file(corpus.relpaths, val_fraction)
        # near-copies of training files are training data (overlap.py)
        held = [i for i, v in enumerate(is_val) if v]
        copies = near_copies([t for t, v in zip(corpus.texts, is_val, strict=True) if not v],
                             [corpus.texts[i] for i in held])  # fmt: skip
        moved = [corpus.relpaths[i] for i, c in zip(held, copies, strict=True) if c]
        for i, c in zip(held, copies, strict=True):
            is_val[i] = not c
        train_texts = [t for t, v in zip(corpus.texts, is_val, strict=True) if not v]
        val_texts = [t for t, v in zip(corpus.texts, is_val, strict=True) if v]
        split = {
            "split": "by_file",
            "n_train_files": is_val.count(False),
            "n_val_files": is_val.count(True),
            "n_near_copies_trained": len(moved),
        }
        # Listed in meta.json, not in info: info goes into every run record.
        extra = {
            "val_files": [r for r, v in zip(corpus.relpaths, is_val, strict=True) if v],
            "near_copies_trained": moved,
            "skipped_files": corpus.skipped,
        }
    else:
        text = corpus.texts[0]
        # Cut in characters, not bytes, so a multi-byte code point is never split.
        cut = math.floor(len(text) * (1.0 - val_fraction))
        train_texts, val_texts = [text[:cut]], [text[cut:]]
        split = {"split": "tail", "n_train_files": 1, "n_val_files": 1}
        extra = {"skipped_files": corpus.skipped}
    bpe = None
    if bpe_vocab_size is not None:
        bpe = tokenizer.train_bpe(train_texts, vocab_size=bpe_vocab_size, progress=progress)
        if bpe.get_vocab_size() < bpe_vocab_size:  # the record would name a vocabulary never made
            raise UserError(
                "data.vocab_size",
                f"the BPE trained on this corpus's train split stops at {bpe.get_vocab_size():,} "
                f"symbols (no pair left to merge), fewer than the {bpe_vocab_size:,} asked",
                f"use data.vocab_size={bpe.get_vocab_size()} or less, or a larger corpus",
            )
        bpe.save(str(out / "tokenizer.json"))
    train = tokenizer.encode_texts(train_texts, bpe=bpe, progress=progress, desc="encode train")
    val = tokenizer.encode_texts(val_texts, bpe=bpe, progress=progress, desc="encode val")
    vocab_size = 256 if bpe is None else bpe.get_vocab_size()
    val_bytes = sum(len(t.encode("utf-8")) for t in val_texts)
    _write(
        out,
        train,
        val,
        vocab_size=vocab_size,
        val_bytes_per_token=val_bytes / max(len(val), 1),
        info={**info, **split},
        extra_meta=extra,
    )


def build_tokens(out: Path, ids: np.ndarray, *, val_fraction: float, info: dict[str, Any]) -> None:
    """Hold out the last val_fraction of the tokens; vocab_size = max id + 1 (over both splits)."""
    if ids.min() < 0:
        raise UserError("data.path", f"{info['source']} holds negative token ids", "ids are >= 0")
    cut = math.floor(len(ids) * (1.0 - val_fraction))
    vocab_size = int(ids.max()) + 1
    if vocab_size > 1 << 32:
        raise UserError("data.path", f"token id {vocab_size - 1} exceeds uint32", "re-tokenize")
    _write(
        out,
        ids[:cut],
        ids[cut:],
        vocab_size=vocab_size,
        val_bytes_per_token=math.nan,
        info={**info, "split": "tail"},
    )


def build_synthetic(
    out: Path,
    *,
    n_tokens: int,
    vocab_size: int,
    seed: int,
    val_fraction: float,
    info: dict[str, Any],
) -> None:
    """A Markov-chain corpus (see synthetic.py); the last val_fraction is held out."""
    ids, entropy_rate = markov_tokens(n_tokens, vocab_size, seed)
    cut = math.floor(n_tokens * (1.0 - val_fraction))
    _write(
        out,
        ids[:cut],
        ids[cut:],
        vocab_size=vocab_size,
        val_bytes_per_token=math.nan,
        info={**info, "split": "tail", "entropy_rate": entropy_rate},
    )
