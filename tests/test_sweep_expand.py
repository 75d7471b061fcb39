"""Sweep presets expand in-process exactly as Hydra launches them; plan and status train nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sweeps import records
from sweeps.config import BudgetConfig, ModelConfig, RunConfig
from sweeps.plan import main as plan_main
from sweeps.run.identity import run_id_for
from sweeps.status import main as status_main
from sweeps.sweep.callbacks import SWEEP_FILE, progress_line
from sweeps.sweep.compose import register_configs, to_run_config
from sweeps.sweep.expand import expand_sweep, sweep_overrides
from sweeps.sweep.status import format_status, sweep_status

REPO = Path(__file__).resolve().parent.parent

PRESETS = {
    # name: (n_runs, first job's overrides, last job's overrides, horizon)
    "smoke": (
        4,
        ["model.n_params=2000.0", "budget.tokens=20000.0"],
        ["model.n_params=5000.0", "budget.tokens=40000.0"],
        "tokens",
    ),
    "grid": (
        12,
        ["model.n_params=3000.0", "budget.tokens=1000000.0"],
        ["model.n_params=100000.0", "budget.tokens=10000000.0"],
        "tokens",
    ),
    "isoflop": (
        18,
        ["budget.flops=100000000000.0", "model.n_params=3000.0"],
        ["budget.flops=1000000000000.0", "model.n_params=100000.0"],
        "flops",
    ),
    "tokens_per_param": (
        12,
        ["model.n_params=5000.0", "budget.tokens_per_param=20"],
        ["model.n_params=50000.0", "budget.tokens_per_param=500"],
        "tokens_per_param",
    ),
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_expands_without_training(name: str, tmp_path: Path) -> None:
    n_runs, first, last, _ = PRESETS[name]
    exp = expand_sweep([f"sweep={name}", f"results_dir={tmp_path}"], compose_jobs=False)
    assert len(exp.jobs) == n_runs
    assert exp.jobs[0].overrides == [*first, f"sweep={name}", f"results_dir={tmp_path}"]
    assert exp.jobs[-1].overrides == [*last, f"sweep={name}", f"results_dir={tmp_path}"]
    assert "joblib" in exp.master.hydra.launcher._target_
    assert exp.master.sweep_name == name
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_job_of_a_preset_composes_to_a_distinct_valid_run(name: str, tmp_path: Path) -> None:
    n_runs, _, _, horizon = PRESETS[name]
    exp = expand_sweep([f"sweep={name}", f"results_dir={tmp_path}"])
    ids = set()
    for job in exp.jobs:
        cfg = to_run_config(job.cfg)  # validated by the schemas' __post_init__
        assert cfg.sweep_name == name
        assert getattr(cfg.budget, horizon) is not None
        ids.add(run_id_for(cfg))
    assert len(ids) == n_runs  # distinct runs, distinct folders


def test_command_line_sweep_replaces_a_preset_param_in_place() -> None:
    jobs = sweep_overrides({"a": "1,2", "b": "x,y"}, ["c=3", "a=5,6,7"])
    assert jobs[0] == ["a=5", "b=x", "c=3"]
    assert len(jobs) == 6


@pytest.mark.slow
def test_expansion_matches_a_real_hydra_multirun(hydra_sweep_runner, tmp_path: Path) -> None:
    """The in-process multirun (Hydra's BasicSweeper + launcher) sees the same jobs in order."""
    from hydra.core.hydra_config import HydraConfig

    register_configs()
    seen: list[tuple[list[str], str]] = []

    def task(cfg):
        seen.append((list(HydraConfig.get().overrides.task), run_id_for(to_run_config(cfg))))

    overrides = ["sweep=isoflop", "launcher=local", "model.n_params=4e3,2e4", "seed=0,1"]
    with hydra_sweep_runner(
        calling_file=str(REPO / "sweeps" / "train.py"),
        calling_module=None,
        task_function=task,
        config_path="../conf",
        config_name="config",
        overrides=[*overrides, f"results_dir={tmp_path}"],
        temp_dir=tmp_path / "sweep",
    ):
        pass
    exp = expand_sweep([*overrides, f"results_dir={tmp_path}"])
    mine = [(j.overrides, run_id_for(to_run_config(j.cfg))) for j in exp.jobs]
    assert len(seen) == 3 * 2 * 2
    assert mine == seen


@pytest.mark.slow
def test_plan_json_for_smoke(tmp_path: Path, capsys) -> None:
    rc = plan_main(
        ["--json", "sweep=smoke", f"results_dir={tmp_path}/r", f"data.cache_dir={tmp_path}/c"]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["totals"]["n_runs"] == 4 and out["n_jobs"] == 2
    assert {r["state"] for r in out["runs"]} == {"new"}
    for r in out["runs"]:
        assert r["n_tokens"] == r["n_steps"] * 8 * 32  # whole steps of batch x context
        assert r["est_s"] > 0
    assert not (tmp_path / "r").exists()


def test_plan_marks_step_starved_isoflop_points(tmp_path: Path, capsys) -> None:
    rc = plan_main(
        [
            "sweep=isoflop",
            "data=synthetic",
            f"data.cache_dir={tmp_path}/c",
            "model.context=32",
            "optim.batch_size=8",
            "budget.flops=2e8",
            "model.n_params=2e3,3e4",
            "budget.min_steps=20",
            f"results_dir={tmp_path}/r",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "new->skip" in out and "will be recorded as skipped" in out
    assert "2 runs" in out


def test_plan_warns_when_two_size_targets_train_the_same_model(tmp_path: Path, capsys) -> None:
    """9e3 and 1e4 both resolve to 2 x 20 (N = 10,880): two run ids, one model, trained twice."""
    common = ["data=synthetic", f"data.cache_dir={tmp_path}/c", f"results_dir={tmp_path}/r"]
    rc = plan_main(["--json", "sweep=grid", "model.n_params=9e3,1e4,3e4", *common])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert len(out["same_model"]) == 3  # one pair per token count of the grid
    shapes = {r["run_id"]: (r["shape"], r["n_tokens"]) for r in out["runs"]}
    for ids in out["same_model"]:
        assert len(ids) == 2 and shapes[ids[0]] == shapes[ids[1]]
        assert shapes[ids[0]][0] == "2 x 20"
    rc = plan_main(["sweep=grid", "model.n_params=9e3,1e4,3e4", *common])
    assert rc == 0 and capsys.readouterr().out.count("train the same model") == 3
    rc = plan_main(["--json", "sweep=grid", "model.n_params=1e4,3e4", *common])
    assert rc == 0 and json.loads(capsys.readouterr().out)["same_model"] == []


@pytest.mark.parametrize(
    "args, says",
    [
        (["sweep=nope"], "error: sweep: no option 'nope'"),
        (["sweep=smoke", "model.n_params=-1"], "model.n_params"),
        (["sweep=smoke", "optim.lr=abc"], "optim.lr"),
    ],
)
def test_plan_user_error_is_one_line_exit_2(args, says, tmp_path: Path, capsys) -> None:
    rc = plan_main([*args, f"results_dir={tmp_path}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert says in err and len(err.splitlines()) == 1


def test_status_counts_states_and_partial_progress(tmp_path: Path, capsys, hand_record):
    sweep = tmp_path / "s"
    hand_record(sweep / "aaa")
    hand_record(sweep / "bbb", status="skipped", reason="too few steps", loss=None)
    hand_record(sweep / "ccc", status="failed", reason="RuntimeError: boom", loss=None)
    part = sweep / "ddd"
    records.write_json_atomic(part / "plan.json", {"n_steps": 100, "tokens_per_step": 256})
    records.append_curve(part, {"step": 25, "n_tokens": 6400, "loss": 3.5, "time_s": 2.0})
    st = sweep_status(sweep)
    assert st["counts"] == {
        "ok": 1, "diverged": 0, "non-finite": 0, "skipped": 1, "failed": 1, "unreadable": 0,
        "partial": 1, "pending": 0, "refused": 0, "older-id": 0,
    }  # fmt: skip
    (p,) = [r for r in st["runs"] if r["state"] == "partial"]
    assert p["progress"] == 0.25 and p["tokens_per_s"] == 3200
    assert p["eta_s"] == pytest.approx(75 * 256 / 3200)
    assert status_main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "25/100" in out and "too few steps" in out
    assert status_main([str(sweep), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_runs"] == 4


def test_status_missing_folder_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    assert status_main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(tmp_path / "nope") in err and len(err.splitlines()) == 1


def test_progress_line_counts_this_launch(tmp_path: Path, hand_record) -> None:
    now = time.time()
    records.write_json_atomic(
        tmp_path / SWEEP_FILE,
        {"started_at": now - 100, "run_ids": ["a", "b", "c", "d", None], "n_finished_at_start": 1},
    )
    for name in ("a", "b"):
        hand_record(tmp_path / name)
    line = progress_line(tmp_path, now=now)
    assert line is not None
    assert line.startswith("[sweep] 2/4 runs done (1 this launch")
    assert "ETA 3.3m" in line  # 100 s for 1 run, 2 left


def test_plan_prices_wsd_branches_as_cooldowns_plus_one_trunk_per_size(tmp_path: Path, capsys):
    common = [
        "data=synthetic",
        f"data.cache_dir={tmp_path}/c",
        "model.context=32",
        "optim.batch_size=8",
        f"results_dir={tmp_path}/r",
        "--json",
    ]
    assert plan_main(["sweep=grid_wsd", *common]) == 0
    branch = json.loads(capsys.readouterr().out)
    naive_grid = ["sweep=grid_wsd", "schedule=cosine", "branch.budgets=null", *common]
    assert plan_main(naive_grid) == 0
    naive = json.loads(capsys.readouterr().out)
    assert branch["totals"]["n_runs"] == naive["totals"]["n_runs"] == 16
    ratio = branch["totals"]["serial_s_all"] / naive["totals"]["serial_s_all"]
    flops_ratio = branch["branch_costs"]["ratio"]
    assert flops_ratio <= 0.65
    # run time follows compute, less per-run setup and evaluations, which branches do not save
    assert flops_ratio <= ratio <= flops_ratio + 0.15, (ratio, flops_ratio)


def test_a_fixed_shape_under_a_size_grid_is_one_run_per_token_count(tmp_path: Path, capsys) -> None:
    """Bug: with model.n_layer/model.d_model set, model.n_params (and min_layers) are not read
    but were in the run id, so sweep=grid trained the one model once per size target."""
    common = ["data=synthetic", f"data.cache_dir={tmp_path}/c", f"results_dir={tmp_path}/r"]
    shape = ["model.n_layer=2", "model.d_model=16"]
    rc = plan_main(["--json", "sweep=grid", "model.n_params=3e3,1e4,3e4", *shape, *common])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert len(out["runs"]) == 3  # one per token count, not 3 x 3
    assert sorted(out["repeated"].values()) == [3, 3, 3]
    rc = plan_main(["sweep=grid", "model.n_params=3e3,1e4,3e4", *shape, *common])
    assert rc == 0 and capsys.readouterr().out.count("is named by 3 jobs") == 3

    # the id of an explicit shape is the one it had when n_params was left at its default
    def rid(**kw):
        model = ModelConfig(n_layer=2, d_model=16, **kw)
        return run_id_for(RunConfig(model=model, budget=BudgetConfig(tokens=1e6)))

    assert rid(n_params=3e3) == rid(min_layers=4) == rid()


def test_status_says_when_the_sweep_eta_is_unknown_or_over(tmp_path: Path, hand_record):
    """`sweep ETA -` read as a missing number: with every run of the last launch finished it says
    so, and before any has finished it says when the ETA will be known."""
    sweep = tmp_path / "s"
    hand_record(sweep / "aaa")
    launch = {"started_at": 1.0, "run_ids": ["aaa", "bbb"], "n_finished_at_start": 1}
    records.write_json_atomic(sweep / ".sweep.json", launch)
    assert "known once a run" in format_status(sweep_status(sweep, now=2.0))  # aaa was there
    records.write_json_atomic(sweep / ".sweep.json", launch | {"run_ids": ["aaa"]})
    assert "sweep ETA none: nothing of the last launch is left to train" in format_status(
        sweep_status(sweep, now=2.0)
    )


def test_status_lists_the_jobs_refused_for_their_config(tmp_path: Path):
    """A launch whose jobs were all refused left a sweep folder that status read as `0 runs: none
    yet`: it now lists each refused job with its error."""
    sweep = tmp_path / "s"
    records.write_json_atomic(sweep / ".sweep.json", {"started_at": 1.0, "run_ids": [None]})
    error = "model.n_params: must be a positive number, got -5.0"
    (sweep / ".job_errors.jsonl").write_text(
        json.dumps({"overrides": ["model.n_params=-5"], "error": error}) + "\n"
    )
    out = format_status(sweep_status(sweep))
    assert f"config error for model.n_params=-5: {error}" in out
    assert "1 job(s) refused for their config" in out and "none yet" not in out


def test_status_refused_runs_are_neither_done_nor_left_and_old_refusals_fade(
    tmp_path: Path, hand_record
):
    """Refused runs counted as finished in the sweep ETA (2 refused + 2 pending gave an ETA
    before anything trained); a refusal stayed listed after a later command trained the run; a
    malformed row crashed status."""
    sweep = tmp_path / "s"
    launch = {"started_at": 1.0, "run_ids": ["r1", "r2", "p1", "p2"], "n_finished_at_start": 0}
    records.write_json_atomic(sweep / ".sweep.json", launch)
    rows = [{"run_id": r, "overrides": [f"seed={r}"], "error": "too big"} for r in ("r1", "r2")]
    rows += [{"run_id": ["odd"], "overrides": "seed=9", "error": 3}]
    (sweep / ".job_errors.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "{torn")
    st = sweep_status(sweep, now=11.0)
    assert st["counts"]["refused"] == 2 and st["counts"]["pending"] == 2
    assert st["eta_s"] is None and "known once" in st["eta_note"]
    assert st["config_errors"] == [{"overrides": [], "error": "3", "run_id": None}]
    json.dumps(st)  # --json
    hand_record(sweep / "r1")  # trained since, by a later command
    st = sweep_status(sweep, now=11.0)
    assert st["counts"]["refused"] == 1 and st["counts"]["ok"] == 1
    assert not any("r1" in ln and "too big" in ln for ln in format_status(st).splitlines())
