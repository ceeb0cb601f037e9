"""Seed streams that keep searches, tuning and reporting apart.

torch seeds its CPU generator with the seed modulo 2**32 (``torch.manual_seed(2**32 + 5)``
draws what ``torch.manual_seed(5)`` draws), so the three uses of randomness get disjoint
ranges of residues modulo 2**32:

- **reporting seeds** (the seeds a user names, the meta-test runs of a table):
  ``0 <= seed < 2**30``;
- **tuning seeds** (learning-rate tuning runs): ``2**30 + i``;
- **search seeds** (everything a meta-learning search does: fitness runs, rejection
  filter, local search, ML3 / AdaLFL meta-training initialisations and batch orders):
  hashed from ``(run seed, stream, index)`` into ``[2**31, 2**32 - 2**16)``.

A search therefore never trains the initialisation, or draws the batch order, of a
meta-test run, and a tuning run never reuses either. Small offsets (``seed + 1`` for the
augmentation stream, ``seed + 7`` for validation batches) stay inside each range.

Example:
    >>> from metaloss.seeds import search_seed, tuning_seeds, REPORT_LIMIT
    >>> s = search_seed(0, "fitness")
    >>> 2**31 <= s < 2**32 and s == search_seed(0, "fitness") != search_seed(1, "fitness")
    True
    >>> tuning_seeds(2) == [REPORT_LIMIT, REPORT_LIMIT + 1]
    True
"""

from __future__ import annotations

import hashlib

from metaloss.errors import ConfigError

REPORT_LIMIT = 2**30  # reporting (user) seeds are below this
SEARCH_BASE = 2**31  # search seeds start here
_SEARCH_SPAN = 2**31 - 2**16  # leaves room for small offsets below 2**32

__all__ = ["REPORT_LIMIT", "check_seed", "search_seed", "tuning_seeds", "same_stream"]


def check_seed(seed: int, what: str = "seed") -> int:
    """``seed`` if it is a valid reporting seed (``0 <= seed < 2**30``), else a ConfigError."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < REPORT_LIMIT:
        raise ConfigError(f"{what} must be an integer in [0, 2**30), got {seed!r}")
    return seed


def search_seed(run_seed: int, stream: str, index: int = 0) -> int:
    """The seed of one stream of a search, derived from the run seed (see the module doc)."""
    digest = hashlib.sha256(f"metaloss/{int(run_seed)}/{stream}/{int(index)}".encode()).digest()
    return SEARCH_BASE + int.from_bytes(digest[:8], "big") % _SEARCH_SPAN


def tuning_seeds(n: int) -> list[int]:
    """The ``n`` seeds of learning-rate tuning runs (disjoint from every reporting seed)."""
    if n < 1:
        raise ConfigError(f"tuning needs at least one seed, got {n}")
    return [REPORT_LIMIT + i for i in range(n)]


def same_stream(a: int, b: int) -> bool:
    """True when torch would draw the same numbers for seeds ``a`` and ``b``."""
    return a % 2**32 == b % 2**32
