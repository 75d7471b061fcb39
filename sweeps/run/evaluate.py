"""The training batches and the held-out evaluation of one run, for one rank of `world`.

Both are exact under data parallelism: the batch at step s is a function of (seed, s) alone and
every rank slices the same global batch; the evaluation's sums are all-reduced, so the loss does
not depend on the number of ranks (beyond fp32 round-off).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np
import torch
import torch.nn.functional as F

from sweeps.run.distributed import Ranks, rows_of
from sweeps.run.memory import EVAL_BATCH_SIZE

__all__ = ["global_batch", "evaluate"]


def global_batch(
    train: np.ndarray,
    step: int,
    *,
    seed: int,
    batch_size: int,
    context: int,
    rows: slice = slice(None),
    device: torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows `rows` of the global batch of step `step`: random windows drawn from (seed, step)
    alone, so a resumed run and every rank of a distributed one see the same global batch.
    On CUDA the rows go through pinned host memory with a non-blocking copy."""
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, len(train) - context - 1, size=batch_size)[rows]
    xy = torch.from_numpy(np.stack([train[s : s + context + 1] for s in starts]).astype(np.int64))
    if device is not None and device.type == "cuda":
        xy = xy.pin_memory().to(device, non_blocking=True)
    elif device is not None:
        xy = xy.to(device)
    return xy[:, :-1], xy[:, 1:]  # (b, T), (b, T)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    val: np.ndarray,
    *,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager],
    ranks: Ranks,
    batch_size: int = EVAL_BATCH_SIZE,
) -> tuple[float, float]:
    """Mean cross-entropy (nats/token) over the fixed held-out windows, and its standard error
    over sequences (the same windows for every run, so differences between runs are paired).

    Each rank evaluates its contiguous share of the windows; the sums of per-sequence losses and
    of their squares are all-reduced in float64, so every rank returns the same numbers."""
    model.eval()
    mine = val[rows_of(len(val), ranks.rank, ranks.world)]
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # n, sum, sum of squares
    for i in range(0, len(mine), batch_size):
        xy = torch.from_numpy(mine[i : i + batch_size]).to(device)
        with autocast():
            logits = model(xy[:, :-1])
        loss = F.cross_entropy(logits.float().transpose(1, 2), xy[:, 1:], reduction="none")
        per_seq = loss.mean(dim=1).double()  # (B,)
        sums += torch.stack(
            [per_seq.new_tensor(len(per_seq)), per_seq.sum(), per_seq.square().sum()]
        )
    model.train()
    n, s, ss = ranks.all_sum(sums).tolist()
    mean = s / n
    var = max(0.0, (ss - s * s / n) / (n - 1)) if n > 1 else float("nan")
    return mean, math.sqrt(var / n) if n > 1 else float("nan")
