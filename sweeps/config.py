"""Typed config: the dataclass schemas that Hydra composes `conf/` YAML onto.

Every field is named the same from the command line to the record (`optim.lr` everywhere). The
training loop receives a plain `RunConfig` (via `sweeps.sweep.compose.to_run_config`, the Hydra
edge), never a DictConfig. Validation lives in `__post_init__`, which runs when OmegaConf turns the
composed config into these objects; a bad value raises `UserError` naming the field and the fix.
The run id (a hash of the semantic part of a RunConfig) is derived in sweeps/run/identity.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sweeps.errors import require
from sweeps.tracking.settings import TrackerConfig

__all__ = [
    "ModelConfig",
    "DataConfig",
    "OptimConfig",
    "ScheduleConfig",
    "BudgetConfig",
    "BranchConfig",
    "RunConfig",
    "TrackerConfig",
    "HORIZONS",
]

ARCHS = ("gpt", "lstm")
DATA_NAMES = ("pystdlib", "text", "tokens", "synthetic")
TOKENIZERS = ("bytes", "bpe")
SCHEDULES = ("cosine", "wsd", "constant")
DECAY_SHAPES = ("1-sqrt", "linear")
PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")
HORIZONS = ("tokens", "flops", "tokens_per_param", "steps")  # BudgetConfig's, exactly one is set


def _choice(value: str, options: tuple[str, ...], field_name: str) -> None:
    require(value in options, field_name, f"unknown value {value!r}", f"use one of {list(options)}")


@dataclass
class ModelConfig:
    """The model: a family and a size, either a target N or an explicit shape."""

    arch: str = "gpt"  # gpt | lstm
    n_params: float | None = 1e5  # target N (matmul convention, see sweeps/records.py)
    n_layer: int | None = None  # explicit shape: n_layer and d_model (overrides n_params)
    d_model: int | None = None
    n_head: int | None = None  # GPT only: a head count for every size (default: head width 16)
    context: int = 256  # tokens per training sequence
    tied: bool = False  # output head shares the token-embedding weight
    min_layers: int = 2  # depth policy when solving n_params to a shape

    def __post_init__(self) -> None:
        _choice(self.arch, ARCHS, "model.arch")
        explicit = self.n_layer is not None or self.d_model is not None
        if explicit:
            require(
                self.n_layer is not None and self.d_model is not None,
                "model.n_layer/model.d_model",
                "an explicit shape needs both",
                "set both model.n_layer and model.d_model, or neither and model.n_params",
            )
            require(self.n_layer >= 1, "model.n_layer", "must be >= 1", "e.g. model.n_layer=2")  # type: ignore[operator]
            require(self.d_model >= 1, "model.d_model", "must be >= 1", "e.g. model.d_model=64")  # type: ignore[operator]
        else:
            require(
                self.n_params is not None and math.isfinite(self.n_params) and self.n_params > 0,
                "model.n_params",
                f"must be a positive number, got {self.n_params}",
                "e.g. model.n_params=1e5, or give model.n_layer and model.d_model",
            )
        if self.n_head is not None:
            require(
                self.arch == "gpt",
                "model.n_head",
                "applies to the GPT only",
                "unset it (model.n_head=null) for model.arch=lstm",
            )
            require(self.n_head >= 1, "model.n_head", "must be >= 1", "e.g. model.n_head=2")
        require(self.context >= 2, "model.context", "must be >= 2", "e.g. model.context=256")
        require(self.min_layers >= 1, "model.min_layers", "must be >= 1", "e.g. model.min_layers=2")


@dataclass
class DataConfig:
    """The corpus, its tokenizer, and the fixed held-out evaluation set."""

    name: str = "pystdlib"  # pystdlib | text | tokens | synthetic
    path: str | None = None  # text: file, folder or glob; tokens: .bin/.npy array file
    tokenizer: str = "bytes"  # bytes | bpe (trained on the train split)
    vocab_size: int = 4096  # BPE vocabulary size (bytes: always 256)
    token_dtype: str = "uint16"  # tokens: dtype of a raw .bin file (uint16 | uint32)
    val_fraction: float = 0.05  # share of files (or tokens) held out for validation
    n_val_tokens: int = 65536  # size of the fixed evaluation set (tokens)
    synthetic_n_tokens: int = 200_000  # synthetic: corpus length
    synthetic_vocab_size: int = 64  # synthetic: alphabet size
    cache_dir: str = ""  # where encoded corpora are cached; "" = $XDG_CACHE_HOME/scaling-sweeps

    def __post_init__(self) -> None:
        _choice(self.name, DATA_NAMES, "data.name")
        _choice(self.tokenizer, TOKENIZERS, "data.tokenizer")
        if self.name in ("text", "tokens"):
            require(
                bool(self.path),
                "data.path",
                f"data.name={self.name} needs a path",
                "set data.path=/path/to/your/data",
            )
        else:  # a path given to a built-in corpus would be ignored: say so rather than train on it
            require(
                not self.path,
                "data.path",
                f"data.name={self.name} reads no path (it would train on the {self.name} corpus)",
                "add data=text (UTF-8 files) or data=tokens (.bin/.npy), or drop data.path",
            )
        # settings of one source or tokenizer, set for another, would be ignored (and would still
        # give the runs new ids): refuse them
        defaults = DataConfig.__dataclass_fields__
        for field_name, applies, where in (
            ("vocab_size", self.tokenizer == "bpe", "data.tokenizer=bpe"),
            ("token_dtype", self.name == "tokens", "data=tokens"),
            ("synthetic_n_tokens", self.name == "synthetic", "data=synthetic"),
            ("synthetic_vocab_size", self.name == "synthetic", "data=synthetic"),
        ):
            require(
                applies or getattr(self, field_name) == defaults[field_name].default,
                f"data.{field_name}",
                f"applies to {where} only and would be ignored here",
                f"drop data.{field_name}, or use {where}",
            )
        require(
            0.0 < self.val_fraction < 1.0,
            "data.val_fraction",
            f"must be in (0, 1), got {self.val_fraction}",
            "e.g. data.val_fraction=0.05",
        )
        require(self.n_val_tokens > 0, "data.n_val_tokens", "must be > 0", "e.g. 65536")
        require(
            self.vocab_size >= 257 or self.tokenizer != "bpe",
            "data.vocab_size",
            "a BPE vocabulary must exceed the 256 byte symbols",
            "e.g. data.vocab_size=4096",
        )
        _choice(self.token_dtype, ("uint16", "uint32"), "data.token_dtype")


@dataclass
class OptimConfig:
    """AdamW and the batch. `lr` and `batch_size` may be "auto" (fitted rules by model size)."""

    # int too, or `optim.lr=1` (and the typo `optim.lr=0`) would fail with a type error
    lr: float | int | str = 3e-3  # peak learning rate, or "auto"
    batch_size: int | str = 16  # sequences per optimizer step, or "auto"
    weight_decay: float = 0.1  # decoupled, on matrices only
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    rules: str = ""  # hparam_rules.json for "auto"; "" = the built-in defaults

    def __post_init__(self) -> None:
        if isinstance(self.lr, str):
            require(self.lr == "auto", "optim.lr", f"unknown value {self.lr!r}", "a number or auto")
        else:
            self.lr = float(self.lr)  # optim.lr=1 and optim.lr=1.0 are the same run
            require(
                math.isfinite(self.lr) and self.lr > 0,
                "optim.lr",
                f"must be a finite number > 0, got {self.lr}",
                "e.g. optim.lr=3e-3",
            )
        if isinstance(self.batch_size, str):
            require(
                self.batch_size == "auto",
                "optim.batch_size",
                f"unknown value {self.batch_size!r}",
                "a positive integer or auto",
            )
        else:
            require(self.batch_size >= 1, "optim.batch_size", "must be >= 1", "e.g. 16")
        require(self.weight_decay >= 0, "optim.weight_decay", "must be >= 0", "e.g. 0.1")
        require(0 <= self.beta1 < 1, "optim.beta1", "must be in [0, 1)", "e.g. 0.9")
        require(0 <= self.beta2 < 1, "optim.beta2", "must be in [0, 1)", "e.g. 0.95")
        require(self.grad_clip >= 0, "optim.grad_clip", "must be >= 0", "e.g. 1.0 (0 = off)")


@dataclass
class ScheduleConfig:
    """Learning-rate schedule over the run's actual number of steps."""

    name: str = "cosine"  # cosine | wsd | constant
    warmup_frac: float = 0.05  # share of steps spent warming up linearly
    warmup_steps: int | None = None  # absolute warmup length; overrides warmup_frac (WSD branches)
    min_lr_frac: float = 0.1  # cosine ends at min_lr_frac * lr
    decay_frac: float = 0.2  # wsd: share of steps in the final cooldown
    decay_shape: str = "1-sqrt"  # wsd cooldown: 1-sqrt | linear

    def __post_init__(self) -> None:
        _choice(self.name, SCHEDULES, "schedule.name")
        _choice(self.decay_shape, DECAY_SHAPES, "schedule.decay_shape")
        require(0 <= self.warmup_frac < 1, "schedule.warmup_frac", "must be in [0, 1)", "0.05")
        require(
            self.warmup_steps is None or self.warmup_steps >= 0,
            "schedule.warmup_steps",
            "must be >= 0",
            "e.g. schedule.warmup_steps=20, or leave it unset to use schedule.warmup_frac",
        )
        require(0 <= self.min_lr_frac <= 1, "schedule.min_lr_frac", "must be in [0, 1]", "0.1")
        require(0 < self.decay_frac <= 1, "schedule.decay_frac", "must be in (0, 1]", "0.2")


