"""Checkpoints for long runs: tensors in safetensors, everything else in JSON, atomically.

A checkpoint is a new ``checkpoint-<digest>.safetensors`` followed by ``checkpoint.json``,
which names that file and its sha256 and is replaced last (atomically): a crash at any
moment leaves the previous consistent pair readable. Older tensor files are removed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from metaloss import io
from metaloss.errors import ArtifactError

CKPT_JSON = "checkpoint.json"


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
            t = tensors[x["__tensor__"]]
            return t if t.dtype == torch.uint8 else t.to(device)
        if isinstance(x, dict) and "__dict__" in x:
            return {k: walk(v) for k, v in x["__dict__"]}
        if isinstance(x, dict) and "__list__" in x:
            return [walk(v) for v in x["__list__"]]
        return x

    return walk(skeleton)


def save_checkpoint(run_dir: str | Path, state: dict[str, Any]) -> None:
    """Atomically save a nested state (tensors, numbers, strings, lists, dicts)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    skeleton, tensors = flatten(state)
    from safetensors.torch import save as st_save

    blob = st_save({k: v.contiguous() for k, v in tensors.items()})
    digest = hashlib.sha256(blob).hexdigest()
    name = f"checkpoint-{digest[:16]}.safetensors"
    io.atomic_write_bytes(run_dir / name, blob)
    meta = {"schema": io.SCHEMA_VERSION, "tensors": name, "sha256": digest, "state": skeleton}
    io.write_json(run_dir / CKPT_JSON, meta)
    for old in run_dir.glob("checkpoint-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_checkpoint(run_dir: str | Path, device: Any = "cpu") -> dict[str, Any] | None:
    """The last checkpoint in ``run_dir``, or ``None`` when there is none."""
    run_dir = Path(run_dir)
    if not (run_dir / CKPT_JSON).exists():
        return None
    meta = io.read_json(run_dir / CKPT_JSON)
    io.check_schema(meta, run_dir / CKPT_JSON)
    path = run_dir / str(meta.get("tensors", ""))
    blob = path.read_bytes() if path.is_file() else b""
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        raise ArtifactError(f"{path}: missing or does not match {CKPT_JSON} (corrupt checkpoint)")
    from safetensors.torch import load as st_load

    return unflatten(meta["state"], st_load(blob), device)


def rng_state() -> dict[str, Tensor]:
    """The global torch CPU RNG state."""
    return {"torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Tensor]) -> None:
    torch.set_rng_state(state["torch"])
