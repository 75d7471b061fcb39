"""`python -m sweeps.next RESULTS --target-flops C --allowance F`: the next wave of a sweep.

Reads a finished sweep (RESULTS = results/<sweep_name>), asks the analysis which runs would narrow
the recommended law's calibrated 95% interval at the target budget most per FLOP (per second
where a time allowance binds) within the allowance (`python -m analysis.planning`, run as a
subprocess: sweeps/ never imports analysis/; the criterion is in analysis/planning/value.py,
docs/planning.md), writes them as a sweep config
(sweeps/sweep/waves.py), sizes each run with the trainer's own planner (shape, steps, wall time)
and prints one row per run: N, D, C, shape, estimated time, and why.

    python -m sweeps.next results/isoflop --target-flops 1e13 --allowance 5e12
    python -m sweeps.next results/isoflop --target-flops 1e13 --allowance 5e12 --launch
    python -m sweeps.next results/isoflop --target-flops 1e13 --allowance 5e12 -- launcher=slurm

--launch runs the wave (`python -m sweeps.train -m` with the wave's overrides and any given after
`--`, the launcher among them: the wave's config names none, so without one it runs on the
default, one run at a time); --json prints the wave (its config, command, sized runs, those
dropped, and the proposal) as one JSON document. --max-runs caps the runs; --max-seconds and
--max-wall-seconds keep the wave's estimated run-seconds or wall time under a limit; --arch names
the model family where the results mix several. A bad input (an allowance below one run, a
target below the largest run, a folder with nothing to fit) is one `error:` line, exit 2, and
nothing written.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps import records
from sweeps.errors import UserError

__all__ = ["Wave", "main", "next_wave", "planner", "positive_number", "train_command"]

PY = sys.executable
# sizes a new IsoFLOP slice keeps, at least, when a wave is trimmed: the analysis repairs a
# sweep's slice of 2 or more sizes toward 5 in later waves (analysis/planning/candidates.py), but
# a budget with one size has no slice, and would be proposed whole again
MIN_SLICE_SIZES = 2

@dataclass
class Wave:
    """A written wave: its number, folder, runs (as planned), command and the proposal."""

    k: int
    path: Path
    runs: list[dict[str, Any]]
    command: list[str]
    proposal: dict[str, Any]
    wall_s: float
    dropped: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"wave": self.k, "config": str(self.path), "command": self.command,
                "runs": self.runs, "est_wall_s": self.wall_s, "dropped": self.dropped,
                "proposal": self.proposal}  # fmt: skip


def planner(sweep_dir: Path, target: float, allowance: float, *, max_runs: int | None,
            arch: str | None, min_params: float = 0.0, max_tokens: float = math.inf,
            seconds: dict[str, Any] | None = None,
            max_wall_s: float | None = None,
            max_seconds: float | None = None) -> dict[str, Any]:  # fmt: skip
    """The analysis's proposal (`python -m analysis.planning --json`); UserError with its line.
    min_params, max_tokens: the smallest model the sweep builds and the most tokens a run may see
    (sweeps/sweep/wavecost.py smallest_size, longest_run).
    seconds, max_wall_s, max_seconds: what a run takes here (sweeps/sweep/wavecost.py), and the
    wall time and the run-seconds the wave may take (either, both or neither), so that the
    planner ranks by seconds where time binds; the flags are the same as this module's."""
    cmd = [PY, "-m", "analysis.planning", str(sweep_dir), "--target-flops", f"{target:g}",
           "--allowance", f"{allowance:g}", "--min-params", f"{min_params:g}",
           "--json"]  # fmt: skip
    if seconds is not None and (max_wall_s is not None or max_seconds is not None):
        cmd += ["--seconds-model", json.dumps(seconds)]
        for flag, limit in (("--max-wall-seconds", max_wall_s), ("--max-seconds", max_seconds)):
            cmd += [flag, f"{limit:g}"] if limit is not None else []
    if math.isfinite(max_tokens):
        cmd += ["--max-tokens", f"{max_tokens:g}"]
    if max_runs is not None:
        cmd += ["--max-runs", str(max_runs)]
    if arch is not None:
        cmd += ["--arch", arch]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        lines = [ln for ln in out.stderr.strip().splitlines() if ln.startswith("error:")]
        line = lines[-1].removeprefix("error: ") if lines else out.stderr.strip()[-500:]
        field, _, problem = line.partition(": ") if line.startswith("--") else ("RESULTS", "", line)
        raise UserError(field, problem.strip().rstrip("."))
    return json.loads(out.stdout)

def train_command(wave: Path, extra: list[str]) -> list[str]:
    from sweeps.sweep.waves import train_overrides

    return [PY, "-m", "sweeps.train", "-m", *train_overrides(wave), *extra]

