"""benchmarks/time_planner.py: both designs keep to the wall allowance on the tuning worlds, and
the device it prices runs on makes a small model's run the longer one at a fixed C."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import planner_choice as pc  # noqa: E402
import time_planner as tp  # noqa: E402


def test_a_small_models_run_takes_longer_than_a_large_ones_at_the_same_compute() -> None:
    pool = pc.world("isoflop", "hoffmann", pc.SEEDS[0])
    secs = tp.device(pool)
    c = float(pool.cost.max())
    small, large = pool.n_params.min(), pool.n_params.max()
    assert secs(small, c / (6 * small)) > 2 * secs(large, c / (6 * large))


@pytest.mark.parametrize("design", tp.DESIGNS)
def test_each_design_keeps_to_both_allowances(design: str) -> None:
    pool = pc.world("ladder", "hoffmann", pc.SEEDS[0])
    chosen, wall_share = tp.replay(pool, design)
    assert len(set(chosen)) == len(chosen) and set(chosen) <= set(range(pool.cost.size))
    assert float(pool.cost[chosen].sum()) <= pool.budget * (1 + 1e-9)
    assert 0 < wall_share <= 1 + 1e-9
