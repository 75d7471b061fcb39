"""The report's demo contract: prediction keys, seed noise floor, predict-then-verify, WSD trunks
and skipped runs, several architectures and `--compare`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.inputs.run_records import TRUNK_REASON, excluded_reasons, load_runs
from analysis.laws.synthetic import isoflop_points, write_sweep
from analysis.prediction.seed_noise import seed_groups


def _edit_records(sweep, fn):
    """Apply fn(record) -> record to every record.json under sweep (tests only)."""
    for path in sorted(sweep.glob("*/record.json")):
        path.write_text(json.dumps(fn(json.loads(path.read_text()))))


@pytest.fixture
def iso(tmp_path):
    n, d, loss, c = isoflop_points(rng=np.random.default_rng(0), budgets=(1e13, 1e14, 1e15),
                                   n_per_budget=6)  # fmt: skip
    sweep = write_sweep(tmp_path / "iso", n_params=n, n_tokens=d, loss=loss, flops_budget=c)
    # the first point again with two more seeds (same config but seed): the noise floor
    for seed, f in ((1, 1.004), (2, 0.997)):
        write_sweep(sweep, n_params=n[:1], n_tokens=d[:1], loss=loss[:1] * f,
                    flops_budget=c[:1], seed=seed)  # fmt: skip
    return sweep


def test_seed_groups_compare_configs_without_seed(iso):
    runs, _ = load_runs(iso)
    groups = seed_groups(runs)
    assert len(groups) == 1 and len(groups[0]["losses"]) == 3
    g = groups[0]
    assert g["rel_sd"] == pytest.approx(np.std(g["losses"], ddof=1) / np.mean(g["losses"]))
    assert sorted(g["seeds"]) == [0, 1, 2] and g["rel_range"] > g["rel_sd"] > 0


def test_trunks_and_skipped_runs_are_excluded_with_reasons(iso):
    def mark(rec):
        if rec["config"]["index"] == 1:
            rec["role"] = "trunk"
        if rec["config"]["index"] == 2:
            rec.update(status="skipped", reason="fewer than 1 optimizer step", loss=None)
        return rec

    _edit_records(iso, mark)
    runs, _ = load_runs(iso)
    reasons = excluded_reasons(runs)
    assert reasons[TRUNK_REASON] == {"(no reason recorded)": 1}
    assert reasons["skipped"] == {"fewer than 1 optimizer step": 1}
    runs, _ = load_runs(iso, include_trunks=True)
    assert TRUNK_REASON not in excluded_reasons(runs)


def test_report_prediction_noise_and_verify(iso, tmp_path):
    from analysis.report.build import build_report
    from analysis.report.printed_summary import summarize

    (iso / "report").mkdir()
    verify = {"target_flops": 1e16, "predicted": 2.40, "achieved": 2.45,
              "rel_error": (2.40 - 2.45) / 2.45, "n_params": 6_000_000, "n_tokens": 2.7e8,
              "flops": 9.9e15, "run_id": "abc", "source": "approach2",
              "calibrated_law": "chinchilla-vp", "calibrated_loss": 2.41,
              "interval": [2.2, 2.6], "inside": True}  # fmt: skip
    (iso / "report" / "verify.json").write_text(json.dumps(verify))
    rep = build_report(iso, n_bootstrap=30, figures=True)
    fits = json.loads((iso / "report" / "fits.json").read_text())
    pred = fits["prediction"]
    assert pred["source"] in ("approach3", "approach2") and pred["reason"]
    assert pred["flops"] == pytest.approx(1e16)
    assert pred["n_params"] * pred["n_tokens"] * 6 == pytest.approx(1e16, rel=1e-9)
    assert pred["tokens_per_param"] == pytest.approx(pred["n_tokens"] / pred["n_params"])
    assert set(pred["intervals"]) == {"n_params", "n_tokens", "tokens_per_param", "loss"}
    assert pred["convention"] == "C = 6 N D, N = matmul parameters incl. head"
    assert fits["prediction_approach2"]["source"] == "approach2"
    assert fits["seed_noise"]["groups"][0]["losses"] and fits["seed_noise"]["rel_sd"] > 0
    # Kaplan's L(N), L(D) need runs limited by one variable: an IsoFLOP grid has none (before,
    # every run was fitted, and on the demo L(N) came out a step with alpha = 29)
    for law in ("kaplan_N", "kaplan_D"):
        assert law not in rep.fits and "IsoFLOP grid" in rep.skipped[law]
    assert rep.backtests.get("kaplan_N") is None and "kaplan_joint" in rep.fits
    cal = pred["calibrated"]  # the recommended law at the same N*, D*, its interval, its flags
    assert cal["law"] and cal["why"] and cal["interval"][0] < cal["loss"] < cal["interval"][1]
    assert cal["interval"][0] <= cal["interval_80"][0] < cal["interval_80"][1] <= cal["interval"][1]
    assert "back-test" in cal["why"] and "C rung" in cal["why"]  # 3 budgets: one fold
    md = (iso / "report" / "report.md").read_text()
    assert "Predict, then verify" in md and "Seed noise floor" in md
    assert "Recommended law and its calibrated interval" in md
    assert "the achieved loss 2.4500 is inside" in md
    text = summarize(rep)
    assert "recommended law" in text and "calibrated 95% interval" in text
    assert len(text.splitlines()) < 30
    for want in ("alpha", "beta", "E ", "N* ", "D* ", "tokens/param", "back-test",
                 "seed noise floor: rel sd", "predict, then verify", "report: "):  # fmt: skip
        assert want in text, want


def test_cli_compare_and_mixed_architectures(tmp_path, capsys, monkeypatch):
    from analysis.__main__ import main

    n, d, loss, c = isoflop_points(rng=np.random.default_rng(1), budgets=(1e13, 1e14, 1e15),
                                   n_per_budget=5)  # fmt: skip
    gpt = write_sweep(tmp_path / "gpt", n_params=n, n_tokens=d, loss=loss, flops_budget=c)
    lstm = write_sweep(tmp_path / "lstm", n_params=n, n_tokens=d, loss=loss * 1.1,
                       flops_budget=c, seed=3)  # fmt: skip
    _edit_records(lstm, lambda r: r | {"arch": "lstm"})
    out = tmp_path / "cmp"
    assert main([str(gpt), str(lstm), "--compare", "--out", str(out), "--n-bootstrap", "20"]) == 0
    text = capsys.readouterr().out
    assert "gpt" in text and "lstm" in text and "comparison:" in text
    assert (out / "figures" / "compare_compute.png").exists()
    assert (out / "figures" / "compare_size.svg").exists()
    assert "| series |" in (out / "report.md").read_text()
    # one folder holding both architectures: a report per arch, then the comparison
    import shutil

    for p in lstm.iterdir():
        shutil.copytree(p, gpt / p.name)
    # The per-arch reports' 16 figures (half this test's time) are not what it checks: the
    # report's figures are drawn in test_report_prediction_noise_and_verify and test_demo.
    monkeypatch.setattr("analysis.report.build.draw_report_figures", lambda *a, **k: [])
    assert main([str(gpt), "--n-bootstrap", "20"]) == 0
    text = capsys.readouterr().out
    assert (gpt / "report" / "gpt" / "fits.json").exists()
    assert (gpt / "report" / "lstm" / "fits.json").exists()
    assert "[lstm]" in text and "comparison:" in text


def test_interval_not_containing_the_estimate_still_plots() -> None:
    """Regression: a skewed bootstrap put N* outside its percentile interval, and errorbar()
    raised 'yerr must not contain negative values', killing the whole report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from analysis.report.plots import plot_optimal_allocation
    from analysis.result_types import FitResult

    fit = FitResult(
        law="isoflop",
        params={"a": 0.5, "k_N": 0.1, "b": 0.5, "k_D": 1.6},
        intervals={"n_star": (5e5, 9e5)},  # the estimate at the target (~3e5) lies below it
    )
    points = pd.DataFrame({"C": [1e11, 1e12], "n_star": [3e4, 1e5], "d_star": [5e5, 1.6e6]})
    ax = plot_optimal_allocation(points, {"isoflop": fit}, target=1e13, which="N")
    assert ax.get_xscale() == "log"
    plt.close(ax.figure)


