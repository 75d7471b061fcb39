"""`sweeps.status` and `sweeps.plan` on folders a person or a crash has left odd: every run still
gets a row (unreadable, with the reason), the sweep gets its table, nothing raises. Before, each
case here was a traceback (UnicodeDecodeError, IsADirectoryError, TypeError, KeyError), found by
a fuzzing pass over the status and plan commands."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from sweeps import records
from sweeps.status import main as status_main
from sweeps.sweep.plan import _existing_state
from sweeps.sweep.status import format_status, sweep_status


def _partial(run_dir: Path, curve: list, plan: dict | None = None) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / records.CURVE_FILE).write_text("".join(json.dumps(r) + "\n" for r in curve))
    (run_dir / "plan.json").write_text(json.dumps(plan or {"n_steps": 10, "tokens_per_step": 64}))


def test_status_gives_every_odd_run_a_row_and_never_raises(tmp_path, hand_record, capsys):
    sweep = tmp_path / "s"
    hand_record(sweep / "ok1")
    (sweep / "dir_record").mkdir(parents=True)
    (sweep / "dir_record" / records.RECORD_FILE).mkdir()  # a folder where the file should be
    (sweep / "binary").mkdir()
    (sweep / "binary" / records.RECORD_FILE).write_bytes(b"\xff\xfe")
    (sweep / "future").mkdir()  # another schema version, hand-edited to strings
    (sweep / "future" / records.RECORD_FILE).write_text(
        json.dumps(
            {"schema_version": 99, "status": "ok", "flops": "lots", "loss": "low", "time_s": "x"}
        )
    )
    (sweep / "dir_curve").mkdir()
    (sweep / "dir_curve" / records.CURVE_FILE).mkdir()
    (sweep / "dir_curve" / "plan.json").write_text("{}")
    _partial(sweep / "list_line", [[1, 2], {"step": 2, "loss": 4.0}])
    _partial(
        sweep / "str_step",
        [{"step": "abc", "time_s": "x", "n_tokens": 5}],
        {"n_steps": "10", "tokens_per_step": "64", "n_params": "big"},
    )
    (sweep / ".sweep.json").write_text(json.dumps({"run_ids": 7, "started_at": "noon"}))
    (sweep / ".job_errors.jsonl").write_bytes(b"\xff\xfe not text\n")  # fmt: skip

    status = sweep_status(sweep)
    states = {r["run_id"]: r["state"] for r in status["runs"]}
    assert states["ok1"] == "ok" and states["future"] in ("ok", "older-id")
    assert states["dir_record"] == states["binary"] == states["dir_curve"] == "unreadable"
    assert states["list_line"] == states["str_step"] == "partial"
    why = {r["run_id"]: r.get("reason") or "" for r in status["runs"]}
    assert "cannot be read" in why["dir_record"] and "UTF-8" in why["binary"]
    assert "IsADirectoryError" in why["dir_curve"]
    text = format_status(status)
    assert "unreadable" in text and "sweep ETA" in text
    assert status_main([str(sweep)]) == 0 and status_main([str(sweep), "--json"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_status_on_a_sweep_folder_it_cannot_read_is_one_line(tmp_path, hand_record, capsys,
                                                            monkeypatch):  # fmt: skip
    hand_record(tmp_path / "s" / "aaa")

    def denied(folder):
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr(records, "iter_run_dirs", denied)  # root reads through chmod 000
    assert status_main([str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Permission denied" in err and "permissions" in err


def test_a_sweep_no_process_is_writing_to_has_no_eta(tmp_path):
    """A killed sweep showed 'sweep ETA 19s', growing with the clock, forever."""
    sweep = tmp_path / "s"
    _partial(sweep / "aaa", [{"step": 2, "time_s": 1.0, "n_tokens": 128, "loss": 5.0},
                             {"step": 4, "time_s": 2.0, "n_tokens": 256, "loss": 4.0}])  # fmt: skip
    (sweep / ".sweep.json").write_text(
        json.dumps({"run_ids": ["aaa", "bbb"], "started_at": time.time() - 30})
    )
    now = time.time()
    live = sweep_status(sweep, now=now)
    assert live["eta_note"] is None or "stopped" not in live["eta_note"]
    for p in (sweep / "aaa").iterdir():  # its last write an hour ago
        os.utime(p, (now - 3600, now - 3600))
    dead = sweep_status(sweep, now=now)
    assert dead["eta_s"] is None and "seems stopped" in dead["eta_note"]
    assert "rerun its command" in dead["eta_note"]
    assert "idle 60.0m" in format_status(dead)


def test_plan_says_what_train_will_do_with_odd_and_failed_runs(tmp_path, hand_record):
    """plan said 'partial, 0s left' of a run whose record was truncated (train retrains it) and
    counted a failed run past its retries as work left (train leaves it)."""
    run = tmp_path / "s" / "aaa"
    hand_record(run)
    (run / records.CURVE_FILE).write_text(json.dumps({"step": 10, "loss": 3.0}) + "\n")
    (run / records.RECORD_FILE).write_text('{"schema_version": 2, "stat')
    assert _existing_state(run, 10, max_retries=1) == ("unreadable", 0.0)
    hand_record(run, status="failed", attempts=2)
    assert _existing_state(run, 10, max_retries=1) == ("failed", 1.0)
    assert _existing_state(run, 10, max_retries=2) == ("failed->retry", 0.0)
    hand_record(run, status="ok")
    assert _existing_state(run, 10, max_retries=1) == ("done", 1.0)
    odd = tmp_path / "s" / "bbb"  # a curve line with no numeric step is no evaluation: a rerun
    _partial(odd, [{"step": "abc"}])  # drops it (records.read_curve) and trains from its start
    assert _existing_state(odd, 10, max_retries=1) == ("partial", 0.0)
    (odd / records.CURVE_FILE).unlink()
    (odd / records.CURVE_FILE).mkdir()
    assert _existing_state(odd, 10, max_retries=1) == ("unreadable", 0.0)


@pytest.mark.parametrize(
    "junk",
    [b"\xff", b"[1, 2]", b'{"step": "100"}', b'{"loss": 2.0}', b'{"step": NaN}', b'{"step": true}'],
)
def test_read_curve_passes_over_lines_that_are_not_evaluations(tmp_path, junk):
    (tmp_path / records.CURVE_FILE).write_bytes(junk + b'\n{"step": 1, "loss": 2.0}\n')
    assert records.read_curve(tmp_path) == [{"step": 1, "loss": 2.0}]


@pytest.mark.parametrize(
    ("curve_times", "checkpoint_every_s", "silent_s", "idle"),
    [
        ([1500.0], 3600.0, 900, False),  # one evaluation 25 min in: a live run, was "idle"
        ([], 3600.0, 1800, False),  # no evaluation yet, checkpoints hourly: live, was "idle"
        ([], 3600.0, 4 * 3600, True),
        ([10800.0, 21600.0], 60.0, 2000, True),  # killed: checkpoints stopped (was 9 h to notice)
        ([10800.0, 21600.0], 60.0, 200, False),  # an evaluation writes nothing: at least 10 min
        ([2.0, 4.0], None, 500, False),  # a plan.json from before the field: at least 10 min
        ([2.0, 4.0], None, 700, True),
        ([], None, 700, True),
        # steps of 30 s on CUDA: the checkpoint clock is read every 50 steps (25 min), not 60 s
        ([30000.0, 60000.0], 60.0, 1200, False),
    ],
)
def test_idle_means_silent_for_three_of_the_runs_own_write_intervals(
    tmp_path, curve_times, checkpoint_every_s, silent_s, idle
):
    """A run writes at each evaluation and every checkpoint_every_s; the fixed 10 min before its
    second evaluation called a live run with hourly checkpoints idle."""
    from sweeps.run.loop import SYNC_EVERY
    from sweeps.sweep.status import SYNC_STEPS

    assert SYNC_STEPS == SYNC_EVERY  # status reads no torch: the constant is repeated there
    plan: dict = {"n_steps": 10000, "tokens_per_step": 64}
    if checkpoint_every_s is not None:
        plan["checkpoint_every_s"] = checkpoint_every_s
    curve = [
        {"step": 1000 * (i + 1), "time_s": t, "n_tokens": 64000 * (i + 1), "loss": 4.0}
        for i, t in enumerate(curve_times)
    ]
    _partial(tmp_path / "s" / "aaa", curve, plan)
    now = time.time()
    for p in (tmp_path / "s" / "aaa").iterdir():
        os.utime(p, (now - silent_s, now - silent_s))
    (row,) = sweep_status(tmp_path / "s", now=now)["runs"]
    assert row["stalled"] is idle


@pytest.mark.parametrize(("value", "read"), [(2, 2), (None, 1), (0, 1), (10**400, 10**400)])
def test_train_and_plan_read_a_failed_runs_attempts_alike(tmp_path, hand_record, value, read):
    """One reading (records.attempts) for train's retry rule and plan's forecast."""
    run = tmp_path / "s" / "aaa"
    hand_record(run, status="failed")
    rec = json.loads((run / records.RECORD_FILE).read_text())
    (run / records.RECORD_FILE).write_text(json.dumps({**rec, "attempts": value}))
    assert records.attempts(rec | {"attempts": value}) == read
    assert _existing_state(run, 10, max_retries=read) == ("failed->retry", 0.0)
    assert _existing_state(run, 10, max_retries=read - 1) == ("failed", 1.0)


def test_plan_says_train_will_refuse_a_folder_whose_config_is_another_runs(tiny_overrides, capsys):
    """plan showed 'partial' for a run folder train then refuses (its config.json disagrees)."""
    from sweeps.plan import main as plan_main
    from sweeps.sweep.plan import plan_sweep

    (run,), _ = plan_sweep(tiny_overrides)
    results = next(o.split("=", 1)[1] for o in tiny_overrides if o.startswith("results_dir="))
    run_dir = Path(results) / "default" / run.run_id
    run_dir.mkdir(parents=True)
    (run_dir / records.CONFIG_FILE).write_text(json.dumps({"seed": 5}))
    (run_dir / records.CURVE_FILE).write_text(json.dumps({"step": 2, "loss": 3.0}) + "\n")
    (again,), _ = plan_sweep(tiny_overrides)
    assert again.state == "refused" and again.remaining_s == 0
    assert "recorded config disagrees" in again.refused
    assert plan_main(tiny_overrides) == 0
    assert f"{run.run_id} will be refused: {run_dir}" in capsys.readouterr().out
