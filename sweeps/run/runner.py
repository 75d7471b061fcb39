"""Run one config to a record exactly once: skip it when done, resume it when partial, retry it when
failed (up to `max_retries`), and never let two processes train the same run (a lock per run)."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sweeps import records
from sweeps.config import RunConfig
from sweeps.errors import RunHeld, UserError, out_of_space
from sweeps.run import preflight
from sweeps.run.identity import run_id_for, semantic_config
from sweeps.tracking.fanout import RunInfo, Tracking, flatten, open_tracking

__all__ = ["run_dir_for", "run_one", "run_lock", "write_untrained", "run_ranked"]

CONFIG_FILE = records.CONFIG_FILE
LOCK_FILE = records.LOCK_FILE
PLAN_FILE = "plan.json"  # the run's planned steps and tokens, written when it starts


def run_dir_for(cfg: RunConfig) -> Path:
    return Path(cfg.results_dir) / cfg.sweep_name / run_id_for(cfg)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[bool]:
    """An exclusive, non-blocking lock on the run: True when we hold it, False when another
    process (another sweep over the same folder) is training this run right now."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where the folder (or one above) goes
        raise UserError(
            "results_dir",
            f"{run_dir} (or a folder above it) exists as a file, not the run's folder",
            "move or delete that file, or choose another results_dir",
        ) from None
    try:  # 0o666 less the umask, like every file here: a shared folder's others lock it too
        fd = os.open(run_dir / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o666)
    except PermissionError:  # made by another user without group write: flock needs no write
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _no_space_is_user_error(run_dir: Path) -> Iterator[None]:
    """A full disk met while writing the run's files: one UserError naming its folder (every
    write there is atomic or cut back, so nothing half-written stays), not a traceback."""
    try:
        yield
    except Exception as e:
        full = out_of_space(e, run_dir)
        if full is None:
            raise
        raise full from None


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def check_identity(run_dir: Path, cfg: RunConfig) -> None:
    """A folder whose recorded config disagrees with its name is refused, never overwritten."""
    path = run_dir / CONFIG_FILE
    if not path.exists():
        return
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(
            str(path),
            f"unreadable ({e})",
            f"delete {run_dir} to retrain the run, or only {path.name} to resume the checkpoint "
            "there if you know it is this run's",
        ) from e
    expected = json.loads(json.dumps(semantic_config(cfg), default=str))
    if stored != expected:
        diff = sorted(k for k in set(stored) | set(expected) if stored.get(k) != expected.get(k))
        raise UserError(
            str(run_dir),
            f"the recorded config disagrees with the run id in {', '.join(diff)}",
            f"move or delete {run_dir} (it was made by other code or edited by hand)",
        )


def _config_from_record(record: dict[str, Any]) -> RunConfig:
    """The RunConfig a record was trained with (its semantic part; execution knobs at defaults)."""
    from sweeps import config as schemas

    raw = record["config"]
    groups = {
        "model": schemas.ModelConfig,
        "data": schemas.DataConfig,
        "optim": schemas.OptimConfig,
        "schedule": schemas.ScheduleConfig,
        "budget": schemas.BudgetConfig,
        "branch": schemas.BranchConfig,
    }
    parts: dict[str, Any] = {k: cls(**raw[k]) for k, cls in groups.items() if k in raw}
    top = {f.name for f in dataclasses.fields(RunConfig)} - set(groups)
    parts.update({k: raw[k] for k in ("seed", "precision", "parent_run_id") if k in top & set(raw)})
    return RunConfig(**parts)


