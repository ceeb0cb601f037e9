"""``python -m metaloss.cli``: the ``metaloss`` command."""

from metaloss.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
