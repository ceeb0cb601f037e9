"""The ``metaloss`` command line (typer + rich).

Every error a user can cause (missing data, bad option values, corrupt artifacts) is
printed as one line and exits with status 2; ``--debug`` shows the traceback instead.
``metaloss learn METHOD --help`` lists the method's options, generated from its config.

The package: :mod:`.common` (app, shared options), :mod:`.commands` (tasks, train,
evaluate, show, bench, report, demo), :mod:`.learn` (learn).
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from metaloss.cli import commands, learn  # noqa: F401 - registers the commands
from metaloss.cli.common import _parse_options, app, console, err_console
from metaloss.cli.learn import _prepare_out
from metaloss.errors import MetalossError

__all__ = ["_parse_options", "_prepare_out", "app", "console", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line and exit code 2.

    ``argv`` are the arguments after the program name (default: ``sys.argv[1:]``); tests
    pass them to run the command line in process, with this same error handling.

    Example:
        >>> main(["tasks", "--json"])  # doctest: +SKIP
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    ex = _click_exceptions()
    try:
        code = app(args=args, prog_name=None if argv is None else "metaloss", standalone_mode=False)
    except ex.NoArgsIsHelpError as exc:  # bare `metaloss`: the help, as typer shows it
        try:
            from typer import rich_utils

            rich_utils.rich_format_error(exc)
        except ImportError:  # pragma: no cover
            exc.show()
        sys.exit(exc.exit_code)
    except ex.ClickException as exc:  # usage errors: one line too
        _print_error(f"error: {exc.format_message()}")
        sys.exit(exc.exit_code)
    except typer.Abort:
        _print_error("aborted")
        sys.exit(1)
    except MetalossError as exc:
        if debug:
            raise
        _print_error(f"error: {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        _print_error("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last line of defence, never a bare traceback
        if debug:
            raise
        _print_error(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)")
        sys.exit(1)
    if isinstance(code, int) and code:  # an explicit exit status (e.g. typer.Exit(1))
        sys.exit(code)


def _click_exceptions() -> Any:
    """The click exception classes typer raises (recent typer vendors click)."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import exceptions
    return exceptions


def _print_error(message: str) -> None:
    """One line on stderr, never wrapped (rich would wrap at 80 columns off a terminal)."""
    line = " ".join(message.split())
    if sys.stderr.isatty():
        err_console.print(line, style="red", soft_wrap=True, markup=False, highlight=False)
    else:
        print(line, file=sys.stderr, flush=True)
