"""Intervals that are calibrated and sharp (issue 32): a ladder whose rungs cannot divide by almost
nothing, k estimated without counting the fold fits' estimation noise twice, and intervals that are
never printed as bare digits when unbounded, of zero width or wider than the prediction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.inputs.published_suites import load_suite
from analysis.prediction.calibration import (
    MIN_DISTANCE,
    RULES,
    calibrate,
    estimate_k,
    interval_problem,
)
from analysis.prediction.ladder import ladder_folds, n_rungs, rungs
from analysis.prediction.recommend import Prediction, recommend


def _gadre(corpus: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    g = load_suite("gadre2024")
    s = g[g["group"] == corpus][["n_params", "n_tokens", "loss"]].reset_index(drop=True)
    return s[s["n_params"] <= 4.2e8], s[s["n_params"] > 4.2e8]


def test_sizes_within_the_tolerance_are_one_rung():
    v = np.array([1e6, 1e6 * (1 + 1e-7), 2e6, 2.01e6, 4e6])
    assert n_rungs(v) == 3
    assert rungs(v).tolist() == [1e6 * (1 + 1e-7)] * 2 + [2.01e6] * 2 + [4e6]


def test_sizes_jittered_by_1e7_move_no_interval_bound_by_more_than_1_percent():
    """Sizes read off a plot differ by 1e-7: each became a rung of its own, a fold held out a
    size 1e-6 in log N beyond its training runs, k = error / distance came out ~5,000, and the
    recommended interval was [0, inf]. Rungs group such sizes, so the jitter changes nothing."""
    train, test = _gadre("RefinedWeb")
    rng = np.random.default_rng(0)
    jittered = train.assign(n_params=train["n_params"] * (1 + rng.uniform(-1e-7, 1e-7, len(train))))
    assert n_rungs(jittered["n_params"]) == n_rungs(train["n_params"])
    sizes = [len(f.test) for f in ladder_folds(train)]
    assert [len(f.test) for f in ladder_folds(jittered)] == sizes
    a, b = recommend(train), recommend(jittered)
    for n, d in zip(test["n_params"], test["n_tokens"], strict=True):
        pa, pb = a.predict(n, d), b.predict(n, d)
        assert pb.problem is None and all(math.isfinite(v) for v in pb.interval)
        assert np.allclose(pb.interval, pa.interval, rtol=0.01), (pa.interval, pb.interval)


def test_runs_nearer_than_the_floor_do_not_inform_k():
    e, x = np.array([0.01, 0.02, 0.5]), np.array([1.0, 2.0, MIN_DISTANCE / 2])
    near = calibrate(0.001, e, x, 1)
    assert near.n_points == 2 and near.k < 0.05  # the 0.5 error at x ~ 0 would make k ~ 20
    assert calibrate(0.001, e[2:], x[2:], 1).k == 0.0  # nothing beyond the floor: no k


def test_each_rule_recovers_a_known_extrapolation_error():
    """median: a robust scale of the excess over the noise floor; ml: the Gaussian likelihood
    with the fold fits' own spread taken out (left in k, it was counted twice)."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 3.0, 4000)
    s0, sf, k = 0.005, 0.01, 0.02
    e = rng.normal(0, np.sqrt(s0**2 + sf**2 + (k * x) ** 2))
    spread = np.full(x.size, sf)
    assert estimate_k("ml", s0, e, x, spread) == pytest.approx(k, rel=0.05)
    assert estimate_k("ml", s0, e, x, 0 * spread) > 1.05 * k  # the fold spread, counted in k
    e = rng.normal(0, k * x)  # no noise floor: the median rule's scale is k itself
    assert estimate_k("median", 0.0, e, x, spread) == pytest.approx(k, rel=0.05)


def test_one_fold_uses_the_synthetic_choice_and_several_folds_choose_on_themselves():
    """A median k ignores a minority of large errors: where a table's lower folds show that it
    would have missed its upper fold, the nested back-test prefers the likelihood's k."""
    x = np.full(30, 0.7)
    one = calibrate(0.01, np.linspace(-0.02, 0.02, 30), x, 1)
    assert one.rule == RULES[0] == "median" and "synthetic" in one.why
    fold = np.repeat([0, 1, 2], 10)
    e = np.tile([0.001] * 7 + [0.15, -0.2, 0.25], 3)  # most runs fit, three per fold miss badly
    nested = calibrate(0.01, e, x, 3, fold=fold)
    assert nested.rule == "ml" and "nested folds" in nested.why
    assert nested.k > 0.1 and estimate_k("median", 0.01, e, x, 0 * e) < 0.01


@pytest.mark.parametrize(
    ("interval", "says"),
    [((0.0, math.inf), "unbounded"), ((2.0, 2.0), "zero width"), ((0.9, 3.5), "wider than")],
)
def test_an_interval_that_carries_no_digits_says_why(interval, says):
    assert says in interval_problem(2.0, interval)
    p = Prediction(1e9, 2e10, 1.2e20, 2.0, interval, 0.95, "chinchilla-vp")
    doc = p.to_dict()
    assert says in doc["interval_warning"]
    if says != "wider than":
        assert doc["interval"] is None and doc["relative_width"] is None
    assert interval_problem(2.0, (1.9, 2.1)) is None
