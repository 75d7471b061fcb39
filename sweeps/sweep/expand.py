"""Expand a sweep command into its jobs exactly as Hydra's BasicSweeper and launchers would.

`python -m sweeps.train -m <overrides>` composes a master config, then BasicSweeper joins
`hydra.sweeper.params` (first) and the command-line overrides (after; the same key replaces a
param in place), takes the Cartesian product in that order, and each launcher recomposes one job
from the master's hydra overrides plus that job's overrides. This module calls the same Hydra
code (OverridesParser, BasicSweeper.split_arguments, ConfigLoader.load_sweep_config), so
`sweeps.plan`, the progress callback and the tests see the very jobs a launch would run.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from sweeps.errors import UserError
from sweeps.sweep.compose import register_configs

__all__ = [
    "Job",
    "Expansion",
    "sweep_overrides",
    "check_one_folder",
    "sweep_lines",
    "check_n_jobs",
    "expand_sweep",
    "job_overrides",
    "hydra_context",
    "task_config",
]

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # what sweeps/train.py's main reads
CONFIG_NAME = "config"


@dataclass(frozen=True)
class Job:
    """One job of a sweep: its overrides (as the launcher passes them) and its task config."""

    index: int
    overrides: list[str]
    cfg: DictConfig  # the job's config without the `hydra` node, as the task function sees it


@dataclass(frozen=True)
class Expansion:
    master: DictConfig  # the multirun master config, with its `hydra` node
    jobs: list[Job]


FOLDER_KEYS = ("results_dir", "sweep_name")  # one sweep, one folder


def check_one_folder(overrides: Sequence[str]) -> None:
    """UserError when an override sweeps results_dir or sweep_name (`results_dir=a,b`): Hydra
    would launch the grid once per folder and put its own files in a third one."""
    try:
        parsed = OverridesParser.create().parse_overrides([o for o in overrides if "=" in o])
    except Exception:  # noqa: BLE001 - a malformed override is refused where it is composed
        return
    last = {o.key_or_group: o for o in parsed}  # a later line of a key replaces an earlier one
    for o in last.values():  # (a command-line value replaces a preset's sweeper param)
        if o.key_or_group in FOLDER_KEYS and o.is_sweep_override():
            raise UserError(
                o.key_or_group,
                f"is swept ({o.input_line}): one sweep writes one folder",
                "run one command per folder, or quote a path with a comma: "
                f"'{o.key_or_group}=\"a,b\"'",
            )


def sweep_lines(master: DictConfig) -> list[str]:
    """The lines BasicSweeper expands: a preset's `hydra.sweeper.params`, then the command line."""
    sweeper = master.hydra.sweeper
    params = OmegaConf.to_container(sweeper.params) if sweeper.get("params") else {}
    task = OmegaConf.to_container(master.hydra.overrides.task)
    assert isinstance(params, dict) and isinstance(task, list)
    named: dict[str, Any] = {str(k): v for k, v in params.items()}
    return [f"{k}={v}" for k, v in named.items()] + [str(t) for t in task]


def check_n_jobs(n_jobs: Any) -> None:
    """UserError for joblib's n_jobs 0 or below -1 (joblib's own traceback else)."""
    if isinstance(n_jobs, int) and (n_jobs == 0 or n_jobs < -1):
        raise UserError("hydra.launcher.n_jobs", f"must be >= 1 (or -1: every core), got "
                        f"{n_jobs}", "e.g. hydra.launcher.n_jobs=2")  # fmt: skip


def sweep_overrides(
    params: Mapping[str, Any] | None, arguments: Sequence[str], *, config_loader: Any = None
) -> list[list[str]]:
    """BasicSweeper's job list: `params` then `arguments`, Cartesian product, Hydra's own parser
    (with the config loader, `glob(...)` over config groups works as in a launch)."""
    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(lines)
    (batch,) = BasicSweeper.split_arguments(parsed, None)
    return batch


def job_overrides(master: DictConfig, *, config_loader: Any = None) -> list[list[str]]:
    """The job overrides of a composed multirun master config (what its sweeper would launch)."""
    sweeper = master.hydra.sweeper
    target = sweeper.get("_target_", "")
    if not str(target).endswith("BasicSweeper"):
        raise UserError(
            "hydra/sweeper",
            f"only Hydra's basic sweeper can be planned, this config uses {target}",
            "plan the grid with the basic sweeper (drop the hydra/sweeper override)",
        )
    return sweep_overrides(None, sweep_lines(master), config_loader=config_loader)


@contextmanager
def hydra_context(config_dir: str | Path | None = None) -> Iterator[Any]:
    """Hydra's `Hydra` object over conf/ (initialised here unless one already is; then reused)."""
    register_configs()
    gh = GlobalHydra.instance()
    if gh.is_initialized() and config_dir is None:
        yield gh.hydra
        return
    if gh.is_initialized():
        gh.clear()
    with initialize_config_dir(config_dir=str(config_dir or CONF_DIR), version_base="1.3"):
        yield GlobalHydra.instance().hydra


def task_config(cfg: DictConfig) -> DictConfig:
    """A job's config as its task function sees it: hydra.core.utils.run_job hands the task
    function a copy without the hydra node."""
    task = copy.deepcopy(cfg)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


def expand_sweep(
    overrides: Sequence[str], *, config_dir: str | Path | None = None, compose_jobs: bool = True
) -> Expansion:
    """Compose the multirun master config and every job config, training nothing.

    Raises Hydra's own errors (ConfigCompositionException, OverrideParseException) for a bad
    override, exactly where `python -m sweeps.train -m` would fail.
    """
    with hydra_context(config_dir) as hy:
        master = hy.compose_config(
            config_name=CONFIG_NAME,
            overrides=list(overrides),
            run_mode=RunMode.MULTIRUN,
            from_shell=True,
        )
        jobs = []
        for i, ovr in enumerate(job_overrides(master, config_loader=hy.config_loader)):
            cfg = (
                task_config(hy.config_loader.load_sweep_config(master, list(ovr)))
                if compose_jobs
                else OmegaConf.create({})
            )
            jobs.append(Job(index=i, overrides=list(ovr), cfg=cfg))
    return Expansion(master=master, jobs=jobs)
