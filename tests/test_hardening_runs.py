"""Hostile inputs met in-process: the checks made before anything is written
(sweeps/run/preflight.py), the memory estimate's refusal, corrupt checkpoints and records set
aside, an edited record refused, failed cache builds that leave nothing, and `sweeps.status` on
unreadable runs."""

from __future__ import annotations

import json
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sweeps import records
from sweeps.config import BudgetConfig, DataConfig, ModelConfig
from sweeps.data import load_dataset
from sweeps.errors import UserError
from sweeps.run import loop, memory, preflight
from sweeps.run.runner import run_dir_for, run_one
from sweeps.sweep.status import sweep_status


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---- checks before anything is written ----


def test_seed_must_be_non_negative():
    preflight.check_seed(0)
    with pytest.raises(UserError) as e:
        preflight.check_seed(-1)
    assert e.value.field == "seed" and "seed=0" in e.value.fix


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_asked_without_cuda():
    preflight.check_device("cpu")
    preflight.check_device("auto")
    with pytest.raises(UserError) as e:
        preflight.check_device("cuda")
    assert e.value.field == "device" and "device=cpu" in e.value.fix


@pytest.mark.parametrize("where", ["proc", "file", "readonly_parent"])
def test_results_dir_that_cannot_be_written(tmp_path, where):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    target = {"proc": "/proc/no/such/results", "file": str(a_file)}.get(where)
    if where == "readonly_parent":  # a folder under a file: refused even for root
        target = str(a_file / "results")
    before = _files(tmp_path)
    with pytest.raises(UserError) as e:
        preflight.check_results_dir(str(target), "sweep")
    assert e.value.field == "results_dir" and "writable" in e.value.fix
    assert _files(tmp_path) == before and not Path("/proc/no").exists()


def test_an_empty_results_dir_is_refused():
    """It was accepted: runs landed in the current folder, Hydra's multirun files in /<sweep>."""
    from sweeps.config import BudgetConfig, RunConfig

    with pytest.raises(UserError) as e:
        preflight.check_results_dir("", "sweep")
    assert e.value.field == "results_dir" and "empty" in e.value.problem
    with pytest.raises(UserError) as e:
        RunConfig(budget=BudgetConfig(tokens=1e6), results_dir=" ")
    assert e.value.field == "results_dir"


def test_results_dir_probe_leaves_the_disk_as_it_was(tmp_path):
    preflight.check_results_dir(str(tmp_path / "new" / "results"), "s")
    assert list(tmp_path.iterdir()) == []  # the folders it made for the probe are gone again
    (tmp_path / "kept").mkdir()
    preflight.check_results_dir(str(tmp_path / "kept"), "s")
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and not any(
        (tmp_path / "kept").iterdir()
    )


@pytest.mark.parametrize(
    ("val_fraction", "side"), [(0.9999, "train"), (0.0001, "validation")], ids=["train", "val"]
)
def test_split_shorter_than_the_context_is_refused_before_the_cache(
    tiny_cfg, tmp_path, val_fraction, side
):
    cache = tmp_path / "cache"
    cfg = tiny_cfg(
        data=DataConfig(
            name="synthetic", val_fraction=val_fraction, n_val_tokens=2048, cache_dir=str(cache)
        )
    )
    with pytest.raises(UserError) as e:
        run_one(cfg)
    assert e.value.field == "model.context" and f"the {side} split" in e.value.problem
    assert "model.context <=" in e.value.fix
    assert _files(cache) == [] and _files(tmp_path / "results") == []


def test_predicted_split_of_a_token_file(tmp_path):
    np.arange(1000, dtype=np.uint16).tofile(tmp_path / "ids.bin")
    cfg = DataConfig(name="tokens", path=str(tmp_path / "ids.bin"), val_fraction=0.1)
    assert preflight.predicted_split(cfg) == (900, 100)
    np.save(tmp_path / "ids.npy", np.arange(500, dtype=np.int64))
    assert preflight.predicted_split(replace(cfg, path=str(tmp_path / "ids.npy"))) == (450, 50)


# ---- memory ----


