"""`python -m analysis.planning SOURCE --target-flops C --allowance F`: see command.py."""

from __future__ import annotations

import sys

from .command import main

if __name__ == "__main__":
    sys.exit(main())
