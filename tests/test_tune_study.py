"""sweeps.tune: one Optuna study per size whose trials are real, content-addressed runs."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

import sweeps.tuning.search as search
from sweeps import records
from sweeps.config import (
    BranchConfig,
    BudgetConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
)
from sweeps.errors import UserError
from sweeps.run.hparam_rules import resolve_hparams
from sweeps.run.runner import run_dir_for
from sweeps.tuning.search import search_space, tune_size
from sweeps.tuning.study import TuneConfig, TuneRunConfig, open_study, storage_for, trial_config
from sweeps.tuning.summaries import fit_sweep
from tests.processes import run_module

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "data=synthetic",
    "model.context=32",
    "budget.tokens=2e4",
    "data.n_val_tokens=2048",
    "n_evals=2",
    "progress=none",
]


def _cfg(tmp_path: Path, **tune: object) -> TuneRunConfig:
    return TuneRunConfig(
        model=ModelConfig(n_params=3e3, context=32),
        data=DataConfig(name="synthetic", n_val_tokens=2048, cache_dir=str(tmp_path / "cache")),
        optim=OptimConfig(batch_size=8),
        budget=BudgetConfig(tokens=2e4),
        n_evals=2,
        progress="none",
        results_dir=str(tmp_path / "results"),
        sweep_name="lr_tune",
        tune=TuneConfig(**{"batch_min": 4, "batch_max": 16, "n_startup_trials": 2, **tune}),
    )


def _record_dirs(cfg: TuneRunConfig) -> dict[str, float]:
    sweep = Path(cfg.results_dir) / cfg.sweep_name
    return {
        p.name: (p / records.RECORD_FILE).stat().st_mtime_ns for p in records.iter_run_dirs(sweep)
    }


def test_resume_neither_loses_nor_repeats_trials(tmp_path: Path) -> None:
    first = tune_size(_cfg(tmp_path, n_trials=2))
    assert first["n_trials"] == 2
    before = _record_dirs(_cfg(tmp_path))
    assert len(before) == len({t["run_id"] for t in first["trials"]})
    second = tune_size(_cfg(tmp_path, n_trials=4))
    assert second["n_trials"] == 4
    assert [t["number"] for t in second["trials"][:2]] == [t["number"] for t in first["trials"]]
    after = _record_dirs(_cfg(tmp_path))
    assert all(after[k] == v for k, v in before.items())  # finished runs were not retrained
    assert set(after) == {t["run_id"] for t in second["trials"]}
    third = tune_size(_cfg(tmp_path, n_trials=4))  # a plain rerun changes nothing
    assert third["trials"] == second["trials"] and _record_dirs(_cfg(tmp_path)) == after


def test_killed_trial_is_reasked_with_its_parameters(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, n_trials=1, storage=f"journal:{tmp_path / 'journal.log'}")
    study = open_study(cfg)
    stale = study.ask(search_space(cfg.tune))  # as if the process died while training it
    params = dict(stale.params)
    run_cfg = trial_config(cfg, lr=params["lr"], batch_size=2 ** params["log2_batch_size"])
    stale.set_user_attr("run_dir", str(run_dir_for(run_cfg)))
    summary = tune_size(cfg)
    assert summary["n_trials"] == 1
    assert summary["trials"][0]["lr"] == pytest.approx(params["lr"])
    assert (tmp_path / "journal.log").exists() and not (
        tmp_path / "results/lr_tune/optuna.db"
    ).exists()


def test_diverged_or_failed_trial_is_a_failed_trial_and_the_study_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = search.run_job
    calls = []

    def flaky(cfg, *, in_sweep=False, **train_kwargs):
        calls.append(cfg)
        if len(calls) == 1:
            return {"status": "diverged", "reason": "non-finite loss", "loss": float("nan")}
        if len(calls) == 2:
            return {"status": "failed", "reason": "RuntimeError: boom", "loss": None}
        return real(cfg, in_sweep=in_sweep)

    monkeypatch.setattr(search, "run_job", flaky)
    summary = tune_size(_cfg(tmp_path, n_trials=3))
    states = [t["state"] for t in summary["trials"]]
    assert states == ["FAIL", "FAIL", "COMPLETE"]
    assert [t["status"] for t in summary["trials"]] == ["diverged", "failed", "ok"]


def test_huge_learning_rate_really_diverges_into_a_failed_trial(tmp_path: Path) -> None:
    summary = tune_size(_cfg(tmp_path, n_trials=2, lr_min=1e4, lr_max=1e5, batch_min=8))
    assert summary["n_trials"] == 2
    assert [(t["state"], t["status"]) for t in summary["trials"]] == [("FAIL", "diverged")] * 2


def test_bad_tune_values_name_the_field() -> None:
    with pytest.raises(UserError, match="tune.lr_min"):
        TuneConfig(lr_min=1e-2, lr_max=1e-3)
    with pytest.raises(UserError, match="tune.batch_min"):
        TuneConfig(batch_min=5, batch_max=7)
    with pytest.raises(UserError, match="tune.storage"):
        storage_for("not-a-url", Path("."))


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cwd / "cache")}
    env.pop("HYDRA_FULL_ERROR", None)  # a user's traceback switch: not what these tests see
    return run_module("sweeps.tune", args, cwd=cwd, env=env, timeout=600)


@pytest.mark.slow
def test_tiny_lr_tune_sweep_end_to_end_then_fit(tmp_path: Path) -> None:
    sizes = "model.n_params=3e3,8e3"
    out = _cli(
        ["-m", "sweep=lr_tune", sizes, *TINY, "tune.n_trials=3", "tune.batch_max=16"], tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "[tune] 2 studies: 6 trials (6 complete) in" in out.stderr  # trials, not base runs
    assert "no runs" not in out.stderr and "runs done" not in out.stderr
    sweep = tmp_path / "results" / "lr_tune"
    assert (sweep / "optuna.db").exists()
    summaries = sorted((sweep / "tune").glob("*.json"))
    assert len(summaries) == 2
    assert all(json.loads(p.read_text())["n_trials"] == 3 for p in summaries)
    fit = _cli(["fit", str(sweep)], tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    rules = json.loads((sweep / "hparam_rules.json").read_text())
    assert rules["lr"]["c"] > 0 and len(rules["optima"]) == 2
    # the rules drive a later run through optim.lr=auto / optim.batch_size=auto
    lr, bs = resolve_hparams(
        OptimConfig(lr="auto", batch_size="auto", rules=str(sweep / "hparam_rules.json")),
        n_params=5000,
        budget=BudgetConfig(tokens=2e4),
    )
    assert lr > 0 and bs >= 1


@pytest.mark.slow
def test_a_misspelt_tune_key_fails_at_compose_time(tmp_path: Path) -> None:
    """sweeps.tune's own tune.* mistakes are named as such, not as 'only sweeps.tune reads'."""
    out = _cli(["sweep=lr_tune", *TINY, "tune.n_trial=3"], tmp_path)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: tune.n_trial:") and "did you mean tune.n_trials?" in line
    out = _cli(["sweep=lr_tune", *TINY, "tune.n_trials=abc"], tmp_path)
    assert out.returncode == 2 and out.stderr.startswith("error: tune.n_trials: Value 'abc'")


