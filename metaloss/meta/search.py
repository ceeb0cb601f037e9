"""The ask/tell loop shared by every population search, with checkpoint and resume.

A search implements ``ask() -> list[Candidate]`` and ``tell(candidates, fitnesses)`` and
is deterministic for its seed. The loop writes each finished generation to
``generations.jsonl`` (fitness records) and ``evals.safetensors`` (tensors returned by the
evaluator, e.g. tuned weights). Resuming *replays* the recorded generations: the search
asks again (same seed, same candidates, checked by digest) and is told the recorded
fitness, so the resumed run continues exactly where the interrupted one stopped, with no
pickled state.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from metaloss import io, rundir
from metaloss.errors import ArtifactError, MetalossError
from metaloss.evaluators.base import Candidate, Evaluator, Fitness
from metaloss.meta.early_stop import rescue_generation
from metaloss.progress import progress_bar

if TYPE_CHECKING:
    from metaloss.meta.early_stop import EarlyStop

HISTORY, EVALS = rundir.GENERATIONS, rundir.EVALS  # aliases kept for callers


class Search(Protocol):
    """An ask/tell population search."""

    def ask(self) -> list[Candidate]: ...

    def tell(self, candidates: Sequence[Candidate], fitnesses: Sequence[Fitness]) -> None: ...


def candidate_digest(c: Candidate) -> str:
    """A short digest of a candidate's spec and tensors (to check a replay)."""
    h = hashlib.sha256(json.dumps(c.spec, sort_keys=True, default=str).encode())
    for k in sorted(c.tensors):
        h.update(k.encode())
        h.update(np.ascontiguousarray(c.tensors[k].detach().cpu().float().numpy()).tobytes())
    return h.hexdigest()[:16]


def check_identity(path: Path, rows: list[dict[str, Any]], identity: dict[str, Any]) -> None:
    """Refuse a search history written under another identity, or, when it has recorded
    generations, under none (an older metaloss: the settings cannot be checked)."""
    from metaloss.checkpoint import refuse_other_identity

    head = next((r for r in rows if r.get("type") == "identity"), None)
    if head is None:
        if any(r.get("type") == "generation" for r in rows):
            raise ArtifactError(
                f"{path}: records no settings (an older metaloss); cannot check that it belongs "
                "to this run; use a new --out"
            )
        return
    saved = head.get("identity")
    if not isinstance(saved, dict):
        raise ArtifactError(f"{path}: the identity record is not a JSON object")
    refuse_other_identity(path, saved, identity)


def _number(value: Any) -> float:
    """A recorded number: non-finite values are stored as ``"inf"`` / ``"-inf"`` / ``null``."""
    return math.inf if value is None else float(value)


