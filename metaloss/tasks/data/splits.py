"""Seeded stratified train/validation splits and train-split standardisation.

Both are hand-written rather than scikit-learn's ``train_test_split(stratify=...)`` /
``StandardScaler`` (``tests/tasks/test_datasets.py`` checks the differences): the split fixes which
examples every seed trains and validates on (and so the registry's tuned learning rates),
and scikit-learn's RNG draws other examples for the same seed; the scaler agrees bit for bit
on ordinary columns but scikit-learn gives near-constant columns scale 1, it cannot average
over image axes ``(0, 2, 3)``, and importing scikit-learn costs seconds per process.

Example:
    >>> import numpy as np
    >>> tr, va = stratified_split(np.array([0, 0, 1, 1]), 0.5, seed=0)
    >>> len(tr), len(va)
    (2, 2)
"""

from __future__ import annotations

import numpy as np

from metaloss.errors import ConfigError


def stratified_split(
    y: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split example indices into ``(train_idx, val_idx)``, both sorted ``int64`` arrays.

    Integer (or bool) 1-D labels are split per class: each class gives ``val_fraction`` of its
    examples (largest-remainder rounding so the total is ``round(N * val_fraction)``); any
    other target (float, multi-column) gets a plain seeded shuffle. Deterministic for ``seed``.

    Example:
        >>> import numpy as np
        >>> tr, va = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.5, seed=0)
        >>> len(tr), len(va)
        (4, 4)
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction: must be in [0, 1), got {val_fraction!r}")
    y = np.asarray(y)
    n = len(y)
    n_val = int(round(n * val_fraction))
    rng = np.random.default_rng(seed)
    if y.ndim == 1 and y.dtype.kind in "biu" and n:
        values, inverse = np.unique(y, return_inverse=True)
        counts = np.bincount(inverse, minlength=len(values))
        quota = counts * val_fraction
        take = np.floor(quota).astype(np.int64)
        order = np.argsort(-(quota - take), kind="stable")
        take[order[: n_val - int(take.sum())]] += 1
        val_parts = []
        for k in range(len(values)):
            members = np.flatnonzero(inverse == k)
            val_parts.append(rng.permutation(members)[: take[k]])
        val = np.sort(np.concatenate(val_parts))
    else:
        val = np.sort(rng.permutation(n)[:n_val])
    mask = np.ones(n, dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask).astype(np.int64), val.astype(np.int64)


class Standardizer:
    """Zero-mean, unit-variance scaling with statistics of the training split only.

    ``axis`` are the axes averaged over: ``0`` gives per-feature statistics; for images
    ``(0, 2, 3)`` gives per-channel ones. A zero standard deviation is replaced by 1.

    Example:
        >>> import numpy as np
        >>> s = Standardizer().fit(np.array([[0.0, 5.0], [2.0, 5.0]]))
        >>> s.transform(np.array([[1.0, 5.0]]))
        array([[0., 0.]], dtype=float32)
    """

    def __init__(self, axis: int | tuple[int, ...] = 0) -> None:
        self.axis = axis
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> Standardizer:
        """Compute mean and std of ``x`` (the training split); returns ``self``."""
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            raise ValueError("Standardizer.fit: empty array")
        self.mean = x.mean(axis=self.axis, keepdims=True)
        std = x.std(axis=self.axis, keepdims=True)
        self.std = np.where(std > 0, std, 1.0)
        return self

    def _stats(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is None or self.std is None:
            raise RuntimeError("Standardizer used before fit()")
        return self.mean, self.std

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` as ``float32``."""
        mean, std = self._stats()
        return ((np.asarray(x, dtype=np.float64) - mean) / std).astype(np.float32)

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """``z * std + mean`` as ``float32`` (undoes :meth:`transform`)."""
        mean, std = self._stats()
        return (np.asarray(z, dtype=np.float64) * std + mean).astype(np.float32)

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same array."""
        return self.fit(x).transform(x)
