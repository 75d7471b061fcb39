"""WSD cooldown branches against from-scratch cosine runs of the same (N, D), on the default corpus.

    python benchmarks/wsd_branches.py              # 2 sizes x 3 token counts, ~5-10 min on 2 cores
    python benchmarks/wsd_branches.py --out DIR    # keep the two sweeps' results in DIR
    python benchmarks/wsd_branches.py optim.lr=auto --cosine schedule.min_lr_frac=0
        # overrides for both sweeps; --cosine: more overrides for the from-scratch cosine runs only

Runs the same grid twice as real sweeps (`python -m sweeps.train -m`, joblib, 2 processes):
from scratch with schedule=cosine, and in branch mode (schedule=wsd, branch.budgets, one trunk
per size; sweeps/branches.py). Prints each (N, D)'s final validation loss both ways and the
relative difference (target: within 1%), the planned compute ratio (reuse / naive, C = 6ND) and
the measured wall-time ratio of the two sweeps (process start-up and evaluations included).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sweeps import records  # noqa: E402

SIZES = "3e4,1e4"  # largest first: its runs are the longest
TOKENS = [5e5, 1e6, 2e6]


def _sweep(out: Path, name: str, extra: list[str]) -> float:
    args = [
        sys.executable,
        "-m",
        "sweeps.train",
        "-m",
        "launcher=joblib",
        f"results_dir={out}",
        f"sweep_name={name}",
        "progress=none",
        f"model.n_params={SIZES}",
        "budget.tokens=" + ",".join(f"{t:g}" for t in TOKENS),
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    subprocess.run(args, cwd=REPO, env=env, check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _records(sweep_dir: Path) -> list[dict]:
    return [records.read_record(d) for d in records.iter_run_dirs(sweep_dir)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="", help="results folder (default: a temporary one)")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for both sweeps")
    ap.add_argument("--cosine", nargs="*", default=[], help="overrides for the cosine runs only")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="wsd_branches_"))
    budgets = "[" + ",".join(f"{t:g}" for t in TOKENS) + "]"
    t_scratch = _sweep(out, "scratch", ["schedule=cosine", *args.overrides, *args.cosine])
    t_branch = _sweep(out, "branch", ["schedule=wsd", f"branch.budgets={budgets}", *args.overrides])
    print(
        "overrides: both "
        + (" ".join(args.overrides) or "-")
        + "; cosine "
        + (" ".join(args.cosine) or "-")
    )
    scratch = {(r["n_params"], r["n_tokens"]): r for r in _records(out / "scratch")}
    branch = _records(out / "branch")
    trunks = [r for r in branch if r.get("role") == "trunk"]
    print(f"{'N':>7} {'D':>9} {'cosine':>8} {'branch':>8} {'rel diff':>9}")
    worst = 0.0
    for r in sorted(
        (r for r in branch if r.get("role") == "branch"),
        key=lambda r: (r["n_params"], r["n_tokens"]),
    ):
        ref = scratch[(r["n_params"], r["n_tokens"])]
        rel = r["loss"] / ref["loss"] - 1.0
        worst = max(worst, abs(rel))
        print(
            f"{r['n_params']:>7,} {r['n_tokens']:>9,} {ref['loss']:>8.4f} {r['loss']:>8.4f} "
            f"{rel:>+9.2%}"
        )
    naive = sum(r["flops"] for r in scratch.values())
    reuse = sum(t["flops"] for t in trunks) + sum(
        r["flops_per_token_6n"] * r["flops_marginal"] / r["flops_per_token_exact"]
        for r in branch
        if r.get("role") == "branch"
    )
    print(f"max |rel diff| {worst:.2%} (target <= 1%)")
    print(f"compute ratio (reuse / naive, 6ND): {reuse / naive:.3f}")
    print(
        f"wall time: from scratch {t_scratch:.0f} s, branch mode {t_branch:.0f} s, "
        f"ratio {t_branch / t_scratch:.3f}"
    )
    print(f"results: {out}")


if __name__ == "__main__":
    main()
