"""Approach 3, approach 2 and approach 1 fits and the back-tests on synthetic data from a known law
(Kaplan's laws: test_analysis_laws_kaplan.py)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.errors import AnalysisError
from analysis.inputs.run_records import fit_runs, load_runs
from analysis.laws.bootstrap import bootstrap_chinchilla
from analysis.laws.chinchilla import (
    compute_optimal,
    fit_chinchilla,
    fit_chinchilla_likelihood,
    fit_chinchilla_reference,
)
from analysis.laws.envelope import bootstrap_envelope, fit_envelope
from analysis.laws.isoflop import accelerating_frontier, bootstrap_isoflop, fit_isoflop
from analysis.laws.objective import chinchilla_design, chinchilla_grid, value_and_grad
from analysis.laws.synthetic import TRUE_PARAMS, grid_points, isoflop_points, law_loss, write_sweep
from analysis.prediction.backtest import backtest_chinchilla, backtest_isoflop, backtest_power_law

TRUE_A = TRUE_PARAMS["beta"] / (TRUE_PARAMS["alpha"] + TRUE_PARAMS["beta"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chinchilla_recovers_known_law_from_records(tmp_path, seed):
    # 16 x 16 grid, N 1e4..1e7, D 1e6..1e9, 0.5% log-normal noise, 5% outliers pushed up 5-35%
    n, d, loss = grid_points(rng=np.random.default_rng(seed), noise=0.005)
    write_sweep(tmp_path / "s", n_params=n, n_tokens=d, loss=loss)
    runs, _ = load_runs(tmp_path / "s")
    data = fit_runs(runs)
    fit = fit_chinchilla(data["N"], data["D"], data["L"])
    p = fit.params
    assert fit.converged, fit.message
    assert abs(p["alpha"] - TRUE_PARAMS["alpha"]) < 0.01
    assert abs(p["beta"] - TRUE_PARAMS["beta"]) < 0.01
    assert abs(p["E"] / TRUE_PARAMS["E"] - 1) < 0.01
    assert abs(p["a"] - TRUE_A) < 0.02
    assert fit.n_points == 256 and "matmul" in fit.convention


@pytest.mark.parametrize(
    "stride",
    [
        pytest.param(450, id="10-starts"),
        pytest.param(30, id="150-starts", marks=pytest.mark.slow),  # 500 starts took 67 s in CI
    ],
)
def test_fast_optimiser_matches_scipy_loop(stride):
    """Certified-value style: the vectorised grid + batched Newton + L-BFGS-B finish reaches the
    objective of the plain scipy L-BFGS-B loop over (a stride of) the 4500-start grid."""
    n, d, loss = grid_points(rng=np.random.default_rng(7), n_sizes=6, n_token_counts=6,
                             noise=0.01)  # fmt: skip
    fast = fit_chinchilla(n, d, loss)
    ref = fit_chinchilla_reference(n, d, loss, starts=chinchilla_grid()[::stride])
    assert fast.objective <= ref.objective * (1 + 1e-12)
    assert abs(fast.objective - ref.objective) <= 1e-10 * ref.objective
    for k in ("alpha", "beta", "log_E"):
        assert fast.params[k] == pytest.approx(ref.params[k], abs=1e-5)


def test_gradient_is_exact():
    n, d, loss = grid_points(rng=np.random.default_rng(0), n_sizes=4, n_token_counts=4)
    design, y = chinchilla_design(n, d), np.log(loss)
    theta = np.array([4.0, 4.5, 0.6, 0.33, 0.29])
    f, g = value_and_grad(theta, design, y, 1e-3)
    eps = 1e-7
    num = [(value_and_grad(theta + eps * e, design, y, 1e-3)[0]
            - value_and_grad(theta - eps * e, design, y, 1e-3)[0]) / (2 * eps)
           for e in np.eye(5)]  # fmt: skip
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-9)


def test_compute_optimal_allocation_formula():
    p = dict(TRUE_PARAMS) | {"a": TRUE_A}
    alloc = compute_optimal(p, 1e18)
    assert alloc.n_params * alloc.n_tokens * 6 == pytest.approx(1e18)
    # the allocation minimises L along C = 6ND
    for f in (0.8, 1.25):
        n = alloc.n_params * f
        assert law_loss(p, n, 1e18 / (6 * n)) > alloc.loss
    assert alloc.tokens_per_param == pytest.approx(alloc.n_tokens / alloc.n_params)


def test_bootstrap_intervals_contain_estimate_and_are_seeded():
    n, d, loss = grid_points(rng=np.random.default_rng(1), noise=0.005)
    fit = fit_chinchilla(n, d, loss)
    f1, b1 = bootstrap_chinchilla(fit, n, d, loss, target_flops=1e18, n_resamples=200,
                                  rng=np.random.default_rng(5))  # fmt: skip
    f2, _ = bootstrap_chinchilla(fit, n, d, loss, target_flops=1e18, n_resamples=200,
                                 rng=np.random.default_rng(5))  # fmt: skip
    assert f1.intervals == f2.intervals and b1.n_failed == 0
    for k in ("alpha", "beta", "E", "a", "n_star", "d_star", "tokens_per_param", "loss_at_target"):
        lo, hi = f1.intervals[k]
        assert lo < hi
    for k in ("alpha", "beta", "E", "a"):
        assert f1.intervals[k][0] <= fit.params[k] <= f1.intervals[k][1]


# six runs of the device check's IsoFLOP sweep on an H200 (benchmarks/device_check.sh, 2026-11-30):
# two budgets, loss falling towards the smallest size at both, so five parameters are not pinned
GPU_SIX = (
    np.array([2703360, 819200, 2703360, 1281024, 1576960, 5591040.0]),
    np.array([18481152, 20316160, 6160384, 39026688, 10551296, 8912896.0]),
    np.array([1.24641809, 1.38474402, 2.22796386, 1.08369073, 1.76001582, 2.19497667]),
)


def test_bootstrap_drops_refits_past_float_range_and_flags_an_undetermined_fit(monkeypatch):
    """A refit can 'converge' with log A beyond exp's range (A/N^alpha stays finite with a huge
    alpha): the report on the six GPU runs crashed with OverflowError in chinchilla_params. Now
    such refits count as failed, and the fit says its E is not determined.

    Whether a given seed sends a refit past float range depends on the CPU's floating point (on an
    AVX2-only EPYC the same seed gave 2 unconverged refits and none past range), so the event is
    built here: three refits are made to 'converge' at log A = 800."""
    import analysis.laws.bootstrap as bootstrap_module

    real_refits = bootstrap_module._refits
    blown = [3, 17, 41]

    def refits_with_three_past_float_range(*args, **kwargs):
        sol = real_refits(*args, **kwargs)
        sol.theta[blown, 0] = 800.0  # log A > log(float max) ~ 709.78
        sol.converged[blown] = True
        return sol

    monkeypatch.setattr(bootstrap_module, "_refits", refits_with_three_past_float_range)
    n, d, loss = GPU_SIX
    fit = fit_chinchilla(n, d, loss)
    fit, boot = bootstrap_chinchilla(
        fit, n, d, loss, target_flops=3e15, n_resamples=50, rng=np.random.default_rng(2)
    )
    assert boot.n_failed >= len(blown)
    assert any(f"{len(blown)} of them diverged (A or B beyond float range)" in w
               for w in fit.warnings), fit.warnings  # fmt: skip
    assert any(w.startswith("chinchilla: the irreducible loss E is not determined")
               for w in fit.warnings)  # fmt: skip
    assert all(np.isfinite(boot.samples[k]).all() for k in ("E", "A", "B"))
    assert all(v.size <= 50 - len(blown) for v in boot.samples.values())
    monkeypatch.setattr(bootstrap_module, "_refits", real_refits)
    # a law the runs do determine is not flagged
    n, d, loss = grid_points(rng=np.random.default_rng(0), noise=0.005)
    good, _ = bootstrap_chinchilla(
        fit_chinchilla(n, d, loss), n, d, loss, n_resamples=50, rng=np.random.default_rng(0)
    )
    assert not [w for w in good.warnings if w.startswith("chinchilla:")], good.warnings


@pytest.mark.slow
def test_bootstrap_coverage_over_50_seeds():
    """The issue's bar: 95% intervals cover the truth >= 90% of the time on 50 repetitions.

    Why it passes (and why it once failed): with multinomial resamples these seeds gave beta 44/50.
    Studied on 100 seeds (the intervals' spread matched the estimates' spread within ~5-10%, refits
    reach the same minimum as a full-grid refit, BCa and basic intervals were no better, symmetric
    outliers did not help alpha), the multinomial intervals covered 92-97% -- about nominal, so a
    45/50 bar fails by chance. Hoffmann's delta = 1e-3 is below the 0.5% noise, so the fit is
    nearly a least-absolute-deviations fit, whose multinomial bootstrap is lumpy (ties of
    duplicated runs); Bayesian-bootstrap weights (continuous, same mean and variance) smooth it and
    covered 94-97% on the same 100 seeds, at least as often as multinomial on both halves. Here:
    alpha 46, beta 46, E 47, a 47 of 50; on the fresh seeds 50-99: 50, 48, 50, 49. Outliers stay
    one-sided (a bad run is worse, never better), the realistic case. Expect ~4 minutes.
    """
    hits = {k: 0 for k in ("alpha", "beta", "E", "a")}
    truth = dict(TRUE_PARAMS) | {"a": TRUE_A}
    for seed in range(50):
        n, d, loss = grid_points(rng=np.random.default_rng(1000 + seed), noise=0.005)
        fit = fit_chinchilla(n, d, loss)
        fit, _ = bootstrap_chinchilla(fit, n, d, loss, rng=np.random.default_rng(seed))
        for k in hits:
            lo, hi = fit.intervals[k]
            hits[k] += lo <= truth[k] <= hi
    assert all(h >= 45 for h in hits.values()), hits


def test_likelihood_variant_estimates_noise_scale():
    n, d, loss = grid_points(rng=np.random.default_rng(2), noise=0.01, outlier_frac=0.0)
    fit = fit_chinchilla_likelihood(n, d, loss)
    assert fit.converged, fit.message
    assert fit.params["sigma"] == pytest.approx(0.01, rel=0.2)
    assert abs(fit.params["alpha"] - TRUE_PARAMS["alpha"]) < 0.02


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_isoflop_recovers_exponent(seed):
    n, d, loss, c = isoflop_points(rng=np.random.default_rng(seed))
    fit = fit_isoflop(n, d, loss, c)
    assert abs(fit.params["a"] - TRUE_A) < 0.03
    assert abs(fit.params["a"] + fit.params["b"] - 1) < 1e-9  # D* = C / 6N*
    assert not fit.warnings
    boot = bootstrap_isoflop(fit, n, loss, c, target_flops=1e18, n_resamples=100,
                             rng=np.random.default_rng(0))  # fmt: skip
    lo, hi = boot.intervals["a"]
    assert lo < fit.params["a"] < hi


def test_isoflop_bootstrap_gives_no_zero_width_intervals_with_three_sizes_per_budget():
    # 2 budgets of 3 sizes: a resample repeats all three of each (the same fit) or cannot be
    # fitted, so the percentile interval was [a, a], claiming certainty; the demo miniature
    # showed it
    two = (1e13, 1e15)
    n, d, loss, c = isoflop_points(rng=np.random.default_rng(0), budgets=two, n_per_budget=3)
    fit = fit_isoflop(n, d, loss, c)
    boot = bootstrap_isoflop(fit, n, loss, c, target_flops=1e18, n_resamples=200,
                             rng=np.random.default_rng(0))  # fmt: skip
    assert "a" not in boot.intervals and "n_star" not in boot.intervals
    assert any("no intervals" in w and "add sizes per budget" in w for w in boot.warnings)
    # one more size per budget lets the resamples differ: intervals come back
    n, d, loss, c = isoflop_points(rng=np.random.default_rng(0), budgets=two, n_per_budget=4)
    fit = fit_isoflop(n, d, loss, c)
    boot = bootstrap_isoflop(fit, n, loss, c, target_flops=1e18, n_resamples=200,
                             rng=np.random.default_rng(0))  # fmt: skip
    lo, hi = boot.intervals["a"]
    assert lo < hi
    assert fit.details["loss_law"].startswith("E = ")  # 2 budgets: E is held, not fitted...
    assert "E" not in boot.intervals  # ...so it gets no interval rather than [E, E]


def test_accelerating_frontier_is_flagged_and_a_power_law_frontier_is_not():
    # a law's frontier slows down: no warning, even with the sizes around each optimum
    n, d, loss, c = isoflop_points(rng=np.random.default_rng(0), noise=0.0)
    assert accelerating_frontier(loss, c, rel_noise=0.005) is None
    # the demo's fixed-settings grid: best 2.4152, 2.2615, 2.0441 at 1e11, 3e11, 1e12 FLOPs
    best, budgets = np.array([2.4152, 2.2615, 2.0441]), np.array([1e11, 3e11, 1e12])
    loss = np.concatenate([best, best + 0.05])
    msg = accelerating_frontier(loss, np.tile(budgets, 2), rel_noise=0.0063)
    assert msg is not None and "0.322, 0.416 nats per decade" in msg
    # the same acceleration inside 2x a larger seed noise is not called one
    assert accelerating_frontier(loss, np.tile(budgets, 2), rel_noise=0.02) is None
    assert accelerating_frontier(loss[:2], budgets[:2], rel_noise=0.0) is None  # 2 budgets


def test_isoflop_flags_edge_minimum_and_names_sizes():
    n, d, loss, c = isoflop_points(rng=np.random.default_rng(0), center_shift=0.9)
    with pytest.raises(AnalysisError, match="minimum at the smallest size .* add sizes below"):
        fit_isoflop(n, d, loss, c)
    # shifted half way: some budgets usable, the others named in warnings
    n, d, loss, c = isoflop_points(rng=np.random.default_rng(0), center_shift=0.0,
                                   budgets=(1e13, 1e14, 1e15))  # fmt: skip
    edge_n = n[c == 1e15] * 10**0.95
    n2 = np.concatenate([n[c < 1e15], edge_n])
    d2 = np.concatenate([d[c < 1e15], 1e15 / (6 * edge_n)])
    loss2 = law_loss(TRUE_PARAMS, n2, d2)
    fit = fit_isoflop(n2, d2, loss2, np.concatenate([c[c < 1e15], np.full(edge_n.size, 1e15)]))
    assert any("C=1e+15" in w and "smallest size" in w for w in fit.warnings)


def test_envelope_from_curves(tmp_path):
    n, d, loss = grid_points(rng=np.random.default_rng(0), n_sizes=8, n_token_counts=3,
                             noise=0.0, outlier_frac=0.0, d_range=(1e8, 1e10))  # fmt: skip
    write_sweep(tmp_path / "s", n_params=n, n_tokens=d, loss=loss, n_curve_points=25)
    _, curves = load_runs(tmp_path / "s")
    fit = fit_envelope(curves, n_bins=20)
    assert abs(fit.params["a"] - TRUE_A) < 0.1
    assert fit.details["envelope"]["L"].is_monotonic_decreasing


def test_envelope_bootstrap_intervals_contain_the_estimate(tmp_path):
    n, d, loss = grid_points(rng=np.random.default_rng(0), n_sizes=8, n_token_counts=3,
                             noise=0.003, outlier_frac=0.0, d_range=(1e8, 1e10))  # fmt: skip
    write_sweep(tmp_path / "s", n_params=n, n_tokens=d, loss=loss, n_curve_points=25)
    _, curves = load_runs(tmp_path / "s")
    fit = fit_envelope(curves, n_bins=20)
    boot = bootstrap_envelope(fit, curves, n_resamples=100, n_bins=20,
                              rng=np.random.default_rng(0))  # fmt: skip
    for k in ("a", "b", "k_N", "k_D"):
        lo, hi = boot.intervals[k]
        assert lo <= fit.params[k] <= hi and lo < hi, k
    assert abs(boot.intervals["a"][1] - boot.intervals["a"][0]) < 0.5


def test_backtests_report_small_errors_on_exact_law():
    n, d, loss = grid_points(rng=np.random.default_rng(0), noise=0.002, outlier_frac=0.0)
    bt = backtest_chinchilla(n, d, loss)
    assert bt.n_test == 16 and bt.mean_abs_rel_error < 0.01
    x = np.geomspace(1e4, 1e8, 12)
    assert backtest_power_law(x, 2 + 30 * x**-0.3).max_abs_rel_error < 1e-4
    n, d, loss, c = isoflop_points(rng=np.random.default_rng(0))
    bt = backtest_isoflop(n, d, loss, c)
    assert bt.held_out == "C = 1e+17" and abs(bt.n_star_rel_error) < 0.2
    # L* = E + k C^-gamma flattens like the data; a plain power law missed by ~7% here
    assert bt.max_abs_rel_error < 0.02 and "E fitted" in bt.message
    # with 2 training budgets E comes from approach 3 on the training runs only
    n, d, loss, c = isoflop_points(rng=np.random.default_rng(0), budgets=(1e13, 1e14, 1e15))
    bt = backtest_isoflop(n, d, loss, c)
    assert bt.max_abs_rel_error < 0.02 and "from approach 3" in bt.message


def test_isoflop_loss_law_has_irreducible_term():
    from analysis.laws.isoflop import fit_loss_law

    c = np.geomspace(1e13, 1e17, 5)
    l_star = 1.8 + 40.0 * c**-0.12
    p, how = fit_loss_law(c, l_star)
    assert "E fitted" in how
    assert p["E"] == pytest.approx(1.8, rel=1e-3) and p["gamma"] == pytest.approx(0.12, rel=1e-3)
    p, how = fit_loss_law(c[:3], l_star[:3], irreducible=1.8)
    assert p["gamma"] == pytest.approx(0.12, rel=1e-6) and "from approach 3" in how
    p, how = fit_loss_law(c[:3], l_star[:3])
    assert p["E"] == 0.0 and "plain power law" in how


def test_a_budget_of_fewer_than_three_sizes_is_left_out_of_the_frontier_check():
    """The loop's resumed demo (eighth session): 3e10, 1e11, 3e11 accelerate (0.24, 0.389 nats
    per decade), then a wave bought two sizes of 9.49e11: the drop into the better (0.373)
    refuted the acceleration, the interval came out +-7.7% and the loop stopped at its
    tolerance. Two sizes hold no minimum, so that budget is left out, and that is said. Single
    runs the planner bought at two budgets of Porian et al.'s cosine pool made an acceleration
    of 0.608 and 2.01 nats per decade out of one slice; they are left out too. A budget of three
    sizes or more counts as before, and a frontier that slows stays unflagged."""
    rows = [  # (C, N, loss): the demo's runs, best per budget and its neighbours
        (3e10, 3584, 2.5715), (3e10, 6528, 2.7192), (3e10, 10240, 2.8797),
        (1e11, 3584, 2.4483), (1e11, 10240, 2.4460), (1e11, 19968, 2.4998),
        (3e11, 6528, 2.2764), (3e11, 14720, 2.2603), (3e11, 32768, 2.3659),
        (9.49e11, 6528, 2.1398), (9.49e11, 10240, 2.0737),
    ]  # fmt: skip
    c, n, loss = (np.array(v, float) for v in zip(*rows, strict=True))
    assert accelerating_frontier(loss, c, rel_noise=0.0054) is None  # two runs taken as a slice
    msg = accelerating_frontier(loss, c, rel_noise=0.0054, n_params=n)
    assert msg is not None and "0.24, 0.389 nats per decade" in msg
    assert "C = 9.49e+11 left out: fewer than 3 sizes" in msg
    # three sizes at the top, falling more slowly: the frontier decelerates, no warning
    top = [(9.49e11, 6528, 2.16), (9.49e11, 14720, 2.13), (9.49e11, 32768, 2.18)]
    c2, n2, l2 = (np.concatenate([a, np.array(b, float)]) for a, b in
                  zip((c[:9], n[:9], loss[:9]), zip(*top, strict=True), strict=True))  # fmt: skip
    assert accelerating_frontier(l2, c2, rel_noise=0.0054, n_params=n2) is None
    # the cosine pool's 13 runs: a slice at 1.25e16, three sizes at 2.5e16, one run at 5e16
    # and one at 2e17 (rounded from benchmarks/adaptive_replay.py's third wave)
    cos = [(1.25e16, 7.5e6, 5.2678), (1.25e16, 9.8e6, 5.3461), (1.25e16, 5.2e6, 5.5599),
           (2.5e16, 7.5e6, 5.0848), (2.5e16, 5.7e7, 5.9929), (2.5e16, 8.5e7, 6.3582),
           (5e16, 2.2e7, 4.4808), (2e17, 2.2e7, 4.0281)]  # fmt: skip
    c3, n3, l3 = (np.array(v, float) for v in zip(*cos, strict=True))
    assert accelerating_frontier(l3, c3, rel_noise=0.01, n_params=n3) is None
    # a power law's frontier with every slice whole: still no warning
    n4, _, l4, c4 = isoflop_points(rng=np.random.default_rng(0), noise=0.0)
    assert accelerating_frontier(l4, c4, rel_noise=0.005, n_params=n4) is None
