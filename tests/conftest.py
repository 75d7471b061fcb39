"""Shared fixtures: a tiny, fast run config (synthetic data, ~1 s of training) as both a
RunConfig and the equivalent command-line overrides, and a helper to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.config import (
    BudgetConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    ScheduleConfig,
)


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One encoded-data cache for the session, so tests never touch the user's cache."""
    return tmp_path_factory.mktemp("data_cache")


@pytest.fixture
def tiny_cfg(tmp_path: Path, data_cache: Path):
    """A factory of tiny RunConfigs writing under tmp_path; keyword groups override defaults."""

    def make(**over) -> RunConfig:
        parts = {
            "model": ModelConfig(n_params=3e3, context=32),
            "data": DataConfig(name="synthetic", n_val_tokens=2048, cache_dir=str(data_cache)),
            "optim": OptimConfig(batch_size=8),
            "schedule": ScheduleConfig(),
            "budget": BudgetConfig(tokens=2e4),
        }
        top = dict(
            n_evals=2,
            progress="none",
            precision="fp32",
            device="cpu",
            results_dir=str(tmp_path / "results"),
        )
        for key, value in over.items():
            (parts if key in parts else top)[key] = value
        return RunConfig(**parts, **top)

    return make


@pytest.fixture
def tiny_overrides(tmp_path: Path, data_cache: Path) -> list[str]:
    """Command-line overrides for the same tiny run as `tiny_cfg()`."""
    return [
        "data=synthetic",
        f"data.cache_dir={data_cache}",
        "data.n_val_tokens=2048",
        "model.context=32",
        "model.n_params=3e3",
        "budget.tokens=2e4",
        "optim.batch_size=8",
        "n_evals=2",
        "progress=none",
        "precision=fp32",
        "device=cpu",
        f"results_dir={tmp_path / 'results'}",
    ]


@pytest.fixture
def cli(tmp_path: Path):
    """Run `python -m sweeps.train ARGS` in a fresh process (cwd tmp_path), as the user does."""

    def run(args: list[str], *, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("HYDRA_FULL_ERROR", None)
        return subprocess.run(
            [sys.executable, "-m", "sweeps.train", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kw,
        )

    return run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu`-marked tests run only where CUDA is (benchmarks/device_check.sh runs them there)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
