"""The CUDA fast path's choices and its CPU fallbacks (sweeps/run/device.py), the batch slicing and
the all-reduced evaluation (sweeps/run/evaluate.py); `gpu`-marked tests run where CUDA is."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from models import GPTShape, build_model
from sweeps.run import device as dev
from sweeps.run.distributed import Ranks, rows_of
from sweeps.run.evaluate import evaluate, global_batch
from sweeps.run.loop import train

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


def test_compile_is_on_by_default_on_cuda_only() -> None:
    assert dev.resolve_compile(None, CUDA) and not dev.resolve_compile(None, CPU)
    assert dev.resolve_compile(True, CPU) and not dev.resolve_compile(False, CUDA)


def test_precision_auto_is_bf16_on_cuda_and_follows_the_cpu_flags(monkeypatch) -> None:
    assert dev.resolve_precision("auto", CUDA) == "bf16"
    monkeypatch.setattr(dev, "_cpu_flags", lambda: "flags: avx2 amx_bf16")
    assert dev.resolve_precision("auto", CPU) == "bf16"
    monkeypatch.setattr(dev, "_cpu_flags", lambda: "flags: avx2 avx512f")
    assert dev.resolve_precision("auto", CPU) == "fp32"
    assert dev.resolve_precision("fp32", CUDA) == "fp32"


def test_cpu_gets_the_fused_adamw_with_the_same_steps_and_no_tf32_change() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    opt = dev.make_optimizer(model, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, wd=0.1)
    assert opt.defaults.get("fused") is True
    plain = torch.nn.Linear(4, 4)
    plain.load_state_dict(model.state_dict())
    groups = [
        {"params": [plain.weight], "weight_decay": 0.1},
        {"params": [plain.bias], "weight_decay": 0.0},
    ]
    ref = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    for _ in range(3):
        for m, o in ((model, opt), (plain, ref)):
            o.zero_grad()
            m(torch.ones(2, 4)).square().sum().backward()
            o.step()
    assert torch.allclose(model.weight, plain.weight, rtol=1e-6, atol=1e-7)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]  # matrix, bias
    before = torch.get_float32_matmul_precision()
    dev.setup_fast_path(CPU)
    assert torch.get_float32_matmul_precision() == before


def test_a_failing_compile_warns_once_and_trains_eagerly(monkeypatch) -> None:
    def broken(fn):
        def call(*a, **k):
            raise RuntimeError("backend exploded\nsecond line")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    model = torch.nn.Linear(3, 2)
    x = torch.randn(5, 3)
    step = dev.CompileOrEager(model, enabled=True)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*backend exploded"):
        out = step(x)
    assert torch.equal(out, model(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(step(x), model(x))  # eager from now on, silently


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA H100 80GB HBM3", 989e12),
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H200", 989e12),
        ("Tesla T4", None),
    ],
)
def test_bf16_peaks_of_known_gpus(monkeypatch, name, peak) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: name)
    got = dev.known_peak(CUDA, "bf16")
    assert (got[0] if got else None) == peak
    assert dev.known_peak(CUDA, "fp32") is None and dev.known_peak(CPU, "bf16") is None


def test_measured_peak_is_a_positive_rate_on_the_cpu() -> None:
    flops, source = dev.peak_flops(CPU, "fp32")
    assert flops > 1e8 and "measured" in source


def test_each_rank_gets_its_slice_of_the_same_global_batch() -> None:
    train_tokens = np.arange(1000, dtype=np.uint16)
    x, y = global_batch(train_tokens, 3, seed=0, batch_size=7, context=8)
    parts = [
        global_batch(train_tokens, 3, seed=0, batch_size=7, context=8, rows=rows_of(7, r, 2))
        for r in range(2)
    ]
    assert torch.equal(torch.cat([p[0] for p in parts]), x)
    assert torch.equal(torch.cat([p[1] for p in parts]), y)
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_evaluation_mean_and_standard_error_over_sequences() -> None:
    torch.manual_seed(0)
    model = build_model(GPTShape(vocab_size=16, context=8, n_layer=1, n_head=2, d_model=8))
    val = np.random.default_rng(0).integers(0, 16, size=(10, 9)).astype(np.int64)
    mean, se = evaluate(
        model,
        val,
        device=CPU,
        autocast=lambda: torch.autocast("cpu", enabled=False),
        ranks=Ranks(),
        batch_size=4,
    )
    with torch.no_grad():
        xy = torch.from_numpy(val)
        logits = model(xy[:, :-1])
        per_seq = (
            torch.nn.functional.cross_entropy(logits.transpose(1, 2), xy[:, 1:], reduction="none")
            .mean(1)
            .double()
        )
    assert mean == pytest.approx(float(per_seq.mean()), rel=1e-12)
    assert se == pytest.approx(float(per_seq.std()) / math.sqrt(10), rel=1e-9)


@pytest.mark.gpu
def test_cuda_run_uses_the_fast_path_and_reports_mfu(tiny_cfg, tmp_path) -> None:
    record = train(tiny_cfg(device="cuda", precision="auto"), tmp_path / "run")
    assert record["status"] == "ok" and record["precision"] == "bf16"
    assert record["config"]["resolved"]["device"].startswith("cuda")
    assert torch.get_float32_matmul_precision() == "high"
    name = torch.cuda.get_device_name(0)
    if dev.known_peak(CUDA, "bf16") is not None:
        assert 0 < record["mfu"] < 1, name


@pytest.mark.gpu
def test_cuda_fused_adamw_and_pinned_batches() -> None:
    model = torch.nn.Linear(4, 4).cuda()
    opt = dev.make_optimizer(model, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, wd=0.1)
    assert opt.defaults.get("fused") is True
    x, _ = global_batch(
        np.arange(500, dtype=np.uint16), 0, seed=0, batch_size=4, context=8, device=CUDA
    )
    assert x.is_cuda


@pytest.mark.gpu
def test_cuda_compiled_bf16_matches_eager_closely(tiny_cfg, tmp_path) -> None:
    eager = train(tiny_cfg(device="cuda", precision="bf16", compile=False), tmp_path / "eager")
    compiled = train(tiny_cfg(device="cuda", precision="bf16", compile=True), tmp_path / "compiled")
    assert abs(compiled["loss"] - eager["loss"]) < 0.02 * eager["loss"]
