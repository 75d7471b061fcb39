"""Entry point: `python -m sweeps.train [overrides]` for one run, `-m` for a sweep.

Hydra stays here, at the edge: it composes conf/ onto the schemas of sweeps/config.py; this
module turns the result into a plain RunConfig and hands it to sweeps.run.runner.run_ranked
(or, on a GPU machine, to a child process on devices of its own: sweeps/sweep/gpus.py; for
a WSD branch-mode job, to sweeps.branches.wsd.run_job).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException, MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from sweeps.errors import UserError
from sweeps.run.runner import run_ranked
from sweeps.sweep.callbacks import JOB_ERRORS
from sweeps.sweep.compose import register_configs, to_run_config
from sweeps.sweep.gpus import run_on_gpus, wants_pool

register_configs()


def _user_error_from_omegaconf(e: OmegaConfBaseException) -> UserError:
    key = getattr(e, "full_key", None) or "config"
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return UserError(str(key), msg, f"check the value of {key} on the command line or in conf/")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    in_sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        try:
            run_cfg = to_run_config(cfg)
        except OmegaConfBaseException as e:
            raise _user_error_from_omegaconf(e) from e
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
        sweep_dir = Path(HydraConfig.get().sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with open(sweep_dir / JOB_ERRORS, "a", encoding="utf-8") as f:
            overrides = list(HydraConfig.get().overrides.task)
            f.write(json.dumps({"overrides": overrides, "error": e.line(), "time": time.time()}))
            f.write("\n")
        return None
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


def _compose_error(e: Exception) -> UserError:
    """Hydra's compose-time errors (unknown key, wrong type, unknown option) as one UserError."""
    cause = e.__cause__ if isinstance(e.__cause__, OmegaConfBaseException) else e
    first = " ".join(str(cause).split("\n")[0].split()) or type(cause).__name__
    if isinstance(e, MissingConfigException) and e.missing_cfg_file:
        group, _, name = e.missing_cfg_file.rpartition("/")
        options = [o for o in (e.options or []) if o != "schema"]
        return UserError(
            group or "config", f"no option {name!r}", f"use one of {options}" if options else ""
        )
    if isinstance(e, OverrideParseException):
        return UserError(
            e.override or "overrides", first, "write each override as key=value, e.g. optim.lr=3e-3"
        )
    key = getattr(cause, "full_key", None) or "overrides"
    schema = getattr(cause, "object_type", None)
    if "not in" in first and dataclasses.is_dataclass(schema):  # an unknown key
        names = [f.name for f in dataclasses.fields(schema)]
        close = difflib.get_close_matches(str(key).rpartition(".")[2], names, n=1)
        prefix = str(key).rpartition(".")[0]
        guess = f"{prefix}.{close[0]}" if prefix and close else (close[0] if close else None)
        fix = f"did you mean {guess}?" if guess else f"valid keys here: {', '.join(names)}"
        return UserError(str(key), f"unknown key ({first})", fix)
    return UserError(
        str(key),
        first,
        "give it a value of the type in sweeps/config.py (`python -m sweeps.train --cfg job` "
        "shows every key with its default)",
    )


def cli() -> None:
    """`main()`, with Hydra's own config errors printed as one `error:` line, exit code 2."""
    keep_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    # Let Hydra's errors reach us instead of its own multi-line printer (our bugs keep a traceback).
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except (CompactHydraException, OmegaConfBaseException) as e:
        if keep_traceback:
            raise
        print(f"error: {_compose_error(e).line()}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    cli()
