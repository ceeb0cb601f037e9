"""The README's "Python API" block runs as written, in under 5 minutes on 2 cores."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def api_block() -> str:
    section = README.read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section should hold exactly one python block"
    return blocks[0]


@pytest.mark.slow
def test_readme_python_api_block_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the block writes runs/...
    scope: dict = {}
    start = time.perf_counter()
    exec(compile(api_block(), str(README), "exec"), scope)  # noqa: S102 - our own README
    seconds = time.perf_counter() - start
    assert seconds < 300, f"the README's API block took {seconds:.0f} s (promised: < 5 min)"
    out = capsys.readouterr().out
    result, report = scope["result"], scope["report"]
    assert f"method   {result.method}" in out and "| loss |" in out
    assert [r.name for r in report.rows][0] == "cross_entropy" and len(report.rows) == 2
    assert all(len(r.values) == 5 for r in report.rows)
    run = next((tmp_path / "runs").iterdir())
    spec = json.loads((run / "spec.json").read_text())
    assert spec["data"]["task"] == report.task  # the saved run records its task
    # the search found a loss that trains: well below chance (0.9) on 10 classes
    assert report.rows[1].mean < 0.2
