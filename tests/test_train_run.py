"""One training run in-process on a tiny synthetic config: the record contract, determinism,
resume after an interruption, divergence, skipping a finished run, device and precision."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pytest
import torch

import sweeps.run.loop as loop
from sweeps import records
from sweeps.config import ModelConfig, OptimConfig
from sweeps.errors import UserError
from sweeps.run.identity import run_id_for, semantic_config
from sweeps.run.plan import plan_run
from sweeps.run.runner import run_dir_for, run_one


def record_fields() -> list[str]:
    """The fields the docstring of sweeps/records.py promises (the contract, read from it)."""
    doc = records.__doc__ or ""
    section = doc.split("Fields of record.json", 1)[1].split("Each line of curve.jsonl", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        m = re.match(r"^    ([a-z_0-9]+(?:, [a-z_0-9]+)*)\s{2,}\S", line)
        if m:
            names += m.group(1).split(", ")
    assert len(names) > 30, names  # the parse found the table
    return names


def test_the_documented_fields_are_the_record_type_s_fields() -> None:
    documented = record_fields()
    assert len(documented) == len(set(documented))
    assert sorted(documented) == sorted(f.name for f in dataclasses.fields(records.RunRecord))


def curve_fields() -> list[str]:
    doc = records.__doc__ or ""
    line = doc.split("Each line of curve.jsonl:", 1)[1].split(".")[0]
    return [w.split()[0] for w in line.split(",")]


def test_ok_record_is_complete_and_sane(tiny_cfg):
    cfg = tiny_cfg(n_evals=3)
    run_one(cfg)
    run_dir = run_dir_for(cfg)
    on_disk = records.read_record(run_dir)
    missing = [k for k in record_fields() if k not in on_disk]
    assert missing == []
    plan = json.loads((run_dir / "plan.json").read_text())  # what sweeps.status reads
    assert plan["checkpoint_every_s"] == cfg.checkpoint_every_s and plan["n_steps"] > 0
    r = on_disk
    assert r["schema_version"] == records.SCHEMA_VERSION
    assert r["status"] == "ok" and r["reason"] is None
    assert r["run_id"] == run_dir.name and r["sweep"] == cfg.sweep_name == run_dir.parent.name
    assert r["arch"] == "gpt" and r["seed"] == 0
    assert r["n_params"] == r["n_params_matmul"] > 0
    assert r["n_params_total"] == r["n_params_embedding"] + r["n_params_non_embedding"]
    assert r["flops_per_token_6n"] == 6 * r["n_params"]
    assert r["flops_per_token_exact"] > r["flops_per_token_6n"]  # attention on top of matmuls
    assert r["n_tokens"] == r["n_steps"] * r["batch_size"] * cfg.model.context
    assert r["n_tokens"] <= cfg.budget.tokens < r["n_tokens"] + r["batch_size"] * cfg.model.context
    assert r["flops"] == pytest.approx(6 * r["n_params"] * r["n_tokens"], rel=1e-12)
    assert r["flops_exact"] == pytest.approx(r["flops_per_token_exact"] * r["n_tokens"])
    assert r["flops_marginal"] == pytest.approx(r["flops_exact"])  # not a branch
    assert math.isfinite(r["loss"]) and r["perplexity"] == pytest.approx(math.exp(r["loss"]))
    assert r["loss"] < r["unigram_entropy"]  # it learned more than the token frequencies
    assert math.isfinite(r["train_loss"])
    assert r["lr"] == cfg.optim.lr and r["batch_size"] == cfg.optim.batch_size
    assert r["time_s"] > 0 and r["tokens_per_s"] == pytest.approx(r["n_tokens"] / r["time_s"])
    assert isinstance(r["dataset_id"], str) and r["dataset"]
    assert r["code_version"] and {"python", "torch"} <= set(r["lib_versions"])
    assert r["parent_run_id"] is None and r["created_at"].endswith("+00:00")
    assert r["config"]["model"]["context"] == cfg.model.context
    # The run ended well: no checkpoint left; the config that names the folder is there.
    assert not (run_dir / records.CHECKPOINT_FILE).exists()
    assert (run_dir / records.CONFIG_FILE).exists()

    curve = records.read_curve(run_dir)
    assert len(curve) == cfg.n_evals
    for row in curve:
        assert set(curve_fields()) <= set(row)
    assert [row["step"] for row in curve] == sorted({row["step"] for row in curve})
    assert curve[-1]["step"] == r["n_steps"] and curve[-1]["n_tokens"] == r["n_tokens"]
    assert curve[-1]["loss"] == r["loss"] and curve[-1]["train_loss"] == r["train_loss"]
    assert curve[-1]["flops"] == pytest.approx(r["flops"])


def _losses(run_dir) -> list[tuple[int, float, float]]:
    return [(row["step"], row["loss"], row["train_loss"]) for row in records.read_curve(run_dir)]


def test_same_seed_same_losses_other_seed_differs(tiny_cfg, tmp_path):
    a = loop.train(tiny_cfg(), tmp_path / "a")
    b = loop.train(tiny_cfg(), tmp_path / "b")
    c = loop.train(tiny_cfg(seed=1), tmp_path / "c")
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    assert a["loss"] == b["loss"] and a["train_loss"] == b["train_loss"]
    assert c["loss"] != a["loss"]


class Killed(BaseException):
    """Stands in for SIGKILL: nothing in the trainer catches a BaseException."""


def _killed_after_checkpoint(cfg, run_dir, step: int, monkeypatch) -> None:
    """Train cfg into run_dir, 'killed' right after the checkpoint at `step` is written."""
    save = loop._save_checkpoint

    def save_then_die(path, state):
        save(path, state)
        if state["step"] == step:
            raise Killed

    with monkeypatch.context() as m:
        m.setattr(loop, "_save_checkpoint", save_then_die)
        with pytest.raises(Killed):
            loop.train(cfg, run_dir)


def test_resume_after_interruption_matches_uninterrupted(tiny_cfg, tmp_path, monkeypatch):
    # A checkpoint after every step; the "kill" comes right after the one at step 7, which is
    # not an evaluation step, so the running training-loss sums are resumed too.
    cfg = tiny_cfg(n_evals=4, checkpoint_every_s=0.0)
    full = loop.train(cfg, tmp_path / "full")
    run_dir = tmp_path / "killed"
    _killed_after_checkpoint(cfg, run_dir, 7, monkeypatch)
    assert (run_dir / records.CHECKPOINT_FILE).exists()
    assert not (run_dir / records.RECORD_FILE).exists()
    assert torch.load(run_dir / records.CHECKPOINT_FILE, weights_only=True)["step"] == 7

    resumed = loop.train(cfg, run_dir)
    assert resumed["status"] == "ok"
    assert resumed["loss"] == full["loss"] and resumed["train_loss"] == full["train_loss"]
    assert resumed["n_tokens"] == full["n_tokens"]
    assert _losses(run_dir) == _losses(tmp_path / "full")


def test_a_hand_edited_curve_line_does_not_stop_a_resume(tiny_cfg, tmp_path, monkeypatch):
    """A curve line whose step is a string made the resume's truncate_curve raise TypeError: a
    failed record, and the same failure on every retry."""
    cfg = tiny_cfg(n_evals=4, checkpoint_every_s=0.0)
    full = loop.train(cfg, tmp_path / "full")
    run_dir = tmp_path / "killed"
    _killed_after_checkpoint(cfg, run_dir, 7, monkeypatch)
    with open(run_dir / records.CURVE_FILE, "a", encoding="utf-8") as f:
        f.write('{"step": "100", "loss": 2.0}\n')
    resumed = loop.train(cfg, run_dir)
    assert resumed["status"] == "ok" and resumed["loss"] == full["loss"]
    assert _losses(run_dir) == _losses(tmp_path / "full")


def test_temp_files_of_a_killed_run_are_cleared_on_rerun(tiny_cfg, tmp_path):
    """A SIGKILL during an atomic write leaves its temp file; the rerun must not keep it."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stale = [run_dir / ".ckpt.k1l2d.tmp", run_dir / ".record.json.x7f.tmp"]
    for path in stale:
        path.write_bytes(b"half written")
    assert loop.train(tiny_cfg(), run_dir)["status"] == "ok"
    assert list(run_dir.glob(".*.tmp")) == []


