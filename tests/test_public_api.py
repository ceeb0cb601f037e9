"""The top-level namespace: dir(metaloss) lists the public API (tab completion)."""

from __future__ import annotations

import metaloss as ml


def test_dir_lists_the_public_api():
    names = dir(ml)
    assert "import_module" not in names and "Any" not in names
    assert {"train", "learn", "evaluate", "tasks", "set_threads", "load", "TrainConfig"} <= set(
        names
    )
    assert names == sorted(names)
    for name in ml.__all__:
        assert getattr(ml, name) is not None  # every listed name resolves
