"""The runs a finished sweep could add, and why (analysis/planning/select.py chooses among them).

Three reasons, from what the analysis already says about a sweep:
- repair (required): a budget whose lowest loss sits at the smallest or largest size has no
  bracketed minimum (approach 2 cannot place N* there, and the law's N* is an extrapolation):
  two sizes beyond that edge, at the slice's own size spacing. A budget whose minimum is
  bracketed by fewer than `MIN_SLICE` runs: sizes beyond its ends until it has them;
- seed (required): where no configuration was repeated with another seed, the noise floor is
  unmeasured (an assumed 1% decides whether the frontier bends, seed_noise.py): two more seeds of
  the cheapest run nearest a minimum;
- extend: the next budgets up the ladder toward the target (the sweep's own budget ratio, one,
  two and three steps up), each a slice of `MIN_SLICE` sizes centred on the law's N*(C) and
  spread to bracket its bootstrap interval (at least a factor of 2 each side). Where a time
  allowance binds (propose's `seconds`), each slice's three central sizes too (on a CPU the
  smallest model at a budget trains longest), one of a slice's variants at most. Where even
  those fit no time left, the last resort (propose.py): smaller parts, and a nearer budget.
Repairs and seeds are required because the variance criterion assumes the law, which they check;
extensions are ranked by it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..prediction.forms import law_optimal, thetas_optimal_n
from ..prediction.ladder import RUNG_TOLERANCE, rungs
from ..result_types import FitResult
from .select import Item

__all__ = ["MIN_SLICE", "budget_slices", "candidate_items", "extend_budgets"]

MIN_SLICE = 5  # runs a budget's minimum needs (a parabola in log N through 3, checked by 2 more)
MAX_SPAN = 64.0  # an extension slice spans at most this factor in N
# where a time allowance binds: a slice's three central sizes too (a part around N* both ways)
TIMED_PARTS = (slice(1, 4),)
# propose's last resort, where the FLOPs buy a run but no item fits the time left: smaller parts
# of each slice (the centre with the size above, with the size below, alone), and slices at half
# a ladder step above the largest budget (about half the cost). Without them the loop stopped
# with its time unspent; benchmarks/loop_parts.py chose both, by a rule written before its 24
# worlds (none of them the demo's) were run: docs/planning.md
LAST_RESORT_PARTS: tuple[slice, ...] = (slice(2, 4), slice(1, 3), slice(2, 3))
LAST_RESORT_STEPS: tuple[float, ...] = (0.5,)


def budget_slices(data: pd.DataFrame, min_sizes: int = 3) -> dict[float, pd.DataFrame]:
    """The IsoFLOP slices of a table: runs grouped by their budget (`flops_budget` where given,
    else C within 1%), each with `min_sizes` or more sizes; {} for other designs."""
    if "flops_budget" in data.columns and np.isfinite(data["flops_budget"].astype(float)).any():
        key = data["flops_budget"].astype(float).to_numpy()
    else:
        key = rungs(data["flops"].astype(float))
    out = {}
    for c in np.unique(key[np.isfinite(key)]):
        s = data[key == c]
        if np.unique(rungs(s["n_params"])).size >= min_sizes:
            out[float(c)] = s.sort_values("n_params")
    return out


def _present(sizes: np.ndarray, n: float) -> bool:
    return bool(np.any(np.abs(sizes / n - 1) <= RUNG_TOLERANCE))


def _run(c: float, n: float, kind: str, why: str, required: bool, seeds=()) -> Item:
    return Item((n,), (c / (6 * n),), kind, why, required, tuple(seeds))


def _repairs(c: float, s: pd.DataFrame, min_n: float,
             floor: str = "it is the smallest model the sizing policy builds",
             ) -> tuple[list[Item], list[str]]:  # fmt: skip
    per = s.groupby(rungs(s["n_params"]))["loss"].min()
    sizes = per.index.to_numpy(float)
    step = float(np.exp(np.median(np.diff(np.log(sizes)))))
    step = max(step, 1.3)
    i = int(np.argmin(per.to_numpy(float)))
    out: list[Item] = []
    if i in (0, sizes.size - 1):
        side = "smallest" if i == 0 else "largest"
        why = (
            f"repair: at C={c:.3g} the lowest loss is at the {side} size "
            f"(N={sizes[i]:.3g}), so the minimum is not bracketed; a size beyond it"
        )
        for j in (1, 2):
            n = sizes[0] / step**j if i == 0 else sizes[-1] * step**j
            if i == 0 and n < min_n:  # as small as a model can be (or as long as a run may be)
                n = min_n
            if not out or abs(out[-1].n_params[0] / n - 1) > RUNG_TOLERANCE:
                out.append(_run(c, n, "repair", why, True))
        out = [o for o in out if o.n_params[0] < sizes[0] * (1 - RUNG_TOLERANCE) or i != 0]
        if not out:
            why_not = (f"the minimum at C={c:.3g} is at its smallest size (N={sizes[0]:.3g}), and "
                       f"{floor}: it cannot be bracketed from below")  # fmt: skip
            return [], [why_not]
        return out, []
    missing = MIN_SLICE - sizes.size
    lo, hi = sizes[0], sizes[-1]
    left_first = i < sizes.size / 2
    why = (f"repair: the minimum at C={c:.3g} rests on {sizes.size} sizes; a budget's "
           f"minimum needs {MIN_SLICE}")  # fmt: skip
    for j in range(max(missing, 0)):
        if (j % 2 == 0) == left_first and lo / step >= min_n:
            lo = lo / step
            n = lo
        else:
            hi = hi * step
            n = hi
        out.append(_run(c, n, "repair", why, True))
    return out, []


def _ladder_ratio(budgets: np.ndarray) -> float:
    """The sweep's median budget ratio (3 where it has one budget), kept within [1.5, 10]."""
    ratio = float(np.exp(np.median(np.diff(np.log(budgets))))) if budgets.size > 1 else 3.0
    return min(max(ratio, 1.5), 10.0)


