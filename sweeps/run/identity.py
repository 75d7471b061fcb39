"""A run's identity: the semantic part of its config and the run id (the folder name) it hashes to.

Execution knobs (threads, results_dir, progress, ...) are not part of it, so the same run found by
another sweep, on another machine or with other knobs is the same folder and is never retrained.

The rule is versioned: `id_version` (sweeps/run_record.py RUN_ID_VERSION) is hashed into every id
and written into config.json and the record. Version 2 dropped the special cases of version 1 that
only kept older ids (a None `schedule.warmup_steps` deleted, an `n_head_solved` marker, the branch
node deleted at its defaults), so every id since is the plain hash of the rules below; folders of
version 1 are reported by sweeps.status and sweeps.plan and left out of fits by analysis/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from sweeps.config import ModelConfig, RunConfig, ScheduleConfig
from sweeps.run.hparam_rules import rules_fingerprint
from sweeps.run_record import RUN_ID_VERSION

__all__ = ["SEMANTIC_FIELDS", "semantic_config", "run_id_for"]

SEMANTIC_FIELDS = (
    "model",
    "data",
    "optim",
    "schedule",
    "budget",
    "seed",
    "precision",
    "parent_run_id",
    "branch",
)


def semantic_config(cfg: RunConfig) -> dict[str, Any]:
    """The part of the config that changes the result; it names the run (execution knobs do not)."""
    full = dataclasses.asdict(cfg)
    sem = {"id_version": RUN_ID_VERSION} | {k: full[k] for k in SEMANTIC_FIELDS}
    sem["data"] = {k: v for k, v in sem["data"].items() if k != "cache_dir"}
    # A schedule's settings it never reads enter the id at their defaults: setting them trains
    # the same model, so it must not get a new id (and a WSD trunk, a constant schedule, is one
    # per size whatever its branches' cooldown shape).
    unused = {
        "constant": ["min_lr_frac", "decay_frac", "decay_shape"],
        "cosine": ["decay_frac", "decay_shape"],
        "wsd": ["min_lr_frac"],
    }[cfg.schedule.name]
    if cfg.schedule.warmup_steps is not None:
        unused.append("warmup_frac")
    for key in unused:
        sem["schedule"][key] = getattr(ScheduleConfig(), key)
    if cfg.model.n_layer is not None and cfg.model.d_model is not None:
        # an explicit shape reads neither the size target nor the depth policy: at their defaults
        # in the id, so a grid over model.n_params with a fixed shape names one model once
        # instead of training it once per target
        sem["model"]["n_params"] = ModelConfig().n_params
        sem["model"]["min_layers"] = ModelConfig().min_layers
    del sem["branch"]["keep_forks"]  # housekeeping, not the result
    if "auto" in (cfg.optim.lr, cfg.optim.batch_size):
        # "auto" means "what the rules say": refitting a rules file in place (or new built-in
        # defaults) must give new run ids, not reuse runs trained with the old rules
        sem["auto_rules"] = rules_fingerprint(cfg.optim.rules)
    return sem


def run_id_for(cfg: RunConfig) -> str:
    """A short hash of the semantic config: the run's folder name, stable across machines."""
    blob = json.dumps(semantic_config(cfg), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
