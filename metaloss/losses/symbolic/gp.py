"""Genetic operators on symbolic trees (EvoMAL / GP-LFL); the search loop lives elsewhere.

All operators are pure functions of their inputs and an explicit random source (see
:func:`~metaloss.losses.symbolic.tree.as_rng`). Given valid parents (both inputs, within
``max_height``) they return valid trees: children are repaired, then any child taller than
``max_height`` is replaced by its parent (DEAP's ``staticLimit``).

Example:
    >>> import random
    >>> from metaloss.losses.symbolic.tree import Tree
    >>> rng = random.Random(0)
    >>> a, b = Tree.parse("add(y, y_hat)"), Tree.parse("mul(y, plog(y_hat))")
    >>> c, d = one_point_crossover(a, b, rng)
    >>> c.uses_both() and d.uses_both()
    True
    >>> subtree_mutation(a, rng).height <= 10
    True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from metaloss.errors import ConfigError
from metaloss.losses.symbolic.random_trees import generate
from metaloss.losses.symbolic.tree import MAX_HEIGHT, RandomLike, Tree, as_rng

Ind = TypeVar("Ind")


def within_height(tree: Tree, max_height: int = MAX_HEIGHT) -> bool:
    """True when ``tree`` is at most ``max_height`` tall."""
    return tree.height <= max_height


def _limit(children: Sequence[Tree], parents: Sequence[Tree], max_height: int) -> list[Tree]:
    """Each child, or its parent when the child is too tall or invalid."""
    return [
        child if child.uses_both() and child.height <= max_height else parent
        for child, parent in zip(children, parents, strict=True)
    ]


def height_limit(operator: Callable[..., Any], max_height: int = MAX_HEIGHT) -> Callable[..., Any]:
    """Wrap a variation operator: a returned tree taller than ``max_height`` (or lacking an
    input) is replaced by the parent in the same position (the ``Tree`` positional arguments).

    The operators of this module already apply this check; use it for custom operators.

    >>> grow_root = height_limit(lambda t: Tree(("square",) + t.nodes), max_height=2)
    >>> str(grow_root(Tree.parse("add(y, y_hat)")))
    'square((y + y_hat))'
    >>> str(grow_root(Tree.parse("add(y, abs(y_hat))")))
    '(y + abs(y_hat))'
    """

    @functools.wraps(operator)
    def limited(*args: Any, **kwargs: Any) -> Any:
        parents = [a for a in args if isinstance(a, Tree)]
        result = operator(*args, **kwargs)
        if isinstance(result, Tree):
            return _limit([result], parents[:1], max_height)[0]
        return tuple(_limit(result, parents[: len(result)], max_height))

    return limited


def one_point_crossover(
    a: Tree, b: Tree, rng: RandomLike, max_height: int = MAX_HEIGHT
) -> tuple[Tree, Tree]:
    """Swap a random non-root subtree of ``a`` with one of ``b`` (DEAP's ``cxOnePoint``).

    Single-node parents are returned unchanged. Children are repaired and height-limited.
    """
    r = as_rng(rng)
    if len(a) < 2 or len(b) < 2:
        return a, b
    i = r.randint(1, len(a) - 1)
    j = r.randint(1, len(b) - 1)
    c = a.replace(i, b.subtree(j))
    d = b.replace(j, a.subtree(i))
    c, d = c.repair(r, max_height), d.repair(r, max_height)
    c, d = _limit((c, d), (a, b), max_height)
    return c, d


def subtree_mutation(
    tree: Tree,
    rng: RandomLike,
    min_depth: int = 0,
    max_depth: int = 2,
    max_height: int = MAX_HEIGHT,
    method: str = "grow",
) -> Tree:
    """Replace a random subtree by a new tree of depth ``min_depth..max_depth`` (DEAP's
    ``mutUniform``); the result is repaired and height-limited.

    ``method`` makes the new subtree: ``"grow"`` (``genGrow``) or ``"half"`` (``full`` or
    ``grow`` with equal probability, ``genHalfAndHalf`` - the EvoMAL reference's choice).
    """
    if method not in ("grow", "half"):
        raise ConfigError(f"mutation method must be 'grow' or 'half', got {method!r}")
    r = as_rng(rng)
    i = r.randint(0, len(tree) - 1)
    kind = "grow" if method == "grow" or r.random() < 0.5 else "full"
    new = generate(r, min_depth, max_depth, kind)
    child = tree.replace(i, new).repair(r, max_height)
    return _limit([child], [tree], max_height)[0]


def var_and(
    parents: Sequence[Tree],
    rng: RandomLike,
    crossover: float,
    mutation: float,
    max_height: int = MAX_HEIGHT,
    mutation_method: str = "grow",
) -> list[Tree]:
    """DEAP's ``varAnd``: neighbouring pairs cross over with probability ``crossover``, then
    every child mutates with probability ``mutation``, independently.

    A child may get both operators or neither (an unchanged clone, with probability
    ``(1 - crossover) * (1 - mutation)`` when crossover leaves it alone).

    >>> kids = var_and([Tree.parse("add(y, y_hat)")] * 4, 0, crossover=0.0, mutation=0.0)
    >>> [str(k) for k in kids] == ["(y + y_hat)"] * 4
    True
    """
    r = as_rng(rng)
    kids = list(parents)
    for i in range(1, len(kids), 2):
        if r.random() < crossover:
            kids[i - 1], kids[i] = one_point_crossover(kids[i - 1], kids[i], r, max_height)
    for i in range(len(kids)):
        if r.random() < mutation:
            kids[i] = subtree_mutation(kids[i], r, max_height=max_height, method=mutation_method)
    return kids


def var_or(
    parents: Sequence[Tree],
    rng: RandomLike,
    crossover: float,
    mutation: float,
    max_height: int = MAX_HEIGHT,
    mutation_method: str = "half",
) -> list[Tree]:
    """``varOr`` as the EvoMAL reference applies it: one child per selected parent, made by
    crossover *or* mutation *or* reproduction.

    For parent ``i`` a draw ``u`` picks crossover with a randomly chosen selected parent
    (keeping the first child) when ``u < crossover``, subtree mutation (depth 0-2, made by
    ``mutation_method``) when ``u < crossover + mutation``, and a copy otherwise. A child
    taller than ``max_height`` is replaced by its parent (reproduction).

    >>> kids = var_or([Tree.parse("add(y, y_hat)")] * 3, 0, crossover=0.0, mutation=0.0)
    >>> [str(k) for k in kids] == ["(y + y_hat)"] * 3
    True
    """
    if not 0 <= crossover + mutation <= 1 or min(crossover, mutation) < 0:
        raise ConfigError(
            f"varOr needs crossover, mutation >= 0 with crossover + mutation <= 1, "
            f"got {crossover} + {mutation}"
        )
    r = as_rng(rng)
    kids = []
    for parent in parents:
        u = r.random()
        if u < crossover:
            child, _ = one_point_crossover(parent, r.choice(list(parents)), r, max_height)
        elif u < crossover + mutation:
            child = subtree_mutation(parent, r, max_height=max_height, method=mutation_method)
        else:
            child = parent
        kids.append(child)
    return kids


#: Why :func:`log_of_target` trees are rejected (the reason recorded for them).
TARGET_LOG_REASON = "plog of a target-only subtree: a disguised constant log(1e-7) = -16.1"


def log_of_target(tree: Tree) -> bool:
    """True when a ``plog`` node's argument depends on the target ``y`` but not on ``y_hat``.

    Over one-hot targets such an argument takes the values of its subtree at ``y = 0`` and
    ``y = 1``; where it is 0 the protected log returns ``log(1e-7) = -16.1``. The term is a
    constant in disguise: a search at a fixed learning rate uses it as a hidden step-size
    factor (one search found ``plog(y)`` as a x379 scale). Searches with
    ``reject_target_log`` drop these trees before any evaluation.

    >>> log_of_target(Tree.parse("mul(y_hat, plog(y))")), log_of_target(Tree.parse("plog(y_hat)"))
    (True, False)
    """
    for i, name in enumerate(tree.nodes):
        if name == "plog":
            arg = tree.subtree(i + 1).nodes
            if "y" in arg and "y_hat" not in arg:
                return True
    return False


def _key(fitness: float) -> float:
    """Minimisation key: NaN counts as the worst fitness."""
    return math.inf if math.isnan(fitness) else fitness


def double_tournament(
    population: Sequence[Ind],
    fitnesses: Sequence[float],
    sizes: Sequence[int] | None,
    k: int,
    rng: RandomLike,
    fitness_size: int = 4,
    parsimony_size: float = 1.4,
    fitness_first: bool = True,
) -> list[Ind]:
    """Select ``k`` members as DEAP's ``selDoubleTournament``, minimising fitness.

    A fitness tournament draws ``fitness_size`` members with replacement and keeps the lowest
    fitness (NaN is worst; ties go to the first drawn). A size tournament takes two members
    and keeps the smaller with probability ``parsimony_size / 2`` (0.5 on equal sizes).
    With ``fitness_first`` the size tournament runs between two fitness-tournament winners,
    otherwise the fitness tournament runs among size-tournament winners. ``sizes`` defaults
    to the members' ``size`` (node count). Pass ``range(n)`` as ``population`` to get indices.

    >>> double_tournament(range(3), [3.0, 1.0, float("nan")], [5, 5, 5], k=4, rng=0)
    [1, 1, 1, 1]
    """
    n = len(population)
    if n == 0:
        raise ConfigError("double_tournament needs a non-empty population")
    if sizes is None:
        sizes = [ind.size for ind in population]  # type: ignore[attr-defined]
    if len(fitnesses) != n or len(sizes) != n:
        raise ConfigError(
            f"population, fitnesses and sizes differ in length: {n}, {len(fitnesses)}, {len(sizes)}"
        )
    if not 1 <= parsimony_size <= 2:
        raise ConfigError(f"parsimony_size must be in [1, 2], got {parsimony_size}")
    if fitness_size < 1 or k < 0:
        raise ConfigError(f"need fitness_size >= 1 and k >= 0, got {fitness_size}, {k}")
    r = as_rng(rng)
    keys = [_key(float(f)) for f in fitnesses]

    def random_pick(count: int) -> list[int]:
        return [r.randint(0, n - 1) for _ in range(count)]

    def fitness_tournament(count: int, pick: Callable[[int], list[int]]) -> list[int]:
        chosen = []
        for _ in range(count):
            aspirants = pick(fitness_size)
            chosen.append(min(aspirants, key=lambda idx: keys[idx]))
        return chosen

    def size_tournament(count: int, pick: Callable[[int], list[int]]) -> list[int]:
        chosen = []
        for _ in range(count):
            i1, i2 = pick(2)
            prob = parsimony_size / 2.0
            if sizes[i1] > sizes[i2]:
                i1, i2 = i2, i1
            elif sizes[i1] == sizes[i2]:
                prob = 0.5
            chosen.append(i1 if r.random() < prob else i2)
        return chosen

    if fitness_first:
        picked = size_tournament(k, lambda c: fitness_tournament(c, random_pick))
    else:
        picked = fitness_tournament(k, lambda c: size_tournament(c, random_pick))
    return [population[i] for i in picked]


__all__ = [
    "TARGET_LOG_REASON",
    "double_tournament",
    "log_of_target",
    "height_limit",
    "one_point_crossover",
    "subtree_mutation",
    "var_and",
    "var_or",
    "within_height",
]
