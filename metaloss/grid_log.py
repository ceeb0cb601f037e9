"""The finished runs of learning-rate grids, so that a stopped tuning resumes run by run.

A tuning grid of whole online runs (AdaLFL on LeNet-5: 18 runs of about 20 minutes on one
CPU core) is hours of work, and a bench folder's ``tunings.jsonl`` keeps only finished
grids. A :class:`GridLog` appends each unbatched run of a grid to a JSON-lines file as soon
as it ends (the grid's key, the tuning seed, the learning rate, the validation metric), and
a resumed tuning takes those values instead of training them again. Every run of a grid is
an independent seeded run, so a resumed grid equals the uninterrupted one (tests check this
bit for bit). Runs of a batched grid (one vmapped run per seed over all its learning rates)
are not logged: a part of a batch would train another batch.

The file is untrusted input: every line is checked, and a bad one is an
:class:`~metaloss.errors.ArtifactError` naming the file and line, as is a run recorded twice
with two different values (two processes, or two copied logs, that disagree). Non-finite metrics (a
diverged regression run) are stored as the strings ``"inf"`` / ``"nan"``.

:func:`run_pairs` runs a grid's (seed, lr) runs: the recorded ones are read back, the others
trained (in a :class:`~metaloss.evaluators.run_pool.RunPool` or here) and recorded as each
ends.

Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tuning-runs.jsonl"
    >>> log = GridLog(path).scoped("digits-mlp ce")
    >>> log.get(0, 0.08) is None
    True
    >>> log.add(0, 0.08, 0.05)
    >>> GridLog(path).scoped("digits-mlp ce").get(0, 0.08)
    0.05
    >>> GridLog(path).scoped("another grid").get(0, 0.08) is None
    True
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaloss import io
from metaloss.errors import ArtifactError

if TYPE_CHECKING:
    from metaloss.evaluators.run_pool import RunPool

__all__ = ["GridLog", "run_pairs"]

_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _value(v: float) -> float | str:
    return float(v) if math.isfinite(v) else repr(float(v))


def _number(x: Any) -> float | None:
    """``x`` as a float, or ``None`` when it is no JSON number or too large for one."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    try:
        return float(x)
    except OverflowError:  # an integer of hundreds of digits
        return None


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _read(path: Path) -> dict[tuple[str, int, float], float]:
    out: dict[tuple[str, int, float], float] = {}
    for n, row in enumerate(io.read_jsonl(path), 1):
        where = f"{path}, line {n}"
        key, seed, lr, value = (row.get(k) for k in ("key", "seed", "lr", "value"))
        if not isinstance(key, str):
            raise ArtifactError(f"{where}: 'key' must be a string")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ArtifactError(f"{where}: 'seed' must be an integer")
        rate = _number(lr)
        if rate is None or not 0 < rate < math.inf:
            raise ArtifactError(f"{where}: 'lr' must be a positive number")
        metric = _NON_FINITE.get(value) if isinstance(value, str) else _number(value)
        if metric is None:
            raise ArtifactError(f"{where}: 'value' must be a number, 'inf' or 'nan'")
        before = out.setdefault((key, seed, rate), metric)
        if not _same(before, metric):  # two processes, or two copied logs, disagree
            raise ArtifactError(
                f"{where}: the run (seed {seed}, lr {rate:g}) of this grid was recorded "
                f"before with another value ({before} vs {metric}); keep one of the two lines"
            )
    return out


class GridLog:
    """Finished grid runs in the JSON-lines file ``path``, seen through one grid's ``key``.

    :meth:`scoped` gives the view of another grid over the same file and the same values.
    """

    def __init__(self, path: str | Path, key: str = "") -> None:
        self.path, self.key = Path(path), key
        self._values = _read(self.path)

    def scoped(self, key: str) -> GridLog:
        """The log of the grid ``key`` (same file)."""
        view = copy.copy(self)  # shares the file's values
        view.key = key
        return view

    def get(self, seed: int, lr: float) -> float | None:
        """The recorded validation metric of this grid's run (``seed``, ``lr``), or ``None``."""
        return self._values.get((self.key, seed, float(lr)))

    def add(self, seed: int, lr: float, value: float) -> None:
        """Record a finished run (appended and fsynced at once)."""
        value = float(value)
        row: dict[str, Any] = {"key": self.key, "seed": seed, "lr": float(lr)}
        io.append_jsonl(self.path, [{**row, "value": _value(value)}])
        self._values[(self.key, seed, float(lr))] = value

    def __len__(self) -> int:
        return sum(1 for k in self._values if k[0] == self.key)

    def __repr__(self) -> str:
        return f"GridLog({str(self.path)!r}, key={self.key!r}, runs={len(self)})"


def _in_pool(
    pool: RunPool | None,
    jobs: list[tuple[Any, Any]],
    serial: Callable[[int], float],
    done: Callable[[int, float], None],
) -> bool:
    """Run ``jobs`` in ``pool``, calling ``done(i, value)`` as each ends; ``False`` when
    they cannot go there (the caller runs what is left here). A non-finite metric comes
    back as ``inf``; a run that failed in its worker for another reason runs again here
    (``serial(i)``), so that its error is raised where it belongs."""
    if pool is None or not jobs:
        return False
    failed: list[int] = []

    def ended(i: int, f: Any) -> None:
        if f.ok or f.reason == "non-finite fitness":
            done(i, float(f.value) if f.ok else math.inf)
        else:
            failed.append(i)

    if pool.run(jobs, on_result=ended) is None:
        return False
    for i in sorted(failed):
        done(i, serial(i))
    return True


def run_pairs(
    pairs: list[tuple[int, float]],
    here: Callable[[int, float], float],
    pool: RunPool | None,
    job: Callable[[int, float], tuple[Any, Any]] | None,
    runs: GridLog | None,
) -> list[float]:
    """The validation metric of each (seed, lr) run of ``pairs``: taken from ``runs`` where
    recorded, else trained (in ``pool`` when ``job`` describes the run, else ``here``) and
    recorded in ``runs`` as soon as it ends."""
    values = {p: runs.get(*p) if runs is not None else None for p in pairs}
    todo = [p for p in pairs if values[p] is None]

    def done(i: int, value: float) -> None:
        values[todo[i]] = value
        if runs is not None:
            runs.add(*todo[i], value)

    jobs = [job(*p) for p in todo] if job is not None and pool is not None else []
    _in_pool(pool, jobs, lambda i: here(*todo[i]), done)
    for i, p in enumerate(todo):  # all of them without a pool; what is left after a fallback
        if values[p] is None:
            done(i, here(*p))
    return [float(values[p]) for p in pairs]  # type: ignore[arg-type]
