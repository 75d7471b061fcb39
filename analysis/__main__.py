"""`python -m analysis <results/sweep> [--target-flops C] [--n-bootstrap K] [--out DIR]`."""

from __future__ import annotations

import argparse
import sys

from .errors import AnalysisError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__)
    parser.add_argument("path", help="a sweep folder (results/<sweep>) or a folder of sweeps")
    parser.add_argument(
        "--target-flops",
        type=float,
        default=None,
        help="compute C = 6ND (FLOPs) to predict at; default 10x the largest",
    )
    parser.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--out", default=None, help="report folder (default <path>/report)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    if args.n_bootstrap < 1:
        print("error: --n-bootstrap must be >= 1 (e.g. 1000)", file=sys.stderr)
        return 2
    from .report import build_report, summarize

    try:
        rep = build_report(
            args.path,
            target_flops=args.target_flops,
            n_bootstrap=args.n_bootstrap,
            out=args.out,
            seed=args.seed,
        )
    except AnalysisError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summarize(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
