"""Variable projection: exact on noiseless laws, the same minimum as approach 3, the over-training
form, a fixed irreducible loss."""

import numpy as np
import pytest

from analysis.errors import AnalysisError
from analysis.laws.chinchilla import chinchilla_loss, fit_chinchilla
from analysis.laws.synthetic import grid_points, law_loss
from analysis.laws.varpro import fit_varpro, grid_sse, overtrain_params, solve_linear

HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def _grid(noise=0.0, seed=0, params=HOFFMANN):
    return grid_points(rng=np.random.default_rng(seed), params=params, n_sizes=6,
                       n_token_counts=6, n_range=(1e7, 1e9), d_range=(1e8, 1e11),
                       noise=noise, outlier_frac=0.0)  # fmt: skip


@pytest.mark.parametrize("robust", [False, True])
def test_varpro_recovers_a_noiseless_law(robust):
    fit = fit_varpro(*_grid(), robust=robust)
    for k, v in HOFFMANN.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-3), k


def test_varpro_reaches_approach_3s_minimum():
    n, d, loss = _grid(noise=0.01, seed=3)
    a3, vp = fit_chinchilla(n, d, loss), fit_varpro(n, d, loss)
    assert vp.objective <= a3.objective * (1 + 1e-9) + 1e-15
    for k in ("E", "alpha", "beta"):
        assert vp.params[k] == pytest.approx(a3.params[k], rel=1e-4), k


def test_equal_exponents_is_gadre_et_al_form():
    params = HOFFMANN | {"beta": 0.34}
    fit = fit_varpro(*_grid(params=params), equal_exponents=True)
    assert fit.params["alpha"] == fit.params["beta"] == pytest.approx(0.34, rel=1e-3)
    g = overtrain_params(fit.params)
    n, d = np.array([1e8, 3e9]), np.array([4e10, 6e10])
    c, m = 6 * n * d, d / n
    gadre = g["E"] + (g["a"] * m ** g["eta"] + g["b"] * m ** -g["eta"]) * c ** -g["eta"]
    np.testing.assert_allclose(gadre, chinchilla_loss(fit.params, n, d), rtol=1e-12)


def test_fixed_irreducible_loss_solves_only_a_and_b():
    fit = fit_varpro(*_grid(), irreducible=1.69)
    assert fit.law == "chinchilla-vp-ls-fixedE" and fit.params["E"] == 1.69
    assert fit.params["A"] == pytest.approx(406.4, rel=1e-3)
    assert fit.params["B"] == pytest.approx(410.7, rel=1e-3)


def test_weights_make_it_least_squares_on_loss():
    """weights = L^2 turn the relative residuals into absolute ones (scipy curve_fit's loss)."""
    n, d, loss = _grid(noise=0.01, seed=1)
    fit = fit_varpro(n, d, loss, robust=False, weights=loss**2)
    p = fit.params
    sse = lambda q: np.sum((law_loss(q, n, d) - loss) ** 2)  # noqa: E731
    for k in ("E", "A", "B"):
        assert sse(p) <= sse(p | {k: p[k] * 1.001}) and sse(p) <= sse(p | {k: p[k] * 0.999})


def test_one_model_size_is_an_error():
    n, d, loss = _grid()
    with pytest.raises(AnalysisError, match="only one value of N"):
        fit_varpro(np.full_like(n, 1e8), d, loss)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fixed_e", [False, True])
def test_the_batched_grid_is_scipys_nnls_at_every_exponent_pair(weighted, fixed_e) -> None:
    """grid_sse (one batched QR per column subset) gives solve_linear's (scipy nnls) sum of
    squares at every pair, including pairs where the NNLS optimum sets E, A or B to 0."""
    rng = np.random.default_rng(3)
    n = np.repeat(np.geomspace(1e6, 1e9, 6), 4)
    d = n * np.tile([5.0, 20.0, 80.0, 300.0], 6)
    loss = (1.7 + 400 / n**0.34 + 900 / d**0.28) * np.exp(rng.normal(0, 0.02, n.size))
    w = rng.exponential(size=n.size) if weighted else None
    e0 = 1.2 if fixed_e else None
    g = np.geomspace(0.02, 2.0, 12)
    pairs = np.array(np.meshgrid(g, g, indexing="ij")).reshape(2, -1).T
    got = grid_sse(n, d, loss, pairs, weights=w, irreducible=e0)
    each = [solve_linear(n, d, loss, a, b, weights=w, irreducible=e0) for a, b in pairs]
    assert got == pytest.approx(np.array([sse for _, sse in each]), rel=1e-10, abs=1e-14)
    # the grid reaches pairs where a coefficient is clamped at 0 (else subsets are untested)
    coefs = [c for c, _ in each]
    assert any((c[1:] == 0).any() or (not fixed_e and c[0] == 0) for c in coefs)


