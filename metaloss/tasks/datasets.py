"""Readers for standard data set formats, at the numpy level.

Every loader returns an :class:`ArrayData` with a train and a test partition:

* images: ``float32`` in ``[0, 1]`` with shape ``(N, C, H, W)``;
* tabular inputs: ``float32`` with shape ``(N, D)``;
* classification labels: ``int64`` with shape ``(N,)`` and ``classes`` set to the class names;
* regression targets: ``float32`` with shape ``(N,)`` (or ``(N, k)``) and ``classes=None``.

Formats read: idx files (MNIST, Fashion-MNIST, KMNIST, EMNIST), image folders as a directory or
a ``.zip`` (``train/<class>/*.png`` ...), the official CIFAR-10/100 binary files, the UCI
regression folders of Hernandez-Lobato & Adams, scikit-learn's bundled sets, MNIST-1D and a
user's own ``.npz`` / ``.csv`` arrays.

Anything wrong with a file raises :class:`metaloss.errors.DataError` with one message that names
the file. Nothing is ever unpickled and nothing is downloaded. Decoded image folders,
MNIST-1D and scikit-learn's bundled sets are cached as ``.npz`` files in
``$METALOSS_CACHE_DIR`` (default ``~/.cache/metaloss``).

Example:
    >>> from metaloss.tasks.datasets import find_data_dir, load_idx_dataset
    >>> data = load_idx_dataset(find_data_dir("mnist", None))  # doctest: +SKIP
    >>> data.x_train.shape, data.y_train.dtype  # doctest: +SKIP
    ((60000, 1, 28, 28), dtype('int64'))
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import math
import os
import random
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metaloss.errors import ConfigError, DataError

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

PathLike = str | os.PathLike[str]

#: Bumped whenever the layout of a cache file changes, so old caches are ignored.
_CACHE_VERSION = 1
_IMAGE_EXTS = (".jpg", ".jpeg", ".png")
#: Largest idx / CIFAR data file accepted (after gzip decompression), in bytes.
MAX_DATA_BYTES = 4 << 30
#: Largest image file (or zip member) accepted, in bytes.
MAX_IMAGE_FILE_BYTES = 64 << 20
#: Largest image accepted, in pixels (PIL's decompression-bomb limit is set to it explicitly).
MAX_IMAGE_PIXELS = 4096 * 4096
_MAX_CLASSES = 100  # a target column with more distinct integer values is taken as regression


# --------------------------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Small helpers: locating data, hashing, caching
# --------------------------------------------------------------------------------------------


# The folder that holds a source checkout of metaloss (where ``shared/datasets`` may sit).
CHECKOUT_PARENT = Path(__file__).resolve().parents[3]


def find_data_dir(name: str, data_dir: PathLike | None) -> Path:
    """Where the data set ``name`` lives.

    In order: ``data_dir`` when given; else ``$METALOSS_DATA_DIR/<name>``; else
    ``../shared/datasets/<name>`` beside the working directory or the source checkout. ``name`` is
    the standard sub-folder (or file), e.g. ``"mnist"``,
    ``"cifar10_jpeg/cifar10-images-jpeg-q75.zip"`` or ``"uci_regression/yacht"``.

    Example:
        >>> find_data_dir("uci_regression/yacht", None)  # doctest: +SKIP
        PosixPath('/work/shared/datasets/uci_regression/yacht')
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.exists():
            what = f"data directory for {name!r}" if name else "--data-dir path"
            raise DataError(f"{path}: {what} does not exist")
        return path
    env = os.environ.get("METALOSS_DATA_DIR")
    if env:
        path = Path(env).expanduser() / name
        if not path.exists():
            raise DataError(
                f"{path}: {name!r} not found under METALOSS_DATA_DIR={env}; "
                "pass --data-dir or fix METALOSS_DATA_DIR"
            )
        return path
    # ../shared/datasets beside the working directory, or beside a source checkout.
    for root in (Path.cwd().parent, CHECKOUT_PARENT):
        path = root / "shared" / "datasets" / name
        if path.exists():
            return path
    raise DataError(
        f"cannot find data set {name!r}: pass --data-dir (or set METALOSS_DATA_DIR to the folder "
        f"that holds {name!r}); nothing is downloaded"
    )


