"""Learning rate and batch size by scale: one Optuna study per model size, every trial a real run.

Owns: a study's typed settings, name, storage and trial configs (study.py), the search loop that
drives it (search.py), reading the study summaries and writing hparam_rules.json (summaries.py),
and the numpy fit of the rules across studies (rule_fit.py). The rules themselves, as a run
applies them, live in sweeps/run/hparam_rules.py.

May import: Optuna, numpy, sweeps.run, sweeps.branches, sweeps.config, sweeps.records,
sweeps.errors. Never: Hydra or OmegaConf (the sweeps.tune entry point composes), sweeps.sweep,
analysis/.
"""