def test_report_warns_when_one_fit_mixes_schedules(iso):
    """WSD branches and cosine runs differ by up to ~2.7% at the same (N, D): a fit over both
    says so (before, the report fitted the mix without a word)."""
    from analysis.inputs.run_records import fit_runs
    from analysis.inputs.schedules import schedule_mix
    from analysis.report.build import build_report
    from analysis.report.printed_summary import summarize

    def cosine(rec):
        rec["config"]["schedule"] = {"name": "cosine", "min_lr_frac": 0.1, "decay_frac": 0.2,
                                     "decay_shape": "1-sqrt"}  # fmt: skip
        return rec

    _edit_records(iso, cosine)
    runs, _ = load_runs(iso)
    assert schedule_mix(fit_runs(runs)) is None  # one schedule: nothing to say

    def half_wsd(rec):
        if rec["config"]["index"] % 2:
            rec["config"]["schedule"]["name"] = "wsd"
            rec["role"] = "branch"
        return rec

    _edit_records(iso, half_wsd)
    rep = build_report(iso, n_bootstrap=5, figures=False)
    mixed = [d for d in rep.diagnostics if "learning-rate schedules mixed" in d]
    assert len(mixed) == 1
    n_wsd = sum(1 for p in iso.glob("*/record.json") if '"wsd"' in p.read_text())
    assert f"WSD with a 20% 1-sqrt cooldown: {n_wsd} run(s)" in mixed[0]
    assert "cosine to 0.1 x lr" in mixed[0] and "own sweep folder" in mixed[0]
    assert "learning-rate schedules mixed" in summarize(rep)
    assert "learning-rate schedules mixed" in (iso / "report" / "report.md").read_text()


def test_a_plot_with_nothing_to_label_draws_no_legend_and_no_warning():
    """matplotlib warned 'No artists with labels found to put in legend' in every analysis of a
    sweep too small for a frontier law; the legend is now drawn only where something is labelled."""
    import warnings

    import matplotlib.pyplot as plt

    from analysis.report.plots import add_loss_frontier

    fig, ax = plt.subplots()
    ax.plot([1e12, 1e13], [3.0, 2.9])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        add_loss_frontier(ax, {}, target=1e14)
    assert ax.get_legend() is None
    plt.close(fig)


def test_summary_flags_a_headline_law_its_runs_do_not_determine(tmp_path, capsys):
    """Six runs at two budgets (the device check's IsoFLOP sweep on an H200), loss falling towards
    the smallest size at both: approach 3 is the only prediction, its E interval reaches 1e-13, and
    the printed summary says so under the headline instead of printing its digits alone."""
    import pandas as pd

    from analysis.command import main
    from tests.test_analysis_laws_fits import GPU_SIX

    n, d, loss = GPU_SIX
    pd.DataFrame({"n_params": n, "n_tokens": d, "loss": loss}).to_csv(
        tmp_path / "six.csv", index=False
    )
    assert main([str(tmp_path / "six.csv"), "--n-bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    head, _, rest = out.partition("back-tests")
    assert "from approach3" in head
    assert "warning: chinchilla: the irreducible loss E is not determined" in head, out
