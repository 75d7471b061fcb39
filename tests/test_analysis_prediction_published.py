"""The shipped published suites, certified against the papers' own numbers.

Gadre et al. 2024, "Language models scale reliably with over-training and on downstream tasks"
(arXiv:2403.08540; github.com/mlfoundations/scaling, MIT): their law
L(N, M) = E + a N^b + b' 6^(b/2) (M N)^b, least squares on loss over five runs per corpus
(scaling/shared.py::fit_ds), predicts the 1.4B and 6.9B runs with the errors the project's
issue 16 quotes (-0.1% / +0.7% / +0.7%, -0.8% / +1.5% / -4.3%, -0.6% / 0.0% / -1.6%).
"""

import numpy as np
import pytest

from analysis.inputs.published_suites import SUITES, load_suite, suite_paper
from analysis.laws.chinchilla import chinchilla_loss, compute_optimal
from analysis.laws.varpro import fit_varpro
from analysis.prediction.groups import recommend_groups
from analysis.prediction.recommend import recommend

CORPORA = ("RedPajama", "C4", "RefinedWeb")
# (prediction - truth) / truth in %, one decimal, 1.4B at M = 20, 1.4B at the largest M, 6.9B
GADRE_ERRORS = {"RedPajama": (-0.1, 0.7, 0.7), "C4": (-0.8, 1.5, -4.3),
                "RefinedWeb": (-0.6, -0.0, -1.6)}  # fmt: skip
# their fitted (a, b', b, E) as their code's curve_fit finds them (analysis/published/gadre2024)
GADRE_FIT = {
    "RedPajama": (166.210983, 366.687172, -0.27285070, 1.83664838),
    "C4": (113.692606, 189.515526, -0.24247224, 1.50826056),
    "RefinedWeb": (125.095697, 246.206690, -0.25439485, 1.73446210),
}


@pytest.mark.parametrize("name", SUITES)
def test_suites_are_canonical_tables(name):
    t = load_suite(name)
    assert {"n_params", "n_tokens", "flops", "loss", "group"} <= set(t.columns)
    assert len(t) <= 300 and t[["n_params", "n_tokens", "loss"]].gt(0).all().all()
    np.testing.assert_allclose(t["flops"], 6 * t["n_params"] * t["n_tokens"], rtol=1e-8)


def test_gadre_suite_has_the_104_runs():
    t = load_suite("gadre2024")
    assert len(t) == 104 and t["n_params"].nunique() == 6
    assert sorted(t["tokens_per_param"].unique()) == [5, 10, 20, 40, 80, 160, 320, 640]


def _five(s):
    small = (s["n_params"] < 4.2e8) & (s["tokens_per_param"] == 20)
    return s[small | ((s["model"] == "d=96_l=8_h=4") & (s["tokens_per_param"] == 320))]


@pytest.mark.parametrize("corpus", CORPORA)
def test_gadre_law_refitted_reproduces_their_coefficients_and_errors(corpus):
    t = load_suite("gadre2024")
    s = t[t["group"] == corpus]
    five = _five(s)
    assert len(five) == 5
    # least squares on loss = relative least squares with weights L^2
    fit = fit_varpro(five["n_params"], five["n_tokens"], five["loss"], equal_exponents=True,
                     robust=False, weights=five["loss"].to_numpy() ** 2)  # fmt: skip
    p = fit.params
    a, b_prime, b, e = GADRE_FIT[corpus]
    assert p["A"] == pytest.approx(a, rel=1e-6)
    assert p["B"] * 6 ** (p["alpha"] / 2) == pytest.approx(b_prime, rel=1e-6)
    assert -p["alpha"] == pytest.approx(b, rel=1e-6)
    assert p["E"] == pytest.approx(e, rel=1e-6)
    test = s[s["n_params"] > 4.2e8].sort_values(["n_params", "tokens_per_param"])
    err = 100 * (chinchilla_loss(p, test["n_params"], test["n_tokens"]) / test["loss"] - 1)
    np.testing.assert_allclose(np.round(err, 1), GADRE_ERRORS[corpus], atol=1e-9)
    paper = suite_paper("gadre2024")["groups"][corpus]["held_out"]
    np.testing.assert_allclose(err / 100, [h["rel_error"] for h in paper], atol=1e-6)


def test_hand_checked_optimum_of_hoffmanns_law():
    """Hoffmann et al. (2022) approach 3: E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28.
    By hand at C = 5.76e23 (Gopher's budget): G = (0.34 * 406.4 / (0.28 * 410.7))^(1/0.62)
    = 1.201572^1.612903 = exp(0.183630 / 0.62) = 1.344724; N* = G (C/6)^(0.28/0.62), with
    ln(9.6e22) = 52.918635 and 0.451613 * 52.918635 = 23.898739, exp of it = 2.393735e10, so
    N* = 1.344724 * 2.393735e10 = 3.2189e10 and D* = 9.6e22 / N* = 2.9824e12."""
    p = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    alloc = compute_optimal(p, 5.76e23)
    assert alloc.n_params == pytest.approx(3.2189e10, rel=1e-4)
    assert alloc.n_tokens == pytest.approx(2.9824e12, rel=1e-4)
    # and it is the minimum along C = 6 N D, by brute force
    n = np.geomspace(1e9, 1e12, 20001)
    loss = chinchilla_loss(p, n, 5.76e23 / (6 * n))
    assert n[np.argmin(loss)] == pytest.approx(alloc.n_params, rel=1e-3)


