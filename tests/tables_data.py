"""Tiny results tables for the tests of analysis/inputs/canonical_table.py and its CLI: a size x
tokens grid from
the known Chinchilla law (analysis.laws.synthetic.TRUE_PARAMS) with seeded log-normal noise, under
the
canonical column names or the foreign ones a user's trainer might write."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.laws.synthetic import TRUE_PARAMS, law_loss

__all__ = ["FOREIGN", "grid", "foreign", "assert_refused"]

FOREIGN = "n_params=params,n_tokens=tokens,loss=val_loss"


def grid(seed=0, sizes=(1e5, 3e5, 1e6, 3e6, 1e7), tokens=(1e7, 4e7, 1.6e8, 6.4e8), noise=0.005):
    """A size x tokens grid from TRUE_PARAMS with log-normal noise, canonical names."""
    n, d = (x.ravel() for x in np.meshgrid(sizes, tokens, indexing="ij"))
    loss = law_loss(TRUE_PARAMS, n, d) * np.exp(
        np.random.default_rng(seed).normal(0, noise, n.size)
    )
    return pd.DataFrame({"n_params": n, "n_tokens": d, "loss": loss})


def foreign(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={"n_params": "params", "n_tokens": "tokens", "loss": "val_loss"})


def assert_refused(rc: int, capsys, expect: str, folder, name: str) -> None:
    """The CLI refused a table: exit 2, one `error:` line holding `expect`, no traceback, nothing
    on stdout, and nothing but the table `name` in `folder` (no report folder)."""
    cap = capsys.readouterr()
    assert rc == 2, cap.err
    lines = [x for x in cap.err.splitlines() if not x.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), cap.err
    assert expect in lines[0], lines[0]
    assert "Traceback" not in cap.err and cap.out == ""
    assert sorted(p.name for p in folder.iterdir()) == [name]
