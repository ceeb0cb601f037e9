"""``metaloss bench``: suites of methods x tasks x seeds, transfer and resume."""

from __future__ import annotations

import json

import pytest

from metaloss.suite import markdown, run_suite


def _count_tune_lr_calls(monkeypatch) -> list:
    """A list that grows by one at every ``metaloss.tuning.tune_lr`` call from now on."""
    import metaloss.tuning as tuning_mod

    calls, real = [], tuning_mod.tune_lr

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(tuning_mod, "tune_lr", spy)
    return calls


def _cells(path):
    return [json.loads(line) for line in (path / "cells.jsonl").read_text().splitlines()]


def test_transfer_learns_once_and_resumes(tmp_path):
    kw = dict(
        seeds=1,
        tasks=["iris-linear", "wine-linear"],
        methods=["ce", "ml3"],
        budget="quick",
        steps=60,
        learn_on="iris-linear",
        log=lambda *a: None,
    )
    summary = run_suite("quick", tmp_path, **kw)
    cells = {(c["task"], c["method"]): c for c in _cells(tmp_path)}
    assert len(cells) == 4
    iris, wine = cells["iris-linear", "ml3"], cells["wine-linear", "ml3"]
    assert iris["learned_on"] == wine["learned_on"] == "iris-linear"
    assert wine["meta_seconds"] == iris["meta_seconds"]  # the learned loss was reused
    assert set(summary["tasks"]) == {"iris-linear", "wine-linear"}

    # Interrupted after three cells: the resumed suite recomputes only the last one, identically.
    lines = (tmp_path / "cells.jsonl").read_text().splitlines()
    (tmp_path / "cells.jsonl").write_text("\n".join(lines[:3]) + "\n")
    run_suite("quick", tmp_path, **kw)
    again = _cells(tmp_path)
    assert len(again) == 4
    assert [c["test"] for c in again] == [json.loads(line)["test"] for line in lines]


def test_paper_preset_runs_the_papers_options_at_the_suites_budget(tmp_path, monkeypatch):
    import pytest

    import metaloss.suite as suite_mod
    from metaloss.errors import ConfigError
    from metaloss.suite import Suite, preset_budgets

    results = {}
    real = suite_mod._learn

    def spy(method, task, seed, options, progress=False):
        results[method] = res = real(method, task, seed, options, progress)
        return res

    monkeypatch.setattr(suite_mod, "_learn", spy)
    budgets = preset_budgets("fast")
    budgets["evomal"] = {**budgets["evomal"], "population": 8}  # the paper's filter rejects most
    tiny = Suite("tiny", tasks=["iris-linear"], methods=["ce", "evomal"], seeds=1, budgets=budgets)
    kw = dict(steps=20, tune=False, log=lambda *a: None)
    summary = run_suite(tiny, tmp_path, preset="paper", **kw)

    spec = json.loads((tmp_path / "suite.json").read_text())
    assert spec["preset"] == "paper"
    assert spec["preset_options"]["evomal"]["variation"] == "or"
    assert "population" not in spec["preset_options"]["evomal"]  # a budget: the suite's
    cells = {c["method"]: c for c in _cells(tmp_path)}
    assert cells["evomal"]["preset"] == "paper" and cells["ce"]["preset"] is None
    # used: the paper's operators at the suite's (fast) budget, not the paper's 25 x 50
    config = results["evomal"].config
    assert config["variation"] == "or" and config["mutation_method"] == "half"
    assert config["root_weight"] is False and config["seed_trees"] is None
    assert (config["population"], config["generations"]) == (8, 2)
    assert summary["tasks"]["iris-linear"]["rows"]["evomal"]["preset"] == "paper"
    assert "| evomal (paper) |" in (tmp_path / "table.md").read_text()
    # a merged table that already tags the method (bench/merge_tables.py FOLDER::@paper)
    rows = summary["tasks"]["iris-linear"]["rows"]
    rows["evomal@paper"] = rows.pop("evomal")
    assert "| evomal@paper |" in markdown(summary) and "(paper)" not in markdown(summary)
    # resuming the folder under another preset would mix the two: refused
    with pytest.raises(ConfigError, match="preset paper"):
        run_suite(tiny, tmp_path, preset="default", **kw)


