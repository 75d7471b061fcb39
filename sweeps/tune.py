"""Learning rate and batch size by scale: one Optuna study per model size, every trial a real run.

    python -m sweeps.tune -m sweep=lr_tune   # grid of sizes x a study each
    python -m sweeps.tune -m sweep=lr_tune model.n_params=3e3,1e4 tune.n_trials=8
    python -m sweeps.tune fit results/lr_tune   # sweeps/tune_fit.py: -> hparam_rules.json

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

The `tune` node is typed (`TuneConfig`): this entry point composes the usual conf/config.yaml onto
`TuneRunConfig` (RunConfig plus `tune`), so a misspelt `tune.*` key fails at compose time, and the
trials themselves are plain RunConfigs (the `tune` node never reaches a record or a run id).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeps import records
from sweeps.config import RunConfig, _check
from sweeps.errors import UserError
from sweeps.tune_study import check_study_base, open_study, study_base, study_name_for, trial_config

__all__ = [
    "TuneConfig",
    "TuneRunConfig",
    "trial_config",
    "open_study",
    "tune_size",
    "study_name_for",
    "main",
]

SUMMARY_DIR = "tune"  # results/<sweep>/tune/<study>.json: the search space and every trial
PRUNERS = ("none", "median")


@dataclass
class TuneConfig:
    """The search of one study (one model size). Ranges are inclusive; both are searched in log."""

    n_trials: int = 12  # finished trials (complete + failed) per size; a rerun tops up to this
    lr_min: float = 3e-4
    lr_max: float = 3e-2
    batch_min: int = 4  # sequences per step; searched over the powers of two in [min, max]
    batch_max: int = 64
    warmup_min: float | None = None  # both set: also search schedule.warmup_frac (linear)
    warmup_max: float | None = None
    seed: int = 0  # TPE sampler seed (plus the size, so studies differ)
    n_startup_trials: int = 5  # random trials before TPE models the objective
    storage: str = ""  # "" = sqlite results/<sweep>/optuna.db; a URL (postgresql://...);
    #                     or journal:<file> for Optuna's JournalStorage on a shared filesystem
    study_prefix: str = "lr_tune"  # study name = <prefix>-N<model.n_params>-<horizon>
    pruner: str = "none"  # none | median (optuna MedianPruner on intermediate validation loss)

    def __post_init__(self) -> None:
        _check(self.n_trials >= 1, "tune.n_trials", "must be >= 1", "e.g. tune.n_trials=12")
        _check(
            0 < self.lr_min < self.lr_max,
            "tune.lr_min/tune.lr_max",
            f"need 0 < lr_min < lr_max, got {self.lr_min}, {self.lr_max}",
            "e.g. tune.lr_min=3e-4 tune.lr_max=3e-2",
        )
        _check(
            1 <= self.batch_min <= self.batch_max,
            "tune.batch_min/tune.batch_max",
            f"need 1 <= batch_min <= batch_max, got {self.batch_min}, {self.batch_max}",
            "e.g. tune.batch_min=4 tune.batch_max=64",
        )
        _check(
            _pow2_range(self.batch_min, self.batch_max) != (),
            "tune.batch_min/tune.batch_max",
            "no power of two lies in the range",
            "e.g. tune.batch_min=4 tune.batch_max=64",
        )
        _check(
            (self.warmup_min is None) == (self.warmup_max is None)
            and (self.warmup_min is None or 0 <= self.warmup_min < self.warmup_max < 1),  # type: ignore[operator]
            "tune.warmup_min/tune.warmup_max",
            "set both (0 <= min < max < 1) or neither",
            "e.g. tune.warmup_min=0 tune.warmup_max=0.2",
        )
        _check(self.n_startup_trials >= 1, "tune.n_startup_trials", "must be >= 1", "e.g. 5")
        _check(
            self.pruner in PRUNERS,
            "tune.pruner",
            f"unknown pruner {self.pruner!r}",
            f"one of {', '.join(PRUNERS)}",
        )


@dataclass
class TuneRunConfig(RunConfig):
    """The base run of every trial, plus the search. Only this entry point composes it."""

    tune: TuneConfig = field(default_factory=TuneConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            self.tune.warmup_min is None or self.schedule.warmup_steps is None,
            "tune.warmup_min/tune.warmup_max",
            "the search varies schedule.warmup_frac, which schedule.warmup_steps overrides "
            "(every trial would get the same warmup)",
            "drop schedule.warmup_steps, or the warmup search",
        )
        _check(
            self.tune.pruner == "none" or not self.branch.budgets,
            "tune.pruner",
            "WSD branch runs report no intermediate losses to prune on",
            "tune.pruner=none",
        )


def _pow2_range(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(2**k for k in range(0, 31) if lo <= 2**k <= hi)


def _distributions(t: TuneConfig) -> dict[str, Any]:
    from optuna.distributions import FloatDistribution, IntDistribution

    pows = _pow2_range(t.batch_min, t.batch_max)
    dists: dict[str, Any] = {
        "lr": FloatDistribution(t.lr_min, t.lr_max, log=True),
        "log2_batch_size": IntDistribution(int(math.log2(pows[0])), int(math.log2(pows[-1]))),
    }
    if t.warmup_min is not None and t.warmup_max is not None:
        dists["warmup_frac"] = FloatDistribution(t.warmup_min, t.warmup_max)
    return dists


def _finished(trial: Any) -> bool:
    """Counted towards n_trials: complete, pruned, or failed by its run (not by an interruption)."""
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and "status" in trial.user_attrs


def _recover_interrupted(study: Any) -> None:
    """A RUNNING trial whose run nobody holds was killed: fail it and re-ask its parameters."""
    from optuna.trial import TrialState

    from sweeps.runner import run_lock

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
    from optuna.trial import TrialState

    from sweeps.runner import run_dir_for, run_one

    study = open_study(cfg)
    check_study_base(study, cfg)
    _recover_interrupted(study)
    dists = _distributions(cfg.tune)
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
            record = run_one(run_cfg, in_sweep=True, on_eval=on_eval)
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
    path = Path(cfg.results_dir) / cfg.sweep_name / SUMMARY_DIR / f"{study.study_name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    records.write_json_atomic(path, summary)
    return summary


def _hydra_main() -> None:
    import hydra
    from hydra.core.config_store import ConfigStore
    from omegaconf import DictConfig
    from omegaconf.errors import OmegaConfBaseException

    from sweeps.compose import register_configs, to_run_config

    register_configs()
    # This entry point's root schema is RunConfig + `tune` (conf/config.yaml names run_schema).
    ConfigStore.instance().store(name="run_schema", node=TuneRunConfig)
    ConfigStore.instance().store(group="tune", name="schema", node=TuneConfig)

    @hydra.main(version_base="1.3", config_path="../conf", config_name="config")
    def run(cfg: DictConfig) -> float | None:
        try:
            try:
                obj = to_run_config(cfg)  # refuses unknown `+` keys, as sweeps.train does
            except OmegaConfBaseException as e:
                key = getattr(e, "full_key", None) or "config"
                raise UserError(str(key), str(e).splitlines()[0], "check its value") from e
            assert isinstance(obj, TuneRunConfig)
            summary = tune_size(obj)
        except UserError as e:
            print(f"error: {e.line()}", file=sys.stderr, flush=True)
            sys.exit(2)
        losses = [t["loss"] for t in summary["trials"] if t["loss"] is not None]
        return min(losses) if losses else None

    run()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "fit":
        from sweeps.tune_fit import fit_cli

        sys.exit(fit_cli(sys.argv[2:]))
    _hydra_main()


if __name__ == "__main__":
    # Run the imported module, not this `__main__` copy: the schemas must be `sweeps.tune.*` so
    # that configs pickled to launcher processes name importable classes.
    from sweeps.tune import main as _main

    _main()
