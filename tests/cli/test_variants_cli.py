"""Task-variant options and the robust baselines on the command line (in process; the exit
status of a user error through the console script's entry point, :func:`metaloss.cli.main`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cli import run_cli
from typer.testing import CliRunner, Result

from metaloss.cli import app
from metaloss.errors import ConfigError


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_train_with_label_noise_names_the_variant() -> None:
    out = cli("train", "-t", "iris-linear", "--steps", "20", "--json", "--label-noise", "0.4",
              "--noise-kind", "pairflip", "--variant-seed", "2")  # fmt: skip
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["task"] == "iris-linear+noise0.4pair+vseed2"


def test_evaluate_robust_baselines_on_an_imbalanced_fraction() -> None:
    out = cli("evaluate", "ce", "mae", "gce", "sce", "poly1", "-t", "iris-linear",
              "--seeds", "1", "--steps", "20", "--json",
              "--imbalance", "2", "--train-fraction", "0.8")  # fmt: skip
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["task"] == "iris-linear+imb2+frac0.8"
    assert [r["name"] for r in report["rows"]] == ["ce", "mae", "gce", "sce", "poly1"]
    assert all(0 <= r["mean"] <= 1 for r in report["rows"])


def test_learn_with_a_variant_saves_under_the_variant_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = cli("learn", "taylorglo", "-t", "iris-linear", "--label-noise", "0.2",
              "-s", "generations=1", "-s", "popsize=2", "-s", "fitness_steps=5")  # fmt: skip
    assert out.exit_code == 0, out.output
    spec = json.loads((tmp_path / "runs/iris-linear+noise0.2sym-taylorglo/spec.json").read_text())
    assert spec["task"] == "iris-linear+noise0.2sym"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "-t", "iris-linear", "--noise-kind", "bogus", "--label-noise", "0.1"],
         "noise_kind"),
        (["train", "-t", "iris-linear", "--imbalance", "0.5"], "imbalance"),
        (["train", "-t", "iris-linear+noisy"], "not understood"),
        (["learn", "ml3", "-t", "rl-mountaincar", "--label-noise", "0.2"], "data task"),
    ],
)  # fmt: skip
def test_bad_variant_options_are_config_errors(args: list[str], needle: str) -> None:
    out = cli(*args)
    assert isinstance(out.exception, ConfigError) and needle in str(out.exception)


def test_bad_variant_option_exits_2_with_one_line() -> None:
    out = run_cli("train", "-t", "iris-linear", "--label-noise", "1")
    assert out.returncode == 2
    assert "label_noise must be in [0, 1)" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
