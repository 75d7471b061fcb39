"""WSD cooldown branches: one constant-learning-rate trunk per model size, and every token count
of the sweep a short cooldown branch from it (Hagele et al. 2024), so an N x D grid pays for each
size's longest run about once instead of once per D.

Turn it on with `branch.budgets` = the sweep's values of the budget horizon (the presets
conf/sweep/grid_wsd.yaml and tokens_per_param_wsd.yaml do, with `schedule=wsd`). Each Hydra job
stays an ordinary job: it runs in parallel through any launcher and resumes like any run.
`run_job` (what `sweeps.train` and `sweeps.tune` call for each job) hands such a job to
`run_branch`, which does this:

1. Plan without training. For every value b_i of `branch.budgets` (in the unit of the job's own
   horizon: budget.tokens, tokens_per_param, flops or steps) the run has n_i steps and forks at
   k_i = decay_start(schedule, n_i) = n_i - round(decay_frac * n_i), rounded to whole steps.
2. One warmup for all: an absolute `schedule.warmup_steps` W (given, else warmup_frac of the
   shortest run) is shared by the trunk and every branch of the size, so the learning rate over
   steps < k_i is the same in the trunk and in a from-scratch WSD run of length n_i.
3. The trunk: the job's model, data, optimizer (lr and batch size resolved; "auto" at the
   longest budget, for the trunk and every branch of the size) and seed, with
   schedule=constant (warmup W), budget.steps = max k_i, branch.role=trunk and branch.fork_steps
   = every k_i. It keeps a checkpoint `fork_<k>.pt` in its folder at each k_i. Its record is
   ordinary (status ok) with `role: trunk`: its lr never decayed, so leave it out of fits.
4. The branch: the job's config with warmup_steps=W, branch.role=branch and parent_run_id = the
   trunk's run id, trained from the trunk's fork_<k_i>.pt over steps k_i..n_i. Its record has
   n_tokens = D_i, flops = 6 N D_i (the full-run equivalent, for fits) and flops_marginal = the
   exact FLOPs of its own steps only (the trainer's convention).
5. Clean-up: when a branch ends, every fork checkpoint whose branches have all ended is deleted
   (a fork holds the weights and optimizer state: at scale, one per budget and size adds up).
   `branch.keep_forks=true` keeps them, e.g. to retrain a branch after deleting its folder.

Concurrency: a branch whose fork checkpoint is missing trains the trunk itself under the trunk's
run lock (resuming it from its last checkpoint, like any run); when another process holds that
lock it waits for its fork file to appear. So the branches of one size started at once train the
trunk once, and a short branch starts its cooldown as soon as the trunk passes its fork point.
Because the batch at step s depends only on (seed, s), a branch is step for step the same
computation as a from-scratch WSD run with the same warmup_steps (tests/test_branches.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sweeps import records
from sweeps.config import HORIZONS, BranchConfig, BudgetConfig, RunConfig
from sweeps.errors import UserError
from sweeps.run.identity import run_id_for
from sweeps.run.loop import prepare
from sweeps.run.lr_schedule import decay_start, warmup_steps
from sweeps.run.plan import RunPlan, plan_run
from sweeps.run.preflight import check_before_data
from sweeps.run.runner import run_dir_for, run_lock, run_one, write_untrained

__all__ = [
    "run_job",
    "BranchPlan",
    "BranchCosts",
    "branch_plan",
    "branch_costs",
    "fork_path",
    "release_forks",
    "run_branch",
]

POLL_S = 1.0  # how often a branch waiting for another process's trunk looks for its fork


@dataclass(frozen=True)
class BranchPlan:
    """How one branch-mode job runs: its own config, its trunk's, and where it forks."""

    branch_cfg: RunConfig  # warmup_steps fixed, role branch, parent_run_id = trunk's id
    trunk_cfg: RunConfig | None  # None when the branch needs no trunk (fork at step 0, skipped)
    plan: RunPlan  # the branch's own plan (n_steps, N, D, C)
    fork_step: int  # k: the branch starts from the trunk's state after k steps
    warmup_steps: int  # W, shared by the trunk and all its branches

    @property
    def marginal_steps(self) -> int:
        return self.plan.n_steps - self.fork_step


def _horizon(budget: BudgetConfig) -> str:
    (key,) = [k for k in HORIZONS if getattr(budget, k) is not None]
    return key


def _with_budget(cfg: RunConfig, key: str, value: float) -> RunConfig:
    horizon: dict[str, Any] = {key: value}
    budget = BudgetConfig(min_steps=cfg.budget.min_steps, **horizon)
    if key == "steps":
        budget = replace(budget, steps=int(value))
    return replace(cfg, budget=budget)


