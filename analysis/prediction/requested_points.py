"""The points a user asks the CLI to predict (`--predict N=6.9e9,D=1.38e11`), and the answers.

`parse_point` reads two of N (n_params), D (n_tokens) and C (flops, = 6 N D); `predict_points`
asks the recommended law of a table (analysis/prediction/recommend.py) for each, per group;
`predictions_json`
is the one JSON document `--json` prints and `predictions_text` the lines printed otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..errors import AnalysisError

__all__ = ["parse_point", "predict_points", "predictions_json", "predictions_text"]

_KEYS = {"N": "n_params", "n_params": "n_params", "D": "n_tokens", "n_tokens": "n_tokens",
         "C": "flops", "flops": "flops"}  # fmt: skip


def parse_point(text: str) -> tuple[float, float]:
    """`"N=6.9e9,D=1.38e11"` (or N and C, or D and C) -> (N, D); AnalysisError naming the fix."""
    got: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        name = _KEYS.get(key.strip())
        if not eq or name is None:
            raise AnalysisError(
                f"--predict {text!r}: {part!r} is not N=..., D=... or C=...; "
                "write e.g. N=6.9e9,D=1.38e11 or N=6.9e9,C=5.7e21"
            )
        try:
            x = float(value)
        except ValueError:
            x = math.nan
        if not (math.isfinite(x) and x > 0):
            raise AnalysisError(f"--predict {text!r}: {key.strip()}={value.strip()} must be a "
                                "finite positive number (e.g. 6.9e9)")  # fmt: skip
        if name in got:
            raise AnalysisError(f"--predict {text!r}: {key.strip()} given twice")
        got[name] = x
    if len(got) != 2:
        raise AnalysisError(
            f"--predict {text!r}: give exactly two of N, D and C (C = 6 N D), "
            "e.g. N=6.9e9,D=1.38e11"
        )
    if "flops" not in got:
        return got["n_params"], got["n_tokens"]
    if "n_params" in got:
        return got["n_params"], got["flops"] / (6 * got["n_params"])
    return got["flops"] / (6 * got["n_tokens"]), got["n_tokens"]


def predict_points(
    table: pd.DataFrame, points: list[tuple[float, float]], *, level: float = 0.95, seed: int = 0
) -> list[dict[str, Any]]:
    """One entry per group of `table` (one entry if it has none): the recommendation and its
    predictions at `points` (each a (N, D) pair). A curve table is reduced to its end points."""
    from ..inputs.canonical_table import fit_points
    from ..inputs.sources import runs_from_table
    from .groups import recommend_groups
    from .seed_noise import pooled_rel_sd, seed_groups

    table = fit_points(table)  # a curve table: each run's last step
    groups = table.groupby("group", sort=True) if "group" in table else [(None, table)]
    tables, noise = {}, {}
    for name, g in groups:
        g = g.drop(columns=["group"], errors="ignore").reset_index(drop=True)
        g.attrs = dict(table.attrs)
        tables[name] = g
        noise[name] = pooled_rel_sd(seed_groups(runs_from_table(g)[0]))  # as the report does
    recs = recommend_groups(tables, seed=seed, noise=noise)  # names a group at fault
    return [{"group": name, "recommendation": rec,
             "predictions": [rec.predict(n, d, level=level).to_dict() for n, d in points]}
            for name, rec in recs.items()]  # fmt: skip


def _finite(obj: Any) -> Any:
    """JSON-safe: NaN and inf (a failed interval) become null, numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def predictions_json(answers: list[dict[str, Any]], *, table: pd.DataFrame) -> dict[str, Any]:
    """`{"predictions": [...], "law", "why", "warnings", ...}`: with groups, each prediction has
    its `group` and the top level lists each group's law under `groups`. NaN becomes null."""
    preds = [p | ({"group": a["group"]} if a["group"] is not None else {})
             for a in answers for p in a["predictions"]]  # fmt: skip
    first = answers[0]["recommendation"]
    table_warnings = list(table.attrs.get("warnings", []))  # the table's own: perplexity, lr
    doc: dict[str, Any] = {
        "predictions": preds,
        "law": first.law,
        "why": first.why,
        "warnings": [*table_warnings, *first.warnings],
        "n_convention": table.attrs.get("n_convention"),
        "source": table.attrs.get("source"),
    }
    if len(answers) > 1 or answers[0]["group"] is not None:
        doc["groups"] = {str(a["group"]): a["recommendation"].to_dict() for a in answers}
        doc["law"] = ", ".join(sorted({a["recommendation"].law for a in answers}))
        doc["why"] = "per group: see groups"
        doc["warnings"] = [*table_warnings, *(f"{a['group']}: {w}" for a in answers
                                              for w in a["recommendation"].warnings)]  # fmt: skip
    return _finite(doc)


def predictions_text(answers: list[dict[str, Any]]) -> list[str]:
    """The lines the CLI prints: per group, the law and why, then one line per point."""
    lines = []
    for a in answers:
        rec = a["recommendation"]
        head = f"[{a['group']}] " if a["group"] is not None else ""
        lines.append(f"{head}recommended law: {rec.law} ({rec.why})")
        for p in a["predictions"]:
            where = f"  N {p['n_params']:.4g}, D {p['n_tokens']:.4g} (C {p['flops']:.3g}): loss "
            if p["interval"] is None:  # unbounded or zero-width: no digits, the reason instead
                lines.append(f"{where}{p['loss']:.4f}, no {p['level']:.0%} interval: "
                             f"{p['interval_warning']}")  # fmt: skip
                continue
            lo, hi = p["interval"]
            warn = f" (warning: {p['interval_warning']})" if p["interval_warning"] else ""
            lines.append(f"{where}{p['loss']:.4f}, {p['level']:.0%} interval [{lo:.4f}, {hi:.4f}],"
                         f" width {p['relative_width']:.1%}{warn}")  # fmt: skip
        lines += [f"  warning: {w}" for w in rec.warnings]
    return lines
