"""`python -m analysis <results/sweep> [--target-flops C] [--n-bootstrap K] [--out DIR]`, or
`python -m analysis DIR1 DIR2 ... --compare --out OUT` for several sweeps on one figure.

A sweep folder holding runs of several architectures gets one report per architecture
(`<out>/<arch>/`) and a comparison of them (`<out>/`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import AnalysisError


def _archs(path: str) -> list[str]:
    from .runs import load_runs

    runs, _ = load_runs(path)
    return sorted(runs["arch"].dropna().astype(str).unique())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", help="sweep folder(s) (results/<sweep>)")
    parser.add_argument(
        "--target-flops",
        type=float,
        default=None,
        help="compute C = 6ND (FLOPs) to predict at; default 10x the largest",
    )
    parser.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--out", default=None, help="report folder (default <path>/report)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument(
        "--compare", action="store_true", help="several sweeps (or archs) on one figure"
    )
    args = parser.parse_args(argv)
    if args.n_bootstrap < 1:
        print("error: --n-bootstrap must be >= 1 (e.g. 1000)", file=sys.stderr)
        return 2
    if len(args.paths) > 1 and not args.compare:
        print("error: several folders given: add --compare --out OUT", file=sys.stderr)
        return 2
    if args.compare and args.out is None:
        print("error: --compare needs --out OUT (where the comparison goes)", file=sys.stderr)
        return 2
    from .compare import build_comparison
    from .report import build_report, summarize

    try:
        if args.compare:
            out, series = build_comparison(
                args.paths,
                out=args.out,
                target_flops=args.target_flops,
                n_bootstrap=min(args.n_bootstrap, 200),
                seed=args.seed,
            )
            _print_comparison(out, series)
            return 0
        path = args.paths[0]
        archs = _archs(path)
        if len(archs) <= 1:
            rep = build_report(
                path,
                target_flops=args.target_flops,
                n_bootstrap=args.n_bootstrap,
                out=args.out,
                seed=args.seed,
            )
            print(summarize(rep))
            return 0
        base = Path(args.out) if args.out else Path(path) / "report"
        for arch in archs:
            rep = build_report(
                path,
                target_flops=args.target_flops,
                n_bootstrap=args.n_bootstrap,
                out=base / arch,
                seed=args.seed,
                arch=arch,
            )
            print(summarize(rep) + "\n")
        out, series = build_comparison(
            [path], out=base, target_flops=args.target_flops, seed=args.seed
        )
        _print_comparison(out, series)
    except AnalysisError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _print_comparison(out: Path, series: list[dict]) -> None:
    for s in series:
        f = s.get("fit")
        if f is None:
            print(f"{s['label']}: skipped ({s.get('skipped')})")
            continue
        p, a = f.params, s.get("allocation")
        pred = f"; at C = {a.flops:.3g}: N* {a.n_params:.3g}, loss {a.loss:.4f}" if a else ""
        print(
            f"{s['label']}: alpha {p['alpha']:.3f}, beta {p['beta']:.3f}, E {p['E']:.3f}, "
            f"a {p['a']:.3f}{pred}"
        )
    print(f"comparison: {out / 'report.md'}")


if __name__ == "__main__":
    sys.exit(main())