def branch_plan(cfg: RunConfig, *, vocab_size: int) -> BranchPlan:
    """Derive the branch and trunk configs of a job with `branch.budgets` (no training)."""
    budgets = cfg.branch.budgets
    if budgets is None:
        raise ValueError("branch_plan needs a config with branch.budgets")
    if cfg.schedule.name != "wsd":
        raise UserError(
            "schedule.name",
            f"branch mode (branch.budgets) needs a WSD schedule, got {cfg.schedule.name!r}",
            "add schedule=wsd, or use sweep=grid_wsd",
        )
    key = _horizon(cfg.budget)
    own = float(getattr(cfg.budget, key))
    if not any(abs(own - float(b)) <= 1e-9 * max(abs(own), 1.0) for b in budgets):
        raise UserError(
            f"budget.{key}",
            f"{own:g} is not among branch.budgets {list(budgets)}",
            f"sweep budget.{key} over the same values as branch.budgets",
        )
    if "auto" in (cfg.optim.lr, cfg.optim.batch_size):
        # One trunk, one lr and batch per size: the rules' values at the trunk's horizon (the
        # longest budget), for every branch of the size. Rules by horizon would give each budget
        # its own, which a shared trunk cannot follow.
        longest = plan_run(_with_budget(cfg, key, max(map(float, budgets))), vocab_size=vocab_size)
        cfg = replace(cfg, optim=replace(cfg.optim, lr=longest.lr, batch_size=longest.batch_size))
    plan = plan_run(cfg, vocab_size=vocab_size)
    plans = [plan_run(_with_budget(cfg, key, float(b)), vocab_size=vocab_size) for b in budgets]
    usable = [p.n_steps for p in plans if p.problem is None and p.n_steps > 0]
    n_warm = cfg.schedule.warmup_steps
    if n_warm is None:
        n_warm = warmup_steps(cfg.schedule, min(usable, default=plan.n_steps))
    schedule = replace(cfg.schedule, warmup_steps=n_warm)
    forks = sorted({decay_start(schedule, n) for n in usable} - {0})
    fork_step = decay_start(schedule, plan.n_steps)
    trunk = None
    if plan.problem is None and fork_step > 0:
        trunk = replace(
            cfg,
            optim=replace(cfg.optim, lr=plan.lr, batch_size=plan.batch_size),
            schedule=replace(schedule, name="constant"),
            budget=BudgetConfig(steps=max(forks), min_steps=1),
            branch=BranchConfig(role="trunk", fork_steps=forks),
            parent_run_id=None,
        )
    branch = replace(
        cfg,
        schedule=schedule,
        branch=replace(cfg.branch, role="branch"),
        parent_run_id=run_id_for(trunk) if trunk is not None else None,
    )
    return BranchPlan(branch, trunk, plan, fork_step if trunk else 0, n_warm)


def fork_path(trunk_dir: Path, step: int) -> Path:
    """The trunk's kept checkpoint after `step` steps (weights_only-loadable, like any)."""
    return Path(trunk_dir) / f"fork_{step}.pt"


def _lock_free(run_dir: Path) -> bool:
    with run_lock(run_dir) as held:
        return held


def _ensure_fork(trunk_cfg: RunConfig, fork: Path) -> dict[str, Any] | None:
    """Train (or resume) the trunk until `fork` exists, or wait for the process training it.
    Returns the trunk's record when it ended without producing the fork, else None."""
    trunk_dir = run_dir_for(trunk_cfg)
    keep_at = {k: fork_path(trunk_dir, k) for k in trunk_cfg.branch.fork_steps or ()}
    said = False
    while not fork.exists():
        if records.run_state(trunk_dir) != "done" and not _lock_free(trunk_dir):
            if not said:
                print(f"[{trunk_dir.name}] waiting for the trunk ({fork.name})", file=sys.stderr)
                said = True
            time.sleep(POLL_S)
            continue
        record = run_one(trunk_cfg, in_sweep=True, keep_at=keep_at)
        if record is not None and not fork.exists():
            return record
    return None


def run_job(
    cfg: RunConfig, *, in_sweep: bool = False, **train_kwargs: Any
) -> dict[str, Any] | None:
    """One sweep job or tune trial: a branch-mode config (`branch.budgets` set, role run) through
    `run_branch`, any other through `run_one` (with `train_kwargs`, e.g. a trial's on_eval)."""
    if cfg.branch.budgets is not None and cfg.branch.role == "run":
        check_before_data(cfg)  # before the trunk's data, folders or fork are written
        return run_branch(cfg, in_sweep=in_sweep)
    return run_one(cfg, in_sweep=in_sweep, **train_kwargs)


