"""Your own data and model: tasks.from_arrays / from_file / from_folder, NPZ X,y, Task repr."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import metaloss as ml
from metaloss.errors import ConfigError, DataError
from metaloss.tasks import datasets as ds


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALOSS_CACHE_DIR", str(tmp_path / "cache"))


def blobs(n_per_class=(100, 60, 40), dim=4, seed=0):
    """Three well-separated Gaussian blobs (class k centred at 4k on every feature)."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(4 * k, 1, size=(n, dim)) for k, n in enumerate(n_per_class)])
    y = np.repeat(np.arange(len(n_per_class)), n_per_class)
    return x.astype(np.float32), y


def test_from_arrays_classification_split_stratified_and_standardised(capsys):
    x, y = blobs()
    task = ml.tasks.from_arrays(x, y + 10, model="linear")  # labels 10, 11, 12
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0
    assert "classification" in line and "3 classes [10, 11, 12]" in line
    assert "train 144 / val 16 / test 40" in line
    assert task.kind == "classification" and task.num_outputs == 3
    # 20 % of each class in the test split (hand-computed: 100, 60, 40 -> 20, 12, 8)
    assert torch.bincount(task.test.y).tolist() == [20, 12, 8]
    assert torch.bincount(task.val.y).tolist() == [8, 5, 3]
    # standardised with training statistics: train mean 0, std 1 per feature
    assert torch.allclose(task.train.x.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(task.train.x.std(0, unbiased=False), torch.ones(4), atol=1e-4)
    # the same split and scaling as the registry's build_task on the same arrays
    tr, te = ds.stratified_split(y, 0.2, seed=0)
    data = ds.ArrayData(x[tr], y[tr], x[te], y[te], ["10", "11", "12"], "same")
    ref = ml.tasks.build_task(ml.tasks.TaskSpec("ref", "x", "linear", ""), data)
    assert torch.equal(ref.test.x, task.test.x) and torch.equal(ref.train.y, task.train.y)


def test_from_arrays_trains_to_low_error():
    x, y = blobs()
    task = ml.tasks.from_arrays(x, y, model="mlp", verbose=False)
    result = ml.train(task, ml.losses.get_loss("cross_entropy"), steps=150, seed=0)
    assert result.test_metric < 0.05  # the blobs are separable; chance is 0.5


def test_from_arrays_regression_inferred_from_float_target(capsys):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) * 3 + 7).astype(np.float32)
    task = ml.tasks.from_arrays(x, y, model="linear")
    assert "regression, 1 target" in capsys.readouterr().out
    assert task.kind == "regression" and task.num_outputs == 1 and task.test.y.dim() == 1
    tr, _ = ds.stratified_split(y, 0.2, seed=0)
    tr2, _ = ds.stratified_split(y[tr], 0.1, seed=0)
    assert task.target_scale == pytest.approx(float(y[tr][tr2].std()), rel=1e-5)
    assert task.train.y.mean().abs() < 1e-5


def test_from_arrays_kind_override_strings_and_tensors():
    x, y = blobs((30, 30))
    reg = ml.tasks.from_arrays(torch.as_tensor(x), torch.as_tensor(y), kind="regression",
                               verbose=False)  # fmt: skip
    assert reg.kind == "regression"
    names = np.array(["dog", "cat"])[y]
    cls = ml.tasks.from_arrays(x, names, verbose=False)
    assert cls.kind == "classification" and cls.num_outputs == 2
    # sorted class names: cat -> 0, dog -> 1
    assert (cls.test.y == 1).sum().item() == int(round(30 * 0.2))
    fl = ml.tasks.from_arrays(x, y.astype(np.float32), kind="classification", verbose=False)
    assert fl.kind == "classification"


