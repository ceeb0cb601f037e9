"""bench/early_stop_pairs.py reads both result formats and compares the arms like scipy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from early_stop_pairs import arm_errors, compare  # noqa: E402


def test_reads_an_early_stop_run_and_an_evaluate_report(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps({"runs": [{"test_errors": [0.01, 0.02, 0.03]}]}))
    b = tmp_path / "b.json"
    b.write_text(json.dumps({"rows": [{"name": "x", "values": [0.04, 0.05, 0.06]}]}))
    assert arm_errors(str(a)) == [0.01, 0.02, 0.03]
    assert arm_errors(str(b)) == [0.04, 0.05, 0.06]
    c = tmp_path / "c.json"
    c.write_text(json.dumps({"rows": [{"values": [1.0]}, {"values": [2.0]}]}))
    with pytest.raises(ValueError):  # two rows: which loss is meant is ambiguous
        arm_errors(str(c))


def test_pooled_comparison_is_welchs_test_over_all_reporting_runs():
    off = [(0, [0.0062, 0.0075, 0.0084], [0.0090, 0.0095, 0.0101]),
           (1, [0.0070, 0.0071, 0.0080], [0.0072, 0.0069, 0.0081])]  # fmt: skip
    res = compare(off, margin=0.001)
    off_all = [v for _, o, _ in off for v in o]
    on_all = [v for _, _, n in off for v in n]
    oracle = stats.ttest_ind(on_all, off_all, equal_var=False)
    assert res["pooled"]["p"] == pytest.approx(oracle.pvalue, rel=1e-9)
    assert res["pooled"]["diff"] == pytest.approx(sum(on_all) / 6 - sum(off_all) / 6)
    seed0 = stats.ttest_ind(off[0][2], off[0][1], equal_var=False).pvalue
    assert res["per_seed"][0]["p"] == pytest.approx(seed0, rel=1e-9)
    # on is worse by more than the margin (0.0011) but not significantly (p 0.11): no cost
    assert res["pooled"]["diff"] > 0.001 and oracle.pvalue > 0.05
    assert res["costs_quality"] is False
    worse = [(s, o, [v + 0.01 for v in o]) for s, o, _ in off]  # on clearly worse
    assert compare(worse, margin=0.001)["costs_quality"] is True
    assert compare(worse, margin=0.02)["costs_quality"] is False  # below the margin
