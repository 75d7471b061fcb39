"""What should temper trust in a report's headline prediction, said under it: an allocation no
published law gives, and approaches that disagree on N*'s exponent beyond their intervals."""

from __future__ import annotations

import math

from ..result_types import Report

__all__ = ["TOKENS_PER_PARAM_PLAUSIBLE", "headline_warnings"]


# published compute-optimal ratios run from ~1 to ~100 tokens per parameter; this project's tiny
# models reach thousands (the demo: ~2,000-2,900 at 1e13 FLOPs), so 10,000 is the upper flag
TOKENS_PER_PARAM_PLAUSIBLE = (1.0, 10_000.0)


def headline_warnings(rep: Report) -> list[str]:
    """What should temper trust in the headline prediction: a compute-optimal tokens-per-parameter
    ratio outside what any published law gives, and approaches 3 and 2 (and 1) disagreeing on
    N*'s exponent beyond their intervals."""
    p, out = rep.prediction, []
    assert p is not None
    lo, hi = TOKENS_PER_PARAM_PLAUSIBLE
    m = p.get("tokens_per_param", math.nan)
    if math.isfinite(m) and not lo <= m <= hi:
        out.append(
            f"implausible allocation: {m:.3g} tokens per parameter at the optimum, outside the "
            f"~{lo:g} to ~{hi:,.0f} that published laws (Chinchilla ~20) and this project's tiny "
            "models (hundreds to a few thousand) give: check the N convention "
            "(--n-convention) and whether the grid brackets each budget's minimum"
        )
    exps = {}
    for law, name in (("chinchilla", "approach 3"), ("isoflop", "approach 2"),
                      ("envelope", "approach 1")):  # fmt: skip
        f = rep.fits.get(law)
        if f is not None and "a" in f.params and math.isfinite(f.params["a"]):
            iv = f.intervals.get("a", (f.params["a"], f.params["a"]))
            exps[name] = (f.params["a"], iv)
    names = sorted(exps)
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            (ax, (xlo, xhi)), (ay, (ylo, yhi)) = exps[x], exps[y]
            if xhi < ylo or yhi < xlo:  # intervals (a point where none) do not overlap
                out.append(
                    f"the approaches disagree on N*'s exponent: {x} a = {ax:.3g} "
                    f"[{xlo:.3g}, {xhi:.3g}], {y} a = {ay:.3g} [{ylo:.3g}, {yhi:.3g}]; the "
                    "headline's N* rests on one of them (report.md has each)"
                )
    return out
