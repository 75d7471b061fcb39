"""What a sweep will train, before it spends (`python -m sweeps.plan <the sweep's overrides>`).

Expands the sweep exactly as `python -m sweeps.train -m <overrides>` would (sweeps/sweep/expand.py),
derives each run's shape, N, D, C and steps with the same `plan_run` the trainer uses, looks up the
state of runs already in results/, and estimates wall time from measured throughput with the time
model of sweeps/sweep/timemodel.py (fitted to this host's records, else built-in constants).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sweeps import records
from sweeps.branches.wsd import branch_costs, branch_plan
from sweeps.data import load_dataset
from sweeps.errors import UserError
from sweeps.run import preflight
from sweeps.run.identity import run_id_for
from sweeps.run.memory import available_memory, fmt_bytes
from sweeps.run.plan import model_id_for, plan_run
from sweeps.run.runner import check_identity, run_dir_for
from sweeps.sweep.compose import to_run_config
from sweeps.sweep.expand import check_n_jobs, check_one_folder, expand_sweep, sweep_lines
from sweeps.sweep.status import fmt_seconds, older_id_line
from sweeps.sweep.timemodel import TimeModel, fit_time_model, schedule_wall_s

__all__ = ["PlannedRun", "plan_sweep", "format_table", "format_report", "summary", "memory_problem",
           "launcher_workers"]


@dataclass
class PlannedRun:
    run_id: str
    overrides: list[str]
    arch: str
    shape: str  # "L x d"
    n_params: int  # matmul convention (the N of C = 6ND)
    n_params_total: int
    n_params_non_embedding: int
    n_tokens: int
    flops: float
    tokens_per_param: float
    n_steps: int
    state: str  # done, diverged, skipped, failed, failed->retry, unreadable, partial, new, refused
    problem: str | None  # set: the run will be recorded as skipped with this reason
    est_s: float  # estimated seconds to train it from scratch (setup included)
    remaining_s: float  # what is left of it (0 when done)
    memory_bytes: int  # estimated peak memory of training it (sweeps/run/memory.py)
    refused: str | None = None  # set: train will refuse its folder (state refused), and why
    other_data: str | None = None  # set: done, but scored on another dataset id than its data's now


def _existing_state(run_dir: Path, n_steps: int, max_retries: int) -> tuple[str, float]:
    """(state, fraction done) of a run folder, as `train -m` will treat it (sweeps/run/runner.py):
    an unreadable record is set aside and the run trains from scratch ("unreadable", 0); a failed
    run is retried from scratch while its attempts <= max_retries ("failed->retry", 0), else left
    ("failed", 1: nothing left to run)."""
    if (run_dir / records.RECORD_FILE).exists():
        try:
            rec = records.read_record(run_dir)
        except records.RecordError:
            return "unreadable", 0.0
        status = str(rec.get("status"))
        if status == "failed":
            tried = records.attempts(rec)
            return ("failed", 1.0) if tried > max_retries else ("failed->retry", 0.0)
        return ("done" if status == "ok" else status), 1.0
    state = records.run_state(run_dir)
    if state == "partial":
        try:  # a hand-edited or broken curve: the run's progress is unknown, its work is not
            curve = records.read_curve(run_dir)
            step = max((int(r.get("step", 0)) for r in curve), default=0)
        except (OSError, ValueError, TypeError, OverflowError):
            return "unreadable", 0.0
        return "partial", min(1.0, step / n_steps) if n_steps else 0.0
    return state, 0.0


def _other_data(run_dir: Path, now: str) -> str | None:
    """The dataset id a done run was scored on, where it is not `now` (its data settings' id
    today: the corpus or this code's split changed). `train -m` skips such a run as done, and
    the analysis will not fit it with runs scored on `now`."""
    try:
        was = records.read_record(run_dir).get("dataset_id")
    except records.RecordError:
        return None
    return str(was) if was and str(was) != now else None


def launcher_workers(master: Any) -> int:
    """How many runs the composed config's launcher trains at once on this machine."""
    launcher = master.hydra.launcher
    if "n_jobs" in launcher:  # joblib; -1 means every core; 0 and below -1 refused as train does
        n_jobs = int(launcher.n_jobs)
        check_n_jobs(n_jobs)
        return n_jobs if n_jobs > 0 else (os.cpu_count() or 1)
    if "basic_launcher" in str(launcher.get("_target_", "")):
        return 1
    return os.cpu_count() or 1  # submitit_local, ray: every run at once, cores permitting


def plan_sweep(
    overrides: list[str], *, time_model: TimeModel | None = None, config_dir: str | None = None
) -> tuple[list[PlannedRun], dict[str, Any]]:
    """Plan every job of the sweep; (runs, info) where info holds the launcher's n_jobs etc."""
    expansion = expand_sweep(overrides, config_dir=config_dir)
    master = expansion.master
    check_one_folder(sweep_lines(master))  # a preset's sweeper params too
    results_dir = str(master.get("results_dir", "results"))
    preflight.check_results_dir(results_dir, str(master.get("sweep_name", "default")))
    model = time_model or fit_time_model(results_dir)
    datasets: dict[str, Any] = {}
    runs: list[PlannedRun] = []
    cfgs, vocab_size = [], 0
    trunks_priced: set[str] = set()
    same_model: dict[str, list[str]] = {}  # the run id of the config with its shape spelled out
    repeated: dict[str, int] = {}  # run id -> how many jobs name it (overrides it does not read)
    for job in expansion.jobs:
        try:
            cfg = to_run_config(job.cfg)
        except UserError as e:  # a sweep has many jobs: name this one
            fix = f"{e.fix} (job {' '.join(job.overrides)})".strip()
            raise UserError(e.field, e.problem, fix) from e
        preflight.check_seed(cfg.seed)
        preflight.check_device(cfg.device)
        split = preflight.predicted_split(cfg.data)
        if split is not None:  # before a cache entry is built
            preflight.check_split(*split, context=cfg.model.context, where=f"data={cfg.data.name}")
        key = json.dumps(asdict(cfg.data), sort_keys=True)
        if key not in datasets:
            datasets[key] = load_dataset(cfg.data, progress=False)
        data = datasets[key]
        preflight.check_split(
            len(data.train), len(data.val), context=cfg.model.context, where=data.dataset_id
        )
        vocab_size = datasets[key].vocab_size
        cfgs.append(cfg)
        bp = None
        if cfg.branch.budgets is not None:  # a WSD branch: its folder is named by its branch config
            bp = branch_plan(cfg, vocab_size=vocab_size)
            cfg = bp.branch_cfg
        plan = plan_run(cfg, vocab_size=datasets[key].vocab_size)
        counts = plan.n_params_by_convention
        shape = plan.shape
        state, frac = _existing_state(run_dir_for(cfg), plan.n_steps, cfg.max_retries)
        refused = None
        try:  # a folder whose recorded config is not this run's: train refuses it, first thing
            check_identity(run_dir_for(cfg), cfg)
        except UserError as e:
            state, frac, refused = "refused", 1.0, e.line()
        other = _other_data(run_dir_for(cfg), data.dataset_id) if state == "done" else None
        fpt, n_eval = plan.flops_per_token["exact"], cfg.n_evals * cfg.data.n_val_tokens
        if plan.problem:
            est = model.setup_s
        elif bp is None:
            est = model.setup_s + model.run_s(
                n_steps=plan.n_steps,
                n_tokens=plan.n_tokens,
                flops_per_token=fpt,
                n_eval_tokens=n_eval,
            )
        else:  # its cooldown only, plus its trunk for the first job of that size to need it
            est = model.setup_s + model.run_s(
                n_steps=bp.marginal_steps,
                n_tokens=bp.marginal_steps * plan.tokens_per_step,
                flops_per_token=fpt,
                n_eval_tokens=n_eval,
            )
            trunk = bp.trunk_cfg
            if trunk is not None and run_id_for(trunk) not in trunks_priced:
                trunks_priced.add(run_id_for(trunk))
                assert trunk.budget.steps is not None
                est += model.run_s(
                    n_steps=trunk.budget.steps,
                    n_tokens=trunk.budget.steps * plan.tokens_per_step,
                    flops_per_token=fpt,
                    n_eval_tokens=trunk.n_evals * trunk.data.n_val_tokens,
                )
        run_id = run_id_for(cfg)
        if any(r.run_id == run_id for r in runs):  # another job names the same run: counted once
            repeated[run_id] = repeated.get(run_id, 1) + 1
            cfgs.pop()  # nor priced twice as a branch
            continue
        ids = same_model.setdefault(model_id_for(cfg, shape), [])
        if run_id not in ids:
            ids.append(run_id)
        runs.append(
            PlannedRun(
                run_id=run_id,
                overrides=job.overrides,
                arch=cfg.model.arch,
                shape=f"{shape.n_layer} x {shape.d_model}",
                n_params=plan.n_params,
                n_params_total=counts["total"],
                n_params_non_embedding=counts["non_embedding"],
                n_tokens=plan.n_tokens,
                flops=plan.flops,
                tokens_per_param=plan.n_tokens / plan.n_params,
                n_steps=plan.n_steps,
                state=state,
                problem=plan.problem,
                est_s=est,
                remaining_s=est * (1 - frac),  # 0 when done or failed for good
                memory_bytes=preflight.memory_estimate(cfg, plan).total,
                refused=refused,
                other_data=other,
            )
        )
    n_jobs = launcher_workers(master)
    info = {
        "device": str(master.get("device", "auto")),
        "sweep_name": str(master.sweep_name),
        "results_dir": results_dir,
        "n_jobs": n_jobs,
        "time_model": asdict(model),
        # runs whose model.n_params targets resolve to one shape, with every other setting equal:
        # different run ids that would train the same model
        "same_model": [ids for ids in same_model.values() if len(ids) > 1],
        # jobs whose overrides differ only in settings their config does not read: one run
        "repeated": repeated,
        # folders named by an older run-id version: never reused (their runs train again), kept
        "older_id": [
            d.name
            for d in records.iter_run_dirs(Path(results_dir) / str(master.sweep_name))
            if records.older_id_version(d) is not None
        ],
    }
    if any(c.branch.budgets is not None for c in cfgs):
        costs = branch_costs(cfgs, vocab_size=vocab_size)
        info["branch_costs"] = {**asdict(costs), "ratio": costs.ratio}
    return runs, info


def format_table(runs: list[PlannedRun]) -> str:
    """The plan as a text table, one row per run."""
    head: tuple[str, ...] = (
        "run_id",
        "arch",
        "L x d",
        "N",
        "N_total",
        "N_nonemb",
        "D",
        "C",
        "D/N",
        "steps",
    )
    head += ("state", "est", "memory")
    rows = [head]
    for r in runs:
        rows.append(
            (
                r.run_id,
                r.arch,
                r.shape,
                f"{r.n_params:,}",
                f"{r.n_params_total:,}",
                f"{r.n_params_non_embedding:,}",
                f"{r.n_tokens:.3g}",
                f"{r.flops:.3g}",
                f"{r.tokens_per_param:.0f}",
                str(r.n_steps),
                r.state if not (r.problem and r.state == "new") else "new->skip",
                fmt_seconds(r.est_s),
                fmt_bytes(r.memory_bytes),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    left = {0, 1, 10}
    return "\n".join(
        "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def summary(runs: list[PlannedRun], info: dict[str, Any]) -> dict[str, Any]:
    model = info["time_model"]
    todo = [r.remaining_s for r in runs if r.remaining_s > 0]
    states: dict[str, int] = {}
    for r in runs:
        states[r.state] = states.get(r.state, 0) + 1
    return {
        "n_runs": len(runs),
        "states": states,
        "n_will_skip": sum(1 for r in runs if r.problem and r.state == "new"),
        "flops": sum(r.flops for r in runs if not r.problem),
        "n_jobs": info["n_jobs"],
        "wall_s_all": schedule_wall_s([r.est_s for r in runs], info["n_jobs"], model["startup_s"]),
        "wall_s_remaining": schedule_wall_s(todo, info["n_jobs"], model["startup_s"]),
        "serial_s_all": sum(r.est_s for r in runs),
        "memory_max_bytes": max((r.memory_bytes for r in runs), default=0),
        # the n_jobs largest runs at once: the worst case of the launcher's parallelism
        "memory_parallel_bytes": sum(
            sorted((r.memory_bytes for r in runs), reverse=True)[: max(1, info["n_jobs"])]
        ),
    }


def memory_problem(total: dict[str, Any], *, device: str) -> tuple[str, UserError | None]:
    """(the memory line plan prints, the refusal when the largest run does not fit)."""
    available, where = available_memory(device)
    line = (
        f"memory: up to {fmt_bytes(total['memory_max_bytes'])} per run, "
        f"{fmt_bytes(total['memory_parallel_bytes'])} with {total['n_jobs']} at once; "
        + (f"{fmt_bytes(available)} {where}" if available is not None else "available unknown")
    )
    if available is None:
        return line, None
    if total["memory_max_bytes"] > available:
        return line, UserError(
            "memory",
            f"the largest run needs about {fmt_bytes(total['memory_max_bytes'])}, more than the "
            f"{fmt_bytes(available)} {where}",
            "lower model.n_params, optim.batch_size or model.context (the memory column shows "
            "each run's estimate)",
        )
    if total["memory_parallel_bytes"] > available:
        line += (
            f"\nwarning: {total['n_jobs']} runs at once may need more than that; lower "
            "hydra.launcher.n_jobs (or --jobs here)"
        )
    return line, None


def format_report(runs: list[PlannedRun], info: dict[str, Any], total: dict[str, Any]) -> str:
    """What `python -m sweeps.plan` prints: the table, its warnings and the totals."""
    lines = [format_table(runs)]
    for r in runs:
        if r.problem and r.state == "new":
            lines.append(f"  {r.run_id} will be recorded as skipped: {r.problem}")
        if r.refused:
            lines.append(f"  {r.run_id} will be refused: {r.refused}")
    stale = [r for r in runs if r.other_data]
    if stale:
        lines.append(
            f"warning: {len(stale)} done run(s) were scored on other data (dataset "
            f"{', '.join(sorted({str(r.other_data) for r in stale}))}) than their data settings "
            f"give now ({stale[0].run_id}"
            + (f" and {len(stale) - 1} more" if len(stale) > 1 else "")
            + "): train -m skips them as done, and the "
            "analysis will not fit them with new runs; start the sweep in a new results folder "
            "(e.g. results_dir=results2), or restore the data they were trained on"
        )
    by_id = {r.run_id: r for r in runs}
    for run_id, n in info["repeated"].items():
        lines.append(
            f"warning: run {run_id} is named by {n} jobs: their overrides differ only in "
            "settings this config does not read (e.g. model.n_params with an explicit "
            "model.n_layer/model.d_model), so it trains once; drop the extra values"
        )
    for ids in info["same_model"]:
        one = by_id[ids[0]]
        lines.append(
            f"warning: runs {', '.join(ids)} train the same model ({one.arch} {one.shape}, "
            f"N = {one.n_params:,}, the same tokens and settings): their model.n_params "
            "targets resolve to one shape; drop all but one, or space the targets further apart "
            "(~1.5x at the smallest sizes)"
        )
    if info["older_id"]:
        where = Path(info["results_dir"]) / info["sweep_name"]
        lines.append("warning: " + older_id_line(len(info["older_id"]), where))
    states = ", ".join(f"{n} {s}" for s, n in sorted(total["states"].items()))
    lines.append(
        f"\n{total['n_runs']} runs ({states}; {total['n_will_skip']} to skip), "
        f"C = {total['flops']:.3g} FLOPs (6ND) -> {info['results_dir']}/{info['sweep_name']}/"
    )
    if "branch_costs" in info:
        bc = info["branch_costs"]
        lines.append(
            f"WSD branches: {bc['n_trunks']} trunk(s); C = {bc['naive_flops']:.3g} from scratch, "
            f"{bc['reuse_flops']:.3g} with trunk reuse (ratio {bc['ratio']:.3f})"
        )
    lines.append(
        f"estimated wall time on {total['n_jobs']} process(es): "
        f"{fmt_seconds(total['wall_s_remaining'])} left, "
        f"{fmt_seconds(total['wall_s_all'])} from scratch "
        f"({fmt_seconds(total['serial_s_all'])} of run time); {info['time_model']['source']}"
    )
    return "\n".join(lines)
