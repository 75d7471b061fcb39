"""Warnings under the headline prediction (issue 35): an implausible tokens-per-parameter ratio,
and approaches that disagree on N*'s exponent beyond their intervals, in the printed summary and
not only in report.md."""

from __future__ import annotations

from pathlib import Path

from analysis.report.headline_checks import headline_warnings
from analysis.report.printed_summary import summarize
from analysis.result_types import FitResult, Report


def _report(tokens_per_param: float, a3, a1) -> Report:
    rep = Report(out_dir=Path("."), target_flops=1e21, name="t")
    params = {"a": a3[0], "b": 1 - a3[0], "alpha": 0.3, "beta": 0.3, "E": 1.7}
    rep.fits["chinchilla"] = FitResult("chinchilla", params, {"a": a3[1]})
    rep.fits["envelope"] = FitResult("envelope", {"a": a1[0]}, {"a": a1[1]})
    rep.prediction = {"source": "approach3", "reason": "r", "convention": "c", "flops": 1e21,
                      "n_params": 1e9, "n_tokens": 1e9 * tokens_per_param, "loss": 2.0,
                      "tokens_per_param": tokens_per_param, "intervals": {}}  # fmt: skip
    return rep


def test_an_implausible_ratio_and_disagreeing_exponents_are_warned_under_the_headline():
    """A published grid gave 0.48 tokens per parameter and approaches 1 and 3 put N*'s exponent
    at 0.42 and 0.84; the summary said neither."""
    rep = _report(0.48, (0.84, (0.80, 0.88)), (0.42, (0.35, 0.50)))
    warns = headline_warnings(rep)
    assert len(warns) == 2
    assert "0.48 tokens per parameter" in warns[0]
    assert "approach 1 a = 0.42" in warns[1] and "approach 3 a = 0.84" in warns[1]
    rep.prediction["warnings"] = warns
    text = summarize(rep)
    assert "implausible allocation" in text and "disagree on N*'s exponent" in text


def test_a_plausible_ratio_and_overlapping_exponents_say_nothing():
    assert headline_warnings(_report(20.0, (0.5, (0.45, 0.55)), (0.52, (0.5, 0.6)))) == []
    demo = _report(2863.0, (0.5, (0.45, 0.55)), (0.5, (0.5, 0.5)))  # the demo at 1e13 FLOPs
    assert headline_warnings(demo) == []


def test_the_kaplan_n_backtest_follows_the_users_holdout(tmp_path):
    """It ignored --holdout and showed its default split beside the user's."""
    import numpy as np
    import pandas as pd

    from analysis.laws.synthetic import grid_points
    from analysis.report.build import build_report

    n, d, loss = grid_points(rng=np.random.default_rng(0), n_sizes=6, n_token_counts=5)
    t = pd.DataFrame({"n_params": n, "n_tokens": d, "loss": loss})
    cut = float(np.sort(np.unique(n))[-2])
    rep = build_report(t, out=tmp_path / "n", n_bootstrap=10, holdout=f"N>={cut:g}",
                       figures=False)  # fmt: skip
    assert rep.backtests["kaplan_N"].held_out == f"N>={cut:g}"
    rep = build_report(t, out=tmp_path / "d", n_bootstrap=10, holdout=f"D>={np.median(d):g}",
                       figures=False)  # fmt: skip
    assert "kaplan_N" not in rep.backtests
    assert "not on N or L" in rep.skipped["kaplan_N back-test"]


def test_every_fit_in_fits_json_states_the_reports_convention(tmp_path):
    """Each fit said 'matmul ... C = 6ND' under --n-convention total with C given."""
    import json

    import numpy as np
    import pandas as pd

    from analysis.laws.synthetic import grid_points
    from analysis.report.build import build_report

    n, d, loss = grid_points(rng=np.random.default_rng(0), n_sizes=5, n_token_counts=4)
    t = pd.DataFrame({"n_params": n, "n_tokens": d, "loss": loss, "flops": 6.5 * n * d})
    t.attrs["n_convention"] = "total"
    rep = build_report(t, out=tmp_path / "r", n_bootstrap=10, n_convention="total",
                       figures=False)  # fmt: skip
    fits = json.loads((tmp_path / "r" / "fits.json").read_text())
    assert "matmul" not in fits["convention"]
    assert {f["convention"] for f in fits["fits"].values()} == {fits["convention"]}
    assert rep.fits  # at least one fit was checked


def test_a_holdout_that_empties_one_groups_split_names_the_group(tmp_path, capsys):
    """'--group corpus --holdout N>=3e7' said 'no point is held out' though 8 rows were."""
    import numpy as np
    import pandas as pd

    from analysis.command import main
    from analysis.laws.synthetic import grid_points

    n, d, loss = grid_points(rng=np.random.default_rng(0), n_sizes=5, n_token_counts=4)
    big = pd.DataFrame({"n_params": n, "n_tokens": d, "loss": loss, "corpus": "big"})
    small = big.assign(n_params=big["n_params"] / 1e3, corpus="small")  # all below the cut
    path = tmp_path / "t.csv"
    pd.concat([big, small]).to_csv(path, index=False)
    cut = float(np.sort(np.unique(n))[-1])
    rc = main([str(path), "--group", "corpus", "--holdout", f"N>={cut:g}", "--n-bootstrap", "5",
               "--out", str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "group 'small'" in err and "no point is held out" in err
    assert err.strip().count("\n") == 0 and not (tmp_path / "r").exists()
