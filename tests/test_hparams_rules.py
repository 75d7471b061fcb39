"""The rules: fitting lr*(N) and batch*(C), edge flags, "auto" resolution and the rules file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sweeps.config import BudgetConfig, OptimConfig, RunConfig
from sweeps.errors import UserError
from sweeps.run.hparam_rules import load_rules, resolve_hparams
from sweeps.run.identity import run_id_for, semantic_config
from sweeps.tuning.rule_fit import (
    fit_power_law,
    fit_rules,
    format_rules,
    optimum_of,
    quadratic_optimum,
)

SPACE = {"lr_min": 3e-4, "lr_max": 3e-2, "batch_min": 4, "batch_max": 64}


def _optimum(n: float, lr: float, batch: int, *, flops: float | None = None) -> dict:
    trials = [
        {"lr": lr, "batch_size": batch, "loss": 2.0, "n_params": int(n), "flops": flops or 6e6 * n},
        {"lr": lr * 3, "batch_size": 8, "loss": 2.5, "n_params": int(n), "flops": 6e6 * n},
        {"lr": 1e-3, "batch_size": 8, "loss": None, "n_params": int(n), "flops": None},
    ]
    out = optimum_of({"study": f"s{n:g}", "n_params_target": n, "space": SPACE, "trials": trials})
    assert out is not None
    return out


def test_fit_recovers_c_and_gamma_from_exact_optima() -> None:
    n = np.array([3e3, 1e4, 3e4, 1e5, 3e5])
    c, gamma = 0.8, 0.37
    fit = fit_power_law(n, c * n**-gamma)
    assert fit["coef"] == pytest.approx(c, rel=1e-10)
    assert fit["exponent"] == pytest.approx(-gamma, rel=1e-10)
    assert fit["exponent_se"] == pytest.approx(0.0, abs=1e-10)


def test_fit_intervals_cover_the_truth_on_noisy_optima() -> None:
    rng = np.random.default_rng(0)
    n = np.geomspace(3e3, 3e5, 6)
    lr = 0.1 * n**-0.3 * np.exp(rng.normal(0, 0.1, n.size))
    opt = [_optimum(x, y, 16, flops=6 * x * 1e6) for x, y in zip(n, lr, strict=True)]
    rules = fit_rules(opt, source="synthetic")
    lo, hi = rules["lr"]["gamma_interval"]
    assert lo < 0.3 < hi and hi - lo < 0.3
    assert rules["lr"]["gamma"] == pytest.approx(0.3, abs=0.08)
    assert rules["batch_size"]["p"] == pytest.approx(0.0, abs=1e-9)  # batch 16 everywhere
    assert rules["warnings"] == []


def test_batch_rule_recovers_k_and_p() -> None:
    flops = np.geomspace(1e11, 1e14, 5)
    fit = fit_power_law(flops, 0.05 * flops**0.3)
    assert fit["coef"] == pytest.approx(0.05, rel=1e-9)
    assert fit["exponent"] == pytest.approx(0.3, rel=1e-9)


def test_an_optimum_at_the_edge_of_the_range_is_flagged_with_advice() -> None:
    hi = _optimum(1e4, 2.9e-2, 16)
    assert any("high end" in e and "tune.lr_max" in e for e in hi["edges"])
    lo = _optimum(1e4, 3e-3, 4)
    assert any("batch 4 at the low end" in e for e in lo["edges"])
    mid = _optimum(1e4, 3e-3, 16)
    assert mid["edges"] == [] and mid["n_failed"] == 1
    rules = fit_rules([hi, _optimum(3e4, 2e-3, 16), _optimum(1e5, 1e-3, 16)], source="t")
    assert any("tune.lr_max" in w for w in rules["warnings"])


def test_fit_needs_two_sizes() -> None:
    with pytest.raises(UserError, match="2 distinct sizes"):
        fit_rules([_optimum(1e4, 3e-3, 16)], source="t")


def test_auto_reads_the_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "hparam_rules.json"
    rules = fit_rules([_optimum(n, 0.4 * n**-0.25, 16) for n in (3e3, 1e4, 3e4)], source="t")
    path.write_text(json.dumps(rules))
    optim = OptimConfig(lr="auto", batch_size="auto", rules=str(path))
    lr, bs = resolve_hparams(optim, n_params=20_000, budget=BudgetConfig(tokens=1e6))
    assert lr == pytest.approx(0.4 * 20_000**-0.25, rel=1e-9)
    assert bs == 16
    fixed = resolve_hparams(
        OptimConfig(lr=1e-3, batch_size=8, rules=str(path)),
        n_params=20_000,
        budget=BudgetConfig(tokens=1e6),
    )
    assert fixed == (1e-3, 8)


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"lr": {"c": 1.0}}),
        json.dumps({"lr": {"c": -1, "gamma": 0.3}, "batch_size": {"k": 16, "p": 0}}),
        json.dumps({"lr": {"c": "x", "gamma": 0.3}, "batch_size": {"k": 16, "p": 0}}),
        json.dumps([1, 2]),
    ],
)
def test_a_malformed_rules_file_names_optim_rules(tmp_path: Path, content: str) -> None:
    path = tmp_path / "rules.json"
    path.write_text(content)
    with pytest.raises(UserError, match=r"^optim\.rules: .*Fix: "):
        load_rules(str(path))
    with pytest.raises(UserError, match="optim.rules"):
        resolve_hparams(
            OptimConfig(lr="auto", rules=str(path)), n_params=1000, budget=BudgetConfig(tokens=1e6)
        )


def test_a_missing_rules_file_names_optim_rules(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="optim.rules: no file"):
        load_rules(str(tmp_path / "nope.json"))


def test_default_rules_resolve() -> None:
    lr, bs = resolve_hparams(
        OptimConfig(lr="auto", batch_size="auto"), n_params=10_000, budget=BudgetConfig(tokens=1e6)
    )
    assert 0 < lr < 1 and bs >= 1


def _bowl_trials(seed: int, *, lr_opt: float = 0.01, b_opt: float = 4.0, noise: float = 0.006):
    """16 trials of a noisy quadratic bowl in (ln lr, log2 batch), as TPE would leave them."""
    rng = np.random.default_rng(seed)
    lr = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), 16))
    batch = 2 ** rng.integers(0, 6, 16)
    loss = (
        2.4
        + 0.03 * (np.log(lr / lr_opt)) ** 2
        + 0.01 * (np.log2(batch / b_opt)) ** 2
        + rng.normal(0, noise * 2.4, 16)
    )
    return [
        {"lr": float(a), "batch_size": int(b), "loss": float(c), "n_params": 1000, "flops": 1e10}
        for a, b, c in zip(lr, batch, loss, strict=True)
    ]


def test_quadratic_optimum_is_closer_to_the_true_optimum_than_the_best_trial() -> None:
    space = {"lr_min": 1e-3, "lr_max": 1e-1, "batch_min": 1, "batch_max": 32}
    err_fit, err_best, fitted = [], [], 0
    for seed in range(20):
        o = optimum_of({"space": space, "trials": _bowl_trials(seed)})
        assert o is not None
        fitted += o["method"].startswith("quadratic")
        err_fit.append(abs(np.log(o["lr"] / 0.01)))
        err_best.append(abs(np.log(o["best_lr"] / 0.01)))
    assert fitted >= 15  # the fit is used in most studies, the best trial otherwise
    assert np.median(err_fit) < 0.3 * np.median(err_best)  # measured: 0.04 vs 0.42
    assert np.median(err_fit) < np.log(1.5)  # typically within x1.5 of the true optimum lr


def test_no_bowl_falls_back_to_the_best_trial() -> None:
    space = {"lr_min": 1e-3, "lr_max": 1e-1, "batch_min": 4, "batch_max": 4}
    trials = [  # loss falls monotonically with lr: the optimum lies beyond the range
        {"lr": lr, "batch_size": 4, "loss": 3 + 0.1 * np.log(0.1 / lr), "n_params": 1, "flops": 1}
        for lr in np.geomspace(1e-3, 1e-1, 8)
    ]
    o = optimum_of({"space": space, "trials": trials})
    assert o is not None and o["method"] == "best trial"
    assert o["lr"] == o["best_lr"] == pytest.approx(1e-1)
    assert any("high end" in e for e in o["edges"])


def test_batch_one_at_the_edge_advises_a_larger_budget_not_a_smaller_batch() -> None:
    space = {"lr_min": 1e-3, "lr_max": 1e-1, "batch_min": 1, "batch_max": 32}
    trials = [
        {"lr": 1e-2, "batch_size": 1, "loss": 2.0, "n_params": 1, "flops": 1.0},
        {"lr": 1e-2, "batch_size": 4, "loss": 2.1, "n_params": 1, "flops": 1.0},
    ]
    o = optimum_of({"space": space, "trials": trials})
    assert o is not None
    (edge,) = o["edges"]
    assert "smallest possible" in edge and "budget.tokens" in edge and "batch_min" not in edge


def _synthetic_optimum(n: float, d: float, batch: float, lr: float) -> dict:
    trial = {"lr": lr, "batch_size": batch, "loss": 2.0, "n_params": int(n), "flops": 6 * n * d}
    out = optimum_of(
        {"study": f"s{n:g}-{d:g}", "n_params_target": n, "space": SPACE, "trials": [trial]}
    )
    assert out is not None
    return out


def test_batch_in_tokens_and_lr_with_a_batch_term_are_recovered() -> None:
    """Sizes x horizons: batch*(D) = 0.01 D^0.5 whatever N, lr* = 0.5 N^-0.4 B^0.5."""
    optima = []
    for n in (3e3, 1e4, 3e4):
        for d in (4e5, 4e6, 1.6e7):
            b = 0.01 * d**0.5
            optima.append(_synthetic_optimum(n, d, b, 0.5 * n**-0.4 * b**0.5))
    rules = fit_rules(optima, source="t", batch_of="tokens")
    assert rules["batch_size"]["of"] == "tokens"
    assert rules["batch_size"]["k"] == pytest.approx(0.01, rel=1e-6)
    assert rules["batch_size"]["p"] == pytest.approx(0.5, rel=1e-6)
    assert rules["lr"]["delta_fitted"]
    assert rules["lr"]["gamma"] == pytest.approx(0.4, rel=1e-6)
    assert rules["lr"]["delta"] == pytest.approx(0.5, rel=1e-6)
    # the same optima by compute: one C holds several batches, so the fit is only approximate
    by_c = fit_rules(optima, source="t")
    assert by_c["batch_size"]["of"] == "compute"
    assert abs(by_c["batch_size"]["p"] - 0.5) > 0.05


def test_auto_uses_the_runs_tokens_and_moves_lr_with_the_batch(tmp_path: Path) -> None:
    rules = {
        "lr": {"c": 0.5, "gamma": 0.4, "delta": 0.5},
        "batch_size": {"of": "tokens", "k": 0.01, "p": 0.5, "min": 1, "max": 1024},
    }
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    auto = OptimConfig(lr="auto", batch_size="auto", rules=str(path))
    # budget.flops=1.2e12 at N=2e4: D = C / 6N = 1e7 tokens -> batch 0.01 * 1e7^0.5 = 31.6 -> 32
    lr, bs = resolve_hparams(auto, n_params=20_000, budget=BudgetConfig(flops=1.2e12))
    assert bs == 32
    assert lr == pytest.approx(0.5 * 20_000**-0.4 * 32**0.5, rel=1e-12)
    assert resolve_hparams(auto, n_params=20_000, budget=BudgetConfig(tokens=1e7)) == (lr, bs)
    # a set batch keeps lr=auto on the rule at that batch
    lr8, bs8 = resolve_hparams(
        OptimConfig(lr="auto", batch_size=8, rules=str(path)),
        n_params=20_000,
        budget=BudgetConfig(tokens=1e7),
    )
    assert bs8 == 8 and lr8 == pytest.approx(lr * (8 / 32) ** 0.5, rel=1e-12)


def test_no_batch_term_when_the_optima_share_one_batch() -> None:
    optima = [_synthetic_optimum(n, 5e5, 1, 0.5 * n**-0.4) for n in (3e3, 1e4, 3e4, 1e5)]
    rules = fit_rules(optima, source="t", batch_of="tokens")
    assert not rules["lr"]["delta_fitted"] and rules["lr"]["delta"] == 0.0
    assert rules["lr"]["gamma"] == pytest.approx(0.4, rel=1e-6)
    assert rules["batch_size"]["k"] == pytest.approx(1.0) and rules["batch_size"]["p"] == 0.0
    assert "no batch term" in format_rules(rules)


def test_an_unknown_batch_variable_in_a_rules_file_names_optim_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    rules = {"lr": {"c": 0.5, "gamma": 0.4}, "batch_size": {"of": "steps", "k": 1, "p": 0}}
    path.write_text(json.dumps(rules))
    with pytest.raises(UserError, match=r"optim\.rules: .*batch_size\.of"):
        load_rules(str(path))


def test_a_vertex_predicted_well_above_the_best_trial_falls_back_to_it() -> None:
    """One trial far below a smooth bowl (as N=32,768 at 4e6 tokens: vertex 2.028 vs best 1.938):
    the quadratic cannot pass near it, so its vertex is no estimate of the optimum."""
    space = {"lr_min": 1e-3, "lr_max": 1e-1, "batch_min": 4, "batch_max": 4}
    lrs = np.geomspace(2e-3, 5e-2, 7)
    trials = [
        {"lr": lr, "batch_size": 4, "loss": 2.5 + 0.02 * np.log(lr / 0.01) ** 2, "n_params": 1}
        for lr in lrs
    ]
    trials.append({"lr": 8e-3, "batch_size": 4, "loss": 2.42, "n_params": 1})
    for t in trials:
        t["flops"] = 1.0
    assert quadratic_optimum(trials) is None
    o = optimum_of({"space": space, "trials": trials})
    assert o is not None and o["method"] == "best trial" and o["lr"] == 8e-3


def test_refitting_the_rules_file_in_place_gives_auto_runs_new_ids(tmp_path: Path) -> None:
    """A run id names what trains: with lr=auto the rules' constants, not the file's path (a
    rerun after `fit` rewrote the file used to skip runs trained with the old rules)."""
    path = tmp_path / "hparam_rules.json"
    rules = {"lr": {"c": 0.5, "gamma": 0.4}, "batch_size": {"k": 4, "p": 0.0}}
    path.write_text(json.dumps(rules))
    cfg = RunConfig(
        optim=OptimConfig(lr="auto", batch_size="auto", rules=str(path)),
        budget=BudgetConfig(tokens=1e6),
    )
    before = run_id_for(cfg)
    assert run_id_for(cfg) == before
    path.write_text(json.dumps({**rules, "source": "refit", "warnings": []}))
    assert run_id_for(cfg) == before  # what auto does is unchanged
    rules["lr"]["c"] = 0.6
    path.write_text(json.dumps(rules))
    assert run_id_for(cfg) != before
    fixed = RunConfig(optim=OptimConfig(lr=1e-3, rules=str(path)), budget=BudgetConfig(tokens=1e6))
    assert "auto_rules" not in semantic_config(fixed)
