"""A config error costs no torch import (issue 35): `python -m sweeps.train seed=-1` spent ~3.3 s
of CPU importing torch before saying one line. Every check that needs the config alone runs
before torch, models/ or numpy are imported; what is left of a refusal is Hydra's own start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.processes import child_env

# The entry point as `python -m sweeps.train` runs it, then what the process had imported.
PROBE = """
import sys
from sweeps.train import cli
try:
    cli()
finally:
    print(sorted({"torch", "models", "numpy", "sweeps.data"} & set(sys.modules)))
"""


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["seed=-1"], "seed"),  # preflight's check: it came after torch
        (["model.n_params=-5"], "model.n_params"),  # the schema's
        (["model.arch=foo"], "model.arch"),
        (["data=synthetic", "data.synthetic_n_tokens=1000", "model.context=512"], "model.context"),
    ],
    ids=["seed", "n_params", "arch", "synthetic_split"],
)
def test_a_config_error_is_one_line_before_torch_is_imported(tmp_path, args, field):
    results = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args, f"results_dir={results}"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}: "), done.stderr
    assert done.stdout.strip() == "[]", f"imported before the refusal: {done.stdout}"
    assert not results.exists()  # and nothing was written