def test_median_pruner_prunes_bad_trials_and_a_rerun_does_not_repeat_them(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, n_trials=8, pruner="median", n_startup_trials=2)
    cfg.n_evals = 4
    first = tune_size(cfg)
    states = [t["state"] for t in first["trials"]]
    assert len(states) == 8 and "PRUNED" in states and "COMPLETE" in states
    pruned = [t for t in first["trials"] if t["state"] == "PRUNED"]
    sweep = Path(cfg.results_dir) / cfg.sweep_name
    for t in pruned:  # partial, resumable runs: checkpoint kept, no record
        assert t["loss"] is None
        assert not (sweep / t["run_id"] / records.RECORD_FILE).exists()
        assert (sweep / t["run_id"] / records.CHECKPOINT_FILE).exists()
    again = tune_size(cfg)
    assert again["trials"] == first["trials"]


def test_unknown_pruner_names_the_field() -> None:
    with pytest.raises(Exception, match="tune.pruner"):
        TuneConfig(pruner="hyperband")


def test_fit_over_two_sweep_folders_sees_both_budgets(tmp_path: Path) -> None:
    space = {"lr_min": 1e-3, "lr_max": 1e-1, "batch_min": 1, "batch_max": 32}
    for tokens, batch in ((5e5, 1), (4e6, 8)):  # a larger budget wants a larger batch
        for n in (1e4, 3e4, 1e5):
            trials = [
                {"lr": 0.5 * n**-0.45, "batch_size": batch, "loss": 2.0, "n_params": int(n)},
                {"lr": 0.1, "batch_size": 32, "loss": 3.0, "n_params": int(n)},
            ]
            for t in trials:
                t["flops"] = 6 * n * tokens
            path = tmp_path / f"t{tokens:g}" / "tune" / f"lr_tune-N{n:g}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"n_params_target": n, "space": space, "trials": trials}))
    rules = fit_sweep([tmp_path / "t500000", tmp_path / "t4e+06"], exclude=(3e4,))
    assert len(rules["optima"]) == 4
    assert rules["batch_size"]["p"] > 0.3  # batch grows with compute across the two budgets
    assert rules["lr"]["gamma"] == pytest.approx(0.45, abs=1e-6)
    assert Path(rules["path"]) == tmp_path / "t500000" / "hparam_rules.json"