def sha256_file(path: PathLike) -> str:
    """Hex sha256 digest of a file's contents, read in 1 MiB chunks.

    Example:
        >>> sha256_file("train-images-idx3-ubyte.gz")  # doctest: +SKIP
        '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609'
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read file ({e.strerror or e})") from None
    return digest.hexdigest()


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


def _to_unit_float(x: np.ndarray) -> np.ndarray:
    """``uint8`` pixels to ``float32`` in ``[0, 1]``."""
    out = x.astype(np.float32)
    np.divide(out, 255.0, out=out)
    return out


# --------------------------------------------------------------------------------------------
# idx (MNIST family)
# --------------------------------------------------------------------------------------------

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
    from metaloss.io import read_bytes_capped

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


# --------------------------------------------------------------------------------------------
# Image folders (directory or zip)
# --------------------------------------------------------------------------------------------


def _is_image(name: str) -> bool:
    return name.lower().endswith(_IMAGE_EXTS)


def _hidden(parts: Sequence[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _folder_from_dirs(root: Path) -> dict[str, dict[str, list[str]]]:
    """{split: {class: [relative file names]}} for a directory tree."""
    layout: dict[str, dict[str, list[str]]] = {}
    for split in ("train", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            raise DataError(f"{split_dir}: missing folder (expected {split}/<class>/<image>)")
        layout[split] = {}
        for entry in sorted(split_dir.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_file() and _is_image(entry.name):
                raise DataError(f"{entry}: image outside a class folder ({split}/<class>/...)")
            if entry.is_dir():
                files = sorted(
                    str(p.relative_to(root))
                    for p in entry.rglob("*")
                    if p.is_file() and _is_image(p.name) and not _hidden(p.relative_to(root).parts)
                )
                if not files:
                    raise DataError(f"{entry}: class folder has no .jpg/.jpeg/.png images")
                layout[split][entry.name] = files
    return layout


def _folder_from_zip(path: Path, zf: zipfile.ZipFile) -> dict[str, dict[str, list[str]]]:
    names = [n for n in zf.namelist() if not _hidden(n.split("/"))]
    root = ""
    if not any(n.startswith("train/") for n in names):
        tops = {n.split("/")[0] + "/" for n in names if n.split("/")[1:2] == ["train"]}
        if len(tops) != 1:
            raise DataError(f"{path}: no train/ folder in the zip (expected train/<class>/<image>)")
        root = tops.pop()
    layout: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for name in names:
        if not name.startswith(root):
            continue
        parts = name[len(root) :].split("/")
        if parts[0] not in layout or len(parts) < 2:
            continue
        split = layout[parts[0]]
        if len(parts) == 2:
            if _is_image(parts[1]):
                raise DataError(f"{path}: {name} is outside a class folder ({parts[0]}/<class>/)")
            continue
        files = split.setdefault(parts[1], [])
        if _is_image(parts[-1]):
            files.append(name)
    for split_name, split in layout.items():
        if not split:
            raise DataError(f"{path}: missing folder {root}{split_name}/ in the zip")
        for cls, files in split.items():
            if not files:
                raise DataError(f"{path}: class folder {root}{split_name}/{cls}/ has no images")
            files.sort()
    return layout


def _check_classes(where: str, layout: dict[str, dict[str, list[str]]], sep: str) -> list[str]:
    train, test = set(layout["train"]), set(layout["test"])
    for cls in sorted(train - test):
        raise DataError(f"{where}: class folder test{sep}{cls} is missing (train has it)")
    for cls in sorted(test - train):
        raise DataError(f"{where}: class folder train{sep}{cls} is missing (test has it)")
    if not train:
        raise DataError(f"{where}: no class folders under train{sep}")
    return sorted(train)


class _Decoder:
    """Decodes images to raw uint8 pixel bytes, checking they all have the size of the first."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.size: tuple[int, int] | None = None
        self.first = ""

    def __call__(self, blob: bytes, name: str) -> tuple[bytes, bool]:
        """``(pixels, is_gray)``: row-major ``H*W`` (gray) or ``H*W*3`` (RGB) bytes."""
        from PIL import Image, UnidentifiedImageError

        hint = ("JPEG",) if name.lower().endswith((".jpg", ".jpeg")) else ("PNG",)
        Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                try:
                    im = Image.open(io.BytesIO(blob), formats=hint)
                except UnidentifiedImageError:  # wrong extension: let PIL guess
                    im = Image.open(io.BytesIO(blob))
            w, h = im.size  # read from the header: nothing is decoded yet
            if w * h > MAX_IMAGE_PIXELS:
                im.close()
                raise DataError(
                    f"{self.where}: image {name} is {w}x{h}, over the limit of "
                    f"{MAX_IMAGE_PIXELS} pixels"
                )
            with im:
                if im.mode not in ("L", "RGB"):
                    im = im.convert("L" if im.mode in ("1", "LA", "La", "I", "I;16") else "RGB")
                pixels, gray, size = im.tobytes(), im.mode == "L", im.size
        except Image.DecompressionBombError:
            raise DataError(
                f"{self.where}: image {name} is over the limit of {MAX_IMAGE_PIXELS} pixels"
            ) from None
        except (OSError, ValueError, SyntaxError) as e:
            raise DataError(f"{self.where}: cannot decode image {name} ({e})") from None
        if self.size is None:
            self.size, self.first = size, name
        elif size != self.size:
            raise DataError(
                f"{self.where}: image {name} is {size[0]}x{size[1]} but {self.first} is "
                f"{self.size[0]}x{self.size[1]}; all images must have the same size"
            )
        return pixels, gray


