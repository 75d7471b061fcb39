"""Where a sweep stands, from its run folders alone (`python -m sweeps.status results/<sweep>`).

Reads only JSON (record.json, curve.jsonl, plan.json, .sweep.json, .job_errors.jsonl): no torch, no
Hydra, so it is instant and works on a copied folder. States: ok, diverged, skipped (a record),
failed, partial (started, no record: progress = last evaluated step / planned steps, ETA from the
tokens/s it showed; "idle" instead when it has written nothing for 3 of its write intervals
(evaluations, checkpoints), at least 10 min: no process is training it, and the sweep ETA says the
sweep seems stopped), unreadable (a record.json that is not a record, or a run folder status cannot
read), non-finite (status ok, loss not a finite number), pending (a job of the last launch that has
no folder yet), refused (a job of the last launch that a check inside the run refused: its error is
the reason), and older-id (a folder named by an older run-id version, sweeps/run_record.py: a rerun
never reuses it and analysis/ never fits it; it is counted and said, never retrained over nor
deleted).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from sweeps import records

__all__ = ["sweep_status", "format_status", "fmt_seconds", "older_id_line", "config_errors"]

PLAN_FILE = "plan.json"  # written by sweeps.run.runner when a run starts
SWEEP_FILE = ".sweep.json"  # written by sweeps.sweep.callbacks at the start of a launch
JOB_ERRORS = ".job_errors.jsonl"  # one line per refused job of the last launch (config_errors)
ORDER = (
    "ok",
    "diverged",
    "non-finite",
    "skipped",
    "failed",
    "unreadable",
    "partial",
    "pending",
    "refused",
    "older-id",
)
FINISHED = ("ok", "diverged", "non-finite", "skipped", "failed")  # the states with a record


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _num(v: Any) -> Any:
    """A number a record or plan gives, or None for anything else (a hand-edited "x")."""
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return v if ok else None


def _run_status(run_dir: Path, now: float) -> dict[str, Any]:
    try:
        row = _state(run_dir, now)
    except (OSError, ValueError, TypeError) as e:  # a folder where a file should be, garbage
        reason = f"{type(e).__name__}: {e}; check the run folder, or delete it to retrain the run"
        row = {"run_id": run_dir.name, "state": "unreadable", "reason": reason}
    version = records.older_id_version(run_dir)
    if version is not None:
        row.update(state="older-id", id_version=version, eta_s=None)
    return row


def _state(run_dir: Path, now: float) -> dict[str, Any]:
    row: dict[str, Any] = {"run_id": run_dir.name}
    if (run_dir / records.RECORD_FILE).exists():
        try:
            rec = records.read_record(run_dir)
        except records.RecordError as e:  # a rerun moves it aside and trains the run again
            row.update(state="unreadable", reason=f"{e}; a rerun sets it aside and retrains")
            return row
        loss = rec.get("loss")
        state = str(rec.get("status", "?"))
        if state == "ok" and not (isinstance(loss, int | float) and math.isfinite(loss)):
            state = "non-finite"  # the analysis leaves it out of every fit
            rec = {**rec, "reason": f"status ok but its loss is {loss!r}, not a finite number"}
        row.update(
            state=state,
            n_params=_num(rec.get("n_params")),
            n_tokens=_num(rec.get("n_tokens")),
            flops=_num(rec.get("flops")),
            loss=_num(rec.get("loss")),
            time_s=_num(rec.get("time_s")),
            tokens_per_s=_num(rec.get("tokens_per_s")),
            reason=rec.get("reason"),
            progress=1.0 if rec.get("status") == "ok" else None,
        )
        return row
    plan = _read_json(run_dir / PLAN_FILE) or {}
    curve = records.read_curve(run_dir)
    last = curve[-1] if curve else {}
    n_steps, per_step = _num(plan.get("n_steps")), _num(plan.get("tokens_per_step"))
    step = int(_num(last.get("step")) or 0)
    tok_s = None
    if _num(last.get("time_s")) and _num(last.get("n_tokens")):
        tok_s = float(last["n_tokens"]) / float(last["time_s"])
    eta = None
    if n_steps and tok_s and per_step:
        eta = (int(n_steps) - step) * float(per_step) / tok_s
    stamps = [p.stat().st_mtime for p in run_dir.iterdir() if p.is_file()]
    idle = now - max(stamps) if stamps else None
    stalled = idle is not None and idle > _silence_limit(curve, plan)
    row.update(
        state="partial",
        n_params=_num(plan.get("n_params")),
        n_tokens=_num(plan.get("n_tokens")),
        flops=_num(plan.get("flops")),
        loss=_num(last.get("loss")),
        step=step,
        n_steps=n_steps,
        progress=step / int(n_steps) if n_steps else None,
        tokens_per_s=tok_s,
        eta_s=eta,
        checkpoint=(run_dir / records.CHECKPOINT_FILE).exists(),
        idle_s=idle,
        stalled=stalled,
    )
    return row


SYNC_STEPS = 50  # sweeps/run/loop.SYNC_EVERY: on CUDA a run reads its checkpoint clock that often
MIN_SILENCE_S = 600.0  # an evaluation writes nothing while it runs, and steps can be long


def _silence_limit(curve: list[dict[str, Any]], plan: dict[str, Any]) -> float:
    """Seconds of silence after which no process is training a partial run (killed, or never
    resumed): 3 of its write intervals, at least 10 min. A live run writes at each evaluation
    (its interval read off the curve: the first evaluation's time_s is one) and checkpoints every
    checkpoint_every_s (plan.json), which on CUDA it notices only every SYNC_STEPS steps."""
    pts = [(_num(r.get("step")), _num(r.get("time_s"))) for r in curve[-2:]]
    pts = [(s, t) for s, t in pts if s is not None and t is not None]
    every = step_s = None
    if len(pts) == 2 and pts[1][0] > pts[0][0] and pts[1][1] > pts[0][1]:
        every = pts[1][1] - pts[0][1]
        step_s = every / (pts[1][0] - pts[0][0])
    elif len(pts) == 1 and pts[0][0] > 0 and pts[0][1] > 0:
        every, step_s = pts[0][1], pts[0][1] / pts[0][0]
    ckpt = _num(plan.get("checkpoint_every_s"))
    if ckpt is not None and step_s is not None:
        ckpt = max(ckpt, SYNC_STEPS * step_s)
    intervals = [x for x in (every, ckpt) if x is not None]
    return max(MIN_SILENCE_S, 3 * min(intervals)) if intervals else MIN_SILENCE_S


def sweep_status(sweep_dir: str | Path, *, now: float | None = None) -> dict[str, Any]:
    """Every run's state and progress, counts by state, and an ETA for the partial ones."""
    sweep_dir = Path(sweep_dir)
    now = now or time.time()
    runs = [_run_status(d, now) for d in records.iter_run_dirs(sweep_dir)]
    launch = _read_json(sweep_dir / SWEEP_FILE) or {}
    seen = {r["run_id"] for r in runs}
    ids = launch.get("run_ids")  # a hand-edited .sweep.json: only its string ids count
    expected = [
        i for i in dict.fromkeys(ids if isinstance(ids, list) else []) if isinstance(i, str) and i
    ]
    # a refusal whose run has a record since (a later command trained it) is history, not news
    recorded = {r["run_id"] for r in runs if r["state"] in FINISHED}
    errors = [e for e in config_errors(sweep_dir) if e["run_id"] not in recorded]
    refused = {e["run_id"]: e["error"] for e in errors if e["run_id"]}
    runs += [
        {"run_id": i, "state": "refused", "reason": refused[i]}
        if i in refused
        else {"run_id": i, "state": "pending"}
        for i in expected
        if i not in seen
    ]
    shown = {r["run_id"] for r in runs if r["state"] == "refused"}
    counts = {s: 0 for s in ORDER}
    for r in runs:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    finished = sum(counts[s] for s in FINISHED)
    eta, eta_note = None, None
    if _num(launch.get("started_at")) and expected:
        states = {r["run_id"]: r["state"] for r in runs}
        trained = sum(
            states.get(i) not in ("partial", "pending", "unreadable", "refused") for i in expected
        )  # refused runs neither count as done nor are left to train
        k_new = trained - int(_num(launch.get("n_finished_at_start")) or 0)
        left = sum(states.get(i) in ("partial", "pending", "unreadable") for i in expected)
        partial = [r for r in runs if r["state"] == "partial"]
        if left <= 0:
            eta_note = "none: nothing of the last launch is left to train"
        elif partial and all(r.get("stalled") for r in partial):
            idle = min(r["idle_s"] for r in partial)
            eta_note = (
                f"none: no run has written anything for {fmt_seconds(idle)}: the sweep seems "
                "stopped (or its jobs wait in a cluster queue); rerun its command to resume"
            )
        elif k_new > 0:
            eta = (now - float(launch["started_at"])) / k_new * left
        else:
            eta_note = "known once a run of the last launch has finished"
    return {
        "sweep_dir": str(sweep_dir),
        "n_runs": len(runs),
        "n_finished": finished,
        "n_expected": len(expected) or None,
        "counts": counts,
        "flops_done": sum(r.get("flops") or 0.0 for r in runs if r["state"] == "ok"),
        "eta_s": eta,
        "eta_note": eta_note,
        "config_errors": [e for e in errors if e["run_id"] not in shown],  # no row above
        "runs": runs,
    }


def config_errors(sweep_dir: Path) -> list[dict[str, Any]]:
    """The last launch's refused jobs (`JOB_ERRORS`, appended by each job: sweeps/train.py,
    sweeps/job.py): overrides (list of str), error (str), run_id (str, or None where the config
    itself was refused, before the run had an id). Lines that are not such a row (a torn append)
    are passed over."""
    try:
        lines = (sweep_dir / JOB_ERRORS).read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError):  # none, or not text: no refusals to show
        return []
    errors = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict):
            continue
        overrides = row.get("overrides")
        run_id = row.get("run_id")
        errors.append(
            {
                "overrides": [str(o) for o in overrides] if isinstance(overrides, list) else [],
                "error": str(row.get("error", "?")),
                "run_id": run_id if isinstance(run_id, str) and run_id else None,
            }
        )
    return errors


