"""Former home of the data set readers, kept so that existing imports work.

The readers live in :mod:`metaloss.tasks.data`, one module per format (idx, image folders,
CIFAR binary, UCI, bundled sets, user arrays) plus the container, caching and splitting;
this module re-exports their names (the private ones too, for old callers).

Example:
    >>> from metaloss.tasks.datasets import ArrayData, stratified_split
    >>> ArrayData.__module__
    'metaloss.tasks.data.base'
"""

from __future__ import annotations

from metaloss.tasks.data.arrays import (  # noqa: F401
    _as_labels,
    _finite_inputs,
    _is_class_target,
    _load_csv,
    _load_npz,
    _split_whole,
    load_arrays,
)
from metaloss.tasks.data.base import (  # noqa: F401
    _MAX_CLASSES,
    MAX_DATA_BYTES,
    MAX_IMAGE_FILE_BYTES,
    MAX_IMAGE_PIXELS,
    ArrayData,
    PathLike,
    _to_unit_float,
    min_train_samples,
    validate_arrays,
)
from metaloss.tasks.data.bundled import (  # noqa: F401
    _SKLEARN_SETS,
    _generate_mnist1d,
    _sklearn_arrays,
    _valid_mnist1d,
    load_mnist1d,
    load_sklearn,
)
from metaloss.tasks.data.cache import _CACHE_VERSION, _cache_load, _cache_save, cache_dir  # noqa: F401
from metaloss.tasks.data.cifar import load_cifar_binary  # noqa: F401
from metaloss.tasks.data.idx import _read_maybe_gzip, load_idx_dataset, read_idx  # noqa: F401
from metaloss.tasks.data.images import _IMAGE_EXTS, load_image_folder  # noqa: F401
from metaloss.tasks.data.locate import CHECKOUT_PARENT, find_data_dir, sha256_file  # noqa: F401
from metaloss.tasks.data.splits import Standardizer, stratified_split  # noqa: F401
from metaloss.tasks.data.uci import load_uci  # noqa: F401

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
    "read_idx",
    "sha256_file",
    "stratified_split",
]
