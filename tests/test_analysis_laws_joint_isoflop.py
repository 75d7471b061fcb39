"""Approach 2 made joint (analysis/laws/joint_isoflop.py) and its place among the candidates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.errors import AnalysisError
from analysis.laws.joint_isoflop import (
    LAW,
    bootstrap_joint,
    fit_joint_isoflop,
    joint_log_loss,
    joint_loss,
)
from analysis.prediction.forms import law_loss, law_optimal
from analysis.prediction.ladder import CANDIDATES, Candidate
from analysis.prediction.recommend import recommend

TRUE = {"E": 1.8, "A": 300.0, "gamma": 0.15, "k": 0.05, "G": 0.03, "a": 0.5}
BUDGETS = (1e15, 3e15, 1e16, 3e16, 1e17, 3e17)


def _truth(n, c, p=TRUE):
    u = np.log(n) - math.log(p["G"]) - p["a"] * np.log(c)
    return p["E"] + p["A"] * c ** -p["gamma"] + p["k"] * u**2


def _grid(budgets=BUDGETS, per=7, span=8.0):
    c = np.repeat(np.asarray(budgets, float), per)
    n = np.concatenate([TRUE["G"] * b ** TRUE["a"] * np.geomspace(1 / span, span, per)
                        for b in budgets])  # fmt: skip
    return n, c / (6 * n), c


def test_recovers_a_known_law_from_noise_free_runs():
    n, d, c = _grid()
    fit = fit_joint_isoflop(n, d, _truth(n, c))
    assert fit.law == LAW
    for key, value in TRUE.items():
        assert fit.params[key] == pytest.approx(value, rel=1e-6), key
    assert joint_loss(fit, 1e9, 1e11) == pytest.approx(_truth(1e9, 6e20), rel=1e-9)
    opt = law_optimal(fit, 1e21)  # N* = G C^a, L* = E + A C^-gamma
    assert opt.n_params == pytest.approx(TRUE["G"] * 1e21 ** TRUE["a"], rel=1e-6)
    assert opt.loss == pytest.approx(TRUE["E"] + TRUE["A"] * 1e21 ** -TRUE["gamma"], rel=1e-6)
    assert opt.n_tokens == pytest.approx(1e21 / (6 * opt.n_params))


def test_bootstrap_refits_of_noise_free_runs_stay_at_the_law():
    n, d, c = _grid()
    loss = _truth(n, c)
    fit = fit_joint_isoflop(n, d, loss)
    th = bootstrap_joint(fit, n, d, loss, n_resamples=20, rng=np.random.default_rng(0))
    assert th.shape == (20, 6)
    reps = joint_log_loss(th, fit.details["ln_c0"], [1e9], [1e11])[:, 0]
    np.testing.assert_allclose(reps, math.log(_truth(1e9, 6e20)), atol=1e-6)


def test_fewer_than_three_budgets_are_refused_by_name():
    n, d, c = _grid(budgets=(1e15, 1e16))
    with pytest.raises(AnalysisError, match="3 or more"):
        fit_joint_isoflop(n, d, _truth(n, c))


def test_a_candidate_on_isoflop_grids_only():
    joint = Candidate(LAW, "all")
    assert joint in CANDIDATES and joint.name == LAW
    n, d, c = _grid()
    isoflop = pd.DataFrame({"n_params": n, "n_tokens": d, "loss": _truth(n, c), "flops": c})
    assert joint.select(isoflop) is not None
    sizes, mults = 1e7 * 4.0 ** np.arange(5), np.array([5, 10, 20, 40, 80])
    nn, mm = (x.ravel() for x in np.meshgrid(sizes, mults, indexing="ij"))
    ladder = pd.DataFrame({"n_params": nn, "n_tokens": nn * mm, "loss": 2 + 1e3 / nn**0.3})
    assert joint.select(ladder) is None  # an N ladder: the law is not offered
    assert joint.select(isoflop[isoflop["flops"] < 2e15]) is None  # 2 budgets left


def test_the_back_test_chooses_it_where_the_slices_are_its_parabolas():
    """Runs from the joint law with 0.5% noise: no power law in (N, D) follows parabolas whose
    minima move as G C^a, so the table's own back-test picks the joint law, and its interval
    holds the truth one budget beyond the table."""
    n, d, c = _grid(budgets=(*BUDGETS, 1e18))
    rng = np.random.default_rng(3)
    loss = _truth(n, c) * np.exp(rng.normal(0, 0.005, n.size))
    table = pd.DataFrame({"n_params": n, "n_tokens": d, "loss": loss, "flops": c})
    rec = recommend(table[table["flops"] < 5e17], seed=0)
    assert rec.law == LAW, rec.why
    assert rec.scores[LAW] < min(v for k, v in rec.scores.items() if k != LAW)
    p = rec.predict(2e8, 1e18 / (6 * 2e8))
    assert p.interval[0] <= _truth(2e8, 1e18) <= p.interval[1]
    assert p.loss == pytest.approx(float(law_loss(rec.fit, 2e8, 1e18 / 1.2e9)))
    assert rec.to_dict()["params"].keys() == {"E", "A", "gamma", "k", "G", "a"}


def test_the_planner_values_runs_under_the_joint_law():
    """The planning room's interval model (planning/value.py) takes the joint law's own gradient
    and refits: sigma now is finite, and a run at the target never widens it."""
    from analysis.planning.value import sigma2, target_state, with_runs

    n, d, c = _grid(budgets=(*BUDGETS, 1e18))
    rng = np.random.default_rng(3)
    loss = _truth(n, c) * np.exp(rng.normal(0, 0.005, n.size))
    table = pd.DataFrame({"n_params": n, "n_tokens": d, "loss": loss, "flops": c})
    rec = recommend(table[table["flops"] < 5e17], seed=0)
    target = np.array([[2e8, 1e18 / 1.2e9]])
    state = target_state(rec, target)
    assert state.h.shape == (1, 6) and state.cov.shape == (6, 6)
    now = sigma2(state)
    assert math.isfinite(now) and now > 0
    assert sigma2(with_runs(state, [2e8], [1e18 / 1.2e9])) <= now
