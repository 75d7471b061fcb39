"""One GPU per job: a machine's GPUs as a pool that local sweep jobs take devices from.

A job of a local sweep (`launcher=joblib` or the basic launcher) on a machine with G visible GPUs
takes `gpus_per_run` = k free devices (an exclusive file lock per device, so two jobs never share
one, not even jobs of two sweeps started side by side) and trains in a fresh child process whose
CUDA_VISIBLE_DEVICES names only them, set before that process initialises CUDA: `python -m
sweeps.job` for k = 1, `torchrun --standalone --nproc_per_node=k -m sweeps.job` (DDP) for k > 1.
`launcher=joblib` runs G / k jobs at once by default (the `gpu_jobs` resolver of
conf/launcher/joblib.yaml). Each assignment is appended to `<sweep>/gpus.jsonl`.

The device list is what CUDA would show this process (CUDA_VISIBLE_DEVICES respected), or the
comma-separated ids in SWEEPS_GPUS when set (to hand a sweep a subset; the tests fake 4 GPUs
with it). SWEEPS_GPU_LOCK_DIR moves the lock files (default: a folder in the temp dir).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sweeps import records
from sweeps.config import RunConfig
from sweeps.errors import RunHeld, UserError
from sweeps.run.identity import run_id_for

__all__ = [
    "ENV_GPUS",
    "ENV_LOCK_DIR",
    "ENV_CHILD",
    "POOL_LOG",
    "visible_gpus",
    "gpu_jobs",
    "wants_pool",
    "hold_gpus",
    "run_on_gpus",
]

ENV_GPUS = "SWEEPS_GPUS"
ENV_LOCK_DIR = "SWEEPS_GPU_LOCK_DIR"
ENV_CHILD = "SWEEPS_GPU_CHILD"  # set in the child: it trains in place, never pools again
POOL_LOG = "gpus.jsonl"
LOCAL_LAUNCHERS = ("BasicLauncher", "JoblibLauncher")


def visible_gpus() -> list[str]:
    """Ids of the GPUs this process may hand out (as CUDA_VISIBLE_DEVICES entries)."""
    fake = os.environ.get(ENV_GPUS)
    if fake is not None:
        return [d.strip() for d in fake.split(",") if d.strip()]
    import torch

    n = torch.cuda.device_count()  # NVML-based where possible: CUDA stays uninitialised here
    if n == 0:
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()][:n]
    return [str(i) for i in range(n)]


def gpu_jobs(gpus_per_run: Any, fallback: Any) -> int:
    """Jobs to run at once on this machine: G // k with G visible GPUs, else `fallback`."""
    k = max(1, int(gpus_per_run))
    n = len(visible_gpus())
    return max(1, n // k) if n else int(fallback)


def wants_pool(cfg: RunConfig, *, launcher: str, in_sweep: bool) -> bool:
    """Whether this job takes its devices from the pool (see the module docstring)."""
    from sweeps.run.distributed import in_distributed_env

    k = cfg.gpus_per_run
    local = in_sweep and any(name in launcher for name in LOCAL_LAUNCHERS)
    if os.environ.get(ENV_CHILD) or in_distributed_env() or cfg.device == "cpu":
        return False
    if not local and k == 1:
        return False  # a single run, or a cluster launcher's job: its devices are its own
    gpus = visible_gpus()
    if not gpus:
        if k > 1:
            raise UserError(
                "gpus_per_run",
                f"asks for {k} GPUs per run, but no GPU is visible here",
                "use gpus_per_run=1 on a CPU machine (or torchrun --nproc_per_node=k for k CPU "
                "ranks)",
            )
        return False
    if k > len(gpus):
        raise UserError(
            "gpus_per_run",
            f"asks for {k} GPUs per run, but only {len(gpus)} are visible ({','.join(gpus)})",
            f"use gpus_per_run={len(gpus)} or less",
        )
    return True


def _lock_dir() -> Path:
    path = Path(os.environ.get(ENV_LOCK_DIR) or Path(tempfile.gettempdir()) / "scaling-sweeps-gpus")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def hold_gpus(k: int, *, poll_s: float = 0.2) -> Iterator[list[str]]:
    """Wait until k devices of the pool are free, hold them (exclusive flocks, released when the
    block ends or the process dies), and yield their ids."""
    gpus = visible_gpus()
    lock_dir = _lock_dir()
    while True:
        with ExitStack() as stack:
            held: list[str] = []
            for gpu in gpus:
                fd = os.open(lock_dir / f"gpu-{gpu}.lock", os.O_CREAT | os.O_RDWR, 0o644)
                stack.callback(os.close, fd)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                stack.callback(fcntl.flock, fd, fcntl.LOCK_UN)
                held.append(gpu)
                if len(held) == k:
                    yield held
                    return
        time.sleep(poll_s)  # too few free: every lock taken above is released; try again


def _log(sweep_dir: Path, row: dict[str, Any]) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with open(sweep_dir / POOL_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def run_on_gpus(cfg: RunConfig, *, in_sweep: bool) -> dict[str, Any] | None:
    """Train `cfg` in a child process on `cfg.gpus_per_run` devices of the pool; its record."""
    run_id = run_id_for(cfg)
    run_dir = Path(cfg.results_dir) / cfg.sweep_name / run_id
    sweep_dir = run_dir.parent
    k = cfg.gpus_per_run
    if records.held_elsewhere(run_dir):  # not worth a device, nor torchrun's failure summary
        if not in_sweep:
            raise RunHeld.of(run_dir)
        print(f"[{run_id}] {RunHeld.SKIPPED}", file=sys.stderr, flush=True)
        return None
    with hold_gpus(k) as ids, tempfile.TemporaryDirectory(prefix="sweeps-job-") as tmp:
        cfg_path = Path(tmp) / "config.json"
        cfg_path.write_text(json.dumps(asdict(cfg)), encoding="utf-8")
        job = ["-m", "sweeps.job", str(cfg_path)] + (["--in-sweep"] if in_sweep else [])
        if k > 1:  # torchrun: one rank per device, rank i on cuda:i of the visible ones
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
            cmd += [f"--nproc_per_node={k}", *job]
        else:
            cmd = [sys.executable, *job]
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(ids), ENV_CHILD: "1"}
        started = time.time()
        print(f"[{run_id}] on GPU {','.join(ids)}", file=sys.stderr, flush=True)
        rc = subprocess.run(cmd, env=env, check=False).returncode
        _log(
            sweep_dir,
            {"run_id": run_id, "gpus": ids, "start": started, "end": time.time(), "rc": rc},
        )
    if rc == 2 and not in_sweep:
        sys.exit(2)  # the child printed the user's mistake
    try:
        return records.read_record(run_dir)
    except records.RecordError:
        if rc != 0 and not in_sweep:
            sys.exit(rc)  # no record, and the child said why (a run another process holds, ...)
        return None
