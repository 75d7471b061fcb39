"""Tracking overhead: the same run without trackers and with each tracker (and all three at once),
in rounds that rotate the order (round r starts at the r-th configuration) so that a change of the
machine's load hits every configuration alike; each run in a fresh results folder (a new sweep:
the worst case, a new MLflow store and W&B folder per run). Prints, per configuration, the mean
wall time of the process (what a user waits for: start-up, tracker start-up and finish included),
the trainer's own time_s and the CPU time of the process and its children, and their ratios to
the plain runs of the same invocation, with the 1-minute load average at the start and the end.

    python benchmarks/tracking_overhead.py                          # 2 rounds of 5 runs
    python benchmarks/tracking_overhead.py --configs mlflow --rounds 3
    python benchmarks/tracking_overhead.py budget.tokens=3e6         # extra overrides for all
    python benchmarks/tracking_overhead.py --calls-only              # the trackers' own CPU cost

`--calls-only` makes, without training, the calls one run makes (load, start, 100 training points,
8 evaluations, 12 flushes, the summary, the finish), each configuration in a fresh process (its
imports included) with MLflow's template already made, and prints the CPU seconds they cost (the
process and its waited-for children; W&B's service process is not among them): the overhead of a
run is about that over the run's own CPU time.

The default run (GPT N ~ 3e4 on the stdlib corpus, 4e6 tokens, one thread) takes about 3 minutes
on this project's 2-core Xeon under the load of two other engineers (load average ~5). The
encoded corpus and MLflow's empty-store template are made by a warm-up run before timing; W&B is
offline, MLflow on SQLite, as by default. Say which CPU and how loaded the machine was with any
number this prints.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = [
    "model.n_params=3e4",
    "budget.tokens=4e6",
    "optim.batch_size=16",
    "threads=1",
    "progress=none",
    "precision=fp32",
    "device=cpu",
]
ALL = "all"  # every tracker at once
TRACKERS = ("tensorboard", "wandb", "mlflow")


def _tracker_overrides(config: str) -> list[str]:
    if config == "plain":
        return []
    names = TRACKERS if config == ALL else (config,)
    return [f"tracker=[{','.join(names)}]"]


def _run(results: Path, cache: Path, overrides: list[str]) -> tuple[float, float, float]:
    cmd = [
        sys.executable,
        "-m",
        "sweeps.train",
        *BASE,
        f"results_dir={results}",
        f"data.cache_dir={cache}",
        *overrides,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", SCALING_SWEEPS_CACHE=str(cache))
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("WANDB_MODE", None)
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    if proc.returncode != 0 or "warning: tracker" in proc.stderr:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    (record,) = results.glob("*/*/record.json")
    return wall, float(json.loads(record.read_text())["time_s"]), cpu


def calls_only(trackers: list[str], note: str = "") -> None:
    from sweeps.config import TrackerConfig
    from sweeps.tracking.fanout import RunInfo, open_tracking

    def cpu() -> float:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + kids.ru_utime + kids.ru_stime

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrackerConfig(**{name: True for name in trackers})  # type: ignore[arg-type]
        params = {f"group.key{i}": float(i) for i in range(60)}
        info = RunInfo("abcdef012345", "overhead", tmp, params, {"arch": "gpt"})
        c0, t0 = cpu(), time.perf_counter()
        tracking = open_tracking(cfg, info, label="overhead")
        assert tracking is not None
        tracking.start(resume_step=0)
        for step in range(1, 101):
            tracking.log(step, {f"train/m{j}": step * 1e-3 + j for j in range(5)})
            if step % 12 == 0:
                tracking.log(step, {f"val/m{j}": 1.0 / step + j for j in range(7)})
            if step % 8 == 0:
                tracking.flush()
        tracking.summary({f"s{j}": float(j) for j in range(19)})
        tracking.finish("ok")
        wall = time.perf_counter() - t0
        print(f"trackers {', '.join(trackers)}: {cpu() - c0:.2f} CPU s, {wall:.2f} s wall{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs",
        nargs="+",
        default=[*TRACKERS, ALL],
        choices=[*TRACKERS, ALL],
        help="tracked configurations, each against the plain run ('all': the three at once)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of one run per config")
    parser.add_argument("--calls-only", action="store_true", help="the trackers' CPU cost only")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run")
    args = parser.parse_args()
    if args.calls_only:
        here = Path(__file__).resolve().parent
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, SCALING_SWEEPS_CACHE=tmp)  # MLflow's template: made once
            for i, name in enumerate(["mlflow", *args.configs]):
                names = list(TRACKERS) if name == ALL else [name]
                note = " (MLflow's empty-store template made: once per machine)" if i == 0 else ""
                code = f"import tracking_overhead as t; t.calls_only({names!r}, {note!r})"
                subprocess.run([sys.executable, "-c", code], cwd=here, env=env, check=True)
        return
    configs = ["plain", *args.configs]
    load0 = os.getloadavg()[0]
    times: dict[str, list[tuple[float, float, float]]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        warm = [*args.overrides, "budget.tokens=1e4", *_tracker_overrides(ALL)]
        _run(Path(tmp) / "warm", cache, warm)  # corpus, MLflow's template, the page cache
        for r in range(args.rounds):
            shift = r % len(configs)
            for config in configs[shift:] + configs[:shift]:
                extra = [*args.overrides, *_tracker_overrides(config)]
                t = _run(Path(tmp) / f"{config}{r}", cache, extra)
                times[config].append(t)
                print(
                    f"round {r} {config:>11}: wall {t[0]:7.1f} s, time_s {t[1]:7.1f} s, "
                    f"CPU {t[2]:7.1f} s, load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    mean = {c: [statistics.mean(x[j] for x in v) for j in (0, 1, 2)] for c, v in times.items()}
    print(
        f"\n{args.rounds} rounds; runs: {' '.join(BASE + args.overrides)}; 1-minute load average "
        f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end\n"
    )
    print("| tracker | wall s | wall ratio | trainer time_s | ratio | CPU s | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for config in configs:
        cells = []
        for j in (0, 1, 2):
            ratio = mean[config][j] / mean["plain"][j]
            cells += [f"{mean[config][j]:.1f}", f"{ratio:.3f} ({100 * (ratio - 1):+.1f}%)"]
        name = "all three" if config == ALL else config
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
