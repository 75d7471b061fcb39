"""How much of the held-out set is text the model trained on: pystdlib split by file, before and
after near-copies of training files join the train split (sweeps/data/overlap.py).

    python benchmarks/heldout_overlap.py

Prints the files the rule moves (their sampled copied share) and, for the evaluation windows every
run is scored on (data.n_val_tokens = 65536 at context 256, sweeps/data/windows.py), the share of
target tokens inside a 64-byte span that appears verbatim in the train split, under the old split
(split_by_file alone) and the new one. Every 64-byte window is checked here, not a sample.
"""

from __future__ import annotations

import time

import numpy as np

from sweeps.data import overlap, sources
from sweeps.data.windows import window_offsets

N_VAL_TOKENS, CONTEXT = 65536, 256  # the defaults of DataConfig and ModelConfig


def _covered(train: list[str], val: str) -> np.ndarray:
    """Per byte of `val`, whether it lies in a SPAN-byte window also found in `train`."""
    seen = np.unique(np.concatenate([overlap.window_hashes(t.encode()) for t in train]))
    h = overlap.window_hashes(val.encode())
    at = np.minimum(np.searchsorted(seen, h), seen.size - 1)
    hit = seen[at] == h
    starts = np.zeros(len(val.encode()) + 1, np.int64)  # +1 at a hit's start, -1 past its end
    np.add.at(starts, np.flatnonzero(hit), 1)
    np.add.at(starts, np.flatnonzero(hit) + overlap.SPAN, -1)
    return np.cumsum(starts)[:-1] > 0


def _window_share(covered: np.ndarray) -> float:
    """Share of the evaluation windows' target tokens that are covered (bytes tokenizer)."""
    offsets = window_offsets(covered.size, n_tokens=N_VAL_TOKENS, context=CONTEXT)
    return float(covered[offsets[:, None] + 1 + np.arange(CONTEXT)[None, :]].mean())


def main() -> None:
    t0 = time.perf_counter()
    _, files = sources.list_pystdlib()
    corpus = sources.read_corpus(files, strict=False, progress=False)
    is_val = sources.split_by_file(corpus.relpaths, 0.05)
    train = [t for t, v in zip(corpus.texts, is_val, strict=True) if not v]
    held = [(r, t) for r, t, v in zip(corpus.relpaths, corpus.texts, is_val, strict=True) if v]
    share = overlap.copied_share(train, [t for _, t in held])
    copies = overlap.near_copies(train, [t for _, t in held])
    moved = [(r, t, s) for (r, t), s, c in zip(held, share, copies, strict=True) if c]
    n_bytes = sum(len(t.encode()) for _, t in held)
    print(f"pystdlib: {len(corpus.relpaths)} files; {len(held)} held out by split_by_file "
          f"({n_bytes:,} bytes)")  # fmt: skip
    print(f"near-copies (sampled share of {overlap.SPAN}-byte windows seen in train >= "
          f"{overlap.NEAR_COPY}): {len(moved)} files, "
          f"{sum(len(t.encode()) for _, t, _ in moved) / n_bytes:.1%} of the held-out bytes")
    for r, t, s in sorted(moved, key=lambda m: -m[2]):
        print(f"  {s:6.1%}  {len(t.encode()):>7,} bytes  {r}")
    kept = [t for (_, t), c in zip(held, copies, strict=True) if not c]
    old = _covered(train, "".join(t for _, t in held))
    new = _covered(train + [t for _, t, _ in moved], "".join(kept))
    print(f"evaluation tokens inside a {overlap.SPAN}-byte span of the train split: "
          f"{_window_share(old):.1%} before, {_window_share(new):.1%} after "
          f"(all held-out bytes: {old.mean():.1%} -> {new.mean():.1%})")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
