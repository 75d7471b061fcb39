"""Hydra callback for sweeps: notes the sweep's jobs at the start, prints `[sweep] k/total runs
done, ETA ...` after every job, a summary at the end, and makes the command exit non-zero when any
run failed or any job had a config error.

The job list goes to `<sweep dir>/.sweep.json` so that job processes (joblib, submitit, ray) can
count progress without sharing memory with the launching process.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.global_hydra import GlobalHydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sweeps import records
from sweeps.config import RunConfig
from sweeps.errors import UserError
from sweeps.run.identity import run_id_for
from sweeps.run.preflight import check_seed
from sweeps.sweep.compose import to_run_config
from sweeps.sweep.expand import (
    check_n_jobs,
    check_one_folder,
    job_overrides,
    sweep_lines,
    task_config,
)
from sweeps.sweep.status import JOB_ERRORS, SWEEP_FILE, config_errors, fmt_seconds

__all__ = ["SweepSummary", "SWEEP_FILE", "JOB_ERRORS", "progress_line"]


HELD = "being trained elsewhere"  # a run another process holds the lock of at the sweep's end


def config_problem(config: DictConfig) -> UserError | None:
    """When no job's overrides compose (an unknown key, a wrong type: a typo hits every job), the
    first job's error as the job itself would report it, else None (a sweep with a job that can
    run runs, and its bad jobs fail alone). Checked before the sweep writes anything: a typo in
    `-m model.n_param=3e3,6e3` left multirun.yaml and a .sweep.json of null run ids behind."""
    from hydra.errors import CompactHydraException
    from omegaconf.errors import OmegaConfBaseException

    from sweeps.sweep.compose import compose_error

    hydra = GlobalHydra.instance().hydra
    if hydra is None or "tune" in config:  # sweeps.tune: its jobs are studies, checked by it
        return None
    loader = hydra.config_loader
    try:
        jobs = job_overrides(config, config_loader=loader)
    except UserError:  # another sweeper: its jobs are checked as they start
        return None
    first: UserError | None = None
    for overrides in jobs:
        try:
            to_run_config(task_config(loader.load_sweep_config(config, list(overrides))))
            return None  # a job that can run: the sweep runs, and a bad job fails alone
        except (CompactHydraException, OmegaConfBaseException, UserError) as e:
            if first is None:
                err = e if isinstance(e, UserError) else compose_error(e)
                first = UserError(err.field, f"{err.problem} (in every one of the {len(jobs)} "
                                  "jobs; nothing was launched)", err.fix)  # fmt: skip
    return first


def _run_ids(config: DictConfig) -> tuple[list[str | None], list[list[str]]]:
    """Each job's run id (None where its config is invalid), composed as the launcher will, and
    the groups of run ids that train one model (size targets that resolve to one shape)."""
    hydra = GlobalHydra.instance().hydra
    assert hydra is not None, "called inside a Hydra multirun"
    loader = hydra.config_loader
    ids: list[str | None] = []
    vocab: dict[str, int] = {}

    def vocab_of(cfg: RunConfig) -> int:
        # asked only of WSD branches and size targets: an explicit shape needs none, and a
        # token file's vocabulary is a read of the whole file (sweeps/sweep/plan.py agrees)
        key = json.dumps(asdict(cfg.data), sort_keys=True)
        if key not in vocab:
            # here, not at the top: this module is loaded by every run, a refused one included,
            # and sweeps.data brings numpy and tokenizers (~0.2 s)
            from sweeps.data import vocab_size_of

            vocab[key] = vocab_size_of(cfg.data)
        return vocab[key]

    same: dict[str, list[str]] = {}  # model id -> the run ids that train that model
    explicit: list[tuple[RunConfig, str]] = []  # explicit shapes: grouped only beside targets
    for overrides in job_overrides(config, config_loader=loader):
        try:
            cfg = to_run_config(task_config(loader.load_sweep_config(config, list(overrides))))
            check_seed(cfg.seed)  # the job refuses it before its folder exists: not a run
            # nothing is built here, in what may be a login node's process
            if cfg.branch.budgets is not None:  # a WSD branch: named by its branch config
                from sweeps.branches.wsd import branch_plan

                cfg = branch_plan(cfg, vocab_size=vocab_of(cfg)).branch_cfg
            run_id = run_id_for(cfg)
            ids.append(run_id)
        except Exception:  # reported by the job itself, with the field at fault
            ids.append(None)
            continue
        if cfg.model.n_layer is not None and cfg.model.d_model is not None:
            explicit.append((cfg, run_id))
        else:  # a size target
            _group_model(same, cfg, run_id, vocab_of)
    if same:  # an explicit shape trains the same model as a target that resolves to it
        for cfg, run_id in explicit:  # (the vocabulary is read by now: the targets needed it)
            _group_model(same, cfg, run_id, vocab_of)
    return ids, [group for group in same.values() if len(group) > 1]


def _group_model(same: dict[str, list[str]], cfg: RunConfig, run_id: str, vocab_of) -> None:
    """Add `run_id` to the run ids that train its model (`sweeps.run.plan.model_id_for`)."""
    try:
        from sweeps.run.plan import model_id_for, shape_for  # imports torch

        model = model_id_for(cfg, shape_for(cfg, vocab_size=vocab_of(cfg)))
    except Exception:  # noqa: BLE001 - an unreachable target: the job says so
        return
    if run_id not in same.setdefault(model, []):
        same[model].append(run_id)


def _finished(sweep_dir: Path, ids: list[str]) -> int:
    return sum(records.run_state(sweep_dir / i) in ("done", "failed") for i in set(ids))


def progress_line(sweep_dir: Path, *, now: float | None = None) -> str | None:
    """`[sweep] k/total runs done, ETA ...` from the sweep file and the run folders, or None."""
    try:
        info = json.loads((sweep_dir / SWEEP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ids = [i for i in info.get("run_ids") or [] if i]
    if not ids:
        return None
    total = len(set(ids))
    k = _finished(sweep_dir, ids)
    k_new = k - int(info.get("n_finished_at_start", 0))
    elapsed = (now or time.time()) - float(info.get("started_at", time.time()))
    if k >= total:
        eta = "all done"
    elif k_new > 0:
        eta = f"ETA {fmt_seconds(elapsed / k_new * (total - k))}"
    else:
        eta = "ETA after the first run"
    return f"[sweep] {k}/{total} runs done ({k_new} this launch, {fmt_seconds(elapsed)}), {eta}"


def _tune_line(sweep_dir: Path) -> str | None:
    """`[tune] k studies: t trials (c complete, p pruned, f failed)` from the study summaries."""
    paths = sorted((sweep_dir / records.TUNE_DIR).glob("*.json"))
    if not paths:
        return None
    states: Counter[str] = Counter()
    for path in paths:
        for t in json.loads(path.read_text(encoding="utf-8")).get("trials", []):
            states[str(t.get("state", "?")).lower()] += 1
    parts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    return f"[tune] {len(paths)} studies: {sum(states.values())} trials ({parts})"


def _unwritable(sweep_dir: Path, e: OSError) -> NoReturn:
    print(
        f"error: results_dir: cannot write in the sweep folder {sweep_dir} "
        f"({e.strerror or type(e).__name__}). Fix: make it writable, or choose a writable "
        "folder, e.g. results_dir=$HOME/results (finished runs can be copied there)",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(2)


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:  # before the sweep folder is made: Hydra's would be neither of the swept ones
            check_one_folder(sweep_lines(config))  # a preset's sweeper params too
            check_n_jobs(config.hydra.launcher.get("n_jobs"))
            if not str(config.get("results_dir", "results")).strip():  # else /<sweep_name>
                raise UserError(
                    "results_dir", "is empty", "give a folder, e.g. results_dir=results"
                )
            problem = config_problem(config)
            if problem is not None:
                raise problem
        except UserError as e:
            print(f"error: {e.line()}", file=sys.stderr, flush=True)
            sys.exit(2)
        try:  # before any job (Hydra writes multirun.yaml next): one line, nothing launched
            sweep_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=sweep_dir):  # a folder that exists but is read-only
                pass
            (sweep_dir / JOB_ERRORS).unlink(missing_ok=True)
        except OSError as e:
            _unwritable(sweep_dir, e)
        self.t0 = time.time()
        self.tune = "tune" in config  # sweeps.tune: each job is a study, its trials the runs
        if self.tune:
            return
        try:
            ids, same_model = _run_ids(config)
        except Exception as e:  # progress is a courtesy: never stop a sweep for it
            print(f"[sweep] cannot count the jobs ({e}); no progress lines", file=sys.stderr)
            ids, same_model = [], []
        for group in same_model:  # as sweeps.plan warns: the launch must say so too
            print(
                f"[sweep] warning: runs {', '.join(group)} train the same model: their "
                "model.n_params targets resolve to one shape, with every other setting equal, "
                f"so it is trained {len(group)} times; drop all but one target, or space the "
                "targets further apart (~1.5x at the smallest sizes; `python -m sweeps.plan` "
                "with these arguments shows the shapes)",
                file=sys.stderr,
                flush=True,
            )
        valid = [i for i in ids if i]
        self.ids = set(valid)  # this launch's runs, for its summary (another launch over the same
        # folder rewrites the sweep file)
        n_before = _finished(sweep_dir, valid)
        try:
            records.write_json_atomic(
                sweep_dir / SWEEP_FILE,
                {
                    "started_at": self.t0,
                    "n_jobs": len(ids),
                    "run_ids": ids,
                    "n_finished_at_start": n_before,
                },
            )
        except OSError as e:  # a disk that filled since the probe: still one line
            _unwritable(sweep_dir, e)
        if ids:
            print(
                f"[sweep] {len(ids)} jobs, {len(set(valid))} runs, {n_before} already finished "
                f"-> {sweep_dir}",
                file=sys.stderr,
                flush=True,
            )

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        try:
            sweep_dir = Path(config.hydra.sweep.dir)
            line = _tune_line(sweep_dir) if "tune" in config else progress_line(sweep_dir)
        except Exception:  # never let progress reporting fail a job
            line = None
        if line:
            print(line, file=sys.stderr, flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if getattr(self, "tune", False):
            elapsed = time.time() - self.t0
            line = _tune_line(sweep_dir) or "[tune] no study summary written"
            print(f"\n{line} in {elapsed:.0f}s", file=sys.stderr)
            print(f"fit the rules: python -m sweeps.tune fit {sweep_dir}", file=sys.stderr)
            return
        ids: set[str] = getattr(self, "ids", set())
        states: Counter[str] = Counter()
        failed = []
        for run_dir in records.iter_run_dirs(sweep_dir):
            if ids and run_dir.name not in ids:
                continue  # another grid's runs in the same folder are not this sweep's business
            state = records.run_state(run_dir)
            if state == "done":
                status = records.read_record(run_dir).get("status", "?")
                states[status] += 1
            elif state == "partial" and records.held_elsewhere(run_dir):
                states[HELD] += 1  # another launch over this folder is training it
            else:
                states[state] += 1
                if state == "failed":
                    failed.append(run_dir.name)
        errors = config_errors(sweep_dir)
        elapsed = time.time() - getattr(self, "t0", time.time())
        parts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        print(f"\nsweep {sweep_dir}: {parts or 'no runs'} in {elapsed:.0f}s", file=sys.stderr)
        for name in failed:
            print(f"  failed: {sweep_dir / name} (see error.log there)", file=sys.stderr)
        for err in errors:
            print(
                f"  config error for {' '.join(err['overrides'])}: {err['error']}", file=sys.stderr
            )
        if states.get(HELD):
            print(
                f"  {states[HELD]} not finished here: another process (another launch over this "
                "folder) is training them; rerun this command once it ends to count them",
                file=sys.stderr,
            )
        if failed or errors or states.get("partial") or states.get(HELD):
            sys.stderr.flush()
            sys.exit(1)
