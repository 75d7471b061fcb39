"""`train(cfg, out_dir) -> record`: one language-model training run, top to bottom.

Takes a plain RunConfig (no Hydra). Resumes from `out_dir/checkpoint.pt` when one exists; appends
one line per evaluation to `curve.jsonl`; writes `record.json` last and atomically. The same seed
on the CPU gives identical losses, interrupted or not: the batch at step s depends only on
(seed, s), and the checkpoint holds the model, the optimizer and the running sums.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models import build_model
from sweeps import records
from sweeps.config import RunConfig
from sweeps.data import TokenData, eval_windows, load_dataset
from sweeps.run.checkpoint import check_same_inputs
from sweeps.run.checkpoint import save_checkpoint as _save_checkpoint
from sweeps.run.identity import run_id_for
from sweeps.run.lr_schedule import lr_at
from sweeps.run.plan import RunPlan, plan_run, resolved_config
from sweeps.run.progress import Progress
from sweeps.run.provenance import code_version, lib_versions
from sweeps.tracking.fanout import Tracking
from sweeps.tracking.meter import Meter

# _save_checkpoint is bound here so tests can patch loop._save_checkpoint (a kill mid-save).
__all__ = ["train", "prepare", "Prepared", "resolve_device", "resolve_precision"]


class Prepared:
    """Data and plan of a run, computed once before any folder is written."""

    def __init__(self, data: TokenData, plan: RunPlan, val: np.ndarray) -> None:
        self.data, self.plan, self.val = data, plan, val


def prepare(cfg: RunConfig, *, progress: bool = True) -> Prepared:
    """Load (cached) data, derive the plan and the fixed evaluation set; raises UserError."""
    data = load_dataset(cfg.data, progress=progress)
    plan = plan_run(cfg, vocab_size=data.vocab_size)
    val = eval_windows(data, n_tokens=cfg.data.n_val_tokens, context=cfg.model.context)
    return Prepared(data, plan, val)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """auto: bf16 on CUDA and on CPUs with native bf16 matmuls (AVX512-BF16/AMX), fp32 elsewhere."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "fp32"


def _batch(train: np.ndarray, step: int, *, seed: int, batch_size: int, context: int):
    """Random windows for step `step`: a function of (seed, step) alone, so resume replays
    exactly."""
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, len(train) - context - 1, size=batch_size)
    rows = np.stack([train[s : s + context + 1] for s in starts]).astype(np.int64)
    xy = torch.from_numpy(rows)
    return xy[:, :-1], xy[:, 1:]  # (B, T), (B, T)


@torch.no_grad()
def _evaluate(model, val: np.ndarray, *, device, autocast, batch_size: int = 32):
    """Mean cross-entropy (nats/token) over the fixed held-out windows, and its standard error
    over sequences (the same windows for every run, so differences between runs are paired)."""
    model.eval()
    seq_losses = []
    for i in range(0, len(val), batch_size):
        xy = torch.from_numpy(val[i : i + batch_size]).to(device)
        with autocast():
            logits = model(xy[:, :-1])
        loss = F.cross_entropy(
            logits.float().transpose(1, 2), xy[:, 1:], reduction="none"
        )  # (B, T)
        seq_losses.append(loss.mean(dim=1).cpu())
    model.train()
    per_seq = torch.cat(seq_losses).double()
    se = float(per_seq.std() / math.sqrt(len(per_seq))) if len(per_seq) > 1 else float("nan")
    return float(per_seq.mean()), se


