"""Learning rate and batch size by scale: one Optuna study per model size, every trial a real run.

    python -m sweeps.tune -m sweep=lr_tune   # grid of sizes x a study each
    python -m sweeps.tune -m sweep=lr_tune model.n_params=3e3,1e4 tune.n_trials=8
    python -m sweeps.tune fit results/lr_tune   # sweeps/tuning/summaries.py: -> hparam_rules.json

Hydra launches one job per model size (`hydra.sweeper.params` in conf/sweep/lr_tune.yaml, the
joblib launcher); inside each job `tune_size` drives an Optuna study through ask/tell. A trial
builds a plain RunConfig and calls `run_one(..., in_sweep=True)`, so it gets its own
content-addressed record: a rerun resumes each study up to `tune.n_trials` finished trials, a
trial killed mid-run is re-asked with the same parameters (its run resumes from its checkpoint),
and a configuration TPE proposes twice is read back from its record instead of retrained. A run
that diverges, fails or is skipped is told to Optuna as a FAIL trial; the study goes on.
More workers per size: start the same command again (another shell or cluster job) on a shared
storage (`tune.storage=postgresql://...` or `journal:<file>`); TPE's constant liar spreads their
trials and the per-run lock keeps two workers from training the same configuration.
Pruning (`tune.pruner=median`, off by default): after each intermediate evaluation the trial
reports its validation loss at that share of its run (percent of steps, so batch sizes compare)
and Optuna's MedianPruner stops it when it is worse than the median of earlier trials there. A
pruned run keeps its checkpoint and writes no record (a later full run of that config resumes it);
the study counts it as finished. Caveat: under a decaying schedule a high learning rate looks worse
mid-run than it ends, so pruning can drop the eventual optimum; raise n_evals and keep
tune.n_startup_trials >= 5 when you use it.

The `tune` node is typed (`TuneConfig`, sweeps/tuning/study.py): the sweeps.tune entry point
composes the usual conf/config.yaml onto `TuneRunConfig` (RunConfig plus `tune`), so a misspelt
`tune.*` key fails at compose time, and the trials themselves are plain RunConfigs (the `tune` node
never reaches a record or a run id).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from sweeps import records
from sweeps.branches.wsd import run_job
from sweeps.errors import UserError
from sweeps.run.preflight import check_device, check_results_dir, check_seed
from sweeps.run.runner import run_dir_for, run_lock
from sweeps.tuning.study import (
    TuneConfig,
    TuneRunConfig,
    check_study_base,
    open_study,
    pow2_range,
    study_base,
    study_name_for,
    trial_config,
)

__all__ = ["search_space", "tune_size", "write_summary"]


def search_space(t: TuneConfig) -> dict[str, Any]:
    """Optuna's distributions of one study: lr (log), log2 of the batch, and the warmup if set."""
    pows = pow2_range(t.batch_min, t.batch_max)
    dists: dict[str, Any] = {
        "lr": FloatDistribution(t.lr_min, t.lr_max, log=True),
        "log2_batch_size": IntDistribution(int(math.log2(pows[0])), int(math.log2(pows[-1]))),
    }
    if t.warmup_min is not None and t.warmup_max is not None:
        dists["warmup_frac"] = FloatDistribution(t.warmup_min, t.warmup_max)
    return dists


