"""Results and data caches shared by several people (a cluster's project folder): files a run or
a cache build renames into place follow the umask, as files made with open() and mkdir() do."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sweeps.config import DataConfig
from sweeps.run.checkpoint import save_checkpoint
from sweeps.run.runner import run_dir_for, run_one


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")
            if not p.name.endswith(".lock")}  # fmt: skip


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"),
                         [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])  # fmt: skip
def test_records_checkpoints_and_cache_entries_follow_the_umask(
    tiny_cfg, tmp_path, umask, file_mode, dir_mode
):
    """tempfile's 0600 files and 0700 folders made record.json, config.json, plan.json,
    checkpoint.pt and every data cache entry unreadable to a shared folder's other users."""
    old = os.umask(umask)
    try:
        cache = tmp_path / "cache"
        cfg = tiny_cfg(data=DataConfig(name="synthetic", n_val_tokens=2048, cache_dir=str(cache)))
        run_one(cfg)
        save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    finally:
        os.umask(old)
    run_files = _modes(run_dir_for(cfg))
    assert {"record.json", "config.json", "plan.json", "curve.jsonl"} <= set(run_files)
    assert set(run_files.values()) == {file_mode}, run_files
    assert stat.S_IMODE((tmp_path / "checkpoint.pt").stat().st_mode) == file_mode
    entries = [p for p in cache.iterdir() if (p / "meta.json").exists()]
    assert entries, "the synthetic corpus was cached"
    for entry in entries:
        assert stat.S_IMODE(entry.stat().st_mode) == dir_mode, entry
        assert {stat.S_IMODE(p.stat().st_mode) for p in entry.iterdir()} == {file_mode}
