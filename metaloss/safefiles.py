"""Reading untrusted files within limits: size caps (a FIFO or ``/dev/zero`` behind a symlink
is refused, a huge file is never read whole), confinement of a file name to its run
directory, and JSON parsing with a nesting limit.

Re-exported by :mod:`metaloss.io`, where older code imports them.

Example:
    >>> parse_json('{"a": [1, 2]}', "inline")
    {'a': [1, 2]}
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from metaloss.errors import ArtifactError

#: Resource limits on reading a run directory (an untrusted one cannot exhaust the machine).
MAX_JSON_BYTES = 64 << 20  # spec.json, checkpoint.json, summary.json
MAX_JSONL_BYTES = 512 << 20  # generations.jsonl, history.jsonl
MAX_TENSOR_BYTES = 4 << 30  # a safetensors file (checkpoints of large models included)
MAX_JSON_DEPTH = 200  # nesting of JSON arrays / objects
MAX_SAFETENSORS_HEADER = 16 << 20


def read_bytes_capped(
    path: str | Path, limit: int, error: type[Exception] = ArtifactError
) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Missing files, directories, devices / FIFOs (a symlink to ``/dev/zero``) and files over
    the limit raise ``error`` naming the file; nothing beyond ``limit`` bytes is ever read.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"; _ = p.write_bytes(b"hi")
        >>> read_bytes_capped(p, 10)
        b'hi'
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a file") from None
    except OSError as e:
        raise error(f"{path}: cannot read file ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise error(f"{path}: is a directory, expected a file")
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path}: not a regular file (device, FIFO or socket)")
        if st.st_size > limit:
            raise error(f"{path}: {st.st_size} bytes, over the limit of {limit} bytes")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 24, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise error(f"{path}: over the limit of {limit} bytes")
        return b"".join(chunks)
    except OSError as e:
        raise error(f"{path}: cannot read file ({e.strerror or e})") from None
    finally:
        os.close(fd)


def confined(run_dir: str | Path, name: str) -> Path:
    """``run_dir / name``, refused (:class:`ArtifactError`) when it resolves outside
    ``run_dir`` (``..``, an absolute path, a symbolic link pointing elsewhere).

    Example:
        >>> confined("/tmp", "a.json").name
        'a.json'
    """
    base = Path(run_dir).resolve()
    path = Path(run_dir) / name
    target = path.resolve()
    if target != base and base not in target.parents:
        raise ArtifactError(f"{path}: points outside the run directory {run_dir}")
    return path


def json_depth(obj: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: never a RecursionError).

    Example:
        >>> json_depth({"a": [1, [2]]}), json_depth(3)
        (3, 0)
    """
    depth, stack = 0, [(obj, 1)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, dict):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in x.values())
        elif isinstance(x, list):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in x)
    return depth


def parse_json(text: str | bytes, where: str, error: type[Exception] = ArtifactError) -> Any:
    """Parse JSON text; invalid or nested deeper than :data:`MAX_JSON_DEPTH` -> ``error``."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise error(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # bad JSON or UTF-8, or an integer of more than 4,300 digits
        raise error(f"{where}: not valid JSON ({exc})") from None
    if json_depth(obj) > MAX_JSON_DEPTH:
        raise error(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return obj