def _seed_row(row: dict[str, Any], recs: list[dict[str, Any]]) -> dict[str, Any]:
    """A seed run repeats a finished run's config exactly (its own n_params target and budget),
    so the two differ by seed alone and the analysis pools them as seed noise."""
    def gap(r: dict[str, Any]) -> float:
        return abs(math.log(r["n_params"] / row["n_params"])) + abs(
            math.log(r["n_tokens"] / row["n_tokens"]))  # fmt: skip

    ok = [r for r in recs if r.get("status") == "ok" and (r.get("config") or {}).get("budget")]
    src = min(ok, key=gap)["config"]
    flops = src["budget"].get("flops")
    return row | {"n_params": float(src["model"]["n_params"]),
                  "flops": float(flops) if flops else row["flops"]}  # fmt: skip

def _sizable(rows: list[dict[str, Any]], settings: dict[str, Any], recs: list[dict[str, Any]],
             dropped: list[str]) -> list[dict[str, Any]]:  # fmt: skip
    """The rows the sizing policy can build, each shape once per budget (two sizes that round to
    one shape would train one model twice); what was left out goes to `dropped`."""
    from models.sizing import solve_shape

    m = settings["model"]
    vocab = next((int(r["shape"]["vocab_size"]) for r in recs if r.get("shape")), 256)
    seen, out = set(), []
    for r in rows:
        try:
            shape = solve_shape(
                m["arch"], n_params=r["n_params"], vocab_size=vocab, context=int(m["context"]),
                tied=bool(m.get("tied")), min_layers=int(m.get("min_layers", 2)),
                n_head=m.get("n_head"),
            )
        except ValueError:
            dropped.append(f"N={r['n_params']:.3g} at C={r['flops']:.3g}: below the smallest "
                           f"{m['arch']} shape of the sizing policy")  # fmt: skip
            continue
        key = (repr(shape), round(math.log(r["flops"]), 4), r.get("seed"))
        if key in seen:
            dropped.append(f"N={r['n_params']:.3g} at C={r['flops']:.3g}: the same shape as "
                           "another run of the wave at this budget")  # fmt: skip
            continue
        seen.add(key)
        out.append(r)
    return out


def _drop(rows: list[dict[str, Any]], i: int, why: str, dropped: list[str]) -> list[dict[str, Any]]:
    """The rows without row i, saying why in `dropped`; without its whole item where row i is
    one size of a new IsoFLOP slice (an "extend" item) that would keep fewer than
    `MIN_SLICE_SIZES`: the analysis would propose that slice whole again
    (tests/test_sweeps_next.py)."""
    item = [j for j, r in enumerate(rows) if r.get("item") == rows[i].get("item")]
    if rows[i].get("kind") == "extend" and 1 < len(item) <= MIN_SLICE_SIZES:
        sizes = ", ".join(f"{rows[j]['n_params']:.3g}" for j in item)
        dropped.append(f"the slice at C={rows[i]['flops']:.3g} (N={sizes}): {why}, and fewer "
                       f"than {MIN_SLICE_SIZES} of its sizes would be left to repair later "
                       "waves from")  # fmt: skip
        return [r for j, r in enumerate(rows) if j not in item]
    dropped.append(f"N={rows[i]['n_params']:.3g} at C={rows[i]['flops']:.3g}: {why}")
    return rows[:i] + rows[i + 1 :]


