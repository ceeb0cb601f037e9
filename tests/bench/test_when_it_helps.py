"""bench/when_it_helps.py summarises each stored noise / imbalance table in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from when_it_helps import summary_lines  # noqa: E402


def _table(path: Path, rows: dict[str, list[float]]) -> Path:
    path.mkdir(parents=True)
    base = {"task": "t+noise0.2sym", "metric": "error", "meta_seconds": 0.0, "tuned": True}
    cells = [
        {**base, "method": m, "seed": s, "test": v}
        for m, values in rows.items()
        for s, v in enumerate(values)
    ]
    (path / "cells.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cells))
    return path


def test_a_table_of_hand_made_rows_only_still_names_its_best_one(tmp_path):
    ce = [0.0137, 0.0156, 0.0149, 0.0174, 0.0151]
    sce = [0.0099, 0.0106, 0.0092, 0.0098, 0.0109]
    mae = [0.0200, 0.0210, 0.0190, 0.0205, 0.0195]
    (line,) = summary_lines([_table(tmp_path / "a", {"ce": ce, "sce": sce, "mae": mae})])
    assert line["best_baseline"] == "sce" and line["best_baseline_vs_ce"] == "better"
    assert abs(line["best_baseline_mean"] - sum(sce) / 5) < 1e-12
    assert line["best_learned"] is None and line["beats_both"] == []


def test_with_a_learned_row_the_tables_own_rule_names_the_best_hand_made_row(tmp_path):
    rows = {"ce": [0.30, 0.31, 0.29], "gce": [0.20, 0.21, 0.19], "adalfl": [0.25, 0.26, 0.24]}
    (line,) = summary_lines([_table(tmp_path / "a", rows)])
    assert line["best_baseline"] == "gce" and line["best_learned"] == "adalfl"
    assert line["best_learned_vs_best_baseline"] == "worse"
