"""`python -m sweeps.next`: a finished sweep's next wave, written as a sweep config that
`python -m sweeps.train -m` runs as it is (sweeps/next.py, sweeps/sweep/waves.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from analysis.laws.chinchilla import compute_optimal
from analysis.laws.synthetic import TRUE_PARAMS, law_loss
from sweeps import next as next_wave_cli
from sweeps.data import load_dataset
from sweeps.sweep.expand import expand_sweep
from sweeps.sweep.waves import WAVES_DIR, train_overrides

pytestmark = pytest.mark.slow  # each call fits a law and sizes runs with the trainer's planner

BUDGETS = (1e10, 3e10, 1e11)


@pytest.fixture(autouse=True)
def _cache(monkeypatch, data_cache: Path) -> None:
    """sweeps.next loads the waves' data (to check it is the sweep's): from the tests' cache."""
    monkeypatch.setenv("SCALING_SWEEPS_CACHE", str(data_cache))


def _sweep(tmp_path: Path, tiny_cfg, hand_record, *, factors, budgets=BUDGETS, noise=0.002):
    """A finished IsoFLOP sweep of hand-made records whose losses follow TRUE_PARAMS' law, with
    sizes at `factors` x N*(C) at each budget."""
    sweep = tmp_path / "results" / "iso"
    rng = np.random.default_rng(0)
    i = 0
    data_id = load_dataset(tiny_cfg().data, progress=False).dataset_id  # what a wave trains on
    for c in budgets:
        n_star = compute_optimal(dict(TRUE_PARAMS), c).n_params
        for f in factors:
            n = int(n_star * f)
            d = int(c / (6 * n))
            cfg = tiny_cfg(budget=dataclasses.replace(tiny_cfg().budget, tokens=None, flops=c),
                           sweep_name="iso")  # fmt: skip
            cfg.model.n_params = float(n)
            config = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "tracker"}
            loss = float(law_loss(TRUE_PARAMS, n, d)) * float(np.exp(rng.normal(0, noise)))
            hand_record(sweep / f"run{i:03d}", n_params=n, n_tokens=d, loss=loss, config=config,
                        flops_budget=c, shape={"n_layer": 2, "d_model": 16, "vocab_size": 64,
                                               "context": 32, "n_head": 1, "tied": False},
                        created_at=f"2026-01-01T00:00:{i:02d}+00:00",
                        dataset_id=data_id)  # fmt: skip
            i += 1
    return sweep


def _next(capsys, *args: str) -> tuple[int, str, str]:
    rc = next_wave_cli.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_a_minimum_at_the_edge_gets_sizes_beyond_it_in_a_wave_train_runs_as_is(
    tmp_path, tiny_cfg, hand_record, capsys
) -> None:
    sweep = _sweep(tmp_path, tiny_cfg, hand_record, factors=(2, 4, 8, 16, 32))
    rc, out, err = _next(capsys, str(sweep), "--target-flops", "1e12", "--allowance", "3e11",
                         "--json")  # fmt: skip
    assert rc == 0, err
    doc = json.loads(out)
    smallest = compute_optimal(dict(TRUE_PARAMS), 1e11).n_params * 2
    repairs = [r for r in doc["runs"] if r["kind"] == "repair" and r["flops"] > 0.9e11]
    assert repairs and all(r["n_params_sized"] < smallest for r in repairs), doc["runs"]
    assert sum(r["flops"] for r in doc["runs"]) <= 3e11  # the sized wave fits the allowance
    wave = Path(doc["config"])
    assert wave == sweep.resolve() / WAVES_DIR / "wave_1"
    # the very jobs `python -m sweeps.train -m <command>` would run: the wave's sizes, budgets
    # and number, in the sweep's own folder, with its settings
    jobs = expand_sweep(train_overrides(wave)).jobs
    assert len(jobs) == len(doc["runs"])
    for job, row in zip(jobs, doc["runs"], strict=True):
        assert job.cfg.wave == 1 and job.cfg.sweep_name == "iso"
        assert job.cfg.results_dir == str(sweep.resolve().parent)
        assert job.cfg.data.name == "synthetic" and job.cfg.model.context == 32
        assert job.cfg.budget.flops == pytest.approx(row["flops"], rel=0.05)
    assert doc["command"][-2:] == train_overrides(wave)


