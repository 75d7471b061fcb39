"""A nanoGPT-style decoder-only transformer.

Architecture (the contract that `models/counting.py` counts):
- token embedding (V, C) + learned position embedding (context, C);
- n_layer pre-LayerNorm blocks: x + attn(ln_1(x)), then x + mlp(ln_2(x));
  attention: one fused QKV linear (C -> 3C), causal `F.scaled_dot_product_attention`, output
  projection (C -> C); MLP: C -> 4C, GELU (exact erf), 4C -> C;
- final LayerNorm, then an output head (C -> V) without bias, optionally tied to the token
  embedding.
- Every linear inside a block has a bias; LayerNorms have weight and bias. Biases and LayerNorm
  parameters count in `total` / `non_embedding` but not in the `matmul` N. No dropout.

Init (GPT-2 / nanoGPT): weights normal(0, 0.02), biases zero, and the two residual output
projections normal(0, 0.02 / sqrt(2 * n_layer)) so the residual stream's variance does not grow
with depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from models._validate import check_positive_int

__all__ = ["GPTShape", "GPT"]


@dataclass(frozen=True)
class GPTShape:
    """Shape of a GPT. MLP hidden width is 4 * d_model; head width is d_model // n_head."""

    vocab_size: int  # V, tokens in the vocabulary
    context: int  # max sequence length T (learned position table of this many rows)
    n_layer: int  # transformer blocks
    n_head: int  # attention heads; must divide d_model
    d_model: int  # residual stream width C
    tied: bool = False  # output head shares the token-embedding weight

    def __post_init__(self) -> None:
        check_positive_int(self.vocab_size, "model.vocab_size", "vocab_size=256")
        check_positive_int(self.context, "model.context", "model.context=256")
        check_positive_int(self.n_layer, "model.n_layer", "model.n_layer=2")
        check_positive_int(self.n_head, "model.n_head", "model.n_head=4")
        check_positive_int(self.d_model, "model.d_model", "model.d_model=64")
        if self.d_model % self.n_head:
            raise ValueError(
                f"model.d_model={self.d_model} is not divisible by model.n_head={self.n_head}; "
                "choose a head count that divides the width, or leave model.n_head unset"
            )
        if not isinstance(self.tied, bool):
            raise ValueError(f"model.tied={self.tied!r} must be true or false")


# On CPU, torch's flash-attention kernels (forward + backward) run faster in fp32 than in bf16 up
# to this head width (torch 2.13, Intel Xeon with AMX, batch 32 x 256 tokens: 2.7x at 16, 1.5x at
# 32, 1.2x at 64, 0.85x at 128), so under bf16 on a CPU attention runs on fp32 copies of q, k, v
# while the matmuls around it stay bf16; a 4 x 128 step is 1.6x faster for it
# (benchmarks/profile_step.py). CUDA keeps its bf16 flash kernels.
CPU_FP32_ATTN_HS = 64


class CausalSelfAttention(nn.Module):
    def __init__(self, shape: GPTShape) -> None:
        super().__init__()
        self.n_head = shape.n_head
        self.qkv = nn.Linear(shape.d_model, 3 * shape.d_model)
        self.proj = nn.Linear(shape.d_model, shape.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C)
        # (B, T, C) -> (B, nh, T, hs): heads become a batch dimension for SDPA
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if q.device.type == "cpu" and q.dtype == torch.bfloat16 and q.size(-1) <= CPU_FP32_ATTN_HS:
            with torch.autocast("cpu", enabled=False):  # else autocast casts them back to bf16
                y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
            y = y.to(q.dtype)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, shape: GPTShape) -> None:
        super().__init__()
        self.fc = nn.Linear(shape.d_model, 4 * shape.d_model)
        self.proj = nn.Linear(4 * shape.d_model, shape.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    def __init__(self, shape: GPTShape) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(shape.d_model)
        self.attn = CausalSelfAttention(shape)
        self.ln_2 = nn.LayerNorm(shape.d_model)
        self.mlp = MLP(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, T, C)
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


class GPT(nn.Module):
    """Decoder-only transformer LM: `forward(idx)` maps (B, T) int64 tokens to (B, T, V) logits."""

    def __init__(self, shape: GPTShape) -> None:
        super().__init__()
        self.shape = shape
        self.wte = nn.Embedding(shape.vocab_size, shape.d_model)
        self.wpe = nn.Embedding(shape.context, shape.d_model)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.n_layer))
        self.ln_f = nn.LayerNorm(shape.d_model)
        self.head = nn.Linear(shape.d_model, shape.vocab_size, bias=False)
        if shape.tied:
            # One Parameter object, so model.parameters() yields it once (counted once).
            self.head.weight = self.wte.weight
        self._init_weights(shape.n_layer)

    def _init_weights(self, n_layer: int) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        residual_std = 0.02 / math.sqrt(2 * n_layer)
        for block in self.blocks:
            assert isinstance(block, Block)
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.proj.weight, mean=0.0, std=residual_std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        if T > self.shape.context:
            raise ValueError(
                f"sequence length {T} exceeds model.context={self.shape.context}; "
                "feed shorter sequences or raise model.context"
            )
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, C) + (T, C) -> (B, T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        return self.head(self.ln_f(x))  # (B, T, V)
