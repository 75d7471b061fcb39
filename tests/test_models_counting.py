"""Analytic parameter and FLOP counts against the real modules (sum of numel, FlopCounterMode).

What FlopCounterMode counts on CPU (torch 2.13), established here and asserted below:
- linears (addmm / mm / bmm, bias adds excluded) in forward and backward: counted;
- the default CPU SDPA kernel `aten._scaled_dot_product_flash_attention_for_cpu` (and its backward):
  NOT counted (0 FLOPs; it has no formula in the registry). Under
  `sdpa_kernel(SDPBackend.MATH)` the same call decomposes into bmm's, which are counted, over the
  full T x T score matrix. So the attention term is checked on the math path, after checking the
  math path gives the same output as the default kernel.
- nn.LSTM's fused `aten.lstm`: NOT counted (0 FLOPs). The LSTM formula is checked on an unrolled
  reference (F.linear per time step with the module's own weight tensors) that reproduces nn.LSTM.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from models import (
    GPT,
    LSTMLM,
    GPTShape,
    LSTMShape,
    build_model,
    flops_per_token,
    make_shape,
    param_counts,
)

GPT_SHAPES = [
    GPTShape(vocab_size=256, context=16, n_layer=2, n_head=2, d_model=16),
    GPTShape(vocab_size=256, context=16, n_layer=2, n_head=2, d_model=16, tied=True),
    GPTShape(vocab_size=50, context=8, n_layer=1, n_head=1, d_model=8),
    GPTShape(vocab_size=50, context=8, n_layer=3, n_head=4, d_model=24, tied=True),
    GPTShape(vocab_size=97, context=12, n_layer=4, n_head=3, d_model=36),
]
LSTM_SHAPES = [
    LSTMShape(vocab_size=256, context=16, n_layer=2, d_model=16),
    LSTMShape(vocab_size=256, context=16, n_layer=2, d_model=16, tied=True),
    LSTMShape(vocab_size=50, context=8, n_layer=1, d_model=8),
    LSTMShape(vocab_size=97, context=12, n_layer=3, d_model=24, tied=True),
]
B = 2
EMBEDDING_NAMES = ("wte.weight", "wpe.weight")


def _ids(shapes: list) -> list[str]:
    return [repr(s) for s in shapes]


def _tokens(shape: GPTShape | LSTMShape) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, shape.vocab_size, (B, shape.context), generator=g)  # (B, T)


def _count(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("shape", GPT_SHAPES + LSTM_SHAPES, ids=_ids(GPT_SHAPES + LSTM_SHAPES))
def test_param_counts_equal_sum_of_numel(shape: GPTShape | LSTMShape) -> None:
    torch.manual_seed(0)
    model = build_model(shape)
    counts = param_counts(shape)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    params = dict(model.named_parameters())  # a tied head appears once, as wte.weight
    embedding = sum(params[n].numel() for n in EMBEDDING_NAMES if n in params)
    assert counts["embedding"] == embedding
    assert counts["non_embedding"] == counts["total"] - counts["embedding"]
    # matmul: every 2-D weight except the embedding tables, plus the head even when tied
    matrices = sum(
        p.numel() for n, p in params.items() if p.dim() == 2 and n not in EMBEDDING_NAMES
    )
    shared_head = model.head.weight.numel() if shape.tied else 0
    assert counts["matmul"] == matrices + shared_head


def test_tied_head_is_one_parameter() -> None:
    shape = make_shape("gpt", n_layer=1, d_model=16, vocab_size=40, context=8, tied=True)
    model = GPT(shape)
    assert model.head.weight is model.wte.weight
    untied = param_counts(make_shape("gpt", n_layer=1, d_model=16, vocab_size=40, context=8))
    tied = param_counts(shape)
    assert untied["total"] - tied["total"] == 40 * 16
    assert untied["matmul"] == tied["matmul"]  # the head matmul runs either way


@pytest.mark.parametrize("shape", GPT_SHAPES, ids=_ids(GPT_SHAPES))
def test_gpt_default_sdpa_kernel_is_not_counted(shape: GPTShape) -> None:
    # Documents the CPU gap: only the linears are counted on the default kernel.
    torch.manual_seed(0)
    model, idx = GPT(shape), _tokens(shape)
    counted = _count(lambda: model(idx))
    assert counted == 2 * param_counts(shape)["matmul"] * B * shape.context


@pytest.mark.parametrize("shape", GPT_SHAPES, ids=_ids(GPT_SHAPES))
def test_gpt_forward_and_backward_flops_match_flop_counter(shape: GPTShape) -> None:
    torch.manual_seed(0)
    model, idx = GPT(shape), _tokens(shape)
    n_tokens = B * shape.context  # T == context, where the attention term is exact
    with torch.no_grad():
        fast = model(idx)
        with sdpa_kernel(SDPBackend.MATH):
            math_path = model(idx)
    torch.testing.assert_close(math_path, fast, rtol=1e-5, atol=1e-5)

    with sdpa_kernel(SDPBackend.MATH):
        forward = _count(lambda: model(idx))
        train_step = _count(lambda: model(idx).float().square().mean().backward())
    expected = flops_per_token(shape)
    assert forward == expected["forward"] * n_tokens
    assert train_step == expected["exact"] * n_tokens


def _unrolled_lstm_lm(model: LSTMLM, idx: torch.Tensor, initial_grad: bool) -> torch.Tensor:
    """The LSTM LM, one F.linear per gate matrix per time step, on the module's own weights.

    `initial_grad` makes the zero initial state a leaf that requires grad, so that backward also
    takes the input gradient of the t=0 recurrent matmul, as the 3 x forward convention assumes
    (nn.LSTM's own backward skips it; the difference is one (4d, d) matmul per layer per sequence).
    """
    lstm, (Bsz, T) = model.lstm, idx.shape
    d = model.shape.d_model
    x = model.wte(idx)  # (B, T, d)
    for layer in range(lstm.num_layers):
        w_ih, w_hh = getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}")
        b_ih, b_hh = getattr(lstm, f"bias_ih_l{layer}"), getattr(lstm, f"bias_hh_l{layer}")
        h = torch.zeros(Bsz, d, requires_grad=initial_grad)  # (B, d)
        c = torch.zeros(Bsz, d)  # (B, d)
        outputs = []
        for t in range(T):
            gates = F.linear(x[:, t], w_ih, b_ih) + F.linear(h, w_hh, b_hh)  # (B, 4d)
            i, f, g, o = gates.chunk(4, dim=1)  # PyTorch's gate order
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        x = torch.stack(outputs, dim=1)  # (B, T, d)
    return model.head(x)  # (B, T, V)


def test_nn_lstm_kernel_is_not_counted() -> None:
    shape = LSTM_SHAPES[0]
    torch.manual_seed(0)
    model, idx = LSTMLM(shape), _tokens(shape)
    # only the head is visible to FlopCounterMode
    assert _count(lambda: model(idx)) == 2 * shape.vocab_size * shape.d_model * idx.numel()


@pytest.mark.parametrize("shape", LSTM_SHAPES, ids=_ids(LSTM_SHAPES))
def test_lstm_flops_match_flop_counter_on_unrolled_reference(shape: LSTMShape) -> None:
    torch.manual_seed(0)
    model, idx = LSTMLM(shape), _tokens(shape)
    with torch.no_grad():
        torch.testing.assert_close(
            _unrolled_lstm_lm(model, idx, False), model(idx), rtol=1e-5, atol=1e-5
        )
    n_tokens = idx.numel()
    forward = _count(lambda: _unrolled_lstm_lm(model, idx, True))
    train_step = _count(lambda: _unrolled_lstm_lm(model, idx, True).square().mean().backward())
    expected = flops_per_token(shape)
    assert forward == expected["forward"] * n_tokens
    assert train_step == expected["exact"] * n_tokens
    assert expected["six_n"] == expected["exact"]  # no attention: 6N is the whole count


def test_six_n_is_six_times_matmul() -> None:
    for shape in GPT_SHAPES + LSTM_SHAPES:
        assert flops_per_token(shape)["six_n"] == 6 * param_counts(shape)["matmul"]


def test_counting_rejects_non_shapes() -> None:
    with pytest.raises(TypeError, match="GPTShape or LSTMShape"):
        param_counts({"n_layer": 2})  # type: ignore[arg-type]
