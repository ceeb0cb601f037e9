"""Runs remember their data: task name, variant, data files with sha256 (tasks.provenance)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import metaloss as ml
from metaloss.errors import DataError
from metaloss.losses import get_baseline
from metaloss.results import LearnResult
from metaloss.tasks.provenance import check_record, data_record, hash_path, read_record


def _csv(path: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] > 0).astype(int)
    rows = ["a,b,c,label"] + [f"{r[0]:.4f},{r[1]:.4f},{r[2]:.4f},{t}" for r, t in zip(x, y)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _run(tmp_path: Path, task, name: str = "run") -> Path:
    """A saved run (the CE loss standing in for a learned one) that recorded ``task``."""
    res = LearnResult("ml3", task.name, get_baseline("ce"), seconds=0.0)
    res.record_data(task)
    return res.save(tmp_path / name)


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI entry point in-process: (exit status, stdout, stderr)."""
    from metaloss.cli import main

    monkeypatch.setattr(sys, "argv", ["metaloss", *args])
    monkeypatch.setenv("COLUMNS", "200")
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_hash_path_file_content_and_folder_manifest(tmp_path):
    f = tmp_path / "d" / "a.txt"
    f.parent.mkdir()
    f.write_bytes(b"hi")
    (tmp_path / "d" / "sub").mkdir()
    (tmp_path / "d" / "sub" / "b.bin").write_bytes(b"xyz")
    (tmp_path / "d" / ".hidden").write_bytes(b"ignored")
    assert hash_path(f) == (hashlib.sha256(b"hi").hexdigest(), "content")
    manifest = "a.txt\t2\nsub/b.bin\t3\n"  # sorted name<TAB>size lines, hidden files skipped
    assert hash_path(tmp_path / "d") == (hashlib.sha256(manifest.encode()).hexdigest(), "manifest")
    before = hash_path(tmp_path / "d")[0]
    f.write_bytes(b"HI")  # same size: a manifest does not read contents (documented)
    assert hash_path(tmp_path / "d")[0] == before
    f.write_bytes(b"HI!")
    assert hash_path(tmp_path / "d")[0] != before