def _check_record_identity(run_dir: Path, cfg: RunConfig, record: dict[str, Any]) -> None:
    """A finished record whose config (or resolved seed / lr) no longer names this run id was
    edited or written by other code: refused, as a disagreeing config.json is."""
    path = run_dir / records.RECORD_FILE
    fix = f"move or delete {run_dir} (it was made by other code or edited by hand)"
    try:
        then = semantic_config(_config_from_record(record))
    except (KeyError, TypeError, AttributeError, UserError) as e:
        problem = e.line() if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
        raise UserError(str(path), f"its config cannot be read back ({problem})", fix) from None
    now = semantic_config(cfg)
    then, now = (json.loads(json.dumps(c, sort_keys=True, default=str)) for c in (then, now))
    diff = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k))
    if record.get("seed") is not None and record.get("seed") != cfg.seed:
        diff.append("seed")
    if isinstance(cfg.optim.lr, float) and record.get("lr") not in (None, cfg.optim.lr):
        diff.append("lr")
    if diff:
        raise UserError(
            str(path), f"the recorded config disagrees with the run id in {', '.join(diff)}", fix
        )


def _read_or_set_aside(run_dir: Path) -> dict[str, Any] | None:
    """The run's record, or None when there is none; an unreadable one is moved aside (with a
    message) so that the run trains again instead of counting as done or partial forever."""
    if not (run_dir / records.RECORD_FILE).exists():
        return None
    try:
        return records.read_record(run_dir)
    except records.RecordError as e:
        aside = records.set_aside(run_dir / records.RECORD_FILE)
        _say(f"[{run_dir.name}] {e}; moved aside to {aside.name}, the run trains again")
        return None


def write_untrained(
    run_dir: Path,
    cfg: RunConfig,
    prep: Any,
    status: str,
    reason: str,
    *,
    attempts: int | None = None,
    tracking: Tracking | None = None,
) -> dict[str, Any]:
    """Record a run that did not train (skipped by its plan, failed, a branch whose trunk failed):
    its config.json, then its record (the plan's N, D and C; nothing measured). Returns the
    record's JSON object. `prep` is `sweeps.run.loop.prepare`'s (torch is loaded by then).
    `tracking`: the failed run's trackers, ended with the record's status before it is written."""
    from sweeps.run.record import make_record

    record = make_record(
        cfg, plan=prep.plan, data=prep.data, status=status, reason=reason, attempts=attempts
    )
    if tracking is not None:  # ended first: a kill after the record leaves no tracker RUNNING
        tracking.end(record.to_json())
    records.write_json_atomic(run_dir / CONFIG_FILE, semantic_config(cfg))
    records.write_record(run_dir, record)
    return record.to_json()


def _open_tracking(cfg: RunConfig, prep: Any) -> Tracking | None:
    """The run's trackers (None when none is chosen), named by its run id and sweep, tagged with
    its architecture, corpus, role and parent (a WSD trunk) and `tracker.tags` (a tuning study)."""
    if not cfg.tracker.backends:
        return None
    from sweeps.run.loop import resolve_device, resolve_precision  # torch: a tracked run only
    from sweeps.run.plan import resolved_config

    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    params = flatten(resolved_config(cfg, prep.plan, precision=precision, device=str(device)))
    run_id = run_id_for(cfg)
    tags = {
        "sweep": cfg.sweep_name,
        "run_id": run_id,
        "arch": cfg.model.arch,
        "dataset_id": prep.data.dataset_id,
        "data": cfg.data.name,
        "role": cfg.branch.role,
    }
    if cfg.parent_run_id:
        tags["parent_run_id"] = cfg.parent_run_id
    info = RunInfo(run_id, cfg.sweep_name, cfg.results_dir, params, {**tags, **cfg.tracker.tags})
    return open_tracking(cfg.tracker, info, label=run_id)


def _end_tracking(tracking: Tracking | None, record: dict[str, Any]) -> None:
    if tracking is not None:
        tracking.end(record)  # a no-op when the trainer ended it before writing the record


def _say_done(run_dir: Path, record: dict[str, Any]) -> None:
    _say(
        f"[{run_dir.name}] already done ({record['status']}, loss {record.get('loss')}); "
        f"delete {run_dir} to retrain"
    )


