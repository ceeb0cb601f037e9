"""UCI regression folders with the standard splits of Hernandez-Lobato & Adams.

Example:
    >>> d = load_uci("uci_regression/yacht", split=3)  # doctest: +SKIP
    >>> d.task  # doctest: +SKIP
    'regression'
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from metaloss.errors import DataError
from metaloss.tasks.data.base import ArrayData, PathLike


def _read_ints(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # empty-file warning: reported below instead
            values = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except ValueError as e:
        raise DataError(f"{path}: expected whitespace-separated integers ({e})") from None
    if values.size == 0:
        raise DataError(f"{path}: empty file")
    if values.ndim != 1 and 1 not in values.shape:
        raise DataError(f"{path}: expected a list of integers, got a {values.shape} table")
    values = values.ravel()
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        raise DataError(f"{path}: values must be integers")
    return values.astype(np.int64)


def load_uci(directory: PathLike, split: int = 0) -> ArrayData:
    """A UCI regression folder with the standard train/test splits (Hernandez-Lobato & Adams).

    Files: ``data.txt`` (whitespace table), ``index_features.txt`` and ``index_target.txt``
    (0-based column indices), ``n_splits.txt`` and, for split ``K``, ``index_train_K.txt`` /
    ``index_test_K.txt`` (0-based row indices). ``directory`` may also be the parent of a
    ``data/`` folder holding them (as in the original repository). Targets are ``float32``
    ``(N,)`` (``(N, k)`` for several target columns).

    Example:
        >>> d = load_uci("uci_regression/yacht", split=3)  # doctest: +SKIP
        >>> d.x_train.shape, d.y_train.shape  # doctest: +SKIP
        ((277, 6), (277,))
    """
    directory = Path(directory)
    if not (directory / "data.txt").exists() and (directory / "data" / "data.txt").exists():
        directory = directory / "data"
    if not directory.is_dir():
        raise DataError(f"{directory}: UCI data folder not found")
    n_splits_path = directory / "n_splits.txt"
    n_splits = _read_ints(n_splits_path)
    if n_splits.size != 1 or n_splits[0] < 1:
        raise DataError(f"{n_splits_path}: expected one positive integer")
    n = int(n_splits[0])
    if not 0 <= split < n:
        raise DataError(f"{n_splits_path}: split {split} out of range (there are {n} splits)")
    data_path = directory / "data.txt"
    if not data_path.is_file():
        raise DataError(f"{data_path}: file not found")
    try:
        data = np.loadtxt(data_path, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise DataError(f"{data_path}: not a numeric whitespace table ({e})") from None
    if data.size == 0:
        raise DataError(f"{data_path}: empty table")
    rows, cols = data.shape
    idx = {}
    for name, limit, what in (
        ("index_features.txt", cols, "column"),
        ("index_target.txt", cols, "column"),
        (f"index_train_{split}.txt", rows, "row"),
        (f"index_test_{split}.txt", rows, "row"),
    ):
        values = _read_ints(directory / name)
        bad = values[(values < 0) | (values >= limit)]
        if bad.size:
            raise DataError(
                f"{directory / name}: {what} index {bad[0]} out of range "
                f"({data_path.name} has {limit} {what}s)"
            )
        idx[name.split("_")[1].split(".")[0]] = values
    x, y = data[:, idx["features"]], data[:, idx["target"]]
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise DataError(f"{data_path}: the table contains NaN or infinite values")
    if y.shape[1] == 1:
        y = y[:, 0]
    tr, te = idx["train"], idx["test"]
    return ArrayData(
        x[tr].astype(np.float32),
        y[tr].astype(np.float32),
        x[te].astype(np.float32),
        y[te].astype(np.float32),
        None,
        f"UCI regression folder {directory} (split {split} of {n})",
    )
