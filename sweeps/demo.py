"""The whole demo in one command: a sweep that plans itself on the embedded corpus (a small
IsoFLOP seed grid, then waves of runs chosen to narrow the calibrated interval at 10x compute,
`python -m sweeps.adaptive`), the fitted laws and their report, and (with --verify) a check of the
law's own prediction.

    python -m sweeps.demo                 # GPT: seed grid + planned waves, then the report
    python -m sweeps.demo --verify        # ... then train the predicted optimum at the target
    python -m sweeps.demo --arch both     # GPT and LSTM laws on one figure (Kaplan et al. Fig. 7)
    python -m sweeps.demo --mini          # a miniature, ~5 minutes on 2 cores (the CI test)
    python -m sweeps.demo --fixed-grid    # the earlier design: 3 budgets x 5 sizes and 2 seeds

The loop spends at most the fixed grid's compute (`ALLOWANCE`, FLOPs) and its wall time (the
fixed grid's, as the trainer's planner estimates it on this machine with the demo's processes,
`--max-wall-seconds`; the loop's refits count against it), and stops early once the calibrated
95% interval at the target is within +-10%.

Each step is an ordinary command of the project, run as a subprocess and echoed, so a user can
rerun any step alone; every step skips the runs already done, so an interrupted demo resumes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sweeps import records
from sweeps.errors import UserError
from sweeps.run.preflight import check_results_dir
from sweeps.sweep.loop_rules import at_optimum

__all__ = ["ALLOWANCE", "SEED_GRID", "TOLERANCE", "main", "preset_values"]

PY = sys.executable
# FLOPs the loop may spend: what the fixed grid (and its 2 seed repeats) spent, so the demo keeps
# its wall time: demo 5 x (1e12 + 3e11 + 1e11) + 2 x 1e11; the mini 3 x (3e11 + 1e11 + 3e10) and
# one wave of about an eighth of that (its only wave is its last, which spends all that is left)
ALLOWANCE = {"demo": 7.2e12, "demo_mini": 1.45e12}
SEED_GRID = {"demo": "adaptive", "demo_mini": "demo_mini"}  # the loop's seed grid preset
TARGET = {"demo": 1e13, "demo_mini": 3e12}  # 10x the fixed grid's largest budget
MAX_WAVES = {"demo": 4, "demo_mini": 1}
TOLERANCE = 0.10


def _run(cmd: list[str], *, check: bool = True) -> int:
    print("\n$ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    rc = subprocess.run(cmd).returncode
    if check and rc != 0:
        raise SystemExit(f"error: step failed (exit {rc}): {' '.join(cmd)}")
    return rc


def _n_bootstrap(args: argparse.Namespace) -> int:
    return args.n_bootstrap or (200 if args.mini else 1000)


def _analyse(sweep_dir: Path, target: float, n_boot: int) -> None:
    """The report of one sweep folder (python -m analysis), predicting at `target` FLOPs."""
    _run(
        [PY, "-m", "analysis", str(sweep_dir), "--target-flops", f"{target:g}"]
        + ["--n-bootstrap", str(n_boot)]
    )


def preset_values(preset: str, key: str) -> list[float]:
    """The values a preset sweeps over (from its hydra.sweeper.params), e.g. its budgets."""
    path = Path(__file__).resolve().parent.parent / "conf" / "sweep" / f"{preset}.yaml"
    params = OmegaConf.load(path).hydra.sweeper.params
    return [float(v) for v in str(params[key]).split(",")]


def _argument_problem(args: argparse.Namespace) -> UserError | None:
    """The demo's own options, checked as its steps would check them (they would refuse later,
    after an echoed command, or with joblib's traceback for --n-jobs 0)."""
    if args.n_jobs == 0 or args.n_jobs < -1:
        return UserError(
            "--n-jobs", f"must be >= 1 (or -1: every core), got {args.n_jobs}", "e.g. --n-jobs 2"
        )
    if args.n_bootstrap is not None and args.n_bootstrap < 1:
        return UserError("--n-bootstrap", "must be >= 1", "e.g. --n-bootstrap 1000")
    if "," in args.results_dir:  # Hydra would read results_dir=a,b as a sweep over two folders
        return UserError("--results-dir", f"{args.results_dir!r} has a comma",
                         "choose a folder whose path has none")  # fmt: skip
    try:
        check_results_dir(args.results_dir, "demo")
    except UserError as e:
        return UserError(
            "--results-dir", e.problem, "choose a writable folder, e.g. --results-dir results"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sweeps.demo", description=__doc__.split("\n\n")[0].replace("\n", " ")
    )
    p.add_argument("--arch", choices=["gpt", "lstm", "both"], default="gpt")
    p.add_argument(
        "--verify",
        action="store_true",
        help="train the predicted compute-optimal model at the target compute",
    )
    p.add_argument("--mini", action="store_true", help="the miniature (sweep=demo_mini)")
    p.add_argument("--fixed-grid", action="store_true",
                   help="the earlier fixed IsoFLOP grid and seed repeats, not the loop")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--n-jobs", type=int, default=2, help="runs at once (one per core)")
    p.add_argument("--n-bootstrap", type=int, default=None)
    args = p.parse_args(argv)
    problem = _argument_problem(args)
    if problem is not None:  # before the first step writes anything
        print(f"error: {problem.line()}", file=sys.stderr)
        return 2

    t0 = time.time()
    preset = "demo_mini" if args.mini else "demo"
    target = TARGET[preset]
    archs = ["gpt", "lstm"] if args.arch == "both" else [args.arch]
    n_boot = _n_bootstrap(args)
    common = [f"results_dir={args.results_dir}", f"hydra.launcher.n_jobs={args.n_jobs}"]
    sweep_dirs = []
    for arch in archs:
        name = preset if arch == "gpt" else f"{preset}_{arch}"
        if args.fixed_grid:
            name += "_grid"
        sweep_dirs.append(Path(args.results_dir) / name)
        if args.fixed_grid:
            _fixed_grid(preset, arch, name, common)
            continue
        # the mini (the CI test, on cores shared with the rest of the suite, whose measured
        # seconds depend on what runs beside it) keeps the FLOP allowance alone
        wall = None if args.mini else _wall_allowance(sweep_dirs[-1], preset, arch, common)
        timed = [] if wall is None else ["--max-wall-seconds", f"{wall:.0f}"]
        _run([PY, "-m", "sweeps.adaptive", "--target-flops", f"{target:g}",
              "--allowance", f"{ALLOWANCE[preset]:g}", *timed,
              "--tolerance", f"{TOLERANCE:g}", "--max-waves", str(MAX_WAVES[preset]), "--",
              f"sweep={SEED_GRID[preset]}", f"model={arch}", f"sweep_name={name}", *common,
              "launcher=joblib"])  # fmt: skip
    t_sweep = time.time() - t0

    for sweep_dir in sweep_dirs:
        _analyse(sweep_dir, target, n_boot)
    if len(sweep_dirs) > 1:
        _run(
            [
                PY,
                "-m",
                "analysis",
                *map(str, sweep_dirs),
                "--compare",
                "--out",
                str(Path(args.results_dir) / f"{preset}_compare"),
                "--target-flops",
                f"{target:g}",
                "--n-bootstrap",
                str(n_boot),
            ],
            check=False,
        )

    verify: dict[str, Any] | None = None
    if args.verify:
        verify = _verify(sweep_dirs[0], target=target, args=args, preset=preset)

    for sweep_dir in sweep_dirs:
        _headline(sweep_dir, target)
    if verify:
        print(
            f"\npredicted at C={target:.3g}: loss {verify['predicted']:.4f}; achieved "
            f"{verify['achieved']:.4f} with N={verify['n_params']:,} D={verify['n_tokens']:,} "
            f"-> error {100 * verify['rel_error']:+.2f}%"
        )
        if verify["interval"] is not None:
            lo, hi = verify["interval"]
            where = "inside" if verify["inside"] else "OUTSIDE"
            print(
                f"recommended law {verify['calibrated_law']}: {verify['calibrated_loss']:.4f}, "
                f"calibrated 95% interval [{lo:.4f}, {hi:.4f}]: the achieved loss is {where} it"
            )
    print(
        f"\ndemo done in {time.time() - t0:.0f}s (sweeps {t_sweep:.0f}s); reports: "
        + ", ".join(str(d / "report" / "report.md") for d in sweep_dirs)
    )
    return 0


