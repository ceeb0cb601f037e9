"""Runs remember their data: a record of the task and the files it was read from.

A saved run's ``spec.json`` holds a ``data`` object (written by :meth:`LearnResult.save`)::

    {"task": "yacht-mlp", "base": "yacht-mlp", "variant": null,
     "files": [{"path": "/data/uci_regression/yacht", "kind": "dir",
                "sha256": "...", "hashed": "manifest"}]}

A data **file** is hashed over its contents (sha256). A data **folder** is hashed over a
sorted manifest of its files' relative names and sizes (one ``name<TAB>size`` line each),
not over their contents: gigabytes of images are not read again to check a run. So a
folder whose files change in content but not in size passes the check.

``metaloss evaluate RUN`` (without ``--task``) rebuilds the task from this record and
checks the data first (:func:`check_record`).

Example:
    >>> import metaloss as ml
    >>> rec = data_record(ml.tasks.get("iris-linear"))
    >>> rec["task"], rec["files"]
    ('iris-linear', [])
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from metaloss.errors import ArtifactError, DataError
from metaloss.tasks.base import Task

__all__ = ["check_record", "data_record", "hash_path", "read_record", "recorded_data_dir"]


def hash_path(path: str | Path) -> tuple[str, str]:
    """``(sha256, how)`` of a data file (``how="content"``) or folder (``how="manifest"``).

    A folder's digest is the sha256 of its sorted ``relative/name<TAB>size`` lines (hidden
    files and folders skipped), so hashing it costs a directory walk, not a read.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.txt").write_text("hi")
        >>> hash_path(d)[1], hash_path(d / "a.txt")[1]
        ('manifest', 'content')
    """
    from metaloss.tasks.data.locate import sha256_file

    path = Path(path)
    if not path.is_dir():
        return sha256_file(path), "content"
    lines = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            full = Path(root) / name
            lines.append(f"{full.relative_to(path).as_posix()}\t{full.stat().st_size}\n")
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest(), "manifest"


def data_record(task: Task) -> dict[str, Any]:
    """What a run records about its task: names, variant and hashed data files.

    ``task`` is the full name (with a variant suffix such as ``+noise0.2sym``), ``base`` the
    registered name; ``files`` is empty for built-in data (scikit-learn, generated sets).
    A file that can no longer be read is recorded with ``sha256: None`` (saving never fails
    because of it).
    """
    base = task.name.split("+", 1)[0]
    files = []
    for p in task.data_files:
        try:
            digest, how = hash_path(p)
        except (DataError, OSError):  # gone since it was read: keep the path, never lose a run
            files.append({"path": str(p), "kind": "missing", "sha256": None, "hashed": None})
            continue
        kind = "dir" if how == "manifest" else "file"
        files.append({"path": str(p), "kind": kind, "sha256": digest, "hashed": how})
    return {
        "task": task.name,
        "base": base,
        "variant": task.variant.to_dict() if task.variant is not None else None,
        "source": task.source,
        "files": files,
    }


def read_record(run_dir: str | Path) -> dict[str, Any] | None:
    """The ``data`` record of a run directory; ``None`` for runs saved without one."""
    from metaloss import io

    spec, _ = io.read_spec(run_dir)
    rec = spec.get("data")
    if rec is None:
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("task"), str):
        raise ArtifactError(f"{run_dir}/spec.json: field 'data' must be an object with a 'task'")
    files = rec.get("files") or []
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and isinstance(f.get("path"), str) for f in files
    ):
        raise ArtifactError(f"{run_dir}/spec.json: data.files must be a list of {{'path': ...}}")
    return rec


def check_record(record: dict[str, Any], run_dir: str | Path) -> None:
    """Check that every recorded data file exists with the recorded sha256.

    Raises :class:`~metaloss.errors.DataError` (one line naming the file and what to pass)
    when a file is missing or changed.
    """
    task = record.get("task", "?")
    for f in record.get("files") or []:
        path = Path(f["path"])
        if not path.exists():
            raise DataError(
                f"{path}: the data of run {run_dir} (task {task}) is missing; pass "
                f"--data-dir with that data (and --task {task})"
            )
        want = f.get("sha256")
        if want and hash_path(path)[0] != want:
            what = "file list/sizes" if f.get("hashed") == "manifest" else "sha256"
            raise DataError(
                f"{path}: {what} differ from those recorded in {run_dir}/spec.json (the data "
                f"changed); pass --data-dir explicitly to use it anyway (and --task {task})"
            )


def recorded_data_dir(record: dict[str, Any]) -> str | None:
    """The ``--data-dir`` of a record (its first data path), or ``None`` for built-in data."""
    files = record.get("files") or []
    return str(files[0]["path"]) if files else None
