"""Random expression trees (DEAP's ``genFull`` / ``genGrow`` / ``genHalfAndHalf``), repaired
into valid losses: the initial population of the EvoMAL / GP-LFL searches.

Example:
    >>> ramped_half_and_half(0).uses_both()
    True
    >>> generate(1, 2, 2, "full").height
    2
"""

from __future__ import annotations

from typing import Literal

from metaloss.errors import ConfigError
from metaloss.losses.symbolic.primitives import FUNCTIONS, PRIMITIVES, TERMINALS
from metaloss.losses.symbolic.tree import MAX_HEIGHT, RandomLike, Tree, as_rng

#: Probability that ``grow`` stops at a terminal once past ``min_depth`` (DEAP's ratio).
TERMINAL_RATIO = len(TERMINALS) / (len(TERMINALS) + len(FUNCTIONS))


def generate(
    rng: RandomLike,
    min_depth: int,
    max_depth: int,
    method: Literal["full", "grow"] = "grow",
) -> Tree:
    """A random tree as DEAP's ``genFull`` / ``genGrow`` (not repaired: may lack an input).

    The target height is drawn uniformly from ``[min_depth, max_depth]``; ``full`` puts every
    leaf at that depth, ``grow`` may stop early (probability ``TERMINAL_RATIO`` per node once
    ``min_depth`` is reached).

    >>> generate(1, 2, 2, "full").height
    2
    """
    if not 0 <= min_depth <= max_depth:
        raise ConfigError(f"need 0 <= min_depth <= max_depth, got {min_depth}, {max_depth}")
    if method not in ("full", "grow"):
        raise ConfigError(f"method must be 'full' or 'grow', got {method!r}")
    r = as_rng(rng)
    height = r.randint(min_depth, max_depth)
    nodes: list[str] = []
    stack = [0]
    while stack:
        depth = stack.pop()
        stop = depth == height or (
            method == "grow" and depth >= min_depth and r.random() < TERMINAL_RATIO
        )
        name = r.choice(TERMINALS) if stop else r.choice(FUNCTIONS)
        nodes.append(name)
        stack.extend([depth + 1] * PRIMITIVES[name].arity)
    return Tree(tuple(nodes))


def full(rng: RandomLike, min_depth: int, max_depth: int, max_height: int = MAX_HEIGHT) -> Tree:
    """A repaired ``full`` random tree (valid, at most ``max(max_height, max_depth)`` tall)."""
    r = as_rng(rng)
    return generate(r, min_depth, max_depth, "full").repair(r, max_height)


def grow(rng: RandomLike, min_depth: int, max_depth: int, max_height: int = MAX_HEIGHT) -> Tree:
    """A repaired ``grow`` random tree (valid, at most ``max(max_height, max_depth)`` tall)."""
    r = as_rng(rng)
    return generate(r, min_depth, max_depth, "grow").repair(r, max_height)


def ramped_half_and_half(
    rng: RandomLike, min_depth: int = 2, max_depth: int = 4, max_height: int = MAX_HEIGHT
) -> Tree:
    """One valid tree, ``full`` or ``grow`` with equal probability (DEAP's ``genHalfAndHalf``).

    >>> [ramped_half_and_half(7) for _ in range(2)] == [ramped_half_and_half(7)] * 2
    True
    """
    r = as_rng(rng)
    method: Literal["full", "grow"] = "grow" if r.random() < 0.5 else "full"
    return generate(r, min_depth, max_depth, method).repair(r, max_height)


__all__ = ["TERMINAL_RATIO", "full", "generate", "grow", "ramped_half_and_half"]
