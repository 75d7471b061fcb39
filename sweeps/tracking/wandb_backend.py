"""Weights & Biases: group = the sweep, id = <sweep>-<run_id> (W&B ids are per project, and one
config run in two sweeps is two runs), offline unless the user asked otherwise (`wandb sync`
uploads later).

Resume: online, `resume="allow"` continues the same W&B run and points before W&B's own step
counter are skipped. Offline, W&B cannot resume (it would start a second run directory with the
same id): so every point this backend logs is also kept in <results>/<sweep>/wandb/<id>.jsonl,
and a resumed run replaces the old offline directory by a new one that first replays the points up
to the checkpoint. Either way one directory per id, no duplicated or out-of-order steps.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sweeps.tracking.fanout import RunInfo
from sweeps.tracking.settings import TrackerConfig, tracker_dir, wandb_mode

__all__ = ["WandbBackend", "wandb_id"]


def wandb_id(sweep: str, run_id: str) -> str:
    """<sweep>-<run_id>, with characters W&B refuses in ids replaced, at most 64 characters."""
    return (re.sub(r"[^A-Za-z0-9_.-]", "_", sweep)[: 63 - len(run_id)] + "-" + run_id)[-64:]


class WandbBackend:
    def __init__(self, info: RunInfo, cfg: TrackerConfig) -> None:
        self.info, self.cfg = info, cfg
        self.id = wandb_id(info.sweep, info.run_id)
        self.mode = wandb_mode(cfg)
        self.parent = Path(info.results_dir) / info.sweep  # W&B writes under <parent>/wandb/
        self.history = tracker_dir(info.results_dir, info.sweep, "wandb") / f"{self.id}.jsonl"
        self.run: Any = None
        self.min_step = 0

    def _replay_points(self, resume_step: int) -> list[dict[str, Any]]:
        """Offline: the points logged up to the checkpoint; the file keeps only those."""
        points = []
        if resume_step > 0 and self.history.exists():
            for line in self.history.read_text(encoding="utf-8").splitlines():
                try:
                    point = json.loads(line)
                except ValueError:
                    continue  # a line torn by a kill
                if point["step"] <= resume_step:
                    points.append(point)
        self.history.parent.mkdir(parents=True, exist_ok=True)
        self.history.write_text("".join(json.dumps(p) + "\n" for p in points), encoding="utf-8")
        return points

    def load(self) -> None:
        import wandb  # noqa: F401 - imported ahead

    def start(self, *, resume_step: int) -> None:
        import wandb

        offline = self.mode == "offline"
        replay = self._replay_points(resume_step) if offline else []
        if offline:
            for old in (self.parent / "wandb").glob(f"offline-run-*-{self.id}"):
                shutil.rmtree(old, ignore_errors=True)
        self.run = wandb.init(
            id=self.id,
            resume="allow",
            mode=self.mode,  # type: ignore[arg-type]
            project=self.cfg.wandb_project,
            entity=self.cfg.wandb_entity,
            group=self.info.sweep,
            name=self.info.run_id,
            dir=str(self.parent),
            config=self.info.params,
            tags=[f"{k}:{v}"[:64] for k, v in sorted(self.info.tags.items())],
            reinit="create_new",
            # no console capture, no system-metrics sampler, no `pip freeze` of the environment
            settings=wandb.Settings(
                silent=True, console="off", x_disable_stats=True, x_save_requirements=False
            ),
        )
        for point in replay:
            self.run.log(point["metrics"], step=point["step"])
        self.min_step = 0 if offline else int(self.run.step)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        if step < self.min_step:
            return  # W&B holds this step already (online resume)
        self.run.log(dict(metrics), step=step)
        if self.mode == "offline":
            with open(self.history, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": step, "metrics": dict(metrics)}) + "\n")

    def flush(self) -> None:
        pass  # W&B writes in its own process; the replay file is appended line by line

    def summary(self, values: Mapping[str, Any]) -> None:
        self.run.summary.update(dict(values))

    def images(self, paths: Iterable[Path]) -> None:
        import wandb

        self.run.log({Path(p).stem: wandb.Image(str(p)) for p in paths})

    def finish(self, status: str) -> None:
        if self.run is not None:
            self.run.finish(exit_code=0 if status in ("ok", "diverged") else 1)