def _stack_images(
    images: list[tuple[bytes, bool]], size: tuple[int, int], gray: bool
) -> np.ndarray:
    """Decoded images to one ``(N, C, H, W)`` uint8 array (gray ones repeated to RGB if needed)."""
    w, h = size
    if gray:
        return np.frombuffer(b"".join(p for p, _ in images), np.uint8).reshape(-1, 1, h, w)
    joined = b"".join(
        np.repeat(np.frombuffer(p, np.uint8), 3).tobytes() if g else p for p, g in images
    )
    hwc = np.frombuffer(joined, np.uint8).reshape(-1, h, w, 3)
    return np.ascontiguousarray(hwc.transpose(0, 3, 1, 2))


class _ZipReader:
    """Member bytes of a zip; stored (uncompressed) members are sliced from one read of the file,
    with their CRC checked, which is several times faster than ``ZipFile.read`` per member."""

    def __init__(self, path: Path, zf: zipfile.ZipFile) -> None:
        self.path, self.zf = path, zf
        self.raw = path.read_bytes()

    def read(self, name: str) -> bytes:
        info = self.zf.getinfo(name)
        if info.file_size > MAX_IMAGE_FILE_BYTES:  # a zip bomb: refused before inflating
            raise DataError(
                f"{self.path}: zip member {name} is {info.file_size} bytes, over the limit of "
                f"{MAX_IMAGE_FILE_BYTES}"
            )
        off = info.header_offset
        head = self.raw[off : off + 30]
        if (
            info.compress_type == zipfile.ZIP_STORED
            and not info.flag_bits & 0x1
            and len(head) == 30
            and head[:4] == b"PK\x03\x04"
        ):
            start = off + 30 + int.from_bytes(head[26:28], "little")
            start += int.from_bytes(head[28:30], "little")
            data = self.raw[start : start + info.compress_size]
            if len(data) == info.file_size and zlib.crc32(data) == info.CRC:
                return data
            raise DataError(f"{self.path}: corrupt zip member {name} (bad CRC or truncated)")
        try:
            return self.zf.read(name)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:
            raise DataError(f"{self.path}: corrupt zip member {name} ({e})") from None