def test_memory_estimate_parts_follow_the_documented_formulas():
    from models import make_shape, param_counts

    shape = make_shape("gpt", n_layer=2, d_model=64, n_head=4, vocab_size=256, context=128)
    total = param_counts(shape)["total"]
    est = memory.estimate_memory(shape, n_params_total=total, batch_size=8)
    assert est.static == 16 * total
    assert est.activations == 8 * 128 * (20 * 2 + 4) * 64 * 4
    assert est.logits == 3 * 8 * 128 * 256 * 4
    assert est.eval == 32 * 128 * (3 * 256 + 4 * 64) * 4
    assert est.total == est.static + max(est.activations + est.logits, est.eval) + est.overhead
    lstm = make_shape("lstm", n_layer=2, d_model=64, vocab_size=256, context=128)
    est_l = memory.estimate_memory(lstm, n_params_total=1, batch_size=8)
    assert est_l.activations == 8 * 128 * (10 * 2 + 4) * 64 * 4


def test_a_run_larger_than_memory_is_refused_naming_what_to_lower(tiny_cfg, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cfg = tiny_cfg(
        model=ModelConfig(n_params=1e12, context=32),
        data=DataConfig(name="synthetic", n_val_tokens=2048, cache_dir=str(cache)),
    )
    with pytest.raises(UserError) as e:
        run_one(cfg)
    assert e.value.field == "memory" and "model.n_params" in e.value.fix
    assert "TiB" in e.value.problem and "available" in e.value.problem
    assert _files(cache) == [] and _files(tmp_path / "results") == []
    # the batch is what to lower when the logits dominate: a tiny machine, a wide batch
    monkeypatch.setattr(memory, "available_memory", lambda device: (600 * 2**20, "RAM"))
    with pytest.raises(UserError) as e:
        run_one(tiny_cfg(optim=replace(cfg.optim, batch_size=4096)))
    assert "optim.batch_size" in e.value.fix.split(",")[0]


# ---- checkpoints and records that cannot be used ----


def _partial_run(cfg, monkeypatch) -> Path:
    """A run of cfg 'killed' right after its checkpoint at step 20 (its first evaluation), in its
    own run folder."""
    from tests.test_train_run import _killed_after_checkpoint

    run_dir = run_dir_for(cfg)
    _killed_after_checkpoint(cfg, run_dir, 20, monkeypatch)
    records.write_json_atomic(run_dir / records.CONFIG_FILE, _semantic(cfg))
    return run_dir


def _semantic(cfg):
    from sweeps.run.identity import semantic_config

    return json.loads(json.dumps(semantic_config(cfg), default=str))


_CLEAN: dict[str, float] = {}  # the loss of the uninterrupted run, trained once


class Foreign:
    """A class weights_only refuses to unpickle (a pickle from elsewhere)."""


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _other_model(p: Path) -> None:
    state = torch.load(p, weights_only=True)
    state["model"] = {k: v[..., :1].clone() for k, v in state["model"].items()}
    torch.save(state, p)


@pytest.mark.parametrize(
    "spoil",
    [
        _truncate,
        lambda p: p.write_bytes(b"not a checkpoint at all\n"),
        lambda p: p.write_bytes(pickle.dumps(Foreign(), protocol=2)),
        _other_model,
        lambda p: torch.save({"weights": torch.zeros(3)}, p),
    ],
    ids=["truncated", "wrong_format", "foreign_pickle", "other_model", "other_dict"],
)
def test_unloadable_checkpoint_is_set_aside_and_the_run_starts_over(
    tiny_cfg, tmp_path, monkeypatch, capsys, spoil
):
    cfg = tiny_cfg(n_evals=4)  # 78 steps, checkpoints at the evaluations (20, 39, 58)
    if "loss" not in _CLEAN:
        _CLEAN["loss"] = loop.train(cfg, tmp_path / "clean")["loss"]
    run_dir = _partial_run(cfg, monkeypatch)
    ckpt = run_dir / records.CHECKPOINT_FILE
    spoil(ckpt)
    capsys.readouterr()
    record = run_one(cfg)
    err = capsys.readouterr().err
    assert record is not None and record["status"] == "ok"
    assert record["loss"] == _CLEAN["loss"]  # from scratch: the same seed, the same run
    (aside,) = run_dir.glob("checkpoint.pt.corrupt-*")
    assert f"moved aside to {aside.name}, training from scratch" in err
    assert "resuming" not in err  # it said "resuming from its checkpoint" first, then this
    assert str(ckpt) in err and "Traceback" not in err
    assert not (run_dir / "error.log").exists() and not ckpt.exists()


def _drop_tokens(text: str) -> str:
    rec = json.loads(text)
    del rec["n_tokens"]
    return json.dumps(rec)


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (lambda text: text[:100], "not valid JSON"),
        # valid JSON that breaks the contract: counted as done by a rerun (never retrained,
        # never fitted) and crashing `status` and the sweep's return value, before
        (_drop_tokens, "field 'n_tokens' is missing"),
        (lambda text: json.dumps(json.loads(text) | {"loss": "4.65x"}), "field 'loss' is '4.65x'"),
    ],
    ids=["truncated", "no_n_tokens", "loss_text"],
)
def test_unreadable_record_is_set_aside_and_the_run_retrained(tiny_cfg, capsys, corrupt, reason):
    cfg = tiny_cfg()
    first = run_one(cfg)
    assert first is not None
    run_dir = run_dir_for(cfg)
    path = run_dir / records.RECORD_FILE
    path.write_text(corrupt(path.read_text()))
    status = sweep_status(run_dir.parent)
    assert status["counts"]["unreadable"] == 1
    (row,) = status["runs"]
    assert reason in row["reason"]
    capsys.readouterr()
    again = run_one(cfg)
    err = capsys.readouterr().err
    assert again is not None and again["status"] == "ok" and again["loss"] == first["loss"]
    (aside,) = run_dir.glob("record.json.corrupt-*")
    assert f"moved aside to {aside.name}, the run trains again" in err and str(path) in err
    assert records.read_record(run_dir)["status"] == "ok"


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda r: r["config"]["optim"].update(lr=0.1), "optim"),
        (lambda r: r.update(lr=0.1), "lr"),
        (lambda r: r["config"].update(seed=7), "seed"),
        (lambda r: r["config"]["optim"].update(lr="fast"), "cannot be read back"),
    ],
    ids=["config_lr", "resolved_lr", "seed", "bad_value"],
)
def test_edited_finished_record_is_refused(tiny_cfg, edit, named):
    cfg = tiny_cfg()
    run_one(cfg)
    run_dir = run_dir_for(cfg)
    rec = records.read_record(run_dir)
    edit(rec)
    records.write_json_atomic(run_dir / records.RECORD_FILE, rec)
    with pytest.raises(UserError) as e:
        run_one(cfg)
    assert e.value.field == str(run_dir / records.RECORD_FILE)
    assert named in e.value.problem and "move or delete" in e.value.fix


