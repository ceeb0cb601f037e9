"""Where a data set lives (``--data-dir``, ``$METALOSS_DATA_DIR``, ``../shared/datasets``)
and the sha256 of its files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from metaloss.errors import DataError
from metaloss.tasks.data.base import PathLike

# The folder that holds a source checkout of metaloss (where ``shared/datasets`` may sit).
CHECKOUT_PARENT = Path(__file__).resolve().parents[4]


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
