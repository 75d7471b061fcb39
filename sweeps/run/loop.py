"""`train(cfg, out_dir) -> record`: one language-model training run, top to bottom.

Takes a plain RunConfig (no Hydra). Resumes from `out_dir/checkpoint.pt` when one exists; appends
one line per evaluation to `curve.jsonl`; writes `record.json` last and atomically. The same seed
on the CPU gives identical losses, interrupted or not: the batch at step s depends only on
(seed, s), and the checkpoint holds the model, the optimizer and the running sums.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models import build_model
from sweeps import records
from sweeps.config import RunConfig
from sweeps.data import TokenData, eval_windows, load_dataset
from sweeps.run.checkpoint import check_same_inputs, load_checkpoint
from sweeps.run.checkpoint import save_checkpoint as _save_checkpoint
from sweeps.run.device import (
    CompileOrEager,
    make_optimizer,
    resolve_compile,
    resolve_device,
    resolve_precision,
    setup_fast_path,
)
from sweeps.run.distributed import Ranks, rows_of
from sweeps.run.evaluate import evaluate, global_batch
from sweeps.run.identity import run_id_for
from sweeps.run.lr_schedule import lr_at
from sweeps.run.plan import RunPlan, plan_run
from sweeps.run.preempt import Preemption, Terminated
from sweeps.run.progress import Progress
from sweeps.run.record import Measured, make_record, mfu
from sweeps.tracking.fanout import Tracking
from sweeps.tracking.meter import Meter

# _save_checkpoint is bound here so tests can patch loop._save_checkpoint (a kill mid-save).
__all__ = ["train", "prepare", "Prepared", "resolve_device", "resolve_precision", "SYNC_EVERY"]

SYNC_EVERY = 50  # CUDA: steps between host waits for the device (losses, bar, divergence)


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


def train(
    cfg: RunConfig,
    out_dir: str | os.PathLike[str],
    *,
    prepared: Prepared | None = None,
    init_from: Path | None = None,
    keep_at: dict[int, Path] | None = None,
    on_eval: Callable[[int, float], bool] | None = None,
    ranks: Ranks | None = None,
    tracking: Tracking | None = None,
) -> dict[str, Any]:
    """Train one run into `out_dir` (created if needed) and return its record (also written) as
    the JSON object record.json holds (`RunRecord.to_json()`; a diverged loss NaN, not null).

    `on_eval(percent_done, val_loss)` is called after each evaluation before the last (with the
    checkpoint saved); returning True stops the run there (pruning, sweeps/tuning/search.py): no
    record is written, the run stays partial and resumable, and `{"status": "pruned", ...}` is
    returned.

    WSD branches (sweeps/branches/wsd.py): `init_from` is a checkpoint (another run's, at step k)
    to start from when this run has none of its own; the record's `flops_marginal` then counts
    only steps k.. . `keep_at` maps steps to paths where a copy of the checkpoint is kept.

    `ranks` (sweeps/run/distributed.py): this process's rank of a DistributedDataParallel run; every
    rank takes its slice of the same global batch and only rank 0 writes anything.

    `tracking` (opened by the runner) gets metrics through sweeps/tracking/meter.py, each step's
    before that step's checkpoint; it never changes what is trained or recorded.
    """
    ranks = ranks or Ranks()
    main = ranks.is_main
    if ranks.active and main and not ranks.joined:
        ranks.go(True)  # the other ranks wait for this word before loading anything
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Temp files of atomic writes cut short by a kill (this run's lock is held: none is live).
    for stale in out_dir.glob(".*.tmp") if main else ():
        stale.unlink(missing_ok=True)
    prep = prepared or prepare(cfg, progress=cfg.progress != "none")
    data, plan, val_np = prep.data, prep.plan, prep.val
    run_id = run_id_for(cfg)

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = ranks.device(cfg.device) if ranks.active else resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    setup_fast_path(device)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    model = build_model(plan.shape).to(device)  # the same seed: the same init on every rank
    optim = plan.optim  # cfg.optim with "auto" resolved: optim.lr is the peak learning rate
    opt = make_optimizer(
        model,
        lr=float(optim.lr),
        betas=(optim.beta1, optim.beta2),
        eps=optim.eps,
        wd=optim.weight_decay,
    )

    n_steps, ctx, bs = plan.n_steps, cfg.model.context, plan.batch_size
    eval_steps = sorted(
        {max(1, round(n_steps * (i + 1) / cfg.n_evals)) for i in range(cfg.n_evals)}
    )
    ckpt_path = out_dir / records.CHECKPOINT_FILE
    start_step, elapsed_s, train_sum, train_count, last_train_loss = 0, 0.0, 0.0, 0, float("nan")
    init_step = 0  # steps inherited from init_from (not spent by this run)
    keep_at = keep_at or {}
    resumed: dict[str, Any] = {}  # the checkpoint resumed from, if any
    own = None  # this run's own checkpoint; an unusable one is set aside, and the run starts
    # again from its fork (a branch) or from scratch
    if ckpt_path.exists():
        own = load_checkpoint(
            ckpt_path,
            model=model,
            opt=opt,
            device=device,
            dataset_id=data.dataset_id,
            precision=precision,
            say=lambda text: print(f"[{run_id}] {text}", file=sys.stderr, flush=True),
            then="starting from its fork"
            if init_from is not None and Path(init_from).exists()
            else "training from scratch",
        )
    if own is None and init_from is not None and Path(init_from).exists():
        state = torch.load(init_from, map_location=device, weights_only=True)
        check_same_inputs(state, Path(init_from), data.dataset_id, precision)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        start_step = init_step = int(state["step"])
        if main and (out_dir / records.CURVE_FILE).exists():
            (out_dir / records.CURVE_FILE).unlink()
    elif own is not None:
        state = resumed = own
        start_step = int(state["step"])
        elapsed_s = float(state.get("elapsed_s", 0.0))
        train_sum, train_count = (
            float(state.get("train_sum", 0.0)),
            int(state.get("train_count", 0)),
        )
        last_train_loss = float(state.get("last_train_loss", float("nan")))
        init_step = int(state.get("init_step", 0))
        if main:
            records.truncate_curve(out_dir, start_step)  # evaluations past the checkpoint: redone
            print(
                f"[{run_id}] resuming from its checkpoint at step {start_step:,} of "
                f"{plan.n_steps:,}",
                file=sys.stderr,
                flush=True,
            )
    elif main and (out_dir / records.CURVE_FILE).exists():
        (out_dir / records.CURVE_FILE).unlink()  # a start from scratch must not keep old points
    ranks.barrier()  # every rank holds rank 0's state before any rank steps
    # DDP averages the ranks' gradients, then compile; evaluation and saving use `model` itself
    step_model = CompileOrEager(ranks.wrap(model, device), resolve_compile(cfg.compile, device))

    meter = Meter.for_run(tracking, cfg, plan, data.val_bytes_per_token, str(device), precision)
    meter.resume(resumed)

    def checkpoint(step: int, path: Path = ckpt_path) -> None:
        if not main:
            return
        meter.flush()  # what the trackers got up to this step survives a kill after it
        _save_checkpoint(
            path,
            {
                "model": model.state_dict(),
                "optim": opt.state_dict(),
                "step": step,
                "elapsed_s": elapsed_s + (clock() - t0),
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

    progress = Progress(
        cfg.progress if main else "none", total=n_steps, initial=start_step, desc=run_id
    )
    meter.start(start_step)

    def clock() -> float:  # stops while the run waits for its trackers: they are not its time
        return time.perf_counter() - meter.waited_s

    t0 = clock()
    last_ckpt = time.perf_counter()
    status, reason = "ok", None
    val_loss, val_se = float("nan"), float("nan")
    model.train()
    rows = rows_of(bs, ranks.rank, ranks.world)  # this rank's rows of every global batch
    # The host waits for the device only at these points (each step on the CPU, where it costs
    # nothing and the bar moves per step; every SYNC_EVERY steps and at evaluations on CUDA).
    sync_every = 1 if device.type == "cpu" else SYNC_EVERY
    pending: list[tuple[int, float, torch.Tensor]] = []  # (step, lr, this rank's loss share)
    # submitit's timeout signal, and SIGTERM in a single-process run: checkpoint here, then go
    preempt = Preemption().install(sigterm=ranks.world == 1)
    step = n_done = start_step
    for step in range(start_step, n_steps):
        lr = lr_at(step, n_steps=n_steps, lr=float(optim.lr), cfg=cfg.schedule)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = global_batch(
            data.train, step, seed=cfg.seed, batch_size=bs, context=ctx, rows=rows, device=device
        )  # (b, T) each, b = this rank's rows
        with autocast():
            logits = step_model(x)  # (b, T, V)
        # This rank's share of the GLOBAL mean: its summed loss over all bs * ctx tokens. DDP
        # averages gradients over ranks, hence the factor world: the sum of the shares' gradients.
        share = F.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum"
        ) / (bs * ctx)
        opt.zero_grad(set_to_none=True)
        (share * ranks.world).backward()
        if optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
        opt.step()
        pending.append((step, lr, share.detach()))
        done = step + 1
        if len(pending) < sync_every and done not in eval_steps and done not in keep_at:
            if done != n_steps and preempt.pending is None and not preempt.terminated:
                continue
        losses = ranks.all_sum(torch.stack([p[2] for p in pending])).tolist()
        bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
        if bad is not None:  # every rank sees the same sums, so every rank stops here
            n_done, lr_bad = pending[bad][0], pending[bad][1]
            status, reason = (
                "diverged",
                f"non-finite training loss at step {n_done} (lr {lr_bad:.3g})",
            )
            last_train_loss = losses[bad]
            break
        for (s, lr_s, _), v in zip(pending, losses, strict=True):
            meter.step(s + 1, v, lr_s)  # per step, in bursts where the host syncs rarely (CUDA)
        pending.clear()
        train_sum += sum(losses)
        train_count += len(losses)
        n_done = done
        now = clock()
        progress.update(
            done, loss=losses[-1], tokens_per_s=(done - start_step) * bs * ctx / (now - t0)
        )
        if done in eval_steps:
            last_train_loss = train_sum / max(1, train_count)
            train_sum, train_count = 0.0, 0
            val_loss, val_se = evaluate(
                model, val_np, device=device, autocast=autocast, ranks=ranks
            )
            row = {
                "step": done,
                "n_tokens": done * bs * ctx,
                "flops": plan.flops_per_token["six_n"] * done * bs * ctx,
                "loss": val_loss,
                "loss_se": val_se,
                "train_loss": last_train_loss,
                "lr": lr,
                "time_s": elapsed_s + (now - t0),
            }
            if main:
                records.append_curve(out_dir, row)
            meter.evaluation(done, val_loss, val_se)
            if not math.isfinite(val_loss):
                status, reason = "diverged", f"non-finite validation loss at step {done}"
                n_done = step
                break
            progress.note(f"step {done}/{n_steps} val loss {val_loss:.4f}")
        if done in keep_at:  # kept first: a kill between the two saves redoes it from before
            checkpoint(done, keep_at[done])
        if done < n_steps and (
            done in eval_steps or done in keep_at
            or time.perf_counter() - last_ckpt >= cfg.checkpoint_every_s
        ):
            checkpoint(done)
            last_ckpt = time.perf_counter()
        if preempt.pending is not None and done < n_steps:
            preempt.hand_over(
                functools.partial(checkpoint, done)
            )  # exits: submitit requeues the job
        if preempt.terminated and done < n_steps:  # SIGTERM: keep this step, then stop
            checkpoint(done)
            progress.close()
            preempt.restore()
            raise Terminated(done, n_steps)
        if on_eval is not None and done in eval_steps and done < n_steps:
            # the evaluation's nominal share of the run (25, 50, ...): comparable across batches
            if on_eval(round(100 * (eval_steps.index(done) + 1) / len(eval_steps)), val_loss):
                progress.close()
                preempt.restore()
                return {"status": "pruned", "run_id": run_id, "step": done, "loss": val_loss}
    progress.close()
    preempt.restore()
    time_s = elapsed_s + (clock() - t0)
    n_tokens = n_done * bs * ctx
    measured = Measured(
        n_steps=n_done,
        n_tokens=n_tokens,
        n_tokens_marginal=max(0, n_done - init_step) * bs * ctx,
        loss=val_loss if status == "ok" else float("nan"),
        loss_se=val_se,
        train_loss=last_train_loss,
        time_s=time_s,
        precision=precision,
        device=str(device),
        world_size=ranks.world,
        mfu=mfu(
            plan,
            n_tokens - start_step * bs * ctx,
            clock() - t0,
            ranks,
            device,
            precision,
        ),
    )
    record = make_record(cfg, plan=plan, data=data, status=status, reason=reason, measured=measured)
    if main:
        if tracking is not None:  # the trackers' end first: a rerun skips a run with a record
            tracking.end(record.to_json())
        records.write_record(out_dir, record)
        ckpt_path.unlink(missing_ok=True)
    return record.to_json()
