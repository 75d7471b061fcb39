"""Where one CPU training step of `sweeps.train` spends its time (torch.profiler), and what an
evaluation and the batch sampling cost next to it.

    python benchmarks/profile_step.py                      # 4x128 and 6x256, fp32 and bf16
    python benchmarks/profile_step.py --shapes 4x128 --precisions bf16 --top 15

Shapes as in benchmarks/vs_nanogpt.py: vocab 256, context 256, batch 32, 2 threads. The step is
the trainer's own (sweeps/run/evaluate.py's batch, sweeps/run/device.py's optimizer, the same loss).
Prints per shape and precision: ms per phase (sampling, forward, backward, clip + optimizer), the
evaluation of the default 65,536 held-out tokens in steps' worth, and the top operators by self
CPU time. Shares, not absolute times, are what carry over to a busy machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from models import GPTShape, build_model
from sweeps.run.device import make_optimizer
from sweeps.run.distributed import Ranks
from sweeps.run.evaluate import evaluate, global_batch

VOCAB, CONTEXT, BATCH, THREADS = 256, 256, 32, 2


def run(n_layer: int, d_model: int, precision: str, steps: int, top: int) -> None:
    torch.manual_seed(0)
    model = build_model(GPTShape(VOCAB, CONTEXT, n_layer, d_model // 16, d_model))
    opt = make_optimizer(model, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, wd=0.1)
    tokens = np.random.default_rng(0).integers(0, VOCAB, 2_000_000).astype(np.uint16)
    val = np.stack([tokens[i : i + CONTEXT + 1] for i in range(0, 256 * 257, 257)]).astype(np.int64)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    phases = {"sample": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}

    def step(s: int) -> None:
        t = time.perf_counter()
        x, y = global_batch(tokens, s, seed=0, batch_size=BATCH, context=CONTEXT)
        t1 = time.perf_counter()
        with autocast():
            logits = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), y.reshape(-1))
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        t4 = time.perf_counter()
        for k, dt in zip(phases, (t1 - t, t2 - t1, t3 - t2, t4 - t3), strict=True):
            phases[k] += dt

    for s in range(2):
        step(s)
    phases = dict.fromkeys(phases, 0.0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for s in range(steps):
            step(s)
    per_step = sum(phases.values()) / steps
    t = time.perf_counter()
    evaluate(model, val, device=torch.device("cpu"), autocast=autocast, ranks=Ranks())
    eval_s = time.perf_counter() - t
    print(f"\n== {n_layer}x{d_model} {precision}: {per_step * 1e3:.1f} ms/step "
          f"({BATCH * CONTEXT / per_step:,.0f} tokens/s under the profiler); "
          + ", ".join(f"{k} {v / steps * 1e3:.1f} ms ({v / steps / per_step:.0%})"
                      for k, v in phases.items())
          + f"; one evaluation of 65,536 tokens = {eval_s / per_step:.1f} steps")  # fmt: skip
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["4x128", "6x256"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    for shape in args.shapes:
        n_layer, d_model = (int(v) for v in shape.split("x"))
        for precision in args.precisions:
            run(n_layer, d_model, precision, args.steps, args.top)


if __name__ == "__main__":
    main()
