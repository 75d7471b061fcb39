"""One run: a plain RunConfig in, a record out (no Hydra here; the training loop takes dataclasses).

Owns: the run id (identity.py: the semantic config and its hash), what a run will do before it
trains (plan.py: shape, N, lr and batch, steps, D, C), the "auto" lr and batch rules it applies
(hparam_rules.py), the learning-rate schedule (lr_schedule.py), the training loop and its record
(loop.py, record.py), checkpoints (checkpoint.py), progress (progress.py), provenance
(provenance.py), the checks made before anything is written (preflight.py) and the memory
estimate (memory.py), running a config exactly once: skip, resume, retry, lock (runner.py), and
where and how it computes: device, precision and the CUDA fast path (device.py), the ranks of a
DistributedDataParallel run (distributed.py), its batches and all-reduced evaluation
(evaluate.py), and checkpoint-then-requeue on submitit's timeout signal (preempt.py).

May import: sweeps.errors, sweeps.config, sweeps.records, sweeps.data, models/, torch, numpy,
submitit (distributed.py, for a multi-task job's environment).
Never: Hydra or OmegaConf, sweeps.sweep, sweeps.branches, sweeps.tuning, analysis/.
"""
