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
        ids, same = callbacks._run_ids(_master(args))
    assert not cache.exists(), "the callback built the corpus"
    assert None not in ids and len(set(ids)) == 4 and same == []
    runs, _ = plan_sweep(args)  # plan loads (and builds) the corpus: the reference naming
    assert sorted(ids) == sorted(r.run_id for r in runs)


def test_a_launch_warns_when_two_size_targets_train_the_same_model(tmp_path, capsys):
    """plan warned that 9e3 and 1e4 both resolve to 2 x 20, but `train -m` trained the model twice
    under two run ids without a word."""
    common = ["data=synthetic", f"data.cache_dir={tmp_path}/c", f"results_dir={tmp_path}/r"]
    with hydra_context():
        callbacks.SweepSummary().on_multirun_start(
            _master(["sweep=grid", "model.n_params=9e3,1e4,3e4", *common])
        )
    err = capsys.readouterr().err
    assert err.count("train the same model") == 3, err  # one pair per token count of the grid
    assert not (tmp_path / "c").exists(), "the launch built the corpus"
    runs, info = plan_sweep(["sweep=grid", "model.n_params=9e3,1e4,3e4", *common])
    for group in info["same_model"]:  # the same pairs as plan's
        assert f"runs {', '.join(group)} train the same model" in err
    with hydra_context():
        callbacks.SweepSummary().on_multirun_start(
            _master(["sweep=grid", "model.n_params=1e4,3e4", *common])
        )
    assert "same model" not in capsys.readouterr().err


def test_an_explicit_shape_sweep_needs_no_vocabulary_to_count_its_runs(tmp_path, monkeypatch):
    """The launch asked every job's vocabulary, to look for size targets of one shape: a token
    file was read whole (its largest id) for explicit shapes that need none, and a vocabulary the
    launching process could not get left every job unnamed ('3 jobs, 0 runs', no progress)."""

    def unreachable(cfg):
        raise OSError(f"{cfg.path}: not mounted on this node")

    import sweeps.data

    # the callback imports it when a job needs a vocabulary (sweeps.data is not loaded before)
    monkeypatch.setattr(sweeps.data, "vocab_size_of", unreachable)
    common = ["data=synthetic", f"data.cache_dir={tmp_path}/c", f"results_dir={tmp_path}/r"]
    shape = ["model.n_layer=2", "model.d_model=32", "model.n_head=2", "budget=tokens"]
    with hydra_context():
        ids, same = callbacks._run_ids(_master([*shape, "budget.tokens=1e5,2e5,4e5", *common]))
    assert None not in ids and len(set(ids)) == 3 and same == []
    with hydra_context():  # size targets: no same-model check without it, the runs still named
        ids, same = callbacks._run_ids(_master(["sweep=grid", "model.n_params=9e3,1e4", *common]))
    assert ids and None not in ids and same == []


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
    pinned = [*args, f"results_dir={tmp_path / 'x'}"]  # replaces the preset's param in place:
    runs, _ = plan_sweep(pinned, config_dir=str(conf_with_preset))  # one folder, not refused
    assert len(runs) == 2


# ---- runs another launch over the same folder is training ----


def test_a_single_run_held_by_another_process_exits_1_in_one_line(tiny_cfg, tiny_overrides):
    """It printed 'skipped here' and exited 0 with no record: `train && analysis` went on."""
    import os
    import sys

    from sweeps import records
    from sweeps.errors import RunHeld
    from sweeps.run.runner import run_dir_for, run_lock, run_one
    from tests.processes import run_module

    cfg = tiny_cfg()
    run_dir = run_dir_for(cfg)
    assert not records.held_elsewhere(run_dir)
    with run_lock(run_dir) as held:  # flock: a second open file conflicts even in this process
        assert held and records.held_elsewhere(run_dir)
        with pytest.raises(RunHeld, match="being trained by another process"):
            run_one(cfg)
        assert run_one(cfg, in_sweep=True) is None  # a sweep's job goes on to its next run
        proc = run_module("sweeps.train", tiny_overrides, cwd=Path(cfg.results_dir).parent,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                          timeout=120)  # fmt: skip
    assert not records.held_elsewhere(run_dir)
    assert proc.returncode == 1, proc.stderr[-2000:]
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Rerun this command once" in line


def test_the_sweep_summary_counts_its_own_runs_and_names_held_ones(tmp_path, hand_record, capsys):
    """Another launch over the folder rewrote the sweep file: this launch's summary counted the
    other's runs, missed its own failed run and exited 0; a run the other launch was training
    showed as 'partial' with no hint."""
    from omegaconf import OmegaConf

    from sweeps import records
    from sweeps.run.runner import run_lock

    sweep = tmp_path / "s"
    hand_record(sweep / "mine_failed", status="failed", attempts=2)
    hand_record(sweep / "theirs_ok")
    (sweep / "mine_busy").mkdir()
    (sweep / "mine_busy" / records.CONFIG_FILE).write_text("{}")
    (sweep / callbacks.SWEEP_FILE).write_text('{"run_ids": ["theirs_ok"], "started_at": 0}')
    summary = callbacks.SweepSummary()
    summary.ids, summary.t0 = {"mine_failed", "mine_busy"}, 0.0
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    with run_lock(sweep / "mine_busy"), pytest.raises(SystemExit) as exit_:
        summary.on_multirun_end(config)
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert "1 being trained elsewhere, 1 failed" in err and "mine_failed" in err
    assert "another process (another launch over this folder) is training them" in err
    assert "1 ok" not in err


def test_a_launch_groups_an_explicit_shape_with_a_target_of_that_shape(tmp_path, capsys):
    """A sweep that mixes a size target (1e4: 2 x 20) and the explicit shape 2 x 20: plan said
    the two train the same model, the launch checked size targets only and said nothing."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "model" / "gpt_2x20.yaml").write_text(
        "defaults:\n  - schema\narch: gpt\nn_params: null\nn_layer: 2\nd_model: 20\n"
    )
    (conf / "model" / "gpt_1e4.yaml").write_text(
        "defaults:\n  - schema\narch: gpt\nn_params: 1e4\n"
    )
    args = ["model=gpt_1e4,gpt_2x20", "budget=tokens", "budget.tokens=1e6", "data=synthetic",
            f"data.cache_dir={tmp_path}/c", f"results_dir={tmp_path}/r"]  # fmt: skip
    runs, info = plan_sweep(args, config_dir=str(conf))
    assert len(runs) == 2 and len(info["same_model"]) == 1
    master = _master(args, conf)  # (composing over another conf/ leaves Hydra cleared)
    with hydra_context(conf):
        callbacks.SweepSummary().on_multirun_start(master)
    assert (
        f"runs {', '.join(info['same_model'][0])} train the same model" in capsys.readouterr().err
    )
