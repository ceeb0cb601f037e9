"""Self-contained reports of a run directory or a benchmark folder (HTML + markdown).

``write_report`` reads what :meth:`metaloss.results.LearnResult.save` or
:func:`metaloss.suite.run_suite` wrote and renders it as ``report.html`` (figures embedded
as base64 PNG, inline CSS, no scripts or external assets: it opens offline and can be
mailed as one file) and ``report.md`` (the same text and tables, figures left to the HTML).

A run report shows the method, task and time, the configuration, the learned loss (formula,
LaTeX, architecture), its shape against cross-entropy (MSE for regression), the
meta-training curves, AdaLFL's loss snapshots, the hall of fame and the info fields. A
bench report shows the per-task tables (mean +- std, delta to the baseline, Welch's p,
meta-training time), a bar chart per task and the list of cells.

Example:
    >>> import tempfile, metaloss as ml
    >>> from metaloss.losses.taylor import TaylorLoss
    >>> run = ml.io.save_loss(tempfile.mkdtemp(), TaylorLoss([0.1] * 8), meta={"method": "demo"})
    >>> html = write_report(run)
    >>> html.name, html.with_suffix(".md").exists()
    ('report.html', True)
"""

from __future__ import annotations

from pathlib import Path

from metaloss import io, rundir
from metaloss.errors import ArtifactError, MetalossError
from metaloss.report.bench import bench_report
from metaloss.report.document import Doc
from metaloss.report.run import _generation_rows, _task_shape, run_report

HTML_FILE, MD_FILE = rundir.REPORT_HTML, rundir.REPORT_MD


def _detect(path: Path) -> tuple[str, Path]:
    if not path.exists():
        raise ArtifactError(f"{path}: no such run directory or bench folder")
    if path.is_file():
        if path.name == rundir.SPEC:
            return "run", path.parent
        if path.name in rundir.BENCH_FILES:
            return "bench", path.parent
        raise ArtifactError(f"{path}: expected a run directory or a bench folder, not a file")
    if (path / rundir.SPEC).exists():
        return "run", path
    if (path / rundir.SUMMARY).exists() or (path / rundir.CELLS).exists():
        return "bench", path
    raise ArtifactError(
        f"{path}: neither a run directory (spec.json) nor a bench folder "
        "(summary.json / cells.jsonl)"
    )


def write_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` and ``report.md`` for a run directory or a bench folder.

    ``out`` is the folder to write into (default: the input folder). Returns the HTML path;
    the markdown lies beside it. Unreadable input raises :class:`ArtifactError`.

    Example:
        >>> write_report("runs/iris-linear-ml3")  # doctest: +SKIP
        PosixPath('runs/iris-linear-ml3/report.html')
    """
    kind, folder = _detect(Path(path))
    try:
        doc = run_report(folder) if kind == "run" else bench_report(folder)
    except MetalossError as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"{folder}: {exc}") from None
    target = Path(out) if out is not None else folder
    if target.exists() and not target.is_dir():
        raise ArtifactError(f"{target}: --out must be a folder")
    target.mkdir(parents=True, exist_ok=True)
    io.atomic_write_bytes(target / HTML_FILE, doc.render_html().encode("utf-8"))
    io.atomic_write_bytes(target / MD_FILE, doc.render_md().encode("utf-8"))
    return target / HTML_FILE


__all__ = ["Doc", "HTML_FILE", "MD_FILE", "bench_report", "run_report", "write_report"]
_REEXPORTED = (_generation_rows, _task_shape)  # metaloss.cli and older callers import them here
