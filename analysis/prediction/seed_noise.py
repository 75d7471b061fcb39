"""The seed noise floor: how far the loss of one configuration moves from seed to seed.

`seed_groups(runs)` finds the runs whose configs are identical but for `seed` (a results folder's
records, or a table's rows with the same N, D, group and lr: analysis/inputs/sources.py);
`pooled_rel_sd(groups)` pools them into one relative sd, the noise a back-test error or a bend
of the frontier must clear before it means anything.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["pooled_rel_sd", "seed_groups"]


def seed_groups(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """The seed noise floor: groups of >= 2 included runs whose configs are identical but for
    `seed`. Each group: n_params, n_tokens, seeds, losses, mean, sd (ddof 1), rel_sd = sd/mean,
    range and rel_range = (max - min)/mean, largest group first."""
    use = runs[runs["included"]]
    groups: dict[str, list[int]] = {}
    for i, key in use["config_key"].items():
        try:
            cfg = json.loads(key)
        except (TypeError, ValueError):
            continue
        if not isinstance(cfg, dict) or not cfg:
            continue
        cfg.pop("seed", None)
        groups.setdefault(json.dumps(cfg, sort_keys=True, default=str), []).append(i)
    out = []
    for idx in groups.values():
        if len(idx) < 2:
            continue
        g = use.loc[idx]
        loss = g["loss"].to_numpy(float)
        mean, sd = float(loss.mean()), float(loss.std(ddof=1))
        out.append(
            {
                "n_params": float(g["n_params"].iloc[0]),
                "n_tokens": float(g["n_tokens"].median()),
                "seeds": [None if pd.isna(s) else int(s) for s in g["seed"]],
                "losses": [float(v) for v in loss],
                "mean": mean,
                "sd": sd,
                "rel_sd": sd / mean,
                "range": float(loss.max() - loss.min()),
                "rel_range": float(loss.max() - loss.min()) / mean,
            }
        )
    return sorted(out, key=lambda g: (-len(g["losses"]), g["n_params"]))


def pooled_rel_sd(groups: list[dict[str, Any]]) -> float:
    """The pooled relative seed-to-seed sd (rms of the groups' rel_sd), NaN without groups."""
    if not groups:
        return math.nan
    return float(np.sqrt(np.mean([g["rel_sd"] ** 2 for g in groups])))
