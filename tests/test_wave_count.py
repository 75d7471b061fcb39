"""benchmarks/wave_count.py: the loop's wave sizes as the replay plays them (half of what is left,
all of it only where half buys nothing) keep to the budget, and the rules read the table as the
script's docstring says."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import planner_choice as pc  # noqa: E402
import wave_count as wc  # noqa: E402
from replay_designs import initial_set, planned  # noqa: E402


def test_the_loops_wave_sizes_keep_to_the_budget_and_hold_back_what_the_replays_spend() -> None:
    pool = pc.world("isoflop", "hoffmann", pc.SEEDS[0])
    init = initial_set(pool)
    loop = planned(pool, init, max_waves=1, as_the_loop=True)
    replay = planned(pool, init, max_waves=1)
    for chosen in (loop, replay):
        assert len(set(chosen)) == len(chosen) and set(init) <= set(chosen)
        assert float(pool.cost[chosen].sum()) <= pool.budget * (1 + 1e-9)
    # one wave: the loop's spends at most half of what the initial set left (or, where half buys
    # nothing, all of it), the replay's last wave all of it
    left = pool.budget - float(pool.cost[init].sum())
    assert float(pool.cost[loop].sum() - pool.cost[init].sum()) <= left / 2 * (1 + 1e-9) or (
        min(pool.cost[i] for i in range(pool.cost.size) if i not in init) > left / 2)
    assert float(pool.cost[replay].sum()) >= float(pool.cost[loop].sum())


def _rows(errors: dict[str, list[float]]) -> list[dict]:
    rows = [{"world": f"w{i}", "setting": "all data", "error": 0.01} for i in range(3)]
    for s, errs in errors.items():
        rows += [{"world": f"w{i}", "setting": s, "error": e, "cover": 0.95, "spent_share": 0.1}
                 for i, e in enumerate(errs)]  # fmt: skip
    return rows


def test_the_summary_scores_each_setting_against_the_whole_pool_and_replay_3() -> None:
    errors = {s: [0.02, 0.02, 0.02] for s in wc.SETTINGS}
    errors["loop 3"] = [0.01, 0.04, 0.02]
    table = {t["setting"]: t for t in wc.summary(_rows(errors))}
    assert table["replay 3"]["geo_ratio"] == 2.0 and table["replay 3"]["worse"] == 0
    assert table["loop 3"]["worse"] == 1 and table["loop 3"]["better"] == 1
    assert table["loop 3"]["worst_ratio"] == 4.0 and abs(table["loop 3"]["cover"] - 0.95) < 1e-12
