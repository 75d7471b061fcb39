"""The README's main job in miniature: `python -m sweeps.demo --mini`, end to end, as a user runs it
(a real IsoFLOP seed grid on the embedded pystdlib corpus, a planned wave, analysis and report)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeps.demo import ALLOWANCE, preset_values

REPO = Path(__file__).resolve().parent.parent

FIGURES = [
    "loss_vs_n",
    "loss_vs_d",
    "curves_envelope",
    "isoflop",
    "optimal_n",
    "optimal_d",
    "isoloss",
    "residuals",
    "interval_by_wave",
]


@pytest.mark.slow
def test_demo_mini_end_to_end(tmp_path: Path, data_cache: Path) -> None:
    env = {**os.environ, "SCALING_SWEEPS_CACHE": str(data_cache), "PYTHONUNBUFFERED": "1"}
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "sweeps.demo", "--mini", "--results-dir", str(results)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    print(f"demo --mini took {wall:.0f}s")  # the target is under 3 minutes on 2 idle cores

    sweep = results / "demo_mini"
    records = [json.loads(p.read_text()) for p in sweep.glob("*/record.json")]
    # the seed grid (3 budgets x 3 ratios), then one planned wave within the allowance
    waves = [r["config"].get("wave") for r in records]
    assert waves.count(None) == 9 and waves.count(1) >= 1, waves
    assert all(r["status"] in ("ok", "skipped") for r in records)
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) >= 10
    assert all(r["loss"] < r["unigram_entropy"] for r in ok)
    assert sum(r["flops"] for r in ok) <= ALLOWANCE["demo_mini"]
    loop = json.loads((sweep / "waves" / "loop.json").read_text())
    assert [h["wave"] for h in loop["history"]] == [0, 1] and loop["stop"]

    report = sweep / "report"
    fits = json.loads((report / "fits.json").read_text())
    pred = fits["prediction"]
    budgets = preset_values("demo_mini", "budget.flops")
    assert pred["flops"] == pytest.approx(10 * max(budgets))  # 10x the largest budget
    assert pred["n_params"] > 0 and pred["n_tokens"] > 0 and 0 < pred["loss"] < 5
    assert fits["seed_noise"], "the wave's seed repeats give a noise floor"
    text = (report / "report.md").read_text()
    for name in FIGURES:
        assert (report / "figures" / f"{name}.png").exists(), name
        assert f"figures/{name}.png" in text, name
    assert (report / "runs.csv").exists()
    # The printed summary: the laws with intervals, the prediction, back-test and noise floor.
    for needle in (
        "approach 3",
        "alpha",
        "beta",
        "prediction at C",
        "back-test",
        "seed noise floor",
        "report.md",
    ):
        assert needle in out, needle
    # the answer first and alone: the recommended law's calibrated prediction, then the rest
    head = out.index(f"at C={pred['flops']:.3g} FLOPs the recommended law")
    assert "calibrated 95% interval" in out[head:].splitlines()[0]
    assert out.index("secondary (their 95% bootstrap intervals", head) > head

    # A rerun trains nothing: every run is already done. (Its analysis is redone; 10 bootstrap
    # resamples instead of the mini default's 200, since the report was checked above.)
    again = [*cmd, "--n-bootstrap", "10"]
    rerun = subprocess.run(
        again, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert " ok: loss" not in rerun.stderr
    assert len(list(sweep.glob("*/record.json"))) == len(records)


@pytest.mark.parametrize("achieved, inside", [(2.50, True), (2.90, False)])
def test_verify_says_whether_the_achieved_loss_fell_inside_the_calibrated_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, achieved: float, inside: bool
) -> None:
    """--verify reads the report's calibrated 95% interval and records inside / outside (the
    training run and the re-analysis are stubbed: this checks the bookkeeping only)."""
    import argparse

    from sweeps import demo

    sweep = tmp_path / "demo_iso"
    (sweep / "report").mkdir(parents=True)
    cal = {"law": "overtrain-vp", "loss": 2.45, "interval": [2.30, 2.62]}
    pred = {"n_params": 3e4, "n_tokens": 5e7, "loss": 2.40, "source": "approach3",
            "calibrated": cal}  # fmt: skip
    (sweep / "report" / "fits.json").write_text(json.dumps({"prediction": pred}))
    record = {"loss": achieved, "n_params": 30_000, "n_tokens": 5.5e7, "flops": 1e13,
              "run_id": "r1"}  # fmt: skip
    run_dir = tmp_path / "demo_iso_verify" / "r1"
    run_dir.mkdir(parents=True)
    monkeypatch.setattr(demo, "_run", lambda cmd, check=True: 0)
    monkeypatch.setattr(demo, "_analyse", lambda *a, **k: None)
    monkeypatch.setattr(demo.records, "iter_run_dirs", lambda path: [run_dir])
    monkeypatch.setattr(demo.records, "run_state", lambda d: "done")
    monkeypatch.setattr(demo.records, "read_record", lambda d: record)
    args = argparse.Namespace(results_dir=str(tmp_path), n_bootstrap=None, mini=False)
    monkeypatch.setattr(demo, "_n_bootstrap", lambda a: 10)
    out = demo._verify(sweep, target=1e13, args=args, preset="demo")
    assert out["interval"] == [2.30, 2.62] and out["inside"] is inside
    assert out["calibrated_law"] == "overtrain-vp" and out["predicted"] == 2.40
    saved = json.loads((sweep / "report" / "verify.json").read_text())
    assert saved["inside"] is inside


def test_the_loops_wall_allowance_is_fixed_at_its_first_run(tmp_path: Path, monkeypatch) -> None:
    """The trainer's time model refits itself to the runs it trains, so the fixed grid's estimate
    moves once the demo has run (387 s -> 444 s here): a rerun (or --verify) reads the allowance
    back from the loop's state rather than giving the loop more time than its first run had."""
    import sweeps.demo as demo

    monkeypatch.setattr(demo, "_grid_wall_seconds", lambda *a: 444.0)
    sweep = tmp_path / "demo"
    assert demo._wall_allowance(sweep, "demo", "gpt", []) == 444.0  # first run: the estimate
    (sweep / "waves").mkdir(parents=True)
    (sweep / "waves" / "loop.json").write_text(json.dumps({"max_wall_seconds": 387.0}))
    assert demo._wall_allowance(sweep, "demo", "gpt", []) == 387.0


