"""`python -m analysis DIR --tracker wandb|mlflow|tensorboard`: a sweep's report as one summary run
of the sweep in the tracker where its runs are (sweeps/tracking/ holds the backends; they import
neither torch nor Hydra).

The summary run is named `analysis` (`analysis-<arch>` for one architecture of several) in the
sweep's group / experiment / log folder. It gets the report's settings as parameters, every number
of `fits.json` (each law's parameters with their intervals, back-test errors, predictions, the
allocation at the target compute) as summary values, `fits.json` itself as text and every figure as
an image. Rerunning the analysis replaces it: one summary run per sweep and architecture.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import AnalysisError

__all__ = ["TRACKERS", "check_tracker", "log_report"]

TRACKERS = ("tensorboard", "wandb", "mlflow")


def check_tracker(name: str) -> None:
    """Before any fit: the tracker's package is installed, else one line naming the extra."""
    from sweeps.errors import UserError
    from sweeps.tracking.settings import check_installed

    try:
        check_installed([name])
    except UserError as e:
        raise AnalysisError(f"--tracker {name}: {e.problem}. Fix: {e.fix}") from e


def _summary(obj: Any, prefix: str = "") -> dict[str, Any]:
    """fits.json flattened to "a.b.c" keys: finite numbers, short strings; an interval [lo, hi]
    becomes "<key>.lo" and "<key>.hi", other lists "<key>.0", "<key>.1", ..."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_summary(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        names = ("lo", "hi") if len(obj) == 2 else [str(i) for i in range(len(obj))]
        for name, v in zip(names, obj, strict=True):
            out.update(_summary(v, f"{prefix}{name}."))
    elif isinstance(obj, bool):
        out[prefix[:-1]] = int(obj)
    elif isinstance(obj, int | float):
        if math.isfinite(obj):
            out[prefix[:-1]] = float(obj)
    elif isinstance(obj, str) and len(obj) <= 250:
        out[prefix[:-1]] = obj
    return out


def log_report(rep: Any, source: str | Path, *, tracker: str, per_arch: bool = False) -> str:
    """Log `rep` (analysis.report.build.Report, its files written) to one summary run; returns
    where.
    `per_arch`: one report of several in the sweep, named `analysis-<arch>`."""
    from sweeps.tracking.fanout import RunInfo, open_tracking
    from sweeps.tracking.settings import TrackerConfig

    source = Path(source).resolve()
    sweep = source.name if source.is_dir() else source.stem
    fits = json.loads((rep.out_dir / "fits.json").read_text(encoding="utf-8"))
    run_id = f"analysis-{rep.arch}" if per_arch else "analysis"
    params = {
        "source": str(source),
        "target_flops": rep.target_flops,
        "convention": rep.convention,
        "n_runs": rep.n_runs,
        "n_fitted": rep.n_fitted,
        "report": str(rep.out_dir),
    }
    info = RunInfo(
        run_id, sweep, str(source.parent), params, {"kind": "analysis", "arch": rep.arch or "all"}
    )
    chosen = TrackerConfig(
        tensorboard=tracker == "tensorboard", wandb=tracker == "wandb", mlflow=tracker == "mlflow"
    )
    tracking = open_tracking(chosen, info, label=f"{sweep}/{run_id}")
    assert tracking is not None
    tracking.start(resume_step=0)
    tracking.summary(_summary(fits))
    tracking.images((rep.out_dir / "figures" / name).with_suffix(".png") for name in rep.figures)
    tracking.finish("ok")
    if tracking.warned:
        raise AnalysisError(f"--tracker {tracker}: the summary run was not fully logged (above)")
    return f"{tracker}: summary run {run_id!r} of sweep {sweep!r}"
