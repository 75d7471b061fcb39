"""The sweep callback's start checks and job count see what the launch will run: a preset's
sweeper params as well as the command line, and WSD branch names without building the corpus."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hydra.types import RunMode

from sweeps.errors import UserError
from sweeps.sweep import callbacks
from sweeps.sweep.expand import CONF_DIR, CONFIG_NAME, hydra_context
from sweeps.sweep.plan import plan_sweep
from tests.test_data_sources import write_corpus


def _master(overrides: list[str], config_dir: Path | None = None):
    """The multirun master config, composed as `train -m` composes it (Hydra left initialised
    for the callback, as in a launch)."""
    with hydra_context(config_dir) as hy:
        return hy.compose_config(
            config_name=CONFIG_NAME,
            overrides=overrides,
            run_mode=RunMode.MULTIRUN,
            from_shell=True,
        )


def test_wsd_run_ids_take_the_vocabulary_without_building_the_corpus(tmp_path, tiny_overrides):
    """The launching process loaded the dataset to count a WSD sweep's runs: a BPE build on a
    cluster's login node before the first job was submitted."""
    corpus = write_corpus(tmp_path / "corpus")
    cache = tmp_path / "cache"
    keep = ("model.context", "optim.batch_size", "n_evals", "progress", "precision", "device")
    args = [o for o in tiny_overrides if o.startswith(keep)] + [
        "data=text",
        f"data.path={corpus}",
        "data.tokenizer=bpe",
        "data.vocab_size=290",
        f"data.cache_dir={cache}",
        "data.n_val_tokens=256",
        f"results_dir={tmp_path / 'results'}",
        "budget=tokens",
        "schedule=wsd",
        "branch.budgets=[2e4,4e4]",
        "model.n_params=3e3,5e3",
        "budget.tokens=2e4,4e4",
    ]
    with hydra_context():
        ids = callbacks._run_ids(_master(args))
    assert not cache.exists(), "the callback built the corpus"
    assert None not in ids and len(set(ids)) == 4
    runs, _ = plan_sweep(args)  # plan loads (and builds) the corpus: the reference naming
    assert sorted(ids) == sorted(r.run_id for r in runs)


@pytest.fixture
def conf_with_preset(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "sweep" / "two_folders.yaml").write_text(
        "# @package _global_\nhydra:\n  sweeper:\n    params:\n"
        f"      results_dir: {tmp_path / 'a'},{tmp_path / 'b'}\n      seed: 0,1\n"
    )
    return conf


def test_a_preset_that_sweeps_results_dir_is_refused(conf_with_preset, tmp_path, tiny_overrides):
    """Only the command line was checked: a preset's `results_dir: a,b` trained the grid twice."""
    args = [o for o in tiny_overrides if not o.startswith("results_dir=")] + ["sweep=two_folders"]
    with pytest.raises(UserError) as e:
        plan_sweep(args, config_dir=str(conf_with_preset))
    assert e.value.field == "results_dir" and "swept" in e.value.problem
    master = _master(args, conf_with_preset)
    with pytest.raises(SystemExit) as exit_:
        callbacks.SweepSummary().on_multirun_start(master)
    assert exit_.value.code == 2
    assert not any(p.name in ("a", "b", "multirun") for p in tmp_path.iterdir())
