"""How many waves should the replay's planned design run? On the planner's tuning worlds, not on
the points the replay reports.

    python benchmarks/wave_count.py [--json OUT.json] [--jobs 2]

`benchmarks/adaptive_replay.py` replays our loop in at most `replay_designs.MAX_WAVES` = 3 waves
(each spends half of what is left, the last all of it). Three was a cap for the benchmark's run
time, not the loop's: `python -m sweeps.adaptive` ran up to `--max-waves 8` waves, each at most
half of what is left (`sweeps.sweep.loop_rules.WAVE_FRACTION`), and refits after each. Li et al.'s
D-optimal and V-optimal baselines refit after every single run. So the replay measured a loop
with fewer refits than the one users ran. (After this script ran, the loop's default became 3
waves, the last spending all that is left: the "replay 3" setting below.)

This script replays planned on the 24 worlds of `benchmarks/planner_choice.py` (four law forms,
seeds 10-12, an N ladder like Gadre et al.'s tables and IsoFLOP slices like Porian et al.'s; none
of them is reported by the replay), 10% of each pool's compute, scored as planner_choice scores
them: planned's mean |error| at the targets over the whole pool's (geometric mean over worlds)
and 95% coverage of noisy target draws. Settings:

- "replay 3", "replay 8": the replay's waves (the last gets all that is left), at most 3 or 8;
- "loop 3", "loop 4", "loop 8": the waves as `sweeps.adaptive` sizes them (half of what is left,
  all of it only where half buys nothing; `replay_designs.planned(as_the_loop=True)`), at most 3,
  4 (the demo's `MAX_WAVES`) or 8 (the loop's default).

Two rules, each written before the settings it judges were first run:
1. the replay takes 8 waves if "replay 8"'s geometric-mean ratio is no worse than "replay 3"'s by
   more than 1%, its coverage is at least 90%, and the replay then still runs in under 5 minutes
   on 2 cores; otherwise it keeps 3 (run first: it kept 3);
2. the loop's default `--max-waves` becomes the "loop" setting with the smallest geometric-mean
   ratio among those with coverage of at least 90%; a tie within 1% goes to the current 8.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from planner_choice import against, over_worlds, print_against, world_parser  # noqa: E402
from replay_designs import Pool, initial_set, planned, score  # noqa: E402

SETTINGS = {"replay 3": (3, False), "replay 8": (8, False), "loop 3": (3, True),
            "loop 4": (4, True), "loop 8": (8, True)}  # name: (max_waves, as_the_loop)


def _job(pool: Pool) -> list[dict[str, Any]]:
    """The whole pool and planned at each setting, on one world."""
    init = initial_set(pool)
    rows = [{"world": pool.name, "setting": "all data"} | score(pool, list(range(pool.cost.size)))]
    for name, (waves, loop) in SETTINGS.items():
        chosen = planned(pool, init, max_waves=waves, as_the_loop=loop)
        rows.append({"world": pool.name, "setting": name} | score(pool, chosen))
    return rows


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per setting: geometric-mean and worst ratio to the whole pool, mean error,
    coverage, compute used, and in how many worlds its error is above / below "replay 3"'s by
    more than 1% (planner_choice.against)."""
    return against(rows, SETTINGS, "replay 3")


def main(argv=None) -> int:
    args = world_parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    n_worlds, rows = over_worlds(_job, args.jobs)
    table = summary(rows)
    print(f"{n_worlds} tuning worlds, 10% of each pool's compute; planned's error / the whole "
          "pool's")  # fmt: skip
    print_against(table, rows, summary, "replay 3")
    by = {t["setting"]: t for t in table}
    r3, r8 = by["replay 3"], by["replay 8"]
    keep8 = r8["geo_ratio"] <= r3["geo_ratio"] * 1.01 and r8["cover"] >= 0.9 and not r8["failed"]
    print(f"rule 1: the replay {'may take 8 waves (check its run time)' if keep8 else 'keeps 3'}")
    loops = [by[k] for k in ("loop 3", "loop 4", "loop 8") if by[k]["cover"] >= 0.9]
    best = min(loops, key=lambda t: t["geo_ratio"]) if loops else None
    if best is not None and by["loop 8"] in loops:
        best = by["loop 8"] if by["loop 8"]["geo_ratio"] <= best["geo_ratio"] * 1.01 else best
    print(f"rule 2: the loop's default --max-waves: {best['setting'] if best else 'none covers'}")
    print(f"({time.perf_counter() - t0:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "table": table}, indent=1,
                                        default=float) + "\n")  # fmt: skip
    return 0 if not math.isnan(r3["geo_ratio"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
