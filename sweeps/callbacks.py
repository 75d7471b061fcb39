"""Hydra callback for sweeps: notes the sweep's size at the start, prints a summary at the end,
and makes the command exit non-zero when any run failed or any job had a config error."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sweeps import records

__all__ = ["SweepSummary"]

SWEEP_FILE = ".sweep.json"
JOB_ERRORS = ".job_errors.jsonl"


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / JOB_ERRORS).unlink(missing_ok=True)
        self.t0 = time.time()
        self.before = {
            p.name for p in records.iter_run_dirs(sweep_dir) if records.run_state(p) == "done"
        }
        records.write_json_atomic(sweep_dir / SWEEP_FILE, {"started_at": self.t0})

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        states: Counter[str] = Counter()
        failed = []
        for run_dir in records.iter_run_dirs(sweep_dir):
            state = records.run_state(run_dir)
            if state == "done":
                status = records.read_record(run_dir).get("status", "?")
                states[status] += 1
            else:
                states[state] += 1
                if state == "failed":
                    failed.append(run_dir.name)
        errors = []
        if (sweep_dir / JOB_ERRORS).exists():
            errors = [
                json.loads(line)
                for line in (sweep_dir / JOB_ERRORS).read_text().splitlines()
                if line.strip()
            ]
        elapsed = time.time() - getattr(self, "t0", time.time())
        parts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        print(f"\nsweep {sweep_dir}: {parts or 'no runs'} in {elapsed:.0f}s", file=sys.stderr)
        for name in failed:
            print(f"  failed: {sweep_dir / name} (see error.log there)", file=sys.stderr)
        for err in errors:
            print(
                f"  config error for {' '.join(err['overrides'])}: {err['error']}", file=sys.stderr
            )
        if failed or errors or states.get("partial"):
            sys.stderr.flush()
            sys.exit(1)
