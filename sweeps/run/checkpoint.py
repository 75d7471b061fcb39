"""Checkpoints of one run: written atomically, resumed only on the same inputs; one that cannot
be loaded (truncated by a kill mid-copy, another format, a foreign pickle that weights_only
refuses, another model's tensors) is moved aside and the run starts again from scratch."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sweeps import records
from sweeps.errors import UserError

__all__ = ["check_same_inputs", "save_checkpoint", "load_checkpoint"]

REQUIRED_KEYS = ("model", "optim", "step")


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
                "or arithmetic under the same run id; for dataset_id, also a newer split of the "
                "data by this code: sweeps/data/__init__.py SPLIT_VERSION)",
                "resume it where it was started (same Python and code for data=pystdlib; "
                f"precision=fp32 or bf16 instead of auto), or delete {path.name} to retrain it "
                "here",
            )


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: a failed write (a full disk) keeps the last checkpoint
    and leaves no temp file."""
    fd, tmp = records.mkstemp_public(path, prefix=".ckpt.")  # not 0600: shared folders
    try:
        # Through Python's file object, not torch.save's own writer: a failed write then keeps
        # its OSError (ENOSPC: sweeps.errors.out_of_space) as the context of torch's error.
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unusable(state: Any, model: torch.nn.Module, opt: torch.optim.Optimizer) -> str | None:
    """Why `state` cannot resume `model` and `opt`, or None. Checked before anything is copied,
    so a refused checkpoint leaves the fresh model and optimizer untouched."""
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        return f"not a checkpoint of this project (no {', '.join(REQUIRED_KEYS)})"
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    saved = state["model"]
    if not isinstance(saved, dict):
        return "its model entry is not a state dict"
    have = {k: tuple(getattr(v, "shape", ())) for k, v in saved.items()}
    if have != want:
        wrong = sorted(set(have) ^ set(want)) or sorted(k for k in want if have[k] != want[k])
        return f"another model's weights ({', '.join(wrong[:3])} differ)"
    groups = state["optim"].get("param_groups") if isinstance(state["optim"], dict) else None
    mine = opt.state_dict()["param_groups"]
    if not isinstance(groups, list) or [len(g.get("params", [])) for g in groups] != [
        len(g["params"]) for g in mine
    ]:
        return "its optimizer state belongs to another model"
    return None


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    device: torch.device,
    dataset_id: str,
    precision: str,
    say: Callable[[str], None],
    then: str = "training from scratch",
) -> dict[str, Any] | None:
    """Load `path` into `model` and `opt` and return its state; None (after moving the file aside
    to `<name>.corrupt-<time>` and saying so, and `then`: what the run does instead) when it
    cannot be used. A checkpoint of other data
    or precision is not corrupt: that stays a UserError (check_same_inputs)."""
    from sweeps.records import set_aside

    try:
        state = torch.load(path, map_location=device, weights_only=True)
        problem = _unusable(state, model, opt)
    except Exception as e:  # truncated zip, not a zip, a pickle weights_only refuses, ...
        first = (str(e).strip().splitlines() or [""])[0][:200]
        problem = f"cannot be loaded ({type(e).__name__}: {first})"
    if problem is None:
        check_same_inputs(state, path, dataset_id, precision)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        return state
    aside = set_aside(path)
    say(f"{path}: {problem}; moved aside to {aside.name}, {then}")
    return None