def test_tasks_expose_their_data_files(tmp_path):
    path = _csv(tmp_path / "mine.csv")
    task = ml.tasks.get("arrays-linear", data_dir=str(path))
    assert task.data_files == (str(path.resolve()),)
    assert ml.tasks.get("iris-linear").data_files == ()  # built-in data: no files
    noisy = ml.tasks.get("arrays-linear+noise0.2sym", data_dir=str(path))
    rec = data_record(noisy)
    assert rec["task"] == "arrays-linear+noise0.2sym" and rec["base"] == "arrays-linear"
    assert rec["variant"]["label_noise"] == 0.2
    assert rec["files"] == [{"path": str(path.resolve()), "kind": "file",
                             "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                             "hashed": "content"}]  # fmt: skip


def test_saved_run_records_data_and_old_runs_still_load(tmp_path):
    path = _csv(tmp_path / "mine.csv")
    run = _run(tmp_path, ml.tasks.get("arrays-linear", data_dir=str(path)))
    spec = json.loads((run / "spec.json").read_text())
    assert spec["data"]["files"][0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_record(run) == spec["data"]
    check_record(spec["data"], run)  # unchanged data passes
    del spec["data"]  # a run saved before data records existed
    (run / "spec.json").write_text(json.dumps(spec))
    assert read_record(run) is None
    assert ml.io.load(run).kind == get_baseline("ce").kind


def test_api_learn_records_the_task(monkeypatch):
    calls = {}

    def fake(task, **options):
        calls.update(options)
        return LearnResult("fake", task.name, get_baseline("ce"), seconds=0.0)

    monkeypatch.setattr("metaloss.api.method_fn", lambda name: fake)
    res = ml.learn("ml3", "iris-linear")
    assert res.data["task"] == "iris-linear" and res.data["files"] == []


def test_evaluate_without_task_uses_the_recorded_data(tmp_path, monkeypatch, capsys):
    path = _csv(tmp_path / "mine.csv")
    run = _run(tmp_path, ml.tasks.get("arrays-linear", data_dir=str(path)))
    args = ("evaluate", str(run), "--seeds", "1", "--steps", "5", "--tune", "none", "--json")
    code, out, err = cli(monkeypatch, capsys, *args)
    assert code == 0, err
    report = json.loads(out)
    assert report["task"] == "arrays-linear"
    # the same rows as with --task and --data-dir given by hand
    code2, out2, err2 = cli(monkeypatch, capsys, *args, "--task", "arrays-linear",
                            "--data-dir", str(path))  # fmt: skip
    assert code2 == 0, err2
    assert [r["values"] for r in json.loads(out2)["rows"]] == [r["values"] for r in report["rows"]]
    code, out, err = cli(monkeypatch, capsys, "train", "--loss", str(run), "--steps", "5", "--json")
    assert code == 0, err
    assert json.loads(out)["task"] == "arrays-linear"


def test_changed_or_missing_data_is_one_clear_line(tmp_path, monkeypatch, capsys):
    path = _csv(tmp_path / "mine.csv")
    run = _run(tmp_path, ml.tasks.get("arrays-linear", data_dir=str(path)))
    args = ("evaluate", str(run), "--seeds", "1", "--steps", "5", "--tune", "none", "--json")
    _csv(path, n=61)  # the data changed since the run was learned
    code, out, err = cli(monkeypatch, capsys, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and str(path) in err and "sha256" in err and "--data-dir" in err
    with pytest.raises(DataError, match="changed"):
        check_record(read_record(run), run)
    path.unlink()
    code, out, err = cli(monkeypatch, capsys, *args)
    assert code == 2 and err.count("\n") == 1 and str(path) in err and "missing" in err
    # an explicit --data-dir (and --task) is used as given
    other = _csv(tmp_path / "other.csv")
    code, out, err = cli(monkeypatch, capsys, *args, "--task", "arrays-linear", "--data-dir",
                         str(other))  # fmt: skip
    assert code == 0, err


def test_task_still_required_without_a_record(tmp_path, monkeypatch, capsys):
    run = _run(tmp_path, ml.tasks.get("iris-linear"))
    spec = json.loads((run / "spec.json").read_text())
    del spec["data"]
    (run / "spec.json").write_text(json.dumps(spec))
    code, _, err = cli(monkeypatch, capsys, "evaluate", str(run), "--seeds", "1")
    assert code == 2 and "--task is required" in err and err.count("\n") == 1
    a = _run(tmp_path, ml.tasks.get("iris-linear"), "a")
    b = _run(tmp_path, ml.tasks.get("wine-linear"), "b")
    code, _, err = cli(monkeypatch, capsys, "evaluate", str(a), str(b), "--seeds", "1")
    assert code == 2 and "different tasks" in err and "iris-linear" in err


def test_report_shows_the_recorded_data(tmp_path):
    from metaloss.report import write_report

    path = _csv(tmp_path / "mine.csv")
    run = _run(tmp_path, ml.tasks.get("arrays-linear", data_dir=str(path)))
    md = write_report(run).with_suffix(".md").read_text()
    assert str(path.resolve()) in md
    assert hashlib.sha256(path.read_bytes()).hexdigest()[:16] in md


def test_from_file_records_its_file(tmp_path):
    path = _csv(tmp_path / "mine.csv")
    task = ml.tasks.from_file(path, model="linear", verbose=False)
    assert task.data_files == (str(path.resolve()),)
    assert data_record(task)["files"][0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_run_is_saved_even_when_its_data_vanished(tmp_path):
    path = _csv(tmp_path / "mine.csv")
    task = ml.tasks.get("arrays-linear", data_dir=str(path))
    path.unlink()  # deleted while the run was learning
    rec = data_record(task)
    assert rec["files"] == [{"path": str(path.resolve()), "kind": "missing", "sha256": None,
                             "hashed": None}]  # fmt: skip
    with pytest.raises(DataError, match="missing"):
        check_record(rec, tmp_path)
