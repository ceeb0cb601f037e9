"""Rich progress bars that cost nothing when disabled."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextmanager
def progress_bar(
    total: int, description: str, enabled: bool = True
) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, **fields)``; shows a rich bar when ``enabled``.

    ``total`` may be an estimate (an lr grid widens at an edge): when more work is done than
    it said, the bar's total grows with the count, so the bar never reads e.g. 20/18.

    Example:
        >>> with progress_bar(3, "demo", enabled=False) as advance:
        ...     for _ in range(3):
        ...         advance(1)
    """
    if not enabled:
        yield lambda n=1, **_: None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, transient=False) as prog:
        tid = prog.add_task(description, total=total, info="")
        every = max(1, total // 200)
        count = 0

        def advance(n: int = 1, info: str | None = None) -> None:
            nonlocal count, total
            count += n
            grown = count > total
            total = max(total, count)
            if count % every == 0 or count >= total or info is not None:
                fields = {"info": info} if info else {}
                prog.update(tid, completed=count, **({"total": total} if grown else {}), **fields)

        yield advance
