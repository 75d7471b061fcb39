"""Time the approach-3 fit: fast path (vectorised grid + batched Newton + L-BFGS-B finish, then
1000 bootstrap refits batched) against a straightforward scipy loop (L-BFGS-B from each start),
on ~250 synthetic points, measured in the same run.

The scipy loop runs on every `--stride`-th start of the 4500-start grid and its time is
extrapolated linearly to the full grid (stated in the output); `--stride 1` runs all of it.

    python benchmarks/fit_speed.py [--stride 45] [--n-bootstrap 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from analysis.laws.bootstrap import bootstrap_chinchilla
from analysis.laws.chinchilla import fit_chinchilla, fit_chinchilla_reference
from analysis.laws.objective import chinchilla_grid
from analysis.laws.synthetic import grid_points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stride", type=int, default=45)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    args = parser.parse_args()
    n, d, loss = grid_points(rng=np.random.default_rng(0), noise=0.005)
    grid = chinchilla_grid()
    print(f"{n.size} points, {len(grid)} starts, {args.n_bootstrap} bootstrap resamples")

    t0 = time.perf_counter()
    fit = fit_chinchilla(n, d, loss)
    t_fit = time.perf_counter() - t0
    _, boot = bootstrap_chinchilla(
        fit,
        n,
        d,
        loss,
        target_flops=1e18,
        n_resamples=args.n_bootstrap,
        rng=np.random.default_rng(0),
    )
    t_fast = time.perf_counter() - t0
    print(
        f"fast path: fit {t_fit:.2f} s + bootstrap {t_fast - t_fit:.2f} s = {t_fast:.2f} s "
        f"({boot.n_failed} refits failed); objective {fit.objective:.12g}"
    )

    starts = grid[:: args.stride]
    t0 = time.perf_counter()
    ref = fit_chinchilla_reference(n, d, loss, starts=starts)
    t_ref = time.perf_counter() - t0
    per_start = t_ref / len(starts)
    t_ref_full = per_start * len(grid)
    # the straightforward bootstrap: L-BFGS-B refit of each resample from the full-data optimum;
    # timed on 50 resamples and extrapolated
    from analysis.laws.bootstrap import resample_counts
    from analysis.laws.chinchilla import params_to_theta
    from analysis.laws.objective import chinchilla_design, minimize_lbfgs

    design, y = chinchilla_design(n, d), np.log(loss)
    counts = resample_counts(n.size, 50, np.random.default_rng(1))
    t0 = time.perf_counter()
    for w in counts:
        minimize_lbfgs(params_to_theta(fit.params), design, y, delta=1e-3, weights=w)
    t_boot_ref = (time.perf_counter() - t0) / len(counts) * args.n_bootstrap
    print(
        f"scipy loop: {len(starts)} starts in {t_ref:.2f} s ({per_start * 1e3:.1f} ms/start); "
        f"objective {ref.objective:.12g}"
    )
    print(
        f"scipy loop extrapolated: full grid {t_ref_full:.1f} s + {args.n_bootstrap} "
        f"refits (timed on 50) {t_boot_ref:.1f} s = {t_ref_full + t_boot_ref:.1f} s"
    )
    print(
        f"speed-up: {(t_ref_full + t_boot_ref) / t_fast:.0f}x; same minimum: "
        f"{fit.objective <= ref.objective * (1 + 1e-10)} "
        f"(fast - loop = {fit.objective - ref.objective:.2e})"
    )


if __name__ == "__main__":
    main()
