"""What an lr_tune study is and where it lives: its typed settings (`TuneConfig`, the `tune` node),
its name, its storage, the plain RunConfig of each trial, and the check that one name never holds
two searches (sweeps/tuning/search.py drives the search itself)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from sweeps import records
from sweeps.config import HORIZONS, RunConfig
from sweeps.errors import UserError, require
from sweeps.run.identity import semantic_config

__all__ = [
    "PRUNERS",
    "TuneConfig",
    "TuneRunConfig",
    "pow2_range",
    "check_study_base",
    "open_study",
    "storage_for",
    "study_base",
    "study_name_for",
    "trial_config",
]

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
        require(self.n_trials >= 1, "tune.n_trials", "must be >= 1", "e.g. tune.n_trials=12")
        require(
            0 < self.lr_min < self.lr_max,
            "tune.lr_min/tune.lr_max",
            f"need 0 < lr_min < lr_max, got {self.lr_min}, {self.lr_max}",
            "e.g. tune.lr_min=3e-4 tune.lr_max=3e-2",
        )
        require(
            1 <= self.batch_min <= self.batch_max,
            "tune.batch_min/tune.batch_max",
            f"need 1 <= batch_min <= batch_max, got {self.batch_min}, {self.batch_max}",
            "e.g. tune.batch_min=4 tune.batch_max=64",
        )
        require(
            pow2_range(self.batch_min, self.batch_max) != (),
            "tune.batch_min/tune.batch_max",
            "no power of two lies in the range",
            "e.g. tune.batch_min=4 tune.batch_max=64",
        )
        require(
            (self.warmup_min is None) == (self.warmup_max is None)
            and (self.warmup_min is None or 0 <= self.warmup_min < self.warmup_max < 1),  # type: ignore[operator]
            "tune.warmup_min/tune.warmup_max",
            "set both (0 <= min < max < 1) or neither",
            "e.g. tune.warmup_min=0 tune.warmup_max=0.2",
        )
        require(self.n_startup_trials >= 1, "tune.n_startup_trials", "must be >= 1", "e.g. 5")
        require(
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
        require(
            self.tune.warmup_min is None or self.schedule.warmup_steps is None,
            "tune.warmup_min/tune.warmup_max",
            "the search varies schedule.warmup_frac, which schedule.warmup_steps overrides "
            "(every trial would get the same warmup)",
            "drop schedule.warmup_steps, or the warmup search",
        )
        require(
            self.tune.pruner == "none" or not self.branch.budgets,
            "tune.pruner",
            "WSD branch runs report no intermediate losses to prune on",
            "tune.pruner=none",
        )


def pow2_range(lo: int, hi: int) -> tuple[int, ...]:
    """The powers of two in [lo, hi]: the batch sizes a study searches."""
    return tuple(2**k for k in range(0, 31) if lo <= 2**k <= hi)


def study_name_for(cfg: TuneRunConfig) -> str:
    """<prefix>-N<size>-<horizon>: one study per size and horizon, so a sweep over budget.tokens
    (the horizon the batch optimum follows) keeps its studies apart in one storage."""
    b = cfg.budget
    key, value = next((k, getattr(b, k)) for k in HORIZONS if getattr(b, k) is not None)
    return f"{cfg.tune.study_prefix}-N{cfg.model.n_params:g}-{key}{float(value):g}"


def _base_key(semantic: dict[str, Any], warmup_searched: bool) -> str:
    """A hash of a trial's semantic config without what the study searches: equal for every trial
    of one study, different for a study of another model, corpus, schedule, seed or budget."""
    sem = json.loads(json.dumps(semantic, default=str))
    sem["optim"]["lr"] = sem["optim"]["batch_size"] = None
    if warmup_searched:
        sem["schedule"]["warmup_frac"] = None
    return hashlib.sha256(json.dumps(sem, sort_keys=True).encode()).hexdigest()[:12]


def study_base(cfg: TuneRunConfig) -> str:
    """The `_base_key` of cfg's trials (what the study is a search for)."""
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
    dirs = [Path(str(t.user_attrs["run_dir"])) for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("run_dir")]  # fmt: skip
    if other and any(records.older_id_version(d) is not None for d in dirs):
        raise UserError(
            "tune.study_prefix",
            f"the study {study.study_name!r} holds trials of an older run-id version (its base "
            "key hashed the old id rule, and a rerun never reuses their folders)",
            "give this search a new tune.study_prefix, or move the study's file in "
            "results/<sweep>/tune/ aside; the old trials stay where they are",
        )
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


def storage_for(spec: str, sweep_dir: Path) -> Any:
    """The Optuna storage of `tune.storage`: SQLite in the sweep folder (""), a database URL, or
    `journal:<file>` (JournalStorage, for a shared filesystem)."""
    if spec.startswith("journal:"):
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
    from sqlalchemy.exc import ArgumentError  # Optuna's RDB storage is SQLAlchemy

    kwargs = {"connect_args": {"timeout": 120}} if spec.startswith("sqlite") else {}
    fix = "use '' (SQLite in the results folder), a URL whose driver is installed, or journal:file"
    for attempt in range(5):  # parallel jobs may race to create the tables of a new database
        try:
            return optuna.storages.RDBStorage(spec, engine_kwargs=kwargs)
        except (ArgumentError, ImportError) as e:  # no such dialect, or its driver missing
            raise UserError("tune.storage", f"{spec!r}: {str(e).splitlines()[0]}", fix) from e
        except Exception as e:  # noqa: BLE001 - retried, then said
            if attempt == 4:
                why = f"cannot open {spec!r}: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
                raise UserError("tune.storage", why, "check that the database is reachable") from e
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def open_study(cfg: TuneRunConfig) -> Any:
    """Create or load the study of this size (seeded TPE), in the configured storage."""
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
        storage=storage_for(cfg.tune.storage, sweep_dir),
        sampler=sampler,
        pruner=pruner,
        direction="minimize",
        load_if_exists=True,
    )
