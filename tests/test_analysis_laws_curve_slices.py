"""Approach 2 from loss curves (analysis/laws/curve_slices.py): IsoFLOP slices read off
constant-lr
curves recover a known law's allocation; which curves qualify; one-line refusals."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.__main__ import main
from analysis.errors import AnalysisError
from analysis.laws.chinchilla import compute_optimal
from analysis.laws.curve_slices import isoflop_points_from_curves
from analysis.laws.isoflop import fit_isoflop, isoflop_optimum
from analysis.laws.synthetic import law_loss, write_sweep

HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


SIZES, TOKENS = np.geomspace(1e7, 3e9, 8), np.geomspace(2e8, 2e11, 25)


def _curves(sizes=SIZES, d=TOKENS):
    """One constant-lr run per size, evaluated at log-spaced tokens, on Hoffmann et al.'s law."""
    rows = [
        {"run_id": f"r{n:.3g}", "n_params": n, "n_tokens": t,
         "loss": float(law_loss(HOFFMANN, n, t))}
        for n in sizes for t in d
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_slices_from_curves_recover_the_laws_allocation():
    pts = isoflop_points_from_curves(_curves())
    assert set(pts.columns) == {"N", "D", "L", "budget"}
    assert pts["budget"].nunique() >= 10 and (pts.groupby("budget")["N"].nunique() >= 3).all()
    np.testing.assert_allclose(6 * pts["N"] * pts["D"], pts["budget"], rtol=1e-12)
    # interpolated, never extrapolated: each point's loss is the law's at (N, D) to < 0.5%
    np.testing.assert_allclose(pts["L"], law_loss(HOFFMANN, pts["N"], pts["D"]), rtol=5e-3)
    fit = fit_isoflop(pts["N"], pts["D"], pts["L"], pts["budget"])
    truth = compute_optimal(HOFFMANN, 1e21)
    assert fit.params["a"] == pytest.approx(0.28 / 0.62, rel=0.01)  # beta / (alpha + beta)
    n_star, _, l_star = (float(v) for v in isoflop_optimum(fit, 1e21))
    assert n_star == pytest.approx(truth.n_params, rel=0.05)
    assert l_star == pytest.approx(truth.loss, rel=0.005)


def test_several_runs_of_one_size_keep_the_best_at_each_budget():
    a, b = _curves(), _curves()
    b["run_id"] += "-worse-lr"
    b["loss"] *= 1.05
    pts = isoflop_points_from_curves(pd.concat([b, a]))
    assert not pts.duplicated(["budget", "N"]).any()
    np.testing.assert_allclose(pts["L"], isoflop_points_from_curves(a)["L"])


@pytest.mark.parametrize(
    ("curves", "says"),
    [
        (_curves(sizes=[1e7, 1e8]), "2 model size(s) with two or more evaluations; need 3"),
        (
            pd.concat(
                [
                    _curves(sizes=[1e7], d=[1e8, 2e8]),
                    _curves(sizes=[1e8], d=[1e11, 2e11]),
                    _curves(sizes=[1e9], d=[1e12, 2e12]),
                ]
            ),  # fmt: skip
            "no compute is reached by 3 model sizes",
        ),
        (_curves().drop(columns=["loss"]), "lack column(s) ['loss']"),
    ],
)
def test_refusals_name_the_fix_in_one_line(curves, says):
    with pytest.raises(AnalysisError) as e:
        isoflop_points_from_curves(curves)
    assert says in str(e.value) and "\n" not in str(e.value)


def _folder(tmp_path, schedule):
    n = np.repeat(np.geomspace(2e7, 2e9, 5), 2)
    d = np.tile([2e10, 4e10], 5)
    return write_sweep(tmp_path / schedule, n_params=n, n_tokens=d,
                       loss=law_loss(HOFFMANN, n, d), params=HOFFMANN, n_curve_points=25,
                       schedule=schedule)  # fmt: skip


@pytest.mark.slow
def test_report_reads_slices_off_a_folders_constant_lr_runs_only(tmp_path):
    from analysis.report.build import build_report

    rep = build_report(_folder(tmp_path, "constant"), n_bootstrap=10, figures=False)
    assert "isoflop" in rep.fits and "isoflop" in rep.backtests
    assert any("IsoFLOP slices" in d and "constant-learning-rate" in d for d in rep.diagnostics)
    assert rep.fits["isoflop"].params["a"] == pytest.approx(0.28 / 0.62, rel=0.05)
    cosine = build_report(_folder(tmp_path, "cosine"), n_bootstrap=10, figures=False)
    assert "isoflop" not in cosine.fits
    assert "nor a constant learning rate" in cosine.skipped["isoflop"]


@pytest.mark.slow
def test_cli_curve_table_needs_the_users_word_that_the_lr_was_constant(tmp_path, capsys):
    sizes = np.geomspace(2e7, 2e9, 5)
    short = _curves(sizes=sizes, d=np.geomspace(1e9, 3e10, 8)).assign(
        run_id=lambda f: f.run_id + "s"
    )
    t = pd.concat([_curves(sizes=sizes, d=np.geomspace(1e9, 1e11, 12)), short])  # two per size
    t["step"] = t.groupby("run_id").cumcount() + 1
    t.rename(columns={"run_id": "run"}).to_csv(tmp_path / "c.csv", index=False)
    args = [str(tmp_path / "c.csv"), "--n-bootstrap", "10", "--out", str(tmp_path / "rep")]
    assert main(args) == 0
    fits = json.loads((tmp_path / "rep" / "fits.json").read_text())
    assert "isoflop" not in fits["fits"] and "--isoflop-from-curves" in capsys.readouterr().out
    assert main([*args, "--isoflop-from-curves"]) == 0
    fits = json.loads((tmp_path / "rep" / "fits.json").read_text())
    assert fits["fits"]["isoflop"]["params"]["a"] == pytest.approx(0.28 / 0.62, rel=0.05)


def test_cli_refuses_the_flag_for_a_results_folder(tmp_path, capsys):
    assert main([str(tmp_path), "--isoflop-from-curves"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --isoflop-from-curves applies to curve tables")
