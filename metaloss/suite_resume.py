"""What a bench folder records so that a resume is exact or refused.

``suite.json`` records the settings that make its cells one table (checked by
:func:`refuse_other_settings`) and the code that ran (:func:`code_version`);
``tunings.jsonl`` records every finished learning-rate tuning with its context
(:func:`read_tunings`), keyed for a learned loss by its digest (:func:`loss_digest`).

Example:
    >>> context_key({"steps": 100})[:14]
    '{"budget": nul'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from metaloss import io, rundir
from metaloss.errors import ArtifactError, ConfigError

#: How each setting that makes cells comparable is named on the command line.
_OPTION = {"suite": "the suite", "preset": "--preset", "steps": "--steps", "budget": "--budget",
           "tune": "--tune/--no-tune", "tune_seeds": "--tune-seeds", "learn_on": "--learn-on",
           "data_dir": "--data-dir", "budgets": "the suite's budgets"}  # fmt: skip


def code_version() -> dict[str, Any]:
    """The code this process imported: metaloss's version, the git commit of its checkout
    and whether its ``metaloss`` folder differs from that commit (``None`` outside git).
    Recorded in ``suite.json`` and every cell, so a table can show which code made it.

    >>> sorted(code_version())
    ['commit', 'dirty', 'metaloss', 'path']
    """
    import subprocess

    import metaloss

    package = Path(metaloss.__file__).resolve().parent
    out: dict[str, Any] = {"metaloss": metaloss.__version__, "path": str(package),
                           "commit": None, "dirty": None}  # fmt: skip
    try:
        git = ["git", "-C", str(package.parent)]
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)  # fmt: skip
        if head.returncode == 0:
            out["commit"] = head.stdout.strip()
            status = subprocess.run([*git, "status", "--porcelain", "--", str(package)],
                                    capture_output=True, text=True, timeout=10)  # fmt: skip
            out["dirty"] = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def refuse_other_settings(out: Path, before: Any, now: dict[str, Any]) -> None:
    """A bench folder's cells are one table: a resume whose settings would measure new cells
    another way is refused, naming the option. (Tasks, methods and seeds may grow; a setting
    an older ``suite.json`` does not record is not checked.)"""
    if not isinstance(before, dict):
        raise ArtifactError(f"{out / rundir.SUITE}: expected a JSON object")
    before = {"preset": "default", **before}  # older folders recorded no preset: default
    for key, value in now.items():
        if key == "budgets" and key in before and before[key] != value:
            was = before[key] if isinstance(before[key], dict) else {}
            changed = sorted(m for m in {*was, *value} if was.get(m) != value.get(m))
            shown = "; ".join(f"{m} {was.get(m)} -> {value.get(m)}" for m in changed)
            raise ConfigError(
                f"bench --out {out}: its cells ran with other budgets ({shown or was}); "
                "use another folder"
            )
        if key in before and before[key] != value:
            raise ConfigError(
                f"bench --out {out}: its cells ran with {_OPTION[key]} {before[key]}, not "
                f"{value}; use another folder"
            )


def refuse_other_protocol(out: Path, task: str, recorded: Any, now: dict[str, Any]) -> None:
    """Refuse to add cells of ``task`` measured under another training protocol (e.g. a
    changed default lr) than the one ``suite.json`` recorded for its earlier cells."""
    from metaloss.checkpoint import identity_diff

    if not isinstance(recorded, dict):
        raise ArtifactError(f"{out / rundir.SUITE}: 'train.{task}' must be an object")
    diff = identity_diff(recorded, now)
    if diff:
        shown = ", ".join(f"{k} {recorded.get(k)} -> {now.get(k)}" for k in diff)
        raise ConfigError(
            f"bench --out {out}: its {task} cells ran with another training protocol "
            f"({shown}); use another folder"
        )


#: What a recorded tuning must share with the current run to be reused.
#: (``tune_pool``: a suite with tune workers trains a CPU conv model's grid unbatched, which
#: differs from the batched grid in float rounding.)
_CONTEXT = ("steps", "budget", "preset", "tune", "data_dir", "train", "tune_pool")


def context_key(context: dict[str, Any]) -> str:
    """A canonical JSON text of the context fields (as they read back from a file)."""
    return json.dumps({k: context.get(k) for k in _CONTEXT}, sort_keys=True)


def read_tunings(path: Path) -> dict[tuple, Any]:
    """The tunings a bench folder recorded, keyed by (task, method[, seed, loss digest],
    context): a resume reuses one only under the same steps, budget, preset, tuning grid,
    data folder and task training protocol (a changed default lr tunes again)."""
    from metaloss.tuning import LrTuning

    out: dict[tuple, Any] = {}
    for n, row in enumerate(io.read_jsonl(path), 1):
        task, method = row.get("task"), row.get("method")
        if not (isinstance(task, str) and isinstance(method, str)):
            raise ArtifactError(f"{path}, line {n}: 'task' and 'method' must be strings")
        key: tuple = (task, method)
        if "seed" in row or "loss" in row:  # one seed's learned loss
            seed, digest = row.get("seed"), row.get("loss")
            if not (isinstance(seed, int) and isinstance(digest, str)):
                raise ArtifactError(f"{path}, line {n}: 'seed' must be an integer, 'loss' a digest")
            key = (task, method, seed, digest)
        tuning = LrTuning.from_dict(row.get("tuning"), f"{path}, line {n}")
        out[(*key, context_key(row))] = tuning
    return out


def loss_digest(loss: Any) -> str:
    """A digest of a loss's spec and tensors: a recorded tuning is reused only for the same
    loss (a search resumed into a different loss tunes again)."""
    from metaloss.evaluators.base import Candidate
    from metaloss.meta.search import candidate_digest

    return candidate_digest(Candidate.from_loss(0, loss))
