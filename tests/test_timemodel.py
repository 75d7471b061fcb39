"""plan's wall-time model (sweeps/sweep/timemodel.py): its fit to this host's records, the
per-step cost, WSD branches counted by their cooldown, and the schedule over workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeps.sweep.plan import plan_sweep
from sweeps.sweep.timemodel import BUILTIN, TimeModel, fit_time_model, schedule_wall_s


def test_time_model_fit_recovers_constants(tmp_path: Path, hand_record) -> None:
    truth = TimeModel(a=0.5, s=9e-3, b=2e-6, c=4e-11, source="truth")
    import platform

    runs = [(1e5, 1e4, 50), (3e5, 1e5, 2000), (1e6, 1e6, 500), (2e5, 3e6, 800), (4e5, 2e4, 90)]
    for i, (n_tokens, fpt, n_steps) in enumerate(runs):
        cfg = {"n_evals": 2, "data": {"n_val_tokens": 3000}}
        t = truth.run_s(n_steps=n_steps, n_tokens=n_tokens, flops_per_token=fpt, n_eval_tokens=6000)
        hand_record(
            tmp_path / "sw" / f"r{i}",
            n_tokens=int(n_tokens),
            n_steps=n_steps,
            flops_per_token_exact=fpt,
            time_s=t,
            config=cfg,
            host=platform.node(),
        )
    fit = fit_time_model(tmp_path)
    assert fit.source.startswith("fitted to 5 records")
    assert (fit.a, fit.s, fit.b, fit.c) == pytest.approx((0.5, 9e-3, 2e-6, 4e-11), rel=1e-6)
    assert fit_time_model(tmp_path / "empty").source.startswith("built-in")


def _timed_records(root: Path, hand_record, truth: TimeModel, runs, *, per_step: int) -> None:
    """Records whose time_s is `truth`'s: (tokens, flops per token, marginal share) each."""
    import platform

    cfg = {"n_evals": 8, "data": {"n_val_tokens": 65536}}
    for i, (n_tokens, fpt, share) in enumerate(runs):
        own = n_tokens * share  # a WSD branch trained its cooldown only; its trunk, another run
        t = truth.run_s(
            n_steps=own / per_step, n_tokens=own, flops_per_token=fpt, n_eval_tokens=8 * 65536
        )
        hand_record(
            root / "sw" / f"r{i}",
            n_tokens=int(n_tokens),
            n_steps=n_tokens // per_step,
            flops_per_token_exact=fpt,
            flops_marginal=fpt * own,
            time_s=t,
            config=cfg,
            host=platform.node(),
        )


def test_time_model_from_one_batch_size_keeps_a_step_cost(tmp_path: Path, hand_record) -> None:
    """Every record of one tokens-per-step: steps and tokens are collinear, and NNLS put the
    steps' cost on the tokens (s = 0), so a batch-4 sweep was priced 0.6x of the truth."""
    truth = TimeModel(a=1.0, s=8.9e-3, b=4.4e-6, c=1.8e-11, source="truth")
    per_step = 16 * 256
    runs = [(k * per_step, fpt, 1.0) for fpt in (2e4, 2e5, 6e5) for k in (100, 300, 1000)]
    _timed_records(tmp_path, hand_record, truth, runs, per_step=per_step)
    fit = fit_time_model(tmp_path)
    assert "step cost built-in" in fit.source and fit.s == BUILTIN.s
    for batch in (4, 64):
        kw = dict(n_steps=1000, n_tokens=1000 * batch * 256, n_eval_tokens=8 * 65536)
        for fpt in (2e4, 6e5):
            ratio = fit.run_s(**kw, flops_per_token=fpt) / truth.run_s(**kw, flops_per_token=fpt)
            assert 0.9 < ratio < 1.1, (batch, fpt, ratio)


def test_time_model_counts_a_wsd_branch_by_its_cooldown(tmp_path: Path, hand_record) -> None:
    """A branch's time_s is its cooldown's, its n_steps and n_tokens its whole horizon's: fitted
    as they were, a run looked many times faster than it trains."""
    truth = TimeModel(a=0.5, s=9e-3, b=2e-6, c=4e-11, source="truth")
    runs = [(4096 * k, fpt, 1.0) for fpt, k in ((1e4, 50), (1e5, 2000), (1e6, 500), (3e6, 800))]
    runs += [(4096 * 1000, 1e5, 0.1), (4096 * 2000, 1e6, 0.2)]  # two branches
    _timed_records(tmp_path, hand_record, truth, runs[:4], per_step=4096)
    _timed_records(tmp_path / "b", hand_record, truth, runs[4:], per_step=1024)
    (tmp_path / "b" / "sw").rename(tmp_path / "branches")
    fit = fit_time_model(tmp_path)
    assert fit.source.startswith("fitted to 6 records")
    assert (fit.a, fit.s, fit.b, fit.c) == pytest.approx((0.5, 9e-3, 2e-6, 4e-11), rel=1e-6)


def test_plan_prices_each_optimizer_step(tmp_path: Path) -> None:
    """The time model had no per-step term: the same tokens in 8x as many steps were estimated
    alike, and a tiny run of many small steps (most of its time spent per step) 2-5x too fast."""
    common = ["data=synthetic", f"data.cache_dir={tmp_path}/c", f"results_dir={tmp_path}/r"]
    args = ["model.n_params=1e4", "budget=tokens", "budget.tokens=196608", *common]  # 32 x 256 x 24
    small, large = plan_sweep([*args, "optim.batch_size=4,32"])[0]
    assert small.n_tokens == large.n_tokens and small.n_steps == 8 * large.n_steps
    step_s = TimeModel(**plan_sweep(args)[1]["time_model"]).s
    assert step_s > 0
    extra = small.est_s - large.est_s
    assert extra == pytest.approx(step_s * (small.n_steps - large.n_steps), rel=1e-6)


def test_schedule_wall_time_fills_free_workers_in_order() -> None:
    assert schedule_wall_s([4, 1, 1, 1, 1], 2, startup_s=0) == 4
    assert schedule_wall_s([1, 1, 1], 1, startup_s=2) == 5
    assert schedule_wall_s([], 2, startup_s=2) == 0
