"""Predictions under the recommended law: the API the CLI's --predict uses."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.errors import AnalysisError
from analysis.predict import Prediction, Recommendation, recommend
from analysis.synthetic import grid_points

HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def _table(seed=0, noise=0.005):
    """A 6 x 6 grid, N 1e7..1e9 and D 1e8..1e11, from Hoffmann et al.'s law with 0.5% noise."""
    n, d, loss = grid_points(rng=np.random.default_rng(seed), params=HOFFMANN, n_sizes=6,
                             n_token_counts=6, n_range=(1e7, 1e9), d_range=(1e8, 1e11),
                             noise=noise, outlier_frac=0.0)  # fmt: skip
    return pd.DataFrame({"n_params": n, "n_tokens": d, "flops": 6 * n * d, "loss": loss})


def test_recommend_predicts_a_known_law_within_its_interval():
    table = _table()
    rec = recommend(table, seed=0)
    assert isinstance(rec, Recommendation) and rec.law and rec.why
    p = rec.predict(3e8, 3e10)
    assert isinstance(p, Prediction)
    truth = 1.69 + 406.4 / 3e8**0.34 + 410.7 / 3e10**0.28
    assert p.interval[0] <= truth <= p.interval[1]
    assert p.interval[0] < p.loss < p.interval[1]
    assert p.flops == pytest.approx(6 * 3e8 * 3e10)
    d = p.to_dict()
    assert set(d) == {"n_params", "n_tokens", "flops", "loss", "interval", "level", "law"}
    json.dumps(d)
    json.dumps(rec.to_dict())


def test_wider_level_gives_a_wider_interval():
    rec = recommend(_table(), seed=0)
    p80, p95 = rec.predict(4e9, 8e10, level=0.8), rec.predict(4e9, 8e10, level=0.95)
    assert p95.interval[0] <= p80.interval[0] and p80.interval[1] <= p95.interval[1]


def test_recommend_is_seeded():
    a = recommend(_table(), seed=3).predict(1e9, 2e10)
    b = recommend(_table(), seed=3).predict(1e9, 2e10)
    assert a == b


@pytest.mark.parametrize("n, d, level", [(-1, 1e9, 0.95), (1e9, np.nan, 0.95), (1e9, 1e9, 1.5)])
def test_predict_rejects_bad_points_in_one_line(n, d, level):
    rec = recommend(_table(), seed=0)
    with pytest.raises(AnalysisError) as e:
        rec.predict(n, d, level=level)
    assert "\n" not in str(e.value)


def test_recommend_names_a_missing_column():
    with pytest.raises(AnalysisError, match="n_tokens"):
        recommend(pd.DataFrame({"n_params": [1.0], "loss": [2.0]}))
