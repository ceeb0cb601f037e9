"""Artifacts and checkpoints: JSON + safetensors, a schema version, atomic writes.

A run directory holds ``spec.json`` (what the loss is and how it was found),
``loss.safetensors`` (its tensors) and ``history.jsonl`` (names in :mod:`metaloss.rundir`).
Loading never executes code from a file: the spec names a registered loss kind, the tensors
are plain arrays; every read is size-capped and confined to the run directory
(:mod:`metaloss.safefiles`, re-exported here).

Example:
    >>> import tempfile, metaloss as ml
    >>> from metaloss.losses.taylor import TaylorLoss
    >>> d = tempfile.mkdtemp()
    >>> _ = ml.io.save_loss(d, TaylorLoss([0.1] * 8), meta={"method": "demo"})
    >>> type(ml.load(d)).__name__
    'TaylorLoss'
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from metaloss import rundir
from metaloss.errors import ArtifactError, MetalossError
from metaloss.losses.base import Loss, build_loss
from metaloss.safefiles import (  # noqa: F401 - re-exported: the reading limits live there
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_JSONL_BYTES,
    MAX_SAFETENSORS_HEADER,
    MAX_TENSOR_BYTES,
    confined,
    json_depth,
    parse_json,
    read_bytes_capped,
)

SCHEMA_VERSION = 1
SPEC_FILE, WEIGHTS_FILE, HISTORY_FILE = rundir.SPEC, rundir.WEIGHTS, rundir.HISTORY


def fsync_dir(path: str | Path) -> None:
    """Flush a directory entry (after a rename) to disk; a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise ArtifactError(f"{path}: cannot write ({e.strerror or e})") from None
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:  # a full disk, a read-only folder: name the file
        Path(tmp).unlink(missing_ok=True)
        raise ArtifactError(f"{path}: cannot write ({e.strerror or e})") from None
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


def json_float(value: Any) -> float:
    """A float from a JSON value as :func:`write_json` writes it (``null`` for NaN, ``"inf"``
    strings); anything else that is not a number reads as NaN.

    >>> json_float(None), json_float("-inf"), json_float(0.5), json_float("x")
    (nan, -inf, 0.5, nan)
    """
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (non-finite floats become strings / null)."""
    atomic_write_bytes(path, (json.dumps(_jsonable(obj), indent=2) + "\n").encode())


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing or corrupt file raises :class:`ArtifactError` naming it."""
    return parse_json(read_bytes_capped(path, MAX_JSON_BYTES), str(path))


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """Atomically write tensors as safetensors (contiguous CPU copies)."""
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(data))


_ST_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
              "U8": 1, "BOOL": 1}  # fmt: skip