def test_default_preset_leaves_the_suite_budget_alone():
    from metaloss.suite import QUICK_BUDGETS, _budget, preset_method_options

    assert (
        _budget(QUICK_BUDGETS, "evomal", preset_method_options("default"))
        == QUICK_BUDGETS["evomal"]
    )
    merged = _budget(QUICK_BUDGETS, "evomal", preset_method_options("paper"))
    assert merged["seed_trees"] is None and merged["variation"] == "or"  # the paper's operators
    assert merged["population"] == QUICK_BUDGETS["evomal"]["population"] == 12  # suite's budget


def test_a_controls_own_options_reach_it_and_the_loss_networks_do_not():
    from metaloss.suite import _budget

    chosen = {"adalfl": {"init_steps": 5, "residual": "sce"}, "ce-step-adalfl": {"base": "sce"}}
    assert _budget(chosen, "adalfl") == {"init_steps": 5, "residual": "sce"}
    assert _budget(chosen, "ce-step-adalfl") == {"meta": "online", "init_steps": 5, "base": "sce"}
    chosen = {"evomal": {"population": 2, "generations": 3}, "ce-step-search": {"base": "gce"}}
    assert _budget(chosen, "ce-step-search")["base"] == "gce"


def test_a_resumed_suite_reuses_its_shared_tunings(tmp_path, monkeypatch):
    import pytest

    from metaloss.errors import ArtifactError, ConfigError

    kw = dict(seeds=2, tasks=["iris-linear"], methods=["ce", "ml3"], steps=40, budget="quick",
              log=lambda *a: None)  # fmt: skip
    run_suite("quick", tmp_path, **kw)
    first = _cells(tmp_path)
    records = [json.loads(line) for line in (tmp_path / "tunings.jsonl").read_text().splitlines()]
    keys = [(r["task"], r["method"], r.get("seed")) for r in records]
    assert keys == [("iris-linear", "ce", None), ("iris-linear", "ml3", 0),
                    ("iris-linear", "ml3", 1)]  # fmt: skip
    assert records[0]["tuning"]["lr"] == first[0]["lr"] == first[1]["lr"]
    assert records[1]["loss"] != records[2]["loss"]  # each seed's learned loss, by digest
    assert [r["tuning"] for r in records[1:]] == [c["tuning"] for c in first[2:]]

    # Interrupted after the first cell: the resume tunes neither CE nor the learned losses
    # again (their digests match), and repeats the cells.
    (tmp_path / "cells.jsonl").write_text(json.dumps(first[0]) + "\n")
    calls = _count_tune_lr_calls(monkeypatch)
    run_suite("quick", tmp_path, **kw)
    assert calls == []
    again = _cells(tmp_path)
    assert [c["test"] for c in again] == [c["test"] for c in first]
    assert again[1]["tuning"] == first[1]["tuning"]

    # Another tuning grid (3 tuning seeds) is refused for this folder; and were its
    # suite.json gone, the recorded tunings would not be reused under it.
    (tmp_path / "cells.jsonl").write_text(json.dumps(first[0]) + "\n")
    with pytest.raises(ConfigError, match="--tune-seeds 2, not 3"):
        run_suite("quick", tmp_path, tune_seeds=3, **kw)
    (tmp_path / "suite.json").unlink()
    run_suite("quick", tmp_path, tune_seeds=3, **kw)
    assert calls == [1, 1, 1]

    # A record whose lr is not its grid's winner is refused, naming the file.
    rows = (tmp_path / "tunings.jsonl").read_text().splitlines()
    bad = json.loads(rows[0])
    chosen = bad["tuning"]["lr"]
    bad["tuning"]["lr"] = next(p["lr"] for p in bad["tuning"]["grid"] if p["lr"] != chosen)
    (tmp_path / "tunings.jsonl").write_text(json.dumps(bad) + "\n")
    (tmp_path / "suite.json").unlink()  # it records the 3 tuning seeds of the run above
    with pytest.raises(ArtifactError, match="tunings.jsonl, line 1: lr .* not the winner"):
        run_suite("quick", tmp_path, **kw)


