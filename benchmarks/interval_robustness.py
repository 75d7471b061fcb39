"""The recommended law's intervals on messy copies of the shipped suites: do they stay finite, sharp
and calibrated when a table is as real tables are?

    python benchmarks/interval_robustness.py [--jobs 2]

The held-out splits of benchmarks/replicate.py (Gadre et al.'s three corpora fitted together,
Porian et al.'s two setups), each recommended on a perturbed copy of its training runs:
- clean: as shipped;
- jitter: every N times (1 + u), u uniform in +-1e-7 (sizes read off a plot);
- duplicated: every training run twice (a run logged twice, or repeated seeds to the digit);
- outliers: 5% of the training runs' losses (at least one per split) 15% higher, seeded.
(N with and without embeddings is not among them: the suites ship one convention and no widths
to derive the other from.) Per table and perturbation: coverage of the held-out runs at 80% and
95%, the median 95% width, the mean 95% interval score, and whether every interval is finite and
of non-zero width; for jitter, the largest relative move of any bound against the clean copy.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from replicate import scenarios  # noqa: E402

from analysis.prediction.calibration import interval_score  # noqa: E402
from analysis.prediction.groups import recommend_groups  # noqa: E402

PERTURBATIONS = ("clean", "jitter", "duplicated", "outliers")


def perturb(train: pd.DataFrame, how: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = train[["n_params", "n_tokens", "loss"]].reset_index(drop=True)
    if how == "jitter":
        return t.assign(n_params=t["n_params"] * (1 + rng.uniform(-1e-7, 1e-7, len(t))))
    if how == "duplicated":
        return pd.concat([t, t], ignore_index=True)
    if how == "outliers":
        k = max(1, round(0.05 * len(t)))
        bad = rng.choice(len(t), k, replace=False)
        loss = t["loss"].to_numpy(float).copy()
        loss[bad] *= 1.15
        return t.assign(loss=loss)
    return t


def one_suite(args) -> list[dict]:
    how, splits = args
    recs = recommend_groups({name: perturb(train, how, i) for i, (name, train, _) in
                             enumerate(splits)}, seed=0)  # fmt: skip
    rows = []
    for name, _, test in splits:
        y = test["loss"].to_numpy(float)
        pts = list(zip(test["n_params"], test["n_tokens"], strict=True))
        p80 = [recs[name].predict(n, d, level=0.8) for n, d in pts]
        p95 = [recs[name].predict(n, d, level=0.95) for n, d in pts]
        lo, hi = np.array([p.interval for p in p95]).T
        def inside(ps: list, y=y) -> int:
            return int(sum(p.interval[0] <= v <= p.interval[1] for p, v in zip(ps, y, strict=True)))

        rows.append({
            "table": name, "how": how, "law": recs[name].law, "n": len(y),
            "in80": inside(p80), "in95": inside(p95),
            "width95": float(np.median([p.width for p in p95])),
            "score95": float(np.mean(interval_score(lo, hi, y, 0.95, [p.loss for p in p95]))),
            "finite": all(p.problem is None or "wider" in p.problem for p in p80 + p95),
            "bounds": np.array([p.interval for p in p80 + p95]),
        })  # fmt: skip
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    suites: dict[str, list] = {}
    for name, train, test, _, _ in scenarios():
        suites.setdefault(name.split("/")[0], []).append((name, train, test))
    work = [(how, splits) for how in PERTURBATIONS for splits in suites.values()]
    with ProcessPoolExecutor(max(args.jobs, 1)) as pool:
        rows = [r for part in pool.map(one_suite, work) for r in part]
    clean = {r["table"]: r["bounds"] for r in rows if r["how"] == "clean"}
    print("| table | copy | law | 80% cover | 95% cover | 95% width | 95% score | all finite, "
          "non-zero | largest bound move |\n" + "| --- " * 9 + "|")  # fmt: skip
    for r in sorted(rows, key=lambda r: (r["table"], PERTURBATIONS.index(r["how"]))):
        move = float(np.max(np.abs(r["bounds"] / clean[r["table"]] - 1)))
        print(f"| {r['table']} | {r['how']} | {r['law']} | {r['in80']}/{r['n']} | "
              f"{r['in95']}/{r['n']} | {r['width95']:.1%} | {r['score95']:.1%} | "
              f"{r['finite']} | {move:.2%} |")  # fmt: skip
    for how in PERTURBATIONS:
        part = [r for r in rows if r["how"] == how]
        n = sum(r["n"] for r in part)
        print(f"{how}: 80% cover {sum(r['in80'] for r in part)}/{n}, 95% cover "
              f"{sum(r['in95'] for r in part)}/{n}, every interval finite and non-zero: "
              f"{all(r['finite'] for r in part)}")  # fmt: skip
    print(f"({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