def _finished(run_dir: Path, cfg: RunConfig) -> dict[str, Any] | None:
    """The record of a run that ended ok or diverged (written last and atomically, so it is read
    safely without the lock), else None. Skipped and failed runs take the full path."""
    if not (run_dir / records.RECORD_FILE).exists():
        return None
    try:
        record = records.read_record(run_dir)
    except records.RecordError:
        return None  # set aside under the run's lock (run_one)
    if record.get("status") not in ("ok", "diverged"):
        return None
    check_identity(run_dir, cfg)
    _check_record_identity(run_dir, cfg, record)
    # a kill between the record and the checkpoint's removal left it: of no use, maybe GBs
    with contextlib.suppress(OSError):  # a read-only copy of the results: leave it
        (run_dir / records.CHECKPOINT_FILE).unlink(missing_ok=True)
    _say_done(run_dir, record)
    return record


def run_one(
    cfg: RunConfig, *, in_sweep: bool = False, **train_kwargs: Any
) -> dict[str, Any] | None:
    """Train `cfg` into results/<sweep>/<run_id>/ unless already done; return its record.

    Returns None when another process holds the run. Raises UserError for the user's mistakes
    (before any run folder is created). A crash inside training becomes a `failed` record with
    the traceback in `error.log`; it is re-raised outside a sweep, swallowed inside one.
    `train_kwargs` (init_from, keep_at, on_eval) go to `train`. A sweep job or trial whose
    config has `branch.budgets` goes through `sweeps.branches.wsd.run_job` instead.
    """
    done = _finished(run_dir_for(cfg), cfg)
    if done is not None:  # at once: no data loading, not even torch
        return done

    preflight.check_before_data(cfg)  # before a cache entry or a folder is written
    # Imported here, not at the top: a finished run returns above without importing torch
    # (`import sweeps.run.loop` costs TORCH_IMPORT_S, most of a finished job's time), and a
    # refused one is refused before it (but for the memory estimate's models/).
    from sweeps.run.loop import prepare, train

    prep = prepare(cfg, progress=cfg.progress != "none")
    preflight.check_with_data(cfg, prep.data, prep.plan)
    repeated = preflight.repeated_data(prep.plan.n_tokens, len(prep.data.train))
    if repeated:
        _say(f"[{run_dir_for(cfg).name}] warning: {repeated}")
    if prep.plan.problem and not in_sweep:
        raise UserError(
            "budget",
            prep.plan.problem,
            "raise the budget, lower optim.batch_size or model.context, or lower budget.min_steps",
        )
    run_dir = run_dir_for(cfg)
    with _no_space_is_user_error(run_dir), run_lock(run_dir) as held:
        if not held:
            if not in_sweep:  # the one run asked for: nothing to show
                raise RunHeld.of(run_dir)
            _say(f"[{run_dir.name}] {RunHeld.SKIPPED}")
            return None
        check_identity(run_dir, cfg)
        _read_or_set_aside(run_dir)
        state = records.run_state(run_dir)
        if state == "done":
            record = records.read_record(run_dir)
            _check_record_identity(run_dir, cfg, record)
            _say_done(run_dir, record)
            return record
        attempts = 0
        if state == "failed":
            old = records.read_record(run_dir)
            attempts = records.attempts(old)
            if attempts > cfg.max_retries:
                _say(
                    f"[{run_dir.name}] failed {attempts} time(s); not retried "
                    f"(raise max_retries, or delete {run_dir})"
                )
                return old
            (run_dir / records.RECORD_FILE).unlink()
            _say(f"[{run_dir.name}] retrying after a failure (attempt {attempts + 1})")
        records.write_json_atomic(run_dir / CONFIG_FILE, semantic_config(cfg))
        plan = prep.plan  # for `sweeps.status`: progress of a partial run against its horizon
        records.write_json_atomic(
            run_dir / PLAN_FILE,
            {
                "n_steps": plan.n_steps,
                "tokens_per_step": plan.tokens_per_step,
                "n_tokens": plan.n_tokens,
                "n_params": plan.n_params,
                "flops": plan.flops,
                "checkpoint_every_s": cfg.checkpoint_every_s,  # how often a live run writes
            },
        )
        if prep.plan.problem:
            record = write_untrained(run_dir, cfg, prep, "skipped", prep.plan.problem)
            _say(f"[{run_dir.name}] skipped: {prep.plan.problem}")
            return record
        tracking = _open_tracking(cfg, prep)
        try:
            record = train(cfg, run_dir, prepared=prep, tracking=tracking, **train_kwargs)
        except Exception as e:  # a crash of one run must not stop a sweep
            if out_of_space(e) is not None:  # the disk's fault: partial, a rerun resumes it
                if tracking is not None:
                    tracking.finish("interrupted")
                raise
            error_log = run_dir / records.ERROR_FILE
            records.write_text_atomic(error_log, traceback.format_exc())
            why = f"{type(e).__name__}: {e}"
            record = write_untrained(run_dir, cfg, prep, "failed", why, attempts=attempts + 1,
                                     tracking=tracking)  # fmt: skip
            _say(f"[{run_dir.name}] failed: {type(e).__name__}: {e} (see {error_log})")
            if not in_sweep:
                raise
            return record
        except BaseException:  # Ctrl-C (a SIGKILL ends everything; a rerun resumes the run)
            if tracking is not None:
                tracking.finish("interrupted")
            raise
        _end_tracking(tracking, record)
        if record["status"] != "pruned":  # ended: an earlier attempt's traceback is history
            with contextlib.suppress(OSError):
                (run_dir / records.ERROR_FILE).unlink(missing_ok=True)
        if record["status"] == "pruned":  # stopped by `on_eval`: partial, resumable, no record
            _say(
                f"[{run_dir.name}] pruned at step {record['step']} (val loss "
                f"{record['loss']:.4f}); its checkpoint stays, a rerun resumes it"
            )
            return record
        _say(
            f"[{run_dir.name}] {record['status']}: loss {record['loss']:.4f} nats/token, "
            f"N={record['n_params']:,} D={record['n_tokens']:,} C={record['flops']:.3g} "
            f"in {record['time_s']:.1f}s ({record['tokens_per_s']:,.0f} tok/s) -> {run_dir}"
            if record["status"] == "ok"
            else f"[{run_dir.name}] {record['status']}: {record['reason']} -> {run_dir}"
        )
        return record


