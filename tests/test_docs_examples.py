"""The notebook example of docs/tables.md runs as written (in a temporary folder, headless)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _block_after(heading: str, text: str) -> str:
    section = text.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block after {heading!r}"
    return match.group(1)


@pytest.mark.slow
def test_the_notebook_example_in_tables_md_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    matplotlib.use("Agg")
    code = _block_after("## In a notebook", (DOCS / "tables.md").read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/tables.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.count("ran ") == 3  # the three held-out C4 runs, each with its interval
    assert (tmp_path / "recommendation.png").stat().st_size > 10_000
