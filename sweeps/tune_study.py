"""Where an lr_tune study lives and what it is a search for: its name, its storage, the plain
RunConfig of each trial, and the check that one name never holds two searches (sweeps/tune.py
drives the search itself)."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps import records
from sweeps.config import RunConfig
from sweeps.errors import UserError

if TYPE_CHECKING:
    from sweeps.tune import TuneRunConfig

__all__ = ["check_study_base", "open_study", "study_base", "study_name_for", "trial_config"]


def study_name_for(cfg: TuneRunConfig) -> str:
    """<prefix>-N<size>-<horizon>: one study per size and horizon, so a sweep over budget.tokens
    (the horizon the batch optimum follows) keeps its studies apart in one storage."""
    b = cfg.budget
    key, value = next(
        (k, getattr(b, k))
        for k in ("tokens", "flops", "tokens_per_param", "steps")
        if getattr(b, k) is not None
    )
    return f"{cfg.tune.study_prefix}-N{cfg.model.n_params:g}-{key}{float(value):g}"


def _base_key(semantic: dict[str, Any], warmup_searched: bool) -> str:
    """A hash of a trial's semantic config without what the study searches: equal for every trial
    of one study, different for a study of another model, corpus, schedule, seed or budget."""
    import hashlib
    import json

    sem = json.loads(json.dumps(semantic, default=str))
    sem["optim"]["lr"] = sem["optim"]["batch_size"] = None
    if warmup_searched:
        sem["schedule"]["warmup_frac"] = None
    return hashlib.sha256(json.dumps(sem, sort_keys=True).encode()).hexdigest()[:12]


def study_base(cfg: TuneRunConfig) -> str:
    """The `_base_key` of cfg's trials (what the study is a search for)."""
    from sweeps.config import semantic_config

    searched = cfg.tune.warmup_min is not None
    probe = trial_config(cfg, lr=1.0, batch_size=1, warmup_frac=0.0 if searched else None)
    return _base_key(semantic_config(probe), searched)


def check_study_base(study: Any, cfg: TuneRunConfig) -> None:
    """One study name holds the search of one configuration: refuse to add trials of other
    settings (say model.arch or the corpus) to it, and mark a new study with its own.

    The name gives only the size and the horizon; without this a second search under the same
    name (another sweep's settings, or a parallel job of a multirun over model.arch) would mix
    its trials into the first's optimum, or find `n_trials` done and return the other's. Studies
    made before the mark are checked through their first trial's config.json."""
    import json

    key = study_base(cfg)
    searched = cfg.tune.warmup_min is not None
    seen = {t.user_attrs.get("base") for t in study.get_trials(deepcopy=False)} - {None}
    mark = study.user_attrs.get("base")
    if mark is None and not seen:  # a study from before the mark: its first trial's config
        for t in study.get_trials(deepcopy=False):
            path = Path(str(t.user_attrs.get("run_dir", ""))) / records.CONFIG_FILE
            if t.user_attrs.get("run_dir") and path.is_file():
                seen.add(_base_key(json.loads(path.read_text(encoding="utf-8")), searched))
                break
    other = ({mark} | seen) - {None, key}
    if other:
        raise UserError(
            "tune.study_prefix",
            f"the study {study.study_name!r} already holds trials of other settings than this "
            "search's (a model, corpus, schedule, seed or budget setting besides the size and "
            "horizon differs), and mixing them would mix their optima",
            "give each configuration its own prefix, e.g. tune.study_prefix=lr_tune_${model.arch}"
            ", or another sweep_name",
        )
    if mark is None:
        study.set_user_attr("base", key)


def trial_config(
    base: RunConfig, *, lr: float, batch_size: int, warmup_frac: float | None = None
) -> RunConfig:
    """The plain RunConfig of one trial (the `tune` node dropped, so run ids ignore the search)."""
    plain = RunConfig(**{f.name: getattr(base, f.name) for f in dataclasses.fields(RunConfig)})
    schedule = plain.schedule
    if warmup_frac is not None:
        schedule = dataclasses.replace(schedule, warmup_frac=float(warmup_frac))
    return dataclasses.replace(
        plain,
        optim=dataclasses.replace(plain.optim, lr=float(lr), batch_size=int(batch_size)),
        schedule=schedule,
    )


def _storage(spec: str, sweep_dir: Path) -> Any:
    import optuna

    if spec.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(spec[len("journal:") :]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if not spec:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        spec = f"sqlite:///{(sweep_dir / 'optuna.db').resolve()}"
    elif "://" not in spec:
        raise UserError(
            "tune.storage",
            f"{spec!r} is neither a database URL nor journal:<file>",
            "use '' (SQLite in the results folder), postgresql://user@host/db or journal:path.log",
        )
    kwargs = {"connect_args": {"timeout": 120}} if spec.startswith("sqlite") else {}
    for attempt in range(5):  # parallel jobs may race to create the tables of a new database
        try:
            return optuna.storages.RDBStorage(spec, engine_kwargs=kwargs)
        except Exception:  # noqa: BLE001 - retried, then re-raised
            if attempt == 4:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def open_study(cfg: TuneRunConfig) -> Any:
    """Create or load the study of this size (seeded TPE), in the configured storage."""
    import optuna

    sweep_dir = Path(cfg.results_dir) / cfg.sweep_name
    assert cfg.model.n_params is not None
    sampler = optuna.samplers.TPESampler(
        seed=cfg.tune.seed + int(round(math.log10(cfg.model.n_params) * 1000)),
        n_startup_trials=cfg.tune.n_startup_trials,
        multivariate=True,
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=cfg.tune.n_startup_trials)
        if cfg.tune.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    return optuna.create_study(
        study_name=study_name_for(cfg),
        storage=_storage(cfg.tune.storage, sweep_dir),
        sampler=sampler,
        pruner=pruner,
        direction="minimize",
        load_if_exists=True,
    )
