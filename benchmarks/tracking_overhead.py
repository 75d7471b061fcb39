"""Tracking overhead: the same run without trackers and with each tracker (and all three at once),
as pairs (plain, tracked) started at the same time, so that the machine's load, which moves by 2x
within minutes on a shared machine, hits both runs of a pair alike (`--sequential`: one after the
other, alternating which goes first). Each run in a fresh results folder (a new sweep: a new
MLflow store and W&B folder per run). Prints, per configuration, the mean wall time of the process
(what a user waits for: start-up, tracker start-up and finish included), the trainer's own time_s
and the CPU time of the process and its children, and the ratios tracked / plain, with the
1-minute load average at the start and the end. A pair's two runs also compete with each other:
the one that ends first leaves its core to the other, which slightly shrinks the wall-time gap;
the CPU-time ratio has no such bias.

    python benchmarks/tracking_overhead.py                          # 4 pairs: each tracker, all
    python benchmarks/tracking_overhead.py --configs mlflow --rounds 3
    python benchmarks/tracking_overhead.py budget.tokens=1.2e7 --configs all   # overrides first
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


Timing = tuple[float, float, float]  # wall s, the record's time_s, CPU s (process + children)


def _launch(runs: list[tuple[Path, Path, list[str]]]) -> list[Timing]:
    """Start these runs (results folder, cache, overrides) at once; each one's own wall and CPU
    time (`os.wait4` reaps whichever ends first, with its rusage)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("WANDB_MODE", None)
    procs: dict[int, tuple[int, subprocess.Popen[bytes], float, list[str]]] = {}
    for i, (results, cache, overrides) in enumerate(runs):
        cmd = [sys.executable, "-m", "sweeps.train", *BASE, f"results_dir={results}"]
        cmd += [f"data.cache_dir={cache}", *overrides]
        results.mkdir(parents=True)
        err = open(results / "stderr.txt", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**env, "SCALING_SWEEPS_CACHE": str(cache)},
        )
        err.close()
        procs[proc.pid] = (i, proc, time.perf_counter(), cmd)
    out: list[Timing | None] = [None] * len(runs)
    while procs:
        pid, status, usage = os.wait4(-1, 0)
        if pid not in procs:
            continue
        i, proc, t0, cmd = procs.pop(pid)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        results = runs[i][0]
        stderr = (results / "stderr.txt").read_text(errors="replace")
        if proc.returncode != 0 or "warning: tracker" in stderr:
            sys.exit(f"error: {' '.join(cmd)} failed:\n{stderr[-3000:]}")
        (record,) = results.glob("*/*/record.json")
        time_s = float(json.loads(record.read_text())["time_s"])
        out[i] = (wall, time_s, usage.ru_utime + usage.ru_stime)
    return [t for t in out if t is not None]


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
    parser.add_argument("--rounds", type=int, default=1, help="pairs per configuration")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="run each pair one after the other (alternating) instead of at the same time",
    )
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
    load0 = os.getloadavg()[0]
    plain: dict[str, list[Timing]] = {c: [] for c in args.configs}  # each config's references
    tracked: dict[str, list[Timing]] = {c: [] for c in args.configs}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        warm = [*args.overrides, "budget.tokens=1e4", *_tracker_overrides(ALL)]
        _launch([(Path(tmp) / "warm", cache, warm)])  # corpus, MLflow's template, page cache
        for r in range(args.rounds):
            for config in args.configs:
                runs = [
                    (Path(tmp) / f"plain-{config}{r}", cache, list(args.overrides)),
                    (
                        Path(tmp) / f"{config}{r}",
                        cache,
                        [*args.overrides, *_tracker_overrides(config)],
                    ),
                ]
                if args.sequential:  # alternate which goes first
                    order = (0, 1) if (r + args.configs.index(config)) % 2 == 0 else (1, 0)
                    got = {i: _launch([runs[i]])[0] for i in order}
                    pair = [got[0], got[1]]
                else:
                    pair = _launch(runs)
                plain[config].append(pair[0])
                tracked[config].append(pair[1])
                print(
                    f"round {r} {config:>11}: "
                    + ", ".join(
                        f"{kind} wall {t[0]:6.1f} s time_s {t[1]:6.1f} s CPU {t[2]:6.1f} s"
                        for kind, t in (("plain", pair[0]), ("tracked", pair[1]))
                    )
                    + f"; load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    mode = "one after the other" if args.sequential else "each pair at the same time"
    print(
        f"\n{args.rounds} round(s), plain and tracked {mode}; "
        f"runs: {' '.join(BASE + args.overrides)}; 1-minute load average {load0:.1f} "
        f"at the start, {os.getloadavg()[0]:.1f} at the end\n"
    )
    print("| tracker | wall s plain / tracked | ratio | trainer time_s | ratio | CPU s | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for config in args.configs:
        cells = []
        for j in (0, 1, 2):
            a = statistics.mean(t[j] for t in plain[config])
            b = statistics.mean(t[j] for t in tracked[config])
            cells += [f"{a:.1f} / {b:.1f}", f"{b / a:.3f} ({100 * (b / a - 1):+.1f}%)"]
        name = "all three" if config == ALL else config
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
