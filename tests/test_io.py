"""Artifacts: exact round trip, atomic writes, clear errors for corrupt / newer files."""

from __future__ import annotations

import json

import pytest
import torch

from metaloss import io
from metaloss.checkpoint import load_checkpoint, save_checkpoint
from metaloss.errors import ArtifactError
from metaloss.losses.neural import NeuralLoss
from metaloss.losses.taylor import TaylorLoss


@pytest.mark.parametrize(
    "loss", [NeuralLoss.ml3(seed=1), NeuralLoss.adalfl(), TaylorLoss([0.3] * 8)]
)
def test_round_trip_is_exact(tmp_path, loss):
    io.save_loss(tmp_path / "run", loss, meta={"method": "test"}, history=[{"step": 1}])
    back = io.load(tmp_path / "run")
    assert type(back) is type(loss)
    for (k, a), (k2, b) in zip(loss.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert io.read_jsonl(tmp_path / "run" / "history.jsonl") == [{"step": 1}]
    spec = json.loads((tmp_path / "run" / "spec.json").read_text())
    assert spec["schema"] == io.SCHEMA_VERSION and spec["method"] == "test"


def test_newer_schema_is_refused(tmp_path):
    io.save_loss(tmp_path, TaylorLoss())
    spec = json.loads((tmp_path / "spec.json").read_text())
    spec["schema"] = io.SCHEMA_VERSION + 1
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match="newer metaloss"):
        io.load(tmp_path)


def test_corrupt_files_name_the_file(tmp_path):
    io.save_loss(tmp_path, TaylorLoss())
    (tmp_path / "loss.safetensors").write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="loss.safetensors"):
        io.load(tmp_path)
    (tmp_path / "spec.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="spec.json"):
        io.load(tmp_path)
    with pytest.raises(ArtifactError, match="no such run"):
        io.load(tmp_path / "missing")


def test_spec_cannot_name_arbitrary_code(tmp_path):
    io.save_loss(tmp_path, TaylorLoss())
    spec = json.loads((tmp_path / "spec.json").read_text())
    spec["loss"] = {"kind": "builtins.eval", "config": {}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match="unknown loss kind"):
        io.load(tmp_path)


def test_mismatched_weights(tmp_path):
    io.save_loss(tmp_path, NeuralLoss.ml3())
    io.save_tensors(tmp_path / "loss.safetensors", {"x": torch.zeros(1)})
    with pytest.raises(ArtifactError, match="do not match"):
        io.load(tmp_path)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    io.write_json(tmp_path / "a.json", {"x": float("inf"), "y": [1, 2]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": "inf", "y": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_checkpoint_round_trip_and_corruption(tmp_path):
    state = {
        "step": 3,
        "params": {"w": torch.randn(2, 2)},
        "hist": [{"a": 1.0}],
        "rng": [torch.get_rng_state()],
    }
    save_checkpoint(tmp_path, state)
    save_checkpoint(tmp_path, {**state, "step": 4})
    assert len(list(tmp_path.glob("checkpoint-*.safetensors"))) == 1
    back = load_checkpoint(tmp_path)
    assert back["step"] == 4 and torch.equal(back["params"]["w"], state["params"]["w"])
    assert torch.equal(back["rng"][0], state["rng"][0]) and back["hist"] == [{"a": 1.0}]
    next(tmp_path.glob("checkpoint-*.safetensors")).write_bytes(b"x")
    with pytest.raises(ArtifactError, match="corrupt checkpoint"):
        load_checkpoint(tmp_path)
    assert load_checkpoint(tmp_path / "none") is None


def test_learn_result_load_round_trip(tmp_path):
    """LearnResult.save then LearnResult.load gives back every field (and the same loss)."""
    from metaloss.results import LearnResult

    loss = NeuralLoss.ml3(seed=3)
    res = LearnResult(
        method="ml3",
        task="iris-linear",
        loss=loss,
        seconds=12.5,
        history=[{"meta_step": 0, "meta_loss": 1.25}, {"meta_step": 1, "meta_loss": 0.75}],
        config={"meta_steps": 2, "hidden": [8, 8]},
        hall_of_fame=[{"fitness": 0.1, "formula": "x**2"}],
        info={"final": 0.5},
        tensors={"snapshot.0.w": torch.arange(6.0).view(2, 3)},
        data={"source": "built in", "files": []},
    )
    back = LearnResult.load(res.save(tmp_path / "run"))
    for name in ("method", "task", "seconds", "history", "config", "hall_of_fame", "info", "data"):
        assert getattr(back, name) == getattr(res, name), name
    assert list(back.tensors) == ["snapshot.0.w"]
    assert torch.equal(back.tensors["snapshot.0.w"], res.tensors["snapshot.0.w"])
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    assert torch.equal(back.loss(x, y), loss(x, y))  # the same learned loss
    assert LearnResult.load(tmp_path / "run" / "spec.json").method == "ml3"  # or its spec


def test_learn_result_load_is_safe(tmp_path):
    """The same refusals as io.load: extra files outside the run directory, malformed
    fields, wrong weights; never a traceback from deep inside."""
    from metaloss.results import LearnResult

    run = LearnResult("taylorglo", "sine", TaylorLoss(), float("inf")).save(tmp_path / "run")
    assert LearnResult.load(run).seconds == float("inf")  # written as "inf"
    outside = tmp_path / "outside.safetensors"
    io.save_tensors(outside, {"x": torch.zeros(1)})
    (run / "extra.safetensors").symlink_to(outside)
    with pytest.raises(ArtifactError, match="outside the run directory"):
        LearnResult.load(run)
    (run / "extra.safetensors").unlink()
    spec = json.loads((run / "spec.json").read_text())
    (run / "spec.json").write_text(json.dumps({**spec, "seconds": [1]}))
    with pytest.raises(ArtifactError, match="'seconds'"):
        LearnResult.load(run)
    (run / "spec.json").write_text(json.dumps({**spec, "method": {"x": 1}}))
    with pytest.raises(ArtifactError, match="'method'"):
        LearnResult.load(run)
    (run / "spec.json").write_text(json.dumps({**spec, "weights_sha256": "0" * 64}))
    with pytest.raises(ArtifactError, match="weights_sha256"):
        LearnResult.load(run)