def test_the_headline_says_where_the_loop_measured_its_interval(tmp_path: Path, capsys) -> None:
    """The loop measures the target's interval at the recommended law's own optimum; the headline
    evaluates the law at the allocation the report chose (approach 2's or 3's). On the mini they
    differed (the loop +-8.0% at N* = 2.6e4, the headline +-6.6% at N* = 7.1e4) and the output
    printed both without saying at which N*: now the loop's line names it."""
    from sweeps import demo

    sweep = tmp_path / "demo_mini"
    (sweep / "report").mkdir(parents=True)
    (sweep / "waves").mkdir()
    cal = {"law": "overtrain-vp", "loss": 2.0191, "interval": [1.8906, 2.1563],
           "n_params": 70760.0, "n_tokens": 7.066e6}  # fmt: skip
    (sweep / "report" / "fits.json").write_text(json.dumps({"prediction": {"calibrated": cal}}))
    point = {"wave": 1, "spent": 1.45e12, "loss": 1.9906, "half_width": 0.0805,
             "n_params": 26170.0, "n_tokens": 1.9106e7}  # fmt: skip
    (sweep / "waves" / "loop.json").write_text(json.dumps({"history": [point], "stop": "max"}))
    demo._headline(sweep, 3e12)
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith("at C=3e+12 FLOPs the recommended law overtrain-vp predicts loss "
                             "2.0191 at N*=7.076e+04")  # fmt: skip
    assert out[-1] == ("  the loop measured its interval at the law's own optimum, N*=2.617e+04, "
                       "D*=1.911e+07: 1.9906 +-8.1%")  # fmt: skip
    # a point without a finite N* (a loop.json of an older loop, or none proposed) names none
    from sweeps.sweep.loop_rules import at_optimum

    assert at_optimum(point | {"n_params": float("nan")}) == at_optimum({"loss": 2.0}) == ""
