"""Hostile and careless inputs: every one is exit status 2 and one line naming the culprit.

Each row of ``CASES`` is a bad input (a data file, an option, a run directory, a
checkpoint, an output path, a resume) run through the CLI in-process with the same error
handling as the ``metaloss`` script (``metaloss.cli.main``). The oracle is the contract of
the CLI: exit status 2, exactly one line on stderr, starting ``error:``, naming the file,
field or option; never "internal error" or a traceback.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from metaloss import cli, io
from metaloss.losses.neural import NeuralLoss
from metaloss.losses.taylor import TaylorLoss

# --------------------------------------------------------------------------------------------
# Running the CLI in-process, as the console script does
# --------------------------------------------------------------------------------------------


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``metaloss ARGS`` through :func:`metaloss.cli.main`: (exit status, stdout, stderr)."""
    capsys.readouterr()
    argv = sys.argv
    sys.argv = ["metaloss", *args]
    try:
        cli.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------------------------
# Bad files, built once
# --------------------------------------------------------------------------------------------


def _npz(path: Path, n_train: int = 20, n_test: int = 6, **over: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.normal(size=(n_train, 3)).astype(np.float64),
        "y_train": np.arange(n_train) % 2,
        "x_test": rng.normal(size=(n_test, 3)).astype(np.float64),
        "y_test": np.arange(n_test) % 2,
    }
    arrays.update(over)
    np.savez(path, **arrays)


def _idx(path: Path, arr: np.ndarray) -> None:
    code = {np.uint8: 0x08}[arr.dtype.type]
    head = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(head + arr.tobytes())


def _mnist(folder: Path, n_train: int = 20, labels: np.ndarray | None = None) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    y_tr = (np.arange(n_train) % 10).astype(np.uint8) if labels is None else labels
    _idx(folder / "train-images-idx3-ubyte", rng.integers(0, 255, (n_train, 4, 4), np.uint8))
    _idx(folder / "train-labels-idx1-ubyte", y_tr)
    _idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 255, (5, 4, 4), np.uint8))
    _idx(folder / "t10k-labels-idx1-ubyte", (np.arange(5) % 10).astype(np.uint8))
    return folder


