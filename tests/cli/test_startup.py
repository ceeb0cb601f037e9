"""Start-up cost: the CLI module and ``--help`` import no heavy library; the bundled
scikit-learn sets are read from a cache so that ``metaloss train -t iris-linear`` does not
import scikit-learn (seconds) after its first run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("sympy", "matplotlib", "scipy", "ray", "sklearn", "torch")


def _run(code: str, **env: str) -> str:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_importing_the_cli_imports_no_heavy_library():
    code = f"import sys, metaloss.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    assert _run(code) == "[]"


def test_help_of_every_command_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from metaloss.cli import app\n"
        "for args in (['--help'], ['train', '--help'], ['learn', '--help'], ['tasks', '--help']):\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    assert r.exit_code == 0 and 'Usage' in r.output, (args, r.output)\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    assert _run(code) == "[]"


@pytest.mark.parametrize("name", ["digits", "iris", "diabetes"])
def test_bundled_sets_are_cached_and_read_without_sklearn(name, tmp_path, monkeypatch):
    from metaloss.tasks.datasets import _sklearn_arrays, load_sklearn

    monkeypatch.setenv("METALOSS_CACHE_DIR", str(tmp_path))
    fresh = _sklearn_arrays(name, cache=False)  # straight from scikit-learn
    first = load_sklearn(name)  # fills the cache
    assert len(list(tmp_path.glob(f"sklearn-{name}-*.npz"))) == 1
    cached = _sklearn_arrays(name)
    assert set(cached) == set(fresh)
    for k in fresh:
        assert cached[k].dtype == fresh[k].dtype and np.array_equal(cached[k], fresh[k]), k
    code = (
        "import sys, json\n"
        "from metaloss.tasks.datasets import load_sklearn\n"
        f"d = load_sklearn({name!r})\n"
        "print(json.dumps(['sklearn' in sys.modules, float(d.x_train.astype('float64').sum()),"
        " d.y_test.tolist(), d.classes]))"
    )
    imported, x_sum, y_test, classes = json.loads(_run(code, METALOSS_CACHE_DIR=str(tmp_path)))
    assert imported is False
    assert x_sum == float(first.x_train.astype("float64").sum())
    assert y_test == first.y_test.tolist() and classes == first.classes


def test_corrupt_sklearn_cache_is_rebuilt(tmp_path, monkeypatch):
    from metaloss.tasks.datasets import load_sklearn

    monkeypatch.setenv("METALOSS_CACHE_DIR", str(tmp_path))
    first = load_sklearn("wine")
    (cache,) = tmp_path.glob("sklearn-wine-*.npz")
    cache.write_bytes(b"not an npz")
    again = load_sklearn("wine")
    assert np.array_equal(again.x_train, first.x_train) and again.classes == first.classes
    assert np.load(cache)["x"].shape == (178, 13)  # rewritten
