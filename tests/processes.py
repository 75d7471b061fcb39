"""Child processes for the tests: the environment they run in, and a process in its own session
that is SIGKILLed with its children when a block ends (a kill test, a server under test)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

__all__ = ["REPO", "child_env", "background"]


def child_env() -> dict[str, str]:
    """This repo first on the path, one thread, unbuffered, and no tracker set from outside."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("WANDB_MODE", None)
    return env


@contextmanager
def background(cmd: list[str], **kwargs) -> Iterator[subprocess.Popen]:
    """A process in its own session, SIGKILLed with its children when the block ends."""
    out = subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True, **kwargs)
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
