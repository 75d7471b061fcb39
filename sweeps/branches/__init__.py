"""WSD cooldown branches (wsd.py): one constant-learning-rate trunk per model size, and every
budget of the sweep a short cooldown branch forked from it; `run_job` runs one sweep job or trial,
branch-mode or not.

May import: sweeps.run, sweeps.config, sweeps.records, sweeps.errors.
Never: Hydra or OmegaConf, sweeps.sweep, sweeps.tuning, analysis/.
"""
