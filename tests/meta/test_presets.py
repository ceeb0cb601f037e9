"""The ``paper`` preset of every paper method: what it sets, that a run records it, and that
the GP searches run the reference's operators under it."""

from __future__ import annotations

import json

import pytest
import torch

import metaloss as ml
from metaloss.errors import ConfigError
from metaloss.meta.configs import CONFIGS, config_class

PAPER_METHODS = ["adalfl", "evomal", "gplfl", "ml3", "mln", "taylorglo"]

# tiny budgets on top of the paper preset: the settings that matter stay the paper's
TINY = {
    "ml3": {"meta_steps": 3},
    "adalfl": {"init_steps": 3, "steps": 10},
    "taylorglo": {"generations": 2, "popsize": 4, "fitness_steps": 10},
    "mln": {
        "generations": 2,
        "popsize": 4,
        "tasks_per_eval": 1,
        "train_steps": 10,
        "eval_tasks": 1,
        "n_train": 60,
        "n_val": 30,
    },  # fmt: skip
    # random trees only; at iris's lr 0.05 the reference filter passes 2 in 30 of them,
    # at 0.5 about 8 in 30: a population of 16 at filter_lr 0.5 finds a loss
    "evomal": {
        "population": 16,
        "generations": 1,
        "fitness_steps": 10,
        "local_steps": 2,
        "filter_lr": 0.5,
    },  # fmt: skip
    "gplfl": {"population": 16, "generations": 1, "fitness_steps": 10, "filter_lr": 0.5},
}


def test_every_paper_method_has_a_paper_preset_and_the_control_has_none():
    assert sorted(m for m, c in CONFIGS.items() if "paper" in c.PRESETS) == PAPER_METHODS
    with pytest.raises(ConfigError, match="unknown preset 'paper'"):
        config_class("ce-step").preset("paper")


def test_paper_presets_set_the_references_choices():
    ml3 = config_class("ml3").preset("paper")
    assert (ml3.init, ml3.hidden, ml3.bias, ml3.query, ml3.meta_steps) == (
        "xavier", (50, 50), False, "same", 500)  # fmt: skip
    assert config_class("adalfl").preset("paper").residual_ce == 0.0
    assert config_class("adalfl").default().residual_ce == 1.0  # ours keeps the residual
    for method in ("evomal", "gplfl"):
        gp = config_class(method).preset("paper")
        assert (gp.variation, gp.parsimony, gp.fitness_first, gp.mutation_method) == (
            "or", 1.0, False, "half")  # fmt: skip
        assert (gp.root_weight, gp.elitism, gp.seed_trees, gp.reject_target_log) == (
            False, 0, None, False)  # fmt: skip
        ours = config_class(method).default()
        assert (ours.variation, ours.root_weight, ours.reject_target_log) == ("and", True, True)


@pytest.mark.parametrize("method", PAPER_METHODS)
def test_a_paper_run_records_its_preset_in_spec_json(method, tmp_path):
    torch.set_num_threads(1)
    task = None if method == "mln" else "iris-linear"
    res = ml.learn(method, task, preset="paper", seed=0, progress=False, **TINY[method])
    assert res.info["preset"] == "paper"
    assert res.info["overrides"] == sorted(TINY[method])
    paper = config_class(method).preset("paper").to_dict()
    for key, value in res.config.items():  # every option not overridden is the paper's
        if key in paper and key not in TINY[method] and paper[key] is not None:
            assert value == paper[key], key
    res.save(tmp_path / "run")
    spec = json.loads((tmp_path / "run" / "spec.json").read_text())
    assert spec["info"]["preset"] == "paper"


def test_preset_and_config_together_are_refused():
    with pytest.raises(ConfigError, match="a config or a preset, not both"):
        ml.learn("taylorglo", "iris-linear", config_class("taylorglo").fast(), preset="paper")
    with pytest.raises(ConfigError, match="unknown preset 'papr'"):
        ml.learn("taylorglo", "iris-linear", preset="papr")


def test_default_and_custom_runs_say_so():
    fast = config_class("taylorglo").fast()
    res = ml.learn("taylorglo", "iris-linear", fast, progress=False)
    assert res.info["preset"] == "custom"


def test_cli_paper_preset_is_recorded(tmp_path):
    from helpers.cli import run_cli

    out = tmp_path / "run"
    args = ["--threads", "1", "learn", "gplfl", "--task", "iris-linear", "--preset", "paper",
            "--no-sanity", "-o", str(out), "--set", "population=16", "--set", "generations=1",
            "--set", "fitness_steps=5", "--set", "filter_lr=0.5"]  # fmt: skip
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr[-2000:]
    spec = json.loads((out / "spec.json").read_text())
    assert spec["info"]["preset"] == "paper" and spec["config"]["variation"] == "or"


def _doc_rows():
    """docs/presets.md: per ``## method`` section, ``{option: (default, paper)}``."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "presets.md").read_text()
    sections: dict[str, dict[str, tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), {})
        elif current is not None and line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            current[cells[0].strip("`")] = (cells[1], cells[2])
            assert len(cells) == 4 and cells[3], f"{line!r}: a row needs its reason"
    return sections


def test_presets_doc_lists_exactly_the_differences():
    """The page names exactly the options preset_differences finds, with their values, for
    every method with a paper preset; ce-step is there, saying it has none."""
    from metaloss.meta.config import _text
    from metaloss.meta.configs import preset_differences

    sections = _doc_rows()
    assert set(sections) == {*PAPER_METHODS, "ce-step"}
    assert sections["ce-step"] == {}
    for method in PAPER_METHODS:
        expected = {k: (_text(a), _text(b)) for k, a, b in preset_differences(method)}
        assert sections[method] == expected, method


def test_preset_differences_against_the_configs():
    from metaloss.meta.configs import preset_differences

    # hand-checked: ML3's paper preset changes the budget, the query batch and the init
    assert preset_differences("ml3") == [
        ("meta_steps", 250, 500),
        ("query", "next", "same"),
        ("init", "torch", "xavier"),
    ]
    # early stopping is off in both since it cost LeNet-5 test error: no difference left
    assert preset_differences("taylorglo") == []
    assert preset_differences("mln", "default", "default") == []
    assert preset_differences("taylorglo", "default", "fast") == [
        ("generations", 50, 2), ("popsize", 25, 4), ("fitness_steps", 500, 20)]  # fmt: skip
    with pytest.raises(ConfigError, match="unknown preset 'paper'"):
        preset_differences("ce-step")