def run_branch(cfg: RunConfig, *, in_sweep: bool = False) -> dict[str, Any] | None:
    """Run one branch-mode job: its trunk first when its fork is missing, then its cooldown."""
    prep = prepare(cfg, progress=cfg.progress != "none")
    bp = branch_plan(cfg, vocab_size=prep.data.vocab_size)
    if bp.trunk_cfg is None:
        return run_one(bp.branch_cfg, in_sweep=in_sweep)
    branch_dir = run_dir_for(bp.branch_cfg)
    fork = fork_path(run_dir_for(bp.trunk_cfg), bp.fork_step)
    started = (branch_dir / records.CHECKPOINT_FILE).exists()
    if records.run_state(branch_dir) != "done" and not started:
        trunk_record = _ensure_fork(bp.trunk_cfg, fork)
        if trunk_record is not None:
            status = trunk_record.get("status")
            if status == "ok":
                raise UserError(
                    str(fork),
                    "the trunk has ended but its fork checkpoint is missing (deleted once all"
                    " its branches had ended, unless branch.keep_forks=true)",
                    f"delete {fork.parent} to retrain the trunk",
                )
            reason = f"trunk {fork.parent.name} ended {status}: {trunk_record.get('reason')}"
            ended_as = "diverged" if status == "diverged" else "failed"
            record = write_untrained(branch_dir, bp.branch_cfg, prep, ended_as, reason)
            print(f"[{branch_dir.name}] {record['status']}: {reason}", file=sys.stderr)
            return record
    ended = run_one(bp.branch_cfg, in_sweep=in_sweep, init_from=fork)
    if not cfg.branch.keep_forks:
        release_forks(cfg, vocab_size=prep.data.vocab_size)
    return ended


def release_forks(cfg: RunConfig, *, vocab_size: int) -> list[Path]:
    """Delete the fork checkpoints of `cfg`'s trunk whose branches (the jobs of the budgets in
    `branch.budgets` that start there) have all ended; returns the deleted paths."""
    key = _horizon(cfg.budget)
    trunk_dir = None
    users: dict[int, list[Path]] = {}  # fork step -> the branch folders that start from it
    for b in cfg.branch.budgets or ():
        bp = branch_plan(_with_budget(cfg, key, float(b)), vocab_size=vocab_size)
        if bp.trunk_cfg is None:
            continue
        trunk_dir = trunk_dir or run_dir_for(bp.trunk_cfg)
        if run_dir_for(bp.trunk_cfg) == trunk_dir:
            users.setdefault(bp.fork_step, []).append(run_dir_for(bp.branch_cfg))
    deleted = []
    for step, dirs in users.items():
        assert trunk_dir is not None
        fork = fork_path(trunk_dir, step)
        if fork.exists() and all(records.run_state(d) == "done" for d in dirs):
            fork.unlink(missing_ok=True)  # two branches ending at once may both get here
            deleted.append(fork)
    return deleted


@dataclass(frozen=True)
class BranchCosts:
    """A sweep's training compute (C = 6 N D convention) from scratch and with trunk reuse."""

    naive_flops: float  # every run trained from scratch: sum of 6 N D_i
    reuse_flops: float  # each trunk once + each branch's cooldown (+ runs not in branch mode)
    n_trunks: int

    @property
    def ratio(self) -> float:
        return self.reuse_flops / self.naive_flops if self.naive_flops > 0 else float("nan")


def branch_costs(cfgs: Sequence[RunConfig], *, vocab_size: int) -> BranchCosts:
    """Naive and trunk-reuse compute of a sweep's jobs (for `sweeps.plan`); skipped runs count 0."""
    naive = reuse = 0.0
    trunks: dict[str, float] = {}
    for cfg in cfgs:
        if cfg.branch.budgets is None or cfg.branch.role != "run":
            plan = plan_run(cfg, vocab_size=vocab_size)
            cost = 0.0 if plan.problem else plan.flops
            naive, reuse = naive + cost, reuse + cost
            continue
        bp = branch_plan(cfg, vocab_size=vocab_size)
        if bp.plan.problem:
            continue
        per_step = bp.plan.flops_per_token["six_n"] * bp.plan.tokens_per_step
        naive += bp.plan.flops
        reuse += per_step * bp.marginal_steps
        if bp.trunk_cfg is not None:
            assert bp.trunk_cfg.budget.steps is not None
            trunks[run_id_for(bp.trunk_cfg)] = per_step * bp.trunk_cfg.budget.steps
    return BranchCosts(naive, reuse + sum(trunks.values()), len(trunks))
