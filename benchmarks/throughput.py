"""Training throughput and MFU of three GPT sizes on this CPU, fp32 and bf16, 1 and 2 threads.

    python benchmarks/throughput.py            # ~2-3 min
    python benchmarks/throughput.py --quick    # ~30 s, noisier

For each size (matmul N ~ 1e4, 1e5, 1e6; vocab 256, context 256, batch 16 sequences) it times full
AdamW training steps (forward, backward, optimizer) on random tokens and reports tokens/s and
MFU = achieved FLOP/s / peak FLOP/s, where achieved = flops_per_token(shape)["exact"] * tokens/s
(models/counting.py: every matmul incl. the head, plus attention over the full T x T) and the peak
is a large square matmul of the same dtype timed in this process at the same thread count. Note:
the causal kernel skips about half the attention work the exact count credits, and the peak is a
single best-case matmul, so MFU here is a like-for-like comparison, not a hardware bound.
Another process busy on the same cores lowers every figure: each row ends with the 1-minute load
average (this benchmark itself adds about its thread count); distrust rows where it is higher.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models import GPTShape, build_model, flops_per_token, param_counts, solve_shape
from sweeps.tracking.peak import matmul_peak

__all__ = ["Result", "main", "matmul_peak", "train_throughput"]

VOCAB, CONTEXT, BATCH = 256, 256, 16
SIZES = (1e4, 1e5, 1e6)  # target matmul N
DTYPES = ("fp32", "bf16")
THREADS = (1, 2)


@dataclass(frozen=True)
class Result:
    target: float  # requested matmul N
    shape: GPTShape
    threads: int
    dtype: str  # fp32 | bf16 (autocast)
    tokens_per_s: float
    flops_per_s: float  # exact FLOPs per token * tokens/s
    peak_flops_per_s: float  # large-matmul peak, same dtype and threads

    @property
    def mfu(self) -> float:
        return self.flops_per_s / self.peak_flops_per_s


def _autocast(dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "bf16":
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _batches(shape: GPTShape, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    while True:
        idx = torch.randint(0, shape.vocab_size, (BATCH, shape.context + 1), generator=g)
        yield idx[:, :-1], idx[:, 1:]  # (B, T) inputs and next-token targets


def train_throughput(shape: GPTShape, dtype: str, *, warmup: int, min_time_s: float) -> float:
    """Tokens/s of AdamW training steps, timed after `warmup` steps for at least `min_time_s`."""
    torch.manual_seed(0)
    model = build_model(shape)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = _batches(shape, seed=0)

    def step() -> None:
        x, y = next(batches)
        with _autocast(dtype):
            logits = model(x)  # (B, T, V)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    n_steps, start = 0, time.perf_counter()
    while n_steps < 2 or time.perf_counter() - start < min_time_s:
        step()
        n_steps += 1
    return n_steps * BATCH * shape.context / (time.perf_counter() - start)


def run(*, quick: bool) -> list[Result]:
    shapes = [solve_shape("gpt", n_params=n, vocab_size=VOCAB, context=CONTEXT) for n in SIZES]
    results = []
    for threads in THREADS:
        torch.set_num_threads(threads)
        peaks = {d: matmul_peak(d, size=1024 if quick else 2048, repeats=5) for d in DTYPES}
        for target, shape in zip(SIZES, shapes, strict=True):
            exact = flops_per_token(shape)["exact"]
            for dtype in DTYPES:
                tps = train_throughput(
                    shape, dtype, warmup=1 if quick else 2, min_time_s=0.8 if quick else 4.0
                )
                results.append(
                    Result(target, shape, threads, dtype, tps, exact * tps, peaks[dtype])
                )
                print(_row(results[-1]), flush=True)
    return results


HEADER = (
    f"{'N target':>8} {'N matmul':>9} {'shape LxC/h':>12} {'thr':>3} {'dtype':>5} "
    f"{'tokens/s':>9} {'GFLOP/s':>8} {'peak':>7} {'MFU':>6} {'load':>5}"
)


def _row(r: Result) -> str:
    s = r.shape
    return (
        f"{r.target:>8.0e} {param_counts(s)['matmul']:>9} "
        f"{f'{s.n_layer}x{s.d_model}/{s.n_head}':>12} {r.threads:>3} {r.dtype:>5} "
        f"{r.tokens_per_s:>9.0f} {r.flops_per_s / 1e9:>8.1f} {r.peak_flops_per_s / 1e9:>7.1f} "
        f"{r.mfu:>6.1%} {os.getloadavg()[0]:>5.2f}"
    )


def _ratios(results: list[Result]) -> list[str]:
    by_key = {(r.target, r.threads, r.dtype): r.tokens_per_s for r in results}
    lines = [
        f"{'N target':>8} {'bf16/fp32 1thr':>14} {'bf16/fp32 2thr':>14} {'2thr/1thr fp32':>14}"
    ]
    for target in SIZES:
        b1 = by_key[target, 1, "bf16"] / by_key[target, 1, "fp32"]
        b2 = by_key[target, 2, "bf16"] / by_key[target, 2, "fp32"]
        t2 = by_key[target, 2, "fp32"] / by_key[target, 1, "fp32"]
        lines.append(f"{target:>8.0e} {b1:>14.2f} {b2:>14.2f} {t2:>14.2f}")
    return lines


def _cpu_description() -> str:
    """CPU model and whether it has native bf16 matmul (avx512_bf16 / AMX); Linux only."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return "CPU unknown"
    model = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if "model name" in ln), "?"
    )
    flags = set(next((ln for ln in info.splitlines() if ln.startswith("flags")), "").split())
    native = sorted(flags & {"avx512_bf16", "amx_bf16"}) or ["no native bf16"]
    return f"{model} ({', '.join(native)})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings (~30 s), noisier")
    args = parser.parse_args(argv)
    print(
        f"{_cpu_description()}; torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}; vocab {VOCAB}, context {CONTEXT}, batch {BATCH} sequences; "
        "AdamW steps on random tokens; MFU = exact FLOPs/token * tokens/s / matmul peak"
    )
    print(HEADER, flush=True)
    start = time.perf_counter()
    results = run(quick=args.quick)
    print()
    print("\n".join(_ratios(results)))
    print(f"\ntotal {time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
