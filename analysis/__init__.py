"""Scaling-law analysis of sweep results or any results table: load run records or a table
(`load_table`: CSV, Parquet, JSONL, DataFrame), fit laws, bootstrap, back-test, plot.

Never imports torch or Hydra. Submodules load on first use so `import analysis` stays cheap:
`analysis.load_runs`, `analysis.fit_chinchilla`, ... resolve lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import AnalysisError, AnalysisWarning, TableError

__all__ = [
    "AnalysisError",
    "AnalysisWarning",
    "TableError",
    "load_table",
    "parse_columns",
    "end_points",
    "fit_points",
    "parse_holdout",
    "load_source",
    "load_runs",
    "fit_runs",
    "excluded_counts",
    "fit_chinchilla",
    "fit_chinchilla_reference",
    "fit_chinchilla_likelihood",
    "compute_optimal",
    "chinchilla_loss",
    "bootstrap_chinchilla",
    "fit_isoflop",
    "bootstrap_isoflop",
    "fit_envelope",
    "lower_envelope",
    "fit_power_law",
    "fit_kaplan_joint",
    "backtest_chinchilla",
    "backtest_isoflop",
    "backtest_power_law",
    "convention_sensitivity",
    "build_report",
    "summarize",
    "recommend",
    "fit_varpro",
    "load_suite",
]

_WHERE = {
    "load_table": "tables",
    "parse_columns": "tables",
    "end_points": "tables",
    "fit_points": "tables",
    "parse_holdout": "points",
    "load_source": "sources",
    "load_runs": "runs",
    "fit_runs": "runs",
    "excluded_counts": "runs",
    "fit_chinchilla": "chinchilla",
    "fit_chinchilla_reference": "chinchilla",
    "fit_chinchilla_likelihood": "chinchilla",
    "compute_optimal": "chinchilla",
    "chinchilla_loss": "chinchilla",
    "bootstrap_chinchilla": "bootstrap",
    "fit_isoflop": "isoflop",
    "bootstrap_isoflop": "isoflop",
    "fit_envelope": "envelope",
    "lower_envelope": "envelope",
    "fit_power_law": "kaplan",
    "fit_kaplan_joint": "kaplan",
    "backtest_chinchilla": "backtest",
    "backtest_isoflop": "backtest",
    "backtest_power_law": "backtest",
    "convention_sensitivity": "backtest",
    "build_report": "report",
    "summarize": "summary",
    "recommend": "predict",
    "fit_varpro": "varpro",
    "load_suite": "suites",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
