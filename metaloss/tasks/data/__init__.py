"""Readers for standard data set formats, at the numpy level, one module per format.

Every loader returns an :class:`ArrayData` with a train and a test partition:

* images: ``float32`` in ``[0, 1]`` with shape ``(N, C, H, W)``;
* tabular inputs: ``float32`` with shape ``(N, D)``;
* classification labels: ``int64`` with shape ``(N,)`` and ``classes`` set to the class names;
* regression targets: ``float32`` with shape ``(N,)`` (or ``(N, k)``) and ``classes=None``.

Modules: :mod:`~metaloss.tasks.data.base` (the container, its checks, the size limits),
:mod:`~metaloss.tasks.data.locate` (finding and hashing data files),
:mod:`~metaloss.tasks.data.cache` (the ``.npz`` cache), :mod:`~metaloss.tasks.data.idx`
(MNIST family), :mod:`~metaloss.tasks.data.images` (image folders and zips),
:mod:`~metaloss.tasks.data.cifar` (CIFAR binary), :mod:`~metaloss.tasks.data.uci` (UCI
regression folders), :mod:`~metaloss.tasks.data.bundled` (scikit-learn sets, MNIST-1D),
:mod:`~metaloss.tasks.data.arrays` (a user's ``.npz`` / ``.csv``) and
:mod:`~metaloss.tasks.data.splits` (stratified splits, standardisation).

Anything wrong with a file raises :class:`metaloss.errors.DataError` with one message that names
the file. Nothing is ever unpickled and nothing is downloaded. Decoded image folders,
MNIST-1D and scikit-learn's bundled sets are cached as ``.npz`` files in
``$METALOSS_CACHE_DIR`` (default ``~/.cache/metaloss``).

Example:
    >>> from metaloss.tasks.data import find_data_dir, load_idx_dataset
    >>> data = load_idx_dataset(find_data_dir("mnist", None))  # doctest: +SKIP
    >>> data.x_train.shape, data.y_train.dtype  # doctest: +SKIP
    ((60000, 1, 28, 28), dtype('int64'))
"""

from __future__ import annotations

from metaloss.tasks.data.arrays import load_arrays
from metaloss.tasks.data.base import ArrayData, min_train_samples, validate_arrays
from metaloss.tasks.data.bundled import load_mnist1d, load_sklearn
from metaloss.tasks.data.cache import cache_dir
from metaloss.tasks.data.cifar import load_cifar_binary
from metaloss.tasks.data.idx import load_idx_dataset, read_idx
from metaloss.tasks.data.images import load_image_folder
from metaloss.tasks.data.locate import find_data_dir, sha256_file
from metaloss.tasks.data.splits import Standardizer, stratified_split
from metaloss.tasks.data.uci import load_uci

__all__ = [
    "ArrayData",
    "Standardizer",
    "cache_dir",
    "find_data_dir",
    "load_arrays",
    "load_cifar_binary",
    "load_idx_dataset",
    "load_image_folder",
    "load_mnist1d",
    "load_sklearn",
    "load_uci",
    "min_train_samples",
    "read_idx",
    "sha256_file",
    "stratified_split",
    "validate_arrays",
]
