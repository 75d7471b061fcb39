"""One irreducible loss shared by a table's groups (analysis/laws/shared_floor.py) and the pooled
back-test that decides whether to use it (analysis/prediction/groups.py)."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

from analysis.errors import AnalysisError
from analysis.laws.chinchilla import HUBER_DELTA, chinchilla_loss
from analysis.laws.objective import minimize_lbfgs, objective_batch
from analysis.laws.shared_floor import bootstrap_shared, fit_shared_floor, group_theta, joint_design
from analysis.prediction.groups import recommend_groups

# one floor, three groups approaching it at their own pace (over-training form: alpha = beta)
TRUTH = {"a": (1.7, 400.0, 900.0, 0.30), "b": (1.7, 250.0, 1400.0, 0.27),
         "c": (1.7, 600.0, 700.0, 0.33)}  # fmt: skip


def _group(e, a, b, alpha, *, noise=0.0, seed=0, e_shift=0.0):
    rng = np.random.default_rng(seed)
    rows = []
    for n in (2e6, 6e6, 2e7, 6e7, 2e8):
        for m in (5, 20, 80, 320):
            d = m * n
            loss = (e + e_shift) + a * n**-alpha + b * d**-alpha
            rows.append((n, d, loss * np.exp(rng.normal(0, noise))))
    return pd.DataFrame(rows, columns=["n_params", "n_tokens", "loss"])


def _tables(noise=0.0, **shift):
    return {k: _group(*v, noise=noise, seed=i, e_shift=shift.get(k, 0.0))
            for i, (k, v) in enumerate(TRUTH.items())}  # fmt: skip


def test_joint_design_gives_each_groups_law():
    tables = _tables()
    parts = [(t["n_params"].to_numpy(), t["n_tokens"].to_numpy()) for t in tables.values()]
    for equal in (True, False):
        q = 3 if equal else 4
        rng = np.random.default_rng(1)
        theta = np.concatenate([[0.4], *(list(rng.uniform(1, 5, 2)) + list(rng.uniform(0.2, 0.5,
                                q - 2)) for _ in parts)])  # fmt: skip
        z = joint_design(parts, equal) @ theta
        start = 0
        for k, (n, d) in enumerate(parts):
            full = group_theta(theta, k, equal)[0]
            params = {"E": np.exp(full[2]), "A": np.exp(full[0]), "B": np.exp(full[1]),
                      "alpha": full[3], "beta": full[4]}  # fmt: skip
            got = logsumexp(z[start : start + len(n)], axis=1)
            np.testing.assert_allclose(got, np.log(chinchilla_loss(params, n, d)), rtol=1e-12)
            start += len(n)


def test_noise_free_groups_recover_the_shared_floor_and_each_groups_law():
    sf = fit_shared_floor(_tables(), equal_exponents=True)
    for name, (e, a, b, alpha) in TRUTH.items():
        p = sf.fits[name].params
        assert p["E"] == pytest.approx(e, rel=1e-5)
        assert p["alpha"] == pytest.approx(alpha, rel=1e-5) and p["beta"] == p["alpha"]
        assert p["A"] == pytest.approx(a, rel=1e-3) and p["B"] == pytest.approx(b, rel=1e-3)
        assert sf.fits[name].law == "overtrain-vp[shared-E]"


@pytest.mark.parametrize("equal", [True, False])
def test_the_joint_fit_reaches_the_minimum_of_its_objective(equal):
    """scipy's L-BFGS-B from the fit and from the truth finds nothing lower (noisy data)."""
    sf = fit_shared_floor(_tables(noise=0.01), equal_exponents=equal)
    f_fit = objective_batch(sf.theta[None], sf.design, sf.log_loss, delta=HUBER_DELTA)[0]
    q = 3 if equal else 4
    truth = [np.log(1.7)]
    for _, a, b, alpha in TRUTH.values():
        truth += [np.log(a), np.log(b), alpha] + ([] if equal else [alpha])
    for start in (sf.theta, np.array(truth)):
        assert len(start) == 1 + 3 * q
        res = minimize_lbfgs(start, sf.design, sf.log_loss, delta=HUBER_DELTA)
        assert f_fit <= res.fun * (1 + 1e-9) + 1e-15