def test_overrides_after_the_double_dash_reach_the_waves_command(
    tmp_path, tiny_cfg, hand_record, capsys
) -> None:
    """The module docstring's `python -m sweeps.next RESULTS --target-flops C --allowance F --
    launcher=slurm`: argparse refused what followed `--` (the positional before the options had
    taken its share), so no override ever reached a wave."""
    sweep = _sweep(tmp_path, tiny_cfg, hand_record, factors=(0.25, 0.5, 1, 2, 4))
    rc, out, err = _next(capsys, str(sweep), "--target-flops", "1e13", "--allowance", "2e12",
                         "--json", "--", "launcher=joblib", "hydra.launcher.n_jobs=2")  # fmt: skip
    assert rc == 0, err
    wave = json.loads(out)
    assert wave["command"][-2:] == ["launcher=joblib", "hydra.launcher.n_jobs=2"]


def test_a_proposal_that_rounds_over_the_allowance_is_trimmed_to_it(
    tmp_path, tiny_cfg, hand_record, capsys
) -> None:
    sweep = _sweep(tmp_path, tiny_cfg, hand_record, factors=(0.5, 1, 2))
    for allowance in (2e11, 7e11):
        rc, out, err = _next(capsys, str(sweep), "--target-flops", "1e12", "--allowance",
                             f"{allowance:g}", "--json")  # fmt: skip
        assert rc == 0, err
        doc = json.loads(out)
        if doc["wave"] is not None:
            assert sum(r["flops"] for r in doc["runs"]) <= allowance


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--target-flops", "1e12", "--allowance", "1e6"], "--allowance"),
        (["--target-flops", "5e10", "--allowance", "1e12"], "--target-flops"),
    ],
    ids=["allowance-below-one-run", "target-below-the-largest-run"],
)
def test_bad_inputs_are_one_line_exit_2_and_nothing_written(
    tmp_path, tiny_cfg, hand_record, capsys, args, field
) -> None:
    sweep = _sweep(tmp_path, tiny_cfg, hand_record, factors=(0.5, 1, 2))
    before = sorted(p.relative_to(sweep) for p in sweep.rglob("*"))
    rc, out, err = _next(capsys, str(sweep), *args)
    assert rc == 2
    assert err.strip().count("\n") == 0 and err.startswith(f"error: {field}"), err
    assert sorted(p.relative_to(sweep) for p in sweep.rglob("*")) == before


def test_an_empty_or_unfittable_folder_is_refused(tmp_path, tiny_cfg, hand_record, capsys) -> None:
    empty = tmp_path / "results" / "empty"
    empty.mkdir(parents=True)
    rc, _, err = _next(capsys, str(empty), "--target-flops", "1e12", "--allowance", "1e12")
    assert rc == 2 and "no finished run" in err and err.count("\n") == 1
    sweep = _sweep(tmp_path, tiny_cfg, hand_record, factors=(1, 2), budgets=(1e10,))
    rc, _, err = _next(capsys, str(sweep), "--target-flops", "1e12", "--allowance", "1e12")
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert not (sweep / WAVES_DIR).exists()


@pytest.mark.parametrize(
    ("target", "prop", "expect"),
    [
        ({"backtested": True, "n_folds": 2, "half_width": 0.05}, None, "tolerance"),
        ({"backtested": True, "n_folds": 1, "half_width": 0.05}, {"runs": [1]}, None),
        ({"backtested": False, "n_folds": 0, "half_width": 0.01}, {"runs": [1]}, None),
        ({"backtested": True, "n_folds": 3, "half_width": 0.2}, {"runs": [], "stop": "x"},
         "no proposal helps"),
        ({"backtested": True, "n_folds": 3, "half_width": 0.2},
         {"runs": [], "stop": "the allowance (1 FLOPs) buys no proposed run"}, "allowance"),
    ],
    ids=["within", "one-fold-is-not-trusted", "no-backtest", "nothing-helps", "allowance"],
)
def test_the_loop_stops_at_the_tolerance_only_on_an_interval_checked_on_two_folds(
    target, prop, expect
) -> None:
    from sweeps.sweep.loop_rules import stop_reason

    why = stop_reason(target, prop, spent=1.0, allowance=10.0, tolerance=0.1, n_waves=1,
                      max_waves=4)  # fmt: skip
    assert (why is None) if expect is None else why.startswith(expect)