def next_wave(
    sweep_dir: str | Path,
    target: float,
    allowance: float,
    *,
    max_runs: int | None = None,
    arch: str | None = None,
    extra: list[str] | None = None,
    proposal: dict[str, Any] | None = None,
    max_seconds: float | None = None,
    max_wall_s: float | None = None,
) -> Wave | str:
    """Propose, write and size the next wave of `sweep_dir`; the wave, or why nothing is proposed
    (the proposal's stop). UserError for a bad input, before anything is written. `proposal`: the
    planner's answer for these arguments, where the caller already has it. `max_seconds`: a
    time allowance as well, in run-seconds (each run's training time summed, as GPU-hours are;
    the trainer's own estimate on this machine). 6ND prices a small model's long run like a large
    model's short one (on 2 CPU cores the first took 462 s, the second 65 s at the same C): the
    last-ranked item gives up its longest run first. `max_wall_s`: a wall-time allowance, the
    same way, against the wave's estimated wall time with the launcher's processes (runs go, in
    order, to the first free one: `sweeps.sweep.timemodel.schedule_wall_s`)."""
    from sweeps.sweep.plan import plan_sweep, summary
    from sweeps.sweep.waves import (
        base_settings,
        check_same_data,
        wave_dir,
        wave_numbers,
        wave_runs_trained,
        write_wave,
    )

    sweep_dir = Path(sweep_dir)
    extra = list(extra or [])
    if not sweep_dir.is_dir():
        raise UserError("RESULTS", f"{sweep_dir}: no such folder",
                        "pass a sweep's results folder, e.g. results/isoflop")  # fmt: skip
    from sweeps.sweep.wavecost import longest_run

    settings = base_settings(sweep_dir, arch)  # refuses a folder with no finished run
    check_same_data(sweep_dir, arch, extra, settings)
    max_d = longest_run(sweep_dir, arch)
    if proposal is None:  # where time binds, the planner ranks by the seconds it binds with
        from sweeps.sweep.wavecost import seconds_model, smallest_size, wave_workers

        secs = None
        if max_wall_s is not None or max_seconds is not None:
            secs = seconds_model(sweep_dir, arch, wave_workers(extra))
        proposal = planner(sweep_dir, target, allowance, max_runs=max_runs, arch=arch,
                           min_params=smallest_size(sweep_dir, arch),
                           max_tokens=max_d, seconds=secs,
                           max_wall_s=max_wall_s, max_seconds=max_seconds)  # fmt: skip
    prop = proposal
    if not prop["runs"]:
        return str(prop.get("stop") or "nothing to propose")
    done = wave_numbers(sweep_dir)
    # an earlier wave that trained nothing is replaced, not left beside a new one
    k = done[-1] if done and wave_runs_trained(sweep_dir, done[-1]) == 0 else len(done) + 1
    recs = [records.read_record(d) for d in records.iter_run_dirs(sweep_dir)
            if records.run_state(d) == "done"]  # fmt: skip
    rows = [(_seed_row(r, recs) if r["kind"] == "seed" else dict(r)) for r in prop["runs"]]
    dropped: list[str] = []
    rows = _sizable(rows, settings, recs, dropped)
    if not rows:
        return "no proposed run can be built: " + "; ".join(dropped)
    while True:
        header = (f"Wave {k} of {sweep_dir.name}: {len(rows)} run(s) proposed by python -m "
                  f"sweeps.next --target-flops {target:g} --allowance {allowance:g} "
                  "(docs/planning.md).\nRun it: python " + " ".join(shlex.quote(c) for c in
                  train_command(wave_dir(sweep_dir, k), extra)[1:]))  # fmt: skip
        path = write_wave(sweep_dir, k, rows, settings, header=header, proposal=prop)
        planned, info = plan_sweep(train_command(path, extra)[4:])
        why_not = {i: (f"already trained (run {p.run_id})" if p.state == "done" else
                       str(p.problem)) for i, p in enumerate(planned)
                   if p.state == "done" or (p.problem and p.state == "new")}  # fmt: skip
        # the planner keeps requested sizes within max_d; a shape rounds N down by up to ~25%
        why_not |= {i: (f"its model as built (N={p.n_params:,}) would train on {p.n_tokens:.3g} "
                        f"tokens, past the {max_d:.3g} that 4 epochs of the corpus allow")
                    for i, p in enumerate(planned)
                    if i not in why_not and p.state == "new" and p.n_tokens > max_d}  # fmt: skip
        cost = sum(p.flops for p in planned if p.state != "done" and not p.problem)
        run_s = sum(p.est_s for p in planned if p.state != "done" and not p.problem)
        wall_s = summary(planned, info)["wall_s_remaining"]
        over = None  # over a time allowance: what the wave would take
        if max_seconds is not None and run_s > max_seconds:
            over = f"trains ~{run_s:.0f} run-seconds here, over --max-seconds {max_seconds:g}"
        elif max_wall_s is not None and wall_s > max_wall_s:
            over = (f"takes ~{wall_s:.0f} s of wall time here, over the {max_wall_s:.0f} s left "
                    "(--max-wall-seconds)")  # fmt: skip
        if why_not:  # skipped by the trainer, or rounded onto a run the sweep has: not worth a slot
            dropped += [f"N={rows[i]['n_params']:.3g} at C={rows[i]['flops']:.3g}: {w}"
                        for i, w in why_not.items()]  # fmt: skip
            rows = [r for i, r in enumerate(rows) if i not in why_not]
        elif cost > allowance * 1.0001:  # shapes round N: drop the last-ranked run
            rows = _drop(rows, len(rows) - 1, f"the sized wave costs {cost:.3g} FLOPs, over the "
                         "allowance", dropped)  # fmt: skip
        elif over is not None:
            last = [i for i, r in enumerate(rows) if r.get("item") == rows[-1].get("item")]
            i = max(last, key=lambda j: planned[j].est_s)
            rows = _drop(rows, i, f"the sized wave {over} (this run ~{planned[i].est_s:.0f} s)",
                         dropped)  # fmt: skip
        else:
            break
        if not rows:
            import shutil

            shutil.rmtree(path, ignore_errors=True)
            return "no proposed run is worth training: " + "; ".join(dropped)
    runs = []
    for row, p in zip(rows, planned, strict=True):
        runs.append(row | {"shape": p.shape, "n_params_sized": p.n_params, "n_tokens": p.n_tokens,
                           "flops": p.flops, "n_steps": p.n_steps, "state": p.state,
                           "est_s": p.est_s, "run_id": p.run_id})  # fmt: skip
    total = summary(planned, info)
    return Wave(k, path, runs, train_command(path, extra), prop, total["wall_s_remaining"], dropped)