def test_diverged_run_gets_a_record(tiny_cfg, capsys):
    cfg = tiny_cfg(optim=OptimConfig(batch_size=8, lr=1e4, grad_clip=0.0))
    record = run_one(cfg)  # no exception
    assert record is not None and record["status"] == "diverged"
    assert "non-finite" in record["reason"]
    run_dir = run_dir_for(cfg)
    on_disk = json.loads((run_dir / records.RECORD_FILE).read_text())  # strict JSON: no NaN
    assert on_disk["status"] == "diverged" and on_disk["loss"] is None
    assert on_disk["n_tokens"] == on_disk["n_steps"] * 8 * cfg.model.context
    assert not (run_dir / records.CHECKPOINT_FILE).exists()
    assert records.run_state(run_dir) == "done"
    assert "diverged" in capsys.readouterr().err


def test_rerun_of_a_finished_run_is_skipped(tiny_cfg, capsys, monkeypatch):
    cfg = tiny_cfg()
    first = run_one(cfg)
    capsys.readouterr()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(loop, "train", no_training)
    monkeypatch.setattr(loop, "prepare", no_training)  # not even the data is loaded
    # a SIGKILL between writing the record and removing the checkpoint left it behind for good
    (run_dir_for(cfg) / records.CHECKPOINT_FILE).write_bytes(b"weights")
    again = run_one(cfg)
    assert again == records.read_record(run_dir_for(cfg))
    assert again["loss"] == first["loss"]
    assert "already done" in capsys.readouterr().err
    assert not (run_dir_for(cfg) / records.CHECKPOINT_FILE).exists()
    (run_dir_for(cfg) / records.CHECKPOINT_FILE).write_bytes(b"weights")
    real_unlink = Path.unlink

    def read_only(self, *a, **k):  # a read-only copy of the results (root ignores chmod)
        if self.name == records.CHECKPOINT_FILE:
            raise PermissionError(13, "Permission denied", str(self))
        return real_unlink(self, *a, **k)

    monkeypatch.setattr(Path, "unlink", read_only)
    assert run_one(cfg) == again  # still "already done", no traceback


