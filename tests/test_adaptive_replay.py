"""benchmarks/adaptive_replay.py's machinery (its designs in benchmarks/replay_designs.py) on a
tiny synthetic world: every design stays within the budget, the planned design picks pool runs
only, and every score is finite."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import adaptive_replay as ar  # noqa: E402
import replay_designs as rd  # noqa: E402

BUDGETS = np.array([1e15, 3.16e15, 1e16, 3.16e16])
STEPS = 2.0 ** np.arange(-2, 3)  # 5 sizes per budget


@pytest.mark.slow
def test_every_design_stays_within_the_budget_and_scores_finitely() -> None:
    pool = replace(ar.synthetic_pool("hoffmann", 1, budgets=BUDGETS, steps=STEPS), share=0.3)
    init = rd.initial_set(pool)
    assert rd._fits(pool, init)
    chosen = {
        "planned": rd.planned(pool, init, max_waves=2),
        "random": rd.random_design(pool, init, np.random.default_rng(0)),
        "cheapest": rd.cheapest_first(pool, init),
        "D-opt": rd.li_greedy(pool, init, "D-opt"),
        "V-opt": rd.li_greedy(pool, init, "V-opt"),
    }
    for design, idx in chosen.items():
        assert set(init) <= set(idx), design
        assert len(set(idx)) == len(idx), design  # no run bought twice
        assert set(idx) <= set(range(pool.cost.size)), design  # only the pool's runs
        assert pool.cost[idx].sum() <= pool.budget * (1 + 1e-9), design
    planned_flops = float(pool.cost[chosen["planned"]].sum())
    grid = rd.grid_design(pool, planned_flops, per_budget=STEPS.size)
    assert len(grid) >= 2 * rd.GRID_SIZES
    for design in ("planned", "cheapest"):  # recommend() on each: seconds apiece
        s = rd.score(pool, chosen[design])
        assert "failed" not in s, design
        assert math.isfinite(s["error"]) and 0 <= s["cover"] <= 1, design
        assert all(math.isfinite(e) for e in s["each"]), design