def test_a_replication_on_new_seeds_reuses_another_folders_tunings(tmp_path, monkeypatch):
    from metaloss.errors import ConfigError

    kw = dict(tasks=["iris-linear"], methods=["ce", "sce"], steps=40, budget="quick",
              log=lambda *a: None)  # fmt: skip
    run_suite("quick", tmp_path / "a", seeds=1, **kw)
    calls = _count_tune_lr_calls(monkeypatch)
    run_suite("quick", tmp_path / "b", seeds=2, first_seed=1, reuse_tunings=tmp_path / "a", **kw)
    assert calls == []  # both rows ran at the recorded lrs
    a, b = _cells(tmp_path / "a"), _cells(tmp_path / "b")
    assert [c["seed"] for c in b] == [1, 2, 1, 2]
    assert {c["method"]: c["tuning"] for c in a} == {c["method"]: c["tuning"] for c in b}
    assert (tmp_path / "b" / "tunings.jsonl").read_text() == (
        tmp_path / "a" / "tunings.jsonl"
    ).read_text()  # copied: the new folder is self-contained
    suite = json.loads((tmp_path / "b" / "suite.json").read_text())
    assert suite["reused_tunings_from"].endswith("tunings.jsonl")
    # under another context (other steps) nothing is reused: the rows are tuned again
    run_suite("quick", tmp_path / "c", seeds=1, reuse_tunings=tmp_path / "a",
              **{**kw, "steps": 30})  # fmt: skip
    assert calls == [1, 1]
    with pytest.raises(ConfigError, match="--reuse-tunings .*: no tunings.jsonl there"):
        run_suite("quick", tmp_path / "d", seeds=1, reuse_tunings=tmp_path / "nowhere", **kw)


def test_a_rows_tuning_is_reused_only_from_a_run_of_the_same_options(tmp_path):
    """An online row's tuning is keyed by task and method: reusing it for a row run with
    other options (here the control of an SCE residual) would give it another row's lr."""
    from metaloss.suite import Suite

    logs: list[str] = []
    kw = dict(seeds=1, steps=10, log=logs.append)
    plain = {"adalfl": {"init_steps": 2}}
    sce = {**plain, "ce-step-adalfl": {"base": "sce"}}
    rows = dict(tasks=["iris-linear"], methods=["ce", "ce-step-adalfl"])
    run_suite(Suite("quick", budgets=plain, **rows), tmp_path / "a", **kw)
    run_suite(Suite("quick", budgets=sce, **rows), tmp_path / "b", reuse_tunings=tmp_path / "a",
              **kw)  # fmt: skip
    assert "not reused (run there with other options, or no suite.json): ce-step-adalfl" in logs
    run_suite(Suite("quick", budgets=plain, **rows), tmp_path / "c", reuse_tunings=tmp_path / "a",
              **kw)  # fmt: skip
    tuned = {d: {c["method"]: c["tuning"] for c in _cells(tmp_path / d)} for d in "abc"}
    assert tuned["c"] == tuned["a"]  # the same options: both rows reused
    assert tuned["b"]["ce"] == tuned["a"]["ce"]  # a hand-made row always fits
    assert tuned["b"]["ce-step-adalfl"] != tuned["a"]["ce-step-adalfl"]  # tuned again


