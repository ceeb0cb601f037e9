"""Run the ``metaloss`` command line in process, as the console script does.

:func:`run_cli` calls :func:`metaloss.cli.main` (the console script's entry point, with its
error handling: user errors are one line on stderr and exit status 2) inside typer's
``CliRunner`` isolation (stdin, stdout, stderr and environment swapped for the call), and
returns what a subprocess would: the exit status, stdout and stderr. It costs no Python
start-up and no re-import of torch, so a CLI test takes the time of its command only.

The CLI sets process-wide state (``--threads`` sets torch's thread count and
:mod:`metaloss.threads`' setting); :func:`run_cli` puts both back after every call, so one
in-process run never leaks into the next test.

Example:
    >>> out = run_cli("tasks", "--json")  # doctest: +SKIP
    >>> out.returncode, out.stdout[:1]  # doctest: +SKIP
    (0, '[')
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from typer.testing import CliRunner

from metaloss import threads
from metaloss.cli import main


@dataclass(frozen=True)
class CliRun:
    """What one ``metaloss ARGS`` call gave: its exit status and its two output streams."""

    returncode: int
    stdout: str
    stderr: str


@contextmanager
def _kept_threads():
    """Restore torch's thread count and metaloss's thread setting on the way out."""
    n, state = torch.get_num_threads(), dict(threads._state)
    try:
        yield
    finally:
        threads._state.clear()
        threads._state.update(state)
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


def run_cli(*args: str, cwd: str | Path | None = None) -> CliRun:
    """``metaloss ARGS`` in process (``cwd``: the working folder during the call)."""
    code = 0
    here = os.getcwd()
    runner = CliRunner()
    with _kept_threads(), runner.isolation(env={"COLUMNS": "200"}) as streams:
        try:
            if cwd is not None:
                os.chdir(cwd)
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            os.chdir(here)
            sys.stdout.flush()
            sys.stderr.flush()
            out, err = streams[0].getvalue(), streams[1].getvalue()
    return CliRun(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
