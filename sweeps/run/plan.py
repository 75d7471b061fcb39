"""What a run will do, derived from its config before any training: shape, N, steps, D, C.

`sweeps.plan` prints these for a whole sweep and `sweeps.train` trains exactly them, so the plan
and the records agree by construction (D and C are rounded down to whole optimizer steps).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from models import flops_per_token, make_shape, param_counts, solve_shape
from sweeps.config import OptimConfig, RunConfig
from sweeps.errors import UserError
from sweeps.run.hparam_rules import resolve_hparams
from sweeps.run.identity import run_id_for

__all__ = ["RunPlan", "model_id_for", "plan_run", "resolved_config", "shape_for"]


@dataclass(frozen=True)
class RunPlan:
    """A run's derived quantities. N is the matmul convention (see sweeps/records.py)."""

    shape: Any  # models.GPTShape | models.LSTMShape
    n_params_by_convention: dict[str, int]
    flops_per_token: dict[str, float]  # six_n, forward, exact
    optim: OptimConfig  # the run's optim, numbers in place of "auto": optim.lr is what AdamW gets
    n_steps: int
    tokens_per_step: int
    problem: str | None  # why the run cannot be trained sensibly (a sweep skips it), else None

    @property
    def lr(self) -> float:
        """optim.lr as trained: the configured number, or the rules' value for "auto"."""
        return float(self.optim.lr)

    @property
    def batch_size(self) -> int:
        """optim.batch_size as trained (sequences per step)."""
        return int(self.optim.batch_size)

    @property
    def n_params(self) -> int:
        return self.n_params_by_convention["matmul"]

    @property
    def n_tokens(self) -> int:
        return self.n_steps * self.tokens_per_step

    @property
    def flops(self) -> float:
        """C = 6 N D with N the matmul convention and D the tokens actually trained on."""
        return self.flops_per_token["six_n"] * self.n_tokens


def model_id_for(cfg: RunConfig, shape: Any) -> str:
    """The run id `cfg` would have with its shape spelled out instead of its size target: runs
    with one model id train the same model (targets that resolve to one shape) under two ids."""
    explicit = replace(
        cfg,
        model=replace(cfg.model, n_params=None, n_layer=shape.n_layer, d_model=shape.d_model,
                      n_head=getattr(shape, "n_head", None)),
    )  # fmt: skip
    return run_id_for(explicit)


def shape_for(cfg: RunConfig, *, vocab_size: int) -> Any:
    """The model shape: explicit (n_layer, d_model) or solved from the target n_params."""
    m = cfg.model
    try:
        if m.n_layer is not None and m.d_model is not None:
            return make_shape(
                m.arch,
                n_layer=m.n_layer,
                d_model=m.d_model,
                n_head=m.n_head,
                vocab_size=vocab_size,
                context=m.context,
                tied=m.tied,
            )
        assert m.n_params is not None
        return solve_shape(
            m.arch,
            n_params=m.n_params,
            vocab_size=vocab_size,
            context=m.context,
            tied=m.tied,
            min_layers=m.min_layers,
            n_head=m.n_head,
        )
    except ValueError as e:
        # models/ says "<problem>; <fix>": split it so the line reads like every other error.
        problem, sep, fix = str(e).rstrip(".").rpartition("; ")
        if not sep:
            problem, fix = fix, "choose another model.n_params or shape"
        field = "model.n_layer/model.d_model" if m.n_layer is not None else "model.n_params"
        raise UserError(field, problem, fix) from e


def plan_run(cfg: RunConfig, *, vocab_size: int) -> RunPlan:
    """Derive shape, hyper-parameters and the horizon in whole steps from the config.

    Horizons: budget.tokens is D; budget.flops is C with D = C / (6 N); budget.tokens_per_param
    is D = k N; budget.steps fixes the steps. D is rounded down to whole steps of
    batch_size * context tokens. `problem` is set when fewer than budget.min_steps remain.
    """
    shape = shape_for(cfg, vocab_size=vocab_size)
    counts = param_counts(shape)
    fpt = flops_per_token(shape)
    n_params = counts["matmul"]
    lr, batch_size = resolve_hparams(cfg.optim, n_params=n_params, budget=cfg.budget)
    tokens_per_step = batch_size * cfg.model.context
    b = cfg.budget
    if b.steps is not None:
        n_steps = int(b.steps)
    else:
        if b.tokens is not None:
            target = float(b.tokens)
        elif b.flops is not None:
            target = float(b.flops) / fpt["six_n"]
        else:
            assert b.tokens_per_param is not None
            target = float(b.tokens_per_param) * n_params
        n_steps = int(target // tokens_per_step)
    problem = None
    min_steps = cfg.budget.min_steps
    if n_steps < max(1, min_steps):
        problem = (
            f"{n_steps} optimizer steps of {tokens_per_step} tokens (batch {batch_size} x context "
            f"{cfg.model.context}) fit in this budget, fewer than {max(1, min_steps)}"
        )
    return RunPlan(
        shape=shape,
        n_params_by_convention=counts,
        flops_per_token=fpt,
        optim=replace(cfg.optim, lr=lr, batch_size=batch_size),
        n_steps=n_steps,
        tokens_per_step=tokens_per_step,
        problem=problem,
    )


def resolved_config(cfg: RunConfig, plan: RunPlan, *, precision: str, device: str) -> dict:
    """The record's config: every field but the tracker node (a record is the same with or
    without trackers), and what "auto" settings resolved to."""
    config = asdict(cfg)
    del config["tracker"]
    config["resolved"] = {
        "lr": plan.lr,
        "batch_size": plan.batch_size,
        "precision": precision,
        "device": device,
    }
    return config
