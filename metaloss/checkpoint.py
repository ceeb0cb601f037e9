"""Checkpoints for long runs: tensors in safetensors, everything else in JSON, atomically.

A checkpoint is a new ``checkpoint-<digest>.safetensors`` followed by ``checkpoint.json``,
which names that file and its sha256 and is replaced last (atomically): a crash at any
moment leaves the previous consistent pair readable. Older tensor files are removed.

A checkpoint may record an *identity* (the method, task, seed and settings it belongs
to); loading it with a different identity is refused, naming the fields that differ. The
tensor file named by ``checkpoint.json`` must be a plain file name inside the run
directory, and its size is capped (:data:`metaloss.io.MAX_TENSOR_BYTES`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from metaloss import io, rundir
from metaloss.errors import ArtifactError

CKPT_JSON = rundir.CHECKPOINT


def flatten(tree: Any, prefix: str = "") -> tuple[Any, dict[str, Tensor]]:
    """Split a nested structure into a JSON skeleton and a flat dict of tensors."""
    tensors: dict[str, Tensor] = {}

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, Tensor):
            tensors[path] = x.detach().cpu()
            return {"__tensor__": path}
        if isinstance(x, dict):
            return {"__dict__": [[k, walk(v, f"{path}/{k}")] for k, v in x.items()]}
        if isinstance(x, list | tuple):
            return {"__list__": [walk(v, f"{path}/{i}") for i, v in enumerate(x)]}
        return x

    return walk(tree, prefix), tensors


def unflatten(skeleton: Any, tensors: dict[str, Tensor], device: Any = "cpu") -> Any:
    """Inverse of :func:`flatten` (tensors moved to ``device``; byte RNG states stay on CPU)."""

    def walk(x: Any) -> Any:
        if isinstance(x, dict) and "__tensor__" in x:
            t = tensors[x["__tensor__"]]  # a missing key: KeyError, reported by the caller
            return t if t.dtype == torch.uint8 else t.to(device)
        if isinstance(x, dict) and "__dict__" in x:
            return {k: walk(v) for k, v in x["__dict__"]}
        if isinstance(x, dict) and "__list__" in x:
            return [walk(v) for v in x["__list__"]]
        return x

    return walk(skeleton)


def identity_diff(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The fields whose values differ between two identities (JSON-normalised), sorted.

    Example:
        >>> identity_diff({"task": "a", "lr": 0.1}, {"task": "b", "lr": 0.1})
        ['task']
    """
    norm = lambda v: json.dumps(io._jsonable(v), sort_keys=True)  # noqa: E731
    keys = set(saved) | set(current)
    return sorted(k for k in keys if norm(saved.get(k)) != norm(current.get(k)))


def refuse_other_identity(
    path: Path, saved: dict[str, Any], current: dict[str, Any], recorded: str = "recorded"
) -> None:
    """Raise :class:`ArtifactError` naming up to four fields in which the identity ``saved``
    in ``path`` differs from ``current`` (nothing when they agree)."""
    diff = identity_diff(saved, current)
    if diff:
        shown = ", ".join(
            f"{k}: {recorded} {saved.get(k)!r} vs now {io._jsonable(current.get(k))!r}"
            for k in diff[:4]
        )
        raise ArtifactError(f"{path}: belongs to another run ({shown}); use a new --out")


def save_checkpoint(
    run_dir: str | Path, state: dict[str, Any], identity: dict[str, Any] | None = None
) -> None:
    """Atomically save a nested state (tensors, numbers, strings, lists, dicts), with the
    ``identity`` (config, task...) of the run it belongs to."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    skeleton, tensors = flatten(state)
    from safetensors.torch import save as st_save

    blob = st_save({k: v.contiguous() for k, v in tensors.items()})
    digest = hashlib.sha256(blob).hexdigest()
    name = rundir.checkpoint_tensors(digest)
    io.atomic_write_bytes(run_dir / name, blob)
    meta = {"schema": io.SCHEMA_VERSION, "tensors": name, "sha256": digest, "state": skeleton}
    if identity is not None:
        meta["identity"] = io._jsonable(identity)
    io.write_json(run_dir / CKPT_JSON, meta)
    for old in run_dir.glob(rundir.CHECKPOINT_GLOB):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_checkpoint(
    run_dir: str | Path, device: Any = "cpu", identity: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The last checkpoint in ``run_dir``, or ``None`` when there is none.

    With ``identity``, a checkpoint recorded for another identity (or for none) is refused
    with an :class:`ArtifactError` naming the differing fields.
    """
    run_dir = Path(run_dir)
    ck_path = run_dir / CKPT_JSON
    if not ck_path.exists() and not ck_path.is_symlink():
        return None
    meta = io.read_json(io.confined(run_dir, CKPT_JSON))
    if not isinstance(meta, dict):
        raise ArtifactError(f"{ck_path}: expected a JSON object")
    io.check_schema(meta, ck_path)
    name = meta.get("tensors")
    if not isinstance(name, str) or not rundir.is_checkpoint_tensors(name):
        raise ArtifactError(
            f"{ck_path}: field 'tensors' must name a checkpoint-<hex>.safetensors file in the "
            f"run directory, got {name!r}"
        )
    if identity is not None:
        saved = meta.get("identity")
        if not isinstance(saved, dict):
            raise ArtifactError(
                f"{ck_path}: records no config/task identity; cannot check it belongs to this "
                "run (use a new --out)"
            )
        refuse_other_identity(ck_path, saved, identity, "checkpoint")
    path = io.confined(run_dir, name)
    blob = io.read_bytes_capped(path, io.MAX_TENSOR_BYTES)
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        raise ArtifactError(f"{path}: does not match {CKPT_JSON} (corrupt checkpoint)")
    tensors = io.load_tensors(path, blob=blob)
    try:
        return unflatten(meta.get("state"), tensors, device)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{ck_path}: field 'state' is corrupt ({exc!r})") from None