def nearer_budgets(budgets: list[float], target: float) -> list[float]:
    """The last resort's budgets: LAST_RESORT_STEPS of one ladder step above the largest, those
    below the target."""
    b = np.unique(np.asarray(budgets, float))
    c = [float(b[-1] * _ladder_ratio(b) ** f) for f in LAST_RESORT_STEPS]
    return [v for v in c if v < target]


def extend_budgets(budgets: list[float], target: float, n_steps: int = 3) -> list[float]:
    """The next `n_steps` budgets up the ladder: the sweep's median budget ratio (3 where it has
    one budget), kept below the target (the target itself where one step would pass it)."""
    b = np.unique(np.asarray(budgets, float))
    ratio = _ladder_ratio(b)
    out: list[float] = []
    for j in range(1, n_steps + 1):
        c = float(b[-1] * ratio**j)
        if c >= target:
            if not out:
                out.append(float(target))
            break
        out.append(c)
    return out


def _optimal_sizes(fit: FitResult, thetas: np.ndarray, c: float) -> tuple[float, float, float]:
    """N*(C) of the fit and the 2.5% and 97.5% points of its bootstrap refits."""
    center = float(law_optimal(fit, c).n_params)
    n = thetas_optimal_n(fit, thetas, c)
    n = n[np.isfinite(n) & (n > 0)]
    if n.size < 10:
        return center, center, center
    lo, hi = np.percentile(n, [2.5, 97.5])
    return center, float(lo), float(hi)


def _extensions(c: float, fit: FitResult, thetas: np.ndarray, min_n: float,
                parts: tuple[slice, ...] = (),
                done: np.ndarray | None = None) -> list[Item]:  # fmt: skip
    """The slice at budget c, and `parts` of it (TIMED_PARTS: its three central sizes, without
    the ends: the smallest trains longest at one C where time is priced). A part of two sizes or
    more is repaired toward `MIN_SLICE` by later waves (a budget's slice from two sizes,
    candidate_items); `done`: sizes already trained at c (a lone run bought as a last resort),
    left out of every variant, so that later waves offer the rest. One variant at most is
    bought (Item.group)."""
    center, lo, hi = _optimal_sizes(fit, thetas, c)
    if not (math.isfinite(center) and center > 0):
        return []
    lo, hi = min(lo, center / 2), max(hi, center * 2)
    if hi / lo > MAX_SPAN:  # keep the slice around the centre
        f = math.sqrt(MAX_SPAN)
        lo, hi = center / f, center * f
    lo = max(lo, min_n)
    hi = max(hi, lo * 4)  # a slice pressed against the smallest model still spans a factor 4
    sizes = np.geomspace(lo, hi, MIN_SLICE)
    half_step = math.log(hi / lo) / (MIN_SLICE - 1) / 2
    trained = np.zeros(0) if done is None else np.log(np.asarray(done, float))
    why = (f"extend: a budget of C={c:.3g} up the ladder toward the target; sizes around the "
           f"law's N*={center:.3g}, spanning its 95% bootstrap range")  # fmt: skip
    out: list[Item] = []
    for p in (slice(0, MIN_SLICE), *parts):
        n = np.array([v for v in sizes[p]  # a size within half a step of a trained one is done
                      if not np.any(np.abs(trained - math.log(v)) < half_step)])  # fmt: skip
        if not n.size or any(i.n_params == tuple(float(v) for v in n) for i in out):
            continue
        part = "" if n.size == MIN_SLICE else (
            f"; {n.size} of its {MIN_SLICE} sizes now (the smallest train longest), the rest in "
            "later waves")  # fmt: skip
        out.append(Item(tuple(float(v) for v in n), tuple(float(c / (6 * v)) for v in n),
                        "extend", why + part, group=f"slice {c:.6g}"))  # fmt: skip
    return out


