"""`python -m sweeps.plan <the sweep's overrides>`: what a sweep will train, before it spends.

Expands the sweep exactly as `python -m sweeps.train -m <overrides>` would and prints each run's
shape, N, D, C, steps, state and estimated time (sweeps/sweep/plan.py), training nothing.
`--json` prints one JSON object instead of the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from sweeps.errors import UserError
from sweeps.sweep.compose import compose_error
from sweeps.sweep.plan import format_report, memory_problem, plan_sweep, summary

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sweeps.plan",
        description="Expand a sweep as `python -m sweeps.train -m` would; plan it, train nothing.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--jobs", type=int, default=None, help="parallel runs (default: launcher)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. sweep=isoflop")
    args, extra = parser.parse_known_args(argv)
    overrides = [o for o in [*args.overrides, *extra] if o not in ("-m", "--multirun")]
    flags = [o for o in overrides if o.startswith("-")]  # a misspelt option, not an override
    if flags:
        print(f"error: {flags[0]}: not an option of sweeps.plan. Fix: --json, --jobs N, or "
              "Hydra overrides such as sweep=isoflop", file=sys.stderr)  # fmt: skip
        return 2
    if args.jobs is not None and args.jobs < 1:
        print(f"error: --jobs: must be >= 1, got {args.jobs}. Fix: e.g. --jobs 2", file=sys.stderr)
        return 2
    try:
        runs, info = plan_sweep(overrides)
    except UserError as e:
        print(f"error: {e.line()}", file=sys.stderr)
        return 2
    except (HydraException, OmegaConfBaseException) as e:
        print(f"error: {compose_error(e).line()}", file=sys.stderr)
        return 2
    if args.jobs:
        info["n_jobs"] = args.jobs
    total = summary(runs, info)
    mem_line, refusal = memory_problem(total, device=info["device"])
    if args.json:
        print(json.dumps({"runs": [asdict(r) for r in runs], "totals": total, **info}, indent=1))
    else:
        print(format_report(runs, info, total))
        print(mem_line)
    if refusal is not None:  # after the table: the estimate is shown, then refused
        print(f"error: {refusal.line()}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