def _rank(state: str) -> int:
    return ORDER.index(state) if state in ORDER else len(ORDER)


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def fmt_seconds(s: float | None) -> str:
    """A duration as people read it: `42s`, `3.5m`, `1.2h` (negative as 0, unknown as `-`); the
    one format of sweeps.status, sweeps.plan and the sweep callback's progress lines."""
    if s is None:
        return "-"
    s = max(0.0, s)
    return f"{s:.0f}s" if s < 90 else (f"{s / 60:.1f}m" if s < 5400 else f"{s / 3600:.1f}h")


def older_id_line(n: int, sweep_dir: str | Path) -> str:
    """What sweeps.status and sweeps.plan say of a sweep folder's older-id folders."""
    return (
        f"{n} folder(s) in {sweep_dir} are from an older run-id version (this code names runs "
        f"with id_version {records.RUN_ID_VERSION}): they are not reused (a rerun trains their "
        "runs again under new ids) and not fitted; kept as they are: move or delete them yourself"
    )


def format_status(status: dict[str, Any]) -> str:
    """The status as a text table (runs by state), the reasons of runs not ok, and the totals."""
    head = ("run_id", "state", "N", "D", "C", "loss", "progress", "tok/s", "time/ETA")
    rows = [head]
    runs = sorted(status["runs"], key=lambda r: (_rank(r["state"]), r.get("flops") or 0))
    for r in runs:
        partial = r["state"] == "partial"
        progress = (
            f"{r['step']}/{r['n_steps'] or '?'}" if partial else _fmt(r.get("progress"), ".0%")
        )
        rows.append(
            (
                r["run_id"],
                r["state"],
                _fmt(r.get("n_params"), ","),
                _fmt(r.get("n_tokens"), ".3g"),
                _fmt(r.get("flops"), ".3g"),
                _fmt(r.get("loss"), ".4f"),
                progress,
                _fmt(r.get("tokens_per_s"), ",.0f"),
                (
                    f"idle {fmt_seconds(r['idle_s'])}"
                    if r.get("stalled")
                    else fmt_seconds(r.get("eta_s") if partial else r.get("time_s"))
                ),  # fmt: skip
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    for r in runs:
        if r.get("reason") and r["state"] not in ("ok", "older-id"):  # older-id: one line below
            lines.append(f"  {r['run_id']} {r['state']}: {r['reason']}")
    if status["counts"]["older-id"]:
        lines.append("  " + older_id_line(status["counts"]["older-id"], status["sweep_dir"]))
    errors = status.get("config_errors") or []
    for err in errors:
        lines.append(f"  config error for {' '.join(err['overrides'])}: {err['error']}")
    counts = ", ".join(f"{n} {s}" for s, n in status["counts"].items() if n)
    if errors:
        counts += f"{', ' if counts else ''}{len(errors)} job(s) refused for their config"
    expected = f" of {status['n_expected']} in the last launch" if status["n_expected"] else ""
    eta = status.get("eta_note") or fmt_seconds(status["eta_s"])
    lines.append(
        f"\n{status['n_runs']} runs{expected}: {counts or 'none yet'}; "
        f"C done = {status['flops_done']:.3g} FLOPs; "
        f"sweep ETA {eta}"
    )
    return "\n".join(lines)
