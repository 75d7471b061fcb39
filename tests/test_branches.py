"""WSD cooldown branches (sweeps/branches/wsd.py): records, trunk reuse, exactness against a
from-scratch WSD run, the plan's cost ratio, and resuming a sweep killed during its trunk."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

import sweeps.run.loop as loop
from sweeps import records
from sweeps.branches.wsd import branch_costs, branch_plan, fork_path, run_job
from sweeps.config import BranchConfig, BudgetConfig, ModelConfig, RunConfig, ScheduleConfig
from sweeps.errors import UserError
from sweeps.run.hparam_rules import resolve_hparams
from sweeps.run.identity import run_id_for, semantic_config
from sweeps.run.runner import run_dir_for
from sweeps.sweep.status import sweep_status

BUDGETS = [1e4, 2e4, 4e4]  # tokens; 256 tokens per step -> 39, 78, 156 steps, forks 31, 62, 125


@pytest.fixture
def branch_cfgs(tiny_cfg):
    def make(**over):
        return [
            tiny_cfg(
                schedule=ScheduleConfig(name="wsd"),
                budget=BudgetConfig(tokens=b),
                branch=BranchConfig(budgets=BUDGETS),
                sweep_name="wsd",
                **over,
            )
            for b in BUDGETS
        ]

    return make


@pytest.fixture
def count_trains(monkeypatch):
    """Count loop.train calls by role (runner imports it at call time)."""
    calls: list[str] = []
    real = loop.train

    def counting(cfg, out_dir, **kw):
        calls.append(cfg.branch.role)
        return real(cfg, out_dir, **kw)

    monkeypatch.setattr(loop, "train", counting)
    return calls


def _trunk_dir(cfg: RunConfig) -> Path:
    bp = branch_plan(cfg, vocab_size=64)
    assert bp.trunk_cfg is not None
    return run_dir_for(bp.trunk_cfg)


def test_branches_equal_from_scratch_wsd_and_train_the_trunk_once(branch_cfgs, count_trains):
    cfgs = branch_cfgs()
    bps = [branch_plan(c, vocab_size=64) for c in cfgs]
    trunk_dir = _trunk_dir(cfgs[0])
    recs = [run_job(cfgs[0])]
    # the shortest branch has ended: its fork is deleted, the two others' are kept for them
    assert [fork_path(trunk_dir, bp.fork_step).exists() for bp in bps] == [False, True, True]
    recs += [run_job(c) for c in cfgs[1:]]
    assert not list(trunk_dir.glob("fork_*.pt"))
    assert count_trains == ["trunk", "branch", "branch", "branch"]
    assert all(r is not None and r["status"] == "ok" and r["role"] == "branch" for r in recs)
    (trunk_id,) = {r["parent_run_id"] for r in recs}
    assert trunk_dir.name == trunk_id
    trunk = records.read_record(trunk_dir)
    assert (trunk["status"], trunk["role"], trunk["parent_run_id"]) == ("ok", "trunk", None)
    assert trunk["n_steps"] == max(bp.fork_step for bp in bps) == 156 - round(0.2 * 156)
    assert len({bp.warmup_steps for bp in bps}) == 1
    for cfg, bp, rec in zip(cfgs, bps, recs, strict=True):
        tps = bp.plan.tokens_per_step
        assert rec["n_tokens"] == bp.plan.n_steps * tps == int(cfg.budget.tokens // tps) * tps
        assert rec["flops"] == pytest.approx(6 * rec["n_params"] * rec["n_tokens"])
        assert rec["flops_marginal"] == pytest.approx(
            rec["flops_per_token_exact"] * bp.marginal_steps * tps
        )
        assert rec["flops_marginal"] < 0.25 * rec["flops_exact"]
        # the same run from scratch: WSD with the branch's absolute warmup, no trunk
        scratch = replace(
            cfg,
            schedule=ScheduleConfig(name="wsd", warmup_steps=bp.warmup_steps),
            branch=BranchConfig(),
            sweep_name="scratch",
        )
        ref = run_job(scratch)
        assert ref is not None and ref["parent_run_id"] is None
        assert rec["loss"] == pytest.approx(ref["loss"], rel=1e-6, abs=0)
    # a rerun trains nothing and loses nothing
    n_calls = len(count_trains)
    again = [run_job(c) for c in cfgs]
    assert len(count_trains) == n_calls
    assert [r["run_id"] for r in again] == [r["run_id"] for r in recs]


def test_killed_during_the_trunk_resumes_it_and_loses_no_branch(
    branch_cfgs, count_trains, monkeypatch
):
    cfgs = branch_cfgs()
    trunk_dir = _trunk_dir(cfgs[0])
    real_save = loop._save_checkpoint

    def killing_save(path, state):
        real_save(path, state)
        if (
            path.parent == trunk_dir
            and path.name == records.CHECKPOINT_FILE
            and state["step"] == 62
        ):
            raise KeyboardInterrupt  # a kill after the trunk passed two of its three forks

    monkeypatch.setattr(loop, "_save_checkpoint", killing_save)
    with pytest.raises(KeyboardInterrupt):
        run_job(cfgs[2])  # the longest branch starts first and trains the trunk
    assert records.run_state(trunk_dir) == "partial"
    assert (trunk_dir / records.CHECKPOINT_FILE).exists()
    monkeypatch.setattr(loop, "_save_checkpoint", real_save)

    resumed_from = []
    real_load = loop.torch.load

    def spying_load(path, **kw):
        resumed_from.append(Path(path))
        return real_load(path, **kw)

    monkeypatch.setattr(loop.torch, "load", spying_load)
    recs = [run_job(c) for c in cfgs]  # the rerun
    # the two short branches fork from checkpoints kept before the kill; the long one resumes it
    assert count_trains == ["trunk", "branch", "branch", "trunk", "branch"]
    assert trunk_dir / records.CHECKPOINT_FILE in resumed_from
    assert all(r["status"] == "ok" for r in recs)
    steps = [row["step"] for row in records.read_curve(trunk_dir)]
    assert steps == sorted(set(steps))
    # identical to an uninterrupted branch sweep
    monkeypatch.setattr(loop.torch, "load", real_load)
    fresh = run_job(replace(cfgs[2], results_dir=cfgs[2].results_dir + "_fresh"))
    assert recs[2]["loss"] == pytest.approx(fresh["loss"], rel=1e-6, abs=0)


def test_keep_forks_keeps_them_and_a_lost_fork_says_how_to_retrain(branch_cfgs):
    cfgs = branch_cfgs()
    kept = [replace(c, branch=replace(c.branch, keep_forks=True)) for c in cfgs]
    assert [run_dir_for(c) for c in kept] == [run_dir_for(c) for c in cfgs]  # not semantic
    for c in kept:
        run_job(c)
    trunk_dir = _trunk_dir(cfgs[0])
    assert len(list(trunk_dir.glob("fork_*.pt"))) == len(BUDGETS)
    run_job(cfgs[1])  # a rerun without keep_forks trains nothing and cleans up
    assert not list(trunk_dir.glob("fork_*.pt"))
    # a branch retrained after its fork was deleted: the error names the file and the fix
    shutil.rmtree(run_dir_for(branch_plan(cfgs[1], vocab_size=64).branch_cfg))
    with pytest.raises(UserError, match="fork checkpoint is missing") as err:
        run_job(cfgs[1])
    assert "fork_62.pt" in str(err.value) and f"delete {trunk_dir}" in str(err.value)


def test_a_branch_whose_own_checkpoint_is_unusable_starts_again_from_its_fork(branch_cfgs, capsys):
    """It set the checkpoint aside and trained the whole trunk's steps again from scratch (same
    loss, several times the compute, flops_marginal of a from-scratch run)."""
    kept = [replace(c, branch=replace(c.branch, keep_forks=True)) for c in branch_cfgs()]
    first = [run_job(c) for c in kept]
    branch_dir = run_dir_for(branch_plan(kept[1], vocab_size=64).branch_cfg)
    (branch_dir / records.RECORD_FILE).unlink()
    (branch_dir / records.CHECKPOINT_FILE).write_text("garbage")
    capsys.readouterr()
    again = run_job(kept[1])
    assert "moved aside to" in capsys.readouterr().err.replace("\n", " ")
    assert again["loss"] == pytest.approx(first[1]["loss"], rel=1e-6, abs=0)
    assert again["flops_marginal"] == first[1]["flops_marginal"]
    # and with its fork gone too (deleted by hand): from scratch, as before, not a failed record
    fork = next(p for p in _trunk_dir(kept[1]).glob("fork_*.pt") if p.name == "fork_62.pt")
    fork.unlink()
    (branch_dir / records.RECORD_FILE).unlink()
    (branch_dir / records.CHECKPOINT_FILE).write_text("garbage")
    scratch = run_job(kept[1])
    assert scratch["status"] == "ok" and scratch["flops_marginal"] > first[1]["flops_marginal"]
    assert scratch["loss"] == pytest.approx(first[1]["loss"], rel=1e-6, abs=0)


def test_plan_cost_ratio_for_a_4x4_grid_with_doubling_tokens():
    tokens = [1e6, 2e6, 4e6, 8e6]
    cfgs = [
        RunConfig(
            model=ModelConfig(n_params=n),
            schedule=ScheduleConfig(name="wsd"),
            budget=BudgetConfig(tokens=d),
            branch=BranchConfig(budgets=tokens),
        )
        for n in (3e3, 1e4, 3e4, 1e5)
        for d in tokens
    ]
    costs = branch_costs(cfgs, vocab_size=256)
    assert costs.n_trunks == 4
    assert costs.ratio <= 0.65
    assert costs.ratio == pytest.approx(0.8 * 8 / 15 + 0.2, rel=0.02)  # (0.8 D_max + 0.2 sum) / sum
    plain = [replace(c, branch=BranchConfig()) for c in cfgs]
    assert branch_costs(plain, vocab_size=256).naive_flops == pytest.approx(costs.naive_flops)
    assert branch_costs(plain, vocab_size=256).ratio == 1.0


def test_branch_mode_refuses_a_budget_outside_the_list_and_a_non_wsd_schedule(branch_cfgs):
    cfg = branch_cfgs()[0]
    with pytest.raises(UserError, match="budget.tokens"):
        branch_plan(replace(cfg, budget=BudgetConfig(tokens=3e4)), vocab_size=64)
    with pytest.raises(UserError, match="schedule.name"):
        branch_plan(replace(cfg, schedule=ScheduleConfig(name="cosine")), vocab_size=64)


def test_run_ids_hash_the_branch_node_and_warmup_steps_plainly(tiny_cfg):
    # id_version 2 dropped version 1's deletions of both at their defaults (kept only old ids);
    # keep_forks stays out: housekeeping, not the result
    sem = semantic_config(tiny_cfg())
    assert sem["id_version"] == records.RUN_ID_VERSION == 2
    assert sem["branch"] == {"budgets": None, "role": "run", "fork_steps": None}
    assert sem["schedule"]["warmup_steps"] is None
    kept = tiny_cfg(branch=replace(tiny_cfg().branch, keep_forks=True))
    assert run_id_for(kept) == run_id_for(tiny_cfg())


def test_one_trunk_per_size_whatever_the_cooldown_shape(branch_cfgs):
    # Bug: the trunk (a constant schedule) kept the WSD settings it never reads in its id, so a
    # grid_wsd sweep over schedule.decay_shape trained one identical trunk per shape.
    sqrt = branch_cfgs()[0]
    linear = replace(sqrt, schedule=replace(sqrt.schedule, decay_shape="linear"))
    floor = replace(sqrt, schedule=replace(sqrt.schedule, min_lr_frac=0.0))
    trunks = {_trunk_dir(c) for c in (sqrt, linear, floor)}
    assert len(trunks) == 1
    # the branches themselves differ by shape (they cool down differently)
    assert len({run_dir_for(branch_plan(c, vocab_size=64).branch_cfg) for c in (sqrt, linear)}) == 2


def test_settings_a_schedule_never_reads_do_not_change_the_run_id(tiny_cfg):
    def rid(**kw):
        return run_id_for(tiny_cfg(schedule=ScheduleConfig(**kw)))

    # unread: same model, same id
    assert rid(name="cosine", decay_shape="linear", decay_frac=0.5) == rid(name="cosine")
    assert rid(name="wsd", min_lr_frac=0.0) == rid(name="wsd")
    assert rid(name="constant", min_lr_frac=0.0, decay_frac=0.3) == rid(name="constant")
    assert rid(warmup_steps=10, warmup_frac=0.2) == rid(warmup_steps=10)
    # read: a new id
    assert rid(name="cosine", min_lr_frac=0.0) != rid(name="cosine")
    assert rid(name="wsd", decay_shape="linear") != rid(name="wsd")
    assert rid(warmup_frac=0.2) != rid()


def test_presets_list_the_swept_budgets_in_branch_budgets():
    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parent.parent / "conf" / "sweep"
    for name, key in (
        ("grid_wsd", "budget.tokens"),
        ("tokens_per_param_wsd", "budget.tokens_per_param"),
    ):
        preset = OmegaConf.load(conf / f"{name}.yaml")
        swept = [float(v) for v in str(preset.hydra.sweeper.params[key]).split(",")]
        assert sorted(swept) == sorted(float(v) for v in preset.branch.budgets)


@pytest.mark.slow
def test_sigkill_during_the_trunk_of_a_multirun_then_rerun(tmp_path, tiny_overrides):
    """A real sweep (joblib, 2 processes) killed with SIGKILL while the trunk trains."""
    args = [
        sys.executable,
        "-m",
        "sweeps.train",
        "-m",
        "launcher=joblib",
        "schedule=wsd",
        *[o for o in tiny_overrides if not o.startswith("budget.tokens")],
        "sweep_name=kill",
        "checkpoint_every_s=0",
        "budget.tokens=1e4,2e4,4e4",
        "branch.budgets=[1e4,2e4,4e4]",
    ]
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo)}
    sweep_dir = tmp_path / "results" / "kill"
    proc = subprocess.Popen(
        args,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    trunk = None
    while time.time() < deadline and proc.poll() is None:
        for d in records.iter_run_dirs(sweep_dir):
            cfg_file = d / records.CONFIG_FILE
            if (d / "fork_31.pt").exists() and cfg_file.exists():
                if json.loads(cfg_file.read_text()).get("branch", {}).get("role") == "trunk":
                    trunk = d
        if trunk is not None:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert trunk is not None, "the trunk never reached its first fork"
    assert records.run_state(trunk) == "partial"
    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    recs = [records.read_record(d) for d in records.iter_run_dirs(sweep_dir)]
    branches = [r for r in recs if r["role"] == "branch"]
    assert sorted(r["n_tokens"] for r in branches) == [39 * 256, 78 * 256, 156 * 256]
    assert all(r["status"] == "ok" and r["parent_run_id"] == trunk.name for r in branches)
    assert [r["status"] for r in recs if r["role"] == "trunk"] == ["ok"]
    assert all(math.isfinite(r["loss"]) for r in recs)
    # the sweep counts its branch runs (it listed ids of folders no job makes: 'no runs' at the
    # end, and status showed them 'pending' forever)
    assert ": 3 ok in" in done.stderr, done.stderr[-2000:]
    status = sweep_status(sweep_dir)
    assert status["counts"]["pending"] == 0 and status["counts"]["ok"] == 4


def test_auto_in_branch_mode_takes_the_rules_at_the_longest_budget(branch_cfgs, tmp_path):
    """Rules by horizon give each budget its own batch; one trunk needs one: the longest's."""
    rules = {
        "lr": {"c": 0.5, "gamma": 0.4, "delta": 0.5},
        "batch_size": {"of": "tokens", "k": 0.04, "p": 0.5, "min": 1, "max": 1024},
    }
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    cfgs = branch_cfgs()
    cfgs = [
        replace(c, optim=replace(c.optim, lr="auto", batch_size="auto", rules=str(path)))
        for c in cfgs
    ]
    own = [resolve_hparams(c.optim, n_params=1000, budget=c.budget)[1] for c in cfgs]
    assert len(set(own)) > 1  # the rule differs by budget (4, 6, 8 sequences)
    bps = [branch_plan(c, vocab_size=64) for c in cfgs]
    longest = max(bps, key=lambda bp: bp.plan.n_tokens)
    assert bps[0].trunk_cfg == longest.trunk_cfg and bps[0].trunk_cfg is not None
    batches = {bp.branch_cfg.optim.batch_size for bp in bps} | {bp.plan.batch_size for bp in bps}
    assert batches == {bps[0].trunk_cfg.optim.batch_size}
    lr, batch = resolve_hparams(
        cfgs[-1].optim, n_params=bps[-1].plan.n_params, budget=cfgs[-1].budget
    )
    assert bps[0].trunk_cfg.optim.batch_size == batch and bps[0].trunk_cfg.optim.lr == lr
