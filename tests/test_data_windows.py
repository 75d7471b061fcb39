"""The fixed evaluation windows: deterministic, evenly spread, and a clear error when too short."""

from __future__ import annotations

import numpy as np
import pytest

from sweeps.config import DataConfig
from sweeps.data import TokenData, eval_windows, load_dataset
from sweeps.errors import UserError


def data_with_val(n_val: int) -> TokenData:
    val = (np.arange(n_val) % 251).astype(np.uint16)
    return TokenData(
        train=val,
        val=val,
        vocab_size=256,
        dataset_id="test",
        info={},
        unigram_entropy=1.0,
        val_bytes_per_token=1.0,
    )


def test_shape_and_content():
    d = data_with_val(10_000)
    w = eval_windows(d, n_tokens=1000, context=64)
    assert w.shape == (16, 65) and w.dtype == np.int64  # ceil(1000 / 64) = 16
    assert w[0, 0] == d.val[0] and w[-1, -1] == d.val[-1]  # spans the whole split
    for row in w:  # every row is a contiguous slice of the validation split
        start = int(np.flatnonzero(np.asarray(d.val) == row[0])[0])
        assert np.array_equal(row, d.val[start : start + 65])


def test_deterministic_across_loads(tmp_path):
    cfg = DataConfig(name="synthetic", synthetic_n_tokens=40_000, cache_dir=str(tmp_path / "a"))
    a = eval_windows(load_dataset(cfg, progress=False), n_tokens=1024, context=32)
    cfg_b = DataConfig(name="synthetic", synthetic_n_tokens=40_000, cache_dir=str(tmp_path / "b"))
    b = eval_windows(load_dataset(cfg_b, progress=False), n_tokens=1024, context=32)
    assert np.array_equal(a, b)


def test_single_window():
    w = eval_windows(data_with_val(100), n_tokens=10, context=99)
    assert w.shape == (1, 100)


def test_too_short_validation_split():
    with pytest.raises(UserError) as e:
        eval_windows(data_with_val(100), n_tokens=1000, context=100)
    assert e.value.field == "model.context" and "100 tokens" in e.value.problem
    assert "model.context <= 99" in e.value.fix and "data.val_fraction" in e.value.fix


def test_overlap_warns():
    with pytest.warns(UserWarning, match="data.n_val_tokens"):
        w = eval_windows(data_with_val(1000), n_tokens=4096, context=64)
    assert w.shape == (64, 65)
