"""``bench/gpu.py --smoke``: every part of the GPU benchmark runs and reports, on a CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PART_KEYS = {
    "lenet5_ce": {"steps_per_s", "steps", "batch_size", "run_seconds"},
    "cifar_resnet_ce": {"steps_per_s", "model", "in_shape"},
    "population_eval": {"serial_s", "batched_s", "batched_over_serial_speedup", "ok_flags_equal"},
    "ml3_meta": {"meta_steps_per_s", "meta_steps", "seconds"},
    "evomal_generation": {"serial_seconds", "batched_seconds", "candidates", "population"},
    "ce_10k_lenet5": {"seconds", "test_error", "steps"},
}


def test_gpu_benchmark_smoke_writes_every_key(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke", "--threads", "1"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["smoke"] is True and data["device"] == "cpu"
    assert {"machine", "command", "sizes", "data", "total_seconds", "results"} <= set(data)
    assert set(data["results"]) == set(PART_KEYS)
    for part, keys in PART_KEYS.items():
        got = data["results"][part]
        assert "error" not in got and "skipped" not in got, (part, got)
        assert keys | {"part_seconds"} <= set(got), (part, sorted(got))
    res = data["results"]
    assert res["lenet5_ce"]["steps_per_s"] > 0 and res["ml3_meta"]["meta_steps_per_s"] > 0
    assert res["population_eval"]["ok_flags_equal"] is True
    assert res["population_eval"]["popsize"] == data["sizes"]["pop"]
    assert res["ce_10k_lenet5"]["steps"] == data["sizes"]["ce_steps"]
    assert "random tensors" in data["data"]["mnist"] and "random" in data["data"]["cifar10"]


def test_gpu_benchmark_skips_parts_past_its_budget(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke", "--budget-s", "0"]
    proc = subprocess.run(
        cmd + ["--out", str(out)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert set(results) == set(PART_KEYS)
    assert all("time budget" in r["skipped"] for r in results.values())


def test_gpu_benchmark_runs_only_the_chosen_parts(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke", "--threads", "1"]
    cmd += ["--parts", "ml3_meta", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert results["ml3_meta"]["meta_steps_per_s"] > 0
    assert all(r == {"skipped": "not in --parts"} for k, r in results.items() if k != "ml3_meta")
    bad = subprocess.run(cmd[:-4] + ["--parts", "nope"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "unknown ['nope']" in bad.stderr
