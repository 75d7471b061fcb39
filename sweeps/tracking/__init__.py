"""Trackers: each run mirrored to TensorBoard, Weights & Biases and/or MLflow, resume-safe.

The run record (`record.json`, `curve.jsonl`) stays the source of truth; a tracker mirrors it and
never stops a run. What each module owns:

- `settings`: the typed `tracker` config node and the check, at config validation, that the
  chosen trackers' packages are installed (one line naming the extra to install).
- `fanout`: `Tracking`, the one object the runner and the trainer call (start, log, summary,
  finish); every tracker call goes through it, and an exception inside one becomes a warning
  once per run.
- `tb_backend`, `wandb_backend`, `mlflow_backend`: one backend each, importing its library only
  when used (each takes 0.5-3 s to import, and is an optional extra).
- `peak`: a matmul probe of the device's peak FLOP/s for MFU (the only module that imports torch).

May import: the standard library, `sweeps.errors` and the trackers' own packages (inside the
backends' methods: each is an optional extra, slow to import); `meter` names `sweeps.config` and
`sweeps.run.plan` for type checking only. Never torch (except `peak`) or Hydra: `analysis/` opens
its summary run through the same backends. `sweeps.config` imports `settings`; `sweeps.run`
imports `fanout`, `meter` and `peak`.
"""
