"""`python -m sweeps.status results/<sweep>`: where a sweep stands, from its run folders alone.

Reads only JSON (sweeps/sweep/status.py): no torch, no Hydra, so it is instant and works on a
copied folder. `--json` prints one JSON object instead of the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sweeps import records
from sweeps.sweep.status import SWEEP_FILE, format_status, sweep_status

__all__ = ["main"]


def _only_sweep(folder: Path) -> Path | None:
    """The single sweep folder inside a results folder that holds exactly one, else None."""
    if records.iter_run_dirs(folder) or (folder / SWEEP_FILE).exists():
        return None
    sweeps = [p for p in sorted(folder.iterdir()) if p.is_dir() and records.iter_run_dirs(p)]
    return sweeps[0] if len(sweeps) == 1 else None


def _wrong_level(folder: Path) -> str | None:
    """What to pass instead when `folder` is one run's folder or the results folder above
    several sweeps (both read as an empty sweep before), else None."""
    if records.iter_run_dirs(folder) or (folder / SWEEP_FILE).exists():
        return None
    if any((folder / n).exists() for n in (records.RECORD_FILE, records.CONFIG_FILE)):
        return (f"{folder} is one run's folder. Fix: give the sweep folder above it, "
                f"{folder.parent}")  # fmt: skip
    sweeps = [p.name for p in sorted(folder.iterdir()) if p.is_dir() and records.iter_run_dirs(p)]
    if sweeps:
        return (f"{folder} holds {len(sweeps)} sweep folder(s) ({', '.join(sweeps[:5])}). Fix: "
                f"give one of them, e.g. {folder / sweeps[0]}")  # fmt: skip
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sweeps.status", description="Where a sweep stands: runs by state."
    )
    parser.add_argument("sweep_dir", help="a sweep folder, e.g. results/isoflop")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    sweep_dir = Path(args.sweep_dir)
    if not sweep_dir.is_dir():
        print(
            f"error: sweep_dir: no folder {sweep_dir}. Fix: give results/<sweep_name>, "
            "e.g. results/isoflop",
            file=sys.stderr,
        )
        return 2
    try:
        only = _only_sweep(sweep_dir)
        if only is not None:  # the results folder above one sweep: that sweep is meant
            print(f"(the one sweep in {sweep_dir}: {only})", file=sys.stderr)
            sweep_dir = only
        wrong = _wrong_level(sweep_dir)
        status = sweep_status(sweep_dir)
    except OSError as e:  # the sweep folder itself (a run folder's fault is that run's row)
        print(f"error: sweep_dir: cannot read {e.filename or sweep_dir}: {e.strerror or e}. "
              "Fix: check its permissions", file=sys.stderr)  # fmt: skip
        return 2
    if wrong:
        print(f"error: sweep_dir: {wrong}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    print(format_status(status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