def test_status_shows_a_non_finite_ok_run_as_such(tmp_path, hand_record):
    sweep = tmp_path / "s"
    for name, loss in (("aaa", 3.0), ("bbb", float("nan")), ("ccc", None)):
        hand_record(sweep / name, status="ok", loss=loss)
    status = sweep_status(sweep)
    assert status["counts"]["ok"] == 1 and status["counts"]["non-finite"] == 2
    reasons = [r["reason"] for r in status["runs"] if r["state"] == "non-finite"]
    assert all("not a finite number" in r for r in reasons)


# ---- data caches a failed build leaves empty ----


@pytest.mark.parametrize(
    "ids", [np.array([1, 2, -3] * 100), np.array([1, 2, 2**32] * 100)], ids=["negative", "2^32"]
)
def test_bad_token_ids_leave_no_lock_or_listing(tmp_path, ids):
    np.save(tmp_path / "ids.npy", ids.astype(np.int64))
    cache = tmp_path / "cache"
    cfg = DataConfig(name="tokens", path=str(tmp_path / "ids.npy"), cache_dir=str(cache))
    with pytest.raises(UserError) as e:
        load_dataset(cfg, progress=False)
    assert e.value.field == "data.path"
    assert _files(cache) == []


def test_bpe_vocabulary_the_corpus_cannot_make_is_refused(tmp_path):
    (tmp_path / "corpus").mkdir()
    for i in range(3):
        (tmp_path / "corpus" / f"f{i}.txt").write_text(f"doc {i}: " + "abc def ghi\n" * 200)
    cache = tmp_path / "cache"
    base = DataConfig(name="text", path=str(tmp_path / "corpus"), tokenizer="bpe")
    # more merges than bytes: refused before the corpus is read
    with pytest.raises(UserError) as e:
        load_dataset(replace(base, vocab_size=10_000_000, cache_dir=str(cache)), progress=False)
    assert e.value.field == "data.vocab_size" and "bytes" in e.value.problem
    # within the bytes but beyond what BPE finds to merge: refused, the record would lie
    with pytest.raises(UserError) as e:
        load_dataset(replace(base, vocab_size=2000, cache_dir=str(cache)), progress=False)
    assert e.value.field == "data.vocab_size" and "stops at" in e.value.problem
    made = int(e.value.fix.split("data.vocab_size=")[1].split()[0])
    assert _files(cache) == []
    ok = load_dataset(replace(base, vocab_size=made, cache_dir=str(cache)), progress=False)
    assert ok.vocab_size == made


