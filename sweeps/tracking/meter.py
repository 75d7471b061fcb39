"""The trainer's side of tracking: which numbers go to the trackers, and when.

Every `log_every` steps (and at the last): the mean training loss since the previous point, the
learning rate, tokens/s, achieved FLOP/s (exact count) and MFU against the device's peak. At every
evaluation: validation loss (nats/token) and its standard error, perplexity, bits per byte, and the
tokens and FLOPs seen so far. The running sums are part of the checkpoint, so a resumed run logs the
same points as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sweeps.tracking.fanout import Tracking

if TYPE_CHECKING:
    from sweeps.config import RunConfig
    from sweeps.run.plan import RunPlan

__all__ = ["Meter"]


class Meter:
    def __init__(
        self,
        tracking: Tracking | None,
        *,
        every: int,
        n_steps: int,
        tokens_per_step: int,
        flops_per_token: Mapping[str, float],
        bytes_per_token: float,
        peak: Callable[[], float],
    ) -> None:
        self.tracking, self.every, self.n_steps = tracking, every, n_steps
        self.tokens_per_step, self.fpt = tokens_per_step, flops_per_token
        self.bytes_per_token, self.peak_fn = bytes_per_token, peak
        self.loss_sum, self.loss_count = 0.0, 0
        self.peak = 1.0
        self.t_last, self.step_last = time.perf_counter(), 0

    @classmethod
    def for_run(
        cls,
        tracking: Tracking | None,
        cfg: RunConfig,
        plan: RunPlan,
        bytes_per_token: float,
        device: str,
        precision: str,
    ) -> Meter:
        """The meter of one run: every `tracker.log_every` steps (0: about 100 points a run),
        MFU against `tracker.peak_flops_per_s` or, unset, a matmul probe of the device."""

        def peak() -> float:
            if cfg.tracker.peak_flops_per_s:
                return cfg.tracker.peak_flops_per_s
            from sweeps.tracking.peak import peak_flops_per_s  # torch: the trainer's side only

            return peak_flops_per_s(device, precision, cfg.threads)

        return cls(
            tracking,
            every=cfg.tracker.log_every or max(1, plan.n_steps // 100),
            n_steps=plan.n_steps,
            tokens_per_step=plan.tokens_per_step,
            flops_per_token=plan.flops_per_token,
            bytes_per_token=bytes_per_token,
            peak=peak,
        )

    def resume(self, checkpoint: Mapping[str, Any]) -> None:
        """Take the running sums back from a checkpoint (older ones have none: start at 0)."""
        self.loss_sum = float(checkpoint.get("log_sum", 0.0))
        self.loss_count = int(checkpoint.get("log_count", 0))

    def start(self, step: int) -> None:
        """Open the tracker runs at the step training starts from (0, or the checkpoint's)."""
        if self.tracking is not None:
            self.tracking.start(resume_step=step)
            self.peak = self.peak_fn()
        self.t_last, self.step_last = time.perf_counter(), step

    def flush(self) -> None:
        if self.tracking is not None:
            self.tracking.flush()

    @property
    def waited_s(self) -> float:
        """Seconds the run has waited for its trackers (the record's time leaves them out)."""
        return self.tracking.waited_s if self.tracking is not None else 0.0

    def state(self) -> dict[str, Any]:
        return {"log_sum": self.loss_sum, "log_count": self.loss_count}

    def step(self, done: int, loss: float, lr: float) -> None:
        self.loss_sum += loss
        self.loss_count += 1
        if self.tracking is None or (done % self.every and done != self.n_steps):
            return
        now = time.perf_counter()
        tokens_per_s = (done - self.step_last) * self.tokens_per_step / max(now - self.t_last, 1e-9)
        flops_per_s = self.fpt["exact"] * tokens_per_s
        self.tracking.log(
            done,
            {
                "train/loss": self.loss_sum / self.loss_count,
                "train/lr": lr,
                "perf/tokens_per_s": tokens_per_s,
                "perf/flops_per_s": flops_per_s,
                "perf/mfu": flops_per_s / self.peak,
            },
        )
        self.loss_sum, self.loss_count = 0.0, 0
        self.t_last, self.step_last = time.perf_counter(), done

    def evaluation(self, done: int, loss: float, loss_se: float) -> None:
        if self.tracking is None:
            return
        n_tokens = done * self.tokens_per_step
        finite = math.isfinite(loss) and loss < 700
        metrics = {
            "val/loss": loss,
            "val/loss_se": loss_se,
            "val/perplexity": math.exp(loss) if finite else float("nan"),
            "progress/n_tokens": float(n_tokens),
            "progress/flops": self.fpt["six_n"] * n_tokens,
            "progress/flops_exact": self.fpt["exact"] * n_tokens,
        }
        if math.isfinite(self.bytes_per_token):  # token corpora (data=tokens) have no bytes
            metrics["val/bits_per_byte"] = loss / math.log(2) / self.bytes_per_token
        self.tracking.log(done, metrics)
