"""`python -m sweeps.adaptive --target-flops C --allowance F [--tolerance 0.03] [-- overrides]`:
a sweep that plans itself.

Starts from a small seed grid (the overrides after `--`; default `sweep=adaptive`, a 3 x 3
IsoFLOP design on the embedded corpus) and repeats: propose a wave (`python -m sweeps.next`'s
planner: the runs that narrow the recommended law's calibrated 95% interval at the target most
per FLOP, or per second where a time allowance binds), train it, refit. It stops, and says which,
when
- the calibrated 95% interval at the target is within +-tolerance, calibrated on at least
  `MIN_FOLDS` (2) back-test folds (one held-out rung cannot check the calibration rule), or
- the allowance is spent (every finished run of the sweep counts, the seed grid included), or
  a time allowance is: `--max-seconds`, the runs' measured training seconds summed (as
  GPU-hours are), or `--max-wall-seconds`, the loop's own clock time (seed grid, waves and the
  refits between them; a wave is trimmed to its estimated wall time on the launcher's processes,
  leaving time for one more refit), or
- no proposal helps (nothing affordable narrows the interval by 0.3% of its variance,
  analysis/planning/select.py MIN_GAIN), or
- `--max-waves` waves have run (default 3; each wave spends at most half of what is left, all
  of it where half buys nothing, the last all of it).
`--max-runs K` caps each wave's runs; `--arch` names the model family where the results mix
several. The waves take the overrides after `--` that say how to run (`WAVE_KEYS`: launcher,
tracker, threads, device, ...), not the seed grid's values; where none names a launcher they run on
the seed grid's (joblib for `sweep=adaptive`).
The loop's state is `results/<sweep>/waves/loop.json` (written atomically after each step): the
history of the target's interval against cumulative compute, wave by wave (the report draws it),
and which wave was launched and whether it finished. A rerun after a kill continues where it
stopped: a wave launched and not finished is relaunched as it was (its finished runs are skipped,
a run with a checkpoint resumes), and nothing is trained twice.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sweeps import records
from sweeps.errors import UserError
from sweeps.next import positive_number
from sweeps.sweep.loop_rules import (
    MAX_WAVES,
    at_optimum,
    stop_reason,
    time_for_wave,
    wave_allowance,
    wave_within_time,
)

__all__ = ["LOOP_FILE", "WAVE_KEYS", "main", "run_loop", "spent_flops", "spent_seconds"]

PY = sys.executable
LOOP_FILE = "loop.json"
# overrides after `--` that also apply to the waves (how to run, not what): the rest (the seed
# grid's preset and its values) are the seed grid's alone. data.cache_dir: where this machine
# caches the data (the waves' settings copy the records' data less it; before, a seed grid's
# cache folder was not the waves', which built the corpus again under the default one)
WAVE_KEYS = ("launcher", "hydra.launcher", "hydra/launcher", "tracker", "threads", "device",
             "progress", "gpus_per_run", "checkpoint_every_s", "~tracker", "+tracker",
             "data.cache_dir")  # fmt: skip


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _run(cmd: list[str]) -> int:
    _say("\n$ python " + " ".join(shlex.quote(c) for c in cmd[1:]))
    return subprocess.run(cmd).returncode


def spent_flops(sweep_dir: Path) -> float:
    """FLOPs of the sweep's trained runs (records ok or diverged; skipped runs trained nothing)."""
    return _spent(sweep_dir, "flops")


def spent_seconds(sweep_dir: Path) -> float:
    """Training seconds of the sweep's trained runs, summed (run-seconds, as GPU-hours are: each
    record's measured `time_s`, whatever ran beside it)."""
    return _spent(sweep_dir, "time_s")


def _spent(sweep_dir: Path, key: str) -> float:
    total = 0.0
    for d in records.iter_run_dirs(sweep_dir):
        if records.run_state(d) != "done":
            continue
        try:
            rec = records.read_record(d)
        except records.RecordError:
            continue
        if rec.get("status") in ("ok", "diverged") and rec.get(key):
            total += float(rec[key])
    return total


def _wave_extra(extra: list[str], seed_launcher: str | None = None) -> list[str]:
    """The overrides after `--` that the waves take too (`WAVE_KEYS`), and the seed grid's
    launcher where none is given there: a seed grid preset that runs on joblib (`sweep=adaptive`)
    had its waves run one run at a time on the default launcher."""
    out = [o for o in extra if o.split("=")[0].startswith(WAVE_KEYS)]
    if seed_launcher and not any(o.split("=")[0] in ("launcher", "hydra/launcher") for o in out):
        out.insert(0, f"launcher={seed_launcher}")
    return out


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise UserError(str(path), f"cannot be read ({e})",
                        "move it aside to restart the loop's history") from e  # fmt: skip


