"""The command line: exit codes, one-line errors, artifacts usable by train/evaluate/show.

The commands run in process (:func:`helpers.cli.run_cli`: the console script's
:func:`metaloss.cli.main` inside typer's ``CliRunner`` isolation); the last tests start real
processes for what only a process shows: the console script's exit status and its output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import run_cli as cli

from metaloss import rundir
from metaloss.io import save_loss
from metaloss.losses.taylor import TaylorLoss
from metaloss.meta.configs import config_class

ROOT = Path(__file__).resolve().parents[2]


def test_tasks_lists_registry():
    out = cli("tasks", "--json")
    assert out.returncode == 0
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert {"digits-mlp", "mnist-lenet5", "cifar10-resnet18", "uci-mlp", "sine"} <= set(rows)
    # which defaults are fair CE baselines (docs/benchmarks.md, "Fair task defaults")
    assert (rows["mnist-lenet5"]["lr"], rows["mnist-lenet5"]["lr_status"]) == ("0.08", "tuned")
    assert rows["iris-linear"]["lr_status"] == "tie, kept"
    assert rows["fashion-lenet5"]["lr_status"] == rows["cifar10-lenet5"]["lr_status"] == "not tuned"
    assert rows["diabetes-mlp"]["lr"] == "0.000625"


def test_train_json(tmp_path):
    out = cli("train", "--task", "iris-linear", "--loss", "ce", "--steps", "100", "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["metric"] == "error" and 0 <= res["test_metric"] <= 1


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--task", "nope"], "unknown task"),
        (["train", "--task", "iris-linear", "--loss", "no_such_loss"], "neither a baseline"),
        (["train", "--task", "iris-linear", "--steps", "-3"], "steps"),
        (["train", "--task", "mnist-lenet5", "--data-dir", "/nonexistent/dir"], "/nonexistent"),
        (["evaluate", "ce", "--task", "iris-linear", "--seeds", "0"], "--seeds"),
        (["show", "/nonexistent/run"], "no such run"),
        (["learn", "nomethod"], "unknown method"),
        (["learn", "taylorglo", "--task", "iris-linear", "--set", "popsize"], "key=value"),
        (["learn", "ml3", "-t", "rl-mountaincar-paper", "-s", "subgoal_steps=99"], "subgoal_steps"),
    ],
)
def test_user_errors_are_one_line(args, needle):
    out = cli(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert needle in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 3  # rich may wrap one long line


def test_learn_train_evaluate_show_round_trip(tmp_path):
    run = tmp_path / "run"
    out = cli(
        "learn", "taylorglo", "--task", "iris-linear", "--out", str(run),
        "--set", "generations=2", "--set", "popsize=4", "--set", "fitness_steps=20",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (run / rundir.SPEC).exists() and (run / rundir.WEIGHTS).exists()
    out = cli("train", "--task", "iris-linear", "--loss", str(run), "--steps", "50", "--json")
    assert out.returncode == 0, out.stderr
    out = cli("evaluate", "ce", str(run), "--task", "iris-linear", "--seeds", "2", "--steps", "50")
    assert out.returncode == 0 and "ce" in out.stdout, out.stderr
    out = cli("show", str(run))
    assert out.returncode == 0 and (run / rundir.PLOT).exists(), out.stderr
    # learning into a directory that holds a finished run needs --force
    out = cli("learn", "ml3", "--task", "iris-linear", "--set", "meta_steps=3", "-o", str(run))
    assert out.returncode == 2 and "--force" in out.stderr


def test_learn_and_show_rl_loss(tmp_path):
    run = tmp_path / "mc"
    args = ["-s", "meta_steps=3", "-s", "loss_hidden=[8,8]", "-s", "variant=plain"]
    out = cli("learn", "ml3", "-t", "rl-mountaincar-paper", "-o", str(run), *args)
    assert out.returncode == 0, out.stderr
    out = cli("show", str(run))
    assert out.returncode == 0 and "rl-mountaincar-paper" in out.stdout, out.stderr
    assert "variant plain" in out.stdout and "per-step MLP 4-8-8-1" in out.stdout


def test_corrupt_artifact_is_a_clear_error(tmp_path):
    save_loss(tmp_path, TaylorLoss())
    (tmp_path / rundir.WEIGHTS).write_bytes(b"\x00" * 10)
    out = cli("train", "--task", "iris-linear", "--loss", str(tmp_path), "--steps", "5")
    assert out.returncode == 2 and rundir.WEIGHTS in out.stderr


def test_demo_quick(tmp_path):
    out = cli("demo", "--quick", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "cross_entropy" in out.stdout and (tmp_path / "runs/demo/spec.json").exists()


def test_learn_method_help_lists_its_config_and_unknown_keys_are_refused(tmp_path):
    out = cli("learn", "ml3", "--help")
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if "│ meta_steps " in line)
    assert "│ 250 " in row  # ML3MethodConfig's default, from the config
    out = cli("learn", "taylorglo", "-t", "iris-linear", "-o", str(tmp_path / "r"),
              "--set", "genertions=2")  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: taylorglo: unknown option 'genertions' (did you mean 'generations'?); "
        f"valid: {', '.join(config_class('taylorglo').option_names())}"
    )


# --------------------------------------------------------------------------------------------
# Real processes: what only the console script shows
# --------------------------------------------------------------------------------------------


def _script() -> list[str]:
    """The installed ``metaloss`` console script (else ``python -m metaloss.cli``)."""
    script = Path(sys.executable).parent / "metaloss"
    return [str(script)] if script.exists() else [sys.executable, "-m", "metaloss.cli"]


def _process(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run([*_script(), *args], capture_output=True, text=True, env=env, timeout=300)


def test_console_script_exit_status_and_one_line_error():
    out = _process("train", "--task", "iris-linear", "--loss", "no_such_loss")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("error: ") and "neither a baseline" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_debug_shows_the_traceback_instead():
    from metaloss.errors import ConfigError

    with pytest.raises(ConfigError, match="neither a baseline"):
        cli("train", "--task", "iris-linear", "--loss", "no_such_loss", "--debug")


def test_force_removes_every_run_file_and_keeps_others(tmp_path):
    from metaloss.cli import _prepare_out
    from metaloss.errors import ConfigError

    out = tmp_path / "run"
    out.mkdir()
    names = [*rundir.RUN_FILES, rundir.checkpoint_tensors("ab" * 32), "notes.txt"]
    for name in names:
        (out / name).write_text("x")
    with pytest.raises(ConfigError, match="--force"):
        _prepare_out(out, resume=False, force=False)
    assert _prepare_out(out, resume=False, force=True) is False
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
