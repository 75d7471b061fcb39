"""The encoded-corpus cache: hits skip the build, races build once, failures leave no trace."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import time

import numpy as np
import pytest

from sweeps.config import DataConfig
from sweeps.data import build, cache, load_dataset, tokenizer
from sweeps.errors import UserError

TEXT = "for i in range(10):\n    print(i * i)\n" * 300


def corpus(tmp_path, n=5):
    folder = tmp_path / "corpus"
    folder.mkdir(exist_ok=True)
    for i in range(n):
        (folder / f"f{i}.py").write_text(f"# file {i}\n" + TEXT[: 700 + 50 * i])
    return folder


def text_cfg(tmp_path, **kw):
    return DataConfig(name="text", path=str(corpus(tmp_path)), cache_dir=str(tmp_path / "c"), **kw)


def _fail(*args, **kwargs):
    raise AssertionError("the encoder ran: the cache was not used")


@pytest.mark.parametrize("tok", ["bytes", "bpe"])
def test_second_load_is_a_cache_hit(tmp_path, monkeypatch, tok):
    cfg = text_cfg(tmp_path, tokenizer=tok, **({"vocab_size": 270} if tok == "bpe" else {}))
    first = load_dataset(cfg, progress=False)
    monkeypatch.setattr(tokenizer, "encode_texts", _fail)
    monkeypatch.setattr(tokenizer, "train_bpe", _fail)
    again = load_dataset(cfg, progress=False)
    assert isinstance(again.train, np.memmap) and not again.train.flags.writeable
    assert np.array_equal(first.train, again.train) and first.info == again.info
    # Touching a file changes the cheap listing but not the content: re-hash, still no rebuild.
    f = tmp_path / "corpus" / "f0.py"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    assert load_dataset(cfg, progress=False).dataset_id == first.dataset_id


def test_synthetic_cache_hit(tmp_path, monkeypatch):
    cfg = DataConfig(name="synthetic", synthetic_n_tokens=5000, cache_dir=str(tmp_path))
    first = load_dataset(cfg, progress=False)
    monkeypatch.setattr(build, "markov_tokens", _fail)
    assert np.array_equal(load_dataset(cfg, progress=False).val, first.val)


def test_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    cfg = text_cfg(tmp_path)
    monkeypatch.setattr(tokenizer, "encode_texts", _fail)
    with pytest.raises(AssertionError):
        load_dataset(cfg, progress=False)
    root = tmp_path / "c"
    assert not [p for p in root.iterdir() if p.is_dir() and p.name != "listings"]
    monkeypatch.undo()
    d = load_dataset(cfg, progress=False)
    assert (root / d.dataset_id / "meta.json").exists()


def test_incomplete_entry_is_rebuilt(tmp_path):
    cfg = text_cfg(tmp_path)
    d = load_dataset(cfg, progress=False)
    entry = tmp_path / "c" / d.dataset_id
    (entry / "meta.json").unlink()  # as if a writer had died before finishing
    (tmp_path / "c" / f".{d.dataset_id}.123.tmp").mkdir()  # and left its temp folder
    again = load_dataset(cfg, progress=False)
    assert np.array_equal(again.train, d.train)
    assert not list((tmp_path / "c").glob(".*.tmp"))


def test_cache_root_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALING_SWEEPS_CACHE", str(tmp_path / "env"))
    assert cache.cache_root("") == tmp_path / "env"
    assert cache.cache_root(str(tmp_path / "explicit")) == tmp_path / "explicit"
    monkeypatch.delenv("SCALING_SWEEPS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root("") == tmp_path / "xdg" / "scaling-sweeps"
    (tmp_path / "afile").write_text("")
    with pytest.raises(UserError) as e:
        cache.cache_root(str(tmp_path / "afile" / "sub"))
    assert e.value.field == "data.cache_dir"


# ---- two processes racing to build the same new entry ----


def _slow_counting_encoder(log_path):
    real = tokenizer.encode_texts

    def encode(*args, **kwargs):
        with open(log_path, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.3)  # widen the race window so both processes are inside load_dataset
        return real(*args, **kwargs)

    return encode


def _child(cfg, barrier, out_path):
    barrier.wait()
    d = load_dataset(cfg, progress=False)
    digest = hashlib.sha256(np.asarray(d.train).tobytes() + np.asarray(d.val).tobytes())
    with open(out_path, "w") as f:
        f.write(f"{d.dataset_id} {digest.hexdigest()}")


def test_concurrent_loads_build_once(tmp_path, monkeypatch):
    cfg = text_cfg(tmp_path)
    log = tmp_path / "builds.log"
    monkeypatch.setattr(tokenizer, "encode_texts", _slow_counting_encoder(log))
    ctx = mp.get_context("fork")  # the children inherit the monkeypatched encoder
    barrier = ctx.Barrier(2)
    outs = [tmp_path / f"out{i}.txt" for i in range(2)]
    procs = [ctx.Process(target=_child, args=(cfg, barrier, o)) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    results = {o.read_text() for o in outs}
    assert len(results) == 1  # identical dataset id and arrays
    # encode_texts runs twice per build (train, then val), all in one process.
    assert len(set(log.read_text().split())) == 1 and len(log.read_text().split()) == 2
