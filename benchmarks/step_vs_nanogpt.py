"""One training step of ours against nanoGPT's model.py, in one process, steps alternating.

    python benchmarks/step_vs_nanogpt.py 4x128 fp32      # shape, precision, [reps]
    python benchmarks/step_vs_nanogpt.py 8x384 bf16 6

`benchmarks/vs_nanogpt.py` compares whole runs (the record's tokens/s, evaluation and first steps
included). This isolates the step: forward, loss, backward, gradient clipping and the optimizer
step of our GPT (models/, sweeps/run/device.py's AdamW) and of nanoGPT's GPT (its model.py and
its `configure_optimizers`, bias=True, dropout 0) on the same random batch (vocab 256, context 256,
batch 32, head width 16, 2 threads), alternating which goes first. It prints the median step time
of each and the ratio of speeds (> 1: ours is faster). nanoGPT is read from the git-ignored
`.nanogpt/` clone (git clone https://github.com/karpathy/nanoGPT .nanogpt), never committed.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models import build_model, make_shape  # noqa: E402
from sweeps.run.device import make_optimizer  # noqa: E402

VOCAB, CONTEXT, BATCH = 256, 256, 32


def main(argv: list[str]) -> None:
    shape, prec = argv[0], argv[1] if len(argv) > 1 else "fp32"
    reps = int(argv[2]) if len(argv) > 2 else 8
    if not (REPO / ".nanogpt" / "model.py").exists():
        sys.exit("error: .nanogpt/model.py not found; git clone karpathy/nanoGPT into .nanogpt")
    sys.path.insert(0, str(REPO / ".nanogpt"))
    from model import GPT, GPTConfig  # nanoGPT's, from the git-ignored clone

    torch.set_num_threads(2)
    torch.manual_seed(0)
    n_layer, d = map(int, shape.split("x"))
    nano = GPT(GPTConfig(block_size=CONTEXT, vocab_size=VOCAB, n_layer=n_layer, n_head=d // 16,
                         n_embd=d, dropout=0.0, bias=True))  # fmt: skip
    nano_opt = nano.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
    ours = build_model(make_shape("gpt", n_layer=n_layer, d_model=d, n_head=d // 16,
                                  vocab_size=VOCAB, context=CONTEXT))  # fmt: skip
    ours_opt = make_optimizer(ours, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, wd=0.1)
    x, y = torch.randint(0, VOCAB, (BATCH, CONTEXT)), torch.randint(0, VOCAB, (BATCH, CONTEXT))

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16")

    def step_nano() -> None:
        with autocast():
            _, loss = nano(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(nano.parameters(), 1.0)
        nano_opt.step()
        nano_opt.zero_grad(set_to_none=True)

    def step_ours() -> None:
        with autocast():
            logits = ours(x)
            loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ours.parameters(), 1.0)
        ours_opt.step()
        ours_opt.zero_grad(set_to_none=True)

    for f in (step_nano, step_ours, step_nano, step_ours):  # warm-up: allocator, kernels
        f()
    times: dict[str, list[float]] = {"nano": [], "ours": []}
    for i in range(reps):
        order = [("nano", step_nano), ("ours", step_ours)]
        for name, f in order if i % 2 else order[::-1]:
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    tn, to = (statistics.median(times[k]) for k in ("nano", "ours"))
    print(f"{shape} {prec}: nanoGPT {tn * 1e3:.0f} ms/step, ours {to * 1e3:.0f} ms/step, "
          f"ours/nanoGPT speed {tn / to:.2f}x ({reps} steps each, alternating)")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