def _images(folder: Path, big: tuple[int, int] | None = None, corrupt: bool = False) -> Path:
    from PIL import Image

    for split in ("train", "test"):
        for cls in ("a", "b"):
            d = folder / split / cls
            d.mkdir(parents=True)
            for i in range(3):
                Image.new("L", (4, 4), color=40 * i).save(d / f"{i}.png")
    if big is not None:  # a decompression bomb: tiny file, huge declared size
        Image.new("1", big).save(folder / "train" / "a" / "bomb.png")
    if corrupt:
        (folder / "train" / "b" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return folder


def _run_dir(path: Path, loss_obj=None, **spec_changes) -> Path:
    loss = loss_obj if loss_obj is not None else TaylorLoss([0.1] * 8)
    io.save_loss(path, loss, meta={"method": "t"})
    if spec_changes:
        spec = json.loads((path / "spec.json").read_text())
        for k, v in spec_changes.items():
            if v is ...:
                spec.pop(k, None)
            else:
                spec[k] = v
        (path / "spec.json").write_text(json.dumps(spec))
    return path


def _crafted_weights(path: Path, shape: list[int]) -> None:
    """A safetensors file whose header claims a huge tensor backed by 4 bytes."""
    header = json.dumps({"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 4]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0\0\0")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    r = tmp_path_factory.mktemp("hostile")
    # --- data files
    _npz(r / "zero_train.npz", n_train=0)
    _npz(r / "one_train.npz", n_train=1)
    _npz(r / "empty_test.npz", n_test=0)
    _npz(r / "big.npz", x_train=np.full((20, 3), 1e39))
    _npz(r / "nan.npz", x_test=np.full((6, 3), np.nan))
    _npz(r / "single.npz", y_train=np.zeros(20, int), y_test=np.zeros(6, int))
    _npz(r / "badlabel.npz", classes=np.array(["a", "b"]), y_test=np.array([0, 1, 7, 0, 1, 0]))
    np.savez(r / "missing.npz", x_train=np.zeros((3, 2)))
    np.savez(r / "objects.npz", x_train=np.array([{"a": 1}] * 4, dtype=object),
             y_train=np.zeros(4), x_test=np.zeros((2, 2)), y_test=np.zeros(2))  # fmt: skip
    (r / "ragged.csv").write_text("a,b,y\n1,2,0\n1,2\n")
    (r / "header.csv").write_text("a,b,y\n")
    (r / "inf.csv").write_text("a,b,y\n" + "1,inf,0\n1,2,1\n" * 5)
    (r / "e39.csv").write_text("a,b,y\n" + "1,1e39,0.5\n1,2,1.5\n2,3,2.5\n" * 5)
    (r / "text.csv").write_text("a,b,y\n1,two,0\n")
    (r / "data.txt").write_text("1 2 3\n")
    (r / "garbage.npz").write_bytes(b"PK\x03\x04 not a zip")
    _mnist(r / "mnist_200", labels=np.array([200] + [1] * 19, np.uint8))
    _mnist(r / "mnist_zero", n_train=0)
    _mnist(r / "mnist_one", n_train=1)
    (r / "mnist_trunc").mkdir()
    for name in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
        kind = "idx3" if "images" in name else "idx1"
        (r / "mnist_trunc" / f"{name}-{kind}-ubyte").write_bytes(b"\0\0\x08\x03\0\0")
    _mnist(r / "mnist_gz")
    gz = r / "mnist_gz" / "train-images-idx3-ubyte"
    gz.with_suffix(".gz").write_bytes(gzip.compress(gz.read_bytes())[:-20])
    gz.unlink()
    _images(r / "bomb", big=(5000, 5000))
    _images(r / "corrupt_img", corrupt=True)
    _images(r / "no_test")
    for f in (r / "no_test" / "test").rglob("*"):
        if f.is_file():
            f.unlink()
    for d in sorted((r / "no_test" / "test").rglob("*"), reverse=True):
        d.rmdir()
    (r / "no_test" / "test").rmdir()
    # --- run directories
    _run_dir(r / "run_ok")
    (r / "spec_dir").mkdir()
    (r / "spec_dir" / "spec.json").mkdir()
    _run_dir(r / "bad_json")
    (r / "bad_json" / "spec.json").write_text("{not json")
    _run_dir(r / "deep")
    (r / "deep" / "spec.json").write_text("[" * 100_000 + "]" * 100_000)
    _run_dir(r / "deep_ok_parse")
    (r / "deep_ok_parse" / "spec.json").write_text("[" * 500 + "]" * 500)
    _run_dir(r / "spec_list")
    (r / "spec_list" / "spec.json").write_text("[1, 2]")
    _run_dir(r / "no_schema", schema=...)
    _run_dir(r / "newer", schema=io.SCHEMA_VERSION + 1)
    _run_dir(r / "info_str", info="not an object")
    _run_dir(r / "hof_noformula", hall_of_fame=[{"fitness": 0.1}])
    _run_dir(r / "hof_str", hall_of_fame="x")
    _run_dir(r / "kind", loss={"kind": "os.system", "config": {}})
    _run_dir(r / "config_list", loss={"kind": "taylor", "config": [1, 2]})
    _run_dir(r / "no_loss", loss=...)
    _run_dir(r / "theta", loss={"kind": "taylor", "config": {"theta": [1.0, 2.0]}})
    small = NeuralLoss.ml3(hidden=(4, 4))
    huge = {"kind": "neural", "config": {**small.config(), "hidden": [200_000, 200_000]}}
    _run_dir(r / "huge_hidden", loss_obj=small)
    spec = json.loads((r / "huge_hidden" / "spec.json").read_text())
    spec["loss"] = huge
    (r / "huge_hidden" / "spec.json").write_text(json.dumps(spec))
    _run_dir(r / "hidden_str", loss_obj=small)
    spec["loss"] = {"kind": "neural", "config": {**small.config(), "hidden": ["a"]}}
    (r / "hidden_str" / "spec.json").write_text(json.dumps(spec))
    _run_dir(r / "no_weights")
    (r / "no_weights" / "loss.safetensors").unlink()
    _run_dir(r / "garbage_weights")
    (r / "garbage_weights" / "loss.safetensors").write_bytes(b"garbage!garbage!")
    _run_dir(r / "zero_weights")
    (r / "zero_weights" / "loss.safetensors").unlink()
    (r / "zero_weights" / "loss.safetensors").symlink_to("/dev/zero")
    _run_dir(r / "zero_spec")
    (r / "zero_spec" / "spec.json").unlink()
    (r / "zero_spec" / "spec.json").symlink_to("/dev/zero")
    _run_dir(r / "link_out")
    (r / "link_out" / "loss.safetensors").unlink()
    (r / "link_out" / "loss.safetensors").symlink_to(r / "run_ok" / "loss.safetensors")
    (r / "ck_link").mkdir()
    _run_dir(r / "crafted")
    _crafted_weights(r / "crafted" / "loss.safetensors", [100_000, 100_000, 1000])
    _run_dir(r / "tampered")
    io.save_tensors(r / "tampered" / "loss.safetensors", {"theta": torch.ones(8)})
    _run_dir(r / "huge_spec")
    with open(r / "huge_spec" / "spec.json", "wb") as fh:  # sparse: instant, 65 MB
        fh.truncate(io.MAX_JSON_BYTES + 1)
    (r / "a_file").write_text("not a folder")
    # --- learn outputs and checkpoints (one real two-step ML3 run, copied and damaged)
    code, _, err = _quiet_learn(r / "finished")
    assert code == 0, err
    for name in ("ck_escape", "ck_abs", "ck_json", "ck_list", "ck_sha", "ck_noid", "ck_state"):
        d = r / name
        d.mkdir()
        for f in (r / "finished").iterdir():
            if f.name.startswith("checkpoint"):
                (d / f.name).write_bytes(f.read_bytes())
    ck = json.loads((r / "finished" / "checkpoint.json").read_text())
    (r / "outside.safetensors").write_bytes(
        (r / "finished" / ck["tensors"]).read_bytes()
    )  # the same tensors, outside the run directory
    _edit(r / "ck_escape" / "checkpoint.json", tensors="../outside.safetensors")
    (r / "ck_link" / "checkpoint.json").write_bytes(
        (r / "finished" / "checkpoint.json").read_bytes()
    )
    (r / "ck_link" / ck["tensors"]).symlink_to(r / "outside.safetensors")
    _edit(r / "ck_abs" / "checkpoint.json", tensors=str(r / "outside.safetensors"))
    (r / "ck_json" / "checkpoint.json").write_text("{")
    (r / "ck_list" / "checkpoint.json").write_text("[]")
    _edit(r / "ck_sha" / "checkpoint.json", sha256="0" * 64)
    _edit(r / "ck_noid" / "checkpoint.json", identity=...)
    _edit(r / "ck_state" / "checkpoint.json", state={"stepper": 3})
    # interrupted runs: a checkpoint without the saved loss
    for name in ("partial", "partial2"):
        d = r / name
        d.mkdir()
        for f in (r / "finished").iterdir():
            if f.name.startswith("checkpoint"):
                (d / f.name).write_bytes(f.read_bytes())
    # a bench folder whose cells ran with --steps 20
    (r / "bench_steps").mkdir()
    (r / "bench_steps" / "suite.json").write_text(json.dumps({"suite": "quick", "steps": 20}))
    (r / "bench_steps" / "cells.jsonl").write_text("")
    # searches with damaged generation records (after the identity TGLO's run records)
    head = json.dumps({"type": "identity", "identity": _tglo_identity()}) + "\n"
    for name, text in (
        ("gen_mid", '{"type": "generation"}\n{oops\n{"type": "generation"}\n'),
        ("gen_list", "[1, 2]\n"),
        ("gen_digest", head + json.dumps({"type": "generation", "digests": ["x"], "fitness": []})),
        ("gen_fields", head + json.dumps({"type": "generation", "digests": None})),
        ("gen_noid", json.dumps({"type": "generation", "digests": ["x"], "fitness": []})),
        ("gen_otherid", head.replace('"config.seed": 0', '"config.seed": 5')),
    ):
        text = text if text.endswith("\n") else text + "\n"
        (r / name).mkdir()
        (r / name / "generations.jsonl").write_text(text)
    return r


def _tglo_identity() -> dict:
    """The identity a ``TGLO`` run records (:func:`metaloss.meta.driver.identity`)."""
    from metaloss.meta.configs import TaylorGLOConfig
    from metaloss.meta.driver import identity

    cfg = TaylorGLOConfig.resolve(None, {"generations": 1})
    import metaloss as ml
    from metaloss.meta.driver import task_identity

    data = task_identity(ml.tasks.get("iris-linear"))
    return identity("taylorglo", "iris-linear", {**cfg.to_dict(), "seed": 0}, data)


def _quiet_learn(out: Path) -> tuple[int, str, str]:
    import contextlib
    import io as _io

    err = _io.StringIO()
    argv = sys.argv
    sys.argv = [
        "metaloss",
        *ML3,
        "--set",
        "checkpoint_every=1",
        "--keep-checkpoints",
        "-o",
        str(out),
    ]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(_io.StringIO()):
            cli.main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    finally:
        sys.argv = argv
    return code, "", err.getvalue()


def _edit(path: Path, **changes) -> None:
    obj = json.loads(path.read_text())
    for k, v in changes.items():
        if v is ...:
            obj.pop(k, None)
        else:
            obj[k] = v
    path.write_text(json.dumps(obj))


# --------------------------------------------------------------------------------------------
# The table: (id, arguments, text the message must contain). "{r}" is the fixture folder.
# --------------------------------------------------------------------------------------------

TRAIN = ["train", "--steps", "1", "--task"]
ML3 = ["learn", "ml3", "-t", "iris-linear", "--set", "meta_steps=2", "--set", "inner_lr=0.1"]
TGLO = ["learn", "taylorglo", "-t", "iris-linear", "--set", "generations=1"]
ADA = ["learn", "adalfl", "-t", "iris-linear", "--set", "init_steps=0", "--set", "steps=2"]

CASES: list[tuple[str, list[str], str]] = [
    # data: arrays
    ("npz-zero-rows", [*TRAIN, "arrays-linear", "-d", "{r}/zero_train.npz"], "zero_train.npz"),
    ("npz-one-row", [*TRAIN, "arrays-linear", "-d", "{r}/one_train.npz"], "at least 6"),
    ("npz-empty-test", [*TRAIN, "arrays-linear", "-d", "{r}/empty_test.npz"], "empty_test.npz"),
    ("npz-1e39", [*TRAIN, "arrays-linear", "-d", "{r}/big.npz"], "float32"),
    ("npz-nan", [*TRAIN, "arrays-linear", "-d", "{r}/nan.npz"], "x_test"),
    ("npz-single-class", [*TRAIN, "arrays-linear", "-d", "{r}/single.npz"], "single class"),
    ("npz-label-range", [*TRAIN, "arrays-linear", "-d", "{r}/badlabel.npz"], "y_test"),
    ("npz-missing-arrays", [*TRAIN, "arrays-linear", "-d", "{r}/missing.npz"], "missing.npz"),
    ("npz-pickled", [*TRAIN, "arrays-linear", "-d", "{r}/objects.npz"], "objects.npz"),
    ("npz-garbage", [*TRAIN, "arrays-linear", "-d", "{r}/garbage.npz"], "garbage.npz"),
    ("csv-ragged", [*TRAIN, "arrays-linear", "-d", "{r}/ragged.csv"], "ragged.csv, line 3"),
    ("csv-header-only", [*TRAIN, "arrays-linear", "-d", "{r}/header.csv"], "header.csv"),
    ("csv-inf", [*TRAIN, "arrays-linear", "-d", "{r}/inf.csv"], "inf.csv"),
    ("csv-1e39", [*TRAIN, "arrays-mlp", "-d", "{r}/e39.csv"], "e39.csv"),
    ("csv-text", [*TRAIN, "arrays-linear", "-d", "{r}/text.csv"], "'b'"),
    ("arrays-txt", [*TRAIN, "arrays-linear", "-d", "{r}/data.txt"], "data.txt"),
    ("arrays-missing", [*TRAIN, "arrays-linear", "-d", "{r}/nope.npz"], "nope.npz"),
    ("arrays-no-data-dir", [*TRAIN, "arrays-linear"], "--data-dir"),
    # data: idx and images
    ("mnist-label-200", [*TRAIN, "mnist-logistic", "-d", "{r}/mnist_200"], "train-labels"),
    ("mnist-zero-rows", [*TRAIN, "mnist-logistic", "-d", "{r}/mnist_zero"], "mnist_zero"),
    ("mnist-one-row", [*TRAIN, "mnist-logistic", "-d", "{r}/mnist_one"], "mnist_one"),
    ("mnist-truncated", [*TRAIN, "mnist-logistic", "-d", "{r}/mnist_trunc"], "train-images"),
    ("mnist-bad-gzip", [*TRAIN, "mnist-logistic", "-d", "{r}/mnist_gz"], ".gz"),
    ("mnist-missing-dir", [*TRAIN, "mnist-logistic", "-d", "{r}/nowhere"], "nowhere"),
    ("png-bomb", [*TRAIN, "images-lenet5", "-d", "{r}/bomb"], "bomb.png"),
    ("png-corrupt", [*TRAIN, "images-lenet5", "-d", "{r}/corrupt_img"], "bad.png"),
    ("images-no-test", [*TRAIN, "images-lenet5", "-d", "{r}/no_test"], "test"),
    # options
    ("device-tpu", [*TRAIN, "iris-linear", "--device", "tpu"], "--device"),
    ("device-mps", [*TRAIN, "iris-linear", "--device", "mps"], "--device"),
    ("device-cuda-junk", [*TRAIN, "iris-linear", "--device", "cuda:x"], "--device"),
    ("learn-device-tpu", [*ML3, "--device", "tpu", "-o", "{r}/o1"], "--device"),
    ("unknown-task", [*TRAIN, "nosuch"], "nosuch"),
    ("unknown-method", ["learn", "nosuch", "-t", "iris-linear"], "nosuch"),
    ("unknown-loss", [*TRAIN, "iris-linear", "--loss", "{r}/nothing"], "nothing"),
    ("threads-negative", ["--threads", "-1", "tasks"], "--threads"),
    ("seeds-zero", ["evaluate", "ce", "-t", "iris-linear", "--seeds", "0"], "--seeds"),
    ("set-no-equals", [*ML3, "--set", "oops", "-o", "{r}/o2"], "oops"),
    ("ml3-batch-0", [*ML3, "--set", "batch_size=0", "-o", "{r}/o3"], "batch_size"),
    ("ml3-steps-text", [*ML3, "--set", "meta_steps=abc", "-o", "{r}/o4"], "meta_steps"),
    ("ml3-lr-nan", [*ML3, "--set", "meta_lr=NaN", "-o", "{r}/o5"], "meta_lr"),
    ("ml3-inner-steps-0", [*ML3, "--set", "inner_steps=0", "-o", "{r}/o6"], "inner_steps"),
    ("ml3-query", [*ML3, "--set", "query=bad", "-o", "{r}/o7"], "query"),
    ("ml3-hidden-0", [*ML3, "--set", "hidden=[0]", "-o", "{r}/o8"], "hidden"),
    ("ml3-activation", [*ML3, "--set", "activation=bogus", "-o", "{r}/o9"], "activation"),
    ("ml3-unknown-opt", [*ML3, "--set", "bogus=1", "-o", "{r}/o10"], "bogus"),
    ("ml3-bool-text", [*ML3, "--set", "reinit=maybe", "-o", "{r}/o11"], "reinit"),
    ("tglo-sigma-nan", [*TGLO, "--set", "sigma=NaN", "-o", "{r}/o12"], "sigma"),
    ("tglo-sigma-neg", [*TGLO, "--set", "sigma=-1", "-o", "{r}/o13"], "sigma"),
    ("tglo-popsize-1", [*TGLO, "--set", "popsize=1", "-o", "{r}/o14"], "popsize"),
    ("tglo-generations-0", [*TGLO, "--set", "generations=0", "-o", "{r}/o15"], "generations"),
    (
        "tglo-all-failed",
        [
            *TGLO,
            "--set",
            "sigma=1e30",
            "--set",
            "popsize=3",
            "--set",
            "fitness_steps=5",
            "-o",
            "{r}/o20",
        ],
        "every candidate",
    ),  # fmt: skip
    ("adalfl-batch-0", [*ADA, "--set", "batch_size=0", "-o", "{r}/o16"], "batch_size"),
    ("adalfl-steps-neg", [*ADA, "--set", "steps=-5", "-o", "{r}/o17"], "steps"),
    ("adalfl-adapt-0", [*ADA, "--set", "adapt_every=0", "-o", "{r}/o18"], "adapt_every"),
    ("adalfl-lr-inf", [*ADA, "--set", "lr=Infinity", "-o", "{r}/o19"], "lr"),
    ("usage-bad-int", ["train", "-t", "iris-linear", "--steps", "abc"], "--steps"),
    ("usage-unknown-option", ["train", "-t", "iris-linear", "--seeds", "3"], "--seeds"),
    ("usage-unknown-command", ["trian"], "trian"),
    ("usage-missing-argument", ["learn"], "method"),
    # output paths
    ("out-is-file", [*ML3, "-o", "{r}/a_file"], "a_file"),
    ("out-under-file", [*ML3, "-o", "{r}/a_file/sub"], "a_file"),
    ("out-unwritable", [*ML3, "-o", "/proc/metaloss-out"], "/proc/metaloss-out"),
    ("out-finished-run", [*ML3, "-o", "{r}/finished"], "--force"),
    ("out-resume-and-force", [*ML3, "--resume", "--force", "-o", "{r}/finished"], "--force"),
    ("out-partial-run", [*ML3, "-o", "{r}/partial"], "--resume"),
    ("report-out-file", ["report", "{r}/run_ok", "-o", "{r}/a_file"], "a_file"),
    (
        "bench-out-file",
        ["bench", "quick", "-t", "iris-linear", "-m", "ce", "-o", "{r}/a_file"],
        "a_file",
    ),  # fmt: skip
    (
        "bench-out-unwritable",
        ["bench", "quick", "-m", "ce", "-o", "/proc/metaloss-bench"],
        "/proc/metaloss-bench",
    ),  # fmt: skip
    (
        "bench-resume-other-steps",
        ["bench", "quick", "-m", "ce", "--steps", "30", "-o", "{r}/bench_steps"],
        "--steps 20, not 30",
    ),
    (
        "bench-first-seed-huge",
        ["bench", "quick", "--first-seed", "2000000000", "-o", "{r}/b1"],
        "first_seed",
    ),  # fmt: skip
    ("evaluate-tune-bad", ["evaluate", "ce", "-t", "iris-linear", "--tune", "grid"], "--tune"),
    (
        "evaluate-optimizer-bad",
        ["evaluate", "ce", "-t", "iris-linear", "--optimizer", "rmsprop"],
        "--optimizer",
    ),  # fmt: skip
    ("train-seed-huge", ["train", "-t", "iris-linear", "--seed", "1073741824"], "--seed"),
    # run directories
    ("run-missing", ["show", "{r}/nothing"], "nothing"),
    ("run-is-file", ["show", "{r}/a_file"], "a_file"),
    ("spec-is-dir", ["show", "{r}/spec_dir"], "spec.json"),
    ("spec-bad-json", ["show", "{r}/bad_json"], "spec.json"),
    ("spec-deep-100k", ["show", "{r}/deep"], "nested"),
    ("spec-deep-500", ["show", "{r}/deep_ok_parse"], "nested"),
    ("spec-list", ["show", "{r}/spec_list"], "spec.json"),
    ("spec-no-schema", ["show", "{r}/no_schema"], "schema"),
    ("spec-newer", ["show", "{r}/newer"], "newer"),
    ("spec-info-str", ["show", "{r}/info_str"], "info"),
    ("spec-hof-no-formula", ["show", "{r}/hof_noformula"], "formula"),
    ("spec-hof-str", ["show", "{r}/hof_str"], "hall_of_fame"),
    ("spec-kind-code", ["show", "{r}/kind"], "os.system"),
    ("spec-config-list", ["show", "{r}/config_list"], "config"),
    ("spec-no-loss", ["show", "{r}/no_loss"], "loss"),
    ("spec-theta-len", ["show", "{r}/theta"], "theta"),
    ("spec-huge-hidden", ["show", "{r}/huge_hidden"], "loss.safetensors"),
    ("spec-hidden-str", ["show", "{r}/hidden_str"], "hidden"),
    ("spec-too-big", ["show", "{r}/huge_spec"], "spec.json"),
    ("spec-dev-zero", ["show", "{r}/zero_spec"], "spec.json"),
    ("weights-missing", ["show", "{r}/no_weights"], "loss.safetensors"),
    ("weights-garbage", ["show", "{r}/garbage_weights"], "loss.safetensors"),
    ("weights-dev-zero", ["show", "{r}/zero_weights"], "loss.safetensors"),
    ("weights-crafted-header", ["show", "{r}/crafted"], "loss.safetensors"),
    ("weights-tampered", ["show", "{r}/tampered"], "weights_sha256"),
    ("train-with-bad-run", [*TRAIN, "iris-linear", "--loss", "{r}/info_str"], "info"),
    # checkpoints
    ("ck-path-escape", [*ML3, "--resume", "-o", "{r}/ck_escape"], "tensors"),
    ("ck-symlink-out", [*ML3, "--resume", "-o", "{r}/ck_link"], "outside the run directory"),
    ("weights-symlink-out", ["show", "{r}/link_out"], "outside the run directory"),
    ("ck-path-absolute", [*ML3, "--resume", "-o", "{r}/ck_abs"], "tensors"),
    ("ck-bad-json", [*ML3, "--resume", "-o", "{r}/ck_json"], "checkpoint.json"),
    ("ck-list", [*ML3, "--resume", "-o", "{r}/ck_list"], "checkpoint.json"),
    ("ck-sha", [*ML3, "--resume", "-o", "{r}/ck_sha"], "checkpoint-"),
    ("ck-no-identity", [*ML3, "--resume", "-o", "{r}/ck_noid"], "identity"),
    ("ck-bad-state", [*ML3, "--resume", "-o", "{r}/ck_state"], "checkpoint.json"),
    # resume
    (
        "resume-other-lr",
        [*ML3, "--set", "meta_lr=0.5", "--resume", "-o", "{r}/partial2"],
        "config.meta_lr",
    ),  # fmt: skip
    (
        "resume-other-task",
        [
            "learn",
            "ml3",
            "-t",
            "digits-linear",
            "--set",
            "meta_steps=2",
            "--set",
            "inner_lr=0.1",
            "--resume",
            "-o",
            "{r}/partial2",
        ],
        "task",
    ),  # fmt: skip
    ("resume-other-seed", [*ML3, "--seed", "3", "--resume", "-o", "{r}/partial2"], "seed"),
    ("resume-gen-corrupt", [*TGLO, "--resume", "-o", "{r}/gen_mid"], "line 2"),
    ("resume-gen-list", [*TGLO, "--resume", "-o", "{r}/gen_list"], "line 1"),
    ("resume-gen-digest", [*TGLO, "--resume", "-o", "{r}/gen_digest"], "generation 0"),
    ("resume-gen-fields", [*TGLO, "--resume", "-o", "{r}/gen_fields"], "generation 0"),
    ("resume-gen-noid", [*TGLO, "--resume", "-o", "{r}/gen_noid"], "older metaloss"),
    ("resume-gen-otherid", [*TGLO, "--resume", "-o", "{r}/gen_otherid"], "config.seed: recorded 5"),
]


@pytest.mark.parametrize(("args", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2(root, capsys, args, needle):
    argv = [a.replace("{r}", str(root)) for a in args]
    code, _, err = run_cli(argv, capsys)
    assert code == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("error: ") and "internal error" not in err and "Traceback" not in err
    assert needle.replace("{r}", str(root)) in err, err


def test_the_table_is_large_enough():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


def test_long_messages_are_not_wrapped(root, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    deep = root / ("x" * 120)
    code, _, err = run_cli(["show", str(deep)], capsys)
    assert code == 2 and err.count("\n") == 1 and str(deep) in err


def test_resuming_a_finished_run_is_a_no_op(root, capsys):
    before = {f.name: f.read_bytes() for f in (root / "finished").iterdir()}
    code, out, err = run_cli([*ML3, "--resume", "-o", str(root / "finished")], capsys)
    assert code == 0 and "nothing to resume" in out, err
    assert {f.name: f.read_bytes() for f in (root / "finished").iterdir()} == before


def test_force_replaces_a_finished_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli([*ML3, "-o", str(out)], capsys)[0] == 0
    first = (out / "spec.json").read_text()
    code, _, err = run_cli([*ML3, "--set", "meta_lr=0.01", "--force", "-o", str(out)], capsys)
    assert code == 0, err
    assert json.loads(first)["config"]["meta_lr"] == 0.001
    assert json.loads((out / "spec.json").read_text())["config"]["meta_lr"] == 0.01


def test_a_finished_run_drops_its_checkpoints_unless_kept(root, tmp_path, capsys):
    assert (root / "finished" / "checkpoint.json").exists()  # --keep-checkpoints
    args = [*ML3, "--set", "checkpoint_every=1", "-o", str(tmp_path / "run")]
    assert run_cli(args, capsys)[0] == 0
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["history.jsonl", "loss.safetensors", "spec.json"]


def test_crafted_hidden_sizes_allocate_nothing(root):
    """The 200000-wide spec is refused from the header alone: no 160 GB allocation."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(Exception, match="do not match"):
        io.load(root / "huge_hidden")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB


def test_file_reads_are_capped(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x" * 11)
    assert io.read_bytes_capped(p, 11) == b"x" * 11
    with pytest.raises(Exception, match="over the limit of 10 bytes"):
        io.read_bytes_capped(p, 10)
    if os.path.exists("/dev/zero"):
        with pytest.raises(Exception, match="not a regular file"):
            io.read_bytes_capped("/dev/zero", 10)


def test_a_search_where_every_candidate_failed_saves_nothing(root):
    assert (root / "o20" / "generations.jsonl").exists()
    assert not (root / "o20" / "spec.json").exists()
    assert not (root / "o20" / "loss.safetensors").exists()


# --------------------------------------------------------------------------------------------
# Resume: all-failed generations, torn records, interrupted saves
# --------------------------------------------------------------------------------------------


class _FailingGeneration:
    """Scores by a quadratic; every candidate of generation ``bad`` fails; raises
    KeyboardInterrupt (a kill) when asked to evaluate generation ``stop``."""

    def __init__(self, start: int = 0, bad: int = 1, stop: int | None = None) -> None:
        self.gen, self.bad, self.stop = start, bad, stop

    def evaluate(self, cands):
        from metaloss.evaluators import Fitness

        gen, self.gen = self.gen, self.gen + 1
        if gen == self.stop:
            raise KeyboardInterrupt
        if gen == self.bad:
            return [Fitness.failure("training diverged") for _ in cands]
        return [Fitness(float(((c.tensors["theta"].double() - 0.5) ** 2).sum())) for c in cands]


def _cmaes():
    from metaloss.meta.evolution import CMAES, VectorFamily

    return CMAES(VectorFamily(TaylorLoss([2.0] * 8)), sigma=0.5, popsize=4, seed=0)


@pytest.mark.parametrize("stop", [1, 2])
def test_kill_in_or_after_an_all_failed_generation_then_resume_is_exact(tmp_path, stop):
    """Killed while evaluating the all-failed generation 1, or the one after it (then its
    record, best "inf", is replayed); the kill also tears the record being written."""
    import math

    from metaloss.meta.search import HISTORY, run_search

    full = _cmaes()
    ref = run_search(full, _FailingGeneration(), generations=4)
    assert ref[1]["best"] == math.inf  # generation 1: every candidate failed
    part = _cmaes()
    with pytest.raises(KeyboardInterrupt):  # killed while evaluating generation `stop`
        run_search(part, _FailingGeneration(stop=stop), generations=4, run_dir=tmp_path)
    with open(tmp_path / HISTORY, "a") as fh:  # and in the middle of writing its record
        fh.write(f'{{"type": "generation", "generation": {stop}, "dig')
    recorded = io.read_jsonl(tmp_path / HISTORY)
    assert len(recorded) == stop and (stop == 1 or recorded[1]["summary"]["best"] == "inf")
    resumed = _cmaes()
    got = run_search(resumed, _FailingGeneration(start=stop), generations=4, run_dir=tmp_path)
    assert [g["best"] for g in got] == [g["best"] for g in ref]
    assert resumed.best_fitness == full.best_fitness
    assert torch.equal(resumed.best_loss().theta, full.best_loss().theta)
    lines = (tmp_path / HISTORY).read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["type"] == "generation" for line in lines)


def test_torn_trailing_record_is_dropped_before_appending(tmp_path):
    path = tmp_path / "h.jsonl"
    io.append_jsonl(path, [{"a": 1}, {"a": 2}])
    with open(path, "a") as fh:
        fh.write('{"a": 3, "b"')
    assert io.read_jsonl(path) == [{"a": 1}, {"a": 2}]
    io.append_jsonl(path, [{"a": 4}])
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n{"a": 4}\n'
    path.write_text('{"a": 1}\n{torn in the middle\n{"a": 2}\n')
    with pytest.raises(Exception, match="h.jsonl, line 2"):
        io.read_jsonl(path)


def test_save_loss_interrupted_never_leaves_a_mismatched_pair(tmp_path, monkeypatch):
    """A crash before the spec is renamed in leaves no spec.json (load refuses), never the
    new weights with the old spec; a fresh run directory appears whole or not at all."""
    from metaloss.errors import ArtifactError

    run = tmp_path / "run"
    io.save_loss(run, TaylorLoss([0.1] * 8))
    real_replace = os.replace

    def crash_on_spec(src, dst):
        if str(dst).endswith("spec.json"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_spec)
    with pytest.raises(ArtifactError, match="No space left"):
        io.save_loss(run, TaylorLoss([0.9] * 8))
    assert not (run / "spec.json").exists()
    with pytest.raises(ArtifactError, match="spec.json"):
        io.load(run)
    monkeypatch.setattr(os, "rename", lambda *a: (_ for _ in ()).throw(OSError(5, "EIO")))
    with pytest.raises(ArtifactError):
        io.save_loss(tmp_path / "fresh", TaylorLoss())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temp dir left behind
    monkeypatch.undo()
    io.save_loss(run, TaylorLoss([0.9] * 8))
    assert torch.equal(io.load(run).theta, torch.full((8,), 0.9))


def test_resume_of_ml3_with_another_config_names_the_field(iris, tmp_path):
    from metaloss.errors import ArtifactError
    from metaloss.meta.unrolled import ML3Config, meta_train

    cfg = ML3Config(meta_steps=2, inner_lr=0.1)
    meta_train(NeuralLoss.ml3(hidden=(4,)), iris, cfg, run_dir=tmp_path, checkpoint_every=1)
    other = ML3Config(meta_steps=3, inner_lr=0.2)
    with pytest.raises(ArtifactError, match="config.inner_lr: checkpoint 0.1 vs now 0.2"):
        meta_train(NeuralLoss.ml3(hidden=(4,)), iris, other, run_dir=tmp_path, checkpoint_every=1)
    with pytest.raises(ArtifactError, match=r"loss.hidden: checkpoint \[4\] vs now \[5\]"):
        meta_train(NeuralLoss.ml3(hidden=(5,)), iris, cfg, run_dir=tmp_path, checkpoint_every=1)
    longer = ML3Config(meta_steps=3, inner_lr=0.1)  # extending the run is a valid resume
    hist = meta_train(NeuralLoss.ml3(hidden=(4,)), iris, longer, run_dir=tmp_path,
                      checkpoint_every=1)  # fmt: skip
    assert [h["meta_step"] for h in hist] == [1, 2, 3]


def test_resume_of_adalfl_on_another_task_is_refused(iris, digits, tmp_path):
    from metaloss.errors import ArtifactError
    from metaloss.meta.online import AdaLFLConfig, online_train

    cfg = AdaLFLConfig(steps=4, checkpoint_every=2, snapshots=0)
    online_train(NeuralLoss.adalfl(hidden=(4,)), iris, cfg, run_dir=tmp_path)
    with pytest.raises(ArtifactError, match="task: checkpoint 'iris-linear' vs now 'digits"):
        online_train(NeuralLoss.adalfl(hidden=(4,)), digits, cfg, run_dir=tmp_path)
    with pytest.raises(ArtifactError, match="config.lr"):
        online_train(NeuralLoss.adalfl(hidden=(4,)), iris, AdaLFLConfig(**{**cfg.__dict__,
                     "lr": 0.5}), run_dir=tmp_path)  # fmt: skip


def test_data_validation_after_the_float32_cast():
    from metaloss.errors import DataError
    from metaloss.tasks.datasets import ArrayData, validate_arrays

    x = np.zeros((10, 2))
    ok = ArrayData(x, np.arange(10) % 2, x[:2], np.array([0, 1]), ["a", "b"], "toy")
    validate_arrays(ok)
    big = ArrayData(x + 1e39, ok.y_train, x[:2], ok.y_test, ["a", "b"], "toy")
    assert np.isfinite(big.x_train).all()  # finite in float64 ...
    with pytest.raises(DataError, match="x_train has NaN or infinite values"):
        validate_arrays(big)  # ... but not in float32
    fine = ArrayData(x + 3e38, ok.y_train, x[:2], ok.y_test, ["a", "b"], "toy")
    validate_arrays(fine)  # float32 max is 3.4e38
    label = ArrayData(x, ok.y_train, x[:2], np.array([0, 2]), ["a", "b"], "toy")
    with pytest.raises(DataError, match=r"y_test has labels in \[0, 2\]"):
        validate_arrays(label)


def test_gzip_bombs_stop_at_the_limit(tmp_path, monkeypatch):
    from metaloss.errors import DataError
    from metaloss.tasks.data import idx as datasets

    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(bytes(5000)))
    assert datasets._read_maybe_gzip(path) == bytes(5000)
    monkeypatch.setattr(datasets, "MAX_DATA_BYTES", 4999)
    with pytest.raises(DataError, match="decompresses to more than 4999 bytes"):
        datasets._read_maybe_gzip(path)