def _image_folder_key(path: Path) -> str:
    h = hashlib.sha256(f"imagefolder-v{_CACHE_VERSION}".encode())
    if path.is_file():
        size = path.stat().st_size
        h.update(f"zip {size}".encode())
        with open(path, "rb") as f:  # head + tail (the zip's central directory holds every CRC)
            h.update(f.read(1 << 20))
            f.seek(max(0, size - (1 << 20)))
            h.update(f.read(1 << 20))
    else:
        h.update(f"dir {path.resolve()}".encode())
        for split in ("train", "test"):
            for p in sorted((path / split).rglob("*")):
                if p.is_file():
                    st = p.stat()
                    h.update(f"{p.relative_to(path)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _decode_image_folder(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    where = str(path)
    decode = _Decoder(where)
    if path.is_file():
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{path}: not a readable zip file ({e})") from None
        with zf:
            layout = _folder_from_zip(path, zf)
            classes = _check_classes(where, layout, "/")
            reader = _ZipReader(path, zf)
            decoded = {
                split: [[decode(reader.read(n), n) for n in layout[split][c]] for c in classes]
                for split in ("train", "test")
            }
            del reader
    else:
        layout = _folder_from_dirs(path)
        classes = _check_classes(where, layout, os.sep)
        decoded = {
            split: [[decode(_read_image(path / n), n) for n in layout[split][c]] for c in classes]
            for split in ("train", "test")
        }
    gray = all(g for split in decoded.values() for per_cls in split for _, g in per_cls)
    assert decode.size is not None  # at least one image per class folder
    arrays: dict[str, np.ndarray] = {}
    for split, per_class in decoded.items():
        images = [im for per_cls in per_class for im in per_cls]
        arrays[f"x_{split}"] = _stack_images(images, decode.size, gray)
        arrays[f"y_{split}"] = np.repeat(
            np.arange(len(classes), dtype=np.int64), [len(c) for c in per_class]
        )
    return arrays, classes


def load_image_folder(path: PathLike, cache: bool = True) -> ArrayData:
    """An image-folder data set: a directory or a ``.zip`` with ``train/<class>/*.jpg|png`` and
    ``test/<class>/...``.

    Classes are the class folder names, sorted; test and train must have the same class
    folders. Files are read in sorted order within each class. Grayscale images give one channel,
    anything else three (RGB). All images must have the same size. The decoded ``uint8`` arrays
    are cached in :func:`cache_dir` (key: the zip's size and first/last MiB, or a directory's
    file names, sizes and mtimes); a corrupt cache file is rebuilt.

    Example:
        >>> d = load_image_folder("cifar10_jpeg/cifar10-images-jpeg-q75.zip")  # doctest: +SKIP
        >>> d.x_train.shape, d.classes[:2]  # doctest: +SKIP
        ((50000, 3, 32, 32), ['airplane', 'automobile'])
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: image folder (directory or .zip) not found")
    required = ("x_train", "y_train", "x_test", "y_test", "classes")
    cache_file = cache_dir() / f"imagefolder-{_image_folder_key(path)[:32]}.npz" if cache else None
    arrays = _cache_load(cache_file, required) if cache_file else None
    if arrays is not None and _valid_image_cache(arrays):
        classes = [str(c) for c in arrays["classes"]]
        source = f"image folder {path} (decoded cache {cache_file})"
    else:
        arrays, classes = _decode_image_folder(path)
        if cache_file is not None:
            _cache_save(cache_file, {**arrays, "classes": np.array(classes, dtype=str)})
        source = f"image folder {path}"
    return ArrayData(
        _to_unit_float(arrays["x_train"]),
        arrays["y_train"].astype(np.int64),
        _to_unit_float(arrays["x_test"]),
        arrays["y_test"].astype(np.int64),
        classes,
        source,
    )


def _valid_image_cache(a: dict[str, np.ndarray]) -> bool:
    n_cls = len(a["classes"])
    return (
        a["x_train"].dtype == np.uint8
        and a["x_train"].ndim == 4
        and a["x_train"].shape[1:] == a["x_test"].shape[1:]
        and len(a["x_train"]) == len(a["y_train"])
        and len(a["x_test"]) == len(a["y_test"])
        and a["classes"].dtype.kind == "U"
        and all(
            y.dtype.kind in "iu" and (y.size == 0 or 0 <= y.min() <= y.max() < n_cls)
            for y in (a["y_train"], a["y_test"])
        )
    )


# --------------------------------------------------------------------------------------------
# CIFAR binary
# --------------------------------------------------------------------------------------------

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


def _read_image(path: Path) -> bytes:
    from metaloss.io import read_bytes_capped

    return read_bytes_capped(path, MAX_IMAGE_FILE_BYTES, DataError)


def _read_cifar_records(path: Path, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    from metaloss.io import read_bytes_capped

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


# --------------------------------------------------------------------------------------------
# UCI regression (Hernandez-Lobato & Adams layout)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# scikit-learn bundled sets and MNIST-1D (generated offline)
# --------------------------------------------------------------------------------------------

_SKLEARN_SETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")


def load_sklearn(name: str) -> ArrayData:
    """One of scikit-learn's bundled data sets (offline): digits, iris, wine, breast_cancer,
    diabetes.

    They have no official test split, so the test partition is a seeded 80/20 split (seed 0) by
    :func:`stratified_split`: stratified by class for the classification sets, a plain shuffle
    for diabetes (regression). ``digits`` is returned as images ``(N, 1, 8, 8)`` scaled to
    ``[0, 1]`` (pixel values 0..16 divided by 16); the others are raw tabular features
    (standardize with :class:`Standardizer` fitted on the training split).

    Example:
        >>> d = load_sklearn("iris")
        >>> d.x_train.shape, d.x_test.shape, d.classes
        ((120, 4), (30, 4), ['setosa', 'versicolor', 'virginica'])
    """
    if name not in _SKLEARN_SETS:
        raise DataError(f"unknown scikit-learn data set {name!r}; choose one of {_SKLEARN_SETS}")
    arrays = _sklearn_arrays(name)
    x, y = arrays["x"], arrays["y"]
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
    if name == "digits":
        x = x.reshape(-1, 1, 8, 8) / np.float32(16.0)
    tr, te = stratified_split(y, 0.2, seed=0)
    return ArrayData(
        x[tr], y[tr], x[te], y[te], classes, f"scikit-learn load_{name}() (seeded 80/20 split)"
    )


def _sklearn_arrays(name: str, cache: bool = True) -> dict[str, np.ndarray]:
    """``x`` (float32), ``y`` and ``classes`` of a bundled scikit-learn set, cached.

    Importing scikit-learn takes seconds, reading the cache milliseconds: the arrays are
    cached in :func:`cache_dir`, keyed by the installed scikit-learn version.
    """
    try:
        from importlib.metadata import version

        key = version("scikit-learn")
    except Exception:  # noqa: BLE001 - not installed: the import below says so
        key = None
    cache_file = cache_dir() / f"sklearn-{name}-v{_CACHE_VERSION}-{key}.npz" if key else None
    if cache and cache_file is not None:
        arrays = _cache_load(cache_file, ("x", "y"))
        if arrays is not None:
            return arrays
    from sklearn import datasets as skd

    bunch = getattr(skd, f"load_{name}")()
    arrays = {"x": np.asarray(bunch.data, dtype=np.float32)}
    if name == "diabetes":
        arrays["y"] = np.asarray(bunch.target, dtype=np.float32)
    else:
        arrays["y"] = np.asarray(bunch.target, dtype=np.int64)
        arrays["classes"] = np.array([str(c) for c in bunch.target_names], dtype=str)
    if cache and cache_file is not None:
        _cache_save(cache_file, arrays)
    return arrays


def load_mnist1d(seed: int = 42, cache: bool = True) -> ArrayData:
    """MNIST-1D, regenerated offline by the ``mnist1d`` package with its default arguments.

    4000 train / 1000 test signals of length 40 as ``float32`` ``(N, 40)``, labels 0..9. The
    global ``random`` and ``numpy`` RNG states are restored afterwards; the arrays are cached in
    :func:`cache_dir` keyed by ``seed`` (generation takes a few seconds).

    Example:
        >>> d = load_mnist1d()  # doctest: +SKIP
        >>> d.x_train.shape, d.x_test.shape  # doctest: +SKIP
        ((4000, 40), (1000, 40))
    """
    required = ("x_train", "y_train", "x_test", "y_test")
    cache_file = cache_dir() / f"mnist1d-v{_CACHE_VERSION}-seed{int(seed)}.npz"
    arrays = _cache_load(cache_file, required) if cache else None
    if arrays is not None and not _valid_mnist1d(arrays):
        arrays = None
    source = f"MNIST-1D generated by mnist1d (seed {seed})"
    if arrays is None:
        arrays = _generate_mnist1d(seed)
        if cache:
            _cache_save(cache_file, arrays)
    else:
        source += f", cached in {cache_file}"
    return ArrayData(
        arrays["x_train"].astype(np.float32),
        arrays["y_train"].astype(np.int64),
        arrays["x_test"].astype(np.float32),
        arrays["y_test"].astype(np.int64),
        [str(i) for i in range(10)],
        source,
    )


def _valid_mnist1d(a: dict[str, np.ndarray]) -> bool:
    return all(
        a[f"x_{p}"].ndim == 2
        and a[f"x_{p}"].dtype.kind == "f"
        and a[f"y_{p}"].dtype.kind in "iu"
        and len(a[f"x_{p}"]) == len(a[f"y_{p}"]) > 0
        and 0 <= a[f"y_{p}"].min() <= a[f"y_{p}"].max() < 10
        for p in ("train", "test")
    )


def _generate_mnist1d(seed: int) -> dict[str, np.ndarray]:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:
        raise DataError(f"MNIST-1D needs the 'mnist1d' package ({e})") from None
    args = get_dataset_args()
    args.seed = int(seed)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        d = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {
        "x_train": np.asarray(d["x"], dtype=np.float32),
        "y_train": np.asarray(d["y"], dtype=np.int64),
        "x_test": np.asarray(d["x_test"], dtype=np.float32),
        "y_test": np.asarray(d["y_test"], dtype=np.int64),
    }


# --------------------------------------------------------------------------------------------
# User arrays: .npz / .csv
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Splitting and standardizing
# --------------------------------------------------------------------------------------------


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
