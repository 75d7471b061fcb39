"""WSD cooldown branches against from-scratch cosine runs of the same (N, D), on the default corpus.

    python benchmarks/wsd_branches.py              # 2 sizes x 3 token counts, ~5-10 min on 2 cores
    python benchmarks/wsd_branches.py --out DIR    # keep the two sweeps' results in DIR
    python benchmarks/wsd_branches.py optim.lr=auto optim.batch_size=auto \
        --cosine schedule.min_lr_frac=0 --seeds 0 1 2      # the closing note's run, ~16 min
        # overrides for both sweeps; --cosine: more overrides for the from-scratch cosine runs
        # only (--branch: for the branch mode only, e.g. schedule.decay_shape=linear); --seeds:
        # repeat everything per seed and compare the mean losses
    python benchmarks/wsd_branches.py --sizes 1e5 3e4 1e4 3e3 --tokens 2.5e5 5e5 1e6 2e6
        # a 4 x 4 grid with doubling token counts (issue 7's plan ratio, here measured)
    python benchmarks/wsd_branches.py optim.batch_size=4 --lrs 0.003 0.006 0.012 ...
        # --lrs: run both ways at each peak lr and compare each schedule at its own best lr per
        # (N, D) (lowest mean over seeds), as Hagele et al. compare schedules (each tuned);
        # prints the lrs chosen; --cosine-lrs / --branch-lrs: a grid per schedule instead

Runs the same grid twice as real sweeps (`python -m sweeps.train -m`, joblib, 2 processes):
from scratch with schedule=cosine, and in branch mode (schedule=wsd, branch.budgets, one trunk
per size; sweeps/branches/wsd.py). Prints each (N, D)'s final validation loss both ways and the
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

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sweeps import records  # noqa: E402

SIZES = [3e4, 1e4]  # largest first: its runs are the longest
TOKENS = [5e5, 1e6, 2e6]


def _sweep(out: Path, name: str, grid: list[str], extra: list[str]) -> float:
    args = [
        sys.executable,
        "-m",
        "sweeps.train",
        "-m",
        "launcher=joblib",
        f"results_dir={out}",
        f"sweep_name={name}",
        "progress=none",
        *grid,
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    subprocess.run(args, cwd=REPO, env=env, check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _records(sweep_dir: Path) -> list[dict]:
    return [records.read_record(d) for d in records.iter_run_dirs(sweep_dir)]


def _loss(record: dict) -> float:
    """A diverged run (loss null) loses to every finite one."""
    return float("inf") if record.get("loss") is None else float(record["loss"])


def _best(by_lr: dict[float, dict[int, float]], seeds: list[int]) -> tuple[float, list[float]]:
    """The lr whose mean loss over the seeds is lowest, and its per-seed losses."""
    done = {lr: [per_seed[sd] for sd in seeds] for lr, per_seed in by_lr.items()}
    lr = min(done, key=lambda v: float(np.mean(done[v])))
    return lr, done[lr]


def _at_edge(lr: float, lrs: list[float]) -> bool:
    """The best lr is the grid's smallest or largest value (a grid of 2 or more)."""
    return len(lrs) > 1 and lr in (min(lrs), max(lrs))