def test_one_size_at_two_horizons_gets_two_studies_in_one_folder(tmp_path: Path) -> None:
    short = _cfg(tmp_path, n_trials=2)
    long = _cfg(tmp_path, n_trials=2)
    long.budget = BudgetConfig(tokens=4e4)
    a, b = tune_size(short), tune_size(long)
    assert a["study"] == "lr_tune-N3000-tokens20000"
    assert b["study"] == "lr_tune-N3000-tokens40000"
    assert {t["n_tokens"] for t in a["trials"]}.isdisjoint({t["n_tokens"] for t in b["trials"]})
    summaries = sorted(p.name for p in (Path(short.results_dir) / "lr_tune" / "tune").iterdir())
    assert summaries == ["lr_tune-N3000-tokens20000.json", "lr_tune-N3000-tokens40000.json"]


def test_a_study_name_is_not_shared_by_two_configurations(tmp_path: Path) -> None:
    # Bug: the name holds only the size and horizon, so a search of another model (or corpus,
    # schedule, seed) under the same prefix added its trials to the first study, or found
    # n_trials done and returned the first's optimum as its own.
    gpt = _cfg(tmp_path, n_trials=1)
    tune_size(gpt)
    lstm = replace(gpt, model=replace(gpt.model, arch="lstm"))
    with pytest.raises(UserError, match=r"tune\.study_prefix: .*other settings") as err:
        tune_size(lstm)
    assert "tune.study_prefix=lr_tune_${model.arch}" in str(err.value)
    # its own prefix is its own study; the first one resumes as before
    assert tune_size(replace(lstm, tune=replace(lstm.tune, study_prefix="lr_tune_lstm")))
    assert tune_size(replace(gpt, tune=replace(gpt.tune, n_trials=2)))["n_trials"] == 2


def test_a_study_from_before_the_mark_is_checked_through_its_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpt = _cfg(tmp_path, n_trials=1)
    with monkeypatch.context() as m:  # a study made by the previous code: no marks
        m.setattr(search, "check_study_base", lambda study, cfg: None)
        real = optuna.trial.Trial.set_user_attr

        def no_mark(self, key, value):
            if key != "base":
                real(self, key, value)

        m.setattr(optuna.trial.Trial, "set_user_attr", no_mark)
        tune_size(gpt)
    study = open_study(gpt)
    assert "base" not in study.user_attrs and "base" not in study.trials[0].user_attrs
    with pytest.raises(UserError, match=r"tune\.study_prefix"):
        tune_size(replace(gpt, seed=1))
    assert tune_size(gpt)["n_trials"] == 1  # the same settings adopt it


def test_a_study_of_an_older_run_id_version_is_refused_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sweeps.run.identity as identity

    gpt = _cfg(tmp_path, n_trials=1)
    with monkeypatch.context() as m:  # the study and its trial, named by run-id version 1
        m.setattr(identity, "RUN_ID_VERSION", 1)
        tune_size(gpt)
    (run_dir,) = records.iter_run_dirs(Path(gpt.results_dir) / gpt.sweep_name)
    rec = json.loads((run_dir / records.RECORD_FILE).read_text()) | {"id_version": 1}
    records.write_json_atomic(run_dir / records.RECORD_FILE, rec)
    with pytest.raises(UserError, match=r"tune\.study_prefix: .*older run-id version") as err:
        tune_size(gpt)
    assert "new tune.study_prefix" in str(err.value)
    assert records.read_record(run_dir) == rec  # the old trial stays as it was


