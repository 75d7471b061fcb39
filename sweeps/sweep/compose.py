"""The Hydra edge: register the schemas of sweeps/config.py, and turn a composed DictConfig into
a validated plain RunConfig (checks that need the unresolved config live here too).

Everything past `to_run_config` takes plain dataclasses; only the entry points (sweeps.train,
sweeps.tune) and the sweep modules (expansion, plan, callback) import this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sweeps.config import (
    BudgetConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    ScheduleConfig,
    TrackerConfig,
)
from sweeps.errors import UserError

__all__ = ["register_configs", "to_run_config", "value_error", "compose_error", "run_hydra_cli"]


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (YAML under conf/ selects and overrides)."""
    # An IsoFLOP grid as budgets x tokens-per-parameter ratios r: the size is N = sqrt(C / (6 r)),
    # so every budget's sizes sit around its own optimum (a fixed size list cannot).
    if not OmegaConf.has_resolver("isoflop_n_params"):
        OmegaConf.register_new_resolver(
            "isoflop_n_params", lambda c, r: (float(c) / (6.0 * float(r))) ** 0.5
        )
    if not OmegaConf.has_resolver("gpu_jobs"):  # launcher=joblib: G / k jobs with G GPUs
        from sweeps.sweep.gpus import gpu_jobs

        OmegaConf.register_new_resolver("gpu_jobs", gpu_jobs)
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    cs.store(group="model", name="schema", node=ModelConfig)
    cs.store(group="data", name="schema", node=DataConfig)
    cs.store(group="optim", name="schema", node=OptimConfig)
    cs.store(group="schedule", name="schema", node=ScheduleConfig)
    cs.store(group="budget", name="schema", node=BudgetConfig)
    cs.store(group="tracker", name="schema", node=TrackerConfig)


def _refuse_unknown_keys(node: Any, prefix: str) -> None:
    """Keys added with `+` (`+model.nparams=3`) pass Hydra's schema check and would be ignored
    silently: refuse them."""
    schema = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(schema):
        return
    names = [f.name for f in dataclasses.fields(schema)]
    for key in node.keys():
        if key not in names:
            raise UserError(
                f"{prefix}{key}",
                "unknown key",
                f"remove it (keys here: {', '.join(names)})",
            )
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _refuse_unknown_keys(child, f"{prefix}{key}.")


def to_run_config(cfg: Any) -> RunConfig:
    """A composed DictConfig -> a validated plain RunConfig (raises UserError on a bad value,
    OmegaConf's own refusals included, through `value_error`)."""
    try:
        return _to_run_config(cfg)
    except OmegaConfBaseException as e:
        raise value_error(e) from e


def _to_run_config(cfg: Any) -> RunConfig:
    _refuse_unknown_keys(cfg, "")
    r = cfg.get("isoflop_tokens_per_param") if hasattr(cfg, "get") else None
    if r is not None and "model" in cfg:
        node = cfg.model._get_node("n_params")
        raw = node._value() if node is not None else None
        if not (OmegaConf.is_interpolation(cfg.model, "n_params") and "isoflop" in str(raw)):
            raise UserError(
                "isoflop_tokens_per_param",
                f"sets the model size only where model.n_params derives from it (sweep=demo); "
                f"here model.n_params is {raw} and r={r} would be ignored",
                "use sweep=demo, or give model.n_params='${isoflop_n_params:${budget.flops},"
                "${isoflop_tokens_per_param}}' with budget=flops, or drop isoflop_tokens_per_param",
            )
    obj = OmegaConf.to_object(cfg)
    if not isinstance(obj, RunConfig):
        raise TypeError(f"expected a RunConfig, got {type(obj).__name__}")
    # here, not in OptimConfig: branches and tune trials replace auto by numbers and keep rules
    if obj.optim.rules and "auto" not in (obj.optim.lr, obj.optim.batch_size):
        raise UserError(
            "optim.rules",
            "is read only for optim.lr=auto or optim.batch_size=auto; with numbers for both it "
            "would be ignored",
            "set optim.lr=auto and/or optim.batch_size=auto, or drop optim.rules",
        )
    return obj


