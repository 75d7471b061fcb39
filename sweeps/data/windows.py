"""The fixed held-out evaluation set: the same windows of the validation split for every run."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

from sweeps.errors import UserError

if TYPE_CHECKING:
    from sweeps.data import TokenData

__all__ = ["eval_windows", "window_offsets"]


def window_offsets(n_val: int, *, n_tokens: int, context: int) -> np.ndarray:
    """The start of each evaluation window in a validation split of n_val tokens (eval_windows):
    ceil(n_tokens / context) offsets spread evenly from the start to the end of the split."""
    n_seq = math.ceil(n_tokens / context)
    last = n_val - context - 1
    return (np.arange(n_seq, dtype=np.int64) * last) // max(n_seq - 1, 1)


def eval_windows(data: TokenData, *, n_tokens: int, context: int) -> np.ndarray:
    """int64 array (n_seq, context + 1) of validation windows, n_seq = ceil(n_tokens / context).

    Row i is val[o_i : o_i + context + 1] (inputs are [:, :-1], targets [:, 1:]), with offsets
    o_i = floor(i * (len(val) - context - 1) / (n_seq - 1)) spread evenly from the start to the end
    of the split. No randomness: the set depends only on the data, `n_tokens` and `context`, so
    every run of a sweep is scored on the same tokens. When the split holds fewer than
    n_seq * context + 1 tokens the windows overlap (a warning says so): the estimate stays
    unbiased, only less precise.
    """
    if n_tokens < 1:
        raise UserError("data.n_val_tokens", f"must be >= 1, got {n_tokens}", "e.g. 65536")
    if context < 1:
        raise UserError("model.context", f"must be >= 1, got {context}", "e.g. model.context=256")
    n_val = len(data.val)
    if n_val < context + 1:
        raise UserError(
            "model.context",
            f"the validation split of {data.dataset_id} has {n_val} tokens, fewer than "
            f"model.context + 1 = {context + 1}",
            f"use model.context <= {max(n_val - 1, 1)}, or hold out more data "
            "(raise data.val_fraction or use a larger corpus)",
        )
    n_seq = math.ceil(n_tokens / context)
    if n_seq * context + 1 > n_val:
        warnings.warn(
            f"data.n_val_tokens={n_tokens} exceeds the {n_val - 1} tokens the validation split "
            f"can score at context {context}: the {n_seq} evaluation windows overlap",
            stacklevel=2,
        )
    offsets = window_offsets(n_val, n_tokens=n_tokens, context=context)
    index = offsets[:, None] + np.arange(context + 1, dtype=np.int64)[None, :]  # (n_seq, context+1)
    return np.asarray(data.val[index], dtype=np.int64)
