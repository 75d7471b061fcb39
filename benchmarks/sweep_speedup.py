"""Sweep parallel speed-up: the same sweep under Hydra's basic launcher (one process, runs one
after another) and under joblib (one process per run, `--n-jobs` at once), each into a fresh
results folder, timed in the same invocation. Prints both wall times and the ratio.

    python benchmarks/sweep_speedup.py                      # sweep=demo_mini (11 runs on pystdlib)
    python benchmarks/sweep_speedup.py --preset smoke       # seconds; start-up dominated

The encoded corpus is built once before timing, so neither side pays for it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _sweep(preset: str, launcher: str, results: Path, n_jobs: int, extra: list[str]) -> float:
    cmd = [
        sys.executable,
        "-m",
        "sweeps.train",
        "-m",
        f"sweep={preset}",
        f"launcher={launcher}",
        f"results_dir={results}",
        "progress=none",
        "threads=1",
        *extra,
    ]
    if launcher == "joblib":
        cmd.append(f"hydra.launcher.n_jobs={n_jobs}")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"sweep failed ({launcher}):\n{proc.stderr[-3000:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="demo_mini")
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("extra", nargs="*", help="more overrides for both sweeps")
    args = p.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        # Warm the pystdlib cache (and the import caches) outside the timed region.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "sweeps.train",
                "budget=steps",
                "budget.steps=1",
                f"results_dir={tmp_path / 'warm'}",
                "progress=none",
            ],
            check=True,
            capture_output=True,
        )
        local = _sweep(args.preset, "local", tmp_path / "local", 1, args.extra)
        joblib = _sweep(args.preset, "joblib", tmp_path / "joblib", args.n_jobs, args.extra)
    print(f"preset {args.preset}, load average at start {load:.2f} on {os.cpu_count()} cores")
    print(f"basic launcher (1 process, sequential): {local:7.1f} s")
    print(f"joblib, {args.n_jobs} processes x 1 thread:    {joblib:7.1f} s")
    print(f"speed-up (basic / joblib): {local / joblib:.2f}x")


if __name__ == "__main__":
    main()
