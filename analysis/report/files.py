"""The report's files: runs.csv, fits.json and the Markdown of report.md, plus number formats."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from ..prediction.seed_noise import pooled_rel_sd

if TYPE_CHECKING:
    from ..result_types import Report

__all__ = ["write_report_files", "fmt", "interval", "pct", "noise_floor"]


def fmt(x: float) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.4g}"


def interval(intervals: dict, key: str) -> str:
    """'[lo, hi]', or '(no interval)' where the bootstrap gave none (the warnings say why)."""
    lo, hi = intervals.get(key, (math.nan, math.nan))
    return f"[{fmt(lo)}, {fmt(hi)}]" if math.isfinite(lo) else "(no interval)"


def pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.2%}"


def noise_floor(rep: Report) -> float:
    """The pooled relative seed-to-seed sd (rms over repeated configs), NaN without repeats."""
    return pooled_rel_sd(rep.seed_noise)


def write_report_files(rep: Report, runs, fits: dict[str, Any]) -> None:
    """Write runs.csv, fits.json and report.md into `rep.out_dir`."""
    runs.drop(columns=["config_key"], errors="ignore").to_csv(rep.out_dir / "runs.csv", index=False)
    (rep.out_dir / "fits.json").write_text(json.dumps(fits, indent=2) + "\n")
    excluded = "none"
    if rep.excluded_reasons:
        excluded = "; ".join(
            f"{kind}: " + ", ".join(f"{n} ({why})" for why, n in whys.items())
            for kind, whys in rep.excluded_reasons.items()
        )
    lines = [
        f"# Scaling-law report: {rep.name}" + (f" ({rep.arch})" if rep.arch else ""),
        "",
        f"{rep.n_runs} runs read, {rep.n_fitted} fitted; excluded from fits: {excluded}.",
        "",
        f"Convention: {rep.convention}.",
        "",
        f"Target compute: {rep.target_flops:.3g} FLOPs.",
        "",
    ]
    if rep.prediction is not None:
        p = rep.prediction
        iv = p["intervals"]

        def cell(k):
            return f"{fmt(p[k])} {interval(iv, k)}"

        if "calibrated" in p:  # the prediction to act on first, the approaches' own after it
            from .calibrated_prediction import calibrated_lines

            lines += calibrated_lines(p["calibrated"])
        lines += [
            "## Prediction at the target compute, by approach (secondary)",
            "",
            f"Source: {p['source']} ({p['reason']}). 95% bootstrap intervals: they cover run "
            "noise and estimation only, not the law's extrapolation error (the calibrated "
            f"interval above does); {p['convention']}.",
            "",
            "| N* | D* | tokens/param | loss (nats/token) |",
            "| --- | --- | --- | --- |",
            f"| {cell('n_params')} | {cell('n_tokens')} | {cell('tokens_per_param')} | "
            f"{cell('loss')} |",
            "",
        ]
        lines += [f"- warning: {w}" for w in p.get("warnings", [])]
        lines += [""] if p.get("warnings") else []
    if rep.verify is not None:
        v = rep.verify
        lines += [
            "## Predict, then verify",
            "",
            f"At C = {v['target_flops']:.3g} FLOPs the law ({v.get('source') or 'prediction'}) "
            f"predicted loss {v['predicted']:.4f}; the run trained at N = "
            f"{fmt(v.get('n_params', math.nan))}, D = {fmt(v.get('n_tokens', math.nan))} "
            f"(run {v.get('run_id', '?')}) achieved {v['achieved']:.4f}: error "
            f"{v['rel_error']:+.2%} (predicted - achieved) / achieved, against a seed noise "
            f"floor of {pct(noise_floor(rep))}.",
            "",
        ]
        if v.get("interval"):
            lo, hi = v["interval"]
            where = "inside" if v.get("inside") else "OUTSIDE"
            lines += [
                f"The recommended law ({v.get('calibrated_law')}) predicted "
                f"{v.get('calibrated_loss', math.nan):.4f} with calibrated 95% interval "
                f"[{lo:.4f}, {hi:.4f}]: the achieved loss {v['achieved']:.4f} is {where} it.",
                "",
            ]
    lines += [
        "## Fits",
        "",
        "| law | parameter | value | 95% interval |",
        "| --- | --- | --- | --- |",
    ]
    for name, f in rep.fits.items():
        for k, value in f.params.items():
            if k.startswith("log_"):
                continue
            lines.append(f"| {name} | {k} | {fmt(value)} | {interval(f.intervals, k)} |")
    if "isoflop" in rep.fits:
        how = rep.fits["isoflop"].details.get("loss_law", "")
        lines += ["", f"Approach 2's optimal loss L*(C) = E + k_L C^-gamma: {how}."]
    lines += [
        "",
        "## Compute-optimal allocation at the target",
        "",
        "| law | N* | D* | tokens/param | loss |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, a in rep.allocation.items():
        lines.append(
            f"| {name} | {fmt(a['n_params'])} | {fmt(a['n_tokens'])} | "
            f"{fmt(a['tokens_per_param'])} | {fmt(a['loss'])} |"
        )
    lines += [
        "",
        "## Back-tests (refit without the held-out runs: the largest scale, or the --holdout "
        "split) and the seed noise floor",
        "",
        "| law | held out | n test | mean abs rel err | max abs rel err | L* rel err | "
        "N* rel err |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, b in rep.backtests.items():
        if b is not None:
            lines.append(
                f"| {name} | {b.held_out} | {b.n_test} | {pct(b.mean_abs_rel_error)} | "
                f"{pct(b.max_abs_rel_error)} | {pct(b.loss_star_rel_error)} | "
                f"{pct(b.n_star_rel_error)} |"
            )
    rb = rep.backtests.get("recommended")
    if rb is not None:
        lines.append(
            f"\nThe recommended law on the split {rb.held_out}: {rb.law}, chosen, fitted and "
            f"calibrated on the {rb.n_train} training runs alone ({rb.message}); its 80% and 95% "
            f"intervals hold {pct(rb.coverage_80)} and {pct(rb.coverage_95)} of the "
            f"{rb.n_test} held-out runs, with median widths {pct(rb.width_80)} and "
            f"{pct(rb.width_95)} of the prediction and mean interval scores "
            f"{pct(rb.score_80)} and {pct(rb.score_95)} (Gneiting & Raftery 2007: width plus "
            "the penalty for misses; lower is sharper and still calibrated)."
        )
    lines += [""]
    if rep.seed_noise:
        lines += [
            f"Seed noise floor (runs identical but for the seed): pooled relative sd "
            f"{pct(noise_floor(rep))}. A back-test error near it is noise, not a miss.",
            "",
            "| N | D | seeds | losses | sd | rel sd | rel range |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for g in rep.seed_noise:
            lines.append(
                f"| {fmt(g['n_params'])} | {fmt(g['n_tokens'])} | {len(g['losses'])} | "
                + ", ".join(f"{x:.4f}" for x in g["losses"])
                + f" | {g['sd']:.4f} | {pct(g['rel_sd'])} | {pct(g['rel_range'])} |"
            )
    else:
        lines.append(
            "Seed noise floor: no runs repeat a config with another seed; rerun one point "
            "with `seed=1,2` to measure it."
        )
    if rep.sensitivity is not None:
        lines += [
            "",
            "## Convention sensitivity (approach 3, C = 6ND with each N)",
            "",
            rep.sensitivity.to_markdown(index=False)
            if _has_tabulate()
            else "```\n" + rep.sensitivity.to_string(index=False) + "\n```",
        ]
    warns = [*rep.diagnostics, *(w for f in rep.fits.values() for w in f.warnings)]
    if rep.skipped or warns:
        lines += ["", "## Skipped fits and warnings", ""]
        lines += [f"- {k}: skipped: {v}" for k, v in rep.skipped.items()]
        lines += [f"- {w}" for w in warns]
    if rep.figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{f}](figures/{f}.png)" for f in rep.figures]
    (rep.out_dir / "report.md").write_text("\n".join(lines) + "\n")


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
