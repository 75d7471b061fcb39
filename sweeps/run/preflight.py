"""Checks of one run's settings that need more than the config itself, made before anything is
written: the device, the seed, the results folder (tried for real), the train and validation
splits against the context, the BPE vocabulary against the corpus, and the memory estimate.

Every entry point goes through here: `sweeps.train` (one run, and each job of a sweep before
its folder exists, via sweeps.run.runner.run_one), `sweeps.tune` (each trial, the same way),
`sweeps.plan` and the demo (whose steps are those commands). Each failure is a UserError: one
line, the field, the fix.

Three stages: `check_config` needs the config alone (no torch, no disk: `sweeps.train` calls it
before torch is imported, so a refusal costs no torch import); `check_before_data` needs only the
config (the vocabulary it asks for, the split sizes
a synthetic or token-file corpus will have), so an impossible run is refused before a cache entry
is built; `check_with_data` repeats the split and memory checks on the loaded corpus.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sweeps.config import DataConfig, RunConfig
from sweeps.errors import UserError
from sweeps.run.memory import check_memory, estimate_memory
from sweeps.tracking.settings import BACKENDS, mlflow_uri, tracker_dir

__all__ = [
    "check_device",
    "check_seed",
    "check_config",
    "check_results_dir",
    "check_trackers",
    "check_tracker_imports",
    "predicted_split",
    "check_split",
    "check_before_data",
    "check_with_data",
    "memory_estimate",
    "repeated_data",
]

# Muennighoff et al. 2023 ("Scaling Data-Constrained Language Models"): up to ~4 epochs, repeated
# tokens are worth almost as much as new ones; beyond, their value decays and the loss no longer
# follows a law fitted in tokens seen.
MAX_EPOCHS = 4.0
MAX_SEED = 2**32 - 1  # numpy's SeedSequence takes any non-negative int; torch.manual_seed < 2**64


def check_device(device: str) -> None:
    """device=cuda needs a CUDA build of torch and a visible GPU."""
    if device != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        why = (
            "this torch has no CUDA support"
            if torch.version.cuda is None
            else "no CUDA device is visible (check CUDA_VISIBLE_DEVICES and the driver)"
        )
        raise UserError(
            "device", f"cuda asked, but {why}", "use device=auto (CUDA when present) or device=cpu"
        )


def check_seed(seed: int) -> None:
    if not (0 <= seed <= MAX_SEED):
        raise UserError(
            "seed", f"must be in [0, {MAX_SEED}], got {seed}", "e.g. seed=0 (or seed=0,1,2)"
        )


def _probe_write(target: Path) -> None:
    """Create `target` for real and write a probe file there; remove both again (folders this
    call created included), so a refusal leaves nothing behind and a pass leaves the disk as it
    was. `os.access` is not enough: it says yes to root under /proc. Raises OSError."""
    created: list[Path] = []
    probe = target
    while not probe.exists() and probe.parent != probe:
        created.append(probe)
        probe = probe.parent
    try:
        for attempt in range(3):  # a parallel job may remove a folder it created: try again
            try:
                for folder in reversed(created):
                    folder.mkdir(exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".write-probe.", dir=target)
                os.close(fd)
                os.unlink(tmp)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
    finally:
        for folder in created:  # deepest first; a folder another process filled stays
            with contextlib.suppress(OSError):
                folder.rmdir()


def check_results_dir(results_dir: str, sweep_name: str) -> None:
    """results_dir/sweep_name can be created and written (tried for real, then put back)."""
    if not str(results_dir).strip():  # runs in ., Hydra's multirun files at /<sweep_name>
        raise UserError("results_dir", "is empty", "give a folder, e.g. results_dir=results")
    target = Path(results_dir).expanduser() / sweep_name
    try:
        _probe_write(target)
    except OSError as e:
        raise UserError(
            "results_dir",
            f"cannot write under {target} ({e.strerror or type(e).__name__})",
            "choose a writable folder, e.g. results_dir=$HOME/results",
        ) from None


def _import_in_background(module: str) -> Future[Any]:
    """`import module` on a thread of its own (MLflow's import is ~2.4 s: it overlaps the run's
    data loading instead of preceding it); the one under way if there is one."""
    if module not in _IMPORTS:
        if module in sys.modules:  # imported already: nothing to wait for
            done: Future[Any] = Future()
            done.set_result(sys.modules[module])
            return done
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"import-{module}")
        _IMPORTS[module] = pool.submit(importlib.import_module, module)
        pool.shutdown(wait=False)
    return _IMPORTS[module]


_IMPORTS: dict[str, Future[Any]] = {}  # imports under way; a failed one is tried again


def check_tracker_imports(cfg: RunConfig) -> None:
    """Each chosen tracker's package imports (installed is not enough: a broken dependency fails
    only at import), or one UserError naming it; waits for the imports `check_trackers` began."""
    for name in cfg.tracker.backends:
        module, extra = BACKENDS[name]
        try:
            _import_in_background(module).result()
        except Exception as e:  # noqa: BLE001 - any import failure is the same user fix
            _IMPORTS.pop(module, None)
            first = (str(e).splitlines() or [""])[0][:200]
            raise UserError(
                f"tracker.{name}",
                f"the {module} package fails to import ({type(e).__name__}: {first})",
                f"reinstall it: pip install -e '.[{extra}]', or drop tracker={name}",
            ) from None
        _IMPORTS.pop(module, None)


def check_trackers(cfg: RunConfig) -> None:
    """Each chosen tracker's local folder can be written, so a bad setting stops the run here
    instead of a warning mid-run and a sweep with no dashboard; its package's import begins (in
    the background: `check_tracker_imports`, from `check_with_data`, waits for it; the backend's
    own `load` then costs nothing more)."""
    for name in cfg.tracker.backends:
        _import_in_background(BACKENDS[name][0])
        field, folder = f"tracker.{name}", tracker_dir(cfg.results_dir, cfg.sweep_name, name)
        if name == "mlflow":
            uri = mlflow_uri(cfg.tracker, cfg.results_dir, cfg.sweep_name)
            if not uri.startswith("sqlite:///"):
                continue  # a server or another store: MLflow's client reports its own errors
            field, folder = "tracker.mlflow_uri", Path(uri[len("sqlite:///") :]).parent
        try:
            _probe_write(folder.expanduser())
        except OSError as e:
            raise UserError(
                field,
                f"cannot write the {name} folder {folder} ({e.strerror or type(e).__name__})",
                f"make {folder} a writable folder, or drop tracker={name}",
            ) from None


def predicted_split(data: DataConfig) -> tuple[int, int] | None:
    """(train, val) token counts known from the config alone (synthetic, token files), else None
    (text is split by file and tokenized first)."""
    if data.name == "synthetic":
        n = data.synthetic_n_tokens
    elif data.name == "tokens" and data.path:
        p = Path(data.path).expanduser()
        if not p.is_file():
            return None  # the data layer names what it is (a FIFO's size is 0: no split advice)
        try:
            if p.suffix == ".npy":
                import numpy as np

                n = int(np.load(p, mmap_mode="r", allow_pickle=False).size)
            else:
                n = p.stat().st_size // (2 if data.token_dtype == "uint16" else 4)
        except (OSError, ValueError):
            return None  # the data layer names the problem with the file
    else:
        return None
    cut = math.floor(n * (1.0 - data.val_fraction))
    return cut, n - cut


def check_split(n_train: int, n_val: int, *, context: int, where: str) -> None:
    """Each split must hold one window of context + 1 tokens; training draws its start from
    [0, n_train - context - 1), so the train split needs context + 2."""
    for name, have, need in (("train", n_train, context + 2), ("validation", n_val, context + 1)):
        if have < need:
            raise UserError(
                "model.context",
                f"the {name} split of {where} holds {have} tokens, fewer than one window of "
                f"model.context={context} (+{need - context})",
                f"use model.context <= {max(have - (need - context), 1)}, or "
                + ("lower data.val_fraction" if name == "train" else "raise data.val_fraction")
                + " or use a larger corpus",
            )


def _planned_vocab(data: DataConfig) -> int | None:
    """The vocabulary the config asks for (BPE: an upper bound), or None (a token file's)."""
    if data.name == "synthetic":
        return data.synthetic_vocab_size
    if data.name == "tokens":
        return None
    return data.vocab_size if data.tokenizer == "bpe" else 256


def memory_estimate(cfg: RunConfig, plan: Any) -> Any:
    from models import param_counts

    total = param_counts(plan.shape)["total"]
    return estimate_memory(plan.shape, n_params_total=total, batch_size=plan.batch_size)


def check_config(cfg: RunConfig) -> None:
    """The checks the schemas cannot make that need the config alone: no torch, no file read."""
    check_seed(cfg.seed)
    if cfg.data.name == "synthetic":  # a token file's split needs a read of it: check_before_data
        split = predicted_split(cfg.data)
        assert split is not None
        check_split(*split, context=cfg.model.context, where=f"data={cfg.data.name}")


def check_before_data(cfg: RunConfig) -> None:
    """Everything that needs no corpus: refuses before a cache entry or a run folder is made
    (torch is imported last, for the memory estimate)."""
    from sweeps.data import check_bpe_vocab

    check_config(cfg)
    check_device(cfg.device)
    check_results_dir(cfg.results_dir, cfg.sweep_name)
    check_trackers(cfg)
    split = predicted_split(cfg.data) if cfg.data.name != "synthetic" else None
    if split is not None:
        check_split(*split, context=cfg.model.context, where=f"data={cfg.data.name}")
    check_bpe_vocab(cfg.data)  # before the model is sized on it
    vocab = _planned_vocab(cfg.data)
    if vocab is not None:
        from sweeps.run.plan import plan_run  # models/: torch

        plan = plan_run(cfg, vocab_size=vocab)
        check_memory(memory_estimate(cfg, plan), device=cfg.device)


def check_with_data(cfg: RunConfig, data: Any, plan: Any) -> None:
    """The same checks on the loaded corpus (a text corpus's split is known only now), and the
    trackers' imports begun by `check_before_data`."""
    check_tracker_imports(cfg)
    check_split(len(data.train), len(data.val), context=cfg.model.context, where=data.dataset_id)
    check_memory(memory_estimate(cfg, plan), device=cfg.device)


def repeated_data(n_tokens: float, n_train: int) -> str | None:
    """A warning when a run's horizon cycles its training split more than MAX_EPOCHS times (the
    loss then measures memorisation, not the scaling the sweep is for), else None."""
    epochs = float(n_tokens) / max(int(n_train), 1)
    if epochs <= MAX_EPOCHS:
        return None
    return (
        f"the run sees its training split {epochs:.1f} times ({n_tokens:.3g} tokens of "
        f"{n_train:,}); beyond ~{MAX_EPOCHS:g} epochs repeated tokens stop counting as data "
        "(Muennighoff et al. 2023) and the fit of this run's loss is not a scaling law: use a "
        "larger corpus (data.path=...) or a smaller budget"
    )
