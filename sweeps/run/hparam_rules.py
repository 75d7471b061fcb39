"""Learning rate and batch size: the configured numbers, or "auto" from fitted rules by scale.

The rules: batch*(X) = k * X^p, X the compute C = 6 N D (DeepSeek LLM's form, `of: compute`) or the
run's tokens D (`of: tokens`), in sequences per step; then lr*(N, B) = c * N^-gamma * B^delta, with
N in the matmul convention and B the batch the run uses (auto or set). delta (Adam's lr grows with
the batch; Malladi et al. 2022) is fitted only when the studies' optima differ in batch, else 0.
`python -m sweeps.tune -m sweep=lr_tune` searches each size (and horizon) and
`python -m sweeps.tune fit` fits the rules (sweeps/tuning/rule_fit.py, numpy only) into
`hparam_rules.json`; `optim.rules=<that file>` uses them; otherwise the built-in defaults below.

Why tokens can be the better X: on an IsoFLOP grid one budget C holds runs of very different
horizons (here D/N from 20 to 1,500), and the batch optimum follows the horizon: at C = 1e12,
batch 1 beat batch 16 by 8.0% for N = 114,688 (D = 1.5e6) but lost by 6.4% for N = 10,240
(D = 1.6e7) (benchmarks/rules_isoflop.py, at the old rules' lr). A rule in C gives both one batch.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from sweeps.config import BudgetConfig, OptimConfig
from sweeps.errors import UserError

__all__ = [
    "DEFAULT_RULES",
    "BATCH_OF",
    "rules_fingerprint",
    "load_rules",
    "resolve_hparams",
    "lr_rule",
    "batch_rule",
]

# Built-in defaults, calibrated on the default corpus (pystdlib bytes, GPT, context 256, cosine to
# 0.1 x lr, 2 x 1 thread) at four horizons, 13 studies, 172 trials (TPE over lr and batch):
#   python -m sweeps.tune -m sweep=lr_tune                # 5 sizes at 5e5 tokens, 16 trials each
#   python -m sweeps.tune -m sweep=lr_tune sweep_name=lr_tune_3e6 budget.tokens=3e6 \
#       'model.n_params=3e4,1e4' tune.n_trials=12
#   python -m sweeps.tune -m sweep=lr_tune sweep_name=lr_tune_4e6 budget.tokens=4e6 \
#       model.n_params=1e4 tune.n_trials=12 tune.batch_max=64      # then model.n_params=3e4 with
#       tune.n_trials=10, then 'model.n_params=2e4,5e3' with tune.n_trials=12 (the same folder)
#   python -m sweeps.tune -m sweep=lr_tune sweep_name=lr_tune_8e6 budget.tokens=8e6 \
#       model.n_params=3e3 tune.n_trials=12 tune.batch_max=64           # lr at the edge, so:
#   python -m sweeps.tune -m sweep=lr_tune sweep_name=lr_tune_8e6_wide budget.tokens=8e6 \
#       model.n_params=3e3 tune.n_trials=10 tune.lr_min=3e-3 tune.lr_max=0.3 \
#       tune.batch_min=4 tune.batch_max=128
#   python -m sweeps.tune fit results/lr_tune results/lr_tune_3e6 results/lr_tune_4e6 \
#       results/lr_tune_8e6 results/lr_tune_8e6_wide --batch-of tokens
# Optima (N, D: lr*, batch*): at 5e5 tokens every size is best at batch 1 (lr 0.009 .. 0.0025 from
# N = 3,584 to 114,688); at 4e6 tokens N = 6,528 / 10,240 / 19,968 are best at batch 8 with lr
# 0.015 / 0.038 / 0.020 (N = 10,240 at 3e6: batch 4, lr 0.019); N = 3,584 at 8e6: batch 16-32,
# lr 0.026-0.081; N = 32,768 at 3e6 and 4e6: batch 1 (lr 0.0029, 0.0039; batch 8 at 0.0085 was
# within 0.9%). Fitted: batch*(D) = 1.579e-05 D^0.837 (p 95% 0.43..1.12),
# lr* = 0.1349 N^-0.337 B^0.614 (gamma 95% -0.03..0.55, delta 0.38..0.91).
# The two 4e6-token studies of N = 6,528 and 19,968 were added to the 11 of the previous defaults
# (0.2364 N^-0.390 B^0.593, batch 1.925e-05 D^0.822): on the demo grid's 20 points the lr moves by
# -9..+21% and the batch by at most 2, and the intervals narrow (gamma 0.02..0.84 and p 0.23..1.14
# before). Left-out checks (benchmarks/lr_rules.py) and the demo grid against fixed settings
# (benchmarks/rules_isoflop.py) are in the README.
DEFAULT_RULES: dict[str, Any] = {
    "lr": {
        "c": 0.1349,
        "gamma": 0.3371,
        "delta": 0.6136,
        "delta_fitted": True,
        "n_ref": 13550,
        "batch_ref": 2.878,
        "gamma_interval": [-0.0308, 0.5507],
        "delta_interval": [0.3780, 0.9077],
    },
    "batch_size": {
        "of": "tokens",
        "k": 1.579e-05,
        "p": 0.8375,
        "min": 1,
        "max": 1024,
        "p_interval": [0.4294, 1.1190],
    },
    "source": "lr_tune calibration on pystdlib, 5e5..8e6 tokens, N 3.6e3..1.1e5 (see above)",
}


def load_rules(path: str) -> dict[str, Any]:
    """Read a hparam_rules.json; UserError naming optim.rules and the fix when unusable."""
    p = Path(path).expanduser()
    try:
        rules = json.loads(p.read_text(encoding="utf-8"))
        values = [
            float(rules["lr"]["c"]),
            float(rules["lr"]["gamma"]),
            float(rules["batch_size"]["k"]),
            float(rules["batch_size"]["p"]),
            float(rules["lr"].get("delta", 0.0)),
        ]
        if not all(math.isfinite(v) for v in values) or values[0] <= 0 or values[2] <= 0:
            raise ValueError("c and k must be positive and every constant finite")
        if rules["batch_size"].get("of", "compute") not in BATCH_OF:
            raise ValueError(f"batch_size.of must be one of {', '.join(BATCH_OF)}")
    except FileNotFoundError as e:
        raise UserError(
            "optim.rules", f"no file {p}", "run sweep=lr_tune first or fix the path"
        ) from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(
            "optim.rules", f"{p} is not a hparam_rules.json ({e})", "point to a file lr_tune wrote"
        ) from e
    return rules


def rules_fingerprint(path: str) -> str:
    """A short hash of the constants "auto" uses (the file's, or the built-in defaults)."""
    rules = load_rules(path) if path else DEFAULT_RULES
    used = {
        "lr": {k: rules["lr"].get(k) for k in ("c", "gamma", "delta")},
        "batch_size": {k: rules["batch_size"].get(k) for k in ("of", "k", "p", "min", "max")},
    }
    return hashlib.sha256(json.dumps(used, sort_keys=True).encode()).hexdigest()[:12]


BATCH_OF = ("compute", "tokens")  # what the batch rule is a power law of


def lr_rule(rules: dict[str, Any], n_params: Any, batch_size: Any = 1.0) -> Any:
    """lr*(N, B) = c N^-gamma B^delta (delta 0 when the rules have no batch term). Floats or numpy
    arrays: the one formula of the runs (`resolve_hparams`) and of analysis/hparams.py's plots."""
    lr = rules["lr"]
    return (
        float(lr["c"]) * n_params ** -float(lr["gamma"]) * batch_size ** float(lr.get("delta", 0.0))
    )


def batch_rule(rules: dict[str, Any], x: Any) -> Any:
    """batch*(X) = k X^p before rounding and clamping, X the compute C or the tokens D as the
    rules' `of` says. Floats or numpy arrays, like `lr_rule`."""
    b = rules["batch_size"]
    return float(b["k"]) * x ** float(b["p"])


def resolve_hparams(
    optim: OptimConfig, *, n_params: int, budget: BudgetConfig
) -> tuple[float, int]:
    """(lr, batch_size) for a model of N = n_params, resolving "auto" from the rules.

    The batch first (auto: the rule at the run's C or D; else as set), then the lr at that batch.
    """
    rules = load_rules(optim.rules) if optim.rules else DEFAULT_RULES
    if optim.batch_size == "auto":
        br = rules["batch_size"]
        x = _budget_x(budget, n_params, str(br.get("of", "compute")))
        raw = batch_rule(rules, x) if x else float(br["k"])
        batch_size = int(min(br.get("max", 1024), max(br.get("min", 1), round(raw))))
    else:
        batch_size = int(optim.batch_size)
    if optim.lr == "auto":
        lr = lr_rule(rules, n_params, batch_size)
    else:
        lr = float(optim.lr)
    return lr, batch_size


def _budget_x(budget: BudgetConfig, n_params: int, of: str) -> float | None:
    """The run's C = 6 N D (of="compute") or D (of="tokens") where the horizon fixes it without
    knowing the batch size; None for budget.steps (RunConfig refuses batch_size=auto there; an
    lr rule in N alone still works)."""
    if budget.tokens is not None:
        tokens = float(budget.tokens)
    elif budget.flops is not None:
        tokens = float(budget.flops) / (6.0 * n_params)
    elif budget.tokens_per_param is not None:
        tokens = float(budget.tokens_per_param) * n_params
    else:
        return None
    return tokens if of == "tokens" else 6.0 * n_params * tokens