def test_each_wave_spends_half_of_what_is_left_and_the_last_all_of_it() -> None:
    """loop_rules.wave_allowance: the last wave --max-waves allows keeps nothing back (before, it
    spent half as every wave did, and the loop ended with an eighth of a 3-wave allowance
    unspent); the default is 3 waves (benchmarks/wave_count.py)."""
    from sweeps.sweep.loop_rules import MAX_WAVES, wave_allowance

    assert [wave_allowance(8.0, k, 3) for k in range(3)] == [4.0, 4.0, 8.0]
    assert wave_allowance(8.0, 0, 1) == 8.0 and wave_allowance(-1.0, 2, 3) == 0.0
    assert MAX_WAVES == 3


def test_a_wave_the_sizing_puts_over_the_allowance_is_cut_to_nothing_rather_than_sent(
    tmp_path, tiny_cfg, hand_record
) -> None:
    """A safety net under the planner: whatever it proposes, the sized wave never costs more
    than the allowance, even where one run is all it has."""
    from sweeps.next import next_wave

    sweep = _sweep(tmp_path, tiny_cfg, hand_record, factors=(0.5, 1, 2))
    row = {"n_params": 2e4, "n_tokens": 1e11 / 1.2e5, "flops": 1e11, "kind": "extend",
           "item": 0, "seed": None, "variance_share": 0.5, "why": "extend: test"}  # fmt: skip
    prop = {"runs": [row], "target": {}, "allowance": 5e10, "stop": None}
    out = next_wave(sweep, 1e12, 5e10, proposal=prop)
    assert isinstance(out, str) and "over the allowance" in out
    assert not (sweep / "waves" / "wave_1").exists()


def _free_wave(tmp_path, tiny_cfg, hand_record, capsys) -> tuple[list[str], dict]:
    """A sweep of five sizes at each budget, and its next wave with no time allowance: (the
    arguments that asked for it, the wave as JSON)."""
    sweep = _sweep(tmp_path, tiny_cfg, hand_record, factors=(0.25, 0.5, 1, 2, 4))
    args = [str(sweep), "--target-flops", "1e13", "--allowance", "2e12", "--json"]
    rc, out, err = _next(capsys, *args)
    assert rc == 0, err
    return args, json.loads(out)


def _trimmed(args: list[str], free: dict, **limits: float) -> dict:
    """The free wave's proposal (ranked per FLOP) written again under a time limit: what
    sweeps.next does after the planner, where the sized runs take longer than it expected."""
    wave = next_wave_cli.next_wave(args[0], 1e13, 2e12, proposal=free["proposal"], **limits)
    return {"wave": None, "stop": wave} if isinstance(wave, str) else wave.to_dict()


def test_max_seconds_trims_the_wave_to_its_estimated_training_time_longest_run_first(
    tmp_path, tiny_cfg, hand_record, capsys
) -> None:
    """6ND prices a small model's long run like a large model's short one; --max-seconds keeps the
    wave's training time (run-seconds, the trainer's own estimate) under an allowance too, the
    last-ranked item giving up its longest run first."""
    args, free = _free_wave(tmp_path, tiny_cfg, hand_record, capsys)
    assert free["wave"] is not None and len(free["runs"]) >= 3
    limit = sum(r["est_s"] for r in free["runs"]) * 0.6
    cut = _trimmed(args, free, max_seconds=limit)
    assert cut["wave"] is not None and sum(r["est_s"] for r in cut["runs"]) <= limit
    said = [d for d in cut["dropped"] if "--max-seconds" in d]
    assert said and len(cut["runs"]) < len(free["runs"])
    # the runs given up are the longest of their item: none kept there takes longer
    kept = {(r["n_params"], r["flops"]) for r in cut["runs"]}
    last = free["runs"][-1]["item"]
    item = [r for r in free["runs"] if r["item"] == last]
    assert len(item) >= 3  # a slice of sizes at one budget: the order within it is tested
    gone = [r["est_s"] for r in item if (r["n_params"], r["flops"]) not in kept]
    stay = [r["est_s"] for r in item if (r["n_params"], r["flops"]) in kept]
    assert gone and (not stay or max(stay) <= min(gone))


