"""Where and in what arithmetic a run trains: device, precision, and the CUDA fast path.

On CUDA a run gets, by default: bf16 autocast (`precision=auto`), TF32 for the fp32 matmuls that
remain (`torch.set_float32_matmul_precision("high")`), the fused AdamW kernel, the flash /
memory-efficient kernels of `F.scaled_dot_product_attention` (chosen by torch for bf16 inputs;
models/gpt.py calls SDPA with `is_causal=True`), `torch.compile` (`compile=null`, auto), pinned host
batches copied with `non_blocking=True`. On the CPU: the fused AdamW too, none of the CUDA parts,
bf16 only where the CPU has native bf16 matmuls, compile only when asked (it gains 0-3% there for
16-37 s of start-up).

MFU is reported against the device's bf16 dense peak: the table below for known GPUs (NVIDIA
datasheets, dense, without sparsity), a timed large matmul otherwise.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "BF16_PEAK_FLOPS",
    "resolve_device",
    "resolve_precision",
    "resolve_compile",
    "setup_fast_path",
    "make_optimizer",
    "CompileOrEager",
    "known_peak",
    "peak_flops",
    "measured_matmul_peak",
]

# bf16 dense tensor-core peaks, FLOP/s (NVIDIA datasheets; the "with sparsity" figures are 2x).
# Matched against torch.cuda.get_device_name() in this order (the first substring that matches).
BF16_PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989e12),  # H200 SXM
    ("H100 NVL", 835e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # H100 SXM
    ("A100", 312e12),  # SXM and PCIe
    ("L40S", 362e12),
    ("A10G", 70e12),
    ("L4", 121e12),
)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def resolve_precision(name: str, device: torch.device) -> str:
    """auto: bf16 on CUDA and on CPUs with native bf16 matmuls (AVX512-BF16/AMX), fp32 elsewhere."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16"
    flags = _cpu_flags()
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "fp32"


def resolve_compile(value: bool | None, device: torch.device) -> bool:
    """compile=null (auto): on for CUDA (it pays there), off on the CPU (it gains 0-3% there and
    costs 16-37 s of start-up)."""
    return device.type == "cuda" if value is None else bool(value)


def setup_fast_path(device: torch.device) -> None:
    """Process-wide CUDA settings: TF32 for fp32 matmuls and convolutions. No-op on the CPU."""
    if device.type != "cuda":
        return
    torch.set_float32_matmul_precision("high")  # TF32 tensor cores for fp32 matmuls
    torch.backends.cudnn.allow_tf32 = True


def make_optimizer(
    model: torch.nn.Module, *, lr: float, betas: tuple[float, float], eps: float, wd: float
) -> torch.optim.Optimizer:
    """AdamW with decoupled weight decay on matrices only (not on norms, biases), as torch's fused
    kernel on CUDA and on the CPU alike: one pass over every tensor instead of a Python loop of
    elementwise ops. On this 2-core Xeon its step was 5.3x (4x128) and 9.5x (6x256) faster than
    the for-loop default, which took 18-21% of a CPU training step (benchmarks/profile_step.py)."""
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": wd},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    kinds = {p.device.type for p in params}
    if len(kinds) == 1 and kinds <= {"cuda", "cpu"}:
        try:
            return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=True)
        except (RuntimeError, TypeError):  # a torch without the fused kernel for this device
            pass
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


class CompileOrEager:
    """Calls `torch.compile(model)` when enabled; on the first failure of the compiled model,
    ONE warning and eager calls from then on (a run never dies because a compiler backend is
    missing or breaks). The eager model stays the one to save, evaluate and load into."""

    def __init__(self, model: torch.nn.Module, enabled: bool) -> None:
        self.eager = model
        self.fn: Any = torch.compile(model) if enabled else model
        self.compiled = enabled

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.compiled:
            return self.eager(x)
        try:
            return self.fn(x)
        except Exception as e:  # the compiler's errors have no common base class
            first = (str(e).strip().splitlines() or [""])[0]
            warnings.warn(
                f"torch.compile failed ({type(e).__name__}: {first[:200]}); training eagerly "
                "(set compile=false to skip the attempt)",
                RuntimeWarning,
                stacklevel=2,
            )
            self.fn, self.compiled = self.eager, False
            return self.eager(x)


def measured_matmul_peak(device: torch.device, dtype: torch.dtype, *, size: int = 4096) -> float:
    """FLOP/s of the best of a few large square matmuls of `dtype` on `device`."""
    if device.type == "cpu":
        size = min(size, 1024)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, (time.perf_counter() - t) / 4)
    return 2.0 * size**3 / best


def known_peak(device: torch.device, precision: str) -> tuple[float, str] | None:
    """(bf16 dense peak FLOP/s, device name) of a GPU in the datasheet table, else None."""
    if device.type != "cuda" or precision != "bf16":
        return None
    name = torch.cuda.get_device_name(device)
    for key, flops in BF16_PEAK_FLOPS:
        if key in name:
            return flops, name
    return None


def peak_flops(device: torch.device, precision: str) -> tuple[float, str]:
    """(peak FLOP/s, where it came from): the datasheet bf16 peak of a known GPU, else a measured
    matmul of the run's dtype on this device."""
    known = known_peak(device, precision)
    if known is not None:
        return known[0], f"datasheet bf16 dense ({known[1]})"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return measured_matmul_peak(device, dtype), f"measured {dtype} matmul on {device.type}"
