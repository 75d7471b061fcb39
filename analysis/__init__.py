"""Scaling-law analysis of sweep results or any results table. Never imports torch or Hydra.

Four rooms, imported in one direction (docs/architecture.md draws the flow):
`analysis.inputs` (tables and run records in) <- `analysis.laws` (the fitted forms and their
bootstrap) <- `analysis.prediction` (back-tests, the recommended law, calibrated intervals)
<- `analysis.report` (figures, report.md, fits.json, the printed summary); `analysis.command` is
the command line (`python -m analysis`).

For a notebook, three verbs carry most of the work::

    table = analysis.load_table("runs.csv", columns={"n_params": "params"})
    rec = analysis.recommend(table)             # the law the table's own back-test chooses
    rec.predict(6.9e9, 1.38e11)                 # loss at (N, D) with a calibrated 95% interval

and the individual fits stand beside them (`fit_chinchilla`, `fit_isoflop`, ...). Names resolve
lazily, so `import analysis` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import AnalysisError, AnalysisWarning, TableError

# public name -> the module that defines it, grouped by room
_WHERE = {
    # inputs: tables and run records in
    "load_table": "inputs.canonical_table",
    "parse_columns": "inputs.canonical_table",
    "end_points": "inputs.canonical_table",
    "fit_points": "inputs.canonical_table",
    "parse_holdout": "inputs.holdout",
    "load_source": "inputs.sources",
    "load_runs": "inputs.run_records",
    "fit_runs": "inputs.run_records",
    "excluded_counts": "inputs.run_records",
    "load_suite": "inputs.published_suites",
    # laws: the individual fits
    "fit_chinchilla": "laws.chinchilla",
    "fit_chinchilla_reference": "laws.chinchilla",
    "fit_chinchilla_likelihood": "laws.chinchilla",
    "compute_optimal": "laws.chinchilla",
    "chinchilla_loss": "laws.chinchilla",
    "bootstrap_chinchilla": "laws.bootstrap",
    "fit_isoflop": "laws.isoflop",
    "bootstrap_isoflop": "laws.isoflop",
    "fit_envelope": "laws.envelope",
    "lower_envelope": "laws.envelope",
    "fit_power_law": "laws.kaplan",
    "fit_kaplan_joint": "laws.kaplan",
    "fit_varpro": "laws.varpro",
    # prediction: the recommended law and its calibrated intervals
    "recommend": "prediction.recommend",
    "Recommendation": "prediction.recommend",
    "Prediction": "prediction.recommend",
    "recommend_groups": "prediction.groups",
    "backtest_chinchilla": "prediction.backtest",
    "backtest_isoflop": "prediction.backtest",
    "backtest_power_law": "prediction.backtest",
    "convention_sensitivity": "prediction.backtest",
    # report
    "build_report": "report.build",
    "summarize": "report.printed_summary",
    "plot_recommendation": "report.plots",
}

__all__ = ["AnalysisError", "AnalysisWarning", "TableError", *_WHERE]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