def _format(w: Wave) -> str:
    t = w.proposal["target"]
    lo, hi = t["interval"] or (math.nan, math.inf)
    e = w.proposal["expected"]
    lines = [
        f"target C={t['flops']:.3g}: {w.proposal['law']} predicts {t['loss']:.4f}, 95% interval "
        f"[{lo:.4f}, {hi:.4f}] (+-{t['half_width']:.1%}); after this wave, expected "
        f"[{e['interval'][0]:.4f}, {e['interval'][1]:.4f}] (+-{e['half_width']:.1%})",
        *[f"warning: {x}" for x in w.proposal.get("warnings", [])],
        f"wave {w.k}: {len(w.runs)} run(s), {sum(r['flops'] for r in w.runs):.3g} FLOPs of "
        f"{w.proposal['allowance']:.3g} allowed, ~{w.wall_s / 60:.1f} min on this machine",
        f"{'N':>9} {'D':>10} {'C':>9} {'shape':>7} {'time':>6} {'kind':>7}  why",
    ]
    for r in w.runs:
        lines.append(
            f"{r['n_params_sized']:>9,} {r['n_tokens']:>10,} {r['flops']:>9.3g} "
            f"{r['shape']:>7} {r['est_s'] / 60:>5.1f}m {r['kind']:>7}  {r['why']}"
        )
    lines += [f"dropped: {d}" for d in w.dropped]
    lines.append(f"config: {w.path}/sweep/wave_{w.k}.yaml")
    lines.append("run it:  python " + " ".join(shlex.quote(c) for c in w.command[1:]))
    return "\n".join(lines)

def positive_number(text: str) -> float:
    """An argparse type: a finite number > 0 (a FLOP count), or argparse's own one-line error."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 1e13)") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive number (e.g. 1e13)")
    return v

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sweeps.next",
                                description=__doc__.split("\n\n")[0])  # fmt: skip
    p.add_argument("results", help="a finished sweep's folder, results/<sweep_name>")
    p.add_argument("--target-flops", type=positive_number, required=True)
    p.add_argument("--allowance", type=positive_number, required=True,
                   help="FLOPs the wave may spend")  # fmt: skip
    p.add_argument("--max-runs", type=int, default=None)
    p.add_argument("--max-seconds", type=positive_number, default=None,
                   help="keep the wave's training run-seconds (estimated here) under this")
    p.add_argument("--max-wall-seconds", type=positive_number, default=None,
                   help="keep the wave's wall time (estimated here, with the launcher's "
                        "processes) under this")  # fmt: skip
    p.add_argument("--arch", default=None)
    p.add_argument("--launch", action="store_true", help="run the wave now")
    p.add_argument("--json", action="store_true",
                   help="print the wave and its proposal as one JSON document")
    p.add_argument("overrides", nargs="*", help="after --: Hydra overrides for the wave's runs")
    return p

def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # the overrides after `--` by hand: argparse gives the trailing positional its (empty) share
    # when it meets RESULTS, and then refuses what follows `--` as unrecognized
    cut = argv.index("--") if "--" in argv else len(argv)
    args = build_parser().parse_args(argv[:cut])
    args.overrides += argv[cut + 1 :]
    try:
        if args.max_runs is not None and args.max_runs < 1:
            raise UserError("--max-runs", f"must be >= 1, got {args.max_runs}", "--max-runs 10")
        wave = next_wave(args.results, args.target_flops, args.allowance, max_runs=args.max_runs,
                         arch=args.arch, extra=args.overrides,
                         max_seconds=args.max_seconds,
                         max_wall_s=args.max_wall_seconds)  # fmt: skip
    except UserError as e:
        print(f"error: {e.line()}", file=sys.stderr)
        return 2
    if isinstance(wave, str):
        print(json.dumps({"wave": None, "stop": wave}) if args.json
              else f"nothing proposed: {wave}")  # fmt: skip
        return 0
    print(json.dumps(wave.to_dict(), indent=1, default=float) if args.json else _format(wave))
    if args.launch:
        print("\n$ " + " ".join(shlex.quote(c) for c in wave.command), file=sys.stderr, flush=True)
        return subprocess.run(wave.command).returncode
    return 0

if __name__ == "__main__":
    sys.exit(main())
