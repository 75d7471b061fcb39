"""Does the criterion's extrapolation term help the planner choose? On the planner's tuning
worlds, not on the points the replay reports.

    python benchmarks/criterion_terms.py [--json OUT.json] [--jobs 2]

The planner ranks runs by how much they lower the target's sigma^2 = sd_boot^2 + s0^2 + (k x^g)^2
(analysis/planning/value.py). The last term is the calibrated extrapolation error at distance x
beyond the runs' reach, the largest of log(N / N_max), log(D / D_max) and log(C / C_max): one run
that reaches furthest in any of the three lowers it for every target, whatever else it tells the
fit. On the replay's Gadre pools the planner's first choice was such a run (the 154M model at 320
tokens per parameter, the pool's largest N x D) where Li et al.'s V- and D-optimal designs took
the 412M runs, and its error was 4 to 15 times theirs. That was seen on a reported pool, so this
script judges the term on other worlds: the 24 of `benchmarks/planner_choice.py` (four law forms,
seeds 10-12, an N ladder like Gadre et al.'s tables and IsoFLOP slices like Porian et al.'s), 10% of
each pool's compute, the replay's waves, scored as planner_choice scores them (planned's mean
|error| at the targets over the whole pool's, geometric mean over worlds; 95% coverage of noisy
target draws).

Settings: "current" (both terms) and "no reach term" (k = 0 while choosing; the final fit and
its interval are recommend()'s as always). Li et al.'s V-optimal and D-optimal designs
(`replay_designs.li_greedy`) are printed beside them for reference; they are not candidates.

`--terms` prints instead, for each tuning world and (for comparison only: they take no part in
the rule) the replay's three Gadre pools, the criterion's terms at the initial set: k and growth
g, the target's bootstrap sd and the extrapolation term k x^g (one recommend() each).

The rule, written before any of these was run: the criterion drops the reach term only if "no
reach term" has a geometric-mean ratio below the current's by more than 1%, coverage of at least
90% and no failed fit; and then only if, in `benchmarks/loop_parts.py`'s closed loop (the demo's
loop through `propose` on its own 24 worlds, where extending the ladder toward the target is
what the term values), its geometric-mean error is no worse than the current's by more than 1%
with coverage of at least 90%. Otherwise the term stays.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from interval_calibration import TRUTHS  # noqa: E402
from planner_choice import (  # noqa: E402
    SEEDS,
    against,
    over_worlds,
    print_against,
    world,
    world_parser,
)
from replay_designs import Pool, initial_set, li_greedy, planned, score  # noqa: E402

from analysis.planning.value import target_state  # noqa: E402
from analysis.prediction.ladder import distance  # noqa: E402
from analysis.prediction.recommend import recommend  # noqa: E402

SETTINGS = ("current", "no reach term", "V-opt", "D-opt")


def _job(pool: Pool) -> list[dict[str, Any]]:
    """The whole pool, planned with and without the term, and Li et al.'s designs, on one world."""
    init = initial_set(pool)
    rows = [{"world": pool.name, "setting": "all data"} | score(pool, list(range(pool.cost.size)))]
    designs = {"current": lambda: planned(pool, init),
               "no reach term": lambda: planned(pool, init, reach_term=False),
               "V-opt": lambda: li_greedy(pool, init, "V-opt"),
               "D-opt": lambda: li_greedy(pool, init, "D-opt")}  # fmt: skip
    for name, design in designs.items():
        rows.append({"world": pool.name, "setting": name} | score(pool, design()))
    return rows


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per setting (planner_choice.against), worse / better counted against "current"."""
    return against(rows, SETTINGS, "current")


def drops_the_term(table: list[dict[str, Any]]) -> bool:
    """The rule's first part (module docstring): "no reach term" beats the current criterion's
    geometric-mean ratio by more than 1%, covers at least 90% and no fit failed."""
    by = {t["setting"]: t for t in table}
    cur, alt = by["current"], by["no reach term"]
    return (alt["geo_ratio"] < cur["geo_ratio"] * 0.99 and alt["cover"] >= 0.9
            and not alt["failed"])  # fmt: skip


def _terms(pool: Pool) -> dict[str, Any]:
    """The criterion's terms at the pool's initial set (module docstring, --terms)."""
    state = target_state(recommend(pool.table(initial_set(pool))), pool.targets)
    x = distance(state.reach, state.targets[:, 0], state.targets[:, 1])
    return {"world": pool.name, "k": state.k, "growth": state.growth,
            "sd_boot": np.sqrt(state.boot_var),
            "reach_term": state.k * x**state.growth}  # fmt: skip


def print_terms(jobs: int) -> None:
    """--terms: each tuning world's and each Gadre pool's terms, and how many tuning worlds have
    an extrapolation term above their largest bootstrap sd."""
    from adaptive_replay import shipped_pools

    pools = [world(s, t, seed) for s in ("ladder", "isoflop") for t in TRUTHS for seed in SEEDS]
    gadre = [p for p in shipped_pools() if p.name.startswith("gadre")]
    with ProcessPoolExecutor(max(jobs, 1)) as ex:
        rows = list(ex.map(_terms, pools + gadre))
    print("| world | k | g | sd_boot at the targets | k x^g at the targets |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        f = lambda v: ", ".join(f"{x:.3f}" for x in v)  # noqa: E731
        print(f"| {r['world']} | {r['k']:.4f} | {r['growth']:g} | {f(r['sd_boot'])} | "
              f"{f(r['reach_term'])} |")  # fmt: skip
    for shape in ("ladder", "isoflop"):
        sub = [r for r in rows if r["world"].startswith(shape)]
        above = sum(float(r["reach_term"].max()) > float(r["sd_boot"].max()) for r in sub)
        zero = sum(r["k"] == 0 for r in sub)
        print(f"{shape} worlds: k x^g above sd_boot in {above} of {len(sub)}; k = 0 in {zero}")


def main(argv=None) -> int:
    ap = world_parser(__doc__)
    ap.add_argument("--terms", action="store_true", help="print the criterion's terms instead")
    args = ap.parse_args(argv)
    if args.terms:
        print_terms(args.jobs)
        return 0
    t0 = time.perf_counter()
    n_worlds, rows = over_worlds(_job, args.jobs)
    table = summary(rows)
    print(f"{n_worlds} tuning worlds, 10% of each pool's compute; error / the whole pool's")
    print_against(table, rows, summary, "current")
    print("rule, first part: " + ("drop the term if benchmarks/loop_parts.py agrees"
                                  if drops_the_term(table) else "the term stays"))  # fmt: skip
    print(f"({time.perf_counter() - t0:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "table": table}, indent=1,
                                        default=float) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
