"""An LSTM language model: token embedding -> nn.LSTM (batch_first) -> linear head.

The embedding width equals the hidden width (d_model). nn.LSTM has, per layer, input weights
(4d, d), recurrent weights (4d, d) and two bias vectors (4d each; PyTorch keeps b_ih and b_hh
separately). The head (d -> V) has no bias and may be tied to the embedding. No dropout.
Init: PyTorch's defaults for nn.LSTM (uniform(-1/sqrt(d), 1/sqrt(d))); embedding and head normal(0,
0.02). `context` bounds the sequence length so that GPT and LSTM runs share one contract.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from models._validate import check_positive_int

__all__ = ["LSTMShape", "LSTMLM"]


@dataclass(frozen=True)
class LSTMShape:
    """Shape of an LSTM LM."""

    vocab_size: int  # V
    context: int  # max sequence length T
    n_layer: int  # stacked LSTM layers
    d_model: int  # embedding width == hidden width d
    tied: bool = False  # output head shares the token-embedding weight

    def __post_init__(self) -> None:
        check_positive_int(self.vocab_size, "model.vocab_size", "vocab_size=256")
        check_positive_int(self.context, "model.context", "model.context=256")
        check_positive_int(self.n_layer, "model.n_layer", "model.n_layer=2")
        check_positive_int(self.d_model, "model.d_model", "model.d_model=64")
        if not isinstance(self.tied, bool):
            raise ValueError(f"model.tied={self.tied!r} must be true or false")


class LSTMLM(nn.Module):
    """LSTM LM: `forward(idx)` maps (B, T) int64 tokens to (B, T, V) logits."""

    def __init__(self, shape: LSTMShape) -> None:
        super().__init__()
        self.shape = shape
        self.wte = nn.Embedding(shape.vocab_size, shape.d_model)
        self.lstm = nn.LSTM(
            shape.d_model, shape.d_model, num_layers=shape.n_layer, batch_first=True
        )
        self.head = nn.Linear(shape.d_model, shape.vocab_size, bias=False)
        nn.init.normal_(self.wte.weight, mean=0.0, std=0.02)
        if shape.tied:
            self.head.weight = self.wte.weight  # one Parameter, counted once
        else:
            nn.init.normal_(self.head.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        if T > self.shape.context:
            raise ValueError(
                f"sequence length {T} exceeds model.context={self.shape.context}; "
                "feed shorter sequences or raise model.context"
            )
        x = self.wte(idx)  # (B, T, d)
        h, _ = self.lstm(x)  # (B, T, d), zero initial state
        return self.head(h)  # (B, T, V)
