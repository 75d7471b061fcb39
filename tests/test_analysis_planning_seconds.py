"""A planner that a wall-time allowance binds (analysis/planning/seconds.py, select.py): runs priced
in the seconds they take on the trainer's workers as well as in FLOPs."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis.errors import AnalysisError
from analysis.laws.synthetic import isoflop_points
from analysis.planning.propose import propose
from analysis.planning.seconds import RunSeconds
from analysis.planning.select import Item, choose
from analysis.planning.value import sigma2, target_state, with_runs
from analysis.prediction.recommend import recommend
from sweeps.sweep.timemodel import schedule_wall_s

# a CPU's costs: the per-token time grows slowly with N at these sizes (a step's fixed cost and
# attention dominate small models), so at one C the smallest model's run is the longest
SECONDS = RunSeconds(per_run_s=2.0, eval_tokens=1e5, n_params=(1e5, 1e6, 1e8),
                     per_token_s=(2e-6, 3e-6, 6e-5), workers=2, startup_s=4.0)  # fmt: skip


def _table() -> pd.DataFrame:
    n, d, loss, c = isoflop_points(rng=np.random.default_rng(0), budgets=(1e13, 3e13, 1e14, 3e14),
                                   n_per_budget=5, span_decades=0.6)  # fmt: skip
    return pd.DataFrame({"n_params": n, "n_tokens": d, "loss": loss, "flops": 6 * n * d,
                         "flops_budget": c, "seed": 0})  # fmt: skip


def _pool(c: float) -> list[Item]:
    """Single runs at budgets around the sweep's largest, sizes a decade each side."""
    return [Item((float(n),), (b / (6 * n),), "pool", f"C={b:.0e}")
            for b in (c, 2 * c, 4 * c) for n in np.geomspace(3e5, 3e7, 7)]  # fmt: skip


def test_seconds_interpolate_in_log_log_and_extend_the_end_segments() -> None:
    s = SECONDS
    assert s(1e6, 1e8) == pytest.approx(2.0 + (1e8 + 1e5) * 3e-6)
    mid = math.exp((math.log(2e-6) + math.log(3e-6)) / 2)  # halfway in log N
    assert s(math.sqrt(1e5 * 1e6), 1e7) == pytest.approx(2.0 + (1e7 + 1e5) * mid)
    slope = math.log(6e-5 / 3e-6) / math.log(1e8 / 1e6)
    assert s(1e9, 1e7) == pytest.approx(2.0 + (1e7 + 1e5) * 6e-5 * 10**slope)
    runs = [30.0, 20.0, 10.0, 5.0]
    assert s.wall(runs) == schedule_wall_s(runs, 2, 4.0) == 4.0 + 35.0


def test_with_time_unbounded_the_choice_is_the_flop_planners() -> None:
    rec = recommend(_table())
    state = target_state(rec, np.array([[2e8, 1e10]]))
    items = _pool(3e14)
    flops_only = choose(state, items, 3e15)
    timed = choose(state, items, 3e15, seconds=SECONDS, max_wall_s=math.inf)
    assert timed.items == flops_only.items and timed.final == flops_only.final


@pytest.mark.parametrize("allowance, share", [(2e15, 0.4), (6e15, 0.4), (6e15, 0.6)])
def test_where_time_binds_the_wave_fits_it_and_narrows_more_than_the_flop_plan_trimmed(
    allowance: float, share: float
) -> None:
    """The FLOP planner's choice, trimmed to a wall time afterwards (last-ranked first, as
    sweeps.next trims), against the choice that ranks by the binding share: the second fits the
    same wall time and leaves no larger a variance at the target (much smaller where the FLOP
    plan's first item is a long run the wall time cannot hold)."""
    rec = recommend(_table())
    state = target_state(rec, np.array([[2e8, 1e10]]))
    items = _pool(3e14)

    def run_s(chosen) -> list[float]:
        return [s for i in chosen for s in SECONDS.runs(i.n_params, i.n_tokens)]

    flops_only = choose(state, items, allowance)
    wall = share * SECONDS.wall(run_s(flops_only.items))
    timed = choose(state, items, allowance, seconds=SECONDS, max_wall_s=wall)
    assert timed.items and SECONDS.wall(run_s(timed.items)) <= wall and timed.spent <= allowance
    kept = list(flops_only.items)
    while kept and SECONDS.wall(run_s(kept)) > wall:
        kept.pop()
    trimmed = state
    for i in kept:
        trimmed = with_runs(trimmed, i.n_params, i.n_tokens)
    assert timed.final <= sigma2(trimmed) * (1 + 1e-9)
    if allowance == 2e15:  # the FLOP plan kept one run of two; the timed one fits three
        assert len(kept) < len(timed.items) and timed.final < 0.8 * sigma2(trimmed)


