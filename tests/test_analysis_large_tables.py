"""Large tables stay answerable, and say how (issue 35: 2,000 rows did not finish in 10 minutes,
200,000 not in 15, and nothing was printed while it worked): beyond `MAX_FIT_ROWS` rows the fits
use a stratified sample of them and the report says so; slow steps report progress on stderr."""

from __future__ import annotations

import json
import os

import matplotlib
import numpy as np
import pandas as pd

from analysis import progress
from analysis.command import main
from analysis.inputs import row_sample
from analysis.laws.synthetic import TRUE_PARAMS, law_loss
from analysis.prediction.recommend import recommend

matplotlib.use("Agg")


def _big(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """Runs of a known law at 8 model sizes, each at its own token count (none repeat)."""
    rng = np.random.default_rng(seed)
    n = rng.choice(np.geomspace(1e6, 3e8, 8), n_rows)
    d = n * np.exp(rng.uniform(np.log(5), np.log(400), n_rows))
    loss = law_loss(TRUE_PARAMS, n, d) * np.exp(rng.normal(0, 0.005, n_rows))
    return pd.DataFrame({"n_params": n, "n_tokens": d, "loss": loss})


def test_a_sample_keeps_every_size_its_share_whatever_the_rows_order():
    table = _big(20_000)
    kept, n_rows = row_sample.sample_rows(table, max_rows=1000)
    assert n_rows == 20_000 and 1000 <= len(kept) <= 1010
    share = kept["n_params"].value_counts(normalize=True).sort_index()
    full = table["n_params"].value_counts(normalize=True).sort_index()
    assert np.allclose(share, full, atol=0.01)  # every size, in proportion
    shuffled, _ = row_sample.sample_rows(table.sample(frac=1, random_state=1), max_rows=1000)
    assert set(shuffled.index) == set(kept.index)  # the rows' values choose, not their order
    small, n_small = row_sample.sample_rows(table.iloc[:500], max_rows=1000)
    assert n_small == 500 and small is table.iloc[:500] or len(small) == 500


def test_a_large_table_is_answered_from_a_sample_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(row_sample, "MAX_FIT_ROWS", 150)  # 1,000 rows stand for 200,000
    path = tmp_path / "big.csv"
    _big(1000).to_csv(path, index=False)
    out = tmp_path / "report"
    rc = main([str(path), "--out", str(out), "--n-bootstrap", "30", "--predict", "N=1e9,D=2e10"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err[-2000:]
    fits = json.loads((out / "fits.json").read_text())
    sub = fits["subsample"]
    assert sub["n_rows"] == 1000 and 150 <= sub["n_used"] <= 170
    assert any("sample of" in d and "1,000 rows" in d for d in fits["diagnostics"])
    assert "1,000 rows" in (out / "report.md").read_text()
    said = cap.out + cap.err
    assert "large table: the fits, back-tests and bootstraps used a sample" in said
    assert "interval" in cap.out  # and the --predict point was answered


def test_recommend_on_a_large_table_fits_its_sample_and_warns(monkeypatch):
    monkeypatch.setattr(row_sample, "MAX_FIT_ROWS", 200)
    rec = recommend(_big(3000, seed=1))
    assert any("sample of" in w and "3,000 rows" in w for w in rec.warnings)
    p = rec.predict(1e9, 2e10)
    truth = float(law_loss(TRUE_PARAMS, 1e9, 2e10))
    assert p.interval[0] < truth < p.interval[1]


def test_progress_goes_to_stderr_once_a_report_is_slow(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(progress, "LOG_AFTER_S", 0.0)  # every step counts as slow
    path = tmp_path / "t.csv"
    _big(60).to_csv(path, index=False)
    assert main([str(path), "--out", str(tmp_path / "r"), "--n-bootstrap", "20"]) == 0
    cap = capsys.readouterr()
    assert "[report] approach 3: fit and bootstrap (step 1 of" in cap.err
    assert "[report] recommended law" in cap.err
    assert "[report]" not in cap.out


def test_loss_vs_size_bins_thousands_of_token_counts():
    """2,000 distinct D drew 2,000 groups (minutes of drawing on a large table): now 12."""
    from analysis.report.plots import MAX_GROUPS, plot_loss_vs_size

    t = _big(2000)
    data = pd.DataFrame({"N": t["n_params"], "D": t["n_tokens"], "L": t["loss"]})
    ax = plot_loss_vs_size(data, None, by="N")
    assert len(ax.collections) <= MAX_GROUPS
    assert sum(len(c.get_offsets()) for c in ax.collections) == 2000  # every run still shown
    matplotlib.pyplot.close("all")


def _draw_here_or_there(rep, data, curves, budgets):
    rep.diagnostics.append(f"figure x not drawn: drawn by {os.getpid()}")
    return ["loss_vs_n", str(os.getpid())]


def test_figures_are_drawn_apart_and_their_diagnostics_come_back(tmp_path):
    from analysis.report.build import Report
    from analysis.report.figure_set import start_report_figures

    rep = Report(out_dir=tmp_path, target_flops=1e20, diagnostics=["before"])
    drawing = start_report_figures(rep, None, None, None, draw=_draw_here_or_there)
    names = drawing.result()
    assert names[0] == "loss_vs_n" and names[1] != str(os.getpid())  # another process drew
    assert rep.diagnostics == ["before", f"figure x not drawn: drawn by {names[1]}"]