def train(
    cfg: RunConfig,
    out_dir: str | os.PathLike[str],
    *,
    prepared: Prepared | None = None,
    init_from: Path | None = None,
    keep_at: dict[int, Path] | None = None,
    on_eval: Callable[[int, float], bool] | None = None,
    tracking: Tracking | None = None,
):
    """Train one run into `out_dir` (created if needed) and return its record (also written).

    `on_eval(percent_done, val_loss)` is called after each evaluation before the last (with the
    checkpoint saved); returning True stops the run there (pruning, sweeps/tuning/search.py): no
    record is written, the run stays partial and resumable, and `{"status": "pruned", ...}` is
    returned.

    WSD branches (sweeps/branches/wsd.py): `init_from` is a checkpoint (another run's, at step k)
    to start from when this run has none of its own; the record's `flops_marginal` then counts
    only steps k.. . `keep_at` maps steps to paths where a copy of the checkpoint is kept.
    `tracking` (opened by the runner) gets metrics through sweeps/tracking/meter.py, each step's
    before that step's checkpoint; it never changes what is trained or recorded.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Temp files of atomic writes cut short by a kill (this run's lock is held: none is live).
    for stale in out_dir.glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    prep = prepared or prepare(cfg, progress=cfg.progress != "none")
    data, plan, val_np = prep.data, prep.plan, prep.val
    run_id = run_id_for(cfg)

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    model = build_model(plan.shape).to(device)
    # Decoupled weight decay on matrices only (not on norms, biases or embeddings' positions).
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.optim.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=plan.lr,
        betas=(cfg.optim.beta1, cfg.optim.beta2),
        eps=cfg.optim.eps,
    )
    step_model = torch.compile(model) if cfg.compile else model

    n_steps, ctx, bs = plan.n_steps, cfg.model.context, plan.batch_size
    eval_steps = sorted(
        {max(1, round(n_steps * (i + 1) / cfg.n_evals)) for i in range(cfg.n_evals)}
    )
    ckpt_path = out_dir / records.CHECKPOINT_FILE
    start_step, elapsed_s, train_sum, train_count, last_train_loss = 0, 0.0, 0.0, 0, float("nan")
    init_step = 0  # steps inherited from init_from (not spent by this run)
    keep_at = keep_at or {}
    resumed: dict[str, Any] = {}  # the checkpoint resumed from, if any
    if not ckpt_path.exists() and init_from is not None:
        state = torch.load(init_from, map_location=device, weights_only=True)
        check_same_inputs(state, Path(init_from), data.dataset_id, precision)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        start_step = init_step = int(state["step"])
        if (out_dir / records.CURVE_FILE).exists():
            (out_dir / records.CURVE_FILE).unlink()
    elif ckpt_path.exists():
        state = resumed = torch.load(ckpt_path, map_location=device, weights_only=True)
        check_same_inputs(state, ckpt_path, data.dataset_id, precision)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        start_step = int(state["step"])
        elapsed_s = float(state["elapsed_s"])
        train_sum, train_count = float(state["train_sum"]), int(state["train_count"])
        last_train_loss = float(state["last_train_loss"])
        init_step = int(state.get("init_step", 0))
        records.truncate_curve(out_dir, start_step)  # evaluations after the checkpoint are redone
    elif (out_dir / records.CURVE_FILE).exists():
        (out_dir / records.CURVE_FILE).unlink()  # a start from scratch must not keep old points

    meter = Meter.for_run(tracking, cfg, plan, data.val_bytes_per_token, str(device), precision)
    meter.resume(resumed)

    def checkpoint(step: int, path: Path = ckpt_path) -> None:
        meter.flush()  # what the trackers got up to this step survives a kill after it
        _save_checkpoint(
            path,
            {
                "model": model.state_dict(),
                "optim": opt.state_dict(),
                "step": step,
                "elapsed_s": elapsed_s + (time.perf_counter() - t0),
                "train_sum": train_sum,
                "train_count": train_count,
                "last_train_loss": last_train_loss,
                "run_id": run_id,
                "init_step": init_step,
                "dataset_id": data.dataset_id,
                "precision": precision,
                **meter.state(),
            },
        )

    progress = Progress(cfg.progress, total=n_steps, initial=start_step, desc=run_id)
    meter.start(start_step)
    t0 = time.perf_counter()
    last_ckpt = t0
    status, reason = "ok", None
    val_loss, val_se = float("nan"), float("nan")
    model.train()
    step = start_step
    for step in range(start_step, n_steps):
        lr = lr_at(step, n_steps=n_steps, lr=plan.lr, cfg=cfg.schedule)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = _batch(data.train, step, seed=cfg.seed, batch_size=bs, context=ctx)
        x, y = x.to(device), y.to(device)
        with autocast():
            logits = step_model(x)  # (B, T, V)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            status, reason = "diverged", f"non-finite training loss at step {step} (lr {lr:.3g})"
            last_train_loss = loss_value
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        train_sum += loss_value
        train_count += 1
        done = step + 1
        now = time.perf_counter()
        progress.update(
            done, loss=loss_value, tokens_per_s=(done - start_step) * bs * ctx / (now - t0)
        )
        meter.step(done, loss_value, lr)
        if done in eval_steps:
            last_train_loss = train_sum / max(1, train_count)
            train_sum, train_count = 0.0, 0
            val_loss, val_se = _evaluate(model, val_np, device=device, autocast=autocast)
            records.append_curve(
                out_dir,
                {
                    "step": done,
                    "n_tokens": done * bs * ctx,
                    "flops": plan.flops_per_token["six_n"] * done * bs * ctx,
                    "loss": val_loss,
                    "loss_se": val_se,
                    "train_loss": last_train_loss,
                    "lr": lr,
                    "time_s": elapsed_s + (now - t0),
                },
            )
            meter.evaluation(done, val_loss, val_se)
            if not math.isfinite(val_loss):
                status, reason = "diverged", f"non-finite validation loss at step {done}"
                break
            progress.note(f"step {done}/{n_steps} val loss {val_loss:.4f}")
        if done in keep_at:  # kept first: a kill between the two saves redoes it from before
            checkpoint(done, keep_at[done])
        if done < n_steps and (
            done in eval_steps or done in keep_at or now - last_ckpt >= cfg.checkpoint_every_s
        ):
            checkpoint(done)
            last_ckpt = time.perf_counter()
        if on_eval is not None and done in eval_steps and done < n_steps:
            # the evaluation's nominal share of the run (25, 50, ...): comparable across batches
            if on_eval(round(100 * (eval_steps.index(done) + 1) / len(eval_steps)), val_loss):
                progress.close()
                return {"status": "pruned", "run_id": run_id, "step": done, "loss": val_loss}
    progress.close()
    time_s = elapsed_s + (time.perf_counter() - t0)
    n_done = (step + 1 if status == "ok" else step) if n_steps > 0 else 0
    n_tokens = n_done * bs * ctx
    record = _make_record(
        cfg,
        run_id=run_id,
        plan=plan,
        data=data,
        status=status,
        reason=reason,
        n_steps_done=n_done,
        n_tokens=n_tokens,
        n_tokens_marginal=max(0, n_done - init_step) * bs * ctx,
        loss=val_loss if status == "ok" else float("nan"),
        loss_se=val_se,
        train_loss=last_train_loss,
        time_s=time_s,
        precision=precision,
        device=str(device),
    )
    records.write_record(out_dir, record)
    ckpt_path.unlink(missing_ok=True)
    return record


def _make_record(
    cfg: RunConfig,
    *,
    run_id: str,
    plan: RunPlan,
    data: TokenData,
    status: str,
    reason: str | None,
    n_steps_done: int,
    n_tokens: int,
    n_tokens_marginal: int,
    loss: float,
    loss_se: float,
    train_loss: float,
    time_s: float,
    precision: str,
    device: str,
) -> dict[str, Any]:
    """Every field of the record contract (sweeps/records.py)."""
    counts, fpt = plan.n_params_by_convention, plan.flops_per_token
    n_params = counts["matmul"]
    config = resolved_config(cfg, plan, precision=precision, device=device)
    return {
        "run_id": run_id,
        "sweep": cfg.sweep_name,
        "status": status,
        "reason": reason,
        "config": config,
        "arch": cfg.model.arch,
        "shape": asdict(plan.shape),
        "n_params": n_params,
        "n_params_total": counts["total"],
        "n_params_embedding": counts["embedding"],
        "n_params_non_embedding": counts["non_embedding"],
        "n_params_matmul": counts["matmul"],
        "flops_per_token_6n": fpt["six_n"],
        "flops_per_token_exact": fpt["exact"],
        "n_tokens": n_tokens,
        "flops": fpt["six_n"] * n_tokens,
        "flops_exact": fpt["exact"] * n_tokens,
        "flops_marginal": fpt["exact"] * n_tokens_marginal,
        "flops_budget": cfg.budget.flops,
        "loss": loss,
        "loss_se": loss_se,
        "perplexity": math.exp(loss) if math.isfinite(loss) else float("nan"),
        "bits_per_byte": loss / math.log(2) / data.val_bytes_per_token,
        "train_loss": train_loss,
        "unigram_entropy": data.unigram_entropy,
        "n_steps": n_steps_done,
        "n_steps_planned": plan.n_steps,
        "batch_size": plan.batch_size,
        "context": cfg.model.context,
        "lr": plan.lr,
        "precision": precision,
        "time_s": time_s,
        "tokens_per_s": n_tokens / time_s if time_s > 0 else float("nan"),
        "seed": cfg.seed,
        "dataset_id": data.dataset_id,
        "dataset": data.info,
        "code_version": code_version(),
        "lib_versions": lib_versions(),
        "parent_run_id": cfg.parent_run_id,
        "role": cfg.branch.role,
        "host": platform.node(),
        "python": sys.version.split()[0],
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