@dataclass
class BudgetConfig:
    """The training horizon: exactly one of tokens, flops (C = 6 N D), tokens_per_param, steps."""

    tokens: float | None = None
    flops: float | None = None
    tokens_per_param: float | None = None
    steps: int | None = None
    min_steps: int = (
        1  # fewer optimizer steps than this: an error for one run, `skipped` in a sweep
    )

    def check(self) -> None:
        """Called by RunConfig: the schema's default (no horizon) must stay constructible."""
        given = {k: getattr(self, k) for k in HORIZONS if getattr(self, k) is not None}
        require(
            len(given) == 1,
            "budget",
            "exactly one horizon is needed, got "
            + (", ".join(f"budget.{k}={v}" for k, v in given.items()) or "none"),
            "pick one group, e.g. budget=tokens budget.tokens=1e6 "
            "or budget=flops budget.flops=1e12",
        )
        ((key, value),) = given.items()
        require(
            math.isfinite(float(value)) and value > 0,
            f"budget.{key}",
            f"must be a finite number > 0, got {value}",
            f"e.g. budget.{key}=" + {"tokens": "1e6", "flops": "1e12"}.get(key, "20"),
        )
        require(self.min_steps >= 1, "budget.min_steps", "must be >= 1", "e.g. budget.min_steps=50")


