"""``metaloss bench``: suites of methods x tasks x seeds, transfer and resume."""

from __future__ import annotations

import json

from metaloss.suite import run_suite


def _cells(path):
    return [json.loads(line) for line in (path / "cells.jsonl").read_text().splitlines()]


def test_transfer_learns_once_and_resumes(tmp_path):
    kw = dict(
        seeds=1,
        tasks=["iris-linear", "wine-linear"],
        methods=["ce", "ml3"],
        budget="quick",
        steps=60,
        learn_on="iris-linear",
        log=lambda *a: None,
    )
    summary = run_suite("quick", tmp_path, **kw)
    cells = {(c["task"], c["method"]): c for c in _cells(tmp_path)}
    assert len(cells) == 4
    iris, wine = cells["iris-linear", "ml3"], cells["wine-linear", "ml3"]
    assert iris["learned_on"] == wine["learned_on"] == "iris-linear"
    assert wine["meta_seconds"] == iris["meta_seconds"]  # the learned loss was reused
    assert set(summary["tasks"]) == {"iris-linear", "wine-linear"}

    # Interrupted after three cells: the resumed suite recomputes only the last one, identically.
    lines = (tmp_path / "cells.jsonl").read_text().splitlines()
    (tmp_path / "cells.jsonl").write_text("\n".join(lines[:3]) + "\n")
    run_suite("quick", tmp_path, **kw)
    again = _cells(tmp_path)
    assert len(again) == 4
    assert [c["test"] for c in again] == [json.loads(line)["test"] for line in lines]
