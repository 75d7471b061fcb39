"""Replicate the shipped published suites: each method's extrapolation error, the recommended
law's error and its interval coverage, against the paper's own numbers.

    python benchmarks/replicate.py [--json OUT.json] [--rules]

Splits (fixed before looking at any result, from the papers themselves):
- gadre2024, per corpus: fit the runs of at most 412M parameters (all M), predict the 1.4B and
  6.9B runs (1.4B at M = 20 and at the corpus's largest M, 6.9B at M = 20): the paper's Fig. 1
  / Table 2 task. Paper: its own law refitted exactly as its code does (paper.json).
- porian2024, per setup: fit the budgets below 5e17 FLOPs (the paper's own fit range for its
  loss law), predict the six budgets 8e17 to 2.56e19. Paper: its stored L*(C) law against its
  stored per-budget optimum L*. Ours at the same points: the recommended law's compute-optimal
  loss at C against the same L*.
Errors are mean |predicted - observed| / observed over the held-out points; the method columns
fit each method to every training run; "recommended" is `analysis.prediction.recommend.recommend`
on the
training runs alone (its back-test never sees the held-out points). Coverage: the share
of held-out runs inside the recommended law's 80% and 95% intervals; width: their median
(hi - lo) / prediction; score: their mean interval score (Gneiting & Raftery 2007) relative to the
prediction, which weighs width against misses (lower is better).

--rules adds the evidence behind the candidate set (analysis/prediction/ladder.py): for each form
and each
run-selection rule (`ladder.RULES`, candidates or not), its back-test score on the training runs
(what `recommend` compares) and its error on the held-out runs (mean and max |error|; "n/a"
where the rule leaves too few runs or the table lacks the column it needs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.inputs.published_suites import load_suite, suite_paper  # noqa: E402
from analysis.laws.chinchilla import chinchilla_loss, fit_chinchilla  # noqa: E402
from analysis.laws.varpro import fit_varpro  # noqa: E402
from analysis.prediction.calibration import interval_score  # noqa: E402
from analysis.prediction.forms import law_optimal  # noqa: E402
from analysis.prediction.groups import recommend_groups  # noqa: E402
from analysis.prediction.ladder import RULES, Candidate  # noqa: E402
from analysis.prediction.recommend import backtest_candidates  # noqa: E402

METHODS = {
    "approach3": lambda n, d, y: fit_chinchilla(n, d, y),
    "vp-ls": lambda n, d, y: fit_varpro(n, d, y, robust=False),
    "overtrain-ls": lambda n, d, y: fit_varpro(n, d, y, equal_exponents=True, robust=False),
    "chinchilla-vp": lambda n, d, y: fit_varpro(n, d, y),
    "overtrain-vp": lambda n, d, y: fit_varpro(n, d, y, equal_exponents=True),
}


def scenarios():
    """(name, train, test, paper_errors, paper_points) per held-out split."""
    g, gp = load_suite("gadre2024"), suite_paper("gadre2024")
    for corpus in ("RedPajama", "C4", "RefinedWeb"):
        s = g[g["group"] == corpus]
        test = s[s["n_params"] > 4.2e8].sort_values(["n_params", "tokens_per_param"])
        paper = np.array([h["rel_error"] for h in gp["groups"][corpus]["held_out"]])
        yield f"gadre2024/{corpus}", s[s["n_params"] <= 4.2e8], test, paper, None
    p, pp = load_suite("porian2024"), suite_paper("porian2024")
    for setup in ("cosine", "tuned_constant"):
        s, law = p[p["group"] == setup], pp["groups"][setup]
        test = s[s["flops"] > 5e17]
        optima = {float(c): v for c, v in law["optimum_loss"].items() if float(c) > 5e17}
        c = np.array(sorted(optima))
        star = np.array([optima[v] for v in c])
        pred = law["E"] + law["A"] * c ** -law["alpha"]
        yield f"porian2024/{setup}", s[s["flops"] < 5e17], test, (pred - star) / star, (c, star)


def _err(pred, obs) -> np.ndarray:
    return (np.asarray(pred, float) - np.asarray(obs, float)) / np.asarray(obs, float)


def _recommend_suite(splits: list[tuple]) -> dict[str, Any]:
    """`recommend_groups` on one suite's training splits together (its groups share the
    evaluation text, so one irreducible loss for all of them is a candidate): name -> its
    Recommendation."""
    return recommend_groups({s[0]: s[1] for s in splits}, seed=0)


def _scenario(args) -> dict:
    """Every number of one held-out split (runs in a worker process); `rec`: the split's
    recommendation (`_recommend_suite`)."""
    name, train, test, paper, points, rec = args
    n, d, loss = (train[c].to_numpy(float) for c in ("n_params", "n_tokens", "loss"))
    row: dict = {"dataset": name, "n_train": len(train), "n_test": len(test),
                 "paper": float(np.mean(np.abs(paper)))}  # fmt: skip
    for m, fit_fn in METHODS.items():
        fit = fit_fn(n, d, loss)
        row[m] = float(
            np.mean(
                np.abs(
                    _err(
                        chinchilla_loss(fit.params, test["n_params"], test["n_tokens"]),
                        test["loss"],
                    )
                )
            )
        )
    preds = {
        lvl: [
            rec.predict(a, b, level=lvl)
            for a, b in zip(test["n_params"], test["n_tokens"], strict=True)
        ]
        for lvl in (0.8, 0.95)
    }
    y = test["loss"].to_numpy(float)
    errs = _err([p.loss for p in preds[0.95]], y)
    row |= {
        "recommended": rec.law,
        "ours": float(np.mean(np.abs(errs))),
        "ours_max": float(np.max(np.abs(errs))),
        "ours_each": errs.tolist(),
        "paper_each": list(map(float, paper)),
        "warnings": list(rec.warnings),
    }
    if points is not None:
        c, star = points
        assert rec.fit is not None
        row["ours_at_paper_points"] = float(
            np.mean(np.abs(_err(law_optimal(rec.fit, c).loss, star)))
        )
    else:
        row["ours_at_paper_points"] = row["ours"]
    for lvl, ps in preds.items():
        inside = [p.interval[0] <= t <= p.interval[1] for p, t in zip(ps, y, strict=True)]
        row[f"in{int(lvl * 100)}"] = int(np.sum(inside))
        row[f"width{int(lvl * 100)}"] = float(np.median([p.width for p in ps]))
        lo, hi = np.array([p.interval for p in ps]).T
        row[f"score{int(lvl * 100)}"] = float(
            np.mean(interval_score(lo, hi, y, lvl, scale=[p.loss for p in ps]))
        )
        row[f"finite{int(lvl * 100)}"] = all(p.problem is None or "wider" in p.problem
                                             for p in ps)  # fmt: skip
    return row


def _rules(args) -> dict:
    """Back-test score and held-out error of every form x rule on one split."""
    name, train, test, _, _ = args
    cands = tuple(Candidate(f, r) for f in ("chinchilla", "overtrain") for r in RULES)
    scores, _, _ = backtest_candidates(train, cands)
    row: dict = {"dataset": name}
    for c in cands:
        fit = c.fit(train)
        held = (
            np.abs(_err(chinchilla_loss(fit.params, test["n_params"], test["n_tokens"]),
                        test["loss"]))
            if fit is not None
            else np.array([np.nan])
        )  # fmt: skip
        row[c.name] = (scores[c.name], float(np.mean(held)), float(np.max(held)))
    return row


def _rules_table(rows: list[dict]) -> str:
    lines = ["| dataset | form | " + " | ".join(RULES) + " |", "|" + " --- |" * (len(RULES) + 2)]

    def cell(v: tuple[float, float, float]) -> str:
        bt, mean, mx = (("n/a" if np.isnan(x) else f"{x:.2%}") for x in v)
        return f"{bt}; {mean} ({mx})"

    for r in rows:
        for form in ("chinchilla", "overtrain"):
            cells = [cell(r[Candidate(form, rule).name]) for rule in RULES]
            lines.append(f"| {r['dataset']} | {form}-vp | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(jobs: int = 2, fn=None) -> list[dict]:
    """All splits, `jobs` at a time (one process each): first each suite's recommendations
    (its groups together), then each split's numbers."""
    splits = list(scenarios())
    suites: dict[str, list[tuple]] = {}
    for s in splits:
        suites.setdefault(s[0].split("/")[0], []).append(s)
    with ProcessPoolExecutor(max(jobs, 1)) as pool:
        if fn is not None:
            return list(pool.map(fn, splits))
        recs: dict[str, Any] = {}
        for r in pool.map(_recommend_suite, suites.values()):
            recs |= r
        return list(pool.map(_scenario, [(*s, recs[s[0]]) for s in splits]))


