"""How often the recommended law's intervals hold on tables from laws it cannot express exactly.

    python benchmarks/interval_calibration.py [--groups | --rules]

Synthetic tables (6 model sizes N = 1e7 * 4^k, tokens per parameter 5 to 160, 0.5% log-normal
noise, 6 seeds each) from four true laws: Kaplan et al.'s L(N, D), Hoffmann's law plus an N x D
interaction term, a broken power law in N, and Hoffmann's law itself. `recommend` sees the four
smallest sizes; the two larger sizes (4x and 16x beyond) are predicted. Prints, per degrees-of-
freedom rule for the interval's quantile, the share of held-out runs inside the 80% and 95%
intervals: the evidence behind analysis/prediction/calibration.py's choice (no shipped suite is
used).

--rules: the evidence behind analysis/prediction/calibration.py's estimate of k. The same four
truths at 0.5% and 1.5% noise (48 tables); for each table, the recommended law's fold errors are
turned into an interval by each candidate rule, and the two held-out rungs are scored: coverage,
median width and mean interval score (Gneiting & Raftery 2007) at 80% and 95%. The rule with the
lowest mean score is `calibrate`'s default (tables of one fold, like these); a table of two or more
folds chooses between it and the likelihood's k on its own nested folds. No shipped suite takes
part.

--groups: the same truths as tables of three groups that share the truth's floor and differ in
how fast they approach it (the reducible part scaled by 0.85, 1 and 1.2, and N by 0.6, 1 and
1.7: an architecture or corpus a constant factor better).
`analysis.prediction.groups.recommend_groups`
sees each group's four smallest sizes and may choose one E shared by the groups; prints which law
it chose and the share of held-out runs inside the 80% and 95% intervals it gives, to show the
joint fit's intervals hold where it is chosen.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.prediction.calibration import (  # noqa: E402
    MIN_DISTANCE,
    estimate_k,
    interval_score,
    log_prediction_sd,
    log_sigma,
)
from analysis.prediction.groups import recommend_groups  # noqa: E402
from analysis.prediction.ladder import (  # noqa: E402
    CANDIDATES,
    distance,
    ladder_folds,
    log_errors,
    reach,
)
from analysis.prediction.recommend import canonical, folds_sd, recommend  # noqa: E402

TRUTHS = {
    "kaplan": lambda n, d: ((8.8e13 / n) ** (0.076 / 0.095) + 5.4e13 / d) ** 0.095,
    "interaction": lambda n, d: 1.7 + 400 / n**0.34 + 410 / d**0.28 + 30 / (n * d) ** 0.12,
    "broken": lambda n, d: (
        1.8 + np.where(n < 1e8, 300 / n**0.3, 300 / 1e8**0.3 * (n / 1e8) ** -0.2) + 400 / d**0.3
    ),
    "hoffmann": lambda n, d: 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28,
}


def z_scores() -> pd.DataFrame:
    """|log error| / sigma of every held-out run, with its truth and the fold counts."""
    rows = []
    sizes, mults = 1e7 * 4.0 ** np.arange(6), np.array([5, 10, 20, 40, 80, 160])
    n, m = (x.ravel() for x in np.meshgrid(sizes, mults, indexing="ij"))
    for name, law in TRUTHS.items():
        for seed in range(6):
            rng = np.random.default_rng(seed)
            loss = law(n, n * m) * np.exp(rng.normal(0, 0.005, n.size))
            table = pd.DataFrame({"n_params": n, "n_tokens": n * m, "loss": loss})
            rec = recommend(table[table["n_params"] < sizes[4]], seed=seed)
            assert rec.thetas is not None and rec.calibration is not None
            th = rec.thetas
            for a, b, y in zip(n[n >= sizes[4]], (n * m)[n >= sizes[4]], loss[n >= sizes[4]],
                               strict=True):  # fmt: skip
                p = rec.predict(a, b)
                reps = np.exp(th[:, 2]) + np.exp(th[:, 0]) * a ** -th[:, 3]
                reps = reps + np.exp(th[:, 1]) * b ** -th[:, 4]
                x = float(distance(rec.reach, a, b))
                sig = float(log_sigma(rec.calibration, x, np.std(np.log(reps))))
                rows.append({"truth": name, "seed": seed, "law": rec.law,
                             "z": abs(np.log(y / p.loss)) / sig,
                             "n_folds": rec.calibration.n_folds,
                             "n_points": rec.calibration.n_points})  # fmt: skip
    return pd.DataFrame(rows)


FLOORS = {"kaplan": 0.0, "interaction": 1.7, "broken": 1.8, "hoffmann": 1.69}
GROUPS = {"g1": (0.85, 0.6), "g2": (1.0, 1.0), "g3": (1.2, 1.7)}


def grouped_coverage() -> pd.DataFrame:
    """Per held-out run of the grouped tables: truth, seed, group, law, inside 80% / 95%."""
    rows = []
    sizes, mults = 1e7 * 4.0 ** np.arange(6), np.array([5, 10, 20, 40, 80, 160])
    n, m = (x.ravel() for x in np.meshgrid(sizes, mults, indexing="ij"))
    for name, law in TRUTHS.items():
        floor = FLOORS[name]
        for seed in range(6):
            rng = np.random.default_rng(seed)
            tables = {}
            for g, (scale, shift) in GROUPS.items():
                loss = floor + scale * (law(n * shift, n * m) - floor)
                loss = loss * np.exp(rng.normal(0, 0.005, n.size))
                tables[g] = pd.DataFrame({"n_params": n, "n_tokens": n * m, "loss": loss})
            train = {g: t[t["n_params"] < sizes[4]] for g, t in tables.items()}
            recs = recommend_groups(train, seed=seed)
            own = {g: recommend(t, seed=seed) for g, t in train.items()}  # each group alone
            for g, t in tables.items():
                held = t[t["n_params"] >= sizes[4]]
                for a, b, y in zip(held["n_params"], held["n_tokens"], held["loss"], strict=True):
                    p80 = recs[g].predict(a, b, level=0.8)
                    p95 = recs[g].predict(a, b, level=0.95)
                    rows.append({"truth": name, "seed": seed, "group": g, "law": recs[g].law,
                                 "in80": p80.interval[0] <= y <= p80.interval[1],
                                 "in95": p95.interval[0] <= y <= p95.interval[1],
                                 "err": abs(p95.loss / y - 1),
                                 "err_own": abs(own[g].predict(a, b).loss / y - 1)})  # fmt: skip
    return pd.DataFrame(rows)


def _rule_k(name: str, e, x, s0: float, sf) -> tuple[float, float, float]:
    """(k, quantile scale at 80%, at 95%) of one candidate rule: the interval is
    +- q sqrt(sd_boot^2 + s0^2 + (k x)^2); conformal rules return their own q x k directly."""
    from scipy.stats import norm

    df = max(e.size - 1, 1)
    t80, t95 = student_t.ppf(0.9, df), student_t.ppf(0.975, df)
    if name == "rms (the earlier rule)":
        use = x > 1e-9
        return float(np.sqrt(np.mean(np.maximum(e[use] ** 2 - s0**2, 0) / x[use] ** 2))), t80, t95
    use = x > MIN_DISTANCE
    e, x, sf = e[use], x[use], sf[use]
    if name == "rms, distance floor":
        return float(np.sqrt(np.mean(np.maximum(e**2 - s0**2, 0) / x**2))), t80, t95
    if name == "median k (used where one fold)":
        k = np.median(np.sqrt(np.maximum(e**2 - s0**2, 0)) / x) / 0.6745
        return float(k), norm.ppf(0.9), norm.ppf(0.975)
    if name == "split-conformal |e| / x":
        r = np.sort(np.abs(e) / x)
        q = [r[min(r.size - 1, int(np.ceil((r.size + 1) * lv)) - 1)] for lv in (0.8, 0.95)]
        return -1.0, float(q[0]), float(q[1])  # k < 0: q is k itself (no s0, no bootstrap)
    k = estimate_k("ml", s0, e, x, sf)
    if name == "ML net of the fold spread, Gaussian q":
        return k, norm.ppf(0.9), norm.ppf(0.975)
    return k, t80, t95  # "ML net of the fold spread, t q"


N_RULE_SEEDS = 12  # tables per truth and noise: 96 in all (6 seeds left the ranking to chance)
RULE_NAMES = ("rms (the earlier rule)", "rms, distance floor", "median k (used where one fold)",
              "split-conformal |e| / x", "ML net of the fold spread, Gaussian q",
              "ML net of the fold spread, t q")  # fmt: skip


def rule_scores() -> pd.DataFrame:
    """Per held-out run of 48 synthetic tables and per rule: inside, width, interval score."""
    rows = []
    sizes, mults = 1e7 * 4.0 ** np.arange(6), np.array([5, 10, 20, 40, 80, 160])
    n, m = (x.ravel() for x in np.meshgrid(sizes, mults, indexing="ij"))
    by_name = {c.name: c for c in CANDIDATES}
    for noise in (0.005, 0.015):
        for name, law in TRUTHS.items():
            for seed in range(N_RULE_SEEDS):
                rng = np.random.default_rng([seed, int(noise * 1000)])
                loss = law(n, n * m) * np.exp(rng.normal(0, noise, n.size))
                table = pd.DataFrame({"n_params": n, "n_tokens": n * m, "loss": loss})
                train, test = table[n < sizes[4]], table[n >= sizes[4]]
                rec = recommend(train, seed=seed)
                assert rec.calibration is not None and rec.fit is not None
                cand, folds = by_name[rec.law], ladder_folds(canonical(train))
                fits = [cand.fit(f.train) for f in folds]
                e = np.concatenate([log_errors(f, fo.test)
                                    for f, fo in zip(fits, folds, strict=True)])  # fmt: skip
                x = np.concatenate([distance(reach(fo.train), fo.test["n_params"],
                                             fo.test["n_tokens"]) for fo in folds])  # fmt: skip
                sf = folds_sd(cand, folds, seed)
                pred = np.array([rec.predict(a, b).loss for a, b in
                                 zip(test["n_params"], test["n_tokens"], strict=True)])  # fmt: skip
                xt = distance(rec.reach, test["n_params"], test["n_tokens"])
                sb = log_prediction_sd(rec.thetas, test["n_params"], test["n_tokens"])
                y = test["loss"].to_numpy(float)
                for rule in RULE_NAMES:
                    k, q80, q95 = _rule_k(rule, e, x, rec.calibration.s0, sf)
                    for lvl, q in ((0.8, q80), (0.95, q95)):
                        half = (q * xt if k < 0 else
                                q * np.sqrt(sb**2 + rec.calibration.s0**2 + (k * xt) ** 2))
                        lo, hi = pred * np.exp(-half), pred * np.exp(half)
                        for i in range(y.size):
                            rows.append({"noise": noise, "truth": name, "rule": rule, "level": lvl,
                                         "inside": lo[i] <= y[i] <= hi[i],
                                         "width": (hi[i] - lo[i]) / pred[i],
                                         "score": float(interval_score(lo[i], hi[i], y[i], lvl,
                                                                       pred[i]))})  # fmt: skip
    return pd.DataFrame(rows)


def main() -> int:
    if "--rules" in sys.argv[1:]:
        z = rule_scores()
        print(f"{len(z) // (2 * len(RULE_NAMES))} held-out runs of 96 synthetic tables; interval "
              "score relative to the prediction (lower is better)")  # fmt: skip
        print("| rule | noise | 80% cover | 95% cover | 80% width | 95% width | 80% score | "
              "95% score | mean score |\n" + "| --- " * 9 + "|")  # fmt: skip
        for noise in (0.005, 0.015, "all"):
            part = z if noise == "all" else z[z["noise"] == noise]
            for rule in RULE_NAMES:
                r = part[part["rule"] == rule]
                a, b = r[r["level"] == 0.8], r[r["level"] == 0.95]
                print(f"| {rule} | {noise} | {a['inside'].mean():.1%} | {b['inside'].mean():.1%} | "
                      f"{a['width'].median():.1%} | {b['width'].median():.1%} | "
                      f"{a['score'].mean():.2%} | {b['score'].mean():.2%} | "
                      f"{(a['score'].mean() + b['score'].mean()) / 2:.2%} |")  # fmt: skip
        return 0
    if "--groups" in sys.argv[1:]:
        z = grouped_coverage()
        shared = z["law"].str.contains("shared-E")
        print(f"{len(z)} held-out runs, laws recommended: {z['law'].value_counts().to_dict()}")
        print(
            "| tables | held-out runs | mean abs error | each group alone | 80% cover | 95% cover |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for label, part in (("shared E chosen", z[shared]), ("own laws kept", z[~shared]),
                            ("all", z)):  # fmt: skip
            if len(part):
                print(f"| {label} | {len(part)} | {part['err'].mean():.2%} | "
                      f"{part['err_own'].mean():.2%} | "
                      f"{part['in80'].mean():.1%} | {part['in95'].mean():.1%} |")  # fmt: skip
        return 0
    z = z_scores()
    rules = {
        "Gaussian": np.inf,
        "t, held-out runs - 1 (used)": float(z["n_points"].iloc[0] - 1),
        "t, folds + 1": float(z["n_folds"].iloc[0] + 1),
    }
    print(f"{len(z)} held-out runs, laws recommended: {z['law'].value_counts().to_dict()}")
    print("| quantile rule | 80% cover | 95% cover |\n| --- | --- | --- |")
    for label, df in rules.items():
        q80, q95 = student_t.ppf(0.9, df), student_t.ppf(0.975, df)
        print(f"| {label} | {np.mean(z['z'] <= q80):.1%} | {np.mean(z['z'] <= q95):.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
