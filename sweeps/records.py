"""The run record: the one contract between `sweeps/` (writes it) and `analysis/` (reads it).

Standard library only: a results folder copied to a laptop is analysable without torch or Hydra.

Layout of one run (the folder is named by a hash of the resolved, semantic config):

    results/<sweep>/<run_id>/
        config.json    the semantic config (the run id is its hash), written when it starts
        record.json    written last and atomically; its presence means the run ended
        curve.jsonl    one JSON object per evaluation (appended as training goes)
        checkpoint.pt  the last checkpoint (weights_only-loadable); removed when the run ends ok
        error.log      a failed run's traceback (beside its failed record); removed when it ends ok
    results/<sweep>/tune/<study>.json   an lr_tune study's search space and trials (sweeps/tuning)

Fields of record.json (schema version 1), the fields of `sweeps.run_record.RunRecord`; every
record has every field, None where a run measured nothing (it never trained) or the field did not
exist yet. Conventions: losses are in nats per token; N counts parameters under several
conventions, and `n_params` is the *matmul* convention (every weight that takes part in a matrix
multiply per token, output head included, embedding lookups, norms and biases excluded), so that
6 * n_params * n_tokens is the matmul part of training compute.

    schema_version          int, == SCHEMA_VERSION (the layout of this file)
    id_version              int, the run-id rule that named the folder (RUN_ID_VERSION = 2; a
                            record without it is 1: reported by status/plan, left out of fits)
    run_id                  str, the folder name
    sweep                   str, sweep name (the folder above)
    status                  "ok" | "diverged" | "failed" | "skipped"
    reason                  str | None, why a run is not ok
    attempts                int | None, a failed run: how many times it failed (retries stop
                            past max_retries); None otherwise
    config                  dict, the resolved config (model, data, optim, schedule, budget, ...)
    arch                    "gpt" | "lstm"
    shape                   dict, model shape (n_layer, d_model, n_head, context, vocab_size, tied)
    n_params                int, N under the matmul convention (the N of C = 6ND)
    n_params_total          int, sum of numel over every parameter (tied weights once)
    n_params_embedding      int, token (+ position) embedding tables
    n_params_non_embedding  int, total - embedding (Kaplan's N)
    n_params_matmul         int, == n_params
    flops_per_token_6n      float, 6 * n_params
    flops_per_token_exact   float, forward+backward FLOPs per token: all matmuls, head, attention
    n_tokens                int, tokens actually trained on (D; planned, for a run never trained)
    flops                   float, 6 * n_params * n_tokens (C, the convention used for fits)
    flops_exact             float, flops_per_token_exact * n_tokens
    flops_marginal          float, exact FLOPs this run itself spent (flops_per_token_exact x the
                            tokens it trained; for a branch less than flops_exact, not flops)
    flops_budget            float | None, the compute budget the run was planned for (IsoFLOP group)
    loss                    float, final validation loss (nats/token) on the fixed held-out set
    loss_se                 float, its standard error over the evaluation windows
    perplexity              float, exp(loss)
    bits_per_byte           float, loss / ln 2 * tokens / bytes of the validation text
    train_loss              float, mean training loss over the last evaluation interval
    unigram_entropy         float, entropy (nats/token) of the train split's unigram distribution
    n_steps, batch_size     int, optimizer steps done and sequences per step
    n_steps_planned         int, the steps the run's horizon asked for
    context                 int, tokens per sequence
    lr                      float, peak learning rate (optim.lr as trained, "auto" resolved)
    precision               str, the arithmetic it trained in (fp32 | bf16, "auto" resolved)
    time_s, tokens_per_s    float, wall time of training (s) and throughput
    mfu                     float | None, exact FLOPs/s over the GPU's datasheet bf16 peak
    seed                    int
    dataset_id              str, fingerprint of the data + tokenizer; fits refuse to mix two
    dataset                 dict, name, content hash, bytes, tokenizer, vocab_size, python version
    code_version            str, git commit (or package version) of the code that trained it
    lib_versions            dict, python, torch, numpy, hydra
    parent_run_id           str | None, the trunk a branch forked from
    role                    "run" | "trunk" | "branch" (WSD branches, sweeps/branches/wsd.py);
                            a trunk never cooled down: leave it out of fits
    host, python            str, the machine's name and the Python version that trained it
    created_at              str, ISO 8601 UTC time the record was written

Each line of curve.jsonl: step, n_tokens, flops, loss (validation), train_loss, lr, time_s.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sweeps.run_record import (
    RUN_ID_VERSION,
    SCHEMA_VERSION,
    STATUSES,
    RecordError,
    RunRecord,
    id_version_of,
)

__all__ = [
    "SCHEMA_VERSION",
    "RUN_ID_VERSION",
    "RunRecord",
    "RECORD_FILE",
    "CURVE_FILE",
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "STATUSES",
    "TUNE_DIR",
    "RecordError",
    "write_json_atomic",
    "write_text_atomic",
    "ERROR_FILE",
    "umask_mode",
    "mkstemp_public",
    "write_record",
    "read_record",
    "load_record",
    "older_id_version",
    "append_curve",
    "read_curve",
    "truncate_curve",
    "run_state",
    "held_elsewhere",
    "attempts",
    "iter_run_dirs",
    "set_aside",
]

RECORD_FILE = "record.json"
CURVE_FILE = "curve.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
CONFIG_FILE = "config.json"  # the semantic config, written when a run starts (checks its id)
ERROR_FILE = "error.log"  # a failed run's traceback (sweeps/run/runner.run_one)
LOCK_FILE = ".lock"  # flock'ed by the process training the run (sweeps/run/runner.run_lock)
TUNE_DIR = "tune"  # results/<sweep>/tune/<study>.json: the search space and every trial


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths sneak into records; turn them into plain JSON values.
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(obj: Any) -> Any:
    """Non-finite floats -> None: JSON has no NaN, and a diverged loss must stay readable."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def _umask() -> int:
    try:  # Linux states it; os.umask can only be read by setting it (racy with other threads)
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_mode(kind: int = 0o666) -> int:
    """The mode open() (0o666) or mkdir() (0o777) would give under this process's umask.

    tempfile's files are 0600 and folders 0700 whatever the umask: a record, checkpoint or data
    cache entry renamed into place from one would be unreadable to the collaborators of a shared
    results or cache folder."""
    return kind & ~_umask()


