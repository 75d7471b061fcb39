"""Every data source and tokenizer: sizes, determinism, the split, and each user mistake."""

from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import pytest

from sweeps.config import DataConfig
from sweeps.data import build, load_dataset, sources, tokenizer
from sweeps.errors import UserError

TEXT = "def f(x):\n    return x + 1  # héllo ✓\n" * 200


def cfg(tmp_path, **kw) -> DataConfig:
    return DataConfig(cache_dir=str(tmp_path / "cache"), **kw)


def load(tmp_path, **kw):
    return load_dataset(cfg(tmp_path, **kw), progress=False)


def write_corpus(folder, n=6):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"doc{i}.txt").write_text(f"document {i}\n" + TEXT[: 500 + 97 * i], "utf-8")
    return folder


# ---- text ----


def test_text_single_file_splits_by_tail(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text(TEXT, "utf-8")
    d = load(tmp_path, name="text", path=str(p), val_fraction=0.1)
    raw = TEXT.encode()
    cut = len(TEXT[: math.floor(len(TEXT) * 0.9)].encode())
    assert bytes(d.train.astype(np.uint8)) == raw[:cut]
    assert bytes(d.val.astype(np.uint8)) == raw[cut:]
    assert d.vocab_size == 256 and d.train.dtype == np.uint16 and d.val_bytes_per_token == 1.0
    assert d.info["split"] == "tail" and d.info["n_bytes"] == len(raw)
    assert d.unigram_entropy == pytest.approx(build.unigram_entropy(np.asarray(d.train), 256))


@pytest.mark.parametrize("kind", ["folder", "glob"])
def test_text_folder_and_glob_split_by_file(tmp_path, kind):
    folder = write_corpus(tmp_path / "corpus")
    (folder / ".hidden").write_bytes(b"\xff\xfe not text")  # hidden files are skipped
    path = str(folder) if kind == "folder" else str(folder / "*.txt")
    d = load(tmp_path, name="text", path=path, val_fraction=0.3)
    assert d.info["split"] == "by_file" and d.info["n_files"] == 6
    assert d.info["n_train_files"] + d.info["n_val_files"] == 6 and d.info["n_val_files"] >= 1
    total = sum(len(f.read_bytes()) for f in folder.glob("*.txt"))
    assert len(d.train) + len(d.val) == total


def test_text_missing_path(tmp_path):
    with pytest.raises(UserError) as e:
        load(tmp_path, name="text", path=str(tmp_path / "nope.txt"))
    assert e.value.field == "data.path" and "does not exist" in e.value.problem and e.value.fix


def test_text_glob_without_match(tmp_path):
    with pytest.raises(UserError) as e:
        load(tmp_path, name="text", path=str(tmp_path / "*.txt"))
    assert e.value.field == "data.path"


@pytest.mark.parametrize("empty", ["file", "folder"])
def test_text_empty_corpus(tmp_path, empty):
    target = tmp_path / "empty"
    if empty == "file":
        target.write_text("")
    else:
        target.mkdir()
        (target / "a.txt").write_text("")
    with pytest.raises(UserError) as e:
        load(tmp_path, name="text", path=str(target))
    assert e.value.field == "data.path" and "empty" in e.value.problem


def test_text_non_utf8_names_file_and_offset(tmp_path):
    folder = write_corpus(tmp_path / "corpus", n=2)
    bad = folder / "latin1.txt"
    bad.write_bytes(b"caf" + "é".encode("latin-1") + b" au lait")
    with pytest.raises(UserError) as e:
        load(tmp_path, name="text", path=str(folder))
    assert e.value.field == "data.path"
    assert str(bad) in e.value.problem and "byte offset 3" in e.value.problem
    assert "UTF-8" in e.value.fix and "remove" in e.value.fix


def test_text_too_small_for_split(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text("a")
    with pytest.raises(UserError) as e:
        load(tmp_path, name="text", path=str(p), val_fraction=0.1)
    assert e.value.field == "data.val_fraction"


def test_text_same_ids_twice_and_new_cache(tmp_path):
    folder = write_corpus(tmp_path / "corpus")
    a = load(tmp_path, name="text", path=str(folder))
    b = load_dataset(
        DataConfig(name="text", path=str(folder), cache_dir=str(tmp_path / "other")), progress=False
    )
    assert a.dataset_id == b.dataset_id and a.info == b.info
    assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)


def test_dataset_id_changes_with_content_tokenizer_and_split(tmp_path):
    folder = write_corpus(tmp_path / "corpus")
    base = load(tmp_path, name="text", path=str(folder)).dataset_id
    assert load(tmp_path, name="text", path=str(folder), val_fraction=0.2).dataset_id != base
    assert (
        load(tmp_path, name="text", path=str(folder), tokenizer="bpe", vocab_size=290).dataset_id
        != base
    )
    (folder / "doc0.txt").write_text("changed\n" + TEXT)
    assert load(tmp_path, name="text", path=str(folder)).dataset_id != base


# ---- BPE ----


def test_bpe_round_trip_and_train_only(tmp_path):
    folder = write_corpus(tmp_path / "corpus")
    d = load(tmp_path, name="text", path=str(folder), tokenizer="bpe", vocab_size=290)
    assert d.vocab_size == 290 and int(d.train.max()) < d.vocab_size
    assert d.info["tokenizer"] == "bpe-290" and d.val_bytes_per_token > 1.0
    from tokenizers import Tokenizer

    tok_file = tmp_path / "cache" / d.dataset_id / "tokenizer.json"
    tok = Tokenizer.from_file(str(tok_file))
    for text in (TEXT, "naïve ✓ code\n\tx = {'a': 1}\n", ""):
        assert tok.decode(tok.encode(text).ids) == text
    names = [f for f in sorted(os.listdir(folder)) if f.endswith(".txt")]
    is_val = sources.split_by_file(names, d.info["val_fraction"])
    val_text = "".join((folder / f).read_text() for f, v in zip(names, is_val, strict=True) if v)
    assert tok.decode(list(map(int, d.val))) == val_text


def test_bpe_training_is_deterministic():
    texts = [TEXT, "another document with other words\n" * 30]
    a = tokenizer.train_bpe(texts, vocab_size=320, progress=False)
    b = tokenizer.train_bpe(texts, vocab_size=320, progress=False)
    assert a.to_str() == b.to_str()


# ---- tokens ----


@pytest.mark.parametrize("fmt", ["bin16", "bin32", "npy"])
def test_tokens_bin_and_npy(tmp_path, fmt):
    ids = (np.arange(1000) * 7919) % 70000 if fmt == "bin32" else (np.arange(1000) * 31) % 500
    if fmt == "npy":
        path = tmp_path / "t.npy"
        np.save(path, ids.astype(np.int64))
        kw = {}
    else:
        dtype = "uint16" if fmt == "bin16" else "uint32"
        path = tmp_path / "t.bin"
        ids.astype(dtype).tofile(path)
        kw = {"token_dtype": dtype}
    d = load(tmp_path, name="tokens", path=str(path), val_fraction=0.1, **kw)
    assert np.array_equal(np.concatenate([d.train, d.val]), ids)
    assert len(d.val) == 100 and d.vocab_size == int(ids.max()) + 1
    assert d.train.dtype == (np.uint32 if d.vocab_size > 65536 else np.uint16)
    assert math.isnan(d.val_bytes_per_token) and d.info["tokenizer"] == "pretokenized"


def test_tokens_errors(tmp_path):
    with pytest.raises(UserError) as e:
        load(tmp_path, name="tokens", path=str(tmp_path / "missing.bin"))
    assert e.value.field == "data.path"
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(UserError) as e:
        load(tmp_path, name="tokens", path=str(tmp_path / "empty.bin"))
    assert e.value.field == "data.path" and "no tokens" in e.value.problem
    (tmp_path / "odd.bin").write_bytes(b"\x01\x00\x02")
    with pytest.raises(UserError) as e:
        load(tmp_path, name="tokens", path=str(tmp_path / "odd.bin"))
    assert e.value.field == "data.token_dtype"
    (tmp_path / "six.bin").write_bytes(b"\x01\x00\x02\x00\x03\x00")
    with pytest.raises(UserError) as e:
        load(tmp_path, name="tokens", path=str(tmp_path / "six.bin"), token_dtype="uint32")
    assert e.value.field == "data.token_dtype"
    np.save(tmp_path / "f.npy", np.ones((4, 4)))
    with pytest.raises(UserError) as e:
        load(tmp_path, name="tokens", path=str(tmp_path / "f.npy"))
    assert e.value.field == "data.path"
    np.save(tmp_path / "neg.npy", np.arange(10) - 1)
    with pytest.raises(UserError) as e:
        load(tmp_path, name="tokens", path=str(tmp_path / "neg.npy"))
    assert e.value.field == "data.path" and "negative" in e.value.problem
    np.save(tmp_path / "ok.npy", np.arange(10))
    with pytest.raises(UserError) as e:
        load(tmp_path, name="tokens", path=str(tmp_path / "ok.npy"), tokenizer="bpe")
    assert e.value.field == "data.tokenizer"


# ---- synthetic ----


def test_synthetic_is_seeded_and_structured(tmp_path):
    a = load(tmp_path, name="synthetic", synthetic_n_tokens=20_000, synthetic_vocab_size=32)
    b = load_dataset(
        DataConfig(
            name="synthetic",
            synthetic_n_tokens=20_000,
            synthetic_vocab_size=32,
            cache_dir=str(tmp_path / "b"),
        ),
        progress=False,
    )
    assert a.dataset_id == b.dataset_id and np.array_equal(a.train, b.train)
    assert len(a.train) + len(a.val) == 20_000 and a.vocab_size == 32
    assert int(a.train.max()) < 32 and len(np.unique(a.train)) == 32
    # Learnable: the chain's entropy rate is far below the unigram entropy.
    assert a.info["entropy_rate"] < 0.5 * a.unigram_entropy
    c = load(tmp_path, name="synthetic", synthetic_n_tokens=20_001, synthetic_vocab_size=32)
    assert c.dataset_id != a.dataset_id


# ---- pystdlib (the real default corpus; ~1 s cold on 2 cores) ----


@pytest.fixture(scope="module")
def stdlib(tmp_path_factory):
    cache = tmp_path_factory.mktemp("stdlib-cache")
    return load_dataset(DataConfig(cache_dir=str(cache)), progress=False), cache


def test_pystdlib_sizes_and_fingerprint(stdlib):
    d, _ = stdlib
    info = d.info
    assert info["name"] == "pystdlib" and info["split"] == "by_file"
    assert info["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert len(info["content_hash"]) == 64 and len(d.dataset_id) == 12
    assert info["n_files"] > 500 and info["n_bytes"] > 5e6
    assert len(d.train) + len(d.val) == info["n_bytes"]  # bytes tokenizer: one token per byte
    assert 0.02 < len(d.val) / info["n_bytes"] < 0.12  # about val_fraction = 0.05, by file
    assert 2.5 < d.unigram_entropy < math.log(256) and d.val_bytes_per_token == 1.0
    assert info["n_files"] + info["n_skipped_files"] == len(sources.list_pystdlib()[1])


def test_pystdlib_split_by_file_is_disjoint_and_stable(stdlib):
    d, cache = stdlib
    meta = json.loads((cache / d.dataset_id / "meta.json").read_text())
    val_files, skipped = set(meta["val_files"]), set(meta["skipped_files"])
    root, files = sources.list_pystdlib()
    rel = [f.relpath for f in files]
    assert not any("site-packages" in r or "__pycache__" in r for r in rel)
    assert len(val_files) == d.info["n_val_files"] and len(skipped) == d.info["n_skipped_files"]
    # The split is a pure function of relative paths: recomputing it gives the same files.
    is_val = sources.split_by_file(rel, 0.05)
    copies = set(meta["near_copies_trained"])  # held-out near-copies of training files
    assert len(copies) == d.info["n_near_copies_trained"]
    assert val_files == {r for r, v in zip(rel, is_val, strict=True) if v} - skipped - copies
    assert copies <= {r for r, v in zip(rel, is_val, strict=True) if v}
    # No file is in both: the val split is exactly the bytes of the val files.
    sizes = {f.relpath: f.size for f in files}
    assert len(d.val) == sum(sizes[r] for r in val_files)
    assert len(d.train) == sum(sizes[r] for r in rel if r not in val_files | skipped)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"path": "/data/corpus"}, "data.path"),  # pystdlib would ignore it
        ({"name": "synthetic", "path": "/data/corpus"}, "data.path"),
        ({"vocab_size": 8192}, "data.vocab_size"),  # bytes: always 256
        ({"token_dtype": "uint32"}, "data.token_dtype"),
        ({"synthetic_n_tokens": 5000}, "data.synthetic_n_tokens"),
        ({"synthetic_vocab_size": 10}, "data.synthetic_vocab_size"),
    ],
)
def test_a_setting_the_chosen_source_would_ignore_is_refused(kw, field) -> None:
    with pytest.raises(UserError) as e:
        DataConfig(**kw)
    assert e.value.field == field and e.value.fix
    # where it applies it is accepted
    applies = {
        "data.vocab_size": {"tokenizer": "bpe"},
        "data.token_dtype": {"name": "tokens", "path": "/data/t.bin"},
        "data.synthetic_n_tokens": {"name": "synthetic"},
        "data.synthetic_vocab_size": {"name": "synthetic"},
        "data.path": {"name": "text"},
    }[field]
    DataConfig(**{**kw, **applies})


