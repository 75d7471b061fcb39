"""Preemption-safe SLURM: a run checkpoints at the next step boundary when its job times out or
is preempted, then hands over to submitit, which requeues the job.

Submitit installs its own handler for the preemption signal (SIGUSR2, or SUBMITIT_PREEMPT_SIGNAL)
in the job process: it asks the job's callable for a `checkpoint()` (hydra-submitit-launcher's
launcher returns a `submitit.helpers.DelayedSubmission` of the same job), requeues it (up to
`max_num_timeout` timeouts; preemptions do not count) and exits. Called in the middle of a step
it would lose everything since the last periodic checkpoint; `Preemption` takes the signal
instead, lets the training loop save a checkpoint where the state is whole, then calls
submitit's handler. The requeued job reruns the same command, and the run resumes from that
checkpoint exactly (sweeps/run/runner.py). Outside submitit (no handler installed) it does nothing.

SIGTERM (what SLURM's scancel and most schedulers send before a kill, and `kill`'s default) is
taken the same way in a single-process run: the loop saves a checkpoint at the next step boundary
and raises `Terminated`, which the command line turns into one line and exit status 143; a rerun
resumes from that checkpoint, so only the step in flight is redone. (In a DDP run the ranks could
see the signal at different steps and wait for each other for ever, so there SIGTERM keeps its
default: the run resumes from its last periodic checkpoint.)
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["Preemption", "Terminated"]


class Terminated(BaseException):
    """A run stopped by SIGTERM after saving a checkpoint at `step` of `n_steps` (a BaseException,
    like KeyboardInterrupt: no `except Exception` may record it as a failed run)."""

    def __init__(self, step: int, n_steps: int) -> None:
        super().__init__(f"SIGTERM at step {step} of {n_steps}")
        self.step, self.n_steps = step, n_steps


class Preemption:
    """`p = Preemption().install()`, `if p.pending: p.hand_over(save)` at step boundaries,
    `p.restore()` when the loop ends (a signal after the last step is dropped: the run is done)."""

    def __init__(self) -> None:
        self.pending: tuple[int, FrameType | None] | None = None
        self.terminated = False
        self._prev: Any = None
        self._sig: int | None = None
        self._prev_term: Any = None

    def install(self, *, sigterm: bool = False) -> Preemption:
        """Take submitit's preemption signal (under submitit) and, with `sigterm`, SIGTERM."""
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers live in the main thread only
        if sigterm:
            self._prev_term = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, self._note_term)
        if "SUBMITIT_EXECUTOR" not in os.environ:
            return self
        name = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
        sig = getattr(signal, name, None)
        prev = signal.getsignal(sig) if sig is not None else None
        if sig is not None and callable(prev):
            self._sig, self._prev = int(sig), prev
            signal.signal(sig, self._note)
        return self

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.pending = (signum, frame)

    def _note_term(self, signum: int, frame: FrameType | None) -> None:
        self.terminated = True

    def hand_over(self, save: Callable[[], None]) -> None:
        """Save (the caller's checkpoint), then run submitit's handler: requeue and exit."""
        assert self.pending is not None
        save()
        signum, frame = self.pending
        self.pending = None
        self._prev(signum, frame)

    def restore(self) -> None:
        if self._sig is not None:
            signal.signal(self._sig, self._prev)
            self._sig = None
        if self._prev_term is not None:
            signal.signal(signal.SIGTERM, self._prev_term)
            self._prev_term = None
