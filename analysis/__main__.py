"""`python -m analysis SOURCE [options]`: see analysis/command.py and docs/tables.md.

SOURCE is a results folder (`results/<sweep>`; one report per architecture plus a comparison when
it holds several) or a results table (.csv, .tsv, .parquet, .jsonl). `python -m analysis DIR1
DIR2 ... --compare --out OUT` draws several sweeps on one figure.
"""

from __future__ import annotations

import sys

from .command import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
