"""Hydra config tree (YAML that selects and overrides the dataclass schemas in sweeps/config.py)."""