def _wall_allowance(sweep_dir: Path, preset: str, arch: str, common: list[str]) -> float:
    """The loop's wall-time allowance, fixed at its first run: read back from its loop.json on a
    rerun, so that a rerun (or --verify) continues the same loop rather than a longer one. The
    estimate itself moves once runs exist: the trainer's time model refits itself to this host's
    records (sweeps/sweep/timemodel.py; 387 s for the demo's fixed grid from the built-in
    constants on a fresh clone here, 444 s from the records after the demo)."""
    try:
        state = json.loads((sweep_dir / "waves" / "loop.json").read_text(encoding="utf-8"))
        if state.get("max_wall_seconds"):
            return float(state["max_wall_seconds"])
    except (OSError, ValueError):
        pass
    return _grid_wall_seconds(preset, arch, common)


def _grid_wall_seconds(preset: str, arch: str, common: list[str]) -> float:
    """The fixed grid's wall time on this machine (its sweep, then the two seed repeats, each
    scheduled on the demo's processes as the trainer's planner estimates them): the loop's time
    allowance, so that it keeps the fixed grid's wall time as well as its FLOPs (6ND alone let
    one small model's long run take 462 of a wave's 491 s)."""
    from sweeps.sweep.plan import plan_sweep, summary

    runs, info = plan_sweep([f"sweep={preset}", f"model={arch}",
                             "sweep_name=demo_time_estimate", *common])  # fmt: skip
    ok = [r for r in runs if not r.problem]
    repeat = min(ok, key=lambda r: (r.flops, r.n_params))  # the cheapest point, 2 seeds
    return float(summary(ok, info)["wall_s_all"] + summary([repeat, repeat], info)["wall_s_all"])


