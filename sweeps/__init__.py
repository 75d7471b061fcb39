"""Sweeps: plan a grid of language-model training runs, launch it, train each run, record it.

Layout by concern (each subpackage's docstring says what it owns and what it may import):

    sweeps/errors.py    UserError and `require`: the one-line user error of every entry point
    sweeps/config.py    the typed config schemas (dataclasses Hydra composes conf/ onto)
    sweeps/records.py   the run record and results layout: the contract analysis/ reads
                        (standard library only)
    sweeps/run_record.py  RunRecord, the typed record.json, and the run-id version (stdlib only)
    sweeps/data/        corpus -> cached token arrays and the fixed evaluation set
    sweeps/run/         one run, from a plain RunConfig to its record: id, plan, lr rules,
                        schedule, training loop, checkpoints, skip/resume/retry
    sweeps/branches/    WSD cooldown branches: one constant-lr trunk per size, a branch per budget
    sweeps/sweep/       a sweep: the Hydra edge (compose, expansion, callback), its plan, status
                        and time model
    sweeps/tuning/      lr and batch size by scale: Optuna studies, the rules fitted from them
    sweeps/tracking/    trackers (TensorBoard, W&B, MLflow) mirroring each run; settings and
                        backends import no torch or Hydra, so analysis/ logs its summary run there

Entry points (argument wiring only): `python -m sweeps.train`, `.plan`, `.status`, `.tune`,
`.demo`. Imports go one way: errors/config/run_record/records <- data <- run <- branches <- sweep,
tuning <- entry points; `run/` never imports Hydra; nothing here imports analysis/.
"""
