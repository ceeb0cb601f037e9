"""Tests of metaloss.tasks.datasets: real files from ../shared/datasets and corrupted copies."""

from __future__ import annotations

import gzip
import io
import random
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metaloss.errors import ConfigError, DataError
from metaloss.tasks import datasets as ds
from metaloss.tasks.datasets import (
    ArrayData,
    Standardizer,
    find_data_dir,
    load_arrays,
    load_cifar_binary,
    load_idx_dataset,
    load_image_folder,
    load_mnist1d,
    load_sklearn,
    load_uci,
    read_idx,
    sha256_file,
    stratified_split,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
MNIST = DATA / "mnist"
CIFAR_ZIP = DATA / "cifar10_jpeg" / "cifar10-images-jpeg-q75.zip"
UCI = DATA / "uci_regression"

needs_mnist = pytest.mark.skipif(
    not MNIST.is_dir(), reason=f"real MNIST files not found at {MNIST}"
)
needs_uci = pytest.mark.skipif(not UCI.is_dir(), reason=f"UCI folders not found at {UCI}")
needs_cifar = pytest.mark.skipif(
    not CIFAR_ZIP.is_file(), reason=f"CIFAR-10 JPEG zip not found at {CIFAR_ZIP}"
)

# sha256 sums from ../shared/datasets/README.md
MNIST_SHA256 = dict(
    line.split()
    for line in """
train-images-idx3-ubyte.gz 440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609
train-labels-idx1-ubyte.gz 3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c
t10k-images-idx3-ubyte.gz 8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6
t10k-labels-idx1-ubyte.gz f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6
""".strip().splitlines()
)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache dir, so nothing is written to ~/.cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("METALOSS_CACHE_DIR", str(cache))
    return cache


# --------------------------------------------------------------------------------------------
# helpers that write small files in the standard formats
# --------------------------------------------------------------------------------------------

_IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D}


def idx_bytes(arr: np.ndarray) -> bytes:
    code = _IDX_CODES[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, gz: bool | None = None) -> Path:
    data = idx_bytes(arr)
    gz = path.suffix == ".gz" if gz is None else gz
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_idx_dir(
    root: Path, n_train: int = 6, n_test: int = 4, prefix: str = "", gz: bool = True
) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for split, n in (("train", n_train), (("test" if prefix else "t10k"), n_test)):
        images = rng.integers(0, 256, size=(n, 5, 7), dtype=np.uint8)
        write_idx(root / f"{prefix}{split}-images-idx3-ubyte{ext}", images)
        write_idx(
            root / f"{prefix}{split}-labels-idx1-ubyte{ext}", np.arange(n, dtype=np.uint8) % 3
        )
    return root