def _finished(trial: Any) -> bool:
    """Counted towards n_trials: complete, pruned, or failed by its run (not by an interruption)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and "status" in trial.user_attrs


def _recover_interrupted(study: Any) -> None:
    """A RUNNING trial whose run nobody holds was killed: fail it and re-ask its parameters."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        run_dir = t.user_attrs.get("run_dir")
        if run_dir:
            with run_lock(Path(run_dir)) as held:
                if not held:
                    continue  # another process is training it now
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        if t.params:
            study.enqueue_trial(t.params, skip_if_exists=False)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def tune_size(cfg: TuneRunConfig) -> dict[str, Any]:
    """Run (or resume) the study of cfg's model size to cfg.tune.n_trials finished trials.

    Returns the study summary (also written to results/<sweep>/tune/<study>.json).
    """
    # what every trial would refuse, refused once before the study's database is written
    check_seed(cfg.seed)
    check_device(cfg.device)
    check_results_dir(cfg.results_dir, cfg.sweep_name)
    study = open_study(cfg)
    check_study_base(study, cfg)
    _recover_interrupted(study)
    dists = search_space(cfg.tune)
    name = study_name_for(cfg)
    base = study_base(cfg)
    while True:
        check_study_base(study, cfg)  # again: a parallel job may have started the same name
        n_done = sum(_finished(t) for t in study.get_trials(deepcopy=False))
        if n_done >= cfg.tune.n_trials:
            break
        trial = study.ask(dists)
        trial.set_user_attr("base", base)
        p = trial.params
        run_cfg = trial_config(
            cfg, lr=p["lr"], batch_size=2 ** p["log2_batch_size"], warmup_frac=p.get("warmup_frac")
        )
        tags = {**run_cfg.tracker.tags, "study": name, "trial": str(trial.number)}
        run_cfg = dataclasses.replace(
            run_cfg, tracker=dataclasses.replace(run_cfg.tracker, tags=tags)
        )  # trackers group a study's trials (the run id ignores the tracker node)
        trial.set_user_attr("run_dir", str(run_dir_for(run_cfg)))
        _say(
            f"[{name}] trial {n_done + 1}/{cfg.tune.n_trials}: lr {p['lr']:.3g}, "
            f"batch {run_cfg.optim.batch_size}"
            + (f", warmup {p['warmup_frac']:.3f}" if "warmup_frac" in p else "")
        )

        def on_eval(percent: int, loss: float, trial: Any = trial) -> bool:
            trial.report(loss, percent)
            return bool(trial.should_prune())

        try:
            record = run_job(run_cfg, in_sweep=True, on_eval=on_eval)
        except UserError as e:  # e.g. a shape the sizing policy cannot build: fail, keep going
            record = {"status": "failed", "reason": e.line(), "loss": None}
        status = "busy" if record is None else str(record.get("status"))
        loss = None if record is None else record.get("loss")
        trial.set_user_attr("status", status)
        if record is not None:
            trial.set_user_attr("run_id", record.get("run_id"))
            for key in ("n_params", "n_tokens", "flops", "n_steps"):
                trial.set_user_attr(key, record.get(key))
        if status == "ok" and loss is not None and math.isfinite(float(loss)):
            study.tell(trial, float(loss), skip_if_finished=True)
        elif status == "pruned" and record is not None:
            study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
            _say(f"[{name}] trial pruned at {record['step']} steps (val loss {loss:.4f})")
        else:
            reason = "" if record is None else record.get("reason")
            trial.set_user_attr("reason", reason)
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            _say(f"[{name}] trial failed ({status}: {reason}); the study goes on")
        write_summary(cfg, study)
    return write_summary(cfg, study)


def write_summary(cfg: TuneRunConfig, study: Any) -> dict[str, Any]:
    """results/<sweep>/tune/<study>.json: the space and every finished trial (what `fit` reads)."""
    trials = []
    for t in study.get_trials(deepcopy=False):
        if not _finished(t):
            continue
        trials.append(
            {
                "number": t.number,
                "state": t.state.name,
                "status": t.user_attrs.get("status"),
                "lr": t.params.get("lr"),
                "batch_size": 2 ** t.params["log2_batch_size"]
                if "log2_batch_size" in t.params
                else None,
                "warmup_frac": t.params.get("warmup_frac"),
                "loss": t.value if t.state.name == "COMPLETE" else None,
                **{
                    k: t.user_attrs.get(k)
                    for k in ("run_id", "n_params", "n_tokens", "flops", "n_steps")
                },
            }
        )
    summary = {
        "study": study.study_name,
        "n_params_target": cfg.model.n_params,
        "space": dataclasses.asdict(cfg.tune),
        "n_trials": len(trials),
        "trials": trials,
    }
    path = Path(cfg.results_dir) / cfg.sweep_name / records.TUNE_DIR / f"{study.study_name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    records.write_json_atomic(path, summary)
    return summary