# ten runs of Porian et al.'s cosine table, as adaptive_replay's planner had chosen them: on an
# AVX-512 CPU (AMD EPYC, Zen 4) the Huber polish ran off to log A = 1016, alpha = 64, and
# chinchilla_params raised OverflowError (the replay crashed; it ran on an AVX2 CPU)
PORIAN_TEN = (
    [7503872.0, 9809920.0, 15597568.0, 22487040.0, 28672000.0, 37060608.0, 57384960.0,
     7503872.0, 57384960.0, 84787200.0],
    [277634444.4, 212370063.5, 133567831.4, 92645956.66, 72660900.3, 56214224.37,
     36304518.35, 555268888.7, 72609036.7, 49142637.88],
    [5.267820112, 5.346078741, 5.543001781, 5.845871459, 6.049036574, 6.250722945,
     6.597266843, 5.084810159, 5.9929026, 6.358193665],
)  # fmt: skip


def test_a_polish_that_runs_off_the_exponents_range_is_not_the_fit(monkeypatch) -> None:
    """The damped Newton keeps any step that lowers the Huber objective; with few runs one term
    can buy that by running off to a wall. Such an end is not taken: the best end within the
    range is, or the best start where every polish ran off."""
    import analysis.laws.varpro as vp
    from analysis.laws.objective import BatchSolution

    fit = fit_varpro(*PORIAN_TEN)  # raised OverflowError on the AVX-512 CPU
    assert 0 < fit.params["alpha"] <= 6 and 0 < fit.params["beta"] <= 6
    assert np.isfinite([fit.params[k] for k in ("A", "B", "E")]).all()

    real = vp.newton_batch

    def runaway(theta0, *a, **k):  # every polish ends at the wall, with the lowest objective
        sol = real(theta0, *a, **k)
        wall = np.array(sol.theta, float)
        wall[:, 0], wall[:, 3] = 1016.0, 64.0
        return BatchSolution(**{**sol.__dict__, "theta": wall,
                                "objective": np.zeros_like(sol.objective)})  # fmt: skip

    monkeypatch.setattr(vp, "newton_batch", runaway)
    n, d, loss = _grid(noise=0.01, seed=3)
    fit = fit_varpro(n, d, loss)
    assert fit.params["alpha"] == pytest.approx(HOFFMANN["alpha"], abs=0.15)
    assert fit.objective > 0 and np.isfinite(fit.params["A"])
    assert any("every Huber polish ran off" in w for w in fit.warnings), fit.warnings


def test_approach_3_does_not_take_a_polish_that_runs_off(monkeypatch) -> None:
    """fit_chinchilla polishes its 32 best grid starts with the same damped Newton; an end with
    log A past float range (the runaway fit_varpro met) was taken when its objective was the
    lowest, and chinchilla_params raised OverflowError. It is passed over now, and where every
    polish ran off the best start is polished by L-BFGS-B alone."""
    import analysis.laws.chinchilla as ch
    from analysis.laws.objective import BatchSolution, representable

    real = ch.newton_batch
    n, d, loss = _grid(noise=0.01, seed=3)
    clean = fit_chinchilla(n, d, loss)

    def runaway(rows):
        def polish(theta0, *a, **k):
            sol = real(theta0, *a, **k)
            theta, obj = np.array(sol.theta, float), np.array(sol.objective, float)
            theta[rows, 0], theta[rows, 3] = 1016.0, 64.0
            obj[rows] = 0.0  # the lowest objective of all
            return BatchSolution(**{**sol.__dict__, "theta": theta, "objective": obj})

        return polish

    for rows in ([0], slice(None)):
        monkeypatch.setattr(ch, "newton_batch", runaway(rows))
        fit = fit_chinchilla(n, d, loss)
        assert np.isfinite([fit.params[k] for k in ("A", "B", "E")]).all()
        assert fit.params["alpha"] == pytest.approx(clean.params["alpha"], abs=0.05)
        assert fit.objective == pytest.approx(clean.objective, rel=1e-3)
        said = any("every Newton polish ran off" in w for w in fit.warnings)
        assert said == (rows != [0]) and fit.converged
    # a coefficient of 0 (log E far below) is a float; one past exp()'s range is not
    rows = np.array([[1.0, 2.0, -800.0, 0.3, 0.3], [800.0, 2.0, 0.5, 9.0, 0.3],
                     [1.0, np.nan, 0.5, 0.3, 0.3]])  # fmt: skip
    assert representable(rows).tolist() == [True, False, False]
