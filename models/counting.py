"""Analytic parameter and FLOP counts for GPT and LSTM shapes, under every convention.

Parameter conventions (`param_counts`), all exact integers:
- total: sum(p.numel() for p in model.parameters()), tied weights counted once.
- embedding: the token-embedding table (+ the position table for GPT).
- non_embedding: total - embedding (Kaplan's N). With a tied head this excludes the head; untied,
  it includes it. Biases and LayerNorm parameters are in here.
- matmul: every weight matrix used in a matrix multiply per token, the output head included even
  when tied, excluding embedding lookups, LayerNorm parameters and biases. This is the project's N:
  six_n = 6 * matmul is the matmul part of training compute per token.

FLOP conventions (`flops_per_token`), in FLOPs per token, one multiply-add = 2 FLOPs:
- six_n: 6 * matmul.
- forward: 2 * matmul + attention. Attention per layer per token is 2*context*d_model for QK^T plus
  2*context*d_model for AV, i.e. over the full T x T score matrix at T = context, as
  torch.utils.flop_counter.FlopCounterMode and Chinchilla's appendix F count it; the causal mask
  halves the useful work, which this count deliberately does not credit. For sequences shorter
  than `context` the attention term is an overestimate. Softmax, LayerNorm, GELU, biases, the
  embedding lookups and the LSTM's elementwise gate arithmetic are not counted.
- exact: 3 * forward (backward = 2 x forward: gradients w.r.t. inputs and weights).
For the LSTM, forward = 2 * matmul (four gates' input and recurrent weights per layer, plus head).
"""

from __future__ import annotations

from models.gpt import GPTShape
from models.lstm import LSTMShape

__all__ = ["param_counts", "flops_per_token"]


def _check_shape(shape: object) -> None:
    if not isinstance(shape, (GPTShape, LSTMShape)):
        raise TypeError(f"expected a GPTShape or LSTMShape, got {type(shape).__name__}")


def param_counts(shape: GPTShape | LSTMShape) -> dict[str, int]:
    """Parameter counts {total, embedding, non_embedding, matmul}; conventions in the module doc."""
    _check_shape(shape)
    V, C, L = shape.vocab_size, shape.d_model, shape.n_layer
    head = V * C  # the head matrix (C -> V), no bias
    if isinstance(shape, GPTShape):
        embedding = V * C + shape.context * C
        # per block: qkv 3C^2 + 3C, proj C^2 + C, fc 4C^2 + 4C, proj 4C^2 + C, two LayerNorms 4C
        per_layer = 12 * C * C + 13 * C
        body = L * per_layer + 2 * C  # + final LayerNorm
        matmul = L * 12 * C * C + head
    else:
        embedding = V * C
        # per layer: W_ih (4d, d), W_hh (4d, d), b_ih (4d), b_hh (4d)
        body = L * (8 * C * C + 8 * C)
        matmul = L * 8 * C * C + head
    total = embedding + body + (0 if shape.tied else head)
    return {
        "total": total,
        "embedding": embedding,
        "non_embedding": total - embedding,
        "matmul": matmul,
    }


def flops_per_token(shape: GPTShape | LSTMShape) -> dict[str, float]:
    """FLOPs per token {six_n, forward, exact}; conventions in the module doc."""
    matmul = param_counts(shape)["matmul"]
    forward = 2 * matmul
    if isinstance(shape, GPTShape):
        # QK^T and AV, each 2 * context * d_model per token per layer (full T x T, see module doc)
        forward += shape.n_layer * 4 * shape.context * shape.d_model
    return {"six_n": 6.0 * matmul, "forward": float(forward), "exact": 3.0 * forward}
