"""Text -> token ids: UTF-8 bytes (vocab 256) or a byte-level BPE trained on the train split.

Conventions: ids are stored as uint16 when the vocabulary fits (<= 65536 symbols), else uint32.
Documents are encoded one by one and concatenated with no separator token, so for `bytes` the ids
are exactly the UTF-8 bytes of the concatenated text.
"""

from __future__ import annotations

import numpy as np
from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
from tokenizers import models as bpe_models
from tqdm import tqdm

from sweeps.errors import UserError

__all__ = ["dtype_for", "train_bpe", "encode_texts", "check_bpe_vocab"]

_BATCH_BYTES = 1 << 20  # encode_batch chunks: big enough for its threads, small for the bar


def dtype_for(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id of a `vocab_size` vocabulary."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def check_bpe_vocab(vocab_size: int, n_bytes: int) -> None:
    """Refuse a BPE vocabulary no corpus of `n_bytes` can make: each merge beyond the 256 byte
    symbols needs a pair of symbols in the text, so at most 256 + n_bytes symbols exist."""
    if vocab_size > 256 + n_bytes:
        raise UserError(
            "data.vocab_size",
            f"a BPE of {vocab_size:,} symbols needs more merges than the corpus's {n_bytes:,} "
            "bytes can give",
            f"use data.vocab_size <= {256 + n_bytes} (far less in practice), or a larger corpus",
        )


def train_bpe(texts: list[str], *, vocab_size: int, progress: bool) -> Tokenizer:
    """A byte-level BPE (GPT-2 style pre-tokenization, no special tokens) trained on `texts`.

    Deterministic for the same texts and vocab_size (checked by a test). The vocabulary may come
    out smaller than `vocab_size` on a small corpus: use `get_vocab_size()`.
    """
    tok = Tokenizer(bpe_models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no <unk>
        special_tokens=[],
        show_progress=progress,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def encode_texts(
    texts: list[str], *, bpe: Tokenizer | None, progress: bool, desc: str = "encode"
) -> np.ndarray:
    """Token ids of the concatenated `texts`: UTF-8 bytes when `bpe` is None, else BPE ids."""
    if bpe is None:
        raw = "".join(texts).encode("utf-8")
        return np.frombuffer(raw, dtype=np.uint8).astype(np.uint16)
    dtype = dtype_for(bpe.get_vocab_size())
    parts: list[np.ndarray] = []
    total = sum(len(t) for t in texts)
    with tqdm(total=total, unit="char", unit_scale=True, desc=desc, disable=not progress) as bar:
        batch: list[str] = []
        size = 0
        for i, text in enumerate(texts):
            batch.append(text)
            size += len(text)
            if size >= _BATCH_BYTES or i == len(texts) - 1:
                for enc in bpe.encode_batch(batch, add_special_tokens=False):
                    parts.append(np.asarray(enc.ids, dtype=dtype))
                bar.update(size)
                batch, size = [], 0
    return np.concatenate(parts) if parts else np.zeros(0, dtype)
