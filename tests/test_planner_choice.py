"""benchmarks/planner_choice.py: its worlds are other than the replay's, and its rule picks the
setting with the smallest geometric mean error ratio among those that cover, the current one on
a tie."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import adaptive_replay as ar  # noqa: E402
import planner_choice as pc  # noqa: E402

from analysis.planning.select import COST_EXP, MIN_GAIN  # noqa: E402


def test_the_tuning_worlds_are_other_worlds_than_the_replays_with_other_targets() -> None:
    """Other seeds, other pool shapes, other targets: a design point may recur (the isoflop
    worlds' smallest budget is the replay's), with its own noise draw."""
    replay = [ar.synthetic_pool(t, s) for t in ar.TRUTHS for s in range(ar.N_SEEDS)]
    replay_targets = {(round(n, 3), round(d, 3)) for p in replay for n, d in p.targets}
    replay_budgets = {round(c, -10) for p in replay for c in p.cost}
    for shape in ("ladder", "isoflop"):
        pool = pc.world(shape, "hoffmann", pc.SEEDS[0])
        assert pool.share == 0.10 and pool.targets.shape[0] >= 3
        assert not {(round(n, 3), round(d, 3)) for n, d in pool.targets} & replay_targets
        assert {round(c, -10) for c in pool.cost} != replay_budgets
        beyond = (pool.targets[:, 0].min() > pool.n_params.max()  # ladder: N beyond every run
                  if shape == "ladder" else  # isoflop: C beyond every run
                  6 * (pool.targets[:, 0] * pool.targets[:, 1]).min() > pool.cost.max())
        assert beyond, shape
    assert not set(pc.SEEDS) & set(range(ar.N_SEEDS))


def _rows(errors: dict[str, list[float]], cover: dict[str, float]) -> list[dict]:
    rows = [{"world": f"w{i}", "setting": "all data", "error": 0.01} for i in range(3)]
    for s, errs in errors.items():
        g, c = (float(x.split("=")[1]) for x in s.split())
        rows += [{"world": f"w{i}", "setting": s, "min_gain": g, "cost_exp": c, "error": e,
                  "cover": cover[s], "spent_share": 0.1} for i, e in enumerate(errs)]  # fmt: skip
    return rows


def test_the_rule_takes_the_smallest_geometric_mean_ratio_among_settings_that_cover() -> None:
    cur = f"min_gain={MIN_GAIN:g} cost_exp={COST_EXP:g}"
    a, b = "min_gain=0.5 cost_exp=2", "min_gain=0.25 cost_exp=3"
    errors = {cur: [0.02, 0.02, 0.02], a: [0.01, 0.012, 0.011], b: [0.005, 0.005, 0.005]}
    chosen, table = pc.choose_setting(_rows(errors, {cur: 0.95, a: 0.93, b: 0.8}))
    assert chosen == a  # b is sharper but covers 80% of its targets: not eligible
    row = next(t for t in table if t["setting"] == a)
    assert np.isclose(row["geo_ratio"], np.exp(np.mean(np.log([1.0, 1.2, 1.1]))))
    # within 1% of the best, the current setting stays
    errors[cur] = [0.0101, 0.012, 0.011]
    assert pc.choose_setting(_rows(errors, {cur: 0.95, a: 0.93, b: 0.8}))[0] == cur
