"""The ``.npz`` cache of decoded / generated data sets in ``$METALOSS_CACHE_DIR``
(default ``~/.cache/metaloss``): written atomically, a corrupt file is ignored and rebuilt.

Example:
    >>> cache_dir().name  # doctest: +SKIP
    'metaloss'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Bumped whenever the layout of a cache file changes, so old caches are ignored.
_CACHE_VERSION = 1


def cache_dir() -> Path:
    """The cache folder: ``$METALOSS_CACHE_DIR``, default ``~/.cache/metaloss``.

    Example:
        >>> cache_dir().name  # doctest: +SKIP
        'metaloss'
    """
    env = os.environ.get("METALOSS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "metaloss"


def _cache_load(path: Path, required: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or ``None`` when it is absent, corrupt or incomplete."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception:  # any corruption: ignore the file, it is rebuilt
        return None
    if any(k not in arrays for k in required):
        return None
    return arrays


def _cache_save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a cache file atomically (temp file + ``os.replace``); warn instead of failing."""
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as e:
        warnings.warn(f"could not write cache file {path}: {e}", RuntimeWarning, stacklevel=3)
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