def _seeds(data: pd.DataFrame, slices: dict[float, pd.DataFrame],
           max_d: float = math.inf) -> list[Item]:  # fmt: skip
    """Two more seeds of the cheapest run at a minimum (of the cheapest run where the table has
    no slice), among the runs within max_d tokens; none where no run is."""
    within = {c: s[s["n_tokens"] <= max_d] for c, s in slices.items()}
    within = {c: s for c, s in within.items() if len(s)}
    if within:
        s = within[min(within)]
        best = s.loc[s["loss"].idxmin()]
    elif slices or not (data["n_tokens"] <= max_d).any():
        return []
    else:
        d = data[data["n_tokens"] <= max_d]
        best = d.loc[(d["n_params"] * d["n_tokens"]).idxmin()]
    seeds = pd.to_numeric(data["seed"], errors="coerce") if "seed" in data.columns else None
    used = {int(v) for v in seeds.dropna()} if seeds is not None else set()
    used = used or {0}
    nxt = [v for v in range(0, max(used) + 4) if v not in used][:2]
    why = ("seed: no configuration was run with two seeds, so the noise floor is unmeasured; "
           "the cheapest run at a minimum again with other seeds")  # fmt: skip
    return [Item((float(best["n_params"]),) * 2, (float(best["n_tokens"]),) * 2, "seed", why,
                 True, tuple(nxt))]  # fmt: skip


def _floor(c: float, min_n: float, max_d: float) -> tuple[float, str]:
    """The smallest size worth proposing at budget c, and what sets it: the sizing policy's
    smallest model, or the size whose run at c sees max_d tokens (D = C / 6N: a smaller model
    would train longer)."""
    by_data = c / (6 * max_d) if math.isfinite(max_d) and max_d > 0 else 0.0
    if by_data > min_n:
        return by_data, (f"no size below N={by_data:.3g} keeps its run within --max-tokens "
                         f"{max_d:.3g} (sweeps.next sets it to 4 epochs of the "
                         "corpus)")  # fmt: skip
    return min_n, "it is the smallest model the sizing policy builds"


def candidate_items(
    data: pd.DataFrame, rec, target: float, *, noise_measured: bool, min_n: float = 0.0,
    max_d: float = math.inf, partial: bool = False, last_resort: bool = False,
) -> tuple[list[Item], list[str]]:
    """Every item a proposal may include (module docstring), required ones first (seeds, then
    the largest budget's repairs), and what cannot be repaired. min_n: the smallest model size
    the sweep can build (no size below it is proposed). max_d: the most tokens a run may see
    (sweeps.next passes 4 epochs of the corpus, beyond which repeated tokens stop counting as
    data: Muennighoff et al. 2023), so at budget C no size below C / (6 max_d) is proposed.
    partial: offer parts of each extension slice too (where a time allowance binds, a slice's
    smallest sizes may not fit); last_resort: also LAST_RESORT_PARTS, and slices at
    LAST_RESORT_STEPS (where nothing else fits the time)."""
    assert rec.fit is not None and rec.thetas is not None
    # a sweep's own budgets (`flops_budget`, from its configs) count from 2 sizes: a slice a time
    # allowance cut to two is repaired toward MIN_SLICE, not proposed whole again
    planned = "flops_budget" in data.columns and bool(
        np.isfinite(data["flops_budget"].astype(float)).any())  # fmt: skip
    slices = budget_slices(data, min_sizes=2 if planned else 3)
    items: list[Item] = []
    notes: list[str] = []
    if not noise_measured:
        items += _seeds(data, slices, max_d)
    for c in sorted(slices, reverse=True):  # the largest budget's repairs first
        present = slices[c]["n_params"].to_numpy(float)
        fixes, why_not = _repairs(c, slices[c], *_floor(c, min_n, max_d))
        items += [i for i in fixes if not _present(present, i.n_params[0])]
        notes += why_not
    budgets = sorted(slices) if slices else sorted(set(rungs(data["flops"].astype(float))))
    parts = (*TIMED_PARTS, *LAST_RESORT_PARTS) if last_resort else TIMED_PARTS if partial else ()
    ladder = (nearer_budgets(budgets, target) if last_resort else []) + extend_budgets(
        budgets, target)  # fmt: skip
    key = (data["flops"].astype(float).to_numpy() if "flops" in data.columns else
           6 * data["n_params"].to_numpy(float) * data["n_tokens"].to_numpy(float))  # fmt: skip
    if planned:  # a run's own budget where its config gave one
        fb = data["flops_budget"].astype(float).to_numpy()
        key = np.where(np.isfinite(fb), fb, key)
    for c in ladder:
        done = data["n_params"].to_numpy(float)[np.abs(key / c - 1) <= RUNG_TOLERANCE]
        items += _extensions(c, rec.fit, rec.thetas, _floor(c, min_n, max_d)[0], parts, done)
    return items, notes
