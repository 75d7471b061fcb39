"""Behaviour of the GPT and LSTM modules: shapes, causality, init, tying, training step."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models import GPT, LSTMLM, build_model, make_shape


def _shapes() -> list:
    return [
        make_shape("gpt", n_layer=2, d_model=16, vocab_size=32, context=8),
        make_shape("gpt", n_layer=2, d_model=16, vocab_size=32, context=8, tied=True),
        make_shape("lstm", n_layer=2, d_model=16, vocab_size=32, context=8),
        make_shape("lstm", n_layer=2, d_model=16, vocab_size=32, context=8, tied=True),
    ]


@pytest.mark.parametrize("shape", _shapes(), ids=repr)
def test_logits_shape_and_causality(shape) -> None:
    torch.manual_seed(0)
    model = build_model(shape).eval()
    idx = torch.randint(0, shape.vocab_size, (3, shape.context))  # (B, T)
    logits = model(idx)
    assert logits.shape == (3, shape.context, shape.vocab_size) and logits.dtype == torch.float32
    # changing the last token must not change any earlier position's logits
    changed = idx.clone()
    changed[:, -1] = (changed[:, -1] + 1) % shape.vocab_size
    torch.testing.assert_close(model(changed)[:, :-1], logits[:, :-1])
    # shorter sequences work; longer than context are refused with the field named
    assert model(idx[:, :3]).shape == (3, 3, shape.vocab_size)
    with pytest.raises(ValueError, match=r"model\.context=8"):
        model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize("shape", _shapes(), ids=repr)
def test_one_training_step_lowers_the_loss(shape) -> None:
    torch.manual_seed(0)
    model = build_model(shape)
    idx = torch.randint(0, shape.vocab_size, (4, shape.context + 1))
    x, y = idx[:, :-1], idx[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # near-uniform predictions at init (small init), then learning on a fixed batch
    assert abs(losses[0] - math.log(shape.vocab_size)) < 0.1
    assert losses[-1] < losses[0]


def test_gpt_init_scales_residual_projections() -> None:
    torch.manual_seed(0)
    shape = make_shape("gpt", n_layer=8, d_model=128, vocab_size=256, context=16)
    model = GPT(shape)
    block = model.blocks[0]
    assert block.attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    residual = 0.02 / math.sqrt(2 * 8)
    assert block.attn.proj.weight.std().item() == pytest.approx(residual, rel=0.05)
    assert block.mlp.proj.weight.std().item() == pytest.approx(residual, rel=0.05)
    assert torch.all(block.mlp.fc.bias == 0) and model.head.bias is None


def test_tied_weights_stay_shared_through_training() -> None:
    torch.manual_seed(0)
    for model in (
        GPT(make_shape("gpt", n_layer=1, d_model=8, vocab_size=16, context=4, tied=True)),
        LSTMLM(make_shape("lstm", n_layer=1, d_model=8, vocab_size=16, context=4, tied=True)),
    ):
        assert model.head.weight is model.wte.weight
        model(torch.zeros(1, 4, dtype=torch.long)).sum().backward()
        assert model.wte.weight.grad is not None


def test_same_seed_same_model() -> None:
    shape = make_shape("gpt", n_layer=2, d_model=16, vocab_size=32, context=8)
    torch.manual_seed(1)
    a = GPT(shape)
    torch.manual_seed(1)
    b = GPT(shape)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_build_model_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="GPTShape or LSTMShape"):
        build_model({"arch": "gpt"})  # type: ignore[arg-type]


def test_cpu_bf16_attention_runs_in_fp32_between_bf16_matmuls() -> None:
    """Under CPU bf16 autocast the attention itself is computed on fp32 copies of q, k, v (the
    CPU's bf16 flash-attention backward is slower than its fp32 one at narrow heads; see
    models/gpt.py): its output is the fp32 attention of the bf16 q, k, v to fp32 round-off,
    where a bf16 kernel is off by ~1e-2; the gradient reaches every weight."""
    from models.gpt import CausalSelfAttention

    torch.manual_seed(0)
    shape = make_shape("gpt", n_layer=1, d_model=64, vocab_size=32, context=64)
    attn = CausalSelfAttention(shape)
    x = torch.randn(4, 64, 64)
    seen = {}
    real = F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen["dtype"] = q.dtype
        return real(q, k, v, **kw)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        q, k, v = attn.qkv(x).split(64, dim=2)
        torch.nn.functional.scaled_dot_product_attention = spy
        try:
            y = attn(x)
        finally:
            torch.nn.functional.scaled_dot_product_attention = real
    heads = [t.view(4, 64, shape.n_head, -1).transpose(1, 2).float() for t in (q, k, v)]
    ref = real(*heads, is_causal=True).transpose(1, 2).reshape(4, 64, 64)
    assert seen["dtype"] == torch.float32 and y.dtype == torch.bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = attn.proj(ref.to(torch.bfloat16))
    assert torch.equal(y, want)
    y.float().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in attn.parameters())
