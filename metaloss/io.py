"""Artifacts and checkpoints: JSON + safetensors, a schema version, atomic writes.

A run directory holds ``spec.json`` (what the loss is and how it was found),
``loss.safetensors`` (its tensors) and ``history.jsonl``. Loading never executes code
from a file: the spec names a registered loss kind, the tensors are plain arrays.

Example:
    >>> import tempfile, metaloss as ml
    >>> from metaloss.losses.taylor import TaylorLoss
    >>> d = tempfile.mkdtemp()
    >>> _ = ml.io.save_loss(d, TaylorLoss([0.1] * 8), meta={"method": "demo"})
    >>> type(ml.load(d)).__name__
    'TaylorLoss'
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from metaloss.errors import ArtifactError, MetalossError
from metaloss.losses.base import Loss, build_loss

SCHEMA_VERSION = 1
SPEC_FILE, WEIGHTS_FILE, HISTORY_FILE = "spec.json", "loss.safetensors", "history.jsonl"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _jsonable(obj.item())
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (non-finite floats become strings / null)."""
    atomic_write_bytes(path, (json.dumps(_jsonable(obj), indent=2) + "\n").encode())


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing or corrupt file raises :class:`ArtifactError` naming it."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from None


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """Atomically write tensors as safetensors (contiguous CPU copies)."""
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(data))


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; missing or corrupt -> :class:`ArtifactError` naming it."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: file not found")
    try:
        return st_load(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types on bad bytes
        raise ArtifactError(f"{path}: corrupt safetensors file ({exc})") from None


def append_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows to a JSON-lines history file."""
    with open(path, "a") as fh:
        for row in rows:
            fh.write(json.dumps(_jsonable(row)) + "\n")


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file (a torn last line from a crash is ignored)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def check_schema(spec: dict[str, Any], path: Path) -> None:
    """Refuse artifacts from a newer schema with a clear message."""
    schema = spec.get("schema")
    if not isinstance(schema, int):
        raise ArtifactError(f"{path}: missing or invalid 'schema' field")
    if schema > SCHEMA_VERSION:
        raise ArtifactError(
            f"{path}: written by a newer metaloss (schema {schema} > {SCHEMA_VERSION}); "
            "upgrade metaloss to read it"
        )


def save_loss(
    run_dir: str | Path,
    loss: Loss,
    meta: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> Path:
    """Save a loss (spec + weights) and optional metadata/history into ``run_dir``."""
    from metaloss import __version__

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_tensors(run_dir / WEIGHTS_FILE, dict(loss.state_dict()))
    spec = {
        "schema": SCHEMA_VERSION,
        "metaloss_version": __version__,
        "loss": loss.spec(),
        "formula": loss.describe(),
        **(meta or {}),
    }
    write_json(run_dir / SPEC_FILE, spec)
    if history is not None:
        (run_dir / HISTORY_FILE).unlink(missing_ok=True)
        append_jsonl(run_dir / HISTORY_FILE, history)
    return run_dir


def read_spec(path: str | Path) -> tuple[dict[str, Any], Path]:
    """The spec of a run directory (or of a ``spec.json`` path) and the directory."""
    path = Path(path)
    run_dir = path.parent if path.is_file() else path
    spec_path = path if path.is_file() else path / SPEC_FILE
    if not run_dir.exists():
        raise ArtifactError(f"{run_dir}: no such run directory")
    spec = read_json(spec_path)
    if not isinstance(spec, dict):
        raise ArtifactError(f"{spec_path}: expected a JSON object")
    check_schema(spec, spec_path)
    if "loss" not in spec:
        raise ArtifactError(f"{spec_path}: no 'loss' field")
    return spec, run_dir


def load(path: str | Path) -> Loss:
    """Load the loss saved in a run directory. Never executes code from the files."""
    spec, run_dir = read_spec(path)
    try:
        loss = build_loss(spec["loss"])
    except MetalossError as exc:
        raise ArtifactError(f"{run_dir / SPEC_FILE}: {exc}") from None
    tensors = load_tensors(run_dir / WEIGHTS_FILE)
    try:
        loss.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        msg = str(exc).splitlines()[0]
        raise ArtifactError(
            f"{run_dir / WEIGHTS_FILE}: weights do not match the spec ({msg})"
        ) from None
    return loss.eval()
