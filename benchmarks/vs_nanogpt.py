"""`sweeps.train` against nanoGPT's train.py, side by side on the same shapes, on this CPU.

    git clone https://github.com/karpathy/nanoGPT .nanogpt    # git-ignored; never committed
    python benchmarks/vs_nanogpt.py                            # ~10-15 min on 2 cores
    python benchmarks/vs_nanogpt.py --shapes 4x128 --steps 20  # one shape

Both train a GPT of vocab 256 (bytes), context 256, batch 32, with 2 threads, on the same token
file (the bytes of this Python's standard library), alternating run by run so that a neighbour's
load hits both alike. For each shape (n_layer x d_model, head width 16 as our default) and
precision it prints tokens/s of each and the ratio ours / nanoGPT's:
- nanoGPT: 32 * 256 / its median logged step time over iterations 5.. (its own timing; its
  first-iteration evaluation excluded). On the CPU its train.py trains in fp32 whatever `dtype`
  says (its autocast context is `nullcontext()` on the CPU), so the bf16 rows also run a copy of
  train.py whose context is `torch.autocast("cpu", bfloat16)` (column `nano+ac`): the fair bf16
  reference. That copy lives in the temp folder, never in the repo.
- ours: the record's tokens/s (the number a user sees), which includes the one evaluation over
  the fixed 65,536-token held-out set and the first, slower steps.
The 1-minute load average is printed with each row; distrust rows where it is far above 2.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CONTEXT, BATCH, THREADS = 256, 32, 2
SHAPES = ("2x64", "4x128", "6x256", "8x384")
STEPS = {"2x64": 40, "4x128": 30, "6x256": 20, "8x384": 10}


def corpus(folder: Path) -> Path:
    """The stdlib's .py bytes as uint16 tokens, in nanoGPT's layout (data/bench/*.bin + meta)."""
    data = folder / "data" / "bench"
    data.mkdir(parents=True, exist_ok=True)
    chunks = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:400]:
        chunks.append(path.read_bytes())
    tokens = np.frombuffer(b"".join(chunks), dtype=np.uint8).astype(np.uint16)
    cut = int(0.95 * len(tokens))
    tokens[:cut].tofile(data / "train.bin")
    tokens[cut:].tofile(data / "val.bin")
    with open(data / "meta.pkl", "wb") as f:  # written here, read by nanoGPT: our own file
        pickle.dump({"vocab_size": 256}, f)
    tokens.tofile(folder / "all.bin")
    return folder / "all.bin"


def nanogpt(folder: Path, nano: Path, n_layer: int, d_model: int, steps: int, ac: bool) -> float:
    script = folder / ("train_ac.py" if ac else "train.py")
    if not script.exists():
        shutil.copy(nano / "model.py", folder / "model.py")
        shutil.copy(nano / "configurator.py", folder / "configurator.py")
        text = (nano / "train.py").read_text()
        if ac:
            old = "ctx = nullcontext() if device_type == 'cpu' else"
            assert old in text, "nanoGPT's train.py changed: update the autocast patch"
            text = text.replace(
                old,
                "ctx = torch.amp.autocast(device_type='cpu', dtype=torch.bfloat16) "
                "if device_type == 'cpu' else",
            )
        script.write_text(text)
    args = [
        "--dataset=bench", "--device=cpu", "--compile=False", "--dtype=float32",
        f"--n_layer={n_layer}", f"--n_embd={d_model}", f"--n_head={d_model // 16}",
        f"--block_size={CONTEXT}", f"--batch_size={BATCH}", "--gradient_accumulation_steps=1",
        f"--max_iters={steps}", "--eval_interval=100000", "--eval_iters=1", "--log_interval=1",
        "--dropout=0.0", "--bias=True", "--always_save_checkpoint=False",
        f"--out_dir={folder / 'nano_out'}", "--wandb_log=False", f"--warmup_iters={steps // 10}",
    ]  # fmt: skip
    res = subprocess.run(
        [sys.executable, script.name, *args], cwd=folder, env=_env(), capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    logged = re.findall(r"^iter (\d+): .*time ([\d.]+)ms", res.stdout, re.M)
    times = [float(t) for i, t in logged if int(i) >= 5]  # nanoGPT's own settling period
    return BATCH * CONTEXT / (statistics.median(times) / 1000)


def ours(folder: Path, tokens: Path, n_layer: int, d_model: int, steps: int, prec: str) -> float:
    out = folder / f"ours_{time.time_ns()}"
    args = [
        "data=tokens", f"data.path={tokens}", f"data.cache_dir={folder / 'cache'}",
        f"model.n_layer={n_layer}", f"model.d_model={d_model}", f"model.context={CONTEXT}",
        f"optim.batch_size={BATCH}", "budget=steps", f"budget.steps={steps}",
        f"threads={THREADS}", f"precision={prec}", "device=cpu", "n_evals=1",
        "progress=none", f"results_dir={out}", "sweep_name=bench",
    ]  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "sweeps.train", *args], cwd=folder, env=_env(),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    (record,) = out.glob("bench/*/record.json")
    return float(json.loads(record.read_text())["tokens_per_s"])


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(THREADS), "PYTHONPATH": str(REPO)}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
                return f"{line.split(':', 1)[1].strip()} (bf16: {', '.join(native) or 'none'})"
    except OSError:
        pass
    return "unknown CPU"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanogpt", type=Path, default=REPO / ".nanogpt")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES))
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default per shape)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    args = parser.parse_args(argv)
    if not (args.nanogpt / "train.py").exists():
        sys.exit(f"error: --nanogpt: no train.py in {args.nanogpt}; clone karpathy/nanoGPT there")
    print(f"CPU: {cpu_name()}; {THREADS} threads; vocab 256, context {CONTEXT}, batch {BATCH}")
    print(f"{'shape':>6} {'prec':>5} {'steps':>5} {'nanoGPT':>9} {'nano+ac':>9} {'ours':>9} "
          f"{'ratio':>6} {'vs ac':>6} {'load':>5}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vs_nanogpt_") as tmp:
        folder = Path(tmp)
        tokens = corpus(folder)
        for shape in args.shapes:
            n_layer, d_model = (int(v) for v in shape.split("x"))
            steps = args.steps or STEPS.get(shape, 20)
            for i, prec in enumerate(args.precisions):
                # alternate which goes first, so a drift in load favours neither
                first_ours = i % 2 == 1
                mine = ours(folder, tokens, n_layer, d_model, steps, prec) if first_ours else None
                ref = nanogpt(folder, args.nanogpt, n_layer, d_model, steps, ac=False)
                ref_ac = (
                    nanogpt(folder, args.nanogpt, n_layer, d_model, steps, ac=True)
                    if prec == "bf16" else float("nan")
                )  # fmt: skip
                if mine is None:
                    mine = ours(folder, tokens, n_layer, d_model, steps, prec)
                vs_ac = mine / ref_ac if prec == "bf16" else float("nan")
                print(
                    f"{shape:>6} {prec:>5} {steps:>5} {ref:>9,.0f} {ref_ac:>9,.0f} {mine:>9,.0f} "
                    f"{mine / ref:>5.2f}x {vs_ac:>5.2f}x {os.getloadavg()[0]:>5.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
