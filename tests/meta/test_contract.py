"""The contract of every registered method (api.METHODS), with its ``fast()`` preset on iris:
a LearnResult; save -> load gives the same loss; the same seed gives the same loss; an
unknown option is refused with a suggestion, in Python and on the command line; the CLI
help lists every option of the method's config with its default."""

from __future__ import annotations

import sys

import pytest
import torch

import metaloss as ml
from metaloss import api, io
from metaloss.errors import ConfigError
from metaloss.meta.configs import config_class
from metaloss.results import LearnResult

METHODS = sorted(api.METHODS)


def _learn(method: str, seed: int = 0) -> LearnResult:
    task = None if method == "mln" else "iris-linear"
    return ml.learn(method, task, config_class(method).fast(), seed=seed, progress=False)


def _outputs(loss: torch.nn.Module) -> torch.Tensor:
    """The loss on fixed random predictions and labels of iris's shape (3 classes)."""
    gen = torch.Generator().manual_seed(123)
    logits = torch.randn(32, 3, generator=gen) * 3
    labels = torch.randint(0, 3, (32,), generator=gen)
    with torch.no_grad():
        return loss(logits, labels).detach()


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[LearnResult, LearnResult]]:
    torch.set_num_threads(1)
    return {m: (_learn(m), _learn(m)) for m in METHODS}


@pytest.mark.slow  # 14 short runs: 6 s at load 5, 26 s under heavier load (2 cores)
@pytest.mark.parametrize("method", METHODS)
def test_fast_run_saves_loads_and_repeats(method, runs, tmp_path):
    first, again = runs[method]
    assert isinstance(first, LearnResult)
    out = _outputs(first.loss)
    assert out.numel() > 0 and torch.isfinite(out).all()
    first.save(tmp_path / "run")
    loaded = io.load(tmp_path / "run")
    assert torch.equal(_outputs(loaded), out)  # identical, not merely close
    assert torch.equal(_outputs(again.loss), out)  # same seed, same loss
    assert first.config == again.config


@pytest.mark.parametrize("method", METHODS)
def test_unknown_option_is_refused_with_a_suggestion(method):
    cls = config_class(method)
    name = cls.option_names()[0]
    with pytest.raises(ConfigError, match=rf"unknown option '{name[:-1]}' \(did you mean '{name}'"):
        ml.learn(method, "iris-linear", **{name[:-1]: 1})
    other = "taylorglo" if method == "ml3" else "ml3"
    with pytest.raises(ConfigError, match="config must be"):
        ml.learn(method, "iris-linear", config_class(other).fast())


def test_every_method_has_a_config_and_evaluators_are_names_or_factories():
    from metaloss.evaluators import SerialEvaluator
    from metaloss.meta.configs import CONFIGS

    assert set(CONFIGS) == set(api.METHODS)
    fast = config_class("taylorglo").fast().with_options(generations=1)
    by_name = ml.learn("taylorglo", "iris-linear", fast, evaluator="serial")
    by_factory = ml.learn("taylorglo", "iris-linear", fast, evaluator=SerialEvaluator)
    assert torch.equal(_outputs(by_name.loss), _outputs(by_factory.loss))
    with pytest.raises(ConfigError, match="ml3: no evaluator"):
        ml.learn("ml3", "iris-linear", evaluator="pool")
    with pytest.raises(ConfigError, match="init_depth"):
        config_class("evomal")(init_depth=(4, 2))


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``metaloss ARGS`` in-process (as the console script): (exit status, stdout, stderr)."""
    from metaloss import cli

    monkeypatch.setattr(sys, "argv", ["metaloss", *args])
    monkeypatch.setattr(cli.console, "width", 250)  # no folded table cells
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("method", METHODS)
def test_cli_help_lists_the_options_and_refuses_unknown_ones(method, tmp_path, monkeypatch, capsys):
    cls = config_class(method)
    code, out, err = _cli(monkeypatch, capsys, "learn", method, "--help")
    assert code == 0, err
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if "│" in line}
    for row in cls.describe():
        assert row["name"] in rows, row["name"]
        assert f"│ {row['default']} " in rows[row["name"]], rows[row["name"]]
    name = cls.option_names()[0]
    code, _, err = _cli(monkeypatch, capsys, "learn", method, "-t", "iris-linear", "-o",
                        str(tmp_path / "o"), "--set", f"{name[:-1]}=1")  # fmt: skip
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"did you mean '{name}'" in lines[0] and "valid: " in lines[0]
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_cli_learn_help_without_a_method_lists_the_methods(monkeypatch, capsys):
    code, out, _ = _cli(monkeypatch, capsys, "learn", "--help")
    assert code == 0 and "Usage" in out
    assert all(m in out for m in METHODS) and "METHOD --help" in out


def test_cli_does_not_turn_errors_inside_a_run_into_config_errors(monkeypatch, capsys, tmp_path):
    def broken(task, **kwargs):
        raise TypeError("a bug inside the method")

    monkeypatch.setattr("metaloss.api.method_fn", lambda name: broken)
    code, _, err = _cli(monkeypatch, capsys, "learn", "taylorglo", "-t", "iris-linear", "-o",
                        str(tmp_path / "o"), "--set", "generations=2")  # fmt: skip
    assert code == 1 and "internal error: TypeError: a bug inside the method" in err
