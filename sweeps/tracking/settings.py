"""The `tracker` node of the run config: which trackers mirror each run, and their settings.

Off by default. On the command line: `tracker=mlflow`, several at once
`tracker=[tensorboard,mlflow]` (Hydra selects several options of the `tracker` group; each sets
its own flag), or the flags themselves (`tracker.wandb=true`). The node is an execution knob: it
never enters a run id, and the record does not carry it (a record is the same with or without
trackers).
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from sweeps.errors import UserError

__all__ = [
    "BACKENDS",
    "TrackerConfig",
    "check_installed",
    "mlflow_template",
    "mlflow_uri",
    "tracker_dir",
    "wandb_mode",
]

# backend -> (the module its code imports, the pyproject extra that installs it)
BACKENDS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
}
WANDB_MODES = ("", "offline", "online", "disabled")


@dataclass
class TrackerConfig:
    """Trackers that mirror every run (records stay the source of truth); docs/trackers.md."""

    tensorboard: bool = False  # log dir <results>/<sweep>/tensorboard/<run_id>
    wandb: bool = False  # group = sweep, id = <sweep>-<run_id>; offline unless configured
    mlflow: bool = False  # experiment = sweep, one run per run id (tag run_id)
    log_every: int = 0  # steps between training-metric points; 0 = about 100 points per run
    peak_flops_per_s: float | None = None  # device peak for MFU; None = a matmul probe per process
    wandb_project: str = "scaling-sweeps"
    wandb_entity: str | None = None
    wandb_mode: str = ""  # "" = $WANDB_MODE if set, else offline; online | offline | disabled
    mlflow_uri: str = (
        ""  # "" = $MLFLOW_TRACKING_URI if set, else sqlite:///<results>/<sweep>/mlflow.db
    )
    tags: dict[str, str] = field(default_factory=dict)  # extra tags on every tracker run

    def __post_init__(self) -> None:
        if self.log_every < 0:
            raise UserError(
                "tracker.log_every", "must be >= 0", "e.g. tracker.log_every=10 (0 = auto)"
            )
        if self.peak_flops_per_s is not None and not (
            math.isfinite(self.peak_flops_per_s) and self.peak_flops_per_s > 0
        ):
            raise UserError(
                "tracker.peak_flops_per_s",
                f"must be a positive FLOP/s, got {self.peak_flops_per_s}",
                "e.g. tracker.peak_flops_per_s=989e12 (H100 bf16), or leave it unset to measure",
            )
        if self.wandb_mode not in WANDB_MODES:
            raise UserError(
                "tracker.wandb_mode",
                f"unknown mode {self.wandb_mode!r}",
                "use offline, online, disabled, or '' ($WANDB_MODE, else offline)",
            )
        check_installed(self.backends)

    @property
    def backends(self) -> list[str]:
        """The chosen trackers, in a fixed order."""
        return [name for name in BACKENDS if getattr(self, name)]


def check_installed(names: list[str]) -> None:
    """One line naming the extra to install when a chosen tracker's package is missing (called
    when the config is validated, so before any data is loaded or any folder written)."""
    for name in names:
        module, extra = BACKENDS[name]
        if importlib.util.find_spec(module) is None:
            raise UserError(
                f"tracker.{name}",
                f"needs the {module} package, which is not installed",
                f"pip install -e '.[{extra}]' (or pip install 'scaling-sweeps[{extra}]'), "
                f"or drop tracker={name}",
            )


def tracker_dir(results_dir: str | os.PathLike[str], sweep: str, name: str) -> Path:
    """Where a tracker keeps its local files for a sweep: <results>/<sweep>/<name>."""
    return Path(results_dir) / sweep / name


def mlflow_uri(cfg: TrackerConfig, results_dir: str | os.PathLike[str], sweep: str) -> str:
    """tracker.mlflow_uri, else $MLFLOW_TRACKING_URI, else a SQLite file beside the sweep's runs."""
    if cfg.mlflow_uri:
        return cfg.mlflow_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(Path(results_dir) / sweep / 'mlflow.db').resolve()}"


def mlflow_template(version: str) -> Path:
    """The empty, migrated SQLite store that new MLflow stores are copied from, one per MLflow
    version, in the project's cache ($SCALING_SWEEPS_CACHE, else the user cache folder)."""
    root = os.environ.get("SCALING_SWEEPS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "scaling-sweeps"
    )
    folder = Path(root).expanduser() / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"empty-store-{version}.db"


def wandb_mode(cfg: TrackerConfig) -> str:
    """tracker.wandb_mode, else $WANDB_MODE, else offline (nothing leaves the machine unasked)."""
    return cfg.wandb_mode or os.environ.get("WANDB_MODE", "") or "offline"
