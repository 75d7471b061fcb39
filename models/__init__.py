"""Language models (GPT, LSTM) with analytic parameter and FLOP counts. Imports torch only.

`build_model(shape)` makes the module; `solve_shape` / `make_shape` make the shape;
`param_counts` / `flops_per_token` count it (conventions in models/counting.py).
"""

from __future__ import annotations

import torch.nn as nn

from models.counting import flops_per_token, param_counts
from models.gpt import GPT, GPTShape
from models.lstm import LSTMLM, LSTMShape
from models.sizing import ARCHS, default_n_head, make_shape, solve_shape

__all__ = [
    "ARCHS",
    "GPT",
    "GPTShape",
    "LSTMLM",
    "LSTMShape",
    "build_model",
    "default_n_head",
    "flops_per_token",
    "make_shape",
    "param_counts",
    "solve_shape",
]


def build_model(shape: GPTShape | LSTMShape) -> nn.Module:
    """The freshly initialised module for `shape` (on the CPU, fp32)."""
    if isinstance(shape, GPTShape):
        return GPT(shape)
    if isinstance(shape, LSTMShape):
        return LSTMLM(shape)
    raise TypeError(f"expected a GPTShape or LSTMShape, got {type(shape).__name__}")