def test_max_wall_seconds_trims_the_wave_to_its_estimated_wall_time_on_the_launchers_processes(
    tmp_path, tiny_cfg, hand_record, capsys
) -> None:
    """--max-wall-seconds keeps the wave's wall time (its runs scheduled on the launcher's
    processes, as the trainer's planner estimates them) under what is left of a clock allowance."""
    args, free = _free_wave(tmp_path, tiny_cfg, hand_record, capsys)
    assert free["wave"] is not None and len(free["runs"]) >= 3
    limit = free["est_wall_s"] * 0.6
    cut = _trimmed(args, free, max_wall_s=limit)
    assert cut["wave"] is not None and 0 < cut["est_wall_s"] <= limit
    assert len(cut["runs"]) < len(free["runs"])
    assert any("--max-wall-seconds" in d for d in cut["dropped"])


def test_a_slice_trimmed_for_time_to_one_size_is_dropped_whole_not_left_as_a_lone_run(
    tmp_path, tiny_cfg, hand_record, capsys
) -> None:
    """A budget with one size is no slice to repair, and the analysis would propose the whole
    slice there again: trimming keeps two sizes or drops the slice whole, saying why."""
    args, free = _free_wave(tmp_path, tiny_cfg, hand_record, capsys)
    last = free["runs"][-1]["item"]
    item = sorted(r["est_s"] for r in free["runs"] if r["item"] == last)
    assert free["runs"][-1]["kind"] == "extend" and len(item) >= 4
    others = sum(r["est_s"] for r in free["runs"] if r["item"] != last)
    limit = others + item[0] + 0.5 * item[1]  # one of its sizes fits, two do not
    cut = _trimmed(args, free, max_seconds=limit)
    said = "the slice at C="
    if others > 0:
        assert cut["wave"] is not None
        assert all(r["item"] != last for r in cut["runs"])
        assert any(d.startswith(said) for d in cut["dropped"]), cut["dropped"]
    else:  # the slice was the whole wave: nothing is proposed, and the reason says why
        assert cut["wave"] is None and said in cut["stop"]


def test_the_planner_is_handed_the_trainers_own_seconds_and_fits_the_wall_time_it_is_given(
    tmp_path, tiny_cfg, hand_record, capsys
) -> None:
    """With a time allowance, sweeps.next hands the planner what each run takes here
    (`seconds_model`): the trainer's planner's estimates for the sized runs, within 1% (10%
    before its evaluation tokens were priced without the optimizer step's share, as the trainer
    prices them); and the planner then proposes a wave that fits the wall time as it is, where
    the FLOP plan had to be cut afterwards (the test above)."""
    from analysis.planning.seconds import RunSeconds

    args, free = _free_wave(tmp_path, tiny_cfg, hand_record, capsys)
    from sweeps.sweep.wavecost import seconds_model

    model = seconds_model(Path(args[0]), None, workers=1)
    secs = RunSeconds.from_json(json.dumps(model))
    for r in free["runs"]:
        assert secs(r["n_params_sized"], r["n_tokens"]) == pytest.approx(r["est_s"], rel=0.01)
    # at the table's sizes, to the digit, the trainer's TimeModel.run_s (plus a run's setup),
    # even where the evaluations are most of a run (1e3 training tokens against 4,096 eval)
    from models.counting import flops_per_token
    from models.sizing import solve_shape
    from sweeps.sweep.timemodel import fit_time_model
    from sweeps.sweep.wavecost import _sizing

    settings, kw, _ = _sizing(Path(args[0]), None)
    tm = fit_time_model(Path(args[0]).parent)
    per_step = settings["optim"]["batch_size"] * kw["context"]
    n_eval = settings["n_evals"] * settings["data"]["n_val_tokens"]
    for n in secs.n_params[:3]:
        fpt = flops_per_token(solve_shape(settings["model"]["arch"], n_params=n, **kw))["exact"]
        own = tm.run_s(n_steps=1e3 / per_step, n_tokens=1e3, flops_per_token=fpt,
                       n_eval_tokens=n_eval) + tm.setup_s  # fmt: skip
        assert secs(n, 1e3) == pytest.approx(own, rel=1e-9)  # before: 1.63 s against 1.58
    limit = free["est_wall_s"] * 0.6
    rc, out, err = _next(capsys, *args, "--max-wall-seconds", f"{limit:.6g}")
    assert rc == 0, err
    timed = json.loads(out)
    assert timed["wave"] is not None and 0 < timed["est_wall_s"] <= limit
    assert not any("--max-wall-seconds" in d for d in timed["dropped"]), timed["dropped"]


