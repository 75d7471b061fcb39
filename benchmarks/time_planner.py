"""Does pricing runs in seconds help where a wall-time allowance binds? On the planner's tuning
worlds, not the points the replay reports.

    python benchmarks/time_planner.py [--json OUT.json] [--jobs 2]

The loop gives each wave a FLOP allowance and, with `--max-wall-seconds`, a wall time. Until
c35f37d the planner ranked runs per FLOP and `sweeps.next` cut the wave afterwards to the wall
time, dropping the last-ranked runs; now the planner is handed each run's seconds and ranks by the
larger of an item's two shares (analysis/planning/select.py). This script replays both on the 24
worlds of `benchmarks/planner_choice.py` (four law forms, seeds 10-12, two pool shapes; none of
them is reported by `benchmarks/adaptive_replay.py`), each run priced by a device whose
throughput falls for small models, as a CPU's (and a GPU's at low utilisation) does:

    seconds(N, D) = D * (N + N0) / R,  N0 = the pool's geometric-mean size

(per-token time flat below N0, proportional to N above it: in one demo run on 2 CPU cores, two
runs at a time, a token took 6.8 us at N = 3,584, 9.9 us at 32,768 and 29.5 us at 142,848, as
the trainer printed them (147,591, 100,998 and 33,931 tokens/s); roughly (N + 50,000) x 1.5e-10
s). R
cancels: the allowances are shares. Budget: 10% of the pool's FLOPs, as the replay's, and 10% of
its seconds on two workers (`WALL_SHARE`); each wave gets half of what is left of each, the last
wave all of it, as the replay's waves do. Designs at those allowances:

- "flops, trimmed": the FLOP plan, its last-ranked runs dropped until the wave's schedule fits;
- "timed": the plan that knows the seconds (`choose(..., seconds=, max_wall_s=)`).

Scored as planner_choice scores: mean |error| at the targets against the noiseless truth, over the
fit on the whole pool's (geometric mean over worlds), and 95% coverage of noisy target draws. The
rule, written before the run: "timed" is kept if its geometric-mean ratio is no worse than
"flops, trimmed"'s by more than 1% and its coverage is at least 90%.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from planner_choice import over_worlds, versus_whole_pool, world_parser  # noqa: E402
from replay_designs import MAX_WAVES, Pool, initial_set, score  # noqa: E402

from analysis.planning.seconds import RunSeconds  # noqa: E402
from analysis.planning.select import Item, choose  # noqa: E402
from analysis.planning.value import target_state  # noqa: E402
from analysis.prediction.recommend import recommend  # noqa: E402

WALL_SHARE = 0.10
WORKERS = 2
DESIGNS = ("flops, trimmed", "timed")


def device(pool: Pool) -> RunSeconds:
    """seconds(N, D) = D (N + N0) (module docstring; R = 1), as a RunSeconds table."""
    n0 = float(np.exp(np.mean(np.log(pool.n_params))))
    sizes = np.geomspace(pool.n_params.min() / 10, pool.n_params.max() * 1e3, 40)
    return RunSeconds(per_run_s=0.0, eval_tokens=0.0, n_params=tuple(float(n) for n in sizes),
                      per_token_s=tuple(float(n + n0) for n in sizes), workers=WORKERS)  # fmt: skip


def replay(pool: Pool, design: str) -> tuple[list[int], float]:
    """The planner in waves (replay_designs.planned's), with a wall allowance as well; (the runs
    chosen, the wall time they took on the workers, wave by wave, summed)."""
    secs = device(pool)
    all_s = secs.runs(pool.n_params, pool.n_tokens)
    wall_budget = WALL_SHARE * secs.wall(all_s)
    chosen, used = initial_set(pool), 0.0
    used = secs.wall([all_s[i] for i in chosen])
    for wave in range(MAX_WAVES):
        left = pool.budget - float(pool.cost[chosen].sum())
        wall_left = wall_budget - used
        taken = set(chosen)
        avail = [i for i in range(pool.cost.size) if i not in taken and pool.cost[i] <= left]
        if not avail or wall_left <= 0:
            break
        state = target_state(recommend(pool.table(chosen)), pool.targets)
        items = [Item((float(pool.n_params[i]),), (float(pool.n_tokens[i]),), "pool", f"run {i}")
                 for i in avail]  # fmt: skip
        cheapest = min(it.cost for it in items)
        last = wave == MAX_WAVES - 1
        allowance = left if last else min(left, max(left / 2, cheapest))
        wall = wall_left if last else wall_left / 2
        if design == "timed":
            picked = list(choose(state, items, allowance, seconds=secs, max_wall_s=wall).items)
        else:
            picked = list(choose(state, items, allowance).items)
            while picked and secs.wall([all_s[int(p.why[4:])] for p in picked]) > wall:
                picked.pop()  # sweeps.next's trim: the last-ranked first
        if not picked:
            break
        new = [int(p.why[4:]) for p in picked]
        used += secs.wall([all_s[i] for i in new])
        chosen += new
    return chosen, used / wall_budget


def _job(pool: Pool) -> list[dict[str, Any]]:
    rows = [{"world": pool.name, "design": "all data"} | score(pool, list(range(pool.cost.size)))]
    for d in DESIGNS:
        chosen, wall = replay(pool, d)
        rows.append({"world": pool.name, "design": d, "wall_share": wall} | score(pool, chosen))
    return rows


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ref = {r["world"]: r["error"] for r in rows if r["design"] == "all data"}
    out = []
    for d in DESIGNS:
        rs = [r for r in rows if r["design"] == d]
        score = versus_whole_pool(rs, ref)
        out.append({"design": d, "flops_share": score.pop("spent_share"),
                    "wall_share": float(np.mean([r["wall_share"] for r in rs])),
                    "wins": int(sum(a["error"] < b["error"] for a, b in zip(
                        rs, [r for r in rows if r["design"] not in (d, "all data")],
                        strict=True)))} | score)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    args = world_parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    n_worlds, rows = over_worlds(_job, args.jobs)
    table = summary(rows)
    print(f"{n_worlds} tuning worlds; {WALL_SHARE:.0%} of each pool's FLOPs and of its seconds "
          f"on {WORKERS} workers; error / the whole pool's (geometric mean over worlds)")
    print("| design | geo. mean ratio | mean abs error | 95% cover | FLOPs used | wall used | "
          "worlds better than the other |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for t in table:
        print(f"| {t['design']} | {t['geo_ratio']:.2f} | {t['error']:.2%} | {t['cover']:.1%} | "
              f"{t['flops_share']:.1%} | {t['wall_share']:.0%} | {t['wins']} |")  # fmt: skip
    trimmed, timed = table
    keep = timed["geo_ratio"] <= trimmed["geo_ratio"] * 1.01 and timed["cover"] >= 0.9
    print(f"timed {'kept' if keep else 'NOT kept'} by the rule (module docstring)")
    print(f"({time.perf_counter() - t0:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "table": table}, indent=1,
                                        default=float) + "\n")  # fmt: skip
    return 0 if math.isfinite(timed["geo_ratio"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
