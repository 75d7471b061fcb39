"""The short text `python -m analysis` prints for a report (analysis/report/build.py builds it): the
primary law with intervals, the prediction at the target and any flag that its law is not
determined by the runs, back-tests beside the seed noise floor, the verify result, where to look.
"""

from __future__ import annotations

import math

from ..result_types import Report
from .build import PREDICTION_SOURCES
from .files import fmt, interval, noise_floor, pct

__all__ = ["summarize"]


def summarize(rep: Report) -> str:
    """The short text the CLI prints (< 30 lines): the primary law with intervals, the prediction
    at the target, back-tests beside the seed noise floor, the verify result, where to look."""
    head = f"{rep.name}" + (f" [{rep.arch}]" if rep.arch else "")
    excl = ", ".join(f"{k} {v}" for k, v in rep.excluded.items()) or "none"
    out = [f"{head}: {rep.n_runs} runs, {rep.n_fitted} fitted (excluded: {excl})"]

    def iv(f, k):
        return f"{fmt(f.params[k])} {interval(f.intervals, k)}"

    if "chinchilla" in rep.fits:
        f = rep.fits["chinchilla"]
        out.append("approach 3, L = E + A/N^alpha + B/D^beta (95% bootstrap intervals):")
        out.append("  " + ", ".join(f"{k} {iv(f, k)}" for k in ("a", "b")))
        out.append("  " + ", ".join(f"{k} {iv(f, k)}" for k in ("alpha", "beta", "E")))
    if "isoflop" in rep.fits:
        f = rep.fits["isoflop"]
        out.append(
            f"approach 2 (IsoFLOP): a {iv(f, 'a')}, b {iv(f, 'b')}; "
            f"L*(C) = {fmt(f.params['E'])} + {fmt(f.params['k_L'])} C^-{fmt(f.params['gamma'])}"
        )
    p = rep.prediction
    if p is not None:

        def piv(q, k):
            return f"{fmt(q[k])} {interval(q['intervals'], k)}"

        out.append(f"prediction at C = {rep.target_flops:.3g} FLOPs ({p['convention']}):")
        if "calibrated" in p:  # first and alone: the prediction to act on
            from .calibrated_prediction import calibrated_summary

            out.append(calibrated_summary(p["calibrated"]))
        out.append(f"  secondary, from {p['source']} ({p['reason']}); its 95% bootstrap "
                   "intervals cover noise and estimation, not extrapolation error:")  # fmt: skip
        out.append(f"  N* {piv(p, 'n_params')}, D* {piv(p, 'n_tokens')}")
        out.append(f"  tokens/param {piv(p, 'tokens_per_param')}, loss {piv(p, 'loss')}")
        out += [f"warning: {w}" for w in p.get("warnings", [])]
        law = {v: k for k, v in PREDICTION_SOURCES.items()}.get(p["source"], "")
        fit = rep.fits.get(law)  # its own flags (identifiability.py), under the headline
        out += [f"warning: {w}" for w in (fit.warnings if fit else ()) if w.startswith(law + ":")]
        for src, q in rep.predictions.items():
            if src != p["source"]:
                out.append(
                    f"  ({src}: N* {fmt(q['n_params'])}, D* {fmt(q['n_tokens'])}, "
                    f"loss {fmt(q['loss'])}; no interval)"
                )
    out.append("back-tests (refit without the held-out runs; |relative error| of loss):")
    for name, b in rep.backtests.items():
        if b is None:
            continue
        extra = ""
        if math.isfinite(b.loss_star_rel_error):
            extra = f"; optimal loss {b.loss_star_rel_error:+.2%}, N* {b.n_star_rel_error:+.1%}"
        if math.isfinite(b.coverage_95):
            extra = (f"; inside its 80% / 95% intervals: {b.coverage_80:.0%} / "
                     f"{b.coverage_95:.0%}, median width {b.width_80:.1%} / {b.width_95:.1%}, "
                     f"interval score {b.score_80:.1%} / {b.score_95:.1%}")  # fmt: skip
        label = {"chinchilla": "approach 3", "isoflop": "approach 2", "recommended": b.law}.get(
            name, name
        )
        out.append(
            f"  {label}, held out {b.held_out}: mean {pct(b.mean_abs_rel_error)}, "
            f"max {pct(b.max_abs_rel_error)}{extra}"
        )
    out += [f"warning: {d}" for d in rep.diagnostics]
    if rep.seed_noise:
        g = rep.seed_noise[0]
        out.append(
            f"seed noise floor: rel sd {pct(noise_floor(rep))} (N={fmt(g['n_params'])}, "
            f"{len(g['losses'])} seeds: "
            + ", ".join(f"{x:.4f}" for x in g["losses"])
            + f"; range {pct(g['rel_range'])})"
        )
    else:
        out.append("seed noise floor: not measured (no config repeated with another seed)")
    if rep.verify is not None:
        v = rep.verify
        out.append(
            f"predict, then verify at C = {v['target_flops']:.3g}: predicted {v['predicted']:.4f}, "
            f"achieved {v['achieved']:.4f} -> error {v['rel_error']:+.2%}"
        )
    for k, why in list(rep.skipped.items())[:4]:  # the reason's first clause; all in report.md
        why = why.removeprefix(f"{k}: ").split("; ")[0]
        out.append(f"skipped {k}: {why[:150]}")
    out.append(f"report: {rep.out_dir / 'report.md'}")
    return "\n".join(out)