def test_where_nothing_fits_the_time_left_the_loop_asks_for_a_third_of_the_flops() -> None:
    """loop_rules.wave_within_time: a wave refused for time is asked for again with a third of
    the FLOPs, twice at most, and stops asking when the planner proposes nothing."""
    from sweeps.sweep.loop_rules import TIME_RETRIES, wave_within_time

    asked: list[float] = []

    def ask(allow: float) -> dict:
        asked.append(allow)
        return {"allowance": allow, "runs": [1]}

    def make(fits_below: float):
        refused = "no proposed run is worth training: ... (--max-wall-seconds)"
        return lambda p: "wave" if p["allowance"] < fits_below else refused

    wave, prop = wave_within_time(make(5.0), ask, {"allowance": 9.0, "runs": [1]})
    assert wave == "wave" and prop["allowance"] == 3.0 and asked == [3.0]
    asked.clear()
    wave, prop = wave_within_time(make(0.0), ask, {"allowance": 9.0, "runs": [1]})
    assert isinstance(wave, str) and asked == [3.0, 1.0] and TIME_RETRIES == 2
    asked.clear()
    wave, _ = wave_within_time(make(0.0), lambda a: asked.append(a) or {"runs": []},
                               {"allowance": 9.0, "runs": [1]})  # fmt: skip
    assert isinstance(wave, str) and asked == [3.0]  # the planner had nothing smaller
    # refused for another reason than time: no retry
    asked.clear()
    wave, _ = wave_within_time(lambda p: "no proposal helps", ask, {"allowance": 9.0, "runs": [1]})
    assert wave == "no proposal helps" and asked == []


def test_a_seconds_model_with_an_auto_batch_and_no_counted_steps_is_still_one(
    tmp_path, tiny_cfg, hand_record
) -> None:
    """seconds_model takes an "auto" batch's tokens per step from the sweep's runs; where no run
    counted its steps it took the median of nothing (NaN), which the planner refused as a bad
    --seconds-model, a flag the user never gave. It falls back to a batch of 16 now."""
    from analysis.planning.seconds import RunSeconds
    from sweeps.sweep.wavecost import seconds_model

    sweep = _sweep(tmp_path, tiny_cfg, hand_record, factors=(0.5, 1.0, 2.0))
    for d in sorted(sweep.iterdir()):
        rec = json.loads((d / "record.json").read_text())
        rec["config"]["optim"]["batch_size"] = "auto"
        rec["n_steps"] = None
        (d / "record.json").write_text(json.dumps(rec))
    model = seconds_model(sweep, None, workers=1)
    secs = RunSeconds.from_json(json.dumps(model))  # raised AnalysisError before
    assert secs(1e4, 1e6) > 0


def test_a_sweep_scored_on_other_data_than_its_settings_now_give_gets_no_wave(
    tmp_path, tiny_cfg, hand_record, capsys
) -> None:
    """Run ids do not hold the dataset id, so after the corpus or this code's split changed
    (SPLIT_VERSION 2), a rerun found the old runs done, trained a wave on the new data, and the
    analysis then refused to fit the two together: the loop spent a wave and stopped. Now the
    wave is refused first, naming both ids, with nothing written."""
    sweep = _sweep(tmp_path, tiny_cfg, hand_record, factors=(0.5, 1, 2))
    for rec in sweep.glob("*/record.json"):
        data = json.loads(rec.read_text())
        rec.write_text(json.dumps(data | {"dataset_id": "0123456789ab"}))
    rc, out, err = _next(capsys, str(sweep), "--target-flops", "1e13", "--allowance", "2e12")
    assert rc == 2 and "error: RESULTS:" in err and "0123456789ab" in err, err
    assert "SPLIT_VERSION" in err and not (sweep / WAVES_DIR).exists()
