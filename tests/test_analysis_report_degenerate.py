"""Small, degenerate tables (found by fuzzing `python -m analysis TABLE`): each one still gets a
report, exit 0, with its reasons in the warnings; none a traceback. Before the fixes every case
here crashed (OverflowError, ZeroDivisionError, ValueError from matplotlib) or was refused."""

from __future__ import annotations

import json

import pytest

from analysis.command import main

HEAD = "n_params,n_tokens,loss"
CASES = {
    # loss falls with N and D, but alpha + beta ~ 0.05: the allocation raised a ratio to ~20
    "allocation_overflow": (HEAD, "8.3e5,1.7e6,2.96 8.3e5,8.0e7,2.90 1.4e7,2.8e7,2.74 "
                            "1.4e7,8.6e7,2.77 2.4e8,4.8e8,2.53 2.4e8,5.3e9,2.49"),
    # two budgets, loss rising with N at both (the device check's GPU shape): alpha < 0, every
    # allocation NaN, and the allocation figure had nothing to put on its log axis
    "negative_exponent": (HEAD + ",flops", "1e7,1.6667e9,3.52,1e17 2e7,8.3333e8,3.80,1e17 "
                          "4e7,4.1667e8,4.08,1e17 1e7,1.6667e10,3.30,1e18 "
                          "2e7,8.3333e9,3.60,1e18 4e7,4.1667e9,3.89,1e18"),
    # a slice exactly on a line in log N: its parabola's vertex lies past float range
    "collinear_slice": (HEAD + ",flops", "1e7,1e10,3.2,6e17 3e7,3.3333333e9,3.1,6e17 "
                        "9e7,1.1111111e9,3.0,6e17 1e7,1e11,2.9,6e18 "
                        "3e7,3.3333333e10,2.7,6e18 9e7,1.1111111e10,2.8,6e18"),
    # every loss equal: alpha = beta = 0 divided by zero
    "flat": (HEAD, "1e6,1e8,3.0 2e6,1e8,3.0 4e6,1e8,3.0 1e6,1e9,3.0 2e6,1e9,3.0 4e6,1e9,3.0"),
    # a fit whose surface is flat over the plot: the iso-loss contour levels were all equal
    "flat_surface": (HEAD, "8.71e9,7.96e11,0.00947 1.5e10,4.63e11,0.00947 2.58e10,2.69e11,0.00947 "
                     "2.61e10,2.65e12,0.00844 4.5e10,1.54e12,0.00844 7.73e10,8.97e11,0.00844 "
                     "7.84e10,8.85e12,0.00752 1.35e11,5.14e12,0.00752 2.32e11,2.99e12,0.00752"),
    # loss ~ 19 nats (not log-likelihood per token, but a valid table): Kaplan's joint law's
    # bootstrap refits put N_c past float range; "warning: overflow encountered in exp" was printed
    "kaplan_overflow": (HEAD, "1.555e8,3.564e8,19.8989 8.327e8,2.679e11,18.2890 "
                        "1.679e8,1.944e8,19.9004 8.567e8,4.501e11,17.9687 4.445e8,8.691e8,19.5952 "
                        "2.659e9,1.774e12,17.8954 7.289e8,7.941e10,18.2403 2.813e9,7.884e9,18.7020 "
                        "1.469e9,2.434e9,19.3939"),
    # three IsoFLOP budgets whose C column is 6 N D per row (float noise in the last digits):
    # the frontier check took nine budgets 0 decades apart ("divide by zero encountered")
    "noisy_budgets": (HEAD + ",flops", "3.28e5,2.3941e7,3.0000004,4.7124e13 "
                      "5.18e6,1.5159e6,3.0000017,4.7124000000000006e13 "
                      "8.19e7,9.5897e4,3.0000011,4.7123999999999994e13 "
                      "9.84e5,7.9804e7,3.0000007,4.712e14 1.56e7,5.0342e6,3.0000007,4.712e14 "
                      "2.46e8,3.1924e5,2.9999991,4.7120000000000006e14 "
                      "2.95e6,2.6621e8,3.0000010,4.712e15 4.67e7,1.6816e7,2.9999984,4.712e15 "
                      "7.37e8,1.0656e6,2.9999997,4.7119999999999994e15"),
}  # fmt: skip


