"""Checkpoints of one run: written atomically, resumed only on the same inputs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from sweeps.errors import UserError

__all__ = ["check_same_inputs", "save_checkpoint"]


def check_same_inputs(state: dict[str, Any], path: Path, dataset_id: str, precision: str) -> None:
    """A checkpoint continues only on the tokens and in the precision it was trained with.

    Neither is in the run id: `precision=auto` resolves per machine (bf16 on CUDA, fp32 on most
    CPUs) and the default corpus is the running Python's standard library, so a run folder moved
    to (or shared with) another machine could otherwise resume on other data or arithmetic.
    Checkpoints written before these fields existed are not checked."""
    for key, here in (("dataset_id", dataset_id), ("precision", precision)):
        then = state.get(key)
        if then is not None and then != here:
            raise UserError(
                str(path),
                f"was trained with {key} {then!r}, but this machine gives {here!r} (other data "
                "or arithmetic under the same run id)",
                "resume it where it was started (same Python for data=pystdlib; precision=fp32 "
                f"or bf16 instead of auto), or delete {path.name} to retrain it here",
            )


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".ckpt.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