def _fixed_grid(preset: str, arch: str, name: str, common: list[str]) -> None:
    """The earlier design: the preset's fixed IsoFLOP grid, then the cheapest point again with
    two more seeds (the noise floor)."""
    budgets = preset_values(preset, "budget.flops")
    ratios = preset_values(preset, "isoflop_tokens_per_param")
    base = [PY, "-m", "sweeps.train", "-m", f"sweep={preset}", f"model={arch}",
            f"sweep_name={name}", *common]  # fmt: skip
    _run(base)
    _run([*base, f"budget.flops={min(budgets)}", f"isoflop_tokens_per_param={max(ratios)}",
          "seed=1,2"])  # fmt: skip


def _headline(sweep_dir: Path, target: float) -> None:
    """The answer, first and alone: the recommended law's prediction at the target with its
    calibrated interval; then, as secondary lines, each approach's own (labelled with what its
    interval covers), and what the loop spent."""
    try:
        fits = json.loads((sweep_dir / "report" / "fits.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    pred = fits.get("prediction") or {}
    cal = pred.get("calibrated")
    print(f"\n{sweep_dir.name}:")
    if cal:
        lo, hi = cal["interval"] if cal.get("interval") else (float("nan"), float("inf"))
        print(f"at C={target:.3g} FLOPs the recommended law {cal['law']} predicts loss "
              f"{cal['loss']:.4f} at N*={cal['n_params']:.4g}, D*={cal['n_tokens']:.4g}; "
              f"calibrated 95% interval [{lo:.4f}, {hi:.4f}] "
              f"(+-{(hi - lo) / 2 / cal['loss']:.1%})")  # fmt: skip
    print("  secondary (their 95% bootstrap intervals cover noise and estimation, not the law's "
          "extrapolation error):")  # fmt: skip
    for key in ("prediction_approach3", "prediction_approach2"):
        q = fits.get(key)
        if isinstance(q, dict) and q.get("loss") is not None:
            iv = (q.get("intervals") or {}).get("loss")
            txt = f" [{iv[0]:.4f}, {iv[1]:.4f}]" if iv else " (no interval)"
            print(f"  {key.removeprefix('prediction_')}: loss {q['loss']:.4f}{txt} at "
                  f"N*={q['n_params']:.4g}, D*={q['n_tokens']:.4g}")  # fmt: skip
    try:
        loop = json.loads((sweep_dir / "waves" / "loop.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    hist = loop.get("history") or [{}]
    last = hist[-1]
    print(f"  the sweep: {last.get('spent', 0):.3g} FLOPs in {last.get('wave', 0)} "
          f"planned wave(s) after its seed grid; stopped: {loop.get('stop')} (figure: "
          f"{sweep_dir / 'report' / 'figures' / 'interval_by_wave.png'})")  # fmt: skip
    if cal and last.get("half_width") is not None and at_optimum(last):
        # the loop's interval is the law's at its own optimum; the headline's is at the
        # allocation the report chose (approach 2's or 3's), which may differ: say where each is
        print(f"  the loop measured its interval at {at_optimum(last)}: {last['loss']:.4f} "
              f"+-{last['half_width']:.1%}")  # fmt: skip


def _verify(
    sweep_dir: Path, *, target: float, args: argparse.Namespace, preset: str
) -> dict[str, Any]:
    """Train the law's compute-optimal N* at the target compute C (D = C / 6N for the N the sizing
    policy achieves, so the run spends exactly C); compare its loss with the predicted optimum."""
    fits = json.loads((sweep_dir / "report" / "fits.json").read_text(encoding="utf-8"))
    opt = fits["prediction"]
    n_star, predicted = float(opt["n_params"]), float(opt["loss"])
    name = f"{sweep_dir.name}_verify"
    # One thread: models this small are overhead-bound, and a second thread slows them down.
    _run(
        [
            PY,
            "-m",
            "sweeps.train",
            f"model.n_params={n_star:.6g}",
            "budget=flops",
            f"budget.flops={target:g}",
            f"sweep_name={name}",
            f"results_dir={args.results_dir}",
            "threads=1",
            "n_evals=6",
        ]
    )
    run_dirs = [
        d
        for d in records.iter_run_dirs(Path(args.results_dir) / name)
        if records.run_state(d) == "done"
    ]
    rec = records.read_record(max(run_dirs, key=lambda d: d.stat().st_mtime))
    achieved = float(rec["loss"])
    cal = opt.get("calibrated") or {}
    interval = cal.get("interval")
    out = {
        "target_flops": target,
        "predicted": predicted,
        "achieved": achieved,
        "rel_error": (predicted - achieved) / achieved,
        # the recommended law's calibrated 95% interval at the predicted optimum (N*, D*)
        "calibrated_law": cal.get("law"),
        "calibrated_loss": cal.get("loss"),
        "interval": interval,
        "inside": None if interval is None else bool(interval[0] <= achieved <= interval[1]),
        "n_params": rec["n_params"],
        "n_tokens": rec["n_tokens"],
        "flops": rec["flops"],
        "run_id": rec["run_id"],
        "source": opt.get("source", ""),
    }
    records.write_json_atomic(sweep_dir / "report" / "verify.json", out)
    _analyse(sweep_dir, target, _n_bootstrap(args))
    return out


if __name__ == "__main__":
    sys.exit(main())
