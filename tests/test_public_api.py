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


def test_configs_and_presets_are_reachable_from_the_top_level():
    import importlib

    from metaloss import api

    configs = importlib.import_module("metaloss.meta.configs")
    assert ml.configs is configs and {"configs", "config_class"} <= set(dir(ml))
    assert sorted(ml.configs.CONFIGS) == sorted(api.METHODS)  # every method has its config
    assert ml.config_class("ce-step") is configs.CEStepConfig
    for method, cls in ml.configs.CONFIGS.items():
        assert ml.config_class(method) is cls
        for name in cls.PRESETS:  # each preset is the defaults with its options changed
            preset = cls.preset(name)
            assert isinstance(preset, cls) and preset == cls(**cls.PRESETS[name])
            for key, value in cls.PRESETS[name].items():
                assert getattr(preset, key) == (tuple(value) if isinstance(value, list) else value)
    assert ml.configs.ML3MethodConfig.preset("paper").meta_steps == 500  # the ML3 reference
    assert ml.configs.ML3MethodConfig.default().meta_steps == 250
