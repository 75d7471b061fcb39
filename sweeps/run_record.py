"""`RunRecord`: the typed, frozen form of record.json (its fields: sweeps/records.py's docstring).

Standard library only, like sweeps/records.py: analysis/ may build and read records without torch.
One record type for every status: a run that never trained (skipped, a failed start, a branch whose
trunk failed) has the same fields as a trained one, with None where nothing was measured. Records
are built by `sweeps.run.record.make_record` (runs) and `analysis.laws.synthetic` (a known law),
written
by `sweeps.records.write_record`, and read back with `RunRecord.from_json`, which names the file
and the field of any record that does not fit the contract.

Versions: `schema_version` is the layout of record.json; `id_version` is the version of the rule
that names run folders (sweeps/run/identity.py). A record without `id_version` was named by
version 1, before the rule dropped its compatibility special cases; sweeps.status and sweeps.plan
report such folders and analysis/ leaves them out of fits (they are never reused nor deleted).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sweeps.config import ROLES  # run, trunk, branch (sweeps/branches/wsd.py)

__all__ = [
    "SCHEMA_VERSION",
    "RUN_ID_VERSION",
    "STATUSES",
    "RecordError",
    "RunRecord",
    "id_version_of",
]

SCHEMA_VERSION = 1
# Version 2 (2026-11-30): the id hashes `id_version` and drops the special cases that only kept
# older ids (warmup_steps None deleted, the n_head_solved marker, the default branch node deleted).
RUN_ID_VERSION = 2
STATUSES = ("ok", "diverged", "failed", "skipped")


class RecordError(ValueError):
    """A record file that cannot be used: names the file and why."""


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One run's record (record.json). Fields without a default are in every record ever written;
    the others are None when the run did not measure them (it never trained) or when an older
    record lacks them. Nested dicts are copies: treat them as read-only."""

    run_id: str
    sweep: str
    status: str
    reason: str | None
    config: dict[str, Any]
    arch: str
    shape: dict[str, Any]
    n_params: int
    n_params_total: int
    n_params_embedding: int
    n_params_non_embedding: int
    n_params_matmul: int
    n_tokens: int
    flops: float
    flops_budget: float | None
    loss: float | None
    seed: int
    dataset_id: str
    parent_run_id: str | None
    schema_version: int = SCHEMA_VERSION
    id_version: int = RUN_ID_VERSION
    role: str = "run"
    flops_per_token_6n: float | None = None
    flops_per_token_exact: float | None = None
    flops_exact: float | None = None
    flops_marginal: float | None = None
    loss_se: float | None = None
    perplexity: float | None = None
    bits_per_byte: float | None = None
    train_loss: float | None = None
    unigram_entropy: float | None = None
    n_steps: int | None = None
    n_steps_planned: int | None = None
    batch_size: int | None = None
    context: int | None = None
    lr: float | None = None
    precision: str | None = None
    time_s: float | None = None
    tokens_per_s: float | None = None
    mfu: float | None = None
    dataset: dict[str, Any] | None = None
    code_version: str | None = None
    lib_versions: dict[str, Any] | None = None
    host: str | None = None
    python: str | None = None
    created_at: str | None = None
    attempts: int | None = None

    def __post_init__(self) -> None:
        for name in ("config", "shape", "dataset", "lib_versions"):  # the caller's stay theirs
            object.__setattr__(self, name, copy.deepcopy(getattr(self, name)))
        _check(self.to_json(), f"record of run {self.run_id!r}")

    def to_json(self) -> dict[str, Any]:
        """The JSON object record.json holds (a deep copy: changing it leaves the record alone)."""
        out: dict[str, Any] = dataclasses.asdict(self)
        return out

    @classmethod
    def from_json(cls, obj: Any, *, source: str = "record") -> RunRecord:
        """The record a JSON object holds; RecordError naming `source` (the file) and the field
        when a field is missing or of the wrong type. A record without `id_version` is version 1."""
        if not isinstance(obj, Mapping):
            raise RecordError(f"{source}: not a run record (a JSON {type(obj).__name__})")
        _check(obj, source)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in obj.items() if k in known}
        values.setdefault("id_version", 1)
        return cls(**json.loads(json.dumps(values)))


def _type_ok(value: Any, kind: str) -> bool:
    """Whether a JSON value fits a field annotation (`int`, `float | None`, `dict[str, Any]`...)."""
    if value is None:
        return kind.endswith("| None")
    base = kind.removesuffix(" | None")
    if isinstance(value, bool):
        return False  # JSON true/false is no count or measurement
    if base == "int":
        return isinstance(value, int)
    if base == "float":
        return isinstance(value, int | float)  # JSON writes 2.0 as 2.0 but a hand edit as 2
    if base == "str":
        return isinstance(value, str)
    return isinstance(value, dict)


def _check(obj: Mapping[str, Any], source: str) -> None:
    """RecordError for the first field of `obj` that is missing (a field without a default) or
    does not fit its type, and for a status or role outside the contract."""
    for f in dataclasses.fields(RunRecord):
        required = f.default is dataclasses.MISSING
        if f.name not in obj:
            if required:
                raise RecordError(f"{source}: field {f.name!r} is missing (not a run record)")
            continue
        kind = _KINDS[f.name]
        if not _type_ok(obj[f.name], kind):
            raise RecordError(
                f"{source}: field {f.name!r} is {obj[f.name]!r}, not {kind.replace('|', 'or')}"
            )
    for name, allowed in (("status", STATUSES), ("role", ROLES)):
        if name in obj and obj[name] not in allowed:
            raise RecordError(f"{source}: field {name!r} is {obj[name]!r}, not one of {allowed}")
    if obj.get("schema_version") != SCHEMA_VERSION:
        raise RecordError(
            f"{source}: schema_version {obj.get('schema_version')!r}, but this code reads version "
            f"{SCHEMA_VERSION}; read it with the code that wrote it (its code_version)"
        )


# each field's annotation as written ("int", "float | None", ...): postponed annotations are text
_KINDS = {f.name: str(f.type) for f in dataclasses.fields(RunRecord)}


def id_version_of(record_or_config: Mapping[str, Any]) -> int:
    """The run-id version of a record or a run's config.json: its `id_version`, else 1."""
    version = record_or_config.get("id_version", 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else 1