ROLES = ("run", "trunk", "branch")


@dataclass
class BranchConfig:
    """WSD cooldown branches (sweeps/branches/wsd.py): setting `budgets` turns a sweep job into a
    branch that forks from a constant-lr trunk shared by every job of its model size."""

    budgets: list[float] | None = None  # the sweep's values of this job's budget horizon
    role: str = "run"  # run | trunk | branch; trunk and branch are set by sweeps/branches/wsd.py
    fork_steps: list[int] | None = None  # a trunk's kept checkpoints (set by branches/wsd.py)
    keep_forks: bool = False  # keep a trunk's fork checkpoints after all their branches ended

    def __post_init__(self) -> None:
        _choice(self.role, ROLES, "branch.role")
        require(
            self.budgets is None or (len(self.budgets) > 0 and min(self.budgets) > 0),
            "branch.budgets",
            f"must be a non-empty list of positive horizons, got {self.budgets}",
            "e.g. branch.budgets=[5e5,1e6,2e6] with budget.tokens=5e5,1e6,2e6",
        )


@dataclass
class RunConfig:
    """Everything one training run needs. Fields above `seed` and `seed` itself are semantic."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)  # conf/budget/*.yaml sets one
    seed: int = 0
    precision: str = (
        "auto"  # auto (bf16 on CUDA or a CPU with native bf16, else fp32) | fp32 | bf16
    )
    parent_run_id: str | None = None  # a branch's trunk (WSD cooldown branches)
    branch: BranchConfig = field(default_factory=BranchConfig)  # WSD cooldown branch mode
    # ---- not part of the run id (execution knobs, or inputs already resolved into the above) ----
    isoflop_tokens_per_param: float | None = None  # IsoFLOP grids: r, with model.n_params from
    #   ${isoflop_n_params:${budget.flops},${isoflop_tokens_per_param}} = sqrt(C / (6 r))
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 1  # torch.set_num_threads; fill cores with runs, not threads
    compile: bool | None = (
        None  # torch.compile the model; null (auto): on CUDA only (it pays there)
    )
    gpus_per_run: int = 1  # GPUs per run (DDP over them); a local sweep runs G / k runs at once
    n_evals: int = 8  # evaluations on the held-out set over the run (the last is the final loss)
    checkpoint_every_s: float = 60.0  # also checkpoints at every evaluation
    results_dir: str = "results"
    sweep_name: str = "default"
    wave: int | None = None  # the wave of a planned sweep that proposed this run (sweeps.next)
    progress: str = "auto"  # auto (bar on a terminal, log lines otherwise) | bar | log | none
    max_retries: int = 1  # a failed run is retried this many times by a rerun
    tracker: TrackerConfig = field(default_factory=TrackerConfig)  # sweeps/tracking/settings.py

    def __post_init__(self) -> None:
        self.budget.check()
        _choice(self.precision, PRECISIONS, "precision")
        _choice(self.device, DEVICES, "device")
        _choice(self.progress, ("auto", "bar", "log", "none"), "progress")
        require(self.threads >= 1, "threads", "must be >= 1", "e.g. threads=1")
        require(self.gpus_per_run >= 1, "gpus_per_run", "must be >= 1", "e.g. gpus_per_run=1")
        require(self.n_evals >= 1, "n_evals", "must be >= 1", "e.g. n_evals=8")
        require(self.max_retries >= 0, "max_retries", "must be >= 0", "e.g. max_retries=1")
        require(
            self.checkpoint_every_s >= 0,
            "checkpoint_every_s",
            "must be >= 0",
            "e.g. checkpoint_every_s=60 (0: after every step)",
        )
        require(self.wave is None or self.wave >= 0, "wave", f"must be >= 0, got {self.wave}",
                "wave=1 (sweeps.next numbers its waves), or leave it unset")  # fmt: skip
        require(bool(self.sweep_name), "sweep_name", "must not be empty", "sweep_name=mysweep")
        require(bool(self.results_dir.strip()), "results_dir", "must not be empty",
                "e.g. results_dir=results")  # fmt: skip
        require(
            not (self.optim.batch_size == "auto" and self.budget.steps is not None),
            "optim.batch_size",
            "auto follows the run's tokens or FLOPs, which budget=steps does not fix (the rule "
            "would give its smallest batch at every size)",
            "use budget=tokens, budget=flops or budget=tokens_per_param, or a number of sequences",
        )
