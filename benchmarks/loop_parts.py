"""What the planner offers where a wall-time allowance leaves no slice of a new budget room: the
closed loop (`analysis.planning.propose`, wave after wave, as `sweeps.adaptive` runs it) on
worlds of its own, not the demo.

    python benchmarks/loop_parts.py [--json OUT.json] [--jobs 2]

Where time binds, the planner offers the next budgets' slices whole or as their three central
sizes (analysis/planning/candidates.py TIMED_PARTS). When even the quickest of those does not fit
the time left, it proposes nothing and the loop stops with that time unspent (the README's demo
on 8f4d280 stopped with 232 of 387 s left, docs/planning.md). Four answers, each a setting of
candidates.LAST_RESORT_PARTS and LAST_RESORT_STEPS, offered only where nothing else fits:

- "none": nothing more (the code before this script);
- "smaller parts": the slice's centre with the size above it, with the size below it, or alone;
- "nearer budget": slices (whole or three central) at half a ladder step above the largest budget
  (the geometric middle of the step), which cost about half as much;
- "both".

Worlds: the four law forms of benchmarks/interval_calibration.py (the only ones we have), seeds
20-22 with 0.4%, 0.8% and 1.2% log-normal noise, and two devices: 24 worlds, none of them used by
another benchmark. Each world's loop is the demo's, scaled:

- seed grid: 3 budgets C0 x (1, 10/3, 10), C0 = 1e17, 3 sizes each, N*(C) x s x (1/2.45, 1, 2.45)
  (the demo's tokens-per-parameter spread), s = the world's offset, log-uniform in [0.4, 2.5]
  (some grids then have their minimum at an edge, as the demo's does); the smallest model the
  "sweep" can build: half the smallest seed size;
- allowances: the fixed grid the demo replaces (5 sizes N*(C) s x 2^(-2..2) at C0 x (10/3, 10,
  100/3), and 2 seeds of the smallest budget's centre): its FLOPs and its wall time on 2 workers;
  target 10x the fixed grid's largest budget; at most 4 waves, tolerance +-10%, as the demo;
- seconds(N, D) = D (N + N0): per-token time flat below N0 and proportional to N above it, as on
  a CPU (docs/planning.md, benchmarks/time_planner.py); N0 = 3 or 8 times the seed grid's
  geometric-mean size (the demo's is about 4: 6.4e-6 s a token at N = 3,584 and 8.9e-6 at
  19,968 in its time model); each run costs 5% of the seed grid's median run besides (the demo's
  setup and evaluations, about 2.2 s, against runs of 30-60 s), each wave twice that to start its
  workers; each planning step (refit) takes 3% of the wall allowance and, as `time_for_wave`
  does, the planner is handed what is left less two of them. The runs' seconds are the
  planner's own estimate (no misestimate), and sizes are not rounded to model shapes.

Score per world: the final interval's point at the law's compute-optimal (N*, D*) against the
noiseless truth there (|log error|) and the share of 400 noisy draws of that run (the world's
noise) inside the 95% interval; the wall time left unspent; in how many worlds the error is
better or worse than "none"'s by more than 1%. The rule, written before any world
was run: the setting kept has the smallest geometric mean |log error| over the 24 worlds among
those whose coverage is at least 90%; "none" is kept unless another beats it by more than 1%.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from adaptive_replay import optimal_size  # noqa: E402
from interval_calibration import TRUTHS  # noqa: E402
from planner_choice import world_parser  # noqa: E402

from analysis.errors import AnalysisError, AnalysisWarning  # noqa: E402
from analysis.planning import candidates  # noqa: E402
from analysis.planning.propose import half_width, propose  # noqa: E402
from analysis.planning.seconds import RunSeconds  # noqa: E402
from analysis.prediction.seed_noise import pooled_rel_sd  # noqa: E402
from sweeps.sweep.loop_rules import stop_reason, wave_allowance  # noqa: E402

SEEDS = (20, 21, 22)
NOISES = (0.004, 0.008, 0.012)
N0_FACTORS = (3.0, 8.0)
C0 = 1e17
SEED_BUDGETS = C0 * np.array([1.0, 10 / 3, 10.0])
GRID_BUDGETS = C0 * np.array([10 / 3, 10.0, 100 / 3])
SEED_SPREAD = 2.45
MAX_WAVES = 4
TOLERANCE = 0.10
STEP_SHARE = 0.03
PER_RUN_SHARE = 0.05
WORKERS = 2
DRAWS = 400
SETTINGS: dict[str, tuple[tuple[slice, ...], tuple[float, ...]]] = {
    "none": ((), ()),
    "smaller parts": ((slice(2, 4), slice(1, 3), slice(2, 3)), ()),
    "nearer budget": ((), (0.5,)),
    "both": ((slice(2, 4), slice(1, 3), slice(2, 3)), (0.5,)),
}


def _world(truth: str, seed: int, n0_factor: float) -> dict[str, Any]:
    law = TRUTHS[truth]
    rng = np.random.default_rng([2000 + list(TRUTHS).index(truth), seed, int(n0_factor)])
    shift = float(np.exp(rng.uniform(math.log(0.4), math.log(2.5))))
    seed_n = np.concatenate([optimal_size(law, c) * shift * SEED_SPREAD ** np.array([-1, 0, 1])
                             for c in SEED_BUDGETS])  # fmt: skip
    seed_c = np.repeat(SEED_BUDGETS, 3)
    grid_n = np.concatenate([optimal_size(law, c) * shift * 2.0 ** np.arange(-2, 3)
                             for c in GRID_BUDGETS])  # fmt: skip
    grid_c = np.repeat(GRID_BUDGETS, 5)
    rep_n = optimal_size(law, GRID_BUDGETS[0]) * shift
    n0 = n0_factor * float(np.exp(np.mean(np.log(seed_n))))
    sizes = np.geomspace(seed_n.min() / 100, seed_n.max() * 1e4, 60)
    rate = tuple(float(v + n0) for v in sizes)
    per_run = PER_RUN_SHARE * float(np.median(seed_c / (6 * seed_n) * (seed_n + n0)))
    secs = RunSeconds(per_run_s=per_run, eval_tokens=0.0, n_params=tuple(float(v) for v in sizes),
                      per_token_s=rate, workers=WORKERS, startup_s=2 * per_run)  # fmt: skip
    order = np.argsort(-grid_c, kind="stable")  # the largest budget's runs first, as a sweep's
    grid_s = secs.runs(grid_n[order], grid_c[order] / (6 * grid_n[order]))
    grid_s += secs.runs([rep_n] * 2, [GRID_BUDGETS[0] / (6 * rep_n)] * 2)
    return {"name": f"{truth}/seed{seed}/N0x{n0_factor:g}", "law": law,
            "noise": NOISES[SEEDS.index(seed)], "rng": rng, "seed_n": seed_n, "seed_c": seed_c,
            "secs": secs, "allowance": float(grid_c.sum() + 2 * GRID_BUDGETS[0]),
            "wall": secs.wall(grid_s), "target": float(GRID_BUDGETS.max() * 10),
            "min_n": float(seed_n.min() / 2)}  # fmt: skip


def _rows(w: dict[str, Any], n, d, seeds=None) -> pd.DataFrame:
    n, d = np.asarray(n, float), np.asarray(d, float)
    loss = w["law"](n, d) * np.exp(w["rng"].normal(0, w["noise"], n.size))
    return pd.DataFrame({"n_params": n, "n_tokens": d, "loss": loss, "flops": 6 * n * d,
                         "flops_budget": [float(f"{v:.8g}") for v in 6 * n * d],
                         "seed": np.zeros(n.size, int) if seeds is None else np.asarray(seeds)})


def _noise(data: pd.DataFrame) -> float:
    """The measured seed noise as the analysis pools it (seed_noise.pooled_rel_sd), NaN where no
    configuration was repeated; configurations are (N, D) here, the only settings a run has."""
    g = data.groupby([data["n_params"].round(6), data["n_tokens"].round(6)])["loss"]
    return pooled_rel_sd([{"rel_sd": float(np.std(v, ddof=1) / np.mean(v))}
                          for _, v in g if len(v) >= 2])  # fmt: skip


def _ask(w, data, allowance, wall_s):
    try:
        return propose(data, w["target"], allowance, noise=_noise(data), min_params=w["min_n"],
                       seconds=w["secs"], max_wall_s=max(wall_s, 1.0))  # fmt: skip
    except AnalysisError:
        return None


def loop(w: dict[str, Any]) -> dict[str, Any]:
    """The demo's loop in world w (module docstring), under the current candidates settings."""
    data = _rows(w, w["seed_n"], w["seed_c"] / (6 * w["seed_n"]))
    step = STEP_SHARE * w["wall"]
    secs: RunSeconds = w["secs"]
    used = secs.wall(secs.runs(data["n_params"], data["n_tokens"])) + step
    spent = float(data["flops"].sum())
    waves, stop, prop = 0, "", None
    while True:
        left, left_wall = w["allowance"] - spent, w["wall"] - used
        go_on = left > 0 and left_wall > 0 and waves < MAX_WAVES
        allow = wave_allowance(left, waves, MAX_WAVES)
        prop = _ask(w, data, allow, left_wall - 2 * step) if go_on else None
        if prop is not None and not prop.items and allow < left:
            prop = _ask(w, data, left, left_wall - 2 * step)
        final = prop if prop is not None else _ask(w, data, 1e30, math.inf)
        assert final is not None
        t = final.target
        # the loop's own rule (sweeps/sweep/loop_rules.py), then the wall time, as run_loop has it
        why = stop_reason(final.to_dict()["target"], None if prop is None else prop.to_dict(),
                          spent=spent, allowance=w["allowance"], tolerance=TOLERANCE,
                          n_waves=waves, max_waves=MAX_WAVES)  # fmt: skip
        if why is None and left_wall <= 0:
            why = "wall time: spent"
        if why is not None:
            stop = why.split(":")[0]  # "wall-time allowance": nothing proposed fit the time left
            break
        rows = [(n, d, s) for it in prop.items
                for j, (n, d) in enumerate(zip(it.n_params, it.n_tokens, strict=True))
                for s in [it.seeds[j] if it.seeds else 0]]  # fmt: skip
        new = _rows(w, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
        used += step + secs.wall(secs.runs(new["n_params"], new["n_tokens"]))
        spent += float(new["flops"].sum())
        data = pd.concat([data, new], ignore_index=True)
        waves += 1
    truth = float(w["law"](t.n_params, t.n_tokens))
    lo, hi = t.interval
    draws = truth * np.exp(np.random.default_rng(7).normal(0, w["noise"], DRAWS))
    return {"world": w["name"], "error": abs(math.log(t.loss / truth)),
            "cover": float(np.mean((draws >= lo) & (draws <= hi))), "half_width": half_width(t),
            "waves": waves, "stop": stop, "unspent_wall": max(w["wall"] - used, 0.0) / w["wall"],
            "spent_share": spent / w["allowance"]}  # fmt: skip


def _job(key: tuple[str, int, float]) -> list[dict[str, Any]]:
    out = []
    for name, (parts, steps) in SETTINGS.items():
        candidates.LAST_RESORT_PARTS, candidates.LAST_RESORT_STEPS = parts, steps
        with warnings.catch_warnings():  # the fits' own warnings (E not determined, ...): the
            warnings.simplefilter("ignore", AnalysisWarning)  # scores, not each refit, are read
            out.append({"setting": name} | loop(_world(*key)))
    return out


def choose(rows: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The rule of the module docstring: (the setting kept, a summary row per setting)."""
    table = []
    for name in SETTINGS:
        rs = [r for r in rows if r["setting"] == name]
        err = np.array([max(r["error"], 1e-6) for r in rs])
        table.append({"setting": name, "geo_error": float(np.exp(np.mean(np.log(err)))),
                      "mean_error": float(err.mean()),
                      "cover": float(np.mean([r["cover"] for r in rs])),
                      "half_width": float(np.mean([r["half_width"] for r in rs])),
                      "unspent_wall": float(np.mean([r["unspent_wall"] for r in rs])),
                      "stopped_unspent": sum(r["stop"] == "wall-time allowance" for r in rs),
                      "waves": float(np.mean([r["waves"] for r in rs]))})  # fmt: skip
    base = {r["world"]: r["error"] for r in rows if r["setting"] == "none"}
    for t in table:
        rs = [r for r in rows if r["setting"] == t["setting"]]
        t["better"] = sum(r["error"] < base[r["world"]] * 0.99 for r in rs)
        t["worse"] = sum(r["error"] > base[r["world"]] * 1.01 for r in rs)
    ok = [t for t in table if t["cover"] >= 0.90]
    best = min(ok, key=lambda t: t["geo_error"]) if ok else table[0]
    none = table[0]
    if none in ok and best["geo_error"] > none["geo_error"] * 0.99:
        best = none
    return best["setting"], table


def main(argv=None) -> int:
    args = world_parser(__doc__).parse_args(argv)
    t0 = time.perf_counter()
    keys = [(t, s, f) for t in TRUTHS for s in SEEDS for f in N0_FACTORS]
    with ProcessPoolExecutor(max(args.jobs, 1)) as ex:
        rows = [r for rs in ex.map(_job, keys) for r in rs]
    kept, table = choose(rows)
    print(f"{len(keys)} worlds, {time.perf_counter() - t0:.0f} s\n")
    print(f"{'setting':<14} {'geo |log err|':>13} {'mean':>7} {'95% cover':>9} {'+-half':>7} "
          f"{'wall unspent':>12} {'stopped unspent':>15} {'waves':>5} {'better/worse':>12}")
    for t in table:
        print(f"{t['setting']:<14} {t['geo_error']:>13.4f} {t['mean_error']:>7.4f} "
              f"{t['cover']:>9.1%} {t['half_width']:>7.1%} {t['unspent_wall']:>12.1%} "
              f"{t['stopped_unspent']:>15d} {t['waves']:>5.2f} "
              f"{t['better']:>5d} / {t['worse']:<4d}")  # fmt: skip
    print(f"\nkept (the rule in the docstring): {kept}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "table": table, "kept": kept}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
