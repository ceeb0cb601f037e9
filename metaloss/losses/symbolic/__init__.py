"""Symbolic loss trees for EvoMAL and GP-LFL: primitives, trees, GP operators, exports, module.

Example:
    >>> from metaloss.losses.symbolic import SymbolicLoss, Tree, canonical
    >>> tree = Tree.parse("mul(-1, mul(y, plog(y_hat)))")
    >>> str(tree)
    '(-1 * (y * plog(y_hat)))'
    >>> SymbolicLoss(tree, learn_weights=False).spec()["config"]["tree"]
    ['mul', -1, ['mul', 'y', ['plog', 'y_hat']]]
"""

from __future__ import annotations

from metaloss.losses.symbolic.export import (
    canonical,
    to_callable,
    to_latex,
    to_string,
    to_sympy,
)
from metaloss.losses.symbolic.gp import (
    double_tournament,
    height_limit,
    one_point_crossover,
    subtree_mutation,
    var_and,
    var_or,
    within_height,
)
from metaloss.losses.symbolic.module import SymbolicLoss, compile_tree, evaluate
from metaloss.losses.symbolic.primitives import (
    CONSTANTS,
    FUNCTIONS,
    INPUTS,
    PRIMITIVES,
    TERMINALS,
    Primitive,
)
from metaloss.losses.symbolic.random_trees import full, generate, grow, ramped_half_and_half
from metaloss.losses.symbolic.tree import MAX_HEIGHT, RandomLike, Tree, TreeJSON, as_rng, as_tree

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "INPUTS",
    "MAX_HEIGHT",
    "PRIMITIVES",
    "TERMINALS",
    "Primitive",
    "RandomLike",
    "SymbolicLoss",
    "Tree",
    "TreeJSON",
    "as_rng",
    "as_tree",
    "canonical",
    "compile_tree",
    "double_tournament",
    "evaluate",
    "full",
    "generate",
    "grow",
    "height_limit",
    "one_point_crossover",
    "ramped_half_and_half",
    "subtree_mutation",
    "to_callable",
    "to_latex",
    "to_string",
    "to_sympy",
    "var_and",
    "var_or",
    "within_height",
]
