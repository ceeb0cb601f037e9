"""The file names of a run directory and of a bench folder, in one place.

A run directory (:meth:`metaloss.results.LearnResult.save`, :func:`metaloss.io.save_loss`)
holds :data:`SPEC` (what the loss is and how it was found), :data:`WEIGHTS` (its tensors),
:data:`HISTORY` (one JSON record per step / generation) and optionally :data:`EXTRA`
(extra arrays such as AdaLFL's loss snapshots). A long run also keeps :data:`CHECKPOINT`
with its ``checkpoint-<hex>.safetensors`` tensors (:mod:`metaloss.checkpoint`), and a search
its :data:`GENERATIONS` log and :data:`EVALS` cache (:mod:`metaloss.meta.search`).
``metaloss show`` draws :data:`PLOT`; ``metaloss report`` writes :data:`REPORT_HTML` and
:data:`REPORT_MD`. A bench folder (:func:`metaloss.suite.run_suite`) holds :data:`SUITE`,
:data:`CELLS`, :data:`SUMMARY`, :data:`TABLE`, :data:`TUNINGS` and :data:`TUNING_RUNS`.

Example:
    >>> from pathlib import Path
    >>> Path("runs/a") / SPEC
    PosixPath('runs/a/spec.json')
    >>> checkpoint_tensors("0123456789abcdef" * 4), is_checkpoint_tensors("checkpoint-x.json")
    ('checkpoint-0123456789abcdef.safetensors', False)
"""

from __future__ import annotations

import re

#: What the loss is and how it was found (JSON, schema-versioned).
SPEC = "spec.json"
#: The loss's tensors (safetensors).
WEIGHTS = "loss.safetensors"
#: One JSON record per step / meta step / generation.
HISTORY = "history.jsonl"
#: Extra arrays of a run (e.g. ``snapshot.<step>.<param>`` of AdaLFL).
EXTRA = "extra.safetensors"
#: The last checkpoint's metadata; names its tensor file (:func:`checkpoint_tensors`).
CHECKPOINT = "checkpoint.json"
#: Glob of checkpoint tensor files.
CHECKPOINT_GLOB = "checkpoint-*.safetensors"
#: A search's per-generation log and its cache of evaluated candidates.
GENERATIONS, EVALS = "generations.jsonl", "evals.safetensors"
#: ``metaloss show``'s default plot.
PLOT = "loss.png"
#: ``metaloss report``'s outputs.
REPORT_HTML, REPORT_MD = "report.html", "report.md"
#: A bench folder: its settings, one JSON line per cell, the summary of all cells.
SUITE, CELLS, SUMMARY = "suite.json", "cells.jsonl", "summary.json"
#: A bench folder's markdown table of the summary.
TABLE = "table.md"
#: A bench folder's finished learning-rate tunings, so that a resumed suite does not repeat
#: them.
TUNINGS = "tunings.jsonl"
#: A bench folder's finished runs of learning-rate grids (:mod:`metaloss.grid_log`), so that
#: a stopped tuning resumes run by run.
TUNING_RUNS = "tuning-runs.jsonl"

#: Every file a run may write (a run directory is "non-empty" when one of them is).
RUN_FILES = (SPEC, WEIGHTS, HISTORY, EXTRA, CHECKPOINT, GENERATIONS, EVALS)
#: The files that mark a folder as a bench folder.
BENCH_FILES = (SUMMARY, CELLS, SUITE)

_CHECKPOINT_TENSORS = re.compile(r"checkpoint-[0-9a-f]{16}\.safetensors")


def checkpoint_tensors(digest: str) -> str:
    """The tensor file name of a checkpoint whose sha256 is ``digest`` (first 16 hex digits)."""
    return f"checkpoint-{digest[:16]}.safetensors"


def is_checkpoint_tensors(name: str) -> bool:
    """Whether ``name`` is a plain checkpoint tensor file name (no folder, 16 hex digits)."""
    return isinstance(name, str) and _CHECKPOINT_TENSORS.fullmatch(name) is not None


def search_plot(plot: str) -> str:
    """The search-curve file name that goes beside a loss plot.

    Example:
        >>> search_plot("loss.png")
        'loss-search.png'
    """
    stem, dot, ext = plot.rpartition(".")
    return f"{stem}-search.{ext}" if dot else f"{plot}-search"