def run_ranked(cfg: RunConfig, *, in_sweep: bool = False) -> dict[str, Any] | None:
    """`run_one` for a process that may be one rank of several (torchrun, a multi-task submitit
    job; sweeps/run/distributed.py). Rank 0 does everything `run_one` does (skip, lock, resume,
    records); the other ranks wait for its word, then train their slices and write nothing."""
    from sweeps.run.distributed import from_env

    ranks = from_env(cfg.device)
    if not ranks.active:
        return run_one(cfg, in_sweep=in_sweep)
    try:
        if cfg.branch.budgets is not None:
            raise UserError(
                "branch.budgets",
                f"WSD branches train in one process, not {ranks.world} ranks",
                "run branch sweeps without torchrun (gpus_per_run=1, tasks_per_node=1)",
            )
        if ranks.is_main:
            try:
                return run_one(cfg, in_sweep=in_sweep, ranks=ranks)
            finally:
                if not ranks.joined:  # rank 0 ended without training: release the others
                    ranks.go(False)
        if not ranks.go():
            return None  # rank 0 reports why
        from sweeps.run.loop import prepare, train

        # after rank 0's word: its data cache is written, so this only reads it
        prep = prepare(cfg, progress=False)
        return train(cfg, run_dir_for(cfg), prepared=prep, ranks=ranks)
    finally:
        ranks.close()
