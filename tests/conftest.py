"""Shared fixtures: a tiny, fast run config (synthetic data, ~1 s of training) as both a
RunConfig and the equivalent command-line overrides, a helper to run the CLI, and a writer of
hand-made run records (complete RunRecords, no training)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sweeps import records
from sweeps.config import (
    BudgetConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    ScheduleConfig,
)
from tests.processes import run_module


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread():
    """numpy's and scipy's OpenBLAS at one thread in this process. The fits here solve 5 x 5
    systems, where a second BLAS thread only spins against the training subprocesses for the
    other core: the reference L-BFGS-B loop of test_analysis_laws_fits ran 3.5x faster with one
    (same run, alternated, loaded 2-core Xeon). Child processes keep the user's setting."""
    import scipy.linalg  # noqa: F401  (loads scipy's own OpenBLAS, so the limit reaches it)
    import scipy.optimize  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


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
def hand_record():
    """`write(run_dir, **fields) -> RunRecord`: a complete record written into run_dir (its name
    the run id, its parent's the sweep), plausible defaults for every field not given."""

    def write(run_dir: Path, **fields) -> records.RunRecord:
        n = int(fields.get("n_params", 1000))
        d = int(fields.get("n_tokens", 10000))
        base = {
            "run_id": run_dir.name,
            "sweep": run_dir.parent.name,
            "status": "ok",
            "reason": None,
            "config": {"model": {"n_params": float(n)}, "budget": {"tokens": float(d)}},
            "arch": "gpt",
            "shape": {"n_layer": 1, "d_model": 8},
            "n_params": n,
            "n_params_total": n,
            "n_params_embedding": 0,
            "n_params_non_embedding": n,
            "n_params_matmul": n,
            "n_tokens": d,
            "flops": 6.0 * n * d,
            "flops_budget": None,
            "loss": 3.0,
            "seed": 0,
            "dataset_id": "hand-made",
            "parent_run_id": None,
            "time_s": 2.0,
            "tokens_per_s": d / 2.0,
        }
        record = records.RunRecord(**(base | fields))
        records.write_record(run_dir, record)
        return record

    return write


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
        return run_module("sweeps.train", args, cwd=tmp_path, env=env, timeout=timeout, **kw)

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
