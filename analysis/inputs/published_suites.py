"""Published scaling suites shipped with the package (analysis/published/<name>/): each a small
`runs.csv` in canonical columns (n_params, n_tokens, flops, loss, group, ...), a README with its
source, licence and derivation, and `paper.json` with the paper's own fitted numbers."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pandas as pd

from ..errors import AnalysisError

__all__ = ["SUITES", "load_suite", "suite_paper"]

SUITES = ("gadre2024", "porian2024")


def _folder(name: str):
    if name not in SUITES:
        raise AnalysisError(f"published suite {name!r} is not shipped; choose one of {SUITES}")
    return resources.files("analysis") / "published" / name


def load_suite(name: str) -> pd.DataFrame:
    """The suite's runs as a canonical table (one row per run)."""
    with (_folder(name) / "runs.csv").open("r", encoding="utf-8") as f:
        table = pd.read_csv(f)
    # floats, so that products such as N x D cannot overflow int64
    cols = [c for c in ("n_params", "n_tokens", "flops", "loss") if c in table]
    return table.astype({c: float for c in cols})


def suite_paper(name: str) -> dict[str, Any]:
    """The paper's own fitted law and numbers (paper.json), as the README describes them."""
    return json.loads((_folder(name) / "paper.json").read_text(encoding="utf-8"))
