"""What an unreachable tracker costs a run: the same run without a tracker and with MLflow pointed
at a port where nothing listens, each a fresh `python -m sweeps.train` process.

    python benchmarks/tracker_unreachable.py

Prints both wall times and the record's tokens/s, and the ratios (issue 35's bars: at most 30 s
more wall time; tokens/s within 10%). The run is a 2M-token GPT on synthetic data (~30 s here).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUN = ["data=synthetic", "data.n_val_tokens=2048", "model.context=64", "model.n_params=3e4",
       "budget.tokens=2e6", "optim.batch_size=16", "n_evals=6", "progress=none",
       "precision=fp32", "checkpoint_every_s=1"]  # fmt: skip


def one(tmp: Path, name: str, extra: list[str]) -> tuple[float, dict]:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sweeps.train", *RUN, f"data.cache_dir={tmp}/cache",
                    f"results_dir={tmp}/{name}", *extra], check=True,
                   capture_output=True)  # fmt: skip
    wall = time.perf_counter() - t0
    (record,) = Path(tmp, name).glob("*/*/record.json")
    return wall, json.loads(record.read_text())


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        one(Path(tmp), "warm", [])  # the data cache, built once, outside both timings
        plain = one(Path(tmp), "plain", [])
        dead = one(Path(tmp), "dead", ["tracker=mlflow", "tracker.mlflow_uri=http://127.0.0.1:9"])
    print("| run | wall time | record time_s | record tokens/s |\n| --- | --- | --- | --- |")
    for label, (wall, rec) in (("no tracker", plain), ("MLflow unreachable", dead)):
        print(f"| {label} | {wall:.1f} s | {rec['time_s']:.1f} s | {rec['tokens_per_s']:,.0f} |")
    print(f"wall time added: {dead[0] - plain[0]:+.1f} s (bar: 30 s); tokens/s ratio "
          f"{dead[1]['tokens_per_s'] / plain[1]['tokens_per_s']:.3f} (bar: 0.9 to 1.1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