def _write(tmp_path, name: str):
    head, rows = CASES[name]
    path = tmp_path / f"{name}.csv"
    path.write_text(head + "\n" + "\n".join(rows.split()) + "\n")
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_degenerate_table_gets_a_report_not_a_traceback(tmp_path, capsys, name):
    rc = main([str(_write(tmp_path, name)), "--n-bootstrap", "20", "--out", str(tmp_path / "r")])
    cap = capsys.readouterr()
    assert rc == 0, cap.err[-2000:]
    assert "Traceback" not in cap.err
    assert "encountered in" not in cap.err  # numpy's words, no use to a user
    report = (tmp_path / "r" / "report.md").read_text()
    assert "## Skipped fits and warnings" in report
    if name == "kaplan_overflow":  # a law that runs away, not a solver that failed
        assert "diverged (N_c or D_c beyond float range)" in report


def test_figures_the_fits_cannot_draw_are_named_not_fatal(tmp_path, capsys):
    assert main([str(_write(tmp_path, "negative_exponent")), "--n-bootstrap", "20",
                 "--out", str(tmp_path / "r")]) == 0  # fmt: skip
    report = (tmp_path / "r" / "report.md").read_text()
    assert "figure optimal_n not drawn" in report
    assert (tmp_path / "r" / "figures" / "loss_vs_n.png").exists()  # the others are drawn
    assert "an exponent is ~0 or negative (alpha -" in report


def test_predict_on_six_runs_and_far_out_gives_a_number_not_a_refusal(tmp_path, capsys):
    """Six runs fit the 4-parameter over-training form (the 5-parameter one needs 7): --predict
    was refused with 'too few runs'. A point 1e80 out has an unbounded interval, not a crash."""
    path = _write(tmp_path, "allocation_overflow")
    rc = main([str(path), "--n-bootstrap", "5", "--out", str(tmp_path / "r"), "--json",
               "--predict", "N=1e9,D=2e10", "--predict", "N=1e80,D=1e80",
               "--predict", "N=1e160,D=1e160"])  # fmt: skip
    cap = capsys.readouterr()
    assert rc == 0, cap.err[-2000:]
    doc = json.loads(cap.out)
    assert "encountered in" not in cap.err  # N x D = 1e320 overflowed
    near, far, farther = doc["predictions"]
    assert doc["law"].startswith("overtrain") and near["loss"] > 0
    assert near["interval"][0] < near["loss"] < near["interval"][1]
    for p in (far, farther):
        assert p["interval"][1] is None or p["interval"][1] > p["loss"]


def test_an_estimate_outside_its_own_interval_is_flagged(tmp_path, capsys):
    """A fit at an edge of its objective (here Hoffmann's start grid: alpha = beta = 2 on a
    surface the runs leave flat) printed 'a 0.5 [0.5001, 0.5008]' without a word; now the report
    names the quantities whose refits land elsewhere. A clean synthetic fit gets no such flag."""
    import numpy as np

    from analysis.laws.bootstrap import bootstrap_chinchilla
    from analysis.laws.chinchilla import fit_chinchilla

    assert main([str(_write(tmp_path, "flat_surface")), "--n-bootstrap", "100",
                 "--out", str(tmp_path / "r")]) == 0  # fmt: skip
    report = (tmp_path / "r" / "report.md").read_text()
    assert "lies outside its own bootstrap interval" in report
    line = next(x for x in report.splitlines() if "lies outside" in x)
    assert "the estimate of " in line and "log_A" not in line

    rng = np.random.default_rng(0)
    n = np.repeat(np.geomspace(1e7, 1e9, 5), 4)
    d = n * np.tile([5.0, 10.0, 20.0, 40.0], 5)
    loss = (1.69 + 406.4 / n**0.34 + 410.7 / d**0.28) * np.exp(rng.normal(0, 0.005, n.size))
    fit, _ = bootstrap_chinchilla(fit_chinchilla(n, d, loss), n, d, loss, n_resamples=100, rng=rng)
    assert not any("outside its own" in w for w in fit.warnings), fit.warnings
