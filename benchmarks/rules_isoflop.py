"""Do the tuned rules help a real IsoFLOP grid? The demo grid with fixed settings against the same
grid with `optim.lr=auto optim.batch_size=auto` (issue 5).

    python benchmarks/rules_isoflop.py --out /tmp/rules_iso          # sweep=demo, ~15 min
    python benchmarks/rules_isoflop.py --preset demo_mini            # the miniature, ~5 min
    python benchmarks/rules_isoflop.py --rules results/lr_tune/hparam_rules.json
    python benchmarks/rules_isoflop.py --out /tmp/rules_iso --budgets 3e12   # add a budget, ~25 min

Runs the preset twice as real sweeps (joblib, 2 processes) into <out>/<preset>_fixed and
<out>/<preset>_auto (done runs are skipped, so a rerun only analyses), then prints, per grid point,
the optimizer steps and final validation loss of both, the mean change over the step-starved
points (fewer than --starved-steps steps with fixed settings) and over all points, and the
approach-3 back-test of each sweep: for every budget above the lowest two, refit on the budgets
below it and predict its runs' losses (mean and max |relative error|, and the error of the predicted
optimum N*, L* against that budget's own parabola), plus each sweep's fitted exponents.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from analysis.inputs.run_records import fit_runs, load_runs  # noqa: E402
from analysis.laws.chinchilla import fit_chinchilla  # noqa: E402
from analysis.prediction.backtest import backtest_chinchilla  # noqa: E402


def _sweep(out: Path, preset: str, name: str, extra: list[str]) -> None:
    args = [
        sys.executable,
        "-m",
        "sweeps.train",
        "-m",
        f"sweep={preset}",
        f"results_dir={out}",
        f"sweep_name={name}",
        "progress=none",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"sweep {name} failed:\n{proc.stderr[-3000:]}")


def _points(sweep_dir: Path):
    runs, _ = load_runs(sweep_dir)
    runs = runs[runs["seed"] == 0]  # the grid itself: sweeps.demo adds seed repeats to one point
    ok = runs[runs["status"] == "ok"]
    key = (
        ok["flops_budget"].map("{:g}".format)
        + "|"
        + ok["config.isoflop_tokens_per_param"].map("{:g}".format)
        + "|"
        + ok["seed"].map("{:g}".format)
    )
    return runs, ok.assign(key=key).set_index("key")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/rules_isoflop", help="results folder")
    ap.add_argument("--preset", default="demo", help="an IsoFLOP sweep preset (demo, demo_mini)")
    ap.add_argument("--rules", default="", help="rules file for auto (default: built-in)")
    ap.add_argument("--starved-steps", type=int, default=500)
    ap.add_argument("--analyse-only", action="store_true", help="compare what is there")
    ap.add_argument(
        "--budgets", nargs="*", default=[], help="extra compute budgets (budget.flops) to add"
    )
    args = ap.parse_args()
    out = Path(args.out)
    fixed, auto = f"{args.preset}_fixed", f"{args.preset}_auto"
    if not args.analyse_only:
        _sweep(out, args.preset, fixed, [])
        auto_extra = ["optim.lr=auto", "optim.batch_size=auto"]
        if args.rules:
            auto_extra.append(f"optim.rules={Path(args.rules).resolve()}")
        _sweep(out, args.preset, auto, auto_extra)
        for c in args.budgets:  # same sweep folders: the analysis sees one grid
            _sweep(out, args.preset, fixed, [f"budget.flops={c}"])
            _sweep(out, args.preset, auto, [*auto_extra, f"budget.flops={c}"])

    runs_f, pf = _points(out / fixed)
    runs_a, pa = _points(out / auto)
    print(f"{'C':>8} {'D/N':>5} {'N':>7} | {'steps':>6} {'lr':>7} {'bs':>3} {'loss':>7} | ", end="")
    print(f"{'steps':>6} {'lr':>7} {'bs':>3} {'loss':>7} | {'change':>7}")
    starved, every = [], []
    for key in sorted(set(pf.index) | set(pa.index), key=lambda k: tuple(map(float, k.split("|")))):
        f = pf.loc[key] if key in pf.index else None
        a = pa.loc[key] if key in pa.index else None
        c, r, _ = key.split("|")
        row = f if f is not None else a
        line = f"{float(c):>8.2g} {float(r):>5g} {int(row['n_params']):>7,} | "
        for x in (f, a):
            line += (
                f"{int(x['n_steps']):>6} {x['lr']:>7.2g} {int(x['batch_size']):>3} "
                f"{x['loss']:>7.4f} | "
                if x is not None
                else f"{'skipped':>27} | "
            )
        if f is not None and a is not None:
            rel = a["loss"] / f["loss"] - 1
            every.append(rel)
            if f["n_steps"] < args.starved_steps:
                starved.append(rel)
            line += f"{rel:>+7.2%}"
        print(line)
    print(
        f"loss change (auto / fixed - 1): step-starved points (< {args.starved_steps} steps "
        f"fixed, n={len(starved)}) mean {np.mean(starved) if starved else float('nan'):+.2%}; "
        f"all {len(every)} common points mean {np.mean(every):+.2%}"
    )
    for name, runs in ((fixed, runs_f), (auto, runs_a)):
        data = fit_runs(runs)
        n, d, loss, c = (data[k].to_numpy() for k in ("N", "D", "L", "flops_budget"))
        fit = fit_chinchilla(n, d, loss).params
        print(
            f"{name}: {len(data)} fitted runs; approach 3 on all: alpha {fit['alpha']:.3f}, "
            f"beta {fit['beta']:.3f}, a (N* ~ C^a) {fit['a']:.3f}, E {fit['E']:.3f}"
        )
        for held in sorted(set(c))[2:]:
            keep = c <= held
            bt = backtest_chinchilla(n[keep], d[keep], loss[keep], c[keep])
            optimum = (
                f"; optimum N* {bt.n_star_rel_error:+.1%}, L* {bt.loss_star_rel_error:+.2%}"
                if np.isfinite(bt.n_star_rel_error)
                else ""
            )
            print(
                f"  back-test ({bt.held_out} held out, fit on {bt.n_train} runs below it, "
                f"{bt.n_test} predicted): mean |rel error| {bt.mean_abs_rel_error:.2%}, "
                f"max {bt.max_abs_rel_error:.2%}{optimum}"
            )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
