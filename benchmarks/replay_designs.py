"""The designs that `benchmarks/adaptive_replay.py` compares (its docstring says what each does and
why): a pool of runnable experiments, Li et al.'s initial set, our planner in waves, random,
cheapest-first, Li et al.'s D- and V-optimal greedy, the fixed IsoFLOP grid, and the score of a
chosen set at the targets. Shared with `benchmarks/planner_choice.py`, which chooses the
planner's settings on worlds of its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError
from analysis.laws.chinchilla import chinchilla_loss
from analysis.laws.varpro import fit_varpro
from analysis.planning.select import COST_EXP, MIN_GAIN, Item, choose
from analysis.planning.value import log_loss_grad, target_state
from analysis.prediction.ladder import CANDIDATES
from analysis.prediction.recommend import canonical, recommend

INIT_SHARE = 0.02
MAX_WAVES = 3
LI_COST_EXP = 0.4  # Li et al.'s score / (c / C_pool)^0.4
LEVEL = 0.95
GRID_SIZES = 5


@dataclass(frozen=True)
class Pool:
    """One replay: candidate runs (observed losses), targets with what they are scored against,
    and the compute budget (FLOPs, C = 6 N D)."""

    name: str
    n_params: np.ndarray
    n_tokens: np.ndarray
    loss: np.ndarray
    targets: np.ndarray  # (T, 2) rows of N, D
    target_loss: np.ndarray  # the errors' reference (held-out runs; the noiseless truth)
    target_observed: np.ndarray  # what the interval should cover (held-out runs; noisy draws)
    share: float  # the budget as a share of the pool's compute

    @property
    def cost(self) -> np.ndarray:
        return 6 * self.n_params * self.n_tokens

    @property
    def budget(self) -> float:
        return self.share * float(self.cost.sum())

    def table(self, idx) -> pd.DataFrame:
        i = np.asarray(sorted(idx), int)
        return pd.DataFrame({"n_params": self.n_params[i], "n_tokens": self.n_tokens[i],
                             "loss": self.loss[i]})  # fmt: skip


def _by_cost(pool: Pool) -> np.ndarray:
    return np.lexsort((pool.n_params, pool.cost))


def _fits(pool: Pool, idx) -> bool:
    """Whether recommend() can fit these runs: its own checks (`canonical`, a candidate with
    enough runs), without the fits."""
    try:
        data = canonical(pool.table(idx))
    except AnalysisError:
        return False
    return any(c.select(data) is not None for c in CANDIDATES)


def initial_set(pool: Pool) -> list[int]:
    """The cheapest runs whose total is at most INIT_SHARE of the pool's, extended one cheapest
    run at a time until recommend() can fit them (module docstring)."""
    order = _by_cost(pool)
    cum = np.cumsum(pool.cost[order])
    k = int(np.sum(cum <= INIT_SHARE * cum[-1]))
    while k < order.size and not _fits(pool, order[:k]):
        k += 1
    return [int(i) for i in order[:k]]


def _affordable(pool: Pool, chosen: list[int], left: float) -> list[int]:
    taken = set(chosen)
    return [i for i in range(pool.cost.size) if i not in taken and pool.cost[i] <= left]


def planned(pool: Pool, init: list[int], *, max_waves: int = MAX_WAVES,
            min_gain: float = MIN_GAIN, cost_exp: float = COST_EXP,
            as_the_loop: bool = False, reach_term: bool = True) -> list[int]:  # fmt: skip
    """Our criterion in waves (adaptive_replay's docstring), with the planner's settings
    (`analysis.planning.select`'s defaults unless given). as_the_loop: the waves as
    `sweeps.adaptive` sizes them instead: each at most half of what is left, the whole of it
    only where half buys nothing, the last wave no exception. reach_term=False: the criterion
    without its extrapolation term (k = 0, so sd_boot^2 + s0^2 alone; criterion_terms.py)."""
    chosen = list(init)
    for wave in range(max_waves):
        left = pool.budget - float(pool.cost[chosen].sum())
        avail = _affordable(pool, chosen, left)
        if not avail:
            break
        rec = recommend(pool.table(chosen))
        state = target_state(rec, pool.targets)
        if not reach_term:
            state = replace(state, k=0.0)
        items = [Item((float(pool.n_params[i]),), (float(pool.n_tokens[i]),), "pool", f"run {i}")
                 for i in avail]  # fmt: skip
        cheapest = min(it.cost for it in items)
        last = wave == max_waves - 1 and not as_the_loop
        allowance = left if last else min(left, max(left / 2, cheapest))
        choice = choose(state, items, allowance, min_gain=min_gain, cost_exp=cost_exp)
        if as_the_loop and not choice.items and allowance < left:
            choice = choose(state, items, left, min_gain=min_gain, cost_exp=cost_exp)
        if not choice.items:
            break
        index = {id(it): i for it, i in zip(items, avail, strict=True)}
        chosen += [index[id(it)] for it in choice.items]
    return chosen


def random_design(pool: Pool, init: list[int], rng: np.random.Generator) -> list[int]:
    chosen = list(init)
    while avail := _affordable(pool, chosen, pool.budget - float(pool.cost[chosen].sum())):
        chosen.append(int(rng.choice(avail)))
    return chosen


def cheapest_first(pool: Pool, init: list[int]) -> list[int]:
    chosen = list(init)
    for i in _by_cost(pool):
        if int(i) not in chosen and pool.cost[chosen].sum() + pool.cost[i] <= pool.budget:
            chosen.append(int(i))
    return chosen


def _light_fit(pool: Pool, idx: list[int], seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """theta, its Gauss-Newton covariance s2 (J' J)^-1 and the residual variance s2 of the light
    refit (J: d log L / d theta at the runs)."""
    i = np.asarray(idx, int)
    n, d, y = pool.n_params[i], pool.n_tokens[i], pool.loss[i]
    fit = fit_varpro(n, d, y)
    p = fit.params
    theta = np.array([p["log_A"], p["log_B"], p["log_E"], p["alpha"], p["beta"]], float)
    resid = np.log(chinchilla_loss(p, n, d) / y)
    s2 = max(float(np.sum(resid**2) / max(resid.size - 5, 1)), 1e-6)
    j = log_loss_grad(theta, n, d)  # (P, 5)
    return theta, s2 * np.linalg.pinv(j.T @ j), s2


def li_greedy(pool: Pool, init: list[int], kind: str, seed: int = 0) -> list[int]:
    """Li et al.'s D- or V-optimal cost-weighted greedy, one run at a time (module docstring)."""
    chosen = list(init)
    c_pool = float(pool.cost.sum())
    while avail := _affordable(pool, chosen, pool.budget - float(pool.cost[chosen].sum())):
        theta, cov, s2 = _light_fit(pool, chosen, seed)
        g = log_loss_grad(theta, pool.n_params[avail], pool.n_tokens[avail])  # (P, 5)
        gsg = np.einsum("pi,ij,pj->p", g, cov, g)
        if kind == "D-opt":
            score = np.log1p(np.maximum(gsg, 0) / s2)
        else:
            h = log_loss_grad(theta, pool.targets[:, 0], pool.targets[:, 1])  # (T, 5)
            score = ((h @ cov @ g.T) ** 2).sum(axis=0) / (s2 + np.maximum(gsg, 0))
        score = score / (pool.cost[avail] / c_pool) ** LI_COST_EXP
        score = np.where(np.isfinite(score), score, -np.inf)
        chosen.append(avail[int(np.argmax(score))])
    return chosen


def grid_design(pool: Pool, flops: float, *, per_budget: int) -> list[int]:
    """The fixed IsoFLOP grid of a synthetic pool (`per_budget` sizes per budget, budget-major):
    budgets from the smallest up, GRID_SIZES middle sizes each, as many budgets as fit in `flops`
    (at least 2)."""
    per = per_budget
    mid = (per - GRID_SIZES) // 2
    out: list[int] = []
    for b in range(pool.cost.size // per):
        slab = [b * per + j for j in range(mid, mid + GRID_SIZES)]
        if b >= 2 and pool.cost[out + slab].sum() > flops * (1 + 1e-9):
            break
        out += slab
    return out


def score(pool: Pool, idx: list[int]) -> dict[str, Any]:
    """recommend() on the chosen runs, scored at the targets."""
    spent = float(pool.cost[idx].sum())
    out: dict[str, Any] = {"n_runs": len(idx), "spent": spent,
                           "spent_share": spent / float(pool.cost.sum())}  # fmt: skip
    try:
        rec = recommend(pool.table(idx))
    except AnalysisError as exc:
        return out | {"error": math.nan, "cover": math.nan, "failed": str(exc)}
    preds = [rec.predict(n, d, level=LEVEL) for n, d in pool.targets]
    loss = np.array([p.loss for p in preds])
    lo, hi = np.array([p.interval for p in preds]).T
    err = loss / pool.target_loss - 1
    inside = (lo <= pool.target_observed) & (pool.target_observed <= hi)
    return out | {"error": float(np.mean(np.abs(err))), "cover": float(np.mean(inside)),
                  "each": err.tolist(), "law": rec.law}  # fmt: skip