@pytest.mark.parametrize(
    "kw",
    [
        {"name": "synthetic", "synthetic_vocab_size": 50},
        {"name": "text"},
        {"name": "text", "tokenizer": "bpe", "vocab_size": 290},
        {"name": "tokens"},
    ],
)
def test_vocab_size_of_agrees_with_the_built_corpus_and_builds_nothing(tmp_path, kw):
    """A sweep's launching process names WSD branches by it, on what may be a login node."""
    from sweeps.data import vocab_size_of

    if kw["name"] == "text":
        kw = {**kw, "path": str(write_corpus(tmp_path / "corpus"))}
    if kw["name"] == "tokens":
        np.save(tmp_path / "ids.npy", np.arange(5000, dtype=np.uint32) % 777)
        kw = {**kw, "path": str(tmp_path / "ids.npy")}
    predicted = vocab_size_of(cfg(tmp_path, **kw))
    assert not (tmp_path / "cache").exists()
    assert predicted == load(tmp_path, **kw).vocab_size


def test_a_folder_with_a_fifo_skips_it_by_name_and_never_blocks(tmp_path, capsys):
    """A named pipe in the data folder hung the run for ever at 'read corpus: 0%'."""
    (tmp_path / "a.txt").write_text("hello world\n" * 50, encoding="utf-8")
    os.mkfifo(tmp_path / "pipe.txt")
    root, files = sources.list_text(str(tmp_path))
    assert [f.relpath for f in files] == ["a.txt"]
    assert "skipped 1 entry that is not a regular file: pipe.txt (a named pipe (FIFO))" in (
        capsys.readouterr().err
    )
    corpus = sources.read_corpus(files, strict=True, progress=False)  # returns: nothing blocks
    assert corpus.relpaths == ["a.txt"]


@pytest.mark.parametrize("kind", ["fifo", "loop"])
def test_data_path_at_a_fifo_or_a_link_loop_says_what_it_is(tmp_path, kind):
    """Both said 'does not exist'; a token file that is a FIFO was advised 'model.context <= 1'."""
    p = tmp_path / "data.txt"
    if kind == "fifo":
        os.mkfifo(p)
    else:
        os.symlink(tmp_path / "other", tmp_path / "other2")
        os.symlink(tmp_path / "other2", tmp_path / "other")
        os.symlink(tmp_path / "other", p)
    want = r"named pipe \(FIFO\)" if kind == "fifo" else "symbolic link that loops"
    with pytest.raises(UserError, match=want):
        sources.list_text(str(p))
    with pytest.raises(UserError, match=want):
        sources.read_token_file(str(p), "uint16")