def test_a_wall_time_that_fits_no_run_is_a_stop_naming_it() -> None:
    p = propose(_table(), 1e16, 1e16, seconds=SECONDS, max_wall_s=1.0)
    assert not p.items and "wall-time allowance (1 s) fits no proposed run" in (p.stop or "")
    with pytest.raises(AnalysisError, match="--max-wall-seconds"):
        propose(_table(), 1e16, 1e16, seconds=SECONDS, max_wall_s=-5.0)


def test_the_command_takes_the_seconds_model_and_refuses_a_bad_one(tmp_path) -> None:
    path = tmp_path / "t.csv"
    _table().to_csv(path, index=False)
    base = [sys.executable, "-m", "analysis.planning", str(path), "--target-flops", "1e16",
            "--allowance", "1e16", "--json"]  # fmt: skip
    model = json.dumps({"per_run_s": 2.0, "eval_tokens": 1e5, "n_params": [1e5, 1e6, 1e8],
                        "per_token_s": [2e-6, 3e-6, 6e-5], "workers": 2})  # fmt: skip
    ok = subprocess.run([*base, "--seconds-model", model, "--max-wall-seconds", "3000"],
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    runs = json.loads(ok.stdout)["runs"]
    secs = RunSeconds.from_json(model)
    assert runs and secs.wall([secs(r["n_params"], r["n_tokens"]) for r in runs]) <= 3000
    for bad, said in [
        ("{not json", "--seconds-model: cannot be read"),
        (json.dumps({"per_run_s": 1, "eval_tokens": 0, "n_params": [1e6, 1e5],
                     "per_token_s": [1e-6, 1e-6]}), "--seconds-model: n_params must ascend"),
    ]:  # fmt: skip
        out = subprocess.run([*base, "--seconds-model", bad, "--max-wall-seconds", "100"],
                             capture_output=True, text=True)  # fmt: skip
        last = out.stderr.strip().splitlines()[-1]
        assert out.returncode == 2 and last.startswith(f"error: {said}"), out.stderr
    alone = subprocess.run([*base, "--max-wall-seconds", "100"], capture_output=True, text=True)
    assert alone.returncode == 2 and "needs --seconds-model" in alone.stderr
    assert list(tmp_path.iterdir()) == [path]  # nothing written


def test_where_no_whole_slice_fits_the_time_a_part_of_one_is_proposed() -> None:
    """On a CPU a slice's smallest model trains longest. Where a time allowance binds, the planner
    is also offered each extension slice's three central sizes (which later waves repair), one
    variant of a slice at most; without one, only whole slices."""
    from analysis.planning.candidates import candidate_items

    table = _table()
    rec = recommend(table, noise=0.01)
    whole, _ = candidate_items(table, rec, 1e16, noise_measured=True)
    items, _ = candidate_items(table, rec, 1e16, noise_measured=True, partial=True)
    ext = [i for i in whole if i.kind == "extend"]
    assert ext and all(len(i.n_params) == 5 for i in ext)
    group = [i for i in items if i.group == ext[0].group]
    assert len(group) == 2 and group[1].n_params == ext[0].n_params[1:4]

    def wall(item: Item) -> float:
        return SECONDS.wall(SECONDS.runs(item.n_params, item.n_tokens))

    quickest_whole = min(wall(i) for i in ext)
    quickest_part = min(wall(i) for i in items if i.kind == "extend")
    assert quickest_part < quickest_whole
    limit = math.sqrt(quickest_part * quickest_whole)
    p = propose(table, 1e16, 1e16, noise=0.01, seconds=SECONDS, max_wall_s=limit)
    chosen = [i for i in p.items if i.kind == "extend"]
    assert chosen and all(len(i.n_params) == 3 for i in chosen), p.rows()
    assert len({i.group for i in chosen}) == len(chosen)  # one variant of a slice at most
    assert p.wall_s is not None and p.wall_s <= limit and p.max_wall_s == limit
    tight = propose(table, 1e16, 1e16, noise=0.01, seconds=SECONDS, max_wall_s=0.9 * quickest_part)
    chosen = [i for i in tight.items if i.kind == "extend"]  # none of 3: the last resort's (below)
    assert chosen and all(len(i.n_params) < 3 for i in chosen), tight.rows()


def test_where_no_part_of_a_slice_fits_the_time_the_last_resort_spends_it() -> None:
    """Where the FLOPs buy a run but no extension (whole or three central sizes) fits the time
    left, the planner offers smaller parts and a slice half a ladder step up, rather than nothing
    (the demo's loop stopped with 232 of 387 s unspent); the wave fits the time. Below the
    quickest of those, nothing is proposed and the stop names the wall time."""
    from analysis.planning import candidates
    from analysis.planning.candidates import candidate_items

    table = _table()
    rec = recommend(table, noise=0.01)

    def wall(item: Item) -> float:
        return SECONDS.wall(SECONDS.runs(item.n_params, item.n_tokens))

    usual, _ = candidate_items(table, rec, 1e16, noise_measured=True, partial=True)
    resort, _ = candidate_items(table, rec, 1e16, noise_measured=True, partial=True,
                                last_resort=True)  # fmt: skip
    quickest = min(wall(i) for i in usual if i.kind == "extend")
    smaller = [i for i in resort if i.kind == "extend" and wall(i) < quickest]
    budgets = {round(6 * i.n_params[0] * i.n_tokens[0], -10) for i in resort}
    assert smaller and any(len(i.n_params) == 1 for i in smaller)
    assert round(3e14 * 3**0.5, -10) in budgets  # the half step (the ladder's ratio is 3)
    assert round(3e14 * 3**0.5, -10) not in {
        round(6 * i.n_params[0] * i.n_tokens[0], -10) for i in usual}  # fmt: skip
    limit = 0.9 * quickest
    p = propose(table, 1e16, 1e16, noise=0.01, seconds=SECONDS, max_wall_s=limit)
    assert p.items and p.stop is None, p.stop
    assert p.wall_s is not None and p.wall_s <= limit
    assert any(i.kind == "extend" and len(i.n_params) < 3 for i in p.items), p.rows()
    assert len({i.group for i in p.items if i.kind == "extend"}) == len(
        [i for i in p.items if i.kind == "extend"])  # one variant of a slice at most  # fmt: skip
    floor = min(wall(i) for i in resort)
    nothing = propose(table, 1e16, 1e16, noise=0.01, seconds=SECONDS, max_wall_s=0.9 * floor)
    assert not nothing.items and "wall-time allowance" in (nothing.stop or "")
    # where the FLOPs, not the time, buy nothing, there is no last resort: the stop says so
    cheapest = min(i.cost for i in usual)
    poor = propose(table, 1e16, 0.5 * cheapest, noise=0.01, seconds=SECONDS, max_wall_s=limit)
    assert not poor.items and "raise --allowance" in (poor.stop or "")
    before = candidates.LAST_RESORT_PARTS, candidates.LAST_RESORT_STEPS
    try:  # without the last resort (the code before it): nothing at the same limit
        candidates.LAST_RESORT_PARTS, candidates.LAST_RESORT_STEPS = (), ()
        assert not propose(table, 1e16, 1e16, noise=0.01, seconds=SECONDS,
                           max_wall_s=limit).items  # fmt: skip
    finally:
        candidates.LAST_RESORT_PARTS, candidates.LAST_RESORT_STEPS = before


def test_with_time_to_spare_the_proposal_is_the_flop_planners_whole_slices() -> None:
    """The slices' parts are offered only where the FLOP plan's wave would not fit the wall time;
    a loose --max-wall-seconds leaves the choice as it is without one (before, any wall time
    offered the parts, and the FLOP ranking could buy a part of a slice where the whole fit)."""
    table = _table()
    for allowance in (3e15, 1e16, 3e16):
        flops = propose(table, 1e16, allowance, noise=0.01)
        loose = propose(table, 1e16, allowance, noise=0.01, seconds=SECONDS, max_wall_s=1e12)
        assert [(i.n_params, i.n_tokens) for i in loose.items] == [
            (i.n_params, i.n_tokens) for i in flops.items], allowance
        assert all(len(i.n_params) != 3 or i.kind != "extend" for i in loose.items)


def test_run_seconds_that_fit_no_run_are_named_as_the_loops_own_flag(tmp_path) -> None:
    """sweeps.next and sweeps.adaptive handed the planner --max-seconds' run-seconds through its
    --max-wall-seconds; where they fit no run, the error named --max-wall-seconds, a flag the
    user had not given, and the loop stopped as on a wall-time allowance. The planner now has
    --max-seconds of its own: the error names it and run-seconds, and the loop's stop is a time
    allowance."""
    from sweeps.errors import UserError
    from sweeps.next import planner
    from sweeps.sweep.loop_rules import stop_reason, time_for_wave

    path = tmp_path / "t.csv"
    _table().to_csv(path, index=False)
    model = {"per_run_s": 2.0, "eval_tokens": 1e5, "n_params": [1e5, 1e6, 1e8],
             "per_token_s": [2e-6, 3e-6, 6e-5], "workers": 1, "startup_s": 0.0}  # fmt: skip
    with pytest.raises(UserError) as e:
        planner(path, 1e16, 1e16, max_runs=None, arch=None, seconds=model, max_seconds=1.0)
    assert e.value.field == "--max-seconds", e.value
    assert "run-seconds allowance" in e.value.problem and "--max-wall" not in e.value.problem
    target = {"backtested": False, "half_width": 0.5}
    stop = stop_reason(target, {"runs": [], "stop": e.value.problem}, spent=1.0, allowance=9.0,
                       tolerance=0.1, n_waves=1, max_waves=3)  # fmt: skip
    assert stop is not None and stop.startswith("time allowance: "), stop
    # on the clock the planner is handed what is left after this step's planning so far, the
    # planning call and the refit after the wave (each as long as the last step's); in
    # run-seconds all of it (before: the clock's elapsed time came off run-seconds too, and the
    # planning call and the refit were not kept back on the clock)
    assert time_for_wave(100.0, 5.0, 10.0, on_clock=True) == 75.0
    assert time_for_wave(100.0, 5.0, 10.0, on_clock=False) == 100.0
    assert time_for_wave(10.0, 5.0, 10.0, on_clock=True) == 1.0


@pytest.mark.parametrize("field, value, said", [
    ("startup_s", float("nan"), "startup_s must be a finite number >= 0"),
    ("workers", 2.5, "workers must be a whole number >= 1"),
    ("per_token_s", [1e-6, -1e-6], "per_token_s must be positive"),
    ("n_params", [1e5], "n_params and per_token_s must have the same length"),
])  # fmt: skip
def test_a_bad_seconds_model_names_the_field_at_fault(field, value, said) -> None:
    """Before: a NaN startup_s passed (and every schedule then failed to fit), 2.5 workers were
    read as 2, and the other faults shared one message naming every field."""
    good = {"per_run_s": 2.0, "eval_tokens": 1e5, "n_params": [1e5, 1e6],
            "per_token_s": [2e-6, 3e-6], "workers": 2, "startup_s": 1.0}  # fmt: skip
    RunSeconds.from_json(json.dumps(good))
    with pytest.raises(AnalysisError, match=f"^--seconds-model: {said}"):
        RunSeconds.from_json(json.dumps(good | {field: value}))



def test_both_time_allowances_bind_the_wave_together() -> None:
    """With a wall time and run-seconds both given, the wave fits each; before, the planner was
    handed the wall time only and priced nothing in run-seconds (the wave was then trimmed
    after the choice, last-ranked run first, rather than chosen to fit)."""
    rec = recommend(_table())
    state = target_state(rec, np.array([[2e8, 1e10]]))
    items = _pool(3e14)

    def run_s(c) -> float:
        return sum(t for i in c.items for t in SECONDS.runs(i.n_params, i.n_tokens))

    def wall_s(c) -> float:
        return SECONDS.wall([t for i in c.items for t in SECONDS.runs(i.n_params, i.n_tokens)])

    free = choose(state, items, 3e15)
    wall = 0.5 * wall_s(free)
    by_wall = choose(state, items, 3e15, seconds=SECONDS, max_wall_s=wall)
    cap = 0.8 * run_s(by_wall)  # run-seconds the wall's own plan would overrun
    both = choose(state, items, 3e15, seconds=SECONDS, max_wall_s=wall, max_run_s=cap)
    assert by_wall.items and wall_s(by_wall) <= wall < wall_s(free) and run_s(by_wall) > cap
    assert both.items and wall_s(both) <= wall and run_s(both) <= cap
    # through propose: both limits reported, and a bad one named by its flag
    p = propose(_table(), 1e16, 1e16, noise=0.01, seconds=SECONDS, max_wall_s=5e3, max_run_s=5e3)
    assert p.max_run_s == 5e3 and p.max_wall_s == 5e3 and p.run_s is not None
    assert p.to_dict()["run_s"] == p.run_s and p.run_s <= 5e3 and p.wall_s <= 5e3
    with pytest.raises(AnalysisError, match="--max-seconds -1: must be a positive"):
        propose(_table(), 1e16, 1e16, seconds=SECONDS, max_run_s=-1.0)


def test_where_each_run_fits_one_time_allowance_but_not_the_other_the_stop_names_both() -> None:
    """Before, the stop checked each time allowance alone: a run that fits only the wall time
    beside one that fits only the run-seconds read as "no proposed run narrows the interval",
    and the loop reported that no proposal helps rather than a time allowance."""
    from analysis.planning.propose import _why_nothing

    secs = RunSeconds(per_run_s=0.0, eval_tokens=0.0, n_params=(1e5,), per_token_s=(1e-3,),
                      workers=2, startup_s=4.0)  # fmt: skip
    pair = Item((1e5, 1e5), (1e5, 1e5), "extend", "two runs of 100 s")  # wall 104 s, sum 200 s
    one = Item((1e5,), (1.5e5,), "extend", "one run of 150 s")  # wall 154 s, sum 150 s
    both, timed = _why_nothing([pair, one], 1e30, secs, 120.0, 180.0, 1.0)
    assert both.startswith("the wall-time allowance (120 s) and the run-seconds allowance (180 s) "
                           "fit no proposed run together"), both  # fmt: skip
    assert timed
    said, timed = _why_nothing([pair, one], 1e30, secs, math.inf, 140.0, 1.0)
    assert "--max-seconds" in said and timed
    said, timed = _why_nothing([pair, one], 1e30, secs, 100.0, math.inf, 1.0)
    assert "--max-wall-seconds" in said and timed
    said, timed = _why_nothing([pair, one], 1e30, secs, 200.0, 200.0, 1.0)
    assert said.startswith("no proposed run") and not timed


def test_a_lone_run_bought_as_a_last_resort_is_not_proposed_again() -> None:
    """A run of a slice already trained at a budget (a last resort's lone centre) is left out of
    that budget's later variants, which offer the rest of its sizes (before, the same centre was
    proposed again, and sweeps.next dropped it as trained, so the loop stopped)."""
    from analysis.planning.candidates import candidate_items

    table = _table()
    rec = recommend(table, noise=0.01)
    first, _ = candidate_items(table, rec, 1e16, noise_measured=True, partial=True,
                               last_resort=True)  # fmt: skip
    half = 3e14 * 3**0.5
    at_half = [i for i in first if i.kind == "extend" and i.group == f"slice {half:.6g}"]
    (lone,) = [i for i in at_half if len(i.n_params) == 1]
    trained = table.iloc[:1].assign(n_params=lone.n_params[0], n_tokens=lone.n_tokens[0],
                                    flops=half, flops_budget=half, loss=2.0)  # fmt: skip
    more = pd.concat([table, trained], ignore_index=True)
    after, _ = candidate_items(more, rec, 1e16, noise_measured=True, partial=True,
                               last_resort=True)  # fmt: skip
    again = [i for i in after if i.kind == "extend" and i.group == f"slice {half:.6g}"]
    assert again and all(lone.n_params[0] not in i.n_params for i in again)
    assert max(len(i.n_params) for i in again) == 4  # the whole slice less the trained centre


def test_the_stop_asks_the_time_of_the_runs_the_flops_buy() -> None:
    """Where every run the FLOPs buy overruns the wall time and only a run the FLOPs cannot buy
    would fit it, the stop names the wall time (before, it said no run narrows the interval,
    and the loop called it "no proposal helps")."""
    from analysis.planning.propose import _why_nothing

    long_cheap = Item((1e5,), (1e9,), "extend", "a small model's long run")  # ~2,000 s, 6e14
    quick_dear = Item((1e6,), (1e9,), "extend", "a larger model's run")  # ~3 s, 6e15
    secs = RunSeconds(per_run_s=0.0, eval_tokens=0.0, n_params=(1e5, 1e6, 1e7),
                      per_token_s=(2e-6, 3e-9, 6e-9), workers=1)  # fmt: skip
    said, timed = _why_nothing([long_cheap, quick_dear], 1e15, secs, 100.0, math.inf, 1e-3)
    assert "wall-time allowance (100 s) fits no proposed run" in said and timed, said
    said, timed = _why_nothing([long_cheap, quick_dear], 1e14, secs, 100.0, math.inf, 1e-3)
    assert "raise --allowance" in said and not timed  # the FLOPs, not the time
