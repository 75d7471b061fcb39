"""A sweep: the Hydra edge and everything about a grid of runs as a whole.

Owns: registering the schemas and turning a composed DictConfig into a RunConfig (compose.py),
expanding a sweep command into its jobs exactly as Hydra would (expand.py), the Hydra callback
that prints progress and the summary (callbacks.py), the plan of a sweep before it spends
(plan.py), where a sweep stands from its folders (status.py, JSON only: no torch, no Hydra), and
the wall-time model (timemodel.py), the machine's GPUs as a pool that local sweep jobs take
devices from (gpus.py), a planned wave written as a sweep config (waves.py), and what a wave's
runs can be and cost here, for the planner (wavecost.py).

May import: Hydra and OmegaConf, models (sizing and counting), sweeps.run, sweeps.branches,
sweeps.data, sweeps.config, sweeps.records, sweeps.errors. Never: sweeps.tuning, analysis/.
"""