def test_a_resume_under_other_settings_is_refused_naming_the_option(tmp_path):
    import pytest

    from metaloss.errors import ConfigError

    kw = dict(seeds=1, tasks=["iris-linear"], methods=["ce"], tune=False, log=lambda *a: None)
    run_suite("quick", tmp_path, steps=20, **kw)
    for other, needle in (
        (dict(steps=30), "--steps 20, not 30"),
        (dict(steps=20, budget="quick"), "--budget suite, not quick"),
        (dict(steps=20, learn_on="wine-linear"), "--learn-on None, not wine-linear"),
        (dict(steps=20, data_dir=str(tmp_path)), "--data-dir None"),
    ):
        with pytest.raises(ConfigError, match=needle):
            run_suite("quick", tmp_path, **other, **kw)
    # more seeds, tasks or methods under the same settings: resumed, the old cell kept
    first = _cells(tmp_path)
    import subprocess

    from metaloss.suite import code_version

    code = json.loads((tmp_path / "suite.json").read_text())["code"]
    assert code == code_version() and first[0]["code_commit"] == code["commit"]
    head = subprocess.run(["git", "-C", code["path"], "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()  # fmt: skip
    assert code["commit"] == (head or None)  # the checkout the imported package lives in
    run_suite("quick", tmp_path, steps=20, **{**kw, "seeds": 2})
    assert _cells(tmp_path)[0] == first[0] and len(_cells(tmp_path)) == 2


def test_a_suite_with_the_same_name_but_other_budgets_is_refused(tmp_path):
    import re

    import pytest

    from metaloss.errors import ConfigError
    from metaloss.suite import SUITES, Suite

    quick = SUITES["quick"]
    kw = dict(seeds=1, tasks=["iris-linear"], methods=["ce"], steps=20, tune=False,
              log=lambda *a: None)  # fmt: skip
    run_suite(quick, tmp_path, **kw)
    budgets = {**quick.budgets, "taylorglo": {**quick.budgets["taylorglo"], "popsize": 3}}
    renamed_budgets = Suite("quick", tasks=quick.tasks, methods=quick.methods, budgets=budgets)
    old = quick.budgets["taylorglo"]
    with pytest.raises(ConfigError, match=rf"other budgets \(taylorglo {re.escape(str(old))} -> "):
        run_suite(renamed_budgets, tmp_path, **{**kw, "seeds": 2})
    assert len(_cells(tmp_path)) == 1  # nothing measured under the other budgets
    run_suite(Suite("quick", tasks=quick.tasks, methods=quick.methods, budgets=dict(quick.budgets)),
              tmp_path, **{**kw, "seeds": 2})  # fmt: skip
    assert len(_cells(tmp_path)) == 2  # equal budgets (another object) resume


def test_a_changed_task_protocol_is_refused_and_never_reuses_a_tuning(tmp_path, monkeypatch):
    import pytest

    import metaloss as ml
    from metaloss.errors import ConfigError

    kw = dict(seeds=1, tasks=["iris-linear"], methods=["ce"], steps=20, log=lambda *a: None)
    run_suite("quick", tmp_path, **kw)
    assert json.loads((tmp_path / "suite.json").read_text())["train"]["iris-linear"]["lr"] == 0.05
    real = ml.tasks.get

    def other_lr(name, **k):  # the registry's default lr changed between two runs
        t = real(name, **k)
        t.defaults = t.defaults.with_(lr=0.1)
        return t

    monkeypatch.setattr(ml.tasks, "get", other_lr)
    with pytest.raises(ConfigError, match=r"iris-linear cells ran with another .*lr 0.05 -> 0.1"):
        run_suite("quick", tmp_path, **{**kw, "seeds": 2})
    # the tunings are keyed by the protocol too: a folder without suite.json tunes again
    (tmp_path / "suite.json").unlink()
    (tmp_path / "cells.jsonl").unlink()
    run_suite("quick", tmp_path, **kw)
    lines = (tmp_path / "tunings.jsonl").read_text().splitlines()
    assert [json.loads(x)["train"]["lr"] for x in lines] == [0.05, 0.1]


def test_a_diverged_reporting_run_is_recorded_and_flagged_in_the_table(tmp_path, monkeypatch):
    """A reporting run whose weights blow up is recorded as diverged in its cell and named
    under the table (it counts as error 1.0, which a mean alone would hide); cells written
    before the field existed are recognised by their error of exactly 1.0."""
    from dataclasses import replace

    import metaloss as ml
    from metaloss.suite import summarise

    get = ml.tasks.get

    def huge_lr(name, **kw):
        task = get(name, **kw)
        return replace(task, defaults=task.defaults.with_(lr=1e30))

    monkeypatch.setattr(ml.tasks, "get", huge_lr)
    kw = dict(seeds=2, tasks=["digits-mlp"], methods=["ce"], steps=5, tune=False)
    summary = run_suite("quick", tmp_path, log=lambda *a: None, **kw)
    cells = _cells(tmp_path)
    assert [c["diverged"] for c in cells] == [True, True] and {c["test"] for c in cells} == {1.0}
    assert summary["tasks"]["digits-mlp"]["rows"]["ce"]["diverged"] == 2
    assert "Runs diverged (non-finite" in markdown(summary) and "ce (2 of 2)" in markdown(summary)

    ok = {**cells[0], "method": "ml3", "test": 0.1, "diverged": False}
    old = {k: v for k, v in cells[0].items() if k != "diverged"}  # an older cell: test 1.0
    rows = summarise([ok, {**ok, "seed": 1}, {**old, "method": "ml3", "seed": 2}])
    assert rows["tasks"]["digits-mlp"]["rows"]["ml3"]["diverged"] == 1
    fine = summarise([ok, {**ok, "seed": 1}])
    assert "diverged" not in markdown(fine)


def test_learned_rows_are_compared_with_the_best_hand_made_baseline():
    from scipy import stats

    from metaloss.results import holm
    from metaloss.suite import summarise

    errors = {
        "ce": [0.030, 0.031, 0.032, 0.030, 0.031],
        "ce@old-lr": [0.001, 0.002, 0.001, 0.002, 0.001],  # cross-entropy: never the "best other"
        "gce": [0.024, 0.025, 0.023, 0.024, 0.025],
        "sce": [0.021, 0.022, 0.021, 0.022, 0.021],
        "a": [0.015, 0.016, 0.015, 0.016, 0.015],  # beats ce and sce
        "b": [0.021, 0.023, 0.020, 0.022, 0.021],  # beats ce, ties sce
        "ce-step-adalfl": [0.014, 0.015, 0.014, 0.015, 0.014],  # a control: compared, not named
    }
    cells = [
        {
            "task": "t",
            "method": m,
            "seed": s,
            "test": v,
            "metric": "error",
            "meta_seconds": 0.0,
            "tuned": m != "ce@old-lr",
        }
        for m, vs in errors.items()
        for s, v in enumerate(vs)
    ]
    block = summarise(cells)["tasks"]["t"]
    assert block["best_baseline"] == "sce" and block["beats_both"] == ["a"]
    compared = ["a", "b", "ce-step-adalfl"]  # Holm over every comparison the line prints
    welch = [stats.ttest_ind(errors[m], errors["sce"], equal_var=False).pvalue for m in compared]
    for m, p, ph in zip(compared, welch, holm(welch)):
        vs = block["rows"][m]["vs_best_baseline"]
        assert vs["p_value"] == pytest.approx(p) and vs["p_holm"] == pytest.approx(ph)
    assert block["rows"]["b"]["vs_best_baseline"]["verdict"] == "tie"
    assert "vs_best_baseline" not in block["rows"]["gce"]
    assert "**a beats both tuned ce and sce significantly.**" in markdown(summarise(cells))
    no_winner = [c for c in cells if c["method"] != "a"]
    assert "No learned row beats both tuned ce and sce" in markdown(summarise(no_winner))
    alone = [c for c in cells if c["method"] in ("ce", "a")]  # no other baseline: no line
    assert "best_baseline" not in summarise(alone)["tasks"]["t"]
