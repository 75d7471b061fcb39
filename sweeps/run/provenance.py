"""Where a record came from: the code's git commit and the library versions."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["code_version", "lib_versions"]


@functools.cache
def code_version() -> str:
    """The git commit of this checkout (with '+dirty' when modified), else the package version."""
    root = Path(__file__).resolve().parents[2]  # the checkout: sweeps/run/ -> ..
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if sha.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=5,
            )
            return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return "scaling-sweeps " + metadata.version("scaling-sweeps")
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def lib_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("torch", "numpy", "hydra-core", "omegaconf", "tokenizers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out
