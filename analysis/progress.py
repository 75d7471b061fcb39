"""What `python -m analysis` is doing, on stderr, once it has taken long enough to wonder.

On a terminal: one tqdm bar per report ("report: approach 3 bootstrap", steps done of all, time
spent), shown only after `BAR_AFTER_S` seconds, so a quick report prints nothing and a long one
(a 200,000-row table: minutes) says where it is. Elsewhere (a log file, a CI job, a captured test):
one line per step, only for steps that begin after `LOG_AFTER_S` seconds of work, so a report of
seconds prints nothing and the tests' captured stderr holds the program's own lines only. Nothing
goes to stdout (`--json` prints one document there).
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["BAR_AFTER_S", "LOG_AFTER_S", "Steps"]

BAR_AFTER_S = 2.0
LOG_AFTER_S = 10.0


class Steps:
    """`total` named steps of one piece of work; `step(name)` as each begins, `close()` at the
    end (also as a context manager)."""

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total, self.done = what, total, 0
        self.t0 = time.perf_counter()
        self.bar: Any = None
        if sys.stderr is not None and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=what, file=sys.stderr, delay=BAR_AFTER_S,
                            leave=False, dynamic_ncols=True, unit="step")  # fmt: skip

    def step(self, name: str) -> None:
        """Step `name` begins (the previous one, if any, is done)."""
        elapsed = time.perf_counter() - self.t0
        if self.bar is not None:
            if self.bar.n < self.done:
                self.bar.update(self.done - self.bar.n)
            self.bar.set_description(f"{self.what}: {name}")
        elif elapsed >= LOG_AFTER_S:
            print(f"[{self.what}] {name} (step {self.done + 1} of {self.total}, "
                  f"{elapsed:.0f} s so far)", file=sys.stderr, flush=True)  # fmt: skip
        self.done += 1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
