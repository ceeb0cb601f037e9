"""The README's "Your own data and model" example runs as written and does what it says."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def own_data_block() -> str:
    text = README.read_text()
    section = text.split("## Your own data and model", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section should hold exactly one python block"
    return blocks[0]


def test_readme_own_data_example_runs(capsys):
    scope: dict = {}
    exec(compile(own_data_block(), str(README), "exec"), scope)  # noqa: S102 - our own README
    out = capsys.readouterr().out
    task, report = scope["task"], scope["report"]
    assert "mine: classification, 2 classes [0, 1]" in out
    assert repr(task) in out and "tensor(" not in out
    assert task.model_name == "Net" and len(task.test) == 120
    assert [r.name for r in report.rows][0] == "cross_entropy" and len(report.rows) == 2
    assert report.rows[0].mean < 0.1  # cross-entropy learns the rule (majority class: 0.42)
    assert "| loss |" in out
