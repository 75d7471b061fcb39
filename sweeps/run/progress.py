"""Progress of one run: a tqdm bar on a terminal (loss, tokens/s, ETA), a log line every
`every_s` seconds otherwise (files, CI, cluster logs), or nothing."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    def __init__(
        self, mode: str, *, total: int, initial: int = 0, desc: str = "", every_s: float = 15.0
    ) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "log"
        self.mode, self.total, self.desc, self.every_s = mode, total, desc, every_s
        self.t0 = self.last = time.perf_counter()
        self.initial = initial
        self.bar = None
        if mode == "bar":
            self.bar = tqdm(
                total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True
            )

    def update(self, done: int, *, loss: float, tokens_per_s: float) -> None:
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
            self.bar.refresh()
            return
        now = time.perf_counter()
        if self.mode == "log" and (now - self.last >= self.every_s or done == self.total):
            self.last = now
            rate = (done - self.initial) / max(now - self.t0, 1e-9)
            eta = (self.total - done) / rate if rate > 0 else float("nan")
            print(
                f"[{self.desc}] step {done}/{self.total} loss {loss:.4f} "
                f"{tokens_per_s:,.0f} tok/s ETA {eta:,.0f}s",
                file=sys.stderr,
                flush=True,
            )

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(f"[{self.desc}] {text}", file=sys.stderr)
        elif self.mode == "log":
            print(f"[{self.desc}] {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