def test_device_auto_without_cuda_uses_the_cpu(tiny_cfg, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    record = loop.train(tiny_cfg(device="auto"), tmp_path / "run")
    assert record["status"] == "ok"
    assert record["config"]["resolved"]["device"] == "cpu"


def test_bf16_trains_on_the_cpu(tiny_cfg, tmp_path):
    fp32 = loop.train(tiny_cfg(), tmp_path / "fp32")
    bf16 = loop.train(tiny_cfg(precision="bf16"), tmp_path / "bf16")
    assert bf16["status"] == "ok" and bf16["precision"] == "bf16"
    assert bf16["loss"] < bf16["unigram_entropy"]
    assert bf16["loss"] == pytest.approx(fp32["loss"], rel=0.05)


def test_pruned_run_keeps_its_checkpoint_writes_no_record_and_resumes_exactly(tiny_cfg, tmp_path):
    cfg = tiny_cfg(n_evals=4)
    seen: list[tuple[int, float]] = []

    def prune_at_half(percent: int, loss: float) -> bool:
        seen.append((percent, loss))
        return percent >= 50

    out = run_one(cfg, on_eval=prune_at_half)
    run_dir = run_dir_for(cfg)
    assert out["status"] == "pruned" and out["step"] > 0
    assert [p for p, _ in seen] == [25, 50]  # percent of the run's steps, not raw steps
    assert out["loss"] == seen[-1][1]
    assert not (run_dir / records.RECORD_FILE).exists()
    assert (run_dir / records.CHECKPOINT_FILE).exists()
    assert records.run_state(run_dir) == "partial"
    resumed = run_one(cfg)  # a full run of the same config picks the pruned run up
    assert resumed["status"] == "ok"
    fresh = run_one(tiny_cfg(n_evals=4, results_dir=str(tmp_path / "fresh")))
    assert resumed["loss"] == pytest.approx(fresh["loss"], rel=1e-6)


def test_n_head_with_n_params_trains_that_head_count_under_a_new_id(tiny_cfg):
    # Bug: model.n_head was ignored when the shape was solved from model.n_params, so a sweep over
    # heads trained one 1-head model under several run ids.
    base = tiny_cfg(model=ModelConfig(n_params=1e4, context=32))
    two = tiny_cfg(model=ModelConfig(n_params=1e4, context=32, n_head=2))
    assert plan_run(base, vocab_size=256).shape.n_head == 1
    assert plan_run(two, vocab_size=256).shape.n_head == 2
    assert run_id_for(base) != run_id_for(two)
    # the head count is in the id as given (id_version 2 dropped version 1's n_head_solved marker,
    # which kept other configs' old ids); every version-1 id differs, as id_version is hashed too
    assert semantic_config(two)["model"]["n_head"] == 2
    assert "n_head_solved" not in semantic_config(two)["model"]
    assert semantic_config(two)["id_version"] == records.RUN_ID_VERSION


def test_a_checkpoint_resumes_only_on_its_own_data_and_precision(tiny_cfg, tmp_path, monkeypatch):
    # Neither is in the run id (precision=auto resolves per machine; pystdlib is the running
    # Python's library): a folder resumed elsewhere must not go on with other tokens or arithmetic.
    cfg = tiny_cfg(n_evals=4, checkpoint_every_s=0.0)
    run_dir = tmp_path / "moved"
    _killed_after_checkpoint(cfg, run_dir, 5, monkeypatch)
    ckpt = run_dir / records.CHECKPOINT_FILE
    state = torch.load(ckpt, weights_only=True)
    assert state["precision"] == "fp32" and state["dataset_id"]
    for key, other in (("dataset_id", "another-corpus"), ("precision", "bf16")):
        torch.save({**state, key: other}, ckpt)
        with pytest.raises(UserError, match=rf"was trained with {key} '{other}'") as e:
            loop.train(cfg, run_dir)
        assert str(ckpt) in str(e.value) and f"delete {ckpt.name}" in str(e.value)
    # a checkpoint from before these fields resumes as it always did
    torch.save({k: v for k, v in state.items() if k not in ("dataset_id", "precision")}, ckpt)
    assert loop.train(cfg, run_dir)["status"] == "ok"