def test_the_bootstrap_refits_one_floor_for_every_group():
    sf = fit_shared_floor(_tables(noise=0.005), equal_exponents=True)
    th = bootstrap_shared(sf, n_resamples=40, rng=np.random.default_rng(0))
    assert set(th) == set(TRUTH) and all(v.shape == (40, 5) for v in th.values())
    np.testing.assert_array_equal(th["a"][:, 2], th["c"][:, 2])  # one E per refit
    np.testing.assert_array_equal(th["b"][:, 3], th["b"][:, 4])  # alpha = beta
    assert np.std(th["a"][:, 2]) > 0


@pytest.mark.slow
def test_groups_with_different_floors_keep_their_own_laws():
    """A floor 0.6 nats apart: one E for both misfits every group, the pooled back-test says so
    and each group keeps its own recommendation (with the comparison in `why`)."""
    tables = _tables(noise=0.003, b=0.6)
    recs = recommend_groups(tables, seed=0)
    assert all("shared-E" not in r.law for r in recs.values())
    assert all("did no better in the back-test pooled over them" in r.why for r in recs.values())
    assert all("overtrain-vp[shared-E]" in r.scores for r in recs.values())


def test_a_group_too_small_is_named():
    tables = _tables()
    tables["b"] = tables["b"][tables["b"]["n_params"] < 1e7]  # two sizes
    with pytest.raises(AnalysisError, match="group 'b'"):
        recommend_groups(tables, seed=0)


def test_one_group_is_recommended_as_recommend_does():
    from analysis.prediction.recommend import recommend

    t = _group(*TRUTH["a"], noise=0.005)
    rec = recommend_groups({"only": t}, seed=0)["only"]
    assert rec is recommend(t, seed=0)


@pytest.mark.slow
def test_each_groups_report_and_predict_ask_for_all_groups_together(tmp_path, monkeypatch, capsys):
    """`python -m analysis TABLE --group g --holdout ... --predict ...`: every group's report (its
    calibrated prediction and its recommended back-test) and the --predict answers come from
    `recommend_groups` over every group, so they all agree on the law."""
    import json

    import analysis.prediction.groups as grouped
    from analysis.__main__ import main

    tables = _tables(noise=0.004)
    pd.concat([t.assign(corpus=k) for k, t in tables.items()]).to_csv(tmp_path / "g.csv",
                                                                      index=False)  # fmt: skip
    seen = []
    real = grouped._recommend_groups
    monkeypatch.setattr(grouped, "_MEMO", {})
    # the figures (8 per group and the comparison's) are not what this checks: drawn elsewhere
    monkeypatch.setattr("analysis.report.build.draw_report_figures", lambda *a, **k: [])
    monkeypatch.setattr(grouped, "_recommend_groups",
                        lambda t, *a: seen.append(sorted(map(str, t))) or real(t, *a))  # fmt: skip
    rc = main([str(tmp_path / "g.csv"), "--group", "corpus", "--holdout", "n_params>1e8",
               "--predict", "N=1e9,D=2e10", "--n-bootstrap", "5", "--json",
               "--out", str(tmp_path / "rep")])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert seen and all(s == ["a", "b", "c"] for s in seen)
    doc = json.loads(captured.out)
    for name in TRUTH:
        fits = json.loads((tmp_path / "rep" / name / "fits.json").read_text())
        law = fits["prediction"]["calibrated"]["law"]
        assert law == doc["groups"][name]["law"]
        assert fits["backtests"]["recommended"]["law"].startswith("recommended (")


def test_a_groups_report_keeps_its_recommendation_when_another_group_is_too_small(tmp_path):
    """A group with too few runs for any law fails its own report's recommendation (as before),
    not its neighbours': they are recommended alone."""
    from analysis.report.calibrated_prediction import calibrated_prediction

    good = _group(*TRUTH["a"], noise=0.004)
    data = pd.DataFrame({"N": good["n_params"], "D": good["n_tokens"], "L": good["loss"],
                         "C": 6 * good["n_params"] * good["n_tokens"]})  # fmt: skip
    tiny = data.iloc[:4].assign(flops_budget=np.nan)
    pred = {"n_params": 1e9, "n_tokens": 2e10}
    alone = calibrated_prediction(data, [np.nan] * len(data), pred, seed=0)
    peers = ("good", {"tiny": (tiny, None, None)})
    got = calibrated_prediction(data, [np.nan] * len(data), pred, seed=0, peers=peers)
    assert got == alone


