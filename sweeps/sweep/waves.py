"""A planned wave of runs as a sweep config that `python -m sweeps.train -m` runs as it is.

A wave lives in its sweep's folder, `results/<sweep>/waves/wave_<k>/`:

    sweep/wave_<k>.yaml      the preset: the sweep's own settings (copied from its records), the
                             same results folder and sweep name, `wave: <k>`, and a sweep over
                             `+wave_run` (one option per run)
    wave_run/r00.yaml ...    one run each: model.n_params, budget.flops (and seed, for seeds)
    wave.json                the proposal it came from (sweeps/next.py)

and runs with `python -m sweeps.train -m hydra.searchpath=[file://<wave folder>] sweep=wave_<k>`
(`train_overrides`). Hydra's own basic sweeper takes a Cartesian product of its params; one
config-group option per run is how a list of (N, C) pairs that is not a grid becomes one
sweep. Runs go to the sweep's folder under their usual run ids, so resume, locks and records work
unchanged, and a run the sweep already has is not trained again.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sweeps import records
from sweeps.errors import UserError

__all__ = [
    "WAVES_DIR",
    "base_settings",
    "check_same_data",
    "train_overrides",
    "wave_dir",
    "wave_numbers",
    "wave_runs_trained",
    "write_wave",
]

WAVES_DIR = "waves"
# the settings a wave copies from its sweep's records (model size, budget and seed are the wave's)
_COPIED = {
    "model": ("arch", "context", "tied", "min_layers", "n_head"),
    "data": None,  # every field
    "optim": None,
    "schedule": None,
}
_TOP = ("precision", "n_evals", "checkpoint_every_s", "threads", "max_retries", "device")


def wave_dir(sweep_dir: str | Path, k: int) -> Path:
    return Path(sweep_dir) / WAVES_DIR / f"wave_{k}"


def wave_numbers(sweep_dir: str | Path) -> list[int]:
    """The waves written into a sweep folder, in order."""
    root = Path(sweep_dir) / WAVES_DIR
    out = []
    for p in root.glob("wave_*") if root.is_dir() else []:
        suffix = p.name.removeprefix("wave_")
        if suffix.isdigit() and (p / "sweep" / f"{p.name}.yaml").is_file():
            out.append(int(suffix))
    return sorted(out)


def _done_records(sweep_dir: Path) -> list[dict[str, Any]]:
    out = []
    for d in records.iter_run_dirs(sweep_dir):
        if records.run_state(d) != "done":
            continue
        try:
            out.append(records.read_record(d))
        except records.RecordError:
            continue
    return out


def wave_runs_trained(sweep_dir: str | Path, k: int) -> int:
    """How many finished records of the sweep name wave `k`."""
    recs = _done_records(Path(sweep_dir))
    return sum(1 for r in recs if (r.get("config") or {}).get("wave") == k)


def base_settings(sweep_dir: str | Path, arch: str | None = None) -> dict[str, Any]:
    """The settings every run of a new wave shares, from the sweep's latest finished run (of
    `arch` where given): its model family and context, data, optimiser, schedule, precision and
    execution knobs; model size, budget and seed are the wave's own."""
    sweep_dir = Path(sweep_dir)
    recs = [r for r in _done_records(sweep_dir) if r.get("status") == "ok" and r.get("config")]
    archs = sorted({str(r.get("arch")) for r in recs})
    if arch is not None:
        recs = [r for r in recs if r.get("arch") == arch]
    elif len(archs) > 1:
        raise UserError("--arch", f"{sweep_dir} holds runs of {len(archs)} architectures "
                        f"({', '.join(archs)})", f"pass --arch {archs[0]}")  # fmt: skip
    if not recs:
        raise UserError(
            "RESULTS", f"{sweep_dir} holds no finished run" + (f" of arch {arch}" if arch else ""),
            "run a sweep first (e.g. python -m sweeps.train -m sweep=isoflop) and point at "
            "its folder, results/<sweep_name>",
        )  # fmt: skip
    cfg = max(recs, key=lambda r: str(r.get("created_at", "")))["config"]
    out: dict[str, Any] = {}
    for group, keys in _COPIED.items():
        src = dict(cfg.get(group) or {})
        out[group] = {k: v for k, v in src.items() if keys is None or k in keys}
    out["data"].pop("cache_dir", None)  # where this machine caches, not what it trains on
    out["budget"] = {"min_steps": (cfg.get("budget") or {}).get("min_steps", 50)}
    for key in _TOP:
        if key in cfg:
            out[key] = cfg[key]
    return out


