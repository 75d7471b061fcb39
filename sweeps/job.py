"""`python -m sweeps.job CONFIG.json [--in-sweep]`: train one resolved RunConfig (JSON of its
dataclass fields) in this process, as one rank when started by torchrun.

The child side of sweeps/sweep/gpus.py: the parent job resolved the config with Hydra and chose the
devices (CUDA_VISIBLE_DEVICES) before this process started. Exit codes as `sweeps.train`: 0 ok
(or nothing to do), 1 the run ended other than ok, 2 the user's mistake (one `error:` line).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sweeps.config import RunConfig
from sweeps.errors import RunHeld, UserError

__all__ = ["load_run_config", "main"]


def load_run_config(path: Path) -> RunConfig:
    """A RunConfig from the JSON of `dataclasses.asdict(cfg)`, validated like a composed one."""
    from omegaconf import OmegaConf

    raw = json.loads(path.read_text(encoding="utf-8"))
    obj = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), raw))
    assert isinstance(obj, RunConfig)
    return obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweeps.job", description=__doc__)
    parser.add_argument("config", type=Path, help="the run's resolved config as JSON")
    parser.add_argument("--in-sweep", action="store_true", help="the job of a sweep")
    args = parser.parse_args(argv)
    from sweeps.run.runner import run_ranked

    cfg = None
    try:
        cfg = load_run_config(args.config)
        record = run_ranked(cfg, in_sweep=args.in_sweep)
    except RunHeld as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    except UserError as e:
        print(f"error: {e.line()}", file=sys.stderr, flush=True)
        if args.in_sweep and cfg is not None:
            from sweeps.run.identity import run_id_for
            from sweeps.sweep.callbacks import JOB_ERRORS

            sweep_dir = Path(cfg.results_dir) / cfg.sweep_name
            sweep_dir.mkdir(parents=True, exist_ok=True)
            with open(sweep_dir / JOB_ERRORS, "a", encoding="utf-8") as f:
                row = {
                    "run_id": run_id_for(cfg),
                    "overrides": [f"run {run_id_for(cfg)}"],
                    "error": e.line(),
                    "time": time.time(),
                }
                f.write(json.dumps(row) + "\n")
        return 2
    if record is None or args.in_sweep:
        return 0
    return 0 if record.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