def value_error(e: Exception) -> UserError:
    """A value OmegaConf refused while building the RunConfig, naming its full key (the one
    translation every entry point gets through `to_run_config`)."""
    key = getattr(e, "full_key", None) or "config"
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return UserError(str(key), msg, f"check the value of {key} on the command line or in conf/")


def compose_error(e: Exception) -> UserError:
    """Hydra's compose-time errors (unknown key, wrong type, unknown option) as one UserError."""
    import difflib

    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    cause = e.__cause__ if isinstance(e.__cause__, OmegaConfBaseException) else e
    first = " ".join(str(cause).split("\n")[0].split()) or type(cause).__name__
    # tune.* given to train or plan, whose RunConfig has no tune node: on the command line (the
    # cause names it) or by a tuning preset (Hydra wraps that error without a cause; its text
    # names it). sweeps.tune's own tune.* mistakes (a typo, a wrong type) are not this.
    if "Key 'tune' not in 'RunConfig'" in f"{e}\n{cause}":
        return UserError(
            "tune",
            "tune.* is an Optuna search (set by a tuning preset such as sweep=lr_tune, or on the "
            "command line), which only sweeps.tune reads",
            "run the same overrides with python -m sweeps.tune -m, or drop the tune.* settings",
        )
    if isinstance(e, MissingConfigException) and e.missing_cfg_file:
        group, _, name = e.missing_cfg_file.rpartition("/")
        options = [o for o in (e.options or []) if o != "schema"]
        return UserError(
            group or "config", f"no option {name!r}", f"use one of {options}" if options else ""
        )
    if isinstance(e, OverrideParseException):
        text = str(e.override or "")
        if "=" in text and not text.isascii():  # Hydra's lexer reads unquoted values as ASCII
            key, _, value = text.partition("=")
            return UserError(
                e.override or "overrides", first,
                f"quote a value with characters beyond ASCII: {key}='{value}' (in the shell: "
                f'"{key}=\'{value}\'")',
            )  # fmt: skip
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


def run_hydra_cli(main: Callable[[], Any]) -> None:
    """Call a `@hydra.main` function with Hydra's own config errors (unknown key, wrong type,
    unknown option) and a full disk printed as one `error:` line, exit code 2 (every Hydra entry
    point), and Ctrl-C as one line saying how to resume, exit code 130 (not a torch traceback)."""
    import os
    import sys

    from hydra.errors import CompactHydraException
    from omegaconf.errors import OmegaConfBaseException

    from sweeps.errors import out_of_space
    from sweeps.run.preempt import Terminated

    before = os.environ.get("HYDRA_FULL_ERROR")
    keep_traceback = before == "1"
    # Let Hydra's errors reach us instead of its own multi-line printer (our bugs keep a traceback).
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except (CompactHydraException, OmegaConfBaseException) as e:
        if keep_traceback:
            raise
        print(f"error: {compose_error(e).line()}", file=sys.stderr, flush=True)
        sys.exit(2)
    except Terminated as e:  # SIGTERM: the run saved a checkpoint at the step it reached
        if keep_traceback:
            raise
        print(
            f"\nterminated (SIGTERM) at step {e.step} of {e.n_steps}: a checkpoint is saved there "
            "and finished runs are kept; rerun the same command to resume from it",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(143)
    except Exception as e:  # a full disk met outside a run's folder (a data cache): one line
        full = out_of_space(e)
        if full is None or keep_traceback:
            raise
        print(f"error: {full.line()}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        if keep_traceback:
            raise
        print(
            "\ninterrupted: finished runs are kept; rerun the same command to go on (a run with "
            "a checkpoint resumes from it, the others start over)",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(130)
    finally:  # a caller in this process (a test, a notebook) keeps its environment as it was
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before
