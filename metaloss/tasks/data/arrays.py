"""A user's own arrays: ``.npz`` (never unpickled) and ``.csv`` files.

Example:
    >>> d = load_arrays("my_data.csv")  # doctest: +SKIP
    >>> d.task  # doctest: +SKIP
    'regression'
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from metaloss.errors import DataError
from metaloss.tasks.data.base import _MAX_CLASSES, ArrayData, PathLike, _to_unit_float
from metaloss.tasks.data.splits import stratified_split


def _as_labels(y_train: np.ndarray, y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Integer class values -> (labels 0..K-1, class names = the original values)."""
    values = np.unique(np.concatenate([y_train, y_test]))
    names = [str(int(v)) for v in values]
    return (
        np.searchsorted(values, y_train).astype(np.int64),
        np.searchsorted(values, y_test).astype(np.int64),
        names,
    )


def _is_class_target(y: np.ndarray) -> bool:
    return (
        y.ndim == 1
        and y.size > 0
        and bool(np.all(np.isfinite(y)))
        and bool(np.all(y == np.round(y)))
        and len(np.unique(y)) <= _MAX_CLASSES
    )


def _finite_inputs(path: Path, name: str, x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return _to_unit_float(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: {name} has non-numeric dtype {x.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):  # 1e39 -> inf, refused just below
        x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: {name} contains NaN or infinite values (as float32)")
    return x


def _split_whole(path: Path, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """One ``X, y`` pair -> train/test arrays by the seeded 80/20 split of a CSV (stratified
    for class labels)."""
    if x.ndim < 2 or len(x) != len(y):
        raise DataError(
            f"{path}: X {x.shape} and y {y.shape} need the same number of rows (X at least 2-D)"
        )
    tr, te = stratified_split(y, 0.2, seed=0)
    return {"x_train": x[tr], "y_train": y[tr], "x_test": x[te], "y_test": y[te]}


def _load_npz(path: Path) -> ArrayData:
    keys = ("x_train", "y_train", "x_test", "y_test")
    whole = False
    try:
        with np.load(path, allow_pickle=False) as npz:
            pair = next((p for p in (("X", "y"), ("x", "y")) if set(p) <= set(npz.files)), None)
            missing = [k for k in keys if k not in npz.files]
            if missing and pair is None:
                raise DataError(
                    f"{path}: missing arrays {missing} (needs {list(keys)}, or X and y)"
                )
            if missing:
                arrays = _split_whole(path, npz[pair[0]], npz[pair[1]])
                whole = True
                if "classes" in npz.files:
                    arrays["classes"] = npz["classes"]
            else:
                arrays = {k: npz[k] for k in (*keys, "classes") if k in npz.files}
    except DataError:
        raise
    except ValueError as e:
        raise DataError(f"{path}: cannot read .npz without unpickling ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim < 2 or len(x) != len(y):
            raise DataError(
                f"{path}: x_{part} {x.shape} and y_{part} {y.shape} must have the same number of "
                "rows (x at least 2-D)"
            )
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DataError(
            f"{path}: inconsistent shapes: x_train {arrays['x_train'].shape} vs x_test "
            f"{arrays['x_test'].shape}"
        )
    x_train = _finite_inputs(path, "x_train", arrays["x_train"])
    x_test = _finite_inputs(path, "x_test", arrays["x_test"])
    y_train, y_test = arrays["y_train"], arrays["y_test"]
    if y_train.dtype.kind != y_test.dtype.kind:
        raise DataError(f"{path}: y_train is {y_train.dtype} but y_test is {y_test.dtype}")
    classes: list[str] | None = None
    if y_train.dtype.kind in "biu" and y_train.ndim == 1:
        if "classes" in arrays:
            classes = [str(c) for c in arrays["classes"].ravel()]
            for name, y in (("y_train", y_train), ("y_test", y_test)):
                if y.size and (y.min() < 0 or y.max() >= len(classes)):
                    raise DataError(f"{path}: {name} has labels outside 0..{len(classes) - 1}")
            y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
        else:
            y_train, y_test, classes = _as_labels(y_train, y_test)
    else:
        y_train = _finite_inputs(path, "y_train", y_train)
        y_test = _finite_inputs(path, "y_test", y_test)
        if y_train.shape[1:] != y_test.shape[1:]:
            raise DataError(f"{path}: y_train {y_train.shape} and y_test {y_test.shape} differ")
    split = " (seeded 80/20 split of X, y)" if whole else ""
    return ArrayData(x_train, y_train, x_test, y_test, classes, f"arrays in {path}{split}")


def _load_csv(path: Path) -> ArrayData:
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read CSV ({e})") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header row and at least one data row")
    header = [c.strip() for c in rows[0]]
    width = len(header)
    for n, row in enumerate(rows[1:], 2):
        if len(row) != width:
            raise DataError(f"{path}, line {n}: {len(row)} columns, header has {width}")
    lower = [h.lower() for h in header]
    split_col = lower.index("split") if "split" in lower else None
    numeric = [i for i in range(width) if i != split_col]
    if len(numeric) < 2:
        raise DataError(f"{path}: needs at least one feature column and a target column")
    cells = np.array([[r[i].strip() for i in numeric] for r in rows[1:]])
    try:
        table = cells.astype(np.float64)
    except ValueError:
        for n, row in enumerate(cells, 2):
            for j, value in enumerate(row):
                try:
                    float(value)
                except ValueError:
                    raise DataError(
                        f"{path}, line {n}, column {header[numeric[j]]!r}: cannot parse "
                        f"{value!r} as a number"
                    ) from None
        raise
    if not np.all(np.isfinite(table)):
        raise DataError(f"{path}: contains NaN or infinite values")
    x, y = table[:, :-1], table[:, -1]
    classification = _is_class_target(y)
    if split_col is not None:
        split = np.array([r[split_col].strip().lower() for r in rows[1:]])
        bad = np.flatnonzero((split != "train") & (split != "test"))
        if bad.size:
            raise DataError(
                f"{path}, line {bad[0] + 2}: split must be 'train' or 'test', got "
                f"{rows[bad[0] + 1][split_col]!r}"
            )
        tr, te = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
        if not tr.size or not te.size:
            raise DataError(f"{path}: the split column needs both 'train' and 'test' rows")
        source = f"CSV {path}"
    else:
        tr, te = stratified_split(y.astype(np.int64) if classification else y, 0.2, seed=0)
        source = f"CSV {path} (seeded 80/20 split)"
    source += f", label column {header[numeric[-1]]!r}"
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: refused by validate_arrays
        x = x.astype(np.float32)
    if classification:
        y_train, y_test, classes = _as_labels(y[tr], y[te])
        return ArrayData(x[tr], y_train, x[te], y_test, classes, source)
    with np.errstate(over="ignore", invalid="ignore"):
        y = y.astype(np.float32)
    return ArrayData(x[tr], y[tr], x[te], y[te], None, source)


def load_arrays(path: PathLike) -> ArrayData:
    """A user's own arrays, from a ``.npz`` or a ``.csv`` file.

    ``.npz`` (read with ``allow_pickle=False``): arrays ``x_train``, ``y_train``, ``x_test``,
    ``y_test`` and optionally ``classes`` (strings); or just ``X`` and ``y`` (or ``x``, ``y``),
    split like a CSV without a ``split`` column. ``uint8`` inputs are taken as pixels and
    scaled to ``[0, 1]``; other inputs become ``float32``. Integer 1-D targets are class labels
    (with ``classes``: labels must be in ``0..len(classes)-1``; without: the distinct values,
    sorted, become classes ``0..K-1`` named after the values); float targets are regression.

    ``.csv``: a header row, then one row per example; every column is numeric except an optional
    ``split`` column with ``train``/``test``. The last column (other than ``split``) is the
    target, the others the features. The target is a class label when it is integer-valued with
    at most 100 distinct values (labelled as for ``.npz``), otherwise a regression target.
    Without a ``split`` column the test partition is a seeded 80/20 split (seed 0, stratified for
    classification).

    Example:
        >>> d = load_arrays("my_data.csv")  # doctest: +SKIP
        >>> d.task  # doctest: +SKIP
        'regression'
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path)
    if suffix == ".csv":
        return _load_csv(path)
    raise DataError(f"{path}: unsupported array file (expected .npz or .csv)")
