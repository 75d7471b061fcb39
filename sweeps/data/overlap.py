"""Held-out files that are near-copies of training files: found by shared byte spans: trained on.

A split by file holds out whole files, but a corpus can hold several copies of one text: the
standard library's generated codec tables (`encodings/cp858.py` and `cp850.py` differ in a few
hundred bytes), vendored modules, test fixtures. A held-out copy of a training file is scored
on text the model has read, and a larger model trained longer memorises more of it, so the
held-out loss falls faster with scale than it does on unseen text. Duplicates across a split
inflate measured performance (Allamanis 2019, "The adverse effects of code duplication in machine
learning models of code"); evaluation sets are decontaminated by shared n-grams (Brown et al.
2020, GPT-3, section 4, 13-gram overlap).

Rule: a held-out file whose sampled `SPAN`-byte windows appear verbatim in the training files at
a share of `NEAR_COPY` or more is a near-copy, and joins the training split, unless the copies
hold half the held-out bytes or more (then none moves: what stayed would be too little to score).
Windows are sampled by hash value (those whose hash is 0 mod `SAMPLE`, the same windows on both
sides, so a copied window is sampled in both), which keeps memory at 1/SAMPLE
of the corpus's 8 bytes per position. On pystdlib (Python 3.11) this moves 8 of 86 held-out
files, 5.6% of their bytes: seven generated codecs (`encodings/`) and `chunk.py`; the evaluation
tokens inside a 64-byte span of the train split fall from 9.4% to 6.0% (the rest: licence
headers, shared test idioms, partial copies such as `encodings/mac_arabic.py` at 22%).
`python benchmarks/heldout_overlap.py` measures both (92 s).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPAN", "NEAR_COPY", "SAMPLE", "window_hashes", "copied_share", "near_copies"]

SPAN = 64  # bytes: longer than any line of boilerplate a file shares by chance with the corpus
NEAR_COPY = 0.5  # most of the file: a copy with edits, not a file that quotes a licence header
SAMPLE = 8  # keep windows whose hash is 0 mod SAMPLE

_MUL = np.uint64(0x100000001B3)  # odd: multiplication by it is a bijection mod 2**64


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the output (uint64 arithmetic wraps)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def window_hashes(data: bytes, span: int = SPAN) -> np.ndarray:
    """uint64 hash of every window data[i : i + span] (len(data) - span + 1 of them; none when
    the data is shorter), built by doubling: h_2w[i] = h_w[i] * M^w + h_w[i + w]."""
    assert span >= 1 and span & (span - 1) == 0, "span: a power of two"
    if len(data) < span:
        return np.zeros(0, np.uint64)
    h = _mix(np.frombuffer(data, np.uint8).astype(np.uint64) + np.uint64(1))
    w, mul = 1, _MUL
    with np.errstate(over="ignore"):
        while w < span:
            h = h[:-w] * mul + h[w:]
            mul = mul * mul
            w *= 2
        return _mix(h)


def _sampled(text: str) -> np.ndarray:
    h = window_hashes(text.encode("utf-8"))
    return h[h % np.uint64(SAMPLE) == 0]


def copied_share(train_texts: list[str], val_texts: list[str]) -> list[float]:
    """Per held-out text, the share of its sampled windows found in the training texts (0.0 for a
    text too short to have a sampled window)."""
    seen = np.unique(np.concatenate([_sampled(t) for t in train_texts] or [np.zeros(0, np.uint64)]))
    out = []
    for t in val_texts:
        mine = _sampled(t)
        if not (mine.size and seen.size):
            out.append(0.0)
            continue
        at = np.minimum(np.searchsorted(seen, mine), seen.size - 1)  # np.isin re-sorts `seen`
        out.append(float((seen[at] == mine).mean()))
    return out


def near_copies(train_texts: list[str], val_texts: list[str]) -> list[bool]:
    """Per held-out text, whether it is a near-copy of the training texts (module docstring);
    none where the copies hold half the held-out bytes or more (a held-out side made mostly of
    copies is kept whole: moving them would leave too little to score, or nothing)."""
    moved = [s >= NEAR_COPY for s in copied_share(train_texts, val_texts)]
    size = [len(t.encode("utf-8")) for t in val_texts]
    if 2 * sum(n for n, m in zip(size, moved, strict=True) if m) >= sum(size):
        return [False] * len(moved)
    return moved
