"""`python -m analysis.planning SOURCE --target-flops C --allowance F [--max-runs K] [--json]
[--min-params N] [--max-tokens D] [--seconds-model JSON [--max-wall-seconds S] [--max-seconds S]]`.

SOURCE is what `python -m analysis` reads (a results folder or a table). Prints the runs to add
(propose.py), or with --json one JSON document (what `python -m sweeps.next` reads). Writes
nothing. Exit 2 with one `error:` line on a bad input, and where the allowance buys no run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import warnings

from ..errors import AnalysisError
from ..inputs.sources import report_inputs
from ..prediction.seed_noise import pooled_rel_sd, seed_groups
from .propose import Proposal, half_width, propose
from .seconds import RunSeconds

__all__ = ["main", "format_proposal"]


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 1e13)") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive number (e.g. 1e13)")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.planning",
                                description="The runs a sweep should add next.")  # fmt: skip
    p.add_argument("source", help="a results folder (results/<sweep>) or a results table")
    p.add_argument("--target-flops", type=_positive, required=True,
                   help="the budget whose loss the plan should pin down")  # fmt: skip
    p.add_argument("--allowance", type=_positive, required=True,
                   help="FLOPs this wave may spend (C = 6 N D summed)")  # fmt: skip
    p.add_argument("--max-runs", type=int, default=None)
    p.add_argument("--arch", default=None, help="the architecture (or group) to plan for")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--min-params", type=float, default=0.0,
                   help="the smallest model the sweep can build (no size below it is proposed)")
    p.add_argument("--max-tokens", type=_positive, default=math.inf,
                   help="the most tokens a run may see, e.g. 4 epochs of the corpus (no "
                        "longer run is proposed; python -m sweeps.next passes its "
                        "corpus's)")  # fmt: skip
    p.add_argument("--seconds-model", default=None,
                   help="what a run takes on the trainer's workers, as JSON (seconds.py; "
                        "python -m sweeps.next passes the trainer's own)")  # fmt: skip
    p.add_argument("--max-wall-seconds", type=_positive, default=None,
                   help="the wall time the wave may take (with --seconds-model)")
    p.add_argument("--max-seconds", type=_positive, default=None,
                   help="the run-seconds the wave may take: each run's seconds summed, as "
                        "GPU-hours are (with --seconds-model)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON document")
    return p


def format_proposal(p: Proposal) -> str:
    t = p.target
    lo, hi = t.interval
    lines = [
        f"target C={t.flops:.3g}: {p.law} predicts {t.loss:.4f} at N*={t.n_params:.3g}, "
        f"D*={t.n_tokens:.3g}, 95% interval "
        + (f"[{lo:.4f}, {hi:.4f}] (+-{half_width(t):.1%})" if t.problem is None
           else f"[{lo:.4f}, {hi:.4f}]: {t.problem}"),
    ]  # fmt: skip
    lines += [f"warning: {w}" for w in p.warnings]
    if p.stop:
        lines.append(f"nothing proposed: {p.stop}")
        return "\n".join(lines)
    elo, ehi = p.expected
    lines.append(
        f"proposed: {len(p.rows())} run(s), {p.spent:.3g} of {p.allowance:.3g} FLOPs; expected "
        f"95% interval after them [{elo:.4f}, {ehi:.4f}] (+-{(ehi - elo) / 2 / t.loss:.1%}, "
        "with today's calibration, which their back-test folds can widen)"
    )
    lines.append(f"{'N':>10} {'D':>10} {'C':>10} {'kind':>7} {'share':>6}  why")
    for r in p.rows():
        lines.append(f"{r['n_params']:>10.4g} {r['n_tokens']:>10.4g} {r['flops']:>10.3g} "
                     f"{r['kind']:>7} {r['variance_share']:>6.1%}  {r['why']}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.max_runs is not None and args.max_runs < 1:
            raise AnalysisError(f"--max-runs {args.max_runs}: must be >= 1, e.g. --max-runs 10")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # kept, and said once each below (not a traceback)
            for flag in ("max_wall_seconds", "max_seconds"):
                if getattr(args, flag) is not None and args.seconds_model is None:
                    raise AnalysisError(f"--{flag.replace('_', '-')}: needs --seconds-model "
                                        "(what a run takes here); python -m sweeps.next passes "
                                        "both")  # fmt: skip
            seconds = (RunSeconds.from_json(args.seconds_model)
                       if args.seconds_model is not None else None)  # fmt: skip
            inp = report_inputs(args.source, arch=args.arch)
            noise = pooled_rel_sd(seed_groups(inp.runs))
            prop = propose(inp.data, args.target_flops, args.allowance, max_runs=args.max_runs,
                           noise=noise, seed=args.seed, min_params=args.min_params,
                           max_tokens=args.max_tokens,
                           seconds=seconds, max_wall_s=args.max_wall_seconds,
                           max_run_s=args.max_seconds)  # fmt: skip
    except AnalysisError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    said = list(dict.fromkeys(str(w.message) for w in caught))  # reading and fitting warned
    prop = dataclasses.replace(prop, warnings=tuple(dict.fromkeys([*said, *prop.warnings])))
    if args.json:
        print(json.dumps(prop.to_dict(), indent=1, default=float))
    else:
        print(format_proposal(prop))
    if prop.stop and not prop.items and "allowance" in prop.stop:
        field = ("--max-wall-seconds" if "wall-time" in prop.stop else
                 "--max-seconds" if "run-seconds" in prop.stop else "--allowance")  # fmt: skip
        print(f"error: {field}: {prop.stop}", file=sys.stderr)
        return 2
    return 0
