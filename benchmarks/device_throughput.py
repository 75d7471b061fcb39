"""Training throughput and MFU of the trainer's own step on this device: GPT sizes from 4x256 to
24x2048, bf16 autocast, with and without `torch.compile`.

    python benchmarks/device_throughput.py              # CUDA if present, else the CPU
    python benchmarks/device_throughput.py --quick      # fewer steps (the CPU part of device_check)

The step is the trainer's (sweeps/run/device.py): AdamW (fused), TF32 for fp32 matmuls, bf16
autocast, compile through `CompileOrEager` (a failing compile falls back, and the row says
"eager*"), on random tokens (vocab 256, context 256, batch 32). The small shapes use the project's
default head width (16, models/sizing.py: what its CPU sweeps train); the two GPU-scale shapes
(24x1024, 24x2048: 0.3B and 1.2B parameters) use 16 heads (head width 64 and 128, as
`model.n_head=16` sets), the widths a GPU's attention kernels are built for. tokens/s is timed over
the steps after warm-up with the device synchronised; MFU = exact FLOPs per token
(models/counting.py) x tokens/s / peak, the peak being the datasheet bf16 dense figure of a known
GPU (A100 312, H100 SXM / H200 989 TFLOP/s) or a bf16 matmul timed here.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from models import GPTShape, build_model, default_n_head, flops_per_token
from sweeps.run.device import CompileOrEager, make_optimizer, peak_flops, setup_fast_path

VOCAB, CONTEXT, BATCH = 256, 256, 32
# (n_layer, d_model, n_head); n_head None: the default head width of 16
GPU_SIZES = ((4, 256, None), (8, 512, None), (12, 768, None), (24, 1024, 16), (24, 2048, 16))
CPU_SIZES = ((2, 64, None), (4, 128, None), (6, 256, None))


def measure(
    device: torch.device,
    n_layer: int,
    d_model: int,
    n_head: int | None,
    *,
    compile: bool,
    steps: int,
):
    """(tokens/s, compiled, shape) of full training steps of one size."""
    torch.manual_seed(0)
    shape = GPTShape(VOCAB, CONTEXT, n_layer, n_head or default_n_head(d_model), d_model)
    model = build_model(shape).to(device)
    opt = make_optimizer(model, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, wd=0.1)
    step_model = CompileOrEager(model, compile)
    x = torch.randint(0, VOCAB, (BATCH, CONTEXT + 1), device=device)

    def step() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = step_model(x[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    for _ in range(3):  # warm-up (and compilation)
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * BATCH * CONTEXT / (time.perf_counter() - t), step_model.compiled, shape


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    args = parser.parse_args(argv)
    name = (
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    device = torch.device(name)
    setup_fast_path(device)
    cuda = device.type == "cuda"
    sizes = GPU_SIZES if cuda else CPU_SIZES[: 2 if args.quick else 3]
    steps = (10 if args.quick else 30) if cuda else (3 if args.quick else 10)
    compiles = (False, True) if cuda else (False,)  # compile on the CPU: minutes, 0-3% gain
    if not cuda:
        torch.set_num_threads(2)
    peak, source = peak_flops(device, "bf16")
    label = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"device {label}; peak {peak / 1e9:,.0f} GFLOP/s ({source}); bf16 autocast")
    print(f"{'shape':>9} {'heads':>9} {'mode':>8} {'tokens/s':>12} {'GFLOP/s':>9} {'MFU':>6}")
    for n_layer, d_model, n_head in sizes:
        for comp in compiles:
            tps, compiled, shape = measure(
                device, n_layer, d_model, n_head, compile=comp, steps=steps
            )
            flops = flops_per_token(shape)["exact"] * tps
            mode = "compile" if compiled else ("eager*" if comp else "eager")
            heads = f"{shape.n_head}x{d_model // shape.n_head}"
            print(
                f"{n_layer:>3}x{d_model:<5} {heads:>9} {mode:>8} {tps:>12,.0f} "
                f"{flops / 1e9:>9,.1f} {flops / peak:>6.1%}",
                flush=True,
            )
            if cuda:
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
