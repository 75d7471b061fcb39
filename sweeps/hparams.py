"""Learning rate and batch size: the configured numbers, or "auto" from fitted rules by scale.

A rule is lr*(N) = c * N^-gamma (N: matmul convention) and batch*(C) = k * C^p (C = 6 N D, in
sequences per step), as DeepSeek LLM fitted them. `sweep=lr_tune` fits them and writes
`hparam_rules.json`; `optim.rules=<that file>` uses them; otherwise the built-in defaults below.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sweeps.config import BudgetConfig, OptimConfig
from sweeps.errors import UserError

__all__ = ["DEFAULT_RULES", "load_rules", "resolve_hparams"]

# Built-in defaults. Provisional until calibrated by `sweep=lr_tune` on the default corpus
# (README, "Hyper-parameters by scale"): lr 3e-3 at N = 1e5, falling as N^-0.3; batch 16.
DEFAULT_RULES: dict[str, Any] = {
    "lr": {"c": 3e-3 * (1e5**0.3), "gamma": 0.3, "n_ref": 1e5},
    "batch_size": {"k": 16.0, "p": 0.0, "min": 4, "max": 256},
    "source": "built-in provisional defaults",
}


def load_rules(path: str) -> dict[str, Any]:
    """Read a hparam_rules.json; UserError naming optim.rules and the fix when unusable."""
    p = Path(path).expanduser()
    try:
        rules = json.loads(p.read_text(encoding="utf-8"))
        float(rules["lr"]["c"]), float(rules["lr"]["gamma"])
        float(rules["batch_size"]["k"]), float(rules["batch_size"]["p"])
    except FileNotFoundError as e:
        raise UserError(
            "optim.rules", f"no file {p}", "run sweep=lr_tune first or fix the path"
        ) from e
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(
            "optim.rules", f"{p} is not a hparam_rules.json ({e})", "point to a file lr_tune wrote"
        ) from e
    return rules


def resolve_hparams(
    optim: OptimConfig, *, n_params: int, budget: BudgetConfig
) -> tuple[float, int]:
    """(lr, batch_size) for a model of N = n_params, resolving "auto" from the rules."""
    rules = load_rules(optim.rules) if optim.rules else DEFAULT_RULES
    if optim.lr == "auto":
        lr = float(rules["lr"]["c"]) * n_params ** -float(rules["lr"]["gamma"])
    else:
        lr = float(optim.lr)
    if optim.batch_size == "auto":
        br = rules["batch_size"]
        flops = _budget_flops(budget, n_params)
        raw = float(br["k"]) * (flops ** float(br["p"]) if flops else 1.0)
        batch_size = int(min(br.get("max", 1024), max(br.get("min", 1), round(raw))))
    else:
        batch_size = int(optim.batch_size)
    return lr, batch_size


def _budget_flops(budget: BudgetConfig, n_params: int) -> float | None:
    """The run's compute C = 6 N D where the horizon fixes it without knowing the batch size."""
    if budget.flops is not None:
        return float(budget.flops)
    if budget.tokens is not None:
        return 6.0 * n_params * float(budget.tokens)
    if budget.tokens_per_param is not None:
        return 6.0 * n_params * float(budget.tokens_per_param) * n_params
    return None  # budget.steps: C depends on the batch itself; use the rule's k alone