def mkstemp_public(path: Path, prefix: str | None = None) -> tuple[int, str]:
    """tempfile.mkstemp beside `path` (for an atomic rename onto it), with umask permissions;
    named `<prefix>*.tmp` (default `.<name>.`), the pattern a rerun clears when a kill left one."""
    prefix = f".{path.name}." if prefix is None else prefix
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    os.fchmod(fd, umask_mode())
    return fd, tmp


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write text to a temp file beside it, fsync, then rename: readers never see half a file, and
    a failed write (a full disk) leaves the old file, or none, and no temp file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = mkstemp_public(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON atomically (`write_text_atomic`)."""
    text = json.dumps(_clean(obj), indent=2, sort_keys=True, default=_json_default)
    write_text_atomic(path, text + "\n")


def write_record(run_dir: str | os.PathLike[str], record: RunRecord) -> Path:
    """Write `record.json` atomically (the last thing a run does)."""
    if not isinstance(record, RunRecord):
        raise TypeError(f"write_record takes a RunRecord, not {type(record).__name__}")
    path = Path(run_dir) / RECORD_FILE
    write_json_atomic(path, record.to_json())
    return path


def read_record(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a run's record; RecordError naming the file if it is missing, malformed or foreign,
    or if a field is missing or of the wrong type (the contract `load_record` checks: a record
    without n_tokens, or with loss "4.65x", is not a finished run, for a rerun or for status)."""
    path = Path(run_dir) / RECORD_FILE
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError as e:
        raise RecordError(f"{path}: no record (the run has not finished)") from e
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from e
    except UnicodeDecodeError as e:
        raise RecordError(f"{path}: not a UTF-8 text file ({e.reason})") from e
    except OSError as e:  # a folder where the file should be, no permission to read it
        raise RecordError(f"{path}: cannot be read ({e.strerror or e}); check what it is and "
                          "its permissions") from e  # fmt: skip
    if not isinstance(record, dict) or "schema_version" not in record:
        raise RecordError(f"{path}: not a run record (no schema_version)")
    if record["schema_version"] == SCHEMA_VERSION:  # another version: its reader judges it
        RunRecord.from_json(record, source=str(path))
    return record


def load_record(run_dir: str | os.PathLike[str]) -> RunRecord:
    """A run's record as a RunRecord (`read_record` has checked every field against the contract:
    RecordError naming the file and the field that does not fit)."""
    return RunRecord.from_json(read_record(run_dir), source=str(Path(run_dir) / RECORD_FILE))


def older_id_version(run_dir: str | os.PathLike[str]) -> int | None:
    """The run-id version a run folder was named under when it is older than RUN_ID_VERSION (a
    rerun never reuses such a folder), else None. Read from its record, else its config.json (1
    when the file has no `id_version`); None too when neither file can be read."""
    for name in (RECORD_FILE, CONFIG_FILE):
        try:
            obj = json.loads((Path(run_dir) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(obj, dict):
            version = id_version_of(obj)
            return version if version < RUN_ID_VERSION else None
    return None


def append_curve(run_dir: str | os.PathLike[str], row: dict[str, Any]) -> None:
    """Append one evaluation to curve.jsonl (a line is written whole, then flushed); a failed
    write (a full disk) is cut off again, so no torn line stays."""
    path = Path(run_dir) / CURVE_FILE
    line = json.dumps(_clean(row), sort_keys=True, default=_json_default)
    with open(path, "a", encoding="utf-8") as f:
        size = f.tell()
        try:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            with contextlib.suppress(OSError):  # shrinking a file needs no space
                os.truncate(path, size)
            raise


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def read_curve(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read curve.jsonl; a torn last line (a run killed mid-write) is dropped, and so is a line
    that is not an evaluation: not an object, or without a numeric step (a hand edit)."""
    path = Path(run_dir) / CURVE_FILE
    if not path.exists():
        return []
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:  # a garbled line is passed over
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and _is_number(row.get("step")):
                rows.append(row)
    return rows


def truncate_curve(run_dir: str | os.PathLike[str], max_step: int) -> None:
    """Keep only evaluations at or before `max_step` (a resumed run rewinds to its checkpoint)."""
    rows = [r for r in read_curve(run_dir) if r.get("step", 0) <= max_step]
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    write_text_atomic(Path(run_dir) / CURVE_FILE, text)


def set_aside(path: str | os.PathLike[str]) -> Path:
    """Rename an unusable file to `<name>.corrupt-<UTC time>` beside it (kept for a post-mortem,
    out of the way of a rerun); returns the new path."""
    import datetime as dt

    path = Path(path)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, aside)
    return aside


def run_state(run_dir: str | os.PathLike[str]) -> str:
    """'done' (record: ok/diverged/skipped), 'failed' (record: failed), 'partial', or 'new'."""
    run_dir = Path(run_dir)
    if (run_dir / RECORD_FILE).exists():
        try:
            status = read_record(run_dir).get("status")
        except RecordError:
            return "partial"
        return "failed" if status == "failed" else "done"
    if any((run_dir / n).exists() for n in (CHECKPOINT_FILE, CURVE_FILE, CONFIG_FILE)):
        return "partial"
    return "new"


def held_elsewhere(run_dir: str | os.PathLike[str]) -> bool:
    """Whether a process holds the run's lock (is training it) right now.

    Read from /proc/locks (Linux), which takes no lock: a probe that takes one could make
    another launch's run_lock fail at that moment. Elsewhere, such a probe. A lock held on
    another host of a network file system is not seen: False."""
    path = Path(run_dir) / LOCK_FILE
    try:
        st = path.stat()
    except OSError:  # no lock file: no process has trained it here
        return False
    try:
        with open("/proc/locks", encoding="ascii") as f:
            table = f.read()
    except OSError:
        return _probe_lock(path)
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    for line in table.splitlines():  # "1: FLOCK  ADVISORY  WRITE 31020 fe:00:2148147 0 EOF"
        parts = line.split()
        if "FLOCK" not in parts or "->" in parts:  # "->": a waiter, not a holder
            continue
        try:
            major, minor, inode = parts[parts.index("FLOCK") + 4].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == want:
                return True
        except (IndexError, ValueError):
            continue
    return False


def _probe_lock(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # a file system without flock: cannot tell
        return False
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


def attempts(record: dict[str, Any]) -> int:
    """How many times a failed run was tried (its record's `attempts`; 1 when absent or not a
    whole number, e.g. hand-edited): train's retry rule and plan's forecast both read it here."""
    value = record.get("attempts", 1)
    if isinstance(value, int) and not isinstance(value, bool):
        return max(value, 1)  # exact, however large (float() overflows past 1e308)
    try:
        n = float(value)
    except (TypeError, ValueError, OverflowError):
        return 1
    return int(n) if math.isfinite(n) and n == int(n) and n >= 1 else 1


def iter_run_dirs(sweep_dir: str | os.PathLike[str]) -> Iterable[Path]:
    """Run folders under a sweep folder (any folder holding a record, curve or checkpoint)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return []
    names = (RECORD_FILE, CURVE_FILE, CHECKPOINT_FILE, CONFIG_FILE)
    return sorted(
        p for p in sweep_dir.iterdir() if p.is_dir() and any((p / n).exists() for n in names)
    )