@pytest.mark.slow
def test_recommended_law_beats_the_paper_on_gadre_nine_points():
    """Issue 16's must-shows: fit the runs of at most 412M parameters (the three corpora
    together, as `python -m analysis runs.csv --group group` does), predict the nine larger runs;
    the recommended law's mean |error| must be at most the paper's own 1.15% and no point worse
    than 4.3%, each inside its 95% interval. The pooled back-test chose one irreducible loss for
    the three corpora (all scored on C4 validation): 1.80% against 1.85% for each corpus's own."""
    t = load_suite("gadre2024")
    train = {c: t[(t["group"] == c) & (t["n_params"] <= 4.2e8)] for c in CORPORA}
    recs = recommend_groups(train, seed=0)
    errs = []
    for corpus in CORPORA:
        rec = recs[corpus]
        assert rec.law == "overtrain-vp[shared-E]", rec.why
        test = t[(t["group"] == corpus) & (t["n_params"] > 4.2e8)]
        for n, d, y in zip(test["n_params"], test["n_tokens"], test["loss"], strict=True):
            p = rec.predict(n, d)
            errs.append(p.loss / y - 1)
            assert p.interval[0] <= y <= p.interval[1]
    assert len(errs) == 9 and np.mean(np.abs(errs)) <= 0.0115
    assert np.max(np.abs(errs)) <= 0.043
    # the digits replicate.py prints (docs/fidelity.md): mean 1.00%, C4's 1.4B at M = 80 worst
    assert np.mean(np.abs(errs)) == pytest.approx(0.0100, abs=5e-5)
    assert np.max(np.abs(errs)) == pytest.approx(0.0239, abs=5e-5)


@pytest.mark.slow
def test_porian_setups_keep_their_own_laws():
    """The shared irreducible loss must not hurt another suite: on Porian et al.'s two setups the
    pooled back-test prefers each setup's own law, so their recommendations are unchanged."""
    t = load_suite("porian2024")
    train = {g: t[(t["group"] == g) & (t["flops"] < 5e17)] for g in ("cosine", "tuned_constant")}
    recs = recommend_groups(train, seed=0)
    assert recs["cosine"].law == recommend(train["cosine"], seed=0).law == "overtrain-vp"
    # tuned-constant's own back-test chooses approach 2 made joint (3.33% against 8.02% for the
    # best E + A/N^alpha + B/D^beta law; docs/fidelity.md); the shared E does not displace it
    own = recommend(train["tuned_constant"], seed=0).law
    assert recs["tuned_constant"].law == own == "isoflop-joint"
    assert "did no better in the back-test pooled" in recs["cosine"].why


def test_gadre_warmup_column_says_which_runs_ended_before_their_warmup():
    # warmup steps x global batch x 2048 tokens (the open_lm configs' seq_len), from the upstream
    # JSONs; blank for the 6.9B runs, whose recorded global batch (1) is not their batch
    t = load_suite("gadre2024")
    assert t.loc[t["model"] == "open_lm_7b", "warmup_tokens"].isna().all()
    assert t.loc[t["model"] != "open_lm_7b", "warmup_tokens"].gt(0).all()
    unwarmed = t[t["warmup_tokens"] >= t["n_tokens"]]
    # per corpus: 79M and 412M at M = 5 (400 of 376 and 2000 of 1963 steps were warmup)
    assert sorted(unwarmed["model"].unique()) == ["d=1024_l=24_h=8", "d=512_l=8_h=4"]
    assert (unwarmed["tokens_per_param"] == 5).all() and len(unwarmed) == 6


def test_replicate_rules_table_reports_every_rule_of_a_split():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "replicate.py"
    spec = importlib.util.spec_from_file_location("replicate", path)
    rep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rep)
    c4 = next(s for s in rep.scenarios() if s[0] == "gadre2024/C4")
    row = rep._rules(c4)
    bt, mean, worst = row["overtrain-vp[drop-unwarmed]"]
    # the fit without the runs that ended inside their warmup, on the 1.4B and 6.9B runs
    assert 0 < bt < 0.05 and 0 < mean <= worst < 0.05
    assert np.isnan(row["overtrain-vp[drop-smallest]"][0])  # one fold left two sizes: no score
    table = rep._rules_table([row])
    assert table.count("| gadre2024/C4 |") == 2 and "n/a" in table