def _lr(lr: float, lrs: list[float]) -> str:
    return f"{lr:.3g}" + ("*" if _at_edge(lr, lrs) else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="", help="results folder (default: a temporary one)")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for both sweeps")
    ap.add_argument("--cosine", nargs="*", default=[], help="overrides for the cosine runs only")
    ap.add_argument("--branch", nargs="*", default=[], help="overrides for the branch mode only")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (losses averaged)")
    ap.add_argument("--sizes", type=float, nargs="+", default=SIZES, help="model.n_params")
    ap.add_argument("--tokens", type=float, nargs="+", default=TOKENS, help="budget.tokens")
    ap.add_argument(
        "--lrs", type=float, nargs="*", default=[], help="peak lrs: each schedule at its best"
    )
    ap.add_argument("--cosine-lrs", type=float, nargs="*", default=[], help="cosine's own lrs")
    ap.add_argument("--branch-lrs", type=float, nargs="*", default=[], help="the branches' lrs")
    args = ap.parse_args()
    # each schedule's lr grid (by default the same): their optima differ, so a grid that brackets
    # both can run each schedule only where it is needed
    cos_lrs, br_lrs = args.cosine_lrs or args.lrs, args.branch_lrs or args.lrs
    if bool(cos_lrs) != bool(br_lrs):
        ap.error("give both --cosine-lrs and --branch-lrs, or --lrs for both")
    out = Path(args.out or tempfile.mkdtemp(prefix="wsd_branches_"))
    budgets = "[" + ",".join(f"{t:g}" for t in args.tokens) + "]"
    grid = [
        "model.n_params=" + ",".join(f"{n:g}" for n in sorted(args.sizes, reverse=True)),
        "budget.tokens=" + ",".join(f"{t:g}" for t in args.tokens),
    ]
    # One folder per seed, lr and cosine variant (runs are content-addressed: a rerun skips what
    # is done); use a fresh --out when changing the overrides for both sweeps.
    scratch_name = "-".join(["scratch", *(o.replace("=", "_") for o in args.cosine)])
    branch_name = "-".join(["branch", *(o.replace("=", "_") for o in args.branch)])
    # (N, D) -> lr -> seed -> loss per schedule; each schedule's lr is the one with the lowest
    # mean over seeds (choosing per seed would pick each seed's lucky lr)
    cos: dict[tuple[int, int], dict[float, dict[int, float]]] = {}
    wsd: dict[tuple[int, int], dict[float, dict[int, float]]] = {}
    # compute and wall time per sweep of each kind (one seed and lr): their means give the ratios
    naive: list[float] = []
    reuse: list[float] = []
    t_scratch: list[float] = []
    t_branch: list[float] = []
    fresh = True
    for seed in args.seeds:
        for lr in sorted(set(cos_lrs) | set(br_lrs)) or [None]:
            sd = out / f"seed{seed}" / (f"lr{lr:g}" if lr is not None else "")
            both = [*args.overrides, f"seed={seed}"] + ([f"optim.lr={lr}"] if lr else [])
            scratch = branch = []
            if lr is None or lr in cos_lrs:
                fresh = fresh and not (sd / scratch_name).exists()
                cosine = ["schedule=cosine", *both, *args.cosine]
                t_scratch.append(_sweep(sd, scratch_name, grid, cosine))
                scratch = _records(sd / scratch_name)
                naive.append(sum(r["flops"] for r in scratch))
            if lr is None or lr in br_lrs:
                fresh = fresh and not (sd / branch_name).exists()
                wsd_mode = ["schedule=wsd", f"branch.budgets={budgets}", *both, *args.branch]
                t_branch.append(_sweep(sd, branch_name, grid, wsd_mode))
                branch = _records(sd / branch_name)
                reuse.append(
                    sum(r["flops"] for r in branch if r.get("role") == "trunk")
                    + sum(
                        r["flops_per_token_6n"] * r["flops_marginal"] / r["flops_per_token_exact"]
                        for r in branch
                        if r.get("role") == "branch"
                    )
                )
            for r in scratch:
                key = (r["n_params"], r["n_tokens"])
                cos.setdefault(key, {}).setdefault(r["lr"], {})[seed] = _loss(r)
            for r in branch:
                if r.get("role") == "branch":
                    key = (r["n_params"], r["n_tokens"])
                    wsd.setdefault(key, {}).setdefault(r["lr"], {})[seed] = _loss(r)
    print(
        f"overrides: both {' '.join(args.overrides) or '-'}; cosine {' '.join(args.cosine) or '-'}"
        f"; branch {' '.join(args.branch) or '-'}"
        f"; seeds {' '.join(map(str, args.seeds))} (losses are means over seeds)"
        + (
            f"; lrs cosine {' '.join(f'{v:g}' for v in cos_lrs)}, branch "
            f"{' '.join(f'{v:g}' for v in br_lrs)} (each schedule at its best)"
            if cos_lrs
            else ""
        )
    )
    print(
        f"{'N':>7} {'D':>9} {'cosine':>8} {'branch':>8} {'rel diff':>9}  per seed"
        + ("  (best lr cosine / branch)" if cos_lrs else "")
    )
    diffs = []
    edges = 0
    for key in sorted(wsd):
        lr_c, c = _best(cos[key], args.seeds)
        lr_w, w = _best(wsd[key], args.seeds)
        rel = float(np.mean(w)) / float(np.mean(c)) - 1.0
        diffs.append(rel)
        per_seed = " ".join(f"{b / a - 1:+.2%}" for a, b in zip(c, w, strict=True))
        edges += _at_edge(lr_c, cos_lrs) + _at_edge(lr_w, br_lrs)
        print(
            f"{key[0]:>7,} {key[1]:>9,} {np.mean(c):>8.4f} {np.mean(w):>8.4f} {rel:>+9.2%}  "
            + per_seed
            + (f"  ({_lr(lr_c, cos_lrs)} / {_lr(lr_w, br_lrs)})" if cos_lrs else "")
        )
    print(f"max |rel diff| {max(map(abs, diffs)):.2%} (target <= 1%), mean {np.mean(diffs):+.2%}")
    if edges:
        print(
            f"{edges} best lr(s) at an end of their schedule's lr grid (marked *): that optimum "
            "may lie outside the grid; add a value beyond that end"
        )
    print(f"compute ratio (reuse / naive, 6ND): {np.mean(reuse) / np.mean(naive):.3f}")
    if fresh:
        print(
            f"wall time per sweep (mean of {len(t_scratch)} and {len(t_branch)}): from scratch "
            f"{np.mean(t_scratch):.0f} s, branch mode {np.mean(t_branch):.0f} s, "
            f"ratio {np.mean(t_branch) / np.mean(t_scratch):.3f}"
        )
    else:
        print("wall time: not measured (some runs were already done in --out)")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
