"""Held-out near-copies of training files: the window hashes, the shares, and the split's rule."""

from __future__ import annotations

import json

import numpy as np

from sweeps.config import DataConfig
from sweeps.data import load_dataset, overlap, sources


def _text(seed: int, n: int = 4000) -> str:
    rng = np.random.default_rng(seed)
    return "".join(chr(c) for c in rng.integers(97, 123, n))  # unrelated lowercase text


def test_window_hashes_match_equal_windows_only() -> None:
    a = _text(0, 300).encode()
    h = overlap.window_hashes(a + a)
    assert h.size == 600 - overlap.SPAN + 1 and h.dtype == np.uint64
    assert np.array_equal(h[:100], h[300:400])  # the same 64 bytes, the same hash
    assert np.unique(h[:237]).size == 237  # distinct windows of random text: distinct hashes
    assert overlap.window_hashes(b"x" * (overlap.SPAN - 1)).size == 0


def test_shares_of_a_copy_an_edited_copy_and_unrelated_text() -> None:
    train = [_text(1), _text(2)]
    edited = train[0][:2000] + "EDIT" + train[0][2004:]  # one small edit: still a copy
    half = train[1][:2000] + _text(3, 2000)
    share = overlap.copied_share(train, [train[0], edited, half, _text(4), "short"])
    assert share[0] == 1.0 and share[1] > 0.9
    assert 0.35 < share[2] < 0.65 and share[3] == 0.0 and share[4] == 0.0
    assert overlap.near_copies(train, [edited, _text(4), _text(5)]) == [True, False, False]
    # a held-out side made mostly of copies keeps them whole: before, all but a 16-byte file
    # moved and the held-out split was 16 bytes (or, with an empty file, none: an error naming
    # data.val_fraction); copies under half the held-out bytes move
    assert overlap.near_copies(train, [train[0], edited]) == [False, False]
    assert overlap.near_copies(train, [train[0], edited, "a tiny held-out"]) == [False] * 3
    assert overlap.near_copies(train, [edited, _text(5), _text(6)]) == [True, False, False]


def test_only_a_corpus_of_files_changes_its_dataset_id_with_the_split_version(
    monkeypatch,
) -> None:
    """The near-copy rule changed the split of file corpora only; token files and synthetic data
    keep the ids they had (their runs stay comparable with earlier ones)."""
    import sweeps.data as data

    def ids() -> tuple[str, str, str]:
        return tuple(data._dataset_id(DataConfig(name=n, path="/x" if n != "synthetic" else None),
                                      "hash") for n in ("text", "tokens", "synthetic"))  # fmt: skip

    before = ids()
    monkeypatch.setattr(data, "SPLIT_VERSION", data.SPLIT_VERSION + 1)
    after = ids()
    assert after[0] != before[0] and after[1:] == before[1:]


def test_a_held_out_near_copy_of_a_training_file_is_trained_on(tmp_path) -> None:
    """Before, the split held such a file out, and the held-out loss scored text the model had
    read (on pystdlib, 9.4% of the evaluation tokens sat in 64-byte spans of the train split)."""
    names = [f"f{i:02d}.txt" for i in range(20)]
    is_val = sources.split_by_file(names, 0.3)
    val = [n for n, v in zip(names, is_val, strict=True) if v]
    train = [n for n, v in zip(names, is_val, strict=True) if not v]
    assert len(val) >= 2
    folder = tmp_path / "corpus"
    folder.mkdir()
    texts = {n: _text(i) for i, n in enumerate(names)}
    texts[val[0]] = texts[train[0]][:3000] + "an edit" + texts[train[0]][3000:]
    for n, t in texts.items():
        (folder / n).write_text(t, "utf-8")
    cfg = DataConfig(name="text", path=str(folder), val_fraction=0.3,
                     cache_dir=str(tmp_path / "cache"))  # fmt: skip
    d = load_dataset(cfg, progress=False)
    meta = json.loads((tmp_path / "cache" / d.dataset_id / "meta.json").read_text())
    assert meta["near_copies_trained"] == [val[0]] and d.info["n_near_copies_trained"] == 1
    assert meta["val_files"] == val[1:] and d.info["n_val_files"] == len(val) - 1
    assert len(d.val) == sum(len(texts[n]) for n in val[1:])
    assert len(d.train) == sum(len(texts[n]) for n in [*train, val[0]])