def test_searches_that_would_do_nothing_are_refused() -> None:
    with pytest.raises(UserError, match=r"tune\.warmup_min/tune\.warmup_max: .*warmup_steps"):
        TuneRunConfig(
            schedule=ScheduleConfig(warmup_steps=10),
            budget=BudgetConfig(tokens=2e4),
            tune=TuneConfig(warmup_min=0.0, warmup_max=0.2),
        )
    with pytest.raises(UserError, match=r"tune\.pruner: .*branch"):
        TuneRunConfig(
            schedule=ScheduleConfig(name="wsd"),
            budget=BudgetConfig(tokens=2e4),
            branch=BranchConfig(budgets=[2e4]),
            tune=TuneConfig(pruner="median"),
        )


def test_an_unknown_plus_key_is_refused_as_sweeps_train_does(tmp_path: Path) -> None:
    out = _cli(["sweep=lr_tune", *TINY, "+model.nparams=3e3"], tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "error: model.nparams: unknown key" in out.stderr
    assert "Traceback" not in out.stderr


# ---- `tune fit` on odd study folders (found by a fuzzing pass: each was a traceback) ----


def _study(n: float, losses: list[float | None]) -> dict:
    trials = [
        {"batch_size": 8, "flops": 6.0 * n * 2e4, "loss": loss, "lr": lr, "n_params": n,
         "n_steps": 78, "n_tokens": 2e4, "number": i, "state": "COMPLETE", "status": "ok"}
        for i, (loss, lr) in enumerate(zip(losses, (1e-3, 3e-3, 1e-2, 3e-2), strict=False))
    ]  # fmt: skip
    space = {"batch_min": 4, "batch_max": 8, "lr_min": 3e-4, "lr_max": 0.1}
    return {"n_params_target": n, "space": space, "study": f"s-N{n:g}", "trials": trials}


def _studies(folder: Path, studies: dict[str, object]) -> Path:
    (folder / "tune").mkdir(parents=True)
    for name, obj in studies.items():
        text = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        (folder / "tune" / f"{name}.json").write_bytes(text)
    return folder


def _good(folder: Path) -> Path:
    return _studies(folder, {f"s{n:g}": _study(n, [3.0, 2.5, 2.7, 2.9])
                             for n in (2e3, 5e3, 1e4)})  # fmt: skip


@pytest.mark.parametrize(
    "bad", [b'{"trials": [', b"{}", b"[]", b"\xff\xfe"], ids=["torn", "empty", "list", "binary"]
)
def test_fit_names_a_study_summary_that_is_not_one(tmp_path: Path, bad: bytes, capsys) -> None:
    from sweeps.tune import fit_cli

    folder = _good(tmp_path / "t")
    (folder / "tune" / "zz.json").write_bytes(bad)
    assert fit_cli([str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "zz.json" in err and "rerun that study" in err


def test_fit_refuses_an_out_it_cannot_write_and_a_bad_exclude(tmp_path: Path, capsys) -> None:
    from sweeps.tune import fit_cli

    folder = _good(tmp_path / "t")
    (tmp_path / "a_file").write_text("x")
    for out in (tmp_path, tmp_path / "a_file" / "r.json"):  # a folder; a file on the path
        assert fit_cli([str(folder), "--out", str(out)]) == 2
        assert capsys.readouterr().err.startswith("error: --out: cannot write")
    assert fit_cli([str(folder), "--exclude", "2e3", "5e3", "1e4"]) == 2
    assert "leaves no study to fit" in capsys.readouterr().err
    assert fit_cli([str(folder), "--exclude", "7e3"]) == 2
    assert "7000 is no study's size" in capsys.readouterr().err
    assert not (folder / "hparam_rules.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "t"]  # nothing left


def test_fit_says_which_study_had_no_complete_trial(tmp_path: Path, capsys) -> None:
    from sweeps.tune import fit_cli

    folder = _good(tmp_path / "t")
    (folder / "tune" / "s4224.json").write_text(json.dumps(_study(4224.0, [None, None])))
    assert fit_cli([str(folder)]) == 0
    out = capsys.readouterr().out
    assert "N = 4224" in out and "no complete trial" in out


def test_an_unknown_storage_url_is_one_line(tmp_path: Path) -> None:
    for spec, said in (("bogus://x", "bogus"), ("postgresql://u@h/db", "install")):
        with pytest.raises(UserError) as e:
            storage_for(spec, tmp_path)
        assert e.value.field == "tune.storage" and said in e.value.problem
