"""Shared fixtures: the real data sets beside the repo, small tasks, deterministic torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
os.environ.setdefault("METALOSS_DATA_DIR", str(DATA))


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not DATA.exists():
        pytest.skip(f"real data sets not found at {DATA}")
    return DATA


@pytest.fixture(scope="session")
def iris():
    from metaloss import tasks

    return tasks.get("iris-linear")


@pytest.fixture(scope="session")
def digits():
    from metaloss import tasks

    return tasks.get("digits-mlp")
