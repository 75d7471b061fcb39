"""benchmarks/criterion_terms.py: "no reach term" chooses with k = 0 (and nothing else changed),
and the rule drops the term only where it loses by more than 1% and the other setting covers."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import criterion_terms as ct  # noqa: E402
import planner_choice as pc  # noqa: E402
import replay_designs as rd  # noqa: E402


def test_no_reach_term_chooses_with_k_zero_and_keeps_to_the_budget(monkeypatch) -> None:
    pool = pc.world("isoflop", "hoffmann", pc.SEEDS[0])  # its back-test measures k > 0
    init = rd.initial_set(pool)
    seen: list[float] = []
    real = rd.choose

    def spy(state, *a, **kw):
        seen.append(state.k)
        return real(state, *a, **kw)

    monkeypatch.setattr(rd, "choose", spy)
    chosen = rd.planned(pool, init, max_waves=1, reach_term=False)
    assert seen and all(k == 0.0 for k in seen)
    assert set(init) <= set(chosen) and float(pool.cost[chosen].sum()) <= pool.budget * (1 + 1e-9)
    seen.clear()
    rd.planned(pool, init, max_waves=1)
    assert seen and all(k > 0 for k in seen)  # the current criterion keeps its term


def _table(cur: float, alt: float, cover: float = 0.95) -> list[dict]:
    return [{"setting": "current", "geo_ratio": cur, "cover": 0.95, "failed": 0},
            {"setting": "no reach term", "geo_ratio": alt, "cover": cover, "failed": 0}]


def test_the_rule_drops_the_term_only_past_one_percent_and_with_coverage() -> None:
    assert ct.drops_the_term(_table(2.0, 1.9))
    assert not ct.drops_the_term(_table(2.0, 1.99))  # within 1%: the term stays
    assert not ct.drops_the_term(_table(2.0, 1.5, cover=0.85))
    assert not ct.drops_the_term(_table(1.59, 2.00))  # what the tuning worlds gave
