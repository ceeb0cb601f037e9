"""Exports of a symbolic tree: sympy expression, canonical key, LaTeX, strings, numpy callable.

Every export is computed from the tree (with optional edge weights: weight ``i`` multiplies
the value of node ``i``, weight 0 the output). :func:`canonical` is the key of the
de-duplication cache: sympy's automatic normalisation (commutativity, ``x * 1 = x``,
``x - x = 0``, ...) followed by ``sympy.expand`` whenever a structural bound says the
expansion stays small, so it is cheap (milliseconds for EvoMAL-sized trees) and
deterministic (no wall-clock timeouts).

Example:
    >>> from metaloss.losses.symbolic.tree import Tree
    >>> t = Tree.parse("mul(-1, mul(y, plog(y_hat)))")
    >>> to_sympy(t)
    -y*log(Max(1.0e-7, Abs(y_hat)))
    >>> canonical(Tree.parse("add(y, y_hat)")) == canonical(Tree.parse("add(y_hat, mul(y, 1))"))
    True
    >>> to_string(Tree.parse("add(y, y_hat)"), weights=[2.0, 1.0, 0.5])
    '2.000*(y + 0.500*y_hat)'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from functools import lru_cache
from typing import Any

import numpy as np
import sympy

from metaloss.errors import ConfigError
from metaloss.losses.symbolic.primitives import CONSTANTS, PRIMITIVES, Y_HAT, Y
from metaloss.losses.symbolic.tree import Tree

#: ``canonical`` expands only when the expansion has at most this many terms (upper bound).
EXPAND_TERM_LIMIT = 256
#: Larger trees get the raw prefix string as key (sympy would take seconds on them).
CANONICAL_MAX_SIZE = 255

Weights = Sequence[float] | np.ndarray | Any  # a 1-D tensor works too


def _weight_list(tree: Tree, weights: Weights | None) -> list[float] | None:
    if weights is None:
        return None
    if hasattr(weights, "detach"):  # a torch tensor
        weights = weights.detach().cpu().double().numpy()
    values = [float(w) for w in np.asarray(weights, dtype=np.float64).reshape(-1)]
    if len(values) != tree.edges:
        raise ConfigError(f"tree has {tree.edges} edges but {len(values)} weights were given")
    return values


def to_sympy(tree: Tree, weights: Weights | None = None, evaluate: bool = True) -> sympy.Expr:
    """The tree as a sympy expression in the real symbols ``y`` and ``y_hat``.

    With ``weights`` every node value is multiplied by its edge weight. ``evaluate=False``
    keeps the tree's structure (no automatic simplification), which reproduces the compiled
    torch module's floating-point behaviour most closely.

    >>> to_sympy(Tree.parse("aq(y, y_hat)"))
    y/sqrt(y_hat**2 + 1)
    >>> to_sympy(Tree.parse("add(y, y)"), weights=[1.0, 0.5, 0.5])
    1.0*y
    """
    ws = _weight_list(tree, weights)

    def one(i: int, name: str, args: list[sympy.Expr]) -> sympy.Expr:
        value = PRIMITIVES[name].sympy(*args)
        if ws is not None:
            value = sympy.Mul(sympy.Float(ws[i], precision=53), value, evaluate=evaluate)
        return value

    with nullcontext() if evaluate else sympy.evaluate(False):
        return tree.fold(one)


def _expansion_bound(tree: Tree) -> int:
    """An upper bound on the number of terms of any sub-expression after ``expand``."""
    cap = EXPAND_TERM_LIMIT + 1
    worst = 1

    def one(i: int, name: str, args: list[int]) -> int:
        nonlocal worst
        if name in ("add", "sub"):
            n = args[0] + args[1]
        elif name == "mul":
            n = args[0] * args[1]
        elif name == "square":
            n = args[0] * args[0]
        elif name == "aq":
            worst = max(worst, min(1 + args[1] * args[1], cap))  # the inside of the sqrt
            n = args[0]
        else:
            n = 1  # terminals and functions: one term (their arguments are bounded on their own)
        n = min(n, cap)
        worst = max(worst, n)
        return n

    tree.fold(one)
    return worst


@lru_cache(maxsize=16384)
def canonical(tree: Tree) -> str:
    """A canonical string of the tree's function: the de-duplication cache key.

    Algebraically identical trees get the same key in the common cases (commuted arguments,
    multiplication by 1, ``x - x``, ``square(a - b)`` vs ``square(b - a)``, ...); different
    functions get different keys. The key is deterministic across processes and machines.
    Trees with more than ``CANONICAL_MAX_SIZE`` nodes get ``"raw:" + tree.to_prefix()``.

    >>> canonical(Tree.parse("square(sub(y, y_hat))"))
    'y**2 - 2*y*y_hat + y_hat**2'
    """
    if tree.size > CANONICAL_MAX_SIZE:
        return "raw:" + tree.to_prefix()
    expr = to_sympy(tree)
    if _expansion_bound(tree) <= EXPAND_TERM_LIMIT:
        expr = sympy.expand(expr)
    return sympy.sstr(expr)


def to_string(tree: Tree, weights: Weights | None = None, digits: int = 3) -> str:
    """The readable infix string; with ``weights``, each rounded to ``digits`` decimals.

    Weights that round to 1 are left out; a weighted constant is shown as its value.

    >>> to_string(Tree.parse("mul(-1, plog(y_hat))"), weights=[1.0, 0.5, 1.0, 1.0])
    '(-0.500 * plog(y_hat))'
    """
    ws = _weight_list(tree, weights)

    def one(i: int, name: str, args: list[str]) -> str:
        if ws is None:
            return PRIMITIVES[name].fmt.format(*args)
        w = round(ws[i], digits)
        if name in CONSTANTS:
            return f"{CONSTANTS[name] * w:.{digits}f}"
        text = PRIMITIVES[name].fmt.format(*args)
        return text if w == 1 else f"{w:.{digits}f}*{text}"

    return tree.fold(one)


def to_latex(
    tree: Tree, weights: Weights | None = None, simplify: bool = False, digits: int = 3
) -> str:
    """LaTeX of the tree: from the primitives' templates, or of the sympy form if ``simplify``.

    >>> to_latex(Tree.parse("mul(y, plog(y_hat))"))
    '\\\\left(y \\\\cdot \\\\log\\\\left|\\\\hat{y}\\\\right|\\\\right)'
    >>> to_latex(Tree.parse("mul(y, plog(y_hat))"), simplify=True)[:7]
    'y \\\\log{'
    """
    if simplify:
        return sympy.latex(to_sympy(tree, weights), symbol_names={Y_HAT: r"\hat{y}"})
    ws = _weight_list(tree, weights)

    def one(i: int, name: str, args: list[str]) -> str:
        text = PRIMITIVES[name].latex.format(*args)
        if ws is None:
            return text
        w = round(ws[i], digits)
        if name in CONSTANTS:
            return f"{CONSTANTS[name] * w:.{digits}f}"
        return text if w == 1 else f"{w:.{digits}f} {text}"

    return tree.fold(one)


def to_callable(
    tree: Tree, weights: Weights | None = None, evaluate: bool = True
) -> Callable[[Any, Any], np.ndarray]:
    """A numpy function ``f(y_hat, y)`` (prediction first, as ``pointwise(p, t)``) via lambdify.

    The result is broadcast to the inputs' shape even for trees without an input. Meant as a
    reference for tests and plots, not for training.

    >>> f = to_callable(Tree.parse("sub(y_hat, y)"))
    >>> f(np.array([3.0, 1.0]), np.array([1.0, 1.0]))
    array([2., 0.])
    """
    fn = sympy.lambdify([Y_HAT, Y], to_sympy(tree, weights, evaluate=evaluate), modules="numpy")

    def call(y_hat: Any, y: Any) -> np.ndarray:
        y_hat, y = np.asarray(y_hat, dtype=np.float64), np.asarray(y, dtype=np.float64)
        out = np.asarray(fn(y_hat, y), dtype=np.float64)
        return np.broadcast_to(out, np.broadcast_shapes(y_hat.shape, y.shape)).copy()

    return call


__all__ = [
    "CANONICAL_MAX_SIZE",
    "EXPAND_TERM_LIMIT",
    "canonical",
    "to_callable",
    "to_latex",
    "to_string",
    "to_sympy",
]
