"""The device's peak matmul FLOP/s, the denominator of MFU (the one tracking module that imports
torch: only the trainer uses it). A like-for-like reference, not a hardware bound: the best of a
few square matmuls in the run's dtype, at the run's threads."""

from __future__ import annotations

import functools
import time

import torch

__all__ = ["matmul_peak", "peak_flops_per_s"]


def matmul_peak(dtype: str, *, size: int, repeats: int, device: str = "cpu") -> float:
    """Best FLOP/s of a (size x size) @ (size x size) matmul in `dtype` (fp32 | bf16)."""
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    g = torch.Generator().manual_seed(0)  # its own generator: the run's random state is untouched
    a = torch.randn(size, size, generator=g).to(device=device, dtype=torch_dtype)
    b = torch.randn(size, size, generator=g).to(device=device, dtype=torch_dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    torch.mm(a, b)  # warm-up: thread pool, packing buffers
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


@functools.cache
def peak_flops_per_s(device: str, precision: str, threads: int) -> float:
    """Measured once per process and setting (about 0.1 s on one CPU core)."""
    size = 4096 if device.startswith("cuda") else 512
    return matmul_peak(precision, size=size, repeats=5, device=device)