def _replayed_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A recorded generation summary with its numbers restored (``"inf"`` -> ``math.inf``)."""
    out = dict(summary)
    for key in ("best", "median"):
        out[key] = _number(out.get(key))
    return out


def _fitness_from_record(rec: dict[str, Any], tensors: dict[str, Any], key: str) -> Fitness:
    value = rec["value"]
    fit = Fitness(
        _number(value),
        ok=bool(rec["ok"]),
        reason=rec.get("reason", ""),
        seconds=float(rec.get("seconds", 0.0)),
        info=rec.get("info", {}),
    )
    prefix = f"{key}."
    fit.tensors = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return fit


def run_search(
    search: Search,
    evaluator: Evaluator,
    generations: int,
    run_dir: str | Path | None = None,
    progress: bool = False,
    name: str = "search",
    on_generation: Callable[[int, list[Candidate], list[Fitness]], None] | None = None,
    early_stop: EarlyStop | None = None,
    identity: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run ``generations`` ask/evaluate/tell rounds; resume from ``run_dir`` if it has history.

    ``identity`` (the method, task, seed and settings a fitness depends on) is written as the
    first record of ``generations.jsonl``; a resume under another identity is refused
    (:class:`~metaloss.errors.ArtifactError` naming the fields), since its recorded fitness
    values would be replayed beside new ones measured another way. Settings that leave every
    fitness unchanged (the number of generations, the evaluator) belong outside it.

    ``early_stop`` (:class:`~metaloss.meta.early_stop.EarlyStop`) gives each generation's
    candidates stop thresholds computed from the previous generation's recorded fitness
    (so a resumed run, replaying the records, computes the same ones).

    Returns one summary row per generation (best, median, rejects, stopped, train_steps,
    seconds).
    """
    run_dir = Path(run_dir) if run_dir is not None else None
    summaries: list[dict[str, Any]] = []
    saved: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    if run_dir is not None and (run_dir / HISTORY).exists():
        rows = io.read_jsonl(run_dir / HISTORY)
        if identity is not None:
            check_identity(run_dir / HISTORY, rows, identity)
        if (run_dir / EVALS).exists():
            saved = io.load_tensors(run_dir / EVALS)
    records = [r for r in rows if r.get("type") == "generation"]
    has_identity = any(r.get("type") == "identity" for r in rows)
    if run_dir is not None and identity is not None and not (records or has_identity):
        run_dir.mkdir(parents=True, exist_ok=True)
        io.append_jsonl(run_dir / HISTORY, [{"type": "identity", "identity": identity}])
    start = time.perf_counter()
    previous: list[Fitness] = []
    seen: list[Fitness] = []  # every generation's records (early_stop reference "elite")
    with progress_bar(generations, name, enabled=progress) as advance:
        for gen in range(generations):
            cands = search.ask()
            if gen < len(records):  # replay a recorded generation
                rec = records[gen]
                digests = [candidate_digest(c) for c in cands]
                if digests != rec.get("digests"):
                    raise ArtifactError(
                        f"{run_dir / HISTORY}: generation {gen} does not match this search "
                        "(different seed or settings?); use a new run directory"
                    )
                try:
                    fits = [
                        _fitness_from_record(r, saved, f"g{gen}.c{i}")
                        for i, r in enumerate(rec["fitness"])
                    ]
                    summaries.append(_replayed_summary(rec["summary"]))
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise ArtifactError(
                        f"{run_dir / HISTORY}: generation {gen} record is corrupt ({exc!r})"
                    ) from None
                if len(fits) != len(cands):
                    raise ArtifactError(
                        f"{run_dir / HISTORY}: generation {gen} records {len(fits)} fitness "
                        f"values for {len(cands)} candidates"
                    )
            else:
                if early_stop is not None:
                    early_stop.apply(cands, previous, seen)
                t0 = time.perf_counter()
                fits = evaluator.evaluate(cands)
                if early_stop is not None:  # a no-op unless early_stop.rescue > 0
                    fits = rescue_generation(early_stop, cands, fits, evaluator.evaluate)
                summary = summarise(gen, fits, time.perf_counter() - t0)
                summaries.append(summary)
                if run_dir is not None:
                    for i, f in enumerate(fits):
                        for k, v in f.tensors.items():
                            saved[f"g{gen}.c{i}.{k}"] = v
                    if any(f.tensors for f in fits):
                        io.save_tensors(run_dir / EVALS, saved)
                    row = {
                        "type": "generation",
                        "generation": gen,
                        "digests": [candidate_digest(c) for c in cands],
                        "fitness": [f.to_dict() for f in fits],
                        "summary": summary,
                    }
                    run_dir.mkdir(parents=True, exist_ok=True)
                    io.append_jsonl(run_dir / HISTORY, [row])
            previous = fits or previous  # a generation of cached candidates only: keep
            seen.extend(fits)
            search.tell(cands, fits)
            if on_generation is not None:
                on_generation(gen, cands, fits)
            s = summaries[-1]
            advance(1, info=f"best {s['best']:.4f} median {s['median']:.4f} rejects {s['rejects']}")
    if summaries and all(s.get("rejects") == s.get("candidates") for s in summaries):
        reasons: dict[str, int] = {}
        for s in summaries:
            for k, v in s.get("reasons", {}).items():
                reasons[k] = reasons.get(k, 0) + v
        top = max(reasons, key=lambda k: reasons[k]) if reasons else "unknown"
        raise MetalossError(
            f"{name}: every candidate of all {len(summaries)} generations failed (most often: "
            f"{top}); no loss was found, nothing saved"
        )
    if summaries:
        summaries[-1]["total_seconds"] = time.perf_counter() - start
    return summaries


def summarise(gen: int, fits: Sequence[Fitness], seconds: float) -> dict[str, Any]:
    """Best / median fitness, number of rejected candidates and their reasons, candidates
    stopped early and the training steps of the generation's fitness runs (their nominal
    steps, ``Fitness.info["train_steps"]``; a candidate rejected before training counts 0).
    """
    ok = [f.value for f in fits if f.ok]
    reasons: dict[str, int] = {}
    for f in fits:
        if not f.ok:
            key = f.reason.split(":")[0][:60]
            reasons[key] = reasons.get(key, 0) + 1
    return {
        "generation": gen,
        "best": float(min(ok)) if ok else math.inf,
        "median": float(np.median(ok)) if ok else math.inf,
        "rejects": len(fits) - len(ok),
        "reasons": reasons,
        "seconds": seconds,
        "candidates": len(fits),
        "stopped": sum(1 for f in fits if f.ok and "stopped_at" in f.info),
        "rescued": sum(1 for f in fits if f.ok and "rescued" in f.info),
        "train_steps": int(sum(int(f.info.get("train_steps", 0)) for f in fits)),
    }
