"""The container every reader returns (:class:`ArrayData`), its checks, and the limits on
what a data file may hold.

Example:
    >>> import numpy as np
    >>> d = ArrayData(np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1]),
    ...               np.zeros((2, 2), np.float32), np.array([0, 1]), ["a", "b"], "toy")
    >>> d.num_classes
    2
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from metaloss.errors import DataError

PathLike = str | os.PathLike[str]

#: Largest idx / CIFAR data file accepted (after gzip decompression), in bytes.
MAX_DATA_BYTES = 4 << 30
#: Largest image file (or zip member) accepted, in bytes.
MAX_IMAGE_FILE_BYTES = 64 << 20
#: Largest image accepted, in pixels (PIL's decompression-bomb limit is set to it explicitly).
MAX_IMAGE_PIXELS = 4096 * 4096
_MAX_CLASSES = 100  # a target column with more distinct integer values is taken as regression


@dataclass
class ArrayData:
    """A data set's train and test partitions as numpy arrays.

    Images are ``float32`` in ``[0, 1]`` shaped ``(N, C, H, W)``, tabular inputs ``float32``
    shaped ``(N, D)``. Classification labels are ``int64`` in ``[0, len(classes))``; for
    regression ``classes`` is ``None`` and targets are ``float32`` ``(N,)`` or ``(N, k)``.

    Example:
        >>> import numpy as np
        >>> d = ArrayData(np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1]),
        ...               np.zeros((2, 2), np.float32), np.array([0, 1]), ["a", "b"], "toy")
        >>> d.task, d.num_classes, d.input_shape
        ('classification', 2, (2,))
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str] | None
    source: str
    files: tuple[str, ...] = ()  # the file or folder read (a valid --data-dir), if any

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if len(x) != len(y):
                raise DataError(
                    f"{self.source}: {part} partition has {len(x)} inputs but {len(y)} targets"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"{self.source}: train inputs have shape {self.x_train.shape[1:]} per example "
                f"but test inputs {self.x_test.shape[1:]}"
            )

    @property
    def task(self) -> str:
        """``"classification"`` when the data set has class names, else ``"regression"``."""
        return "classification" if self.classes is not None else "regression"

    @property
    def num_classes(self) -> int | None:
        """Number of classes, or ``None`` for regression."""
        return None if self.classes is None else len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input example, e.g. ``(1, 28, 28)`` or ``(13,)``."""
        return tuple(int(s) for s in self.x_train.shape[1:])


def min_train_samples(val_fraction: float) -> int:
    """The fewest training examples from which a validation split of ``val_fraction`` leaves
    at least one example on each side.

    Example:
        >>> min_train_samples(0.1)
        6
    """
    n = 2
    while int(round(n * val_fraction)) < 1 or n - int(round(n * val_fraction)) < 1:
        n += 1
    return n


def validate_arrays(data: ArrayData, val_fraction: float = 0.1) -> None:
    """Check arrays before they become a task; a :class:`DataError` naming the source.

    * at least :func:`min_train_samples` training and one test example;
    * classification labels are integers within the declared classes, and the training
      partition holds at least two classes;
    * inputs (and regression targets) are finite *as float32*, the training dtype (``1e39``
      is finite in float64 but ``inf`` in float32).

    Example:
        >>> import numpy as np
        >>> d = ArrayData(np.zeros((8, 2), np.float32), np.array([0, 1] * 4),
        ...               np.zeros((2, 2), np.float32), np.array([0, 1]), ["a", "b"], "toy")
        >>> validate_arrays(d)
    """
    src = data.source
    need = min_train_samples(val_fraction)
    if len(data.x_train) < need:
        raise DataError(
            f"{src}: the training partition has {len(data.x_train)} examples; at least {need} "
            f"are needed (one for training and one for a {val_fraction:g} validation split)"
        )
    if len(data.x_test) < 1:
        raise DataError(f"{src}: the test partition is empty; at least 1 example is needed")
    for name in ("x_train", "x_test") + (("y_train", "y_test") if data.classes is None else ()):
        a = np.asarray(getattr(data, name))
        if a.dtype.kind not in "biuf":
            raise DataError(f"{src}: {name} has non-numeric dtype {a.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):
            finite = a.dtype.kind != "f" or np.isfinite(a.astype(np.float32, copy=False)).all()
        if not finite:
            raise DataError(
                f"{src}: {name} has NaN or infinite values (after the cast to float32, whose "
                f"largest value is {float(np.finfo(np.float32).max):.3g})"
            )
    if data.classes is None:
        return
    k = len(data.classes)
    for name in ("y_train", "y_test"):
        y = np.asarray(getattr(data, name))
        if y.ndim != 1 or y.dtype.kind not in "biu":
            raise DataError(f"{src}: {name} must be integer class labels (N,), got {y.dtype}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= k):
            raise DataError(
                f"{src}: {name} has labels in [{int(y.min())}, {int(y.max())}], outside the "
                f"{k} declared classes 0..{k - 1}"
            )
    n_train_classes = len(np.unique(np.asarray(data.y_train)))
    if k < 2 or n_train_classes < 2:
        raise DataError(
            f"{src}: y_train holds a single class; classification needs at least 2 classes "
            "(for a regression target, store it as floats)"
        )


def _to_unit_float(x: np.ndarray) -> np.ndarray:
    """``uint8`` pixels to ``float32`` in ``[0, 1]``."""
    out = x.astype(np.float32)
    np.divide(out, 255.0, out=out)
    return out