def check_same_data(sweep_dir: str | Path, arch: str | None, extra: list[str],
                    settings: dict[str, Any] | None = None) -> None:  # fmt: skip
    """UserError where the sweep's finished runs were scored on other data than a new wave would
    be: the same data settings can give another dataset id when the corpus or this code's split
    changed (sweeps/data/__init__.py SPLIT_VERSION). A wave trained there could not be fitted
    with them, so the loop would spend it and then stop; this says so before anything trains.
    `extra`: the wave's overrides (a `data.cache_dir=` among them is where its data is cached);
    `settings`: base_settings(sweep_dir, arch) where the caller has read them already."""
    from sweeps.config import DataConfig
    from sweeps.data import load_dataset

    ids = sorted({str(r["dataset_id"]) for r in _done_records(Path(sweep_dir))
                  if r.get("status") == "ok" and r.get("dataset_id")})  # fmt: skip
    if not ids:
        return
    settings = settings if settings is not None else base_settings(sweep_dir, arch)
    cache = [o.split("=", 1)[1] for o in extra if o.startswith("data.cache_dir=")]
    data = DataConfig(**{**settings["data"], **({"cache_dir": cache[-1]} if cache else {})})
    now = load_dataset(data, progress=False).dataset_id
    if ids != [now]:
        raise UserError(
            "RESULTS",
            f"{sweep_dir}: its runs were scored on dataset {', '.join(ids)}, but their data "
            f"settings now give {now} (the corpus changed, or this code's split of it: "
            "sweeps/data/__init__.py SPLIT_VERSION); a new wave's losses could not be fitted "
            "with theirs",
            "analyse this folder as it is (python -m analysis), or start the study in a new "
            "results folder (e.g. results_dir=results2)",
        )


def _run_file(row: dict[str, Any]) -> str:
    body: dict[str, Any] = {"model": {"n_params": float(f"{row['n_params']:.6g}")},
                            "budget": {"flops": float(f"{row['flops']:.6g}")}}  # fmt: skip
    if row.get("seed") is not None:
        body["seed"] = int(row["seed"])
    why = str(row.get("why", "")).replace("\n", " ")
    return f"# @package _global_\n# {why}\n" + OmegaConf.to_yaml(body)


def write_wave(
    sweep_dir: str | Path,
    k: int,
    rows: list[dict[str, Any]],
    settings: dict[str, Any],
    *,
    header: str,
    proposal: dict[str, Any],
) -> Path:
    """Write wave `k` (module docstring) whole or not at all (built beside it, then renamed);
    an older wave `k` that trained nothing is replaced."""
    sweep_dir = Path(sweep_dir).resolve()
    final = wave_dir(sweep_dir, k)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".wave_{k}.", dir=final.parent))
    try:
        names = [f"r{i:02d}" for i in range(len(rows))]
        for name, row in zip(names, rows, strict=True):
            records.write_text_atomic(tmp / "wave_run" / f"{name}.yaml", _run_file(row))
        preset = {
            "defaults": [{"override /budget": "flops"}],
            **settings,
            "results_dir": str(sweep_dir.parent),
            "sweep_name": sweep_dir.name,
            "wave": k,
            "hydra": {"sweeper": {"params": {"+wave_run": ",".join(names)}}},
        }
        text = "# @package _global_\n" + "".join(f"# {ln}\n" for ln in header.splitlines())
        records.write_text_atomic(tmp / "sweep" / f"wave_{k}.yaml",
                                  text + OmegaConf.to_yaml(OmegaConf.create(preset)))  # fmt: skip
        records.write_text_atomic(tmp / "wave.json", json.dumps(proposal, indent=1, default=float))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def train_overrides(wave: Path) -> list[str]:
    """The overrides that run a wave folder: `python -m sweeps.train -m <these>`."""
    return [f"hydra.searchpath=[file://{wave.resolve()}]", f"sweep={wave.name}"]