def test_status_on_a_run_folder_or_the_results_folder_says_which_to_give(
    tmp_path, hand_record, capsys
):
    """Both read as an empty sweep ('0 runs: none yet', exit 0) before. A results folder that
    holds exactly one sweep is that sweep (it was refused, asking for the one folder it could
    only mean); one that holds several names them."""
    from sweeps.status import main as status_main

    hand_record(tmp_path / "results" / "iso" / "aaa")
    assert status_main([str(tmp_path / "results" / "iso" / "aaa")]) == 2
    err = capsys.readouterr().err
    assert "is one run's folder" in err and str(tmp_path / "results" / "iso") in err
    assert status_main([str(tmp_path / "results")]) == 0
    cap = capsys.readouterr()
    assert f"the one sweep in {tmp_path / 'results'}" in cap.err and "1 run" in cap.out
    hand_record(tmp_path / "results" / "grid" / "bbb")
    assert status_main([str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert "holds 2 sweep folder(s) (grid, iso)" in err and err.count("\n") == 1
    assert status_main([str(tmp_path / "results" / "iso")]) == 0
    (tmp_path / "empty").mkdir()
    assert status_main([str(tmp_path / "empty")]) == 0  # a sweep not started yet: nothing wrong


def test_a_run_that_cycles_its_corpus_many_times_is_warned_about(tiny_cfg, capsys):
    """On a GPU the device check's 1e16-FLOP runs saw a 10 MB corpus ~20 times (train loss 0.31,
    validation 1.25) without a word; past 4 epochs a run now says so (Muennighoff et al. 2023)."""
    from sweeps.run.preflight import repeated_data

    assert repeated_data(4e6, 1_000_000) is None
    assert "4.1 times" in repeated_data(4.1e6, 1_000_000)
    cfg = tiny_cfg(data=DataConfig(name="synthetic", n_val_tokens=256, synthetic_n_tokens=8192,
                                   cache_dir=tiny_cfg().data.cache_dir),
                   budget=BudgetConfig(tokens=4e4))  # fmt: skip
    # ~40k tokens of a ~7.8k-token training split: ~5 epochs
    assert run_one(cfg) is not None
    err = capsys.readouterr().err
    assert "warning: the run sees its training split" in err and "data.path=" in err


def test_a_file_where_the_run_folder_goes_is_one_error(tiny_cfg):
    """It was a FileExistsError traceback from the run lock's mkdir."""
    from sweeps.run.runner import run_dir_for, run_one

    cfg = tiny_cfg()
    run_dir_for(cfg).parent.mkdir(parents=True)
    run_dir_for(cfg).write_text("x")
    with pytest.raises(UserError) as e:
        run_one(cfg)
    assert e.value.field == "results_dir" and str(run_dir_for(cfg)) in e.value.problem
    assert run_dir_for(cfg).read_text() == "x"
