"""Plan, launch and train scaling-law sweeps; write one record per run (see records.py)."""
