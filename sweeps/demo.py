"""The whole demo in one command: an IsoFLOP sweep on the embedded corpus, a seed-noise floor,
the fitted laws and their report, and (with --verify) a check of the law's own prediction.

    python -m sweeps.demo                 # GPT, 3 budgets x 5 sizes, then the report
    python -m sweeps.demo --verify        # ... then train the predicted optimum at 10x compute
    python -m sweeps.demo --arch both     # GPT and LSTM laws on one figure (Kaplan et al. Fig. 7)
    python -m sweeps.demo --mini          # a ~2-minute miniature (the CI test runs it)

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

__all__ = ["main", "preset_values"]

PY = sys.executable


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
    budgets = preset_values(preset, "budget.flops")
    ratios = preset_values(preset, "isoflop_tokens_per_param")
    target = 10 * max(budgets)
    archs = ["gpt", "lstm"] if args.arch == "both" else [args.arch]
    n_boot = _n_bootstrap(args)
    common = [f"results_dir={args.results_dir}", f"hydra.launcher.n_jobs={args.n_jobs}"]
    sweep_dirs = []
    for arch in archs:
        name = preset if arch == "gpt" else f"{preset}_{arch}"
        sweep_dirs.append(Path(args.results_dir) / name)
        base = [
            PY,
            "-m",
            "sweeps.train",
            "-m",
            f"sweep={preset}",
            f"model={arch}",
            f"sweep_name={name}",
            *common,
        ]
        _run(base)
        # Noise floor: the cheapest point again with two more seeds.
        _run(
            [
                *base,
                f"budget.flops={min(budgets)}",
                f"isoflop_tokens_per_param={max(ratios)}",
                "seed=1,2",
            ]
        )
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
