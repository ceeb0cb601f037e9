"""idx files (MNIST, Fashion-MNIST, KMNIST, EMNIST), gzipped or not, with gzip-bomb limits.

Example:
    >>> read_idx("mnist/t10k-labels-idx1-ubyte.gz").shape  # doctest: +SKIP
    (10000,)
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from metaloss.errors import DataError
from metaloss.tasks.data.base import MAX_DATA_BYTES, ArrayData, PathLike, _to_unit_float

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_maybe_gzip(path: Path) -> bytes:
    """The bytes of a (possibly gzipped) data file, at most :data:`MAX_DATA_BYTES` of them
    (compressed or not: a gzip bomb stops at the limit)."""
    from metaloss.safefiles import read_bytes_capped

    raw = read_bytes_capped(path, MAX_DATA_BYTES, DataError)
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        d = zlib.decompressobj(wbits=31)  # gzip container
        out = d.decompress(raw, MAX_DATA_BYTES + 1)
        if len(out) > MAX_DATA_BYTES:
            raise DataError(f"{path}: decompresses to more than {MAX_DATA_BYTES} bytes")
        if not d.eof:
            raise EOFError
        if d.unused_data:  # concatenated gzip members (rare): fall back to the full reader
            out = gzip.decompress(raw)
            if len(out) > MAX_DATA_BYTES:
                raise DataError(f"{path}: decompresses to more than {MAX_DATA_BYTES} bytes")
        return out
    except EOFError:
        raise DataError(f"{path}: truncated gzip file (compressed stream ends early)") from None
    except (OSError, zlib.error) as e:
        raise DataError(f"{path}: corrupt gzip file ({e})") from None


def read_idx(path: PathLike) -> np.ndarray:
    """Read one idx file (``.gz`` or not) into an array in native byte order.

    Validates the magic number (two zero bytes, a known dtype code, the number of dimensions) and
    that the payload length matches the dimensions in the header.

    Example:
        >>> read_idx("mnist/t10k-labels-idx1-ubyte.gz").shape  # doctest: +SKIP
        (10000,)
    """
    path = Path(path)
    data = _read_maybe_gzip(path)
    if len(data) < 4:
        raise DataError(f"{path}: not an idx file (only {len(data)} bytes)")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path}: wrong magic number 0x{data[:4].hex()} (expected 0x0000 + dtype code + ndim, "
            "e.g. 0x00000803 for idx3-ubyte)"
        )
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    if ndim == 0:
        raise DataError(f"{path}: idx header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated idx header ({len(data)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(dims) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise DataError(
            f"{path}: {what}: header says {dims} x {dtype.itemsize} bytes = {expected} data bytes, "
            f"file has {got}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _find_idx_file(directory: Path, prefix: str, splits: Sequence[str], kind: str) -> Path:
    ndim = 3 if kind == "images" else 1
    names = []
    for split in splits:
        for sep in ("-", "."):
            base = f"{prefix}{split}-{kind}{sep}idx{ndim}-ubyte"
            names += [base, base + ".gz"]
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise DataError(f"{directory / names[1]}: file not found (nor {', '.join(names[2:4])} ...)")


def load_idx_dataset(
    directory: PathLike,
    prefix: str = "",
    transpose: bool = False,
    classes: Sequence[str] | None = None,
) -> ArrayData:
    """MNIST-style idx files: MNIST, Fashion-MNIST, KMNIST, EMNIST.

    Looks in ``directory`` for ``{prefix}train-images-idx3-ubyte[.gz]``,
    ``{prefix}train-labels-idx1-ubyte[.gz]``, ``{prefix}t10k-images-idx3-ubyte[.gz]`` and
    ``{prefix}t10k-labels-idx1-ubyte[.gz]`` (also ``test-`` instead of ``t10k-`` and the
    ``train-images.idx3-ubyte`` spelling). EMNIST: ``prefix="emnist-balanced-"`` and
    ``transpose=True`` (its images are stored transposed); its ``{prefix}mapping.txt``, when
    present, gives the class names. Otherwise classes are ``"0" ... str(max label)`` unless
    ``classes`` is given.

    Example:
        >>> d = load_idx_dataset("../shared/datasets/mnist")  # doctest: +SKIP
        >>> d.x_train.shape, d.x_test.shape  # doctest: +SKIP
        ((60000, 1, 28, 28), (10000, 1, 28, 28))
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: idx data directory not found")
    parts = {}
    for split, names in (("train", ("train",)), ("test", ("t10k", "test"))):
        img_path = _find_idx_file(directory, prefix, names, "images")
        lbl_path = _find_idx_file(directory, prefix, names, "labels")
        images, labels = read_idx(img_path), read_idx(lbl_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(
                f"{img_path}: expected unsigned-byte images (N, H, W), got {images.dtype} "
                f"{images.shape}"
            )
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DataError(f"{lbl_path}: expected integer labels (N,), got {labels.shape}")
        if len(images) != len(labels):
            raise DataError(
                f"{img_path}: {len(images)} images but {lbl_path.name} has {len(labels)} labels"
            )
        if transpose:
            images = np.ascontiguousarray(images.transpose(0, 2, 1))
        parts[split] = (
            img_path,
            lbl_path,
            _to_unit_float(images[:, None]),
            labels.astype(np.int64),
        )
    (train_path, train_lbl, x_train, y_train) = parts["train"]
    (test_path, test_lbl, x_test, y_test) = parts["test"]
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{test_path}: images are {x_test.shape[2:]} but train images are {x_train.shape[2:]}"
        )
    if classes is None:
        mapping = directory / f"{prefix}mapping.txt"
        classes = _read_emnist_mapping(mapping) if prefix and mapping.is_file() else None
    if classes is None:
        top = max(int(y_train.max(initial=0)), int(y_test.max(initial=0)))
        classes = [str(i) for i in range(top + 1)]
    for path, y in ((train_lbl, y_train), (test_lbl, y_test)):
        if len(y) and (y.min() < 0 or y.max() >= len(classes)):
            raise DataError(
                f"{path}: labels span [{y.min()}, {y.max()}], outside the {len(classes)} classes"
            )
    source = f"idx files in {directory}" + (f" (prefix {prefix!r})" if prefix else "")
    return ArrayData(x_train, y_train, x_test, y_test, list(classes), source)


def _read_emnist_mapping(path: Path) -> list[str]:
    """EMNIST ``*-mapping.txt``: lines ``<label> <ascii code> [<ascii code of lower case>]``."""
    mapping: dict[int, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            label, code, *_ = (int(v) for v in line.split())
            mapping[label] = chr(code)
        except ValueError:
            raise DataError(f"{path}, line {n}: expected '<label> <ascii code>'") from None
    if not mapping:
        raise DataError(f"{path}: empty class mapping")
    return [mapping.get(i, str(i)) for i in range(max(mapping) + 1)]
