"""Entry point: `python -m sweeps.train [overrides]` for one run, `-m` for a sweep.

Hydra stays here, at the edge: it composes conf/ onto the schemas of sweeps/config.py; this
module turns the result into a plain RunConfig and hands it to sweeps.run.runner.run_ranked
(or, on a GPU machine, to a child process on devices of its own: sweeps/sweep/gpus.py; for
a WSD branch-mode job, to sweeps.branches.wsd.run_job).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from sweeps.errors import RunHeld, UserError
from sweeps.run.identity import run_id_for
from sweeps.run.preflight import check_config
from sweeps.run.runner import run_ranked
from sweeps.sweep.callbacks import JOB_ERRORS
from sweeps.sweep.compose import register_configs, run_hydra_cli, to_run_config
from sweeps.sweep.gpus import run_on_gpus, wants_pool

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    in_sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    run_cfg = None
    try:
        run_cfg = to_run_config(cfg)  # OmegaConf's refusals too, as one UserError
        check_config(run_cfg)  # before anything below imports torch (~3 s of CPU)
        if run_cfg.branch.budgets is not None:
            # Imported here, not at the top: branch planning needs models/ and so torch (10-20 s
            # to import on this loaded 2-core Xeon), which run_one skips for a finished run.
            from sweeps.branches.wsd import run_job

            record = run_job(run_cfg, in_sweep=in_sweep)  # in this process (no GPU pool, no DDP)
        elif wants_pool(
            run_cfg, launcher=str(HydraConfig.get().launcher.get("_target_", "")), in_sweep=in_sweep
        ):
            record = run_on_gpus(run_cfg, in_sweep=in_sweep)  # own devices, own process
        else:
            record = run_ranked(run_cfg, in_sweep=in_sweep)  # here, as one rank or the only one
    except UserError as e:
        print(f"error: {e.line()}", file=sys.stderr, flush=True)
        if not in_sweep:
            sys.exit(2)
        row = {
            "overrides": list(HydraConfig.get().overrides.task),
            "error": e.line(),
            "time": time.time(),
            # refused after composing (a check inside the run): status shows its id refused
            "run_id": run_id_for(run_cfg) if run_cfg is not None else None,
        }
        sweep_dir = Path(HydraConfig.get().sweep.dir)
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            with open(sweep_dir / JOB_ERRORS, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        except OSError:  # a full disk (the error just printed): the line above is the report
            pass
        return None
    except RunHeld as e:  # a single run only (a sweep's job skips a held run and goes on)
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception:
        if in_sweep:
            return None  # the failed record is written; the sweep summary reports it
        raise
    if record is None:
        return None
    if not in_sweep and record.get("status") not in ("ok",):
        sys.exit(1)
    loss = record.get("loss")
    return float(loss) if loss is not None else None


def _launcher() -> str:
    """The Hydra launcher's class path (the GPU pool serves local launchers only)."""
    return str(HydraConfig.get().launcher.get("_target_", ""))


def cli() -> None:
    """`main()`, with Hydra's own config errors printed as one `error:` line, exit code 2."""
    run_hydra_cli(main)


if __name__ == "__main__":
    cli()
