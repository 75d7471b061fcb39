"""The record of one run, trained or not: `make_record` is the one place a RunRecord
(sweeps/run_record.py; its fields are documented in sweeps/records.py) is built from a run's config,
plan and data.

The training loop passes what it measured (`Measured`); a run that never trained (skipped by its
plan, failed before a step, a branch whose trunk failed) passes none, and its record holds the
plan's N, D and C with None where nothing was measured.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import sys
from dataclasses import asdict, dataclass

import torch

from sweeps.config import RunConfig
from sweeps.data import TokenData
from sweeps.run.device import known_peak
from sweeps.run.distributed import Ranks
from sweeps.run.identity import run_id_for
from sweeps.run.plan import RunPlan, resolved_config
from sweeps.run.provenance import code_version, lib_versions
from sweeps.run_record import RunRecord

__all__ = ["Measured", "make_record", "mfu"]


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


@dataclass(frozen=True)
class Measured:
    """What training measured, for the record (losses in nats/token)."""

    n_steps: int  # optimizer steps done
    n_tokens: int  # tokens trained on, from step 0 (a branch counts its trunk's)
    n_tokens_marginal: int  # tokens this run trained itself (a branch: its cooldown only)
    loss: float  # final validation loss (NaN when diverged)
    loss_se: float
    train_loss: float
    time_s: float
    precision: str  # resolved: fp32 or bf16
    device: str
    world_size: int
    mfu: float | None


def make_record(
    cfg: RunConfig,
    *,
    plan: RunPlan,
    data: TokenData,
    status: str,
    reason: str | None,
    measured: Measured | None = None,
    attempts: int | None = None,
) -> RunRecord:
    """The run's record: every field of the contract from its config, plan and data, and from
    `measured` when it trained (None: it never did, and its D and C are the plan's)."""
    counts, fpt = plan.n_params_by_convention, plan.flops_per_token
    m = measured
    if m is None:
        config = {k: v for k, v in asdict(cfg).items() if k != "tracker"}
        n_tokens = plan.n_tokens
    else:
        config = resolved_config(cfg, plan, precision=m.precision, device=m.device)
        config["resolved"] |= {
            "world_size": m.world_size,
            "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }
        n_tokens = m.n_tokens
    loss = m.loss if m else None
    return RunRecord(
        run_id=run_id_for(cfg),
        sweep=cfg.sweep_name,
        status=status,
        reason=reason,
        attempts=attempts,
        config=config,
        arch=cfg.model.arch,
        shape=asdict(plan.shape),
        n_params=counts["matmul"],
        n_params_total=counts["total"],
        n_params_embedding=counts["embedding"],
        n_params_non_embedding=counts["non_embedding"],
        n_params_matmul=counts["matmul"],
        flops_per_token_6n=fpt["six_n"],
        flops_per_token_exact=fpt["exact"],
        n_tokens=n_tokens,
        flops=fpt["six_n"] * n_tokens,
        flops_exact=fpt["exact"] * n_tokens,
        flops_marginal=fpt["exact"] * m.n_tokens_marginal if m else None,
        flops_budget=cfg.budget.flops,
        loss=loss,
        loss_se=m.loss_se if m else None,
        perplexity=(math.exp(m.loss) if math.isfinite(m.loss) else float("nan")) if m else None,
        bits_per_byte=m.loss / math.log(2) / data.val_bytes_per_token if m else None,
        train_loss=m.train_loss if m else None,
        unigram_entropy=data.unigram_entropy,
        n_steps=m.n_steps if m else None,
        n_steps_planned=plan.n_steps,
        batch_size=plan.batch_size,
        context=cfg.model.context,
        lr=plan.lr,
        precision=m.precision if m else None,
        time_s=m.time_s if m else None,
        tokens_per_s=(m.n_tokens / m.time_s if m.time_s > 0 else float("nan")) if m else None,
        mfu=m.mfu if m else None,  # of the GPU's datasheet bf16 peak (sweeps/run/device.py)
        seed=cfg.seed,
        dataset_id=data.dataset_id,
        dataset=data.info,
        code_version=code_version(),
        lib_versions=lib_versions(),
        parent_run_id=cfg.parent_run_id,
        role=cfg.branch.role,
        host=platform.node(),
        python=sys.version.split()[0],
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