def safetensors_header(blob: bytes, where: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` from a safetensors file's header, checked against its size.

    Nothing is allocated from the header's numbers: every tensor must lie inside ``blob``.
    """
    if len(blob) < 8:
        raise ArtifactError(f"{where}: corrupt safetensors file (only {len(blob)} bytes)")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > min(MAX_SAFETENSORS_HEADER, len(blob) - 8):
        raise ArtifactError(f"{where}: corrupt safetensors file (header of {n} bytes)")
    header = parse_json(blob[8 : 8 + n], where)
    if not isinstance(header, dict):
        raise ArtifactError(f"{where}: corrupt safetensors file (header is not an object)")
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    data_len = len(blob) - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape = str(entry["dtype"]), tuple(int(d) for d in entry["shape"])
            begin, end = (int(v) for v in entry["data_offsets"])
        except (TypeError, KeyError, ValueError):
            raise ArtifactError(f"{where}: corrupt safetensors header entry {name!r}") from None
        numel = math.prod(shape)
        if (
            dtype not in _ST_DTYPES
            or any(d < 0 for d in shape)
            or not 0 <= begin <= end <= data_len
            or end - begin != numel * _ST_DTYPES[dtype]
        ):
            raise ArtifactError(
                f"{where}: tensor {name!r} ({dtype} {list(shape)}) does not fit the file"
            )
        out[name] = (dtype, shape)
    return out


def load_tensors(
    path: str | Path, limit: int = MAX_TENSOR_BYTES, blob: bytes | None = None
) -> dict[str, torch.Tensor]:
    """Read a safetensors file (at most ``limit`` bytes); missing or corrupt ->
    :class:`ArtifactError` naming it."""
    path = Path(path)
    if blob is None:
        blob = read_bytes_capped(path, limit)
    safetensors_header(blob, str(path))
    try:
        return st_load(blob)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types on bad bytes
        raise ArtifactError(f"{path}: corrupt safetensors file ({exc})") from None


def drop_torn_tail(path: str | Path) -> bool:
    """Cut a torn trailing record (no final newline, from a crash) off a JSON-lines file.

    Returns whether something was cut. A complete last line is never touched.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size == 0:
        return False
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return False
        keep, pos = 0, size
        while pos > 0:  # find the last newline, reading backwards in blocks
            step = min(1 << 16, pos)
            pos -= step
            fh.seek(pos)
            i = fh.read(step).rfind(b"\n")
            if i >= 0:
                keep = pos + i + 1
                break
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def append_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows to a JSON-lines history file (a torn trailing record is dropped first,
    so a new record is never glued onto it); the file is fsynced."""
    text = "".join(json.dumps(_jsonable(row)) + "\n" for row in rows)
    try:
        drop_torn_tail(path)
        with open(path, "a") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as e:  # a full disk: the torn tail is dropped by the next append
        raise ArtifactError(f"{path}: cannot append ({e.strerror or e})") from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file. A torn last record (no final newline: a crash in the middle
    of a write) is ignored, as :func:`append_jsonl` drops it; a corrupt line
    elsewhere, or a line that is not an object, raises :class:`ArtifactError` naming it."""
    path = Path(path)
    if not path.exists():
        return []
    data = read_bytes_capped(path, MAX_JSONL_BYTES)
    lines = data.split(b"\n")
    lines.pop()  # text after the last newline: a torn record (or nothing), ignored
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = parse_json(line, f"{path}, line {n}")
        if not isinstance(row, dict):
            raise ArtifactError(f"{path}, line {n}: expected a JSON object")
        rows.append(row)
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
    """Save a loss (spec + weights) and optional metadata/history into ``run_dir``, as one unit.

    The files are written into a temporary directory first. A new ``run_dir`` is that
    directory renamed; in an existing one (which may hold a search's checkpoints) the old
    ``spec.json`` is removed first and the new one renamed in last, so whenever
    ``spec.json`` exists the weights beside it are the ones it describes (it also records
    their sha256). The parent directory is fsynced after the renames.
    """
    from metaloss import __version__

    run_dir = Path(run_dir)
    blob = st_save({k: v.detach().cpu().contiguous() for k, v in loss.state_dict().items()})
    spec = {
        "schema": SCHEMA_VERSION,
        "metaloss_version": __version__,
        "loss": loss.spec(),
        "formula": loss.describe(),
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        **(meta or {}),
    }
    files = {WEIGHTS_FILE: blob, SPEC_FILE: (json.dumps(_jsonable(spec), indent=2) + "\n").encode()}
    if history is not None:
        files[HISTORY_FILE] = "".join(json.dumps(_jsonable(r)) + "\n" for r in history).encode()
    if run_dir.exists() and not run_dir.is_dir():
        raise ArtifactError(f"{run_dir}: exists and is not a directory")
    fresh = not run_dir.exists()
    parent = run_dir.parent if fresh else run_dir
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{run_dir.name}.saving-"))
    except OSError as e:
        raise ArtifactError(
            f"{parent}: cannot write the run directory ({e.strerror or e})"
        ) from None
    try:
        for name, data in files.items():
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        if fresh:
            os.chmod(tmp, 0o777 & ~_umask())
            os.rename(tmp, run_dir)
            fsync_dir(parent)
        else:
            (run_dir / SPEC_FILE).unlink(missing_ok=True)
            fsync_dir(run_dir)
            for name in [n for n in files if n != SPEC_FILE] + [SPEC_FILE]:
                os.replace(tmp / name, run_dir / name)
            fsync_dir(run_dir)
    except OSError as e:
        raise ArtifactError(f"{run_dir}: cannot save the loss ({e.strerror or e})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return run_dir


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_spec(path: str | Path) -> tuple[dict[str, Any], Path]:
    """The spec of a run directory (or of a ``spec.json`` path) and the directory."""
    path = Path(path)
    if path.name == SPEC_FILE and not path.is_dir():
        run_dir, spec_path = path.parent, path
    else:
        run_dir, spec_path = path, path / SPEC_FILE
    if not run_dir.exists():
        raise ArtifactError(f"{run_dir}: no such run directory")
    if not run_dir.is_dir():
        raise ArtifactError(f"{run_dir}: not a run directory (expected a folder with {SPEC_FILE})")
    spec = read_json(confined(run_dir, SPEC_FILE))
    if not isinstance(spec, dict):
        raise ArtifactError(f"{spec_path}: expected a JSON object")
    check_schema(spec, spec_path)
    if not isinstance(spec.get("loss"), dict):
        raise ArtifactError(f"{spec_path}: no 'loss' object")
    for key, kind, word in (("info", dict, "object"), ("config", dict, "object"),
                            ("hall_of_fame", list, "array")):  # fmt: skip
        if key in spec and spec[key] is not None and not isinstance(spec[key], kind):
            raise ArtifactError(f"{spec_path}: field {key!r} must be a JSON {word}")
    for i, row in enumerate(spec.get("hall_of_fame") or []):
        if not isinstance(row, dict) or not isinstance(row.get("formula"), str):
            raise ArtifactError(f"{spec_path}: hall_of_fame[{i}] needs a 'formula' string")
    return spec, run_dir


def expected_shapes(loss_spec: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
    """The tensor shapes a loss spec implies, computed without building it (``None`` when the
    loss kind does not declare them; such losses have small, spec-bounded tensors)."""
    from metaloss.losses.base import _LAZY_KINDS, LOSSES

    kind = loss_spec.get("kind")
    if isinstance(kind, str) and kind not in LOSSES and kind in _LAZY_KINDS:
        from importlib import import_module

        import_module(_LAZY_KINDS[kind])
    cls = LOSSES.get(kind) if isinstance(kind, str) else None
    shapes_fn = getattr(cls, "param_shapes", None)
    if shapes_fn is None:
        return None
    config = loss_spec.get("config", {})
    return shapes_fn(config if isinstance(config, dict) else {})


def load(path: str | Path) -> Loss:
    """Load the loss saved in a run directory. Never executes code from the files.

    The weights' shapes are read from the safetensors header and checked against the spec
    before the loss is built, so a crafted spec cannot make it allocate more than the
    (size-capped) weights file holds.
    """
    spec, run_dir = read_spec(path)
    weights = confined(run_dir, WEIGHTS_FILE)
    blob = read_bytes_capped(weights, MAX_TENSOR_BYTES)
    header = safetensors_header(blob, str(weights))
    try:
        want = expected_shapes(spec["loss"])
    except (MetalossError, TypeError, ValueError, OverflowError) as exc:
        raise ArtifactError(f"{run_dir / SPEC_FILE}: bad 'loss' config ({exc})") from None
    if want is not None:
        have = {k: shape for k, (_, shape) in header.items()}
        if have != want:
            diff = sorted(set(have) ^ set(want)) or sorted(k for k in want if have[k] != want[k])
            raise ArtifactError(
                f"{weights}: weights do not match the spec in {SPEC_FILE} "
                f"(tensor {diff[0]!r}: spec {list(want.get(diff[0], ()))}, "
                f"file {list(have.get(diff[0], ()))})"
            )
    digest = spec.get("weights_sha256")
    if digest is not None and hashlib.sha256(blob).hexdigest() != digest:
        raise ArtifactError(
            f"{weights}: weights do not match the weights_sha256 recorded in {SPEC_FILE}"
        )
    try:
        loss = build_loss(spec["loss"])
    except MetalossError as exc:
        raise ArtifactError(f"{run_dir / SPEC_FILE}: {exc}") from None
    except (TypeError, ValueError, OverflowError, KeyError, RecursionError) as exc:
        raise ArtifactError(f"{run_dir / SPEC_FILE}: bad 'loss' config ({exc})") from None
    tensors = load_tensors(weights, blob=blob)
    try:
        loss.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        msg = str(exc).splitlines()[0]
        raise ArtifactError(f"{weights}: weights do not match the spec ({msg})") from None
    return loss.eval()