def test_a_group_whose_own_law_had_no_back_test_keeps_the_groups_own_laws():
    """One group's own law was its default (no candidate completed its back-test): the pooled
    score of the groups' own laws is NaN, and the shared law must not win against it (it did,
    with "against nan%" in `why`)."""
    rng = np.random.default_rng(0)

    def law(n, d, a=400, b=900):
        return (1.7 + a * n**-0.3 + b * d**-0.3) * np.exp(rng.normal(0, 0.003, np.size(n)))

    rows = [(1e6, 1e7), (1e6, 4e7), (3e6, 3e7), (3e6, 1.2e8), (1e7, 2e8), (3e7, 6e8), (1e8, 2e9),
            (1e8, 8e8)]  # fmt: skip
    x = pd.DataFrame(rows, columns=["n_params", "n_tokens"])
    x["loss"] = law(x["n_params"], x["n_tokens"])
    y = pd.DataFrame([(n, m * n) for n in (2e6, 6e6, 2e7, 6e7) for m in (5, 20, 80)],
                     columns=["n_params", "n_tokens"])  # fmt: skip
    y["loss"] = law(y["n_params"], y["n_tokens"], a=250, b=1400)
    assert "by default" in recommend_groups({"x": x}, seed=0)["x"].why
    recs = recommend_groups({"x": x, "y": y}, seed=0)
    assert all("shared-E" not in r.law and "nan" not in r.why for r in recs.values())


def test_group_names_of_another_type_are_another_table():
    """The memo keyed on str(name) returned a dict keyed by ints to a caller that gave strings."""
    t = _tables(noise=0.004)
    first = recommend_groups({1: t["a"], 2: t["b"]}, seed=0)
    second = recommend_groups({"1": t["a"], "2": t["b"]}, seed=0)
    assert set(first) == {1, 2} and set(second) == {"1", "2"}


@pytest.mark.slow
def test_each_group_scores_its_own_back_test_and_the_pooled_one_apart():
    """`scores` of a group holds its own score under each shared candidate (it held the pooled
    one, which read as that group's), and the pooled comparison under "pooled: ..." keys."""
    recs = recommend_groups(_tables(noise=0.004), seed=0)
    for r in recs.values():
        assert "pooled: each group's own law" in r.scores
        assert "pooled: overtrain-vp[shared-E]" in r.scores and "overtrain-vp[shared-E]" in r.scores
    per_group = [r.scores["overtrain-vp[shared-E]"] for r in recs.values()]
    assert len(set(per_group)) == 3  # each its own
    pooled = recs["a"].scores["pooled: overtrain-vp[shared-E]"]
    assert min(per_group) <= pooled <= max(per_group)


def test_a_zero_seed_noise_is_not_a_noise_floor(monkeypatch):
    """Seeds repeated to the digit (noise 0) assume 1%, as `recommend` does: the frontier test
    is not handed a zero noise floor."""
    import analysis.prediction.groups as grouped

    seen = []
    monkeypatch.setattr(grouped, "_MEMO", {})
    monkeypatch.setattr(grouped, "_recommend_groups", lambda t, s, noise: seen.append(noise))
    recommend_groups(_tables(), seed=0, noise={"a": 0.0, "b": float("nan"), "c": 0.004})
    assert seen == [{"c": 0.004}]


@pytest.mark.slow
def test_an_arch_with_nothing_to_fit_does_not_stop_its_neighbours_report(tmp_path, capsys):
    """A results folder of two archs, one all diverged: the other arch's report is written (it
    was not: its pooled recommendation loaded the diverged arch first and stopped there)."""
    import json
    import shutil

    from analysis.__main__ import main
    from analysis.laws.synthetic import isoflop_points, write_sweep

    budgets = (1e13, 3e13, 1e14, 3e14)
    rng = np.random.default_rng(1)
    sweep = write_sweep(tmp_path / "s", **dict(zip(("n_params", "n_tokens", "loss",
                        "flops_budget"), isoflop_points(rng=rng, budgets=budgets,
                        n_per_budget=5), strict=True)))  # fmt: skip
    n, d, loss, c = isoflop_points(rng=rng, budgets=budgets, n_per_budget=5)
    lstm = write_sweep(tmp_path / "l", n_params=n, n_tokens=d, loss=loss, flops_budget=c, seed=3,
                       status=["diverged"] * len(n))  # fmt: skip
    for p in lstm.glob("*/record.json"):
        r = json.loads(p.read_text())
        p.write_text(json.dumps(r | {"arch": "lstm", "loss": None}))
        shutil.copytree(p.parent, sweep / p.parent.name)
    main([str(sweep), "--n-bootstrap", "5"])
    assert (sweep / "report" / "gpt" / "report.md").exists(), capsys.readouterr().err
