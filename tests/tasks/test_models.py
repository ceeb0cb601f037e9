"""Tests of the model zoo in metaloss.tasks.models."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from metaloss.errors import ConfigError
from metaloss.tasks.models import MODELS, build_model, has_batchnorm, model_options

MNIST = (1, 28, 28)
CIFAR = (3, 32, 32)
SMALL = ("linear", "mlp", "lenet5")
CNNS = tuple(name for name in MODELS if name not in SMALL)
# Models with a ``norm`` option; the wrn16_8 / wrn28_10 aliases share ``wrn``'s code.
NORMED = tuple(n for n in MODELS if "norm" in model_options(n) and n not in ("wrn16_8", "wrn28_10"))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_forward_backward(model: nn.Module, in_shape: tuple[int, ...], num_outputs: int) -> None:
    x = torch.randn(2, *in_shape)
    y = model(x)
    assert y.shape == (2, num_outputs)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


def test_registry_has_required_models() -> None:
    required = {"linear", "mlp", "lenet5", "allcnnc", "vgg16", "resnet18", "preresnet"}
    assert required | {"wrn", "wrn16_8", "wrn28_10"} <= set(MODELS)


@pytest.mark.parametrize(
    ("name", "in_shape"),
    [
        (name, shape)
        for name in SMALL
        for shape in (MNIST, CIFAR, (8,))
        if len(shape) == 3 or name != "lenet5"
    ],
)
def test_small_models_forward_backward(name: str, in_shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    check_forward_backward(build_model(name, in_shape, 10), in_shape, 10)


@pytest.mark.parametrize("name", CNNS)
def test_cnns_forward_backward_cifar(name: str) -> None:
    torch.manual_seed(0)
    check_forward_backward(build_model(name, CIFAR, 10), CIFAR, 10)


@pytest.mark.parametrize("name", ["mlp", "lenet5", "resnet18", "wrn", "allcnnc"])
def test_num_outputs_regression_and_many_classes(name: str) -> None:
    shape = MNIST if name in SMALL else CIFAR
    for k in (1, 100):
        model = build_model(name, shape, k)
        assert model(torch.zeros(2, *shape)).shape == (2, k)


@pytest.mark.parametrize(
    ("name", "in_shape", "kwargs", "expected"),
    [
        # LeNet-5: 156 + 2,416 + 48,120 + 10,164 + 850 (one input channel).
        ("lenet5", (1, 32, 32), {}, 61_706),
        ("lenet5", MNIST, {}, 61_706),  # 28x28 is padded by 2, so the same network
        ("lenet5", CIFAR, {}, 62_006),
        ("linear", MNIST, {}, 7_850),
        ("mlp", MNIST, {"hidden": (100,)}, 79_510),
        ("allcnnc", CIFAR, {}, 1_369_738),
        ("resnet18", CIFAR, {}, 11_173_962),
        ("preresnet", CIFAR, {"depth": 20}, 272_282),
        ("wrn16_8", CIFAR, {}, 10_961_370),
        ("wrn28_10", CIFAR, {}, 36_479_194),
    ],
)
def test_parameter_counts(
    name: str, in_shape: tuple[int, ...], kwargs: dict, expected: int
) -> None:
    assert n_params(build_model(name, in_shape, 10, **kwargs)) == expected


def test_resnet18_close_to_reference_size() -> None:
    n = n_params(build_model("resnet18", CIFAR, 10))
    assert abs(n - 11.17e6) / 11.17e6 < 0.01


@pytest.mark.parametrize("name", list(MODELS))
def test_same_seed_same_init(name: str) -> None:
    shape = MNIST if name in SMALL else CIFAR
    torch.manual_seed(123)
    a = build_model(name, shape, 10)
    torch.manual_seed(123)
    b = build_model(name, shape, 10)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    torch.manual_seed(124)
    c = build_model(name, shape, 10)
    assert not all(torch.equal(sa[k], v) for k, v in c.state_dict().items())


def test_wrn_aliases_match_wrn() -> None:
    torch.manual_seed(0)
    a = build_model("wrn16_8", CIFAR, 10)
    torch.manual_seed(0)
    b = build_model("wrn", CIFAR, 10, depth=16, widen=8)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize("name", NORMED)
def test_norm_variants(name: str) -> None:
    default = build_model(name, CIFAR, 10)
    assert has_batchnorm(default) == (name != "allcnnc")  # All-CNN-C has no norm by default
    assert has_batchnorm(build_model(name, CIFAR, 10, norm="batch"))
    for norm in ("group", "none"):
        model = build_model(name, CIFAR, 10, norm=norm)
        assert not has_batchnorm(model)
        has_group = any(isinstance(m, nn.GroupNorm) for m in model.modules())
        assert has_group == (norm == "group")
    check_forward_backward(build_model(name, CIFAR, 10, norm="group"), CIFAR, 10)


def test_models_without_norm_have_no_batchnorm() -> None:
    for name in ("linear", "mlp", "lenet5", "alexnet", "squeezenet"):
        shape = MNIST if name in SMALL else CIFAR
        assert not has_batchnorm(build_model(name, shape, 10))


def test_mlp_options() -> None:
    model = build_model("mlp", (5,), 3, hidden=(7, 11), activation="tanh")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 7), (7, 11), (11, 3)]
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 2
    for act in ("relu", "sigmoid", "leaky_relu"):
        assert build_model("mlp", (5,), 3, activation=act)(torch.zeros(4, 5)).shape == (4, 3)
    assert n_params(build_model("mlp", (5,), 3, hidden=())) == n_params(
        build_model("linear", (5,), 3)
    )
    assert n_params(build_model("mlp", (5,), 3, hidden=4)) == 5 * 4 + 4 + 4 * 3 + 3


def test_dropout_options() -> None:
    assert not any(isinstance(m, nn.Dropout) for m in build_model("allcnnc", CIFAR, 10).modules())
    model = build_model("allcnnc", CIFAR, 10, dropout=True)
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 3
    wrn = build_model("wrn", CIFAR, 10, depth=10, widen=1, dropout=0.3)
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3 for m in wrn.modules())


def _vmap_matches(models: list[nn.Module], x: torch.Tensor) -> None:
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def call(p: dict, b: dict, inp: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (inp,))

    batched = vmap(call, in_dims=(0, 0, None))(params, buffers, x)
    expected = torch.stack([m(x) for m in models])
    assert batched.shape == expected.shape
    torch.testing.assert_close(batched, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "in_shape", "kwargs"),
    [
        ("mlp", MNIST, {"hidden": (32, 16)}),
        ("lenet5", MNIST, {}),
        ("lenet5", CIFAR, {}),
        ("preresnet", CIFAR, {"norm": "group"}),
    ],
)
def test_vmap_over_stacked_parameters(name: str, in_shape: tuple, kwargs: dict) -> None:
    torch.manual_seed(0)
    models = [build_model(name, in_shape, 10, **kwargs) for _ in range(3)]
    _vmap_matches(models, torch.randn(4, *in_shape))


def test_vmap_gradients_match() -> None:
    torch.manual_seed(0)
    models = [build_model("lenet5", MNIST, 10) for _ in range(2)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    x = torch.randn(4, *MNIST)

    def loss(p: dict, b: dict) -> torch.Tensor:
        return functional_call(base, (p, b), (x,)).square().mean()

    grads = vmap(torch.func.grad(loss))(params, buffers)
    for i, model in enumerate(models):
        model(x).square().mean().backward()
        for key, p in model.named_parameters():
            torch.testing.assert_close(grads[key][i], p.grad, rtol=1e-4, atol=1e-6)


def test_unknown_model() -> None:
    with pytest.raises(ConfigError) as info:
        build_model("resnet1000", CIFAR, 10)
    assert "resnet1000" in str(info.value) and "lenet5" in str(info.value)
    with pytest.raises(ConfigError):
        model_options("nope")


@pytest.mark.parametrize(
    ("name", "in_shape", "kwargs", "fragment"),
    [
        ("mlp", MNIST, {"width": 3}, "hidden"),  # unknown option: message lists the accepted
        ("linear", MNIST, {"hidden": (3,)}, "linear"),
        ("mlp", MNIST, {"activation": "gelu"}, "activation"),
        ("mlp", MNIST, {"hidden": (3, 0)}, "hidden"),
        ("mlp", MNIST, {"hidden": "100"}, "hidden"),
        ("resnet18", CIFAR, {"norm": "layer"}, "norm"),
        ("wrn", CIFAR, {"depth": 15}, "depth"),
        ("wrn", CIFAR, {"dropout": 1.5}, "dropout"),
        ("wrn28_10", CIFAR, {"depth": 16}, "wrn28_10"),
        ("preresnet", CIFAR, {"depth": 21}, "depth"),
        ("preresnet", CIFAR, {"block": "wide"}, "block"),
        ("pyramidnet", CIFAR, {"depth": 19}, "depth"),
        ("allcnnc", CIFAR, {"dropout": 0.5}, "dropout"),
        ("lenet5", (8,), {}, "lenet5"),
        ("resnet18", (3, 32), {}, "resnet18"),
        ("lenet5", (1, 8, 8), {}, "too small"),
        ("vgg16", MNIST, {}, "too small"),
        ("mlp", (), {}, "in_shape"),
        ("mlp", (0, 3), {}, "in_shape"),
    ],
)
def test_bad_configuration(name: str, in_shape: tuple, kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        build_model(name, in_shape, 10, **kwargs)


@pytest.mark.parametrize("num_outputs", [0, -1, 2.0, True])
def test_bad_num_outputs(num_outputs: object) -> None:
    with pytest.raises(ConfigError, match="num_outputs"):
        build_model("linear", (4,), num_outputs)  # type: ignore[arg-type]


def test_preresnet_bottleneck_and_pyramidnet_widths() -> None:
    model = build_model("preresnet", CIFAR, 10, depth=29, block="bottleneck")
    assert model.head.fc.in_features == 256
    check_forward_backward(model, CIFAR, 10)
    pyr = build_model("pyramidnet", CIFAR, 10, depth=20, alpha=48)
    assert pyr.head.fc.in_features == 16 + 48


def test_in_shape_accepts_torch_size_and_list() -> None:
    a = build_model("lenet5", torch.Size(MNIST), 10)
    b = build_model("lenet5", list(MNIST), 10)
    assert n_params(a) == n_params(b) == 61_706
