"""A symbolic tree as a torch loss with one weight per edge (EvoMAL) or none (GP-LFL).

The tree is compiled once into a flat instruction list evaluated bottom-up; a call does no
recursion, no in-place writes and no ``.item()``, so it works under ``torch.func.vmap`` /
``functional_call`` over ``weights`` (e.g. ``vmap`` over a stack of weight vectors).

Example:
    >>> import torch
    >>> loss = SymbolicLoss.from_string("mul(-1, mul(y, plog(y_hat)))", learn_weights=False)
    >>> logits, labels = torch.zeros(2, 4), torch.tensor([0, 3])
    >>> round(float(loss(logits, labels)), 4) == round(float(torch.log(torch.tensor(4.0))), 4)
    True
    >>> loss.describe()
    '(-1 * (y * plog(y_hat)))'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy
import torch
from torch import Tensor, nn

from metaloss.errors import ConfigError
from metaloss.losses.base import OutputWiseLoss, register
from metaloss.losses.symbolic.export import to_latex, to_string, to_sympy
from metaloss.losses.symbolic.primitives import CONSTANTS, PRIMITIVES
from metaloss.losses.symbolic.tree import Tree, TreeJSON, as_tree

# One instruction per node in reverse prefix order: (node index, kind, fn or constant, kids).
# kind: 0 = y_hat, 1 = y, 2 = constant, 3 = operator.
Instruction = tuple[int, int, Any, tuple[int, ...]]


def compile_tree(tree: Tree) -> tuple[Instruction, ...]:
    """The flat program :func:`evaluate` runs: children always come before their parent."""
    program: list[Instruction] = []
    for i in range(len(tree) - 1, -1, -1):
        name = tree.nodes[i]
        if name == "y_hat":
            program.append((i, 0, None, ()))
        elif name == "y":
            program.append((i, 1, None, ()))
        elif name in CONSTANTS:
            program.append((i, 2, CONSTANTS[name], ()))
        else:
            program.append((i, 3, PRIMITIVES[name].torch, tree.children(i)))
    return tuple(program)


def evaluate(program: tuple[Instruction, ...], p: Tensor, t: Tensor, weights: Tensor) -> Tensor:
    """Run a compiled tree element-wise: node ``i``'s value is ``weights[i] * op(children)``.

    ``p`` is the prediction ``y_hat`` and ``t`` the target ``y``. A tree without inputs gives
    a value broadcast to ``p``'s shape.
    """
    ws = weights.unbind(0)
    values: list[Tensor | None] = [None] * len(ws)
    for i, kind, fn, kids in program:
        if kind == 0:
            v = ws[i] * p
        elif kind == 1:
            v = ws[i] * t
        elif kind == 2:
            v = ws[i] * fn
        else:
            op: Callable[..., Tensor] = fn
            v = ws[i] * op(*[values[c] for c in kids])
        values[i] = v
    out = values[0]
    assert out is not None
    if out.shape != p.shape:
        out = out.expand(p.shape)
    return out


@register
class SymbolicLoss(OutputWiseLoss):
    """An expression-tree loss ``f(y, y_hat)`` applied output-wise, with edge weights.

    Args:
        tree: a :class:`Tree`, its JSON form (``["mul", "y", ["plog", "y_hat"]]``) or a prefix
            string (``"mul(y, plog(y_hat))"``).
        learn_weights: EvoMAL (True): ``weights`` is an ``nn.Parameter``, initialised to
            ``1 + weight_init_std * N(0, 1)`` from ``seed``. GP-LFL (False): a buffer of ones.
        class_reduction: "sum" (EvoMAL) or "mean" over the per-class values.
        root_weight: with False the root's weight is fixed at 1, so only child -> parent
            edges carry weights, as the EvoMAL reference does; a root weight (True, our
            default) multiplies the whole loss: a free global step-size factor.

    The state dict always holds ``weights`` (one per edge, see :attr:`Tree.edges`).

    >>> loss = SymbolicLoss(["mul", "y", ["plog", "y_hat"]], seed=1)
    >>> loss.weights.shape, loss.tree.height
    (torch.Size([4]), 2)
    """

    kind = "symbolic"

    def __init__(
        self,
        tree: Tree | TreeJSON,
        learn_weights: bool = True,
        class_reduction: str = "sum",
        weight_init_std: float = 1e-3,
        seed: int = 0,
        root_weight: bool = True,
    ) -> None:
        super().__init__(class_reduction)
        if not weight_init_std >= 0:
            raise ConfigError(f"weight_init_std must be >= 0, got {weight_init_std!r}")
        self.tree = as_tree(tree)
        self.learn_weights = bool(learn_weights)
        self.weight_init_std = float(weight_init_std)
        self.seed = int(seed)
        self.root_weight = bool(root_weight)
        n = self.tree.edges
        if self.learn_weights:
            gen = torch.Generator().manual_seed(self.seed)
            init = 1.0 + self.weight_init_std * torch.randn(n, generator=gen)
            if not self.root_weight:
                init[0] = 1.0
            self.weights = nn.Parameter(init)
        else:
            self.register_buffer("weights", torch.ones(n))
        self._program = compile_tree(self.tree)

    @classmethod
    def from_string(cls, text: str, **kwargs: Any) -> SymbolicLoss:
        """Build from the prefix notation, e.g. ``SymbolicLoss.from_string("add(y, y_hat)")``."""
        return cls(Tree.parse(text), **kwargs)

    def effective_weights(self) -> Tensor:
        """The weights the tree is evaluated with: the root's is 1 without ``root_weight``."""
        w = self.weights
        if self.root_weight:
            return w
        return torch.cat([torch.ones_like(w[:1]), w[1:]])

    def pointwise(self, p: Tensor, t: Tensor) -> Tensor:
        return evaluate(self._program, p, t, self.effective_weights())

    def config(self) -> dict[str, Any]:
        out = {
            "tree": self.tree.to_json(),
            "learn_weights": self.learn_weights,
            "class_reduction": self.class_reduction,
            "weight_init_std": self.weight_init_std,
            "seed": self.seed,
        }
        if not self.root_weight:  # written only when set: older specs stay unchanged
            out["root_weight"] = False
        return out

    def describe(self, digits: int = 3) -> str:
        """The formula; learned weights are shown rounded (those rounding to 1 are left out)."""
        return to_string(self.tree, self._shown(), digits)

    def to_sympy(self) -> sympy.Expr:
        """The sympy expression, including the learned weights."""
        return to_sympy(self.tree, self._shown())

    def to_latex(self, simplify: bool = False) -> str:
        """LaTeX of the formula, including the learned weights."""
        return to_latex(self.tree, self._shown(), simplify)

    def _shown(self) -> Tensor | None:
        return self.effective_weights().detach() if self.learn_weights else None

    def extra_repr(self) -> str:
        return f"{self.tree}, learn_weights={self.learn_weights}"


__all__ = ["SymbolicLoss", "compile_tree", "evaluate"]