def png_bytes(size: tuple[int, int] = (4, 3), mode: str = "RGB", value: int = 0) -> bytes:
    buf = io.BytesIO()
    color = value if mode == "L" else (value, 255 - value, value // 2)
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def image_tree(
    classes_train=("cat", "dog"), classes_test=("cat", "dog"), per_class: int = 2
) -> dict[str, bytes]:
    files = {}
    for split, classes in (("train", classes_train), ("test", classes_test)):
        for c, cls in enumerate(classes):
            for i in range(per_class):
                files[f"{split}/{cls}/{i:03d}.png"] = png_bytes(value=40 * c + i)
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def make_uci_dir(root: Path, rows: int = 10, n_splits: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    table = np.arange(rows * 4, dtype=np.float64).reshape(rows, 4) / 7
    np.savetxt(root / "data.txt", table)
    (root / "index_features.txt").write_text("0\n1\n2\n")
    (root / "index_target.txt").write_text("3\n")
    (root / "n_splits.txt").write_text(f"{n_splits}\n")
    for k in range(n_splits):
        perm = np.random.default_rng(k).permutation(rows)
        np.savetxt(root / f"index_train_{k}.txt", perm[:7], fmt="%d")
        np.savetxt(root / f"index_test_{k}.txt", perm[7:], fmt="%d")
    return root


def assert_names(err: pytest.ExceptionInfo[DataError], path: Path, *words: str) -> None:
    msg = str(err.value)
    assert str(path) in msg or path.name in msg, msg
    for word in words:
        assert word in msg, msg


# --------------------------------------------------------------------------------------------
# real data
# --------------------------------------------------------------------------------------------


@needs_mnist
@pytest.mark.parametrize("name", sorted(MNIST_SHA256))
def test_mnist_checksums(name: str) -> None:
    assert sha256_file(MNIST / name) == MNIST_SHA256[name]


@needs_mnist
def test_load_mnist_real() -> None:
    d = load_idx_dataset(MNIST)
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.x_train.min() >= 0.0 and d.x_train.max() == 1.0
    assert d.y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert set(np.unique(d.y_test).tolist()) == set(range(10))
    assert d.classes == [str(i) for i in range(10)] and d.task == "classification"
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10
    assert abs(float(d.x_train.mean()) - 0.1307) < 1e-3  # the well-known MNIST mean


@needs_mnist
def test_find_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METALOSS_DATA_DIR", raising=False)
    assert find_data_dir("mnist", tmp_path) == tmp_path
    with pytest.raises(DataError, match="does not exist"):
        find_data_dir("mnist", tmp_path / "nope")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "repo").mkdir()
    (tmp_path / "shared").symlink_to(DATA.parent)
    monkeypatch.chdir(tmp_path / "repo")  # ../shared/datasets relative to the working directory
    assert find_data_dir("mnist", None).resolve() == MNIST.resolve()
    monkeypatch.setenv("METALOSS_DATA_DIR", str(DATA))
    assert find_data_dir("uci_regression/yacht", None) == DATA / "uci_regression" / "yacht"
    with pytest.raises(DataError, match="METALOSS_DATA_DIR"):
        find_data_dir("no_such_set", None)
    monkeypatch.delenv("METALOSS_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    import metaloss.tasks.data.locate as locate_module

    monkeypatch.setattr(locate_module, "CHECKOUT_PARENT", tmp_path / "elsewhere")
    with pytest.raises(DataError, match="--data-dir"):
        find_data_dir("mnist", None)


@needs_uci
@pytest.mark.parametrize("name", ["bostonHousing", "concrete", "energy", "yacht"])
def test_load_uci_real(name: str) -> None:
    folder = UCI / name
    rows = len(np.loadtxt(folder / "data.txt", ndmin=2))
    n_feat = len(np.loadtxt(folder / "index_features.txt", ndmin=1))
    for split in (0, 19):
        d = load_uci(folder, split=split)
        assert d.classes is None and d.task == "regression"
        assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.float32
        assert d.x_train.shape[1] == n_feat and d.y_train.ndim == 1
        assert len(d.x_train) + len(d.x_test) == rows
        assert np.all(np.isfinite(d.x_train)) and np.all(np.isfinite(d.y_test))
    with pytest.raises(DataError) as err:
        load_uci(folder, split=20)
    assert_names(err, folder / "n_splits.txt", "20")


@needs_cifar
@pytest.mark.slow
def test_cifar_zip_full_decode_and_cache(_private_cache: Path) -> None:
    t0 = time.perf_counter()
    d = load_image_folder(CIFAR_ZIP)
    first = time.perf_counter() - t0
    assert d.x_train.shape == (50000, 3, 32, 32) and d.x_test.shape == (10000, 3, 32, 32)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.classes == [
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ]  # fmt: skip
    assert np.bincount(d.y_train).tolist() == [5000] * 10
    assert np.bincount(d.y_test).tolist() == [1000] * 10
    assert d.x_train.min() >= 0.0 and d.x_train.max() <= 1.0
    assert 0.4 < float(d.x_train.mean()) < 0.55
    assert len(list(_private_cache.glob("imagefolder-*.npz"))) == 1
    t0 = time.perf_counter()
    cached = load_image_folder(CIFAR_ZIP)
    second = time.perf_counter() - t0
    assert "decoded cache" in cached.source
    assert np.array_equal(cached.x_test, d.x_test) and np.array_equal(cached.y_train, d.y_train)
    print(f"CIFAR-10 zip: first load {first:.1f} s, cached load {second:.1f} s")
    assert second < first


# --------------------------------------------------------------------------------------------
# idx files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path: Path, dtype, gz: bool) -> None:
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    got = read_idx(write_idx(tmp_path / "a.idx", arr, gz=gz))
    assert got.dtype == np.dtype(dtype).newbyteorder("=") and got.shape == (2, 3, 4)
    assert np.array_equal(got, arr)


@needs_mnist
def test_read_idx_truncated_gzip(tmp_path: Path) -> None:
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes((MNIST / bad.name).read_bytes()[:-100])
    with pytest.raises(DataError) as err:
        read_idx(bad)
    assert_names(err, bad, "truncated gzip")


def test_read_idx_corrupt_gzip(tmp_path: Path) -> None:
    bad = tmp_path / "x.gz"
    data = bytearray(gzip.compress(idx_bytes(np.zeros((50, 3), np.uint8))))
    data[12:20] = b"\xff" * 8
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        read_idx(bad)
    assert_names(err, bad, "gzip")


def test_read_idx_wrong_magic(tmp_path: Path) -> None:
    data = bytearray(idx_bytes(np.zeros((2, 2, 2), np.uint8)))
    data[0] = 0x1A
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        read_idx(bad)
    assert_names(err, bad, "magic number")
    data[0], data[2] = 0, 0x42  # unknown dtype code
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match="magic number"):
        read_idx(bad)


def test_read_idx_length_mismatch(tmp_path: Path) -> None:
    data = idx_bytes(np.zeros((3, 4, 4), np.uint8))
    short, long = tmp_path / "short", tmp_path / "long"
    short.write_bytes(data[:-1])
    long.write_bytes(data + b"\0")
    with pytest.raises(DataError) as err:
        read_idx(short)
    assert_names(err, short, "truncated")
    with pytest.raises(DataError) as err:
        read_idx(long)
    assert_names(err, long, "trailing")
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\0\0\x08\x03\0\0")
    with pytest.raises(DataError, match="header"):
        read_idx(tiny)


def test_read_idx_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_idx(tmp_path / "nope.gz")
    assert_names(err, tmp_path / "nope.gz", "not found")


def test_load_idx_dataset_synthetic(tmp_path: Path) -> None:
    d = load_idx_dataset(make_idx_dir(tmp_path / "mnist"))
    assert d.x_train.shape == (6, 1, 5, 7) and d.x_test.shape == (4, 1, 5, 7)
    assert d.y_train.tolist() == [0, 1, 2, 0, 1, 2] and d.classes == ["0", "1", "2"]
    raw = read_idx(tmp_path / "mnist" / "train-images-idx3-ubyte.gz")
    assert np.allclose(d.x_train[:, 0] * 255, raw)


def test_load_idx_dataset_dot_names_uncompressed(tmp_path: Path) -> None:
    root = make_idx_dir(tmp_path / "d", gz=False)
    for f in list(root.iterdir()):
        f.rename(root / f.name.replace("-idx", ".idx"))  # train-images.idx3-ubyte spelling
    d = load_idx_dataset(root, classes=["a", "b", "c"])
    assert d.classes == ["a", "b", "c"] and len(d.y_test) == 4


def test_load_idx_dataset_emnist_prefix_transpose(tmp_path: Path) -> None:
    root = make_idx_dir(tmp_path / "emnist", prefix="emnist-balanced-")
    (root / "emnist-balanced-mapping.txt").write_text("0 48\n1 65\n2 97\n")
    plain = load_idx_dataset(root, prefix="emnist-balanced-")
    d = load_idx_dataset(root, prefix="emnist-balanced-", transpose=True)
    assert d.x_train.shape == (6, 1, 7, 5)
    assert np.array_equal(d.x_train, plain.x_train.transpose(0, 1, 3, 2))
    assert d.classes == ["0", "A", "a"]


def test_load_idx_dataset_count_mismatch(tmp_path: Path) -> None:
    root = make_idx_dir(tmp_path / "m")
    write_idx(root / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(DataError) as err:
        load_idx_dataset(root)
    assert_names(err, root / "train-images-idx3-ubyte.gz", "6 images", "5 labels")


def test_load_idx_dataset_missing_file(tmp_path: Path) -> None:
    root = make_idx_dir(tmp_path / "m")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        load_idx_dataset(root)
    assert_names(err, root / "t10k-labels-idx1-ubyte.gz", "not found")


def test_load_idx_dataset_shape_mismatch(tmp_path: Path) -> None:
    root = make_idx_dir(tmp_path / "m")
    write_idx(root / "t10k-images-idx3-ubyte.gz", np.zeros((4, 6, 6), np.uint8))
    with pytest.raises(DataError) as err:
        load_idx_dataset(root)
    assert_names(err, root / "t10k-images-idx3-ubyte.gz")


# --------------------------------------------------------------------------------------------
# image folders
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dir", "zip", "zip_deflated", "zip_nested"])
def test_image_folder_layouts(tmp_path: Path, kind: str) -> None:
    files = image_tree(per_class=3)
    if kind == "dir":
        path = write_tree(tmp_path / "imgs", files)
    elif kind == "zip_nested":
        path = write_zip(tmp_path / "imgs.zip", {f"root/{k}": v for k, v in files.items()})
    else:
        comp = zipfile.ZIP_DEFLATED if kind == "zip_deflated" else zipfile.ZIP_STORED
        path = write_zip(tmp_path / "imgs.zip", files, comp)
    d = load_image_folder(path)
    assert d.classes == ["cat", "dog"]
    assert d.x_train.shape == (6, 3, 3, 4) and d.x_train.dtype == np.float32
    assert d.y_train.tolist() == [0, 0, 0, 1, 1, 1] and d.y_test.tolist() == [0, 0, 0, 1, 1, 1]
    # dog image 1 was filled with (41, 214, 20)
    assert np.allclose(d.x_train[4, :, 0, 0] * 255, [41, 214, 20], atol=1e-3)


def test_image_folder_gray_and_mixed(tmp_path: Path) -> None:
    gray = {k: png_bytes(mode="L", value=7) for k in image_tree()}
    d = load_image_folder(write_zip(tmp_path / "g.zip", gray))
    assert d.x_train.shape == (4, 1, 3, 4)
    assert np.allclose(d.x_train * 255, 7, atol=1e-4)
    mixed = dict(gray)
    mixed["train/cat/000.png"] = png_bytes(mode="RGB", value=9)
    d = load_image_folder(write_zip(tmp_path / "m.zip", mixed))
    assert d.x_train.shape == (4, 3, 3, 4)
    assert np.allclose(d.x_train[1] * 255, 7, atol=1e-4)  # gray repeated into 3 channels


@pytest.mark.parametrize("as_zip", [False, True])
def test_image_folder_missing_class_folder(tmp_path: Path, as_zip: bool) -> None:
    files = image_tree(classes_test=("cat",))
    path = write_zip(tmp_path / "f.zip", files) if as_zip else write_tree(tmp_path / "f", files)
    with pytest.raises(DataError) as err:
        load_image_folder(path)
    assert_names(err, path, "dog", "missing")
    assert "test" in str(err.value)


def test_image_folder_empty_class_and_missing_split(tmp_path: Path) -> None:
    files = image_tree()
    root = write_tree(tmp_path / "f", files)
    (root / "train" / "bird").mkdir()
    with pytest.raises(DataError) as err:
        load_image_folder(root)
    assert_names(err, root / "train" / "bird", "no .jpg")
    only_train = {k: v for k, v in files.items() if k.startswith("train/")}
    z = write_zip(tmp_path / "t.zip", only_train)
    with pytest.raises(DataError) as err:
        load_image_folder(z)
    assert_names(err, z, "test/")


def test_image_folder_inconsistent_size(tmp_path: Path) -> None:
    files = image_tree()
    files["test/dog/001.png"] = png_bytes(size=(5, 3))
    z = write_zip(tmp_path / "s.zip", files)
    with pytest.raises(DataError) as err:
        load_image_folder(z)
    assert_names(err, z, "test/dog/001.png", "same size")


def test_image_folder_corrupt_image_and_zip(tmp_path: Path) -> None:
    files = image_tree()
    files["train/cat/001.png"] = b"not a png at all"
    z = write_zip(tmp_path / "c.zip", files)
    with pytest.raises(DataError) as err:
        load_image_folder(z)
    assert_names(err, z, "train/cat/001.png")
    good = image_tree()
    good["test/dog/001.png"] = png_bytes(value=200)  # unique bytes, found below
    z2 = write_zip(tmp_path / "crc.zip", good)
    raw = bytearray(z2.read_bytes())
    at = raw.index(good["test/dog/001.png"]) + 20  # flip a byte inside a stored member
    raw[at] ^= 0xFF
    z2.write_bytes(bytes(raw))
    with pytest.raises(DataError) as err:
        load_image_folder(z2)
    assert_names(err, z2, "test/dog/001.png")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK nonsense")
    with pytest.raises(DataError) as err:
        load_image_folder(junk)
    assert_names(err, junk, "zip")
    with pytest.raises(DataError, match="not found"):
        load_image_folder(tmp_path / "absent.zip")


def test_image_folder_cache_and_corrupt_cache(tmp_path: Path, _private_cache: Path) -> None:
    z = write_zip(tmp_path / "c.zip", image_tree())
    first = load_image_folder(z)
    caches = list(_private_cache.glob("imagefolder-*.npz"))
    assert len(caches) == 1 and "decoded cache" not in first.source
    assert not list(_private_cache.glob("*.tmp"))  # atomic write left nothing behind
    second = load_image_folder(z)
    assert "decoded cache" in second.source
    assert np.array_equal(first.x_train, second.x_train) and second.classes == first.classes
    caches[0].write_bytes(b"garbage, not an npz")
    third = load_image_folder(z)
    assert "decoded cache" not in third.source and np.array_equal(third.x_test, first.x_test)
    assert "decoded cache" in load_image_folder(z).source  # rebuilt
    # a changed zip gets a new cache entry
    write_zip(z, image_tree(per_class=3))
    assert len(load_image_folder(z).y_train) == 6
    assert len(list(_private_cache.glob("imagefolder-*.npz"))) == 2


# --------------------------------------------------------------------------------------------
# CIFAR binary
# --------------------------------------------------------------------------------------------


def cifar_records(labels: np.ndarray, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    labels = np.atleast_2d(labels.T).T.astype(np.uint8)
    pixels = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
    return np.concatenate([labels, pixels], axis=1).tobytes(), pixels


def test_cifar10_binary(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-bin"
    root.mkdir()
    rng = np.random.default_rng(0)
    first = None
    for i in range(1, 6):
        data, pixels = cifar_records(np.array([i, 9]), rng)
        (root / f"data_batch_{i}.bin").write_bytes(data)
        first = pixels if first is None else first
    (root / "test_batch.bin").write_bytes(cifar_records(np.array([3]), rng)[0])
    names = [
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
    (root / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    d = load_cifar_binary(tmp_path)  # the parent folder works too
    assert d.x_train.shape == (10, 3, 32, 32) and d.x_test.shape == (1, 3, 32, 32)
    assert d.y_train.tolist() == [1, 9, 2, 9, 3, 9, 4, 9, 5, 9] and d.y_test.tolist() == [3]
    assert d.classes == names
    assert np.allclose(d.x_train[0].reshape(-1) * 255, first[0], atol=1e-3)
    with pytest.raises(ConfigError):
        load_cifar_binary(root, label="coarse")


def test_cifar_binary_wrong_length(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        (tmp_path / f"data_batch_{i}.bin").write_bytes(cifar_records(np.array([0]), rng)[0])
    (tmp_path / "test_batch.bin").write_bytes(cifar_records(np.array([0]), rng)[0][:-7])
    with pytest.raises(DataError) as err:
        load_cifar_binary(tmp_path)
    assert_names(err, tmp_path / "test_batch.bin", "multiple", "3073")
    (tmp_path / "data_batch_3.bin").unlink()
    with pytest.raises(DataError) as err:
        load_cifar_binary(tmp_path)
    assert_names(err, tmp_path / "data_batch_3.bin", "not found")


def test_cifar100_binary_fine_coarse(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    (tmp_path / "train.bin").write_bytes(cifar_records(np.array([[3, 77], [19, 5]]), rng)[0])
    (tmp_path / "test.bin").write_bytes(cifar_records(np.array([[0, 99]]), rng)[0])
    fine = load_cifar_binary(tmp_path)
    assert fine.y_train.tolist() == [77, 5] and len(fine.classes) == 100
    coarse = load_cifar_binary(tmp_path, label="coarse")
    assert coarse.y_train.tolist() == [3, 19] and len(coarse.classes) == 20
    (tmp_path / "train.bin").write_bytes(cifar_records(np.array([[25, 1]]), rng)[0])
    with pytest.raises(DataError) as err:
        load_cifar_binary(tmp_path, label="coarse")
    assert_names(err, tmp_path / "train.bin", "out of range")
    (tmp_path / "train.bin").write_bytes(b"\0" * 3073)  # a CIFAR-10 record is not a CIFAR-100 one
    with pytest.raises(DataError) as err:
        load_cifar_binary(tmp_path)
    assert_names(err, tmp_path / "train.bin", "3074")


def test_cifar_binary_nothing_there(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_cifar_binary(tmp_path)
    assert_names(err, tmp_path, "data_batch_1.bin")


# --------------------------------------------------------------------------------------------
# UCI
# --------------------------------------------------------------------------------------------


def test_load_uci_synthetic(tmp_path: Path) -> None:
    root = make_uci_dir(tmp_path / "toy")
    d = load_uci(root, split=1)
    table = np.loadtxt(root / "data.txt")
    train_idx = np.loadtxt(root / "index_train_1.txt", dtype=int)
    assert d.x_train.shape == (7, 3) and d.y_test.shape == (3,)
    assert np.allclose(d.x_train, table[train_idx, :3]) and np.allclose(
        d.y_train, table[train_idx, 3]
    )


def test_load_uci_bad_split_and_indices(tmp_path: Path) -> None:
    root = make_uci_dir(tmp_path / "toy")
    with pytest.raises(DataError) as err:
        load_uci(root, split=2)
    assert_names(err, root / "n_splits.txt", "split 2")
    with pytest.raises(DataError):
        load_uci(root, split=-1)
    (root / "index_test_0.txt").write_text("1\n10\n")
    with pytest.raises(DataError) as err:
        load_uci(root, split=0)
    assert_names(err, root / "index_test_0.txt", "row index 10")
    (root / "index_target.txt").write_text("4\n")
    with pytest.raises(DataError) as err:
        load_uci(root, split=1)
    assert_names(err, root / "index_target.txt", "column index 4")
    (root / "index_train_1.txt").unlink()
    (root / "index_target.txt").write_text("3\n")
    with pytest.raises(DataError) as err:
        load_uci(root, split=1)
    assert_names(err, root / "index_train_1.txt", "not found")


def test_load_uci_ragged_table(tmp_path: Path) -> None:
    root = make_uci_dir(tmp_path / "toy")
    with open(root / "data.txt", "a") as f:
        f.write("1 2 3\n")
    with pytest.raises(DataError) as err:
        load_uci(root)
    assert_names(err, root / "data.txt")


# --------------------------------------------------------------------------------------------
# user arrays: npz / csv
# --------------------------------------------------------------------------------------------


def test_npz_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.normal(size=(20, 3)).astype(np.float64),
        "y_train": rng.integers(0, 4, 20),
        "x_test": rng.normal(size=(5, 3)),
        "y_test": rng.integers(0, 4, 5),
        "classes": np.array(["a", "b", "c", "d"]),
    }
    np.savez(tmp_path / "cls.npz", **arrays)
    d = load_arrays(tmp_path / "cls.npz")
    assert d.classes == ["a", "b", "c", "d"] and d.y_train.dtype == np.int64
    assert np.allclose(d.x_train, arrays["x_train"]) and d.x_train.dtype == np.float32
    assert np.array_equal(d.y_test, arrays["y_test"])
    # regression, uint8 images scaled to [0, 1]
    imgs = rng.integers(0, 256, size=(6, 1, 2, 2), dtype=np.uint8)
    np.savez(tmp_path / "reg.npz", x_train=imgs, y_train=np.linspace(0, 1, 6), x_test=imgs[:2],
             y_test=np.zeros(2))  # fmt: skip
    d = load_arrays(tmp_path / "reg.npz")
    assert d.task == "regression" and d.y_train.dtype == np.float32
    assert np.allclose(d.x_train * 255, imgs)
    # integer labels without names: distinct values become classes
    np.savez(tmp_path / "ints.npz", x_train=np.zeros((3, 1)), y_train=np.array([-1, 5, 5]),
             x_test=np.zeros((1, 1)), y_test=np.array([-1]))  # fmt: skip
    d = load_arrays(tmp_path / "ints.npz")
    assert d.classes == ["-1", "5"] and d.y_train.tolist() == [0, 1, 1]


def test_npz_errors(tmp_path: Path) -> None:
    bad = tmp_path / "obj.npz"
    obj = np.array([{"a": 1}, None], dtype=object)
    np.savez(bad, x_train=obj, y_train=np.zeros(2), x_test=obj, y_test=np.zeros(2))
    with pytest.raises(DataError) as err:
        load_arrays(bad)  # must not unpickle
    assert_names(err, bad, "unpickling")
    missing = tmp_path / "missing.npz"
    np.savez(missing, x_train=np.zeros((2, 2)), y_train=np.zeros(2))
    with pytest.raises(DataError) as err:
        load_arrays(missing)
    assert_names(err, missing, "x_test")
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, x_train=np.zeros((3, 2)), y_train=np.zeros(2), x_test=np.zeros((1, 2)),
             y_test=np.zeros(1))  # fmt: skip
    with pytest.raises(DataError) as err:
        load_arrays(mismatch)
    assert_names(err, mismatch, "y_train")
    shapes = tmp_path / "shapes.npz"
    np.savez(shapes, x_train=np.zeros((2, 2)), y_train=np.zeros(2), x_test=np.zeros((1, 3)),
             y_test=np.zeros(1))  # fmt: skip
    with pytest.raises(DataError) as err:
        load_arrays(shapes)
    assert_names(err, shapes, "inconsistent shapes")
    other = tmp_path / "data.txt"
    other.write_text("1 2\n")
    with pytest.raises(DataError, match="unsupported"):
        load_arrays(other)


def test_csv_round_trip_with_split(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(
        "f1,split,f2,label\n"
        "0.5,train,1,0\n1.5,train,2,1\n2.5,test,3,1\n3.5,TRAIN,4,2\n4.5,test,5,0\n"
    )
    d = load_arrays(path)
    assert d.task == "classification" and d.classes == ["0", "1", "2"]
    assert d.x_train.tolist() == [[0.5, 1], [1.5, 2], [3.5, 4]] and d.y_train.tolist() == [0, 1, 2]
    assert d.x_test.shape == (2, 2) and d.y_test.tolist() == [1, 0]


def test_csv_regression_without_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.1
    path = tmp_path / "r.csv"
    lines = ["a,b,c,target"] + [",".join(f"{v:.10g}" for v in (*row, t)) for row, t in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")
    d = load_arrays(path)
    assert d.task == "regression" and d.classes is None
    assert len(d.x_train) == 40 and len(d.x_test) == 10 and d.y_train.dtype == np.float32
    tr, te = stratified_split(y, 0.2, seed=0)
    assert np.allclose(d.x_test, x[te], atol=1e-6) and np.allclose(d.y_train, y[tr], atol=1e-5)


def test_csv_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b,y\n1,2,0\n3,oops,1\n")
    with pytest.raises(DataError) as err:
        load_arrays(path)
    assert_names(err, path, "line 3", "'b'", "oops")
    path.write_text("a,b,y\n1,2,0\n3,1\n")
    with pytest.raises(DataError) as err:
        load_arrays(path)
    assert_names(err, path, "line 3")
    path.write_text("a,y,split\n1,0,train\n2,1,valid\n")
    with pytest.raises(DataError) as err:
        load_arrays(path)
    assert_names(err, path, "valid")
    path.write_text("a,y\n")
    with pytest.raises(DataError) as err:
        load_arrays(path)
    assert_names(err, path, "header")
    with pytest.raises(DataError, match="not found"):
        load_arrays(tmp_path / "absent.csv")


# --------------------------------------------------------------------------------------------
# splitting and standardizing
# --------------------------------------------------------------------------------------------


def test_stratified_split_deterministic_and_stratified() -> None:
    y = np.repeat(np.arange(4), [40, 30, 20, 10])
    np.random.default_rng(5).shuffle(y)
    tr, va = stratified_split(y, 0.25, seed=3)
    tr2, va2 = stratified_split(y, 0.25, seed=3)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert not np.array_equal(va, stratified_split(y, 0.25, seed=4)[1])
    assert tr.dtype == np.int64 and len(va) == 25
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(100))
    counts = np.bincount(y[va], minlength=4)
    assert np.all(np.abs(counts - np.array([40, 30, 20, 10]) * 0.25) < 1)  # 10, 7.5, 5, 2.5
    assert len(stratified_split(y, 0.0, seed=0)[1]) == 0


def test_stratified_split_float_targets_and_errors() -> None:
    y = np.linspace(0, 1, 30).astype(np.float32)
    tr, va = stratified_split(y, 0.3, seed=0)
    assert len(va) == 9 and len(tr) == 21 and not set(tr) & set(va)
    assert np.array_equal(va, stratified_split(y, 0.3, seed=0)[1])
    tr2, va2 = stratified_split(np.zeros((30, 2)), 0.3, seed=0)
    assert len(va2) == 9
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ConfigError, match="val_fraction"):
            stratified_split(y, bad, seed=0)


def test_standardizer_fitted_on_train_only() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, size=(200, 3)).astype(np.float32)
    train[:, 2] = 7.0  # constant column: std 0 -> 1
    test = rng.normal(10.0, 5.0, size=(50, 3)).astype(np.float32)
    s = Standardizer().fit(train)
    z = s.transform(train)
    assert z.dtype == np.float32
    assert np.allclose(z[:, :2].mean(0), 0, atol=1e-5) and np.allclose(
        z[:, :2].std(0), 1, atol=1e-4
    )
    assert np.allclose(z[:, 2], 0)
    zt = s.transform(test)  # uses the train statistics, not the test ones
    expected = (test - train.mean(0)) / np.where(train.std(0) > 0, train.std(0), 1)
    assert np.allclose(zt, expected, atol=1e-4)
    assert abs(float(zt[:, 0].mean())) > 1
    assert np.allclose(s.inverse_transform(zt), test, atol=1e-4)
    imgs = rng.uniform(size=(10, 3, 4, 4)).astype(np.float32)
    zi = Standardizer(axis=(0, 2, 3)).fit_transform(imgs)
    assert np.allclose(zi.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    with pytest.raises(RuntimeError):
        Standardizer().transform(train)


def test_scikit_learn_equivalents_differ_so_the_hand_written_ones_stay() -> None:
    """Why Standardizer / stratified_split are not scikit-learn's StandardScaler /
    train_test_split(stratify=...): on ordinary columns the scaler agrees bit for bit, but
    a near-constant column gets scale 1 from scikit-learn (its 'constant feature' rule) and
    its true tiny std here; and the split draws other examples for the same seed, which
    would change every registry task's validation split (and so its tuned learning rates)."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 6)) * rng.uniform(0.1, 100, 6) + rng.uniform(-1e3, 1e3, 6)
    x = x.astype(np.float32)
    ours = Standardizer().fit(x[:300]).transform(x)
    theirs = StandardScaler().fit(x[:300].astype(np.float64)).transform(x.astype(np.float64))
    assert np.array_equal(ours, theirs.astype(np.float32))  # ordinary data: identical
    near = np.array([[1e6], [1e6 + 1e-9], [1e6]])
    assert float(Standardizer().fit(near).std.ravel()[0]) == pytest.approx(np.std(near))
    assert StandardScaler().fit(near).scale_[0] == 1.0  # scikit-learn: treated as constant
    y = np.repeat(np.arange(3), 50)
    ours_va = stratified_split(y, 0.2, seed=0)[1]
    theirs_va = train_test_split(np.arange(150), test_size=0.2, stratify=y, random_state=0)[1]
    assert len(ours_va) == len(theirs_va) == 30
    assert set(ours_va) != set(theirs_va)  # another split for the same seed


# --------------------------------------------------------------------------------------------
# generated / bundled sets
# --------------------------------------------------------------------------------------------


def test_load_mnist1d_and_cache(_private_cache: Path) -> None:
    random.seed(123)
    np.random.seed(123)
    expected_next = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(123)
    d = load_mnist1d()
    assert (random.random(), np.random.random()) == expected_next  # global RNGs untouched
    assert d.x_train.shape == (4000, 40) and d.x_test.shape == (1000, 40)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert set(np.unique(d.y_train).tolist()) == set(range(10)) and d.classes == list("0123456789")
    cache = _private_cache / "mnist1d-v1-seed42.npz"
    assert cache.is_file()
    again = load_mnist1d()
    assert "cached in" in again.source and np.array_equal(again.x_test, d.x_test)
    cache.write_bytes(b"corrupt")
    rebuilt = load_mnist1d()
    assert "cached in" not in rebuilt.source and np.array_equal(rebuilt.y_train, d.y_train)


@pytest.mark.parametrize(
    ("name", "x_shape", "n_classes"),
    [
        ("digits", (1, 8, 8), 10),
        ("iris", (4,), 3),
        ("wine", (13,), 3),
        ("breast_cancer", (30,), 2),
        ("diabetes", (10,), None),
    ],
)
def test_load_sklearn(name: str, x_shape: tuple[int, ...], n_classes: int | None) -> None:
    d = load_sklearn(name)
    n = len(d.x_train) + len(d.x_test)
    assert d.input_shape == x_shape and d.x_train.dtype == np.float32
    assert len(d.x_test) == round(0.2 * n)
    assert d.num_classes == n_classes
    if n_classes is None:
        assert d.y_train.dtype == np.float32 and d.task == "regression"
    else:
        assert d.y_train.dtype == np.int64
        full = np.bincount(np.concatenate([d.y_train, d.y_test]))
        assert np.all(np.abs(np.bincount(d.y_test, minlength=n_classes) - 0.2 * full) < 1)
    again = load_sklearn(name)
    assert np.array_equal(again.x_test, d.x_test)
    if name == "digits":
        assert d.x_train.max() == 1.0 and d.x_train.min() == 0.0


def test_load_sklearn_unknown() -> None:
    with pytest.raises(DataError, match="iris"):
        load_sklearn("mnist")


# --------------------------------------------------------------------------------------------
# misc
# --------------------------------------------------------------------------------------------


def test_sha256_file(tmp_path: Path) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    assert sha256_file(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with pytest.raises(DataError) as err:
        sha256_file(tmp_path / "missing")
    assert_names(err, tmp_path / "missing", "not found")


def test_array_data_checks_lengths() -> None:
    with pytest.raises(DataError, match="toy: train partition has 3 inputs but 2 targets"):
        ArrayData(np.zeros((3, 2)), np.zeros(2), np.zeros((1, 2)), np.zeros(1), None, "toy")
    with pytest.raises(DataError, match="toy"):
        ArrayData(np.zeros((3, 2)), np.zeros(3), np.zeros((1, 4)), np.zeros(1), None, "toy")


def test_cache_unwritable_warns_but_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file_not_dir"
    blocker.write_text("x")
    monkeypatch.setenv("METALOSS_CACHE_DIR", str(blocker / "sub"))
    z = write_zip(tmp_path / "c.zip", image_tree())
    with pytest.warns(RuntimeWarning, match="cache"):
        d = load_image_folder(z)
    assert len(d.y_train) == 4
    assert ds.cache_dir() == blocker / "sub"


def test_no_pickle_in_module() -> None:
    import metaloss.tasks.data as data_pkg

    files = [Path(ds.__file__), *Path(data_pkg.__file__).parent.glob("*.py")]
    assert len(files) > 5
    for f in files:
        source = f.read_text()
        assert "import pickle" not in source and "allow_pickle=True" not in source, f
