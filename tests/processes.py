"""Child processes for the tests: the environment they run in, a module's CLI run to its end, and
a process in its own session that is SIGKILLed with its children when a block ends (a kill test,
a server under test)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

__all__ = ["REPO", "child_env", "run_module", "background"]


def child_env() -> dict[str, str]:
    """This repo first on the path, one thread, unbuffered, and no tracker set from outside."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("WANDB_MODE", None)
    return env


def run_module(
    module: str, args: list[str], *, cwd: Path, env: dict[str, str], timeout: float, **kw
) -> subprocess.CompletedProcess[str]:
    """`python -m MODULE ARGS` in a fresh process, to its end, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


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
