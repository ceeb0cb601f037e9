"""The official CIFAR-10 / CIFAR-100 binary files.

Example:
    >>> d = load_cifar_binary("cifar-10-batches-bin")  # doctest: +SKIP
    >>> len(d.classes)  # doctest: +SKIP
    10
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from metaloss.errors import ConfigError, DataError
from metaloss.tasks.data.base import MAX_DATA_BYTES, ArrayData, PathLike, _to_unit_float

_CIFAR10_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
_CIFAR_PIXELS = 3 * 32 * 32


def _read_cifar_records(path: Path, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    from metaloss.safefiles import read_bytes_capped

    record = n_labels + _CIFAR_PIXELS
    raw = read_bytes_capped(path, MAX_DATA_BYTES, DataError)
    if not raw or len(raw) % record:
        raise DataError(
            f"{path}: length {len(raw)} bytes is not a positive multiple of the {record}-byte "
            "CIFAR record (truncated or not a CIFAR binary file)"
        )
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    return rows[:, :n_labels].astype(np.int64), rows[:, n_labels:].reshape(-1, 3, 32, 32)


def _read_names(path: Path, default: list[str], expected: int) -> list[str]:
    if not path.is_file():
        return default
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) != expected:
        raise DataError(f"{path}: expected {expected} class names, found {len(names)}")
    return names


def load_cifar_binary(directory: PathLike, label: str = "fine") -> ArrayData:
    """The official CIFAR-10 or CIFAR-100 binary version.

    CIFAR-10: ``data_batch_1.bin`` ... ``data_batch_5.bin``, ``test_batch.bin`` and
    ``batches.meta.txt`` (class names). CIFAR-100: ``train.bin``, ``test.bin`` with
    ``label="fine"`` (100 classes, ``fine_label_names.txt``) or ``"coarse"`` (20 superclasses,
    ``coarse_label_names.txt``). ``directory`` may also be the folder holding
    ``cifar-10-batches-bin/`` or ``cifar-100-binary/``.

    Example:
        >>> d = load_cifar_binary("cifar-10-batches-bin")  # doctest: +SKIP
        >>> d.x_train.shape, len(d.classes)  # doctest: +SKIP
        ((50000, 3, 32, 32), 10)
    """
    if label not in ("fine", "coarse"):
        raise ConfigError(f"label: expected 'fine' or 'coarse', got {label!r}")
    directory = Path(directory)
    for sub in ("cifar-10-batches-bin", "cifar-100-binary"):
        if not (directory / "data_batch_1.bin").exists() and (directory / sub).is_dir():
            directory = directory / sub
    if (directory / "data_batch_1.bin").exists():
        if label != "fine":
            raise ConfigError("label='coarse' exists only for CIFAR-100")
        parts = []
        for names in ([f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"]):
            recs = [_read_cifar_records(directory / n, 1) for n in names]
            parts.append(
                (np.concatenate([r[0] for r in recs])[:, 0], np.concatenate([r[1] for r in recs]))
            )
        classes = _read_names(directory / "batches.meta.txt", _CIFAR10_NAMES, 10)
        files = ("data_batch_*.bin", "test_batch.bin")
    elif (directory / "train.bin").exists():
        col = 0 if label == "coarse" else 1
        n_cls = 20 if label == "coarse" else 100
        parts = []
        for name in ("train.bin", "test.bin"):
            labels, images = _read_cifar_records(directory / name, 2)
            parts.append((labels[:, col], images))
        classes = _read_names(
            directory / f"{label}_label_names.txt", [str(i) for i in range(n_cls)], n_cls
        )
        files = ("train.bin", "test.bin")
    else:
        raise DataError(
            f"{directory}: no CIFAR binary files (expected data_batch_1.bin ... test_batch.bin "
            "for CIFAR-10 or train.bin/test.bin for CIFAR-100)"
        )
    for fname, (y, _) in zip(files, parts, strict=True):
        if y.size and y.max() >= len(classes):
            raise DataError(
                f"{directory / fname}: label {y.max()} out of range for {len(classes)} classes"
            )
    (y_train, x_train), (y_test, x_test) = parts
    return ArrayData(
        _to_unit_float(x_train),
        y_train,
        _to_unit_float(x_test),
        y_test,
        classes,
        f"CIFAR binary files in {directory}",
    )
