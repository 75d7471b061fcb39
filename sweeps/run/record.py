"""The record of one training run: every field of the contract (sweeps/records.py), built from
what `sweeps.run.loop.train` measured."""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import sys
from dataclasses import asdict
from typing import Any

import torch

from sweeps.config import RunConfig
from sweeps.data import TokenData
from sweeps.run.device import known_peak
from sweeps.run.distributed import Ranks
from sweeps.run.plan import RunPlan, resolved_config
from sweeps.run.provenance import code_version, lib_versions

__all__ = ["make_record", "mfu"]


def mfu(
    plan: RunPlan,
    n_tokens: int,
    time_s: float,
    ranks: Ranks,
    device: torch.device,
    precision: str,
) -> float | None:
    """Exact FLOPs per second of this launch over the datasheet bf16 peak of all its GPUs."""
    peak = known_peak(device, precision)
    if peak is None or time_s <= 0:
        return None
    return plan.flops_per_token["exact"] * n_tokens / time_s / (peak[0] * ranks.world)


def make_record(
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
    world_size: int,
    mfu: float | None,
) -> dict[str, Any]:
    """Every field of the record contract (sweeps/records.py)."""
    counts, fpt = plan.n_params_by_convention, plan.flops_per_token
    n_params = counts["matmul"]
    config = resolved_config(cfg, plan, precision=precision, device=device)
    config["resolved"] |= {
        "world_size": world_size,
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
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
        "mfu": mfu,  # of the GPU's datasheet bf16 peak (sweeps/run/device.py); None elsewhere
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