def test_from_arrays_custom_models():
    x, y = blobs()
    zero_arg = ml.tasks.from_arrays(x, y, model=lambda: nn.Linear(4, 3), verbose=False)
    assert zero_arg.model_name == "Linear" and isinstance(zero_arg.make_model(0), nn.Linear)

    def two_arg(in_shape, num_outputs):
        return nn.Sequential(nn.Linear(in_shape[0], 8), nn.ReLU(), nn.Linear(8, num_outputs))

    task = ml.tasks.from_arrays(x, y, model=two_arg, verbose=False)
    assert task.make_model(0)(task.test.x).shape == (40, 3)
    # the same seed gives the same initial weights
    a, b = task.make_model(3), task.make_model(3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"model": lambda: nn.Linear(4, 5)}, ConfigError, "expected (2, 3)"),
        ({"model": lambda: nn.Linear(7, 3)}, ConfigError, "fails on a batch"),
        ({"model": "nope"}, ConfigError, "unknown model-zoo name"),
        ({"model": lambda a, b, c: None}, ConfigError, "takes 3"),
        ({"kind": "clustering"}, ConfigError, "kind"),
        ({"test_fraction": 1.5}, ConfigError, "test_fraction"),
        ({"model": lambda: nn.Linear(4, 3), "model_kwargs": {"hidden": (5,)}}, ConfigError,
         "model_kwargs"),
    ],
)  # fmt: skip
def test_from_arrays_errors_name_the_field(kwargs, error, words):
    x, y = blobs()
    with pytest.raises(error, match=re.escape(words)):
        ml.tasks.from_arrays(x, y, verbose=False, **kwargs)


def test_from_arrays_data_errors():
    x, y = blobs()
    with pytest.raises(DataError, match="rows"):
        ml.tasks.from_arrays(x, y[:-1], verbose=False)
    with pytest.raises(DataError, match="2-D"):
        ml.tasks.from_arrays(x[:, 0], y, verbose=False)
    with pytest.raises(DataError, match="single class"):
        ml.tasks.from_arrays(x, np.zeros(len(x), int), verbose=False)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        ml.tasks.from_arrays(bad, y, verbose=False)


def test_npz_with_x_y_splits_like_csv(tmp_path, capsys):
    x, y = blobs()
    for keys in (("X", "y"), ("x", "y")):
        path = tmp_path / f"{keys[0]}.npz"
        np.savez(path, **{keys[0]: x, keys[1]: y})
        d = ds.load_arrays(path)
        tr, te = ds.stratified_split(y, 0.2, seed=0)
        assert np.array_equal(d.x_test, x[te]) and np.array_equal(d.y_train, y[tr])
        assert d.classes == ["0", "1", "2"] and "80/20" in d.source
    task = ml.tasks.from_file(tmp_path / "X.npz", model="linear")
    out = capsys.readouterr().out
    assert "X: classification, 3 classes" in out and "test 40" in out
    assert len(task.test) == 40


def test_from_file_csv_names_label_column(tmp_path, capsys):
    x, y = blobs((20, 20), dim=2)
    rows = ["a,b,species"] + [f"{p:.6f},{q:.6f},{int(t)}" for (p, q), t in zip(x, y)]
    (tmp_path / "plants.csv").write_text("\n".join(rows) + "\n")
    task = ml.tasks.from_file(tmp_path / "plants.csv", model="linear")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "label column 'species'" in out
    assert task.name == "plants" and task.num_outputs == 2 and len(task.test) == 8


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), value).save(buf, format="PNG")
    return buf.getvalue()


def test_from_folder(tmp_path, capsys):
    root = tmp_path / "shapes"
    for split, n in (("train", 10), ("test", 3)):
        for cls, value in (("dark", 20), ("light", 230)):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f"{i}.png").write_bytes(_png(value + i))
    task = ml.tasks.from_folder(root, model="linear")
    out = capsys.readouterr().out
    assert "shapes: classification, 2 classes [dark, light]" in out
    assert "train 18 / val 2 / test 6" in out
    assert task.in_shape == (1, 8, 8)
    assert torch.bincount(task.test.y).tolist() == [3, 3]


def test_task_repr_is_short():
    x, y = blobs()
    task = ml.tasks.from_arrays(x, y, model="linear", name="blobs", verbose=False)
    assert repr(task) == (
        "Task('blobs', classification, 3 classes, train 144 / val 16 / test 40, model linear)"
    )
    assert "tensor" not in str(ml.tasks.get("diabetes-mlp"))