def _seed_grid(
    extra: list[str],
) -> tuple[Path, list[Any], dict[str, Any], list[str], str | None]:
    """(the sweep folder, the seed grid's planned runs, the planner's info, its training
    command, its launcher); trains nothing."""
    from omegaconf import OmegaConf

    from sweeps.sweep.expand import expand_sweep
    from sweeps.sweep.plan import plan_sweep

    overrides = extra if any(o.startswith("sweep=") for o in extra) else ["sweep=adaptive", *extra]
    runs, info = plan_sweep(overrides)
    m = expand_sweep(overrides).master
    sweep_dir = Path(str(m.results_dir)) / str(m.sweep_name)
    launcher = OmegaConf.select(m, "hydra.runtime.choices.launcher")
    return (sweep_dir, runs, info, [PY, "-m", "sweeps.train", "-m", *overrides],
            None if launcher is None else str(launcher))  # fmt: skip


def run_loop(
    *,
    target: float,
    allowance: float,
    tolerance: float,
    max_waves: int,
    extra: list[str],
    arch: str | None = None,
    max_runs: int | None = None,
    max_seconds: float | None = None,
    max_wall_s: float | None = None,
) -> tuple[str, Path]:
    """Run the loop (module docstring); (why it stopped, the sweep folder). max_seconds: a time
    allowance too, in run-seconds (`spent_seconds`), each wave trimmed to what is left of it;
    max_wall_s: one in the loop's clock seconds (kept in loop.json across reruns; a kill loses
    the clock since the last save, at most one wave)."""
    from sweeps.next import Wave, next_wave, planner, train_command
    from sweeps.sweep.plan import summary
    from sweeps.sweep.wavecost import longest_run, seconds_model, smallest_size, wave_workers
    from sweeps.sweep.waves import WAVES_DIR, check_same_data, wave_dir

    sweep_dir, runs, info, grid_cmd, seed_launcher = _seed_grid(extra)
    grid_flops = sum(r.flops for r in runs if not r.problem)
    largest = max((r.flops for r in runs if not r.problem), default=0.0)
    if not target > largest:
        raise UserError("--target-flops", f"{target:g} is not beyond the seed grid's largest run "
                        f"({largest:.3g} FLOPs)", "give a larger target budget")  # fmt: skip
    if grid_flops > allowance:
        raise UserError(
            "--allowance", f"{allowance:.3g} FLOPs is below the seed grid's {grid_flops:.3g}",
            "raise it, or give a smaller seed grid after --",
        )
    grid_wall = summary(runs, info)["wall_s_remaining"]
    if max_wall_s is not None and grid_wall > max_wall_s:
        raise UserError("--max-wall-seconds", f"{max_wall_s:g} s is below the seed grid's "
                        f"estimated {grid_wall:.0f} s here", "raise it, or give a smaller seed "
                        "grid after --")  # fmt: skip
    state_path = sweep_dir / WAVES_DIR / LOOP_FILE
    state = _read_state(state_path)
    if state and (state.get("target_flops") != target):
        raise UserError("--target-flops", f"{target:g} differs from this loop's "
                        f"{state.get('target_flops'):g} ({state_path})",
                        "rerun with the same target, or use another sweep_name")  # fmt: skip
    state = state or {"target_flops": target, "history": [], "launched": None,
                      "finished": True, "stop": None}  # fmt: skip
    state |= {"allowance": allowance, "tolerance": tolerance, "max_seconds": max_seconds,
              "max_wall_seconds": max_wall_s}  # fmt: skip
    t_start, wall_before = time.monotonic(), float(state.get("wall_s", 0.0))

    def wall() -> float:  # the loop's clock seconds, this run and those before a kill
        return wall_before + time.monotonic() - t_start

    def save() -> None:
        state["wall_s"] = wall()
        records.write_json_atomic(state_path, state)

    wave_extra = _wave_extra(extra, seed_launcher)
    check_same_data(sweep_dir, arch, wave_extra)  # nothing more trains on other data than theirs
    if any(r.state != "done" for r in runs) and _run(grid_cmd) != 0:  # a rerun skips a done grid
        raise UserError("seed grid", "its sweep failed (see above)", "fix it and rerun")
    timed = max_wall_s is not None or max_seconds is not None
    workers = wave_workers(wave_extra) if timed else 1  # what the time allowances are priced on
    while True:
        if state["launched"] is not None and not state["finished"]:  # killed mid-wave: go on
            k = int(state["launched"])
            if _run(train_command(wave_dir(sweep_dir, k), wave_extra)) != 0:
                raise UserError(f"wave {k}", "its sweep failed (see above)", "fix it and rerun")
            state["finished"] = True
            save()
        t_step = time.monotonic()  # this step's refit and planning start here
        spent = spent_flops(sweep_dir)
        left = allowance - spent
        spent_s = spent_seconds(sweep_dir)
        left_s = math.inf if max_seconds is None else max_seconds - spent_s
        n_waves = int(state["launched"] or 0)
        wave_allow = wave_allowance(left, n_waves, max_waves)

        left_wall = math.inf if max_wall_s is None else max_wall_s - wall()
        # where time binds, the planner prices runs in seconds on the launcher's workers and is
        # handed what is left of each time allowance (`time_for_wave`)
        last_step = float(state.get("step_s", 0.0))
        secs = None
        if timed and min(left_wall, left_s) > 0:
            secs = seconds_model(sweep_dir, arch, workers)

        def ask(allow: float, min_n: float = smallest_size(sweep_dir, arch),
                max_d: float = longest_run(sweep_dir, arch), in_time: bool = True,
                secs: dict[str, Any] | None = secs, left_wall: float = left_wall,
                left_s: float = left_s, t_step: float = t_step, last_step: float = last_step,
                ) -> dict[str, Any]:  # fmt: skip
            wall_s = run_s = None
            if in_time and secs is not None:
                if max_wall_s is not None:
                    wall_s = time_for_wave(left_wall, time.monotonic() - t_step, last_step,
                                           on_clock=True)  # fmt: skip
                if max_seconds is not None:
                    run_s = time_for_wave(left_s, 0.0, last_step, on_clock=False)
            try:
                return planner(sweep_dir, target, allow, max_runs=max_runs, arch=arch,
                               min_params=min_n, max_tokens=max_d, seconds=secs,
                               max_wall_s=wall_s,
                               max_seconds=run_s)  # fmt: skip
            except UserError as e:  # an allowance that buys nothing is a stop, not a mistake
                if e.field not in ("--allowance", "--max-wall-seconds", "--max-seconds"):
                    raise
                return {"runs": [], "stop": e.problem, "target": None}

        go_on = left > 0 and left_s > 0 and left_wall > 0 and n_waves < max_waves
        prop = ask(wave_allow) if go_on else None
        if prop is not None and not prop["runs"] and wave_allow < left:  # half buys nothing: all
            prop = ask(left)
        if prop is None or prop["target"] is None:  # the target's interval, whatever is left
            t = ask(max(allowance, 1.0) * 1e6, in_time=False)["target"]
        else:
            t = prop["target"]
        point = {"wave": n_waves, "spent": spent, "seconds": spent_s, "wall_s": wall(),
                 "loss": t["loss"], "n_params": t.get("n_params"), "n_tokens": t.get("n_tokens"),
                 "interval": t["interval"],
                 "half_width": t["half_width"], "law": t["law"], "backtested": t["backtested"],
                 "time": time.time()}  # fmt: skip
        hist = state["history"]
        if not hist or hist[-1]["wave"] != n_waves:
            hist.append(point)
        else:
            hist[-1] = point
        stop = stop_reason(t, prop, spent=spent, allowance=allowance, tolerance=tolerance,
                           n_waves=n_waves, max_waves=max_waves)  # fmt: skip
        if stop is None and left_s <= 0:
            stop = (f"time allowance: {spent_s:.0f} of {max_seconds:g} run-seconds of training "
                    "spent (--max-seconds)")  # fmt: skip
        if stop is None and left_wall <= 0:
            stop = (f"wall-time allowance: {wall():.0f} of {max_wall_s:g} s spent "
                    "(--max-wall-seconds)")  # fmt: skip
        if stop is not None:
            state["stop"] = stop
            save()
            return stop, sweep_dir
        assert prop is not None
        # the refit after the wave takes about as long as this step's planning did
        step_s = time.monotonic() - t_step
        state["step_s"] = step_s

        def make(p: dict[str, Any], step_s: float = step_s, left_s: float = left_s) -> Wave | str:
            wall_left = None if max_wall_s is None else max_wall_s - wall() - step_s
            return next_wave(sweep_dir, target, float(p["allowance"]), arch=arch,
                             extra=wave_extra, proposal=p, max_runs=max_runs,
                             max_seconds=None if max_seconds is None else left_s,
                             max_wall_s=wall_left)  # fmt: skip

        wave, prop = wave_within_time(make, ask, prop)
        if not isinstance(wave, Wave):
            kind = ("wall-time allowance" if "--max-wall-seconds" in wave else
                    "time allowance" if "--max-seconds" in wave else "no proposal helps")
            state["stop"] = f"{kind}: {wave}"
            save()
            return state["stop"], sweep_dir
        _say(f"\nwave {wave.k}: {len(wave.runs)} run(s), "
             f"{sum(r['flops'] for r in wave.runs):.3g} FLOPs; the target's 95% interval now "
             f"+-{t['half_width']:.1%}, expected after it "
             f"+-{prop['expected']['half_width']:.1%} (with today's calibration, which the new "
             "runs' back-test folds can widen)")  # fmt: skip
        for d in wave.dropped:
            _say(f"  dropped: {d}")
        state |= {"launched": wave.k, "finished": False, "stop": None}
        save()
        if _run(wave.command) != 0:
            raise UserError(f"wave {wave.k}", "its sweep failed (see above)", "fix it and rerun")
        state["finished"] = True
        save()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sweeps.adaptive",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("--target-flops", type=positive_number, required=True)
    p.add_argument("--allowance", type=positive_number, required=True,
                   help="FLOPs the whole loop may spend, the seed grid included")  # fmt: skip
    p.add_argument("--tolerance", type=positive_number, default=0.03,
                   help="stop when the 95%% interval at the target is within +- this")  # fmt: skip
    p.add_argument("--max-waves", type=int, default=MAX_WAVES,
                   help=f"waves after the seed grid, at most (default {MAX_WAVES}; each spends "
                   "half of what is left, all of it where half buys nothing, the last all of "
                   "it)")  # fmt: skip
    p.add_argument("--max-runs", type=int, default=None, help="runs per wave, at most")
    p.add_argument("--max-seconds", type=positive_number, default=None,
                   help="training run-seconds the loop may spend too, the seed grid included")
    p.add_argument("--max-wall-seconds", type=positive_number, default=None,
                   help="clock seconds the loop may take, the seed grid and refits included")
    p.add_argument("--arch", default=None)
    p.add_argument("overrides", nargs="*", help="after --: the seed grid's Hydra overrides")
    args = p.parse_args(argv)
    try:
        if args.max_waves < 0:
            raise UserError("--max-waves", f"must be >= 0, got {args.max_waves}", "--max-waves 3")
        if args.max_runs is not None and args.max_runs < 1:
            raise UserError("--max-runs", f"must be >= 1, got {args.max_runs}", "--max-runs 5")
        stop, sweep_dir = run_loop(target=args.target_flops, allowance=args.allowance,
                                   tolerance=args.tolerance, max_waves=args.max_waves,
                                   extra=args.overrides, arch=args.arch,
                                   max_runs=args.max_runs,
                                   max_seconds=args.max_seconds,
                                   max_wall_s=args.max_wall_seconds)  # fmt: skip
    except UserError as e:
        print(f"error: {e.line()}", file=sys.stderr)
        return 2
    state = json.loads((sweep_dir / "waves" / LOOP_FILE).read_text(encoding="utf-8"))
    last = state["history"][-1]
    lo, hi = last["interval"] or (math.nan, math.inf)
    print(f"stopped: {stop}")
    where = f" ({at_optimum(last)})" if at_optimum(last) else ""
    print(f"recommended law {last['law']} at C={args.target_flops:.3g}{where}: "
          f"{last['loss']:.4f}, calibrated 95% interval [{lo:.4f}, {hi:.4f}] "
          f"(+-{last['half_width']:.1%}) after {last['spent']:.3g} FLOPs in {last['wave']} "
          "wave(s)")  # fmt: skip
    for h in state["history"]:
        secs = (f" ({h['seconds']:.0f} run-seconds, {h['wall_s']:.0f} s of wall time)"
                if h.get("seconds") and h.get("wall_s") else "")  # fmt: skip
        print(f"  wave {h['wave']}: {h['spent']:.3g} FLOPs spent{secs}, {h['loss']:.4f} "
              f"+-{h['half_width']:.1%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
