"""Do the fitted rules transfer? For a size left out of the fit, optim.lr=auto optim.batch_size=auto
against that size's own tuned best loss (issue 5: within 1% is the target).

    python -m sweeps.tune -m sweep=lr_tune 'model.n_params=1e5,3e4,2e4,1e4,3e3'   # the studies
    python benchmarks/lr_rules.py results/lr_tune --held-out 2e4
    python benchmarks/lr_rules.py results/lr_tune_4e6 --held-out 1e4 \
        --also results/lr_tune results/lr_tune_3e6 results/lr_tune_8e6 --batch-of tokens
        # rules from every folder without any study of N~1e4, checked on its 4e6-token study
    python benchmarks/lr_rules.py results/lr_tune_4e6 --held-out 1e4 --also ... --seeds 1 2 3
        # also retrain auto and the tuned best config at fresh seeds: the best of a study's
        # trials is the luckiest of many draws, so comparing one auto run with it is biased

Fits the rules without the held-out size (from sweep_dir and the --also folders; written to
<sweep_dir>/hparam_rules_without_<size>.json), rebuilds the held-out size's best trial config (its
study in sweep_dir) with lr and batch size set to "auto" from that file,
trains it (a normal content-addressed run under <results>/lr_rules_check/, skipped when done) and
prints both losses, their ratio, and the hyper-parameters each used. With --seeds, both configs
are retrained at each of those seeds and the mean losses compared.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sweeps import records  # noqa: E402
from sweeps.config import (  # noqa: E402
    BudgetConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    ScheduleConfig,
)
from sweeps.run.runner import run_one  # noqa: E402
from sweeps.tuning.rule_fit import format_rules  # noqa: E402
from sweeps.tuning.summaries import fit_sweep, read_summaries  # noqa: E402


def _held_out_best(sweep_dir: Path, size: float) -> dict:
    for s in read_summaries(sweep_dir):
        if math.isclose(s["n_params_target"], size, rel_tol=1e-6):
            ok = [t for t in s["trials"] if t["loss"] is not None]
            if not ok:
                sys.exit(f"no complete trial for size {size:g}")
            return min(ok, key=lambda t: t["loss"])
    sys.exit(f"no study for size {size:g} under {sweep_dir}")


def _config_from(run_dir: Path, rules: str) -> RunConfig:
    sem = json.loads((run_dir / records.CONFIG_FILE).read_text(encoding="utf-8"))
    optim = {**sem["optim"], "lr": "auto", "batch_size": "auto", "rules": rules}
    return RunConfig(
        model=ModelConfig(**sem["model"]),
        data=DataConfig(**sem["data"]),
        optim=OptimConfig(**optim),
        schedule=ScheduleConfig(**sem["schedule"]),
        budget=BudgetConfig(**sem["budget"]),
        seed=sem["seed"],
        precision=sem["precision"],
        results_dir=str(run_dir.parent.parent),
        sweep_name="lr_rules_check",
        n_evals=2,
        progress="log",
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--held-out", type=float, required=True, help="model.n_params target")
    ap.add_argument("--rules", default=None, help="use this rules file instead of refitting")
    ap.add_argument("--also", type=Path, nargs="*", default=[], help="more lr_tune folders to fit")
    ap.add_argument("--batch-of", choices=("compute", "tokens"), default="compute")
    ap.add_argument(
        "--seeds", type=int, nargs="*", default=[], help="retrain both configs at these seeds"
    )
    args = ap.parse_args()
    if args.rules is None:
        out = args.sweep_dir / f"hparam_rules_without_{args.held_out:g}.json"
        rules = fit_sweep(
            [args.sweep_dir, *args.also],
            out=out,
            exclude=(args.held_out,),
            batch_of=args.batch_of,
        )
        rules_path = str(out.resolve())
        print(f"rules fitted without N~{args.held_out:g}:")
        print(format_rules(rules))
    else:
        rules_path = str(Path(args.rules).resolve())
    best = _held_out_best(args.sweep_dir, args.held_out)
    cfg = _config_from(args.sweep_dir / best["run_id"], rules_path)
    record = run_one(cfg, in_sweep=False)
    assert record is not None
    ratio = record["loss"] / best["loss"]
    print(f"held-out size {args.held_out:g} (N={record['n_params']:,})")
    print(
        f"  tuned best : loss {best['loss']:.4f}  lr {best['lr']:.3g}  batch {best['batch_size']}"
    )
    print(
        f"  rules auto : loss {record['loss']:.4f}  lr {record['lr']:.3g}  "
        f"batch {record['batch_size']}"
    )
    print(f"  ratio auto/tuned = {ratio:.4f} ({(ratio - 1) * 100:+.2f}%; target within +1%)")
    if args.seeds:
        tuned = replace(
            cfg, optim=replace(cfg.optim, lr=best["lr"], batch_size=best["batch_size"], rules="")
        )
        losses: dict[str, list[float]] = {"tuned best": [], "rules auto": []}
        for seed in args.seeds:
            for name, c in (("tuned best", tuned), ("rules auto", cfg)):
                rec = run_one(replace(c, seed=seed), in_sweep=False)
                assert rec is not None and rec["loss"] is not None, rec
                losses[name].append(rec["loss"])
        print(f"  retrained at seeds {' '.join(map(str, args.seeds))}:")
        for name, values in losses.items():
            print(
                f"  {name} : mean {statistics.mean(values):.4f}  "
                + " ".join(f"{v:.4f}" for v in values)
            )
        mean_ratio = statistics.mean(losses["rules auto"]) / statistics.mean(losses["tuned best"])
        print(f"  ratio of means auto/tuned = {mean_ratio:.4f} ({(mean_ratio - 1) * 100:+.2f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
