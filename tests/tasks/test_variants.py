"""Task variants: label-noise rates within binomial error, clean test labels, exact
imbalance profiles and fraction sizes, determinism, names that round-trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metaloss import tasks
from metaloss.errors import ConfigError
from metaloss.tasks.variants import (
    Variant,
    long_tail_counts,
    pairflip_noise,
    split_name,
    symmetric_noise,
)


def _within_binomial(hits: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    """|hits/n - p| within ``sigmas`` binomial standard errors."""
    return abs(hits / n - p) <= sigmas * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_symmetric_noise_rate_and_uniform_other_class(rate: float) -> None:
    k, n = 5, 50_000
    y = np.random.default_rng(1).integers(0, k, n)
    noisy = symmetric_noise(y, rate, k, np.random.default_rng(0))
    assert _within_binomial(int((noisy != y).sum()), n, rate)
    # Every off-diagonal transition has probability rate / (K - 1).
    for c in range(k):
        from_c = noisy[y == c]
        for d in range(k):
            if d != c:
                assert _within_binomial(int((from_c == d).sum()), len(from_c), rate / (k - 1))


def test_pairflip_noise_goes_to_the_next_class_only() -> None:
    k, n, rate = 4, 50_000, 0.3
    y = np.random.default_rng(1).integers(0, k, n)
    noisy = pairflip_noise(y, rate, k, np.random.default_rng(0))
    changed = noisy != y
    assert _within_binomial(int(changed.sum()), n, rate)
    assert np.array_equal(noisy[changed], (y[changed] + 1) % k)


@pytest.fixture(scope="module")
def clean() -> tasks.Task:
    return tasks.get("digits-mlp")


@pytest.mark.parametrize("kind", ["symmetric", "pairflip"])
def test_task_noise_on_train_and_val_only(clean: tasks.Task, kind: str) -> None:
    noisy = tasks.get("digits-mlp", label_noise=0.3, noise_kind=kind)
    assert torch.equal(noisy.test.y, clean.test.y) and torch.equal(noisy.test.x, clean.test.x)
    for part in ("train", "val"):
        a, b = getattr(clean, part), getattr(noisy, part)
        assert torch.equal(a.x, b.x)
        flipped = a.y != b.y
        assert _within_binomial(int(flipped.sum()), len(a), 0.3)
        if kind == "pairflip":
            assert torch.equal(b.y[flipped], (a.y[flipped] + 1) % 10)
    assert noisy.name == f"digits-mlp+noise0.3{'sym' if kind == 'symmetric' else 'pair'}"
    assert noisy.summary()["variant"]["noise_kind"] == kind


def test_variants_are_deterministic_and_seeded(clean: tasks.Task) -> None:
    opts = dict(label_noise=0.2, imbalance=10, train_fraction=0.5)
    a, b = tasks.get("digits-mlp", **opts), tasks.get("digits-mlp", **opts)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.y, b.train.y)
    assert torch.equal(a.val.y, b.val.y)
    c = tasks.get("digits-mlp", variant_seed=1, **opts)
    assert c.name.endswith("+vseed1") and not torch.equal(a.val.y, c.val.y)
    # The variant does not depend on torch's or numpy's global random state.
    torch.manual_seed(123)
    np.random.seed(123)
    assert torch.equal(tasks.get("digits-mlp", **opts).train.y, a.train.y)


def test_long_tail_counts_by_hand() -> None:
    assert long_tail_counts(500, 3, 100.0) == [500, 50, 5]
    assert long_tail_counts(5000, 10, 100.0) == [round(5000 * 100 ** (-k / 9)) for k in range(10)]
    assert long_tail_counts(5000, 10, 100.0)[-1] == 50
    assert long_tail_counts(40, 2, 4.0) == [40, 10]


@pytest.mark.parametrize("ratio", [10.0, 100.0])
def test_imbalance_profile_and_ratio_exact(clean: tasks.Task, ratio: float) -> None:
    lt = tasks.get("digits-mlp", imbalance=ratio)
    counts = torch.bincount(lt.train.y, minlength=10).tolist()
    n_max = int(torch.bincount(clean.train.y).min())
    assert counts == [round(n_max * ratio ** (-k / 9)) for k in range(10)]
    assert counts[0] == n_max and counts[-1] == round(n_max / ratio)
    assert counts[0] / counts[-1] == pytest.approx(ratio, rel=0.5 / counts[-1] + 1e-12)
    # A subset of the clean training rows, validation and test untouched.
    rows = {tuple(r) for r in clean.train.x.flatten(1).tolist()}
    assert all(tuple(r) in rows for r in lt.train.x.flatten(1).tolist())
    assert torch.equal(lt.val.y, clean.val.y) and torch.equal(lt.test.y, clean.test.y)


def test_imbalance_too_large_for_the_data() -> None:
    with pytest.raises(ConfigError, match="no training sample of class 9"):
        tasks.get("digits-mlp", imbalance=1000)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.37])
def test_train_fraction_size_exact_and_stratified(clean: tasks.Task, fraction: float) -> None:
    small = tasks.get("digits-mlp", train_fraction=fraction)
    assert len(small.train) == round(fraction * len(clean.train))
    full, part = torch.bincount(clean.train.y), torch.bincount(small.train.y, minlength=10)
    assert ((part - fraction * full).abs() <= 1).all()
    assert len(small.val) == len(clean.val) and torch.equal(small.test.y, clean.test.y)


def test_train_fraction_on_regression_and_noise_refused() -> None:
    reg = tasks.get("diabetes-mlp")
    small = tasks.get("diabetes-mlp+frac0.25")
    assert len(small.train) == round(0.25 * len(reg.train)) and small.kind == "regression"
    with pytest.raises(ConfigError, match="regression task"):
        tasks.get("diabetes-mlp", label_noise=0.2)


def test_names_round_trip_and_options_override() -> None:
    v = Variant(label_noise=0.4, noise_kind="pair", imbalance=100, train_fraction=0.1, seed=2)
    assert v.noise_kind == "pairflip"
    assert v.suffix() == "+noise0.4pair+imb100+frac0.1+vseed2"
    assert split_name("mnist-mlp" + v.suffix()) == ("mnist-mlp", v)
    assert Variant().suffix() == "" and not Variant().active
    by_name = tasks.get("iris-linear+noise0.2sym")
    by_option = tasks.get("iris-linear", label_noise=0.2)
    assert by_name.name == by_option.name and torch.equal(by_name.train.y, by_option.train.y)
    assert tasks.get("iris-linear+noise0.2sym", label_noise=0.1).name == "iris-linear+noise0.1sym"
    assert tasks.get("iris-linear").variant is None
    with pytest.raises(ConfigError, match="already has a variant"):
        Variant(imbalance=2).apply(by_name)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(label_noise=1.0), "label_noise"),
        (dict(label_noise=-0.1), "label_noise"),
        (dict(noise_kind="asymmetric"), "noise_kind"),
        (dict(imbalance=0.5), "imbalance"),
        (dict(train_fraction=0.0), "train_fraction"),
        (dict(train_fraction=1.5), "train_fraction"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_variants_are_config_errors(bad: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Variant(**bad)


def test_numpy_numbers_are_accepted() -> None:
    v = Variant(label_noise=np.float32(0.25), imbalance=np.int64(10), seed=np.int64(3))
    assert v.suffix() == "+noise0.25sym+imb10+vseed3" and type(v.seed) is int


def test_bad_variant_names() -> None:
    with pytest.raises(ConfigError, match="not understood"):
        tasks.get("iris-linear+noisy")
    with pytest.raises(ConfigError, match="given twice"):
        tasks.get("iris-linear+imb10+imb20")


def test_variant_tasks_rebuild_from_their_name() -> None:
    """Ray workers rebuild a task from its name (checked by fingerprint); reports read its
    number of classes from the registry."""
    from metaloss.evaluators import TrainFitness
    from metaloss.evaluators.ray import FitnessSpec
    from metaloss.report import _task_shape

    task = tasks.get("iris-linear", label_noise=0.3, variant_seed=4)
    spec = FitnessSpec.from_fitness(TrainFitness(task, steps=5))
    assert spec.task == "iris-linear+noise0.3sym+vseed4"
    assert torch.equal(spec.build_task().train.y, task.train.y)  # fingerprint checked too
    assert _task_shape({"task": task.name}) == (True, 3)
