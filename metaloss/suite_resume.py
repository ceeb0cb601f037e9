"""What a bench folder records so that a resume is exact or refused.

``suite.json`` records the settings that make its cells one table (checked by
:func:`refuse_other_settings`) and the code that ran (:func:`code_version`);
``tunings.jsonl`` records every finished learning-rate tuning with its context
(:func:`read_tunings`), keyed for a learned loss by its digest (:func:`loss_digest`), and
``tuning-runs.jsonl`` every finished run of a grid not finished yet
(:class:`~metaloss.grid_log.GridLog`); :class:`Tunings` keeps both for a running suite.

Example:
    >>> context_key({"steps": 100})[:14]
    '{"budget": nul'
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaloss import io, rundir
from metaloss.errors import ArtifactError, ConfigError
from metaloss.grid_log import GridLog
from metaloss.progress import progress_bar

if TYPE_CHECKING:
    from metaloss.evaluators.run_pool import RunPool
    from metaloss.tuning import LrTuning, TuneConfig

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


def canonical(options: Any) -> str:
    """Options as canonical JSON text (tuples and lists alike, keys sorted)."""
    return json.dumps(json.loads(json.dumps(options)), sort_keys=True)


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


class Tunings:
    """A bench folder's learning-rate tunings, for a running suite.

    Finished tunings are read from and appended to ``out/tunings.jsonl``, keyed by (task,
    method, context) for a loss shared by several cells and by (task, method, seed, loss
    digest, context) for one seed's learned loss; :meth:`get` tunes a key the folder does
    not have yet, with a progress bar, reading back (and recording) each finished run of its
    grid in ``out/tuning-runs.jsonl``, so that a grid stopped half-way resumes run by run.
    """

    def __init__(
        self,
        out: Path,
        tune: TuneConfig,
        pool: RunPool | None,
        progress: bool,
        log: Callable[[str], None],
    ) -> None:
        self.path, self.tune, self.pool = out / rundir.TUNINGS, tune, pool
        self.progress, self.log = progress, log
        self.done = read_tunings(self.path)
        self.runs = GridLog(out / rundir.TUNING_RUNS)

    def get(self, key: tuple, what: str, tuner: Callable, *args: Any, **kw: Any) -> LrTuning:
        """The tuning of ``key``; if the folder has none, ``tuner(*args, tune, advance, pool,
        runs=..., **kw)`` (:func:`~metaloss.tuning.tune_lr` or
        :func:`~metaloss.tuning.tune_whole_runs`), recorded before it is returned."""
        if key not in self.done:
            kept = self.runs.scoped(json.dumps(list(key)))
            if len(kept):
                self.log(
                    f"tune lr {what}: {len(kept)} finished runs read back ({rundir.TUNING_RUNS})"
                )
            n = len(self.tune.factors) * self.tune.seeds  # widening may add a few
            with progress_bar(n, f"tune lr {what}", enabled=self.progress) as advance:
                tuning = tuner(*args, self.tune, advance, self.pool, runs=kept, **kw)
            self.add(key, tuning)
            self.log(f"tune lr {what}: lr {tuning.lr:g}")
        return self.done[key]

    def add(self, key: tuple, tuning: LrTuning) -> None:
        """Record ``tuning`` under ``key`` (appended to ``tunings.jsonl`` at once)."""
        self.done[key] = tuning
        row = dict(zip(("task", "method", "seed", "loss"), key[:-1]))
        io.append_jsonl(self.path, [{**row, **json.loads(key[-1]), "tuning": tuning.to_dict()}])

    def reuse(
        self, source: str | Path, same_options: Callable[[Any, str], bool]
    ) -> tuple[Path, int, list[str]]:
        """Copy in the tunings of another bench folder (or its ``tunings.jsonl``) that this
        one lacks; returns the file read, how many were copied and the methods whose tunings
        were left out.

        A tuning shared by a row's cells (an online method's, a hand-made loss's) is keyed
        by task and method, not by the method's options, so it is copied only where
        ``same_options(source_suite_record, method)`` says the source ran that row with the
        same options (the record is the source folder's ``suite.json``, None without one).
        A per-seed tuning is keyed by its learned loss's digest and always fits.
        """
        path = Path(source)
        path = path / rundir.TUNINGS if path.is_dir() else path
        if not path.is_file():
            raise ConfigError(f"bench --reuse-tunings {source}: no {rundir.TUNINGS} there")
        record_path = path.parent / rundir.SUITE
        record = io.read_json(record_path) if record_path.is_file() else None
        new, skipped = {}, set()
        for k, t in read_tunings(path).items():
            if k in self.done:
                continue
            if len(k) == 3 and not same_options(record, k[1]):
                skipped.add(k[1])
                continue
            new[k] = t
        for k, t in new.items():
            self.add(k, t)
        return path.resolve(), len(new), sorted(skipped)
