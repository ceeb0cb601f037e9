"""bench/merge_tables.py merges bench folders into one table only when the cells compare
like with like."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from merge_tables import MergeError, merge  # noqa: E402


def _folder(path: Path, cells: list[dict], steps: int | None = None) -> str:
    path.mkdir(parents=True)
    (path / "cells.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cells))
    if steps is not None:
        spec = {"suite": "s", "steps": None, "train": {"t": {"steps": steps, "lr": 0.1}}}
        (path / "suite.json").write_text(json.dumps(spec))
    return str(path)


def _cells(method: str, seeds, **extra) -> list[dict]:
    base = {"task": "t", "metric": "error", "meta_seconds": 0.0, "tuned": True, "preset": None}
    return [{**base, "method": method, "seed": s, "test": 0.1 + s / 100, **extra} for s in seeds]


def test_later_folders_win_and_methods_keep_their_order(tmp_path):
    a = _folder(tmp_path / "a", _cells("ce", range(3)) + _cells("ml3", range(3)), steps=100)
    b = _folder(tmp_path / "b", _cells("ml3", [2], test_shift=1), steps=100)
    rows = merge([a, b], ["ml3", "ce"])
    assert [(c["method"], c["seed"]) for c in rows] == [("ml3", s) for s in range(3)] + [
        ("ce", s) for s in range(3)
    ]
    assert rows[2].get("test_shift") == 1  # seed 2 of ml3 from the later folder
    tagged = merge([a, b + "::@b"], ["ce", "ml3", "ml3@b"])
    assert [c["method"] for c in tagged].count("ml3@b") == 1


def test_a_row_that_mixes_presets_or_sources_is_refused(tmp_path):
    a = _folder(tmp_path / "a", _cells("ce", range(3)) + _cells("adalfl", range(3)))
    b = _folder(tmp_path / "b", _cells("adalfl", [3, 4], preset="paper"))
    with pytest.raises(MergeError, match=r"t adalfl: its cells differ in 'preset': None"):
        merge([a, b])
    assert len(merge([a, b + "::@paper"])) == 8  # as two rows, it is a fair table
    c = _folder(tmp_path / "c", _cells("adalfl", [4], learned_on="digits-mlp"))
    with pytest.raises(MergeError, match="'learned_on'"):
        merge([a, c])


def test_rows_of_other_training_lengths_and_a_missing_baseline_are_refused(tmp_path):
    a = _folder(tmp_path / "a", _cells("ce", range(3)), steps=10_000)
    b = _folder(tmp_path / "b", _cells("ml3", range(3)), steps=3_000)
    with pytest.raises(MergeError, match=r"t: the rows ran for different numbers of training"):
        merge([a, b])
    assert len(merge([a, b], allow_mixed_steps=True)) == 6
    with pytest.raises(MergeError, match="--methods leaves out ce"):
        merge([a, b], ["ml3"], allow_mixed_steps=True)
    out = subprocess.run(  # the script: one line, exit status 2
        [sys.executable, str(ROOT / "bench" / "merge_tables.py"), a, b],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("merge_tables: t: the rows ran for different")
