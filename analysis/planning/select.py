"""Choose runs under a compute allowance: the most expected narrowing of the target's interval per
FLOP (analysis/planning/value.py), greedily.

Items are what can be bought: one run, or a bundle (the five sizes of a new IsoFLOP slice, bought
together because a slice's minimum needs them all). Required items (repairs of the sweep and
missing seeds, analysis/planning/candidates.py) are taken first, in order, while they fit. Then,
repeatedly, the affordable item with the largest reduction of sigma^2 per FLOP (strictly, per
FLOP**COST_EXP) is added and the state updated (so a second run where the first already informs the
law is worth less), until nothing affordable helps. Ratio-greedy alone can starve a costly item
that is worth more than every cheap one together (a knapsack's trap), so it is also run from each
of the `N_STARTS` items that help most on their own, and the set with the smallest final sigma^2
wins: partial enumeration, the standard remedy for budgeted submodular maximisation (Khuller, Moss
& Naor 1999; Krause & Guestrin 2005).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .value import TargetState, sigma2, with_runs

__all__ = ["COST_EXP", "N_STARTS", "MIN_GAIN", "Item", "Choice", "choose", "gains"]

N_STARTS = 3
# an item that lowers sigma^2 by less than this share of today's helps no one; and the gain is
# divided by cost**COST_EXP (1: per FLOP; Li et al. 2026 use 0.4). Both chosen by
# `python benchmarks/planner_choice.py` on 24 synthetic worlds of its own (not the replay's
# reported pools or worlds), among 0.01 / 0.003 / 0.001 / 0 and 1 / 0.7 / 0.4, before the replay
# was rerun: docs/planning.md. They were 0.01 and 1.0 (set by hand) until then.
MIN_GAIN = 0.003
COST_EXP = 0.7


@dataclass(frozen=True)
class Item:
    """One purchasable unit: runs at (N, D) pairs, why they are proposed, and their kind."""

    n_params: tuple[float, ...]
    n_tokens: tuple[float, ...]
    kind: str  # repair | extend | seed | pool
    why: str
    required: bool = False
    seeds: tuple[int, ...] = ()  # seed items: the seeds to run (else the sweep's own)

    @property
    def cost(self) -> float:
        """FLOPs, C = 6 N D summed over the item's runs."""
        return float(sum(6 * n * d for n, d in zip(self.n_params, self.n_tokens, strict=True)))


@dataclass(frozen=True)
class Choice:
    """The items chosen (in order), what they cost, and sigma^2 before and after each."""

    items: tuple[Item, ...]
    spent: float
    sigma2_before: float
    sigma2_after: tuple[float, ...]  # after each item, in order

    @property
    def final(self) -> float:
        return self.sigma2_after[-1] if self.sigma2_after else self.sigma2_before


def _add(state: TargetState, item: Item) -> TargetState:
    return with_runs(state, item.n_params, item.n_tokens)


def _greedy(
    state: TargetState,
    pool: list[Item],
    left: float,
    runs_left: float,
    chosen: list[Item],
    after: list[float],
    floor: float,
    cost_exp: float,
) -> float:
    """Add the best item per FLOP until none affordable helps; returns the allowance left."""
    current = after[-1]
    while pool:
        best, best_key, best_state, best_s = None, 0.0, state, current
        for item in pool:
            if item.cost > left or len(item.n_params) > runs_left:
                continue
            new = _add(state, item)
            s = sigma2(new)
            if current - s <= floor:
                continue
            key = (current - s) / item.cost**cost_exp
            if key > best_key:
                best, best_key, best_state, best_s = item, key, new, s
        if best is None:
            break
        pool.remove(best)
        chosen.append(best)
        after.append(best_s)
        state, current = best_state, best_s
        left -= best.cost
        runs_left -= len(best.n_params)
    return left


def choose(
    state: TargetState,
    items: list[Item],
    allowance: float,
    *,
    max_runs: int | None = None,
    min_gain: float = MIN_GAIN,
    cost_exp: float = COST_EXP,
    n_starts: int = N_STARTS,
) -> Choice:
    """The items to buy with `allowance` FLOPs (module docstring). cost_exp: the criterion divides
    the gain by cost**cost_exp (1: per FLOP; Li et al. 2026 use 0.4; `COST_EXP` by default)."""
    s_now = sigma2(state)
    floor = min_gain * s_now
    left = float(allowance)
    runs_left = math.inf if max_runs is None else float(max_runs)
    required: list[Item] = []
    trail = [s_now]  # sigma^2 now, then after each item
    for item in items:  # required items first, in their order, while they fit
        if item.required and item.cost <= left and len(item.n_params) <= runs_left:
            state = _add(state, item)
            required.append(item)
            trail.append(sigma2(state))
            left -= item.cost
            runs_left -= len(item.n_params)
    optional = [i for i in items if not i.required]
    alone = sorted(
        (trail[-1] - sigma2(_add(state, i)), j) for j, i in enumerate(optional)
        if i.cost <= left and len(i.n_params) <= runs_left
    )[::-1]  # fmt: skip
    starts: list[int | None] = [None] + [j for g, j in alone[:n_starts] if g > floor]
    best: Choice | None = None
    for start in starts:
        st, chosen, after, lf, rl = state, list(required), list(trail), left, runs_left
        pool = list(optional)
        if start is not None:
            item = pool.pop(start)
            st = _add(st, item)
            chosen.append(item)
            after.append(sigma2(st))
            lf -= item.cost
            rl -= len(item.n_params)
        lf = _greedy(st, pool, lf, rl, chosen, after, floor, cost_exp)
        cand = Choice(tuple(chosen), float(allowance) - lf, s_now, tuple(after[1:]))
        if best is None or (cand.final, cand.spent) < (best.final, best.spent):
            best = cand
    assert best is not None
    return best


def gains(choice: Choice) -> np.ndarray:
    """Each chosen item's reduction of sigma^2, in the order chosen."""
    s = np.array([choice.sigma2_before, *choice.sigma2_after])
    return -np.diff(s)