def _table(rows: list[dict]) -> str:
    head = (
        "| dataset | runs fit / held out | paper | approach 3 | VP (LS) | over-train (LS) | "
        "chinchilla-vp | overtrain-vp | recommended | ours at the paper's points | ours, all "
        "held out (max) | 80% cover (width, score) | 95% cover (width, score) |"
    )
    lines = [head, "|" + " --- |" * 13]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['n_train']} / {r['n_test']} | {r['paper']:.2%} | "
            f"{r['approach3']:.2%} | {r['vp-ls']:.2%} | {r['overtrain-ls']:.2%} | "
            f"{r['chinchilla-vp']:.2%} | {r['overtrain-vp']:.2%} | {r['recommended']} | "
            f"{r['ours_at_paper_points']:.2%} | {r['ours']:.2%} ({r['ours_max']:.2%}) | "
            f"{r['in80']}/{r['n_test']} ({r['width80']:.1%}, {r['score80']:.1%}) | "
            f"{r['in95']}/{r['n_test']} ({r['width95']:.1%}, {r['score95']:.1%}) |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="also write every number to this JSON file")
    ap.add_argument("--jobs", type=int, default=2, help="splits at once (one process per core)")
    ap.add_argument(
        "--rules",
        action="store_true",
        help="also print each form x run-selection rule's back-test and held-out error",
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(args.jobs)
    print(_table(rows))
    gadre = [r for r in rows if r["dataset"].startswith("gadre")]
    ours = np.abs(np.concatenate([r["ours_each"] for r in gadre]))
    paper = np.abs(np.concatenate([r["paper_each"] for r in gadre]))
    n_test = sum(r["n_test"] for r in rows)
    print(
        f"\nGadre et al., the nine points: recommended law mean |error| {ours.mean():.2%} "
        f"(max {ours.max():.2%}); the paper's own law {paper.mean():.2%} (max {paper.max():.2%})"
    )
    print(
        f"All {n_test} held-out runs: 80% intervals cover {sum(r['in80'] for r in rows)}, "
        f"95% intervals cover {sum(r['in95'] for r in rows)}; every interval bounded and of "
        f"non-zero width: {all(r['finite80'] and r['finite95'] for r in rows)}"
    )
    for r in rows:
        for w in r["warnings"]:
            print(f"warning [{r['dataset']}]: {w}")
    if args.rules:
        print(
            "\nRun-selection rules, each cell 'back-test mean |log error| on the training runs; "
            "mean (max) |error| on the held-out runs':"
        )
        print(_rules_table(run(args.jobs, _rules)))
    print(f"({time.perf_counter() - t0:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
