"""Learning rate and batch size by scale (sweeps/tuning/):

    python -m sweeps.tune -m sweep=lr_tune   # one Optuna study per model size, every trial a run
    python -m sweeps.tune fit results/lr_tune [more folders] [--exclude 2e4] [--out FILE]
                                              [--batch-of compute|tokens]   # -> hparam_rules.json

The study side composes conf/config.yaml onto `TuneRunConfig` (RunConfig plus the typed `tune`
node) and runs `sweeps.tuning.search.tune_size` per Hydra job; `fit` reads the study summaries and
fits the rules that `optim.lr=auto optim.batch_size=auto optim.rules=<file>` apply.
"""

from __future__ import annotations

import argparse
import sys

from sweeps.errors import UserError
from sweeps.tuning.rule_fit import format_rules
from sweeps.tuning.summaries import fit_sweep

__all__ = ["main", "fit_cli"]


def fit_cli(argv: list[str]) -> int:
    """`python -m sweeps.tune fit ...`: fit the rules, print them, write hparam_rules.json."""
    ap = argparse.ArgumentParser(prog="python -m sweeps.tune fit", description=fit_sweep.__doc__)
    ap.add_argument("sweep_dir", nargs="+", help="one or more lr_tune results folders")
    ap.add_argument("--out", default=None, help="default: <first sweep_dir>/hparam_rules.json")
    ap.add_argument("--exclude", type=float, nargs="*", default=(), help="sizes left out")
    ap.add_argument(
        "--batch-of",
        choices=("compute", "tokens"),
        default="compute",
        help="batch*(C), DeepSeek's form (default), or batch*(D): for IsoFLOP grids, where one C "
        "spans many horizons",
    )
    args = ap.parse_args(argv)
    try:
        rules = fit_sweep(
            args.sweep_dir, out=args.out, exclude=tuple(args.exclude), batch_of=args.batch_of
        )
    except UserError as e:
        print(f"error: {e.line()}", file=sys.stderr)
        return 2
    print(format_rules(rules))
    print(f"wrote {rules['path']}")
    return 0


def _hydra_main() -> None:
    # Imported here, not at the top: `tune fit` needs neither Hydra, Optuna nor torch, and torch
    # alone took 10-20 s to import on this loaded 2-core Xeon (`python -c "import torch"`, 3 tries).
    import hydra
    from hydra.core.config_store import ConfigStore
    from omegaconf import DictConfig
    from omegaconf.errors import OmegaConfBaseException

    from sweeps.sweep.compose import register_configs, run_hydra_cli, to_run_config
    from sweeps.tuning.search import tune_size
    from sweeps.tuning.study import TuneConfig, TuneRunConfig

    register_configs()
    # This entry point's root schema is RunConfig + `tune` (conf/config.yaml names run_schema).
    ConfigStore.instance().store(name="run_schema", node=TuneRunConfig)
    ConfigStore.instance().store(group="tune", name="schema", node=TuneConfig)

    @hydra.main(version_base="1.3", config_path="../conf", config_name="config")
    def run(cfg: DictConfig) -> float | None:
        try:
            try:
                obj = to_run_config(cfg)  # refuses unknown `+` keys, as sweeps.train does
            except OmegaConfBaseException as e:
                key = getattr(e, "full_key", None) or "config"
                raise UserError(str(key), str(e).splitlines()[0], "check its value") from e
            assert isinstance(obj, TuneRunConfig)
            summary = tune_size(obj)
        except UserError as e:
            print(f"error: {e.line()}", file=sys.stderr, flush=True)
            sys.exit(2)
        losses = [t["loss"] for t in summary["trials"] if t["loss"] is not None]
        return min(losses) if losses else None

    run_hydra_cli(run)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "fit":
        sys.exit(fit_cli(sys.argv[2:]))
    if any(a in ("-h", "--help") for a in sys.argv[1:]):  # Hydra's help knows nothing of `fit`
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        print("Hydra's own help follows (the study side's overrides):\n", file=sys.stderr)
    _hydra_main()


if __name__ == "__main__":
    main()
