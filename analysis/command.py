"""`python -m analysis SOURCE [options]`: fit, back-test, report and predict (docs/tables.md).

SOURCE is a results folder (results/<sweep>) or a results table (.csv, .tsv, .parquet, .jsonl).
Every argument and the whole table are checked before anything is written: a bad one is one line
on stderr and exit status 2. With `--json`, stdout is one JSON document and all else goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any, TextIO

from .errors import AnalysisError
from .report.tracker_summary import TRACKERS, check_tracker, log_report

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Scaling-law fits, back-tests, report and predictions from a results folder "
        "or a results table (docs/tables.md).",
    )
    p.add_argument("paths", nargs="+", help="results folder(s) or one table (.csv/.parquet/.jsonl)")
    p.add_argument(
        "--columns",
        default=None,
        help="map the table's names: n_params=params,n_tokens=tokens,loss=val_loss",
    )
    p.add_argument(
        "--group",
        default=None,
        help="a table column whose values are fitted apart (corpus, arch, schedule)",
    )
    p.add_argument(
        "--n-convention",
        default=None,
        help="what N counts: as_given (tables' default), total, non_embedding, matmul "
        "(records' default)",
    )
    p.add_argument(
        "--curve-points",
        choices=("final", "all"),
        default="final",
        help="in a table with a step column: fit each run's last step (default) or every row",
    )
    p.add_argument(
        "--predict",
        action="append",
        default=[],
        metavar="N=..,D=..",
        help="predict the loss at this point (two of N, D, C); repeatable",
    )
    p.add_argument("--level", type=float, default=0.95, help="interval level of --predict")
    p.add_argument(
        "--json",
        action="store_true",
        help="stdout: one JSON document of the predictions (the rest goes to stderr)",
    )
    p.add_argument(
        "--holdout",
        default=None,
        help="back-test split, e.g. 'C>1e21', 'N>=1e9', 'M>100' (M = D/N)",
    )
    p.add_argument(
        "--isoflop-from-curves",
        action="store_true",
        help="a curve table's runs kept a constant lr: read approach 2's IsoFLOP slices off them",
    )
    p.add_argument(
        "--target-flops",
        type=float,
        default=None,
        help="compute C = 6ND (FLOPs) to predict at; default 10x the largest",
    )
    p.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument(
        "--out", default=None, help="report folder (default <folder>/report or <table>_report)"
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--compare", action="store_true",
                   help="several sweeps (or archs) on one figure")  # fmt: skip
    p.add_argument("--tracker", choices=TRACKERS, default=None,
                   help="also log the laws and figures to one summary run of the sweep "
                   "(docs/trackers.md)")  # fmt: skip
    return p


def _check_args(args: argparse.Namespace) -> list[tuple[float, float]]:
    """Every argument that can be checked without the data; returns the --predict points."""
    from .inputs.canonical_table import parse_columns
    from .inputs.holdout import parse_holdout
    from .inputs.sources import is_table
    from .prediction.requested_points import parse_point

    if args.n_bootstrap < 1:
        raise AnalysisError("--n-bootstrap must be >= 1 (e.g. 1000)")
    tf = args.target_flops
    if tf is not None and not (math.isfinite(tf) and tf > 0):
        raise AnalysisError(
            f"--target-flops {tf}: must be a finite positive FLOP count (e.g. 1e13)"
        )
    if args.seed < 0:
        raise AnalysisError(f"--seed {args.seed}: must be >= 0 (e.g. 0)")
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise AnalysisError(f"--out {args.out}: is a file; give a folder for the report")
    if not 0 < args.level < 1:
        raise AnalysisError(f"--level {args.level}: must lie strictly between 0 and 1 (e.g. 0.95)")
    if len(args.paths) > 1 and not args.compare:
        raise AnalysisError("several folders given: add --compare --out OUT")
    if args.compare and args.out is None:
        raise AnalysisError("--compare needs --out OUT (where the comparison goes)")
    table_opts = args.columns or args.group or args.predict or args.json
    if args.compare and (table_opts or args.holdout):
        raise AnalysisError("--compare takes folders only; drop --columns/--group/--predict/"
                            "--json/--holdout or analyse one source")  # fmt: skip
    if args.isoflop_from_curves and not is_table(args.paths[0]):
        raise AnalysisError(
            "--isoflop-from-curves applies to curve tables; a results folder's constant-lr "
            "runs (schedule=constant, WSD trunks) are used already"
        )
    if args.tracker and args.compare:
        raise AnalysisError("--tracker logs one sweep's report: drop --compare")
    if args.tracker:
        check_tracker(args.tracker)  # its package, before any fit
    if args.json and not args.predict:
        raise AnalysisError("--json prints the predictions: add --predict N=..,D=..")
    parse_columns(args.columns)
    if args.holdout is not None:
        parse_holdout(args.holdout)
    return [parse_point(p) for p in args.predict]


def _load(args: argparse.Namespace):
    """The canonical table of the (single) source, or None for a folder without table options."""
    from .inputs.canonical_table import load_table, parse_columns
    from .inputs.sources import is_table

    path = args.paths[0]
    if not is_table(path):
        if args.columns or args.group:
            raise AnalysisError(f"{path}: --columns/--group apply to tables; a results folder's "
                                "runs are grouped by arch already")  # fmt: skip
        return load_table(path, n_convention=args.n_convention) if args.predict else None
    columns = parse_columns(args.columns)
    if args.group:
        if "group" in columns and columns["group"] != args.group:
            raise AnalysisError(f"--group {args.group} and --columns group={columns['group']}: "
                                "give the group column once")  # fmt: skip
        columns["group"] = args.group
    points = "all" if args.curve_points == "all" else "curves"
    return load_table(path, columns=columns, n_convention=args.n_convention, points=points)


def _report_one(args, source, out: Path | None, arch: str | None, say) -> None:
    from .report.build import build_report
    from .report.printed_summary import summarize

    rep = build_report(source, target_flops=args.target_flops, n_bootstrap=args.n_bootstrap,
                       out=out, seed=args.seed, arch=arch, n_convention=args.n_convention,
                       holdout=args.holdout,
                       isoflop_from_curves=args.isoflop_from_curves)  # fmt: skip
    say(summarize(rep) + ("\n" if arch is not None else ""))
    if args.tracker:
        say(log_report(rep, args.paths[0], tracker=args.tracker, per_arch=arch is not None))


def _run(args: argparse.Namespace, points, say, stdout: TextIO) -> None:
    from .inputs.sources import default_table_out, load_source, mark_table_out
    from .report.comparison import build_comparison

    if args.compare:
        out, series = build_comparison(
            args.paths,
            out=args.out,
            target_flops=args.target_flops,
            n_bootstrap=min(args.n_bootstrap, 200),
            seed=args.seed,
        )
        _print_comparison(out, series, say)  # fmt: skip
        return
    table = _load(args)
    path = args.paths[0]
    source: Any = table if table is not None and table.attrs.get("kind") == "table" else path
    runs, _ = load_source(source)  # checks the source before any folder is written
    archs = sorted(runs["arch"].dropna().astype(str).unique())
    marked = source is table and args.out is None
    if marked:
        args.out = str(default_table_out(path))
    _check_writable(Path(args.out) if args.out else Path(path) / "report")
    if args.holdout is not None:
        from .inputs.sources import report_inputs

        for arch in archs or [None]:
            report_inputs(source, arch=arch, n_convention=args.n_convention, out=args.out,
                          holdout=args.holdout)  # fmt: skip
    answers = None
    if points:
        from .prediction.requested_points import predict_points, predictions_json, predictions_text

        answers = predict_points(table, points, level=args.level, seed=args.seed)
    if len(archs) <= 1:
        _report_one(args, source, Path(args.out) if args.out else None, None, say)
    else:
        base = Path(args.out) if args.out else Path(path) / "report"
        for arch in archs:
            _report_one(args, source, base / arch, arch, say)
        out, series = build_comparison([source], out=base, target_flops=args.target_flops,
                                       seed=args.seed)  # fmt: skip
        _print_comparison(out, series, say)
    if marked:
        mark_table_out(args.out, path)
    if answers is not None:
        if args.json:
            doc = predictions_json(answers, table=table)
            stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        else:
            say("\n".join(predictions_text(answers)))


def _print_comparison(out: Path, series: list[dict], say) -> None:
    for s in series:
        f = s.get("fit")
        if f is None:
            say(f"{s['label']}: skipped ({s.get('skipped')})")
            continue
        p, a = f.params, s.get("allocation")
        pred = f"; at C = {a.flops:.3g}: N* {a.n_params:.3g}, loss {a.loss:.4f}" if a else ""
        say(f"{s['label']}: alpha {p['alpha']:.3f}, beta {p['beta']:.3f}, E {p['E']:.3f}, "
            f"a {p['a']:.3f}{pred}")  # fmt: skip
    say(f"comparison: {out / 'report.md'}")


def _check_writable(out: Path) -> None:
    """Refuse a report folder that cannot be written before any fit runs (a traceback after minutes
    of fitting, and a half-written folder, otherwise)."""
    where = out
    while not where.exists() and where != where.parent:
        where = where.parent
    if not where.is_dir():  # --out results.csv/report
        raise AnalysisError(f"--out {out}: {where} is a file, not a folder; give a folder path")
    if not os.access(where, os.W_OK | os.X_OK):
        raise AnalysisError(
            f"--out {out}: cannot write in {where} (permission denied); choose a folder you can "
            "write to with --out"
        )


def _attach_negative_numbers(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """`--target-flops -1e13` as `--target-flops=-1e13`: argparse takes `-1e13` (a number it does
    not recognise as one: it knows only `-1` and `-.5`) for an option and says "expected one
    argument", where the user should hear what is wrong with the value."""
    takes_value = {name for a in parser._actions if a.nargs != 0 for name in a.option_strings}
    out: list[str] = []
    for k, arg in enumerate(argv):
        if arg == "--":  # what follows is paths, whatever they look like
            return out + argv[k:]
        prev = out[-1] if out else ""
        if prev in takes_value and arg.startswith("-"):
            try:
                float(arg)
            except ValueError:
                pass
            else:
                out[-1] = f"{prev}={arg}"
                continue
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(_attach_negative_numbers(parser, argv))
    stdout = sys.stdout
    text_out = sys.stderr if args.json else sys.stdout

    # Each run is loaded once per report (and once to list its archs): the same warning about a
    # run comes several times, so each text is shown once (the "once" filter keys on the module
    # that called, and the loads are called from different modules); the summary repeats the
    # table's warnings among the report's, and those already shown are not printed again.
    seen: set[str] = set()

    def say(text: str) -> None:
        shown = {f"warning: {m}" for m in seen}
        print("\n".join(ln for ln in text.split("\n") if ln not in shown), file=text_out)

    def one_line(message, category, filename, lineno, file=None, line=None) -> None:
        if str(message) not in seen:
            seen.add(str(message))
            print(f"warning: {message}", file=sys.stderr)

    try:
        points = _check_args(args)
        with warnings.catch_warnings():
            warnings.showwarning = one_line
            _run(args, points, say, stdout)
    except AnalysisError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the machine's fault, not the table's: disk full, permissions
        print(f"error: {e.filename or 'a report file'}: {e.strerror or e}; check the disk and "
              "the permissions of the --out folder", file=sys.stderr)  # fmt: skip
        return 1
    return 0
