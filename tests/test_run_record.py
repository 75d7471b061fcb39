"""RunRecord, the typed record.json: a round trip through JSON, frozen, every misfit named by file
and field, records of older code load, one builder for every status. That its fields are the ones
sweeps/records.py documents: tests/test_train_run.py."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from sweeps import records
from sweeps.run_record import RecordError, RunRecord

V1_SWEEP = Path(__file__).resolve().parent / "fixtures" / "v1_sweep"  # written by the code of main
V1_OK, V1_SKIPPED = V1_SWEEP / "72f1b20a321b", V1_SWEEP / "4cd9066f18d2"  # at ed4d07c (id v1)


def test_round_trip_through_record_json(tmp_path: Path, hand_record) -> None:
    rec = hand_record(tmp_path / "s" / "abc", loss=2.5, shape={"n_layer": 2, "d_model": 16})
    loaded = records.load_record(tmp_path / "s" / "abc")
    assert loaded == rec
    assert RunRecord.from_json(json.loads(json.dumps(rec.to_json()))) == rec
    assert loaded.id_version == records.RUN_ID_VERSION and loaded.schema_version == 1
    on_disk = json.loads((tmp_path / "s" / "abc" / records.RECORD_FILE).read_text())
    assert set(on_disk) == {f.name for f in dataclasses.fields(RunRecord)}  # every field, always


def test_a_record_is_frozen_and_keeps_no_reference_to_its_inputs(hand_record, tmp_path) -> None:
    config = {"model": {"n_params": 1e3}}
    rec = hand_record(tmp_path / "s" / "abc", config=config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.loss = 1.0  # type: ignore[misc]
    config["model"]["n_params"] = 5.0
    rec.to_json()["config"]["model"]["n_params"] = 7.0
    assert rec.config == {"model": {"n_params": 1e3}}


def test_a_non_finite_loss_is_written_as_null(tmp_path: Path, hand_record) -> None:
    hand_record(tmp_path / "s" / "abc", status="diverged", loss=float("nan"))
    assert records.load_record(tmp_path / "s" / "abc").loss is None  # strict JSON: no NaN


@pytest.mark.parametrize(
    ("edit", "field", "says"),
    [
        (lambda r: r.pop("n_tokens"), "n_tokens", "is missing"),
        (lambda r: r.pop("status"), "status", "is missing"),
        (lambda r: r.update(n_params="4224"), "n_params", "not int"),
        (lambda r: r.update(n_params=True), "n_params", "not int"),
        (lambda r: r.update(loss="3.1"), "loss", "not float or None"),
        (lambda r: r.update(config=None), "config", "not dict"),
        (lambda r: r.update(status="done"), "status", "not one of"),
        (lambda r: r.update(role="stem"), "role", "not one of"),
    ],
)
def test_a_misfit_field_is_named_with_its_file(tmp_path: Path, edit, field: str, says: str) -> None:
    run_dir = tmp_path / "abc"
    rec = json.loads((V1_OK / records.RECORD_FILE).read_text())
    edit(rec)
    records.write_json_atomic(run_dir / records.RECORD_FILE, rec)
    with pytest.raises(RecordError) as e:
        records.load_record(run_dir)
    assert str(run_dir / records.RECORD_FILE) in str(e.value)
    assert repr(field) in str(e.value) and says in str(e.value)
    assert len(str(e.value).splitlines()) == 1


def test_another_schema_version_is_refused_by_name(tmp_path: Path) -> None:
    rec = json.loads((V1_OK / records.RECORD_FILE).read_text()) | {"schema_version": 7}
    with pytest.raises(RecordError, match="schema_version 7"):
        RunRecord.from_json(rec, source="x/record.json")


def test_records_of_the_code_before_this_type_load(tmp_path: Path) -> None:
    ok = records.load_record(V1_OK)
    assert ok.status == "ok" and ok.loss == pytest.approx(3.1623018197715282)
    assert ok.id_version == 1 and ok.attempts is None  # neither field existed then
    assert ok.to_json() | {"id_version": None, "attempts": None} == json.loads(
        (V1_OK / records.RECORD_FILE).read_text()
    ) | {"id_version": None, "attempts": None}  # every other key and value as written
    skipped = records.load_record(V1_SKIPPED)  # the old skipped record lacked the measurements
    assert skipped.status == "skipped" and skipped.loss is None and skipped.time_s is None
    assert skipped.n_params == ok.n_params and skipped.reason.startswith("3 optimizer steps")


def test_write_record_takes_a_run_record_only(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="RunRecord"):
        records.write_record(tmp_path, {"run_id": "x", "status": "ok"})  # type: ignore[arg-type]
    assert not (tmp_path / records.RECORD_FILE).exists()


def test_one_builder_for_trained_and_untrained_records(tiny_cfg) -> None:
    from sweeps.run.loop import prepare
    from sweeps.run.record import make_record
    from sweeps.run.runner import run_dir_for, run_one, write_untrained

    cfg = tiny_cfg()
    trained = run_one(cfg)
    prep = prepare(cfg, progress=False)
    untrained = make_record(cfg, plan=prep.plan, data=prep.data, status="skipped", reason="x")
    assert set(trained) == set(untrained.to_json())  # one field set for every status
    same = ("run_id", "config", "n_params", "n_tokens", "flops", "flops_exact", "lr", "seed")
    assert all(untrained.to_json()[k] == trained[k] for k in same if k != "config")
    assert untrained.loss is None and untrained.n_steps is None and untrained.time_s is None
    failed = write_untrained(run_dir_for(cfg), cfg, prep, "failed", "boom", attempts=2)
    assert records.load_record(run_dir_for(cfg)).to_json() == failed
    assert failed["attempts"] == 2 and failed["status"] == "failed"


def test_a_failed_record_without_an_attempt_count_is_one_attempt_for_train_and_plan(
    tiny_cfg, capsys
):
    """attempts: null is a valid record (the field is `int | None`), but train's retry rule did
    int(None), a TypeError, where plan read it as 1."""
    from sweeps.run.loop import prepare
    from sweeps.run.runner import run_dir_for, run_one, write_untrained
    from sweeps.sweep.plan import _existing_state

    cfg = tiny_cfg(max_retries=0)
    run_dir = run_dir_for(cfg)
    prep = prepare(cfg, progress=False)
    write_untrained(run_dir, cfg, prep, "failed", "boom", attempts=None)
    assert records.read_record(run_dir)["attempts"] is None
    assert _existing_state(run_dir, 10, max_retries=0) == ("failed", 1.0)
    assert run_one(cfg)["status"] == "failed"  # left as it is, not retried
    assert "failed 1 time(s); not retried" in capsys.readouterr().err
