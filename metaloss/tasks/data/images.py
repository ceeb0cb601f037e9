"""Image-folder data sets: a directory or a ``.zip`` with ``train/<class>/*.png`` and
``test/<class>/...``, decoded once with Pillow and cached as ``uint8`` arrays.

Example:
    >>> d = load_image_folder("cifar10_jpeg/cifar10-images-jpeg-q75.zip")  # doctest: +SKIP
    >>> d.x_train.shape  # doctest: +SKIP
    (50000, 3, 32, 32)
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from metaloss.errors import DataError
from metaloss.tasks.data.base import (
    MAX_IMAGE_FILE_BYTES,
    MAX_IMAGE_PIXELS,
    ArrayData,
    PathLike,
    _to_unit_float,
)
from metaloss.tasks.data.cache import _CACHE_VERSION, _cache_load, _cache_save, cache_dir

_IMAGE_EXTS = (".jpg", ".jpeg", ".png")


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


def _read_image(path: Path) -> bytes:
    from metaloss.safefiles import read_bytes_capped

    return read_bytes_capped(path, MAX_IMAGE_FILE_BYTES, DataError)
