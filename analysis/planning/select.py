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

Where a time allowance binds as well, the runs' seconds on the trainer's workers (seconds.py)
must fit it too: a wall time (a loop on a fixed clock, `--max-wall-seconds`: the runs scheduled on
the workers) or run-seconds (`--max-seconds`: each run's seconds summed, as GPU-hours are), or
both. An item's cost is the largest of its shares of the allowances: per FLOP where FLOPs bind,
per second where time does. Several resources, one ratio: the usual greedy rule for a knapsack of
several constraints (Senju & Toyoda 1968's effective gradient, with the largest share in place of
their weighted sum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .seconds import RunSeconds
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
    group: str = ""  # items of one group are alternatives (a slice whole or in part): one at most

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


@dataclass(frozen=True)
class _Limits:
    """What an item may use: the FLOP allowance, the run count and, where `seconds` is given,
    the wall time of the whole wave on the trainer's workers and the runs' seconds summed."""

    allowance: float
    max_runs: float
    seconds: RunSeconds | None
    max_wall_s: float
    max_run_s: float = math.inf

    def share(self, item: Item) -> float:
        """The part of the binding allowance an item uses: its FLOPs' share of the FLOP
        allowance, its run-seconds' share of the workers' wall time, or of the run-seconds
        allowance, the largest."""
        share = item.cost / self.allowance
        if self.seconds is not None:
            run_s = sum(self.seconds.runs(item.n_params, item.n_tokens))
            share = max(share, run_s / (self.max_wall_s * self.seconds.workers),
                        run_s / self.max_run_s)  # fmt: skip
        return share


@dataclass
class _Cart:
    """Items chosen so far and what is left."""

    state: TargetState
    items: list[Item]
    after: list[float]  # sigma^2 now, then after each item
    flops_left: float
    runs_left: float
    run_s: list[float]  # the chosen runs' seconds, in order

    def fits(self, item: Item, lim: _Limits) -> bool:
        if item.cost > self.flops_left or len(item.n_params) > self.runs_left:
            return False
        if item.group and any(i.group == item.group for i in self.items):
            return False
        if lim.seconds is None:
            return True
        more = lim.seconds.runs(item.n_params, item.n_tokens)
        if sum(self.run_s) + sum(more) > lim.max_run_s:
            return False
        return (not math.isfinite(lim.max_wall_s)
                or lim.seconds.wall([*self.run_s, *more]) <= lim.max_wall_s)  # fmt: skip

    def add(self, item: Item, new: TargetState, s: float, lim: _Limits) -> None:
        self.state = new
        self.items.append(item)
        self.after.append(s)
        self.flops_left -= item.cost
        self.runs_left -= len(item.n_params)
        if lim.seconds is not None:
            self.run_s += lim.seconds.runs(item.n_params, item.n_tokens)

    def copy(self) -> _Cart:
        return _Cart(self.state, list(self.items), list(self.after), self.flops_left,
                     self.runs_left, list(self.run_s))  # fmt: skip


def _greedy(cart: _Cart, pool: list[Item], lim: _Limits, floor: float, cost_exp: float) -> None:
    """Add the best item per unit of cost until none affordable helps."""
    while pool:
        current = cart.after[-1]
        best, best_key, best_state, best_s = None, 0.0, cart.state, current
        for item in pool:
            if not cart.fits(item, lim):
                continue
            new = _add(cart.state, item)
            s = sigma2(new)
            if current - s <= floor:
                continue
            key = (current - s) / lim.share(item) ** cost_exp
            if key > best_key:
                best, best_key, best_state, best_s = item, key, new, s
        if best is None:
            break
        pool.remove(best)
        cart.add(best, best_state, best_s, lim)


def choose(
    state: TargetState,
    items: list[Item],
    allowance: float,
    *,
    max_runs: int | None = None,
    min_gain: float = MIN_GAIN,
    cost_exp: float = COST_EXP,
    n_starts: int = N_STARTS,
    seconds: RunSeconds | None = None,
    max_wall_s: float = math.inf,
    max_run_s: float = math.inf,
) -> Choice:
    """The items to buy with `allowance` FLOPs (module docstring). cost_exp: the criterion divides
    the gain by cost**cost_exp (1: per FLOP; Li et al. 2026 use 0.4; `COST_EXP` by default).
    seconds, max_wall_s: what each run takes on the trainer's workers (seconds.py) and the wall
    time the wave may take, and max_run_s the runs' seconds summed; then the chosen runs must
    fit each given, and an item's cost is the largest of its shares of the allowances (the share
    of the FLOPs alone where time does not bind, which ranks items as per FLOP)."""
    s_now = sigma2(state)
    floor = min_gain * s_now
    lim = _Limits(float(allowance), math.inf if max_runs is None else float(max_runs), seconds,
                  float(max_wall_s), float(max_run_s))  # fmt: skip
    cart = _Cart(state, [], [s_now], lim.allowance, lim.max_runs, [])
    for item in items:  # required items first, in their order, while they fit
        if item.required and cart.fits(item, lim):
            new = _add(cart.state, item)
            cart.add(item, new, sigma2(new), lim)
    optional = [i for i in items if not i.required]
    alone = sorted(
        (cart.after[-1] - sigma2(_add(cart.state, i)), j) for j, i in enumerate(optional)
        if cart.fits(i, lim)
    )[::-1]  # fmt: skip
    starts: list[int | None] = [None] + [j for g, j in alone[:n_starts] if g > floor]
    best: Choice | None = None
    for start in starts:
        c = cart.copy()
        pool = list(optional)
        if start is not None:
            item = pool.pop(start)
            new = _add(c.state, item)
            c.add(item, new, sigma2(new), lim)
        _greedy(c, pool, lim, floor, cost_exp)
        cand = Choice(tuple(c.items), lim.allowance - c.flops_left, s_now, tuple(c.after[1:]))
        if best is None or (cand.final, cand.spent) < (best.final, best.spent):
            best = cand
    assert best is not None
    return best


def gains(choice: Choice) -> np.ndarray:
    """Each chosen item's reduction of sigma^2, in the order chosen."""
    s = np.array([choice.sigma2_before, *choice.sigma2_after])
    return -np.diff(s)
