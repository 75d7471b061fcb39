"""A seeded synthetic corpus with structure a small model learns in a few hundred steps.

A first-order Markov chain over `vocab_size` symbols: each symbol has 4 successors (its neighbour
s+1, which makes the chain irreducible, plus 3 random ones) with Dirichlet(0.5) probabilities. The
best possible loss is the chain's entropy rate (~0.8 nats/token), far below the unigram entropy
(~log vocab_size), so a falling loss is easy to see in tests.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["synthetic_seed", "markov_tokens"]

GENERATOR_VERSION = 1  # bump when the chain or sampler changes: it is part of the dataset id
_N_SUCCESSORS = 4


def synthetic_seed(n_tokens: int, vocab_size: int) -> int:
    """The fixed seed of a synthetic corpus, derived from its config (same config, same tokens)."""
    blob = f"synthetic-v{GENERATOR_VERSION}:{n_tokens}:{vocab_size}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little")


def markov_tokens(n_tokens: int, vocab_size: int, seed: int) -> tuple[np.ndarray, float]:
    """(tokens uint16 or uint32 of length n_tokens, empirical entropy rate in nats/token)."""
    rng = np.random.default_rng(seed)
    v = vocab_size
    k = min(_N_SUCCESSORS, v)
    succ = np.empty((v, k), dtype=np.int64)
    for s in range(v):
        others = rng.choice(np.delete(np.arange(v), (s + 1) % v), size=k - 1, replace=False)
        succ[s] = np.concatenate([[(s + 1) % v], others])
    probs = rng.dirichlet(np.full(k, 0.5), size=v)
    cum = np.cumsum(probs, axis=1)
    cum[:, -1] = 1.0  # guard against rounding leaving a draw above the last edge
    # Draw all uniforms at once; the walk itself is sequential by nature.
    u = rng.random(n_tokens)
    choice = np.empty(n_tokens, dtype=np.int64)
    out = np.empty(n_tokens, dtype=np.int64)
    state = int(rng.integers(v))
    for t in range(n_tokens):
        j = int(np.searchsorted(cum[state], u[t], side="right"))
        choice[t] = j
        state = int(succ[state, j])
        out[t] = state
    prev = np.concatenate([[out[0]], out[:-1]])
    nll = -np.log(probs[prev[1:], choice[1:]])
    dtype = np.uint16 if v <= 1 << 16 else np.uint32
    return out.astype(dtype), float(nll.mean()) if nll.size else 0.0
