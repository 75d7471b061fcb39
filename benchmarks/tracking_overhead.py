"""Tracking overhead: the same run with and without trackers, alternating (A B A B ...), each into
a fresh results folder, timed in the same invocation. Prints the wall time of each process (what
a user waits for: start-up, tracker start-up and finish included), the trainer's own time_s, the
CPU time of the process and its children (W&B's service included; far less sensitive than wall
time to other tenants on a shared machine), and the ratios of the means (tracked / plain).

    python benchmarks/tracking_overhead.py                          # all three trackers, 2 pairs
    python benchmarks/tracking_overhead.py --trackers mlflow --pairs 3
    python benchmarks/tracking_overhead.py model.n_params=1e5       # extra overrides for both
    python benchmarks/tracking_overhead.py --calls-only              # the trackers' own CPU cost

`--calls-only` makes, without training, the calls one run makes (start, 100 training points, 8
evaluations, 12 flushes, the summary, the finish) and prints the CPU seconds they cost (this
process and its children, W&B's service included): the overhead of a run is about that over the
run's own CPU time, however loaded the machine.

The default run (GPT N ~ 3e4 on the stdlib corpus, 4e6 tokens, one thread) takes a few minutes
here. The encoded corpus is built once before timing; W&B is offline, MLflow on SQLite, as by
default. Say which CPU and how loaded the machine was with any number this prints.
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
    env = dict(os.environ, OMP_NUM_THREADS="1")
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


def calls_only(trackers: list[str]) -> None:
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
        print(f"trackers {', '.join(trackers)}: {cpu() - c0:.2f} CPU s, {wall:.2f} s wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trackers", nargs="+", default=["tensorboard", "wandb", "mlflow"])
    parser.add_argument("--pairs", type=int, default=2, help="plain/tracked pairs, alternated")
    parser.add_argument("--calls-only", action="store_true", help="the trackers' CPU cost only")
    parser.add_argument("overrides", nargs="*", help="extra overrides for both runs")
    args = parser.parse_args()
    if args.calls_only:
        for name in args.trackers:
            calls_only([name])
        calls_only(args.trackers)
        return
    tracked = [f"tracker=[{','.join(args.trackers)}]"]
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        _run(Path(tmp) / "warm", cache, [*args.overrides, "budget.tokens=1e4"])  # corpus once
        times: dict[str, list[tuple[float, float, float]]] = {"plain": [], "tracked": []}
        for i in range(args.pairs):
            order = ("plain", "tracked") if i % 2 == 0 else ("tracked", "plain")
            for kind in order:
                extra = tracked if kind == "tracked" else []
                t = _run(Path(tmp) / f"{kind}{i}", cache, [*args.overrides, *extra])
                times[kind].append(t)
                print(
                    f"pair {i} {kind:>7}: wall {t[0]:7.1f} s, time_s {t[1]:7.1f} s, "
                    f"CPU {t[2]:7.1f} s",
                    flush=True,
                )
    mean = {k: [statistics.mean(x[j] for x in v) for j in (0, 1, 2)] for k, v in times.items()}
    print(
        f"trackers: {', '.join(args.trackers)}; {args.pairs} pairs; load {os.getloadavg()[0]:.1f}"
    )
    for j, name in enumerate(("wall time", "trainer time_s", "CPU time")):
        ratio = mean["tracked"][j] / mean["plain"][j]
        print(
            f"{name}: plain {mean['plain'][j]:.1f} s, tracked {mean['tracked'][j]:.1f} s, "
            f"ratio {ratio:.4f} ({100 * (ratio - 1):+.2f}%)"
        )


if __name__ == "__main__":
    main()
