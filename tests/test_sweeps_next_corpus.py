"""`python -m sweeps.next` and the corpus: no wave trains a run past 4 epochs of its training
split (sweeps/sweep/wavecost.py longest_run; the planner's --max-tokens)."""

from __future__ import annotations

import json
from pathlib import Path

from sweeps import next as next_wave_cli
from tests.test_sweeps_next import _cache, _free_wave, _sweep  # noqa: F401 (_cache: autouse)


def test_the_planner_is_told_the_longest_run_the_corpus_allows(
    tmp_path, tiny_cfg, hand_record, monkeypatch
) -> None:
    """4 epochs of the latest record's training split: past them the trainer warns that repeated
    tokens stop counting as data, and the loop, given 5x the demo's allowance, had proposed a run
    that saw the demo's corpus 4.7 times."""
    from sweeps.run.preflight import MAX_EPOCHS
    from sweeps.sweep.wavecost import longest_run

    sweep = _sweep(tmp_path, tiny_cfg, hand_record, factors=(0.5, 1.0, 2.0))
    assert longest_run(sweep, None) == float("inf")  # no record says its split: no cap
    for i, d in enumerate(sorted(sweep.iterdir())):
        rec = json.loads((d / "record.json").read_text())
        rec["dataset"] = {"n_train_tokens": 1000 + i}  # the latest record's is 1000 + last i
        (d / "record.json").write_text(json.dumps(rec))
    assert longest_run(sweep, None) == MAX_EPOCHS * (1000 + i)
    seen: list[list[str]] = []

    class Done:
        returncode, stdout, stderr = 0, json.dumps({"runs": []}), ""

    monkeypatch.setattr(next_wave_cli.subprocess, "run", lambda cmd, **kw: seen.append(cmd) or Done)
    next_wave_cli.next_wave(sweep, 1e13, 2e12)
    cmd = seen[-1]
    assert cmd[cmd.index("--max-tokens") + 1] == f"{MAX_EPOCHS * (1000 + i):g}"


def test_a_sized_run_past_the_corpus_cap_is_dropped_saying_why(
    tmp_path, tiny_cfg, hand_record, capsys
) -> None:
    """The planner keeps requested sizes within the cap, but a shape rounds N down (by up to
    ~25% at the demo's sizes: 4,195 asked at 3e12 FLOPs builds 3,584, 4.7 epochs of its corpus);
    the wave drops such a run, saying why, rather than train it."""
    from sweeps.sweep.wavecost import longest_run

    args, free = _free_wave(tmp_path, tiny_cfg, hand_record, capsys)
    sweep = Path(args[0])
    longest = max(r["n_tokens"] for r in free["runs"])
    for d in sorted(sweep.iterdir()):
        if (d / "record.json").exists():
            rec = json.loads((d / "record.json").read_text())
            rec["dataset"] = {"n_train_tokens": int(longest / 2 / 4)}  # 4 epochs: half of it
            (d / "record.json").write_text(json.dumps(rec))
    cap = longest_run(sweep, None)
    wave = next_wave_cli.next_wave(sweep, 1e13, 2e12, proposal=free["proposal"])
    kept = [] if isinstance(wave, str) else wave.runs
    assert all(r["n_tokens"] <= cap for r in kept)
    why = wave if isinstance(wave, str) else "; ".join(wave.dropped)
    assert "past the" in why and "4 epochs of the corpus" in why, why
