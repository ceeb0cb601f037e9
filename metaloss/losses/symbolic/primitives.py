"""The EvoMAL primitive set: terminals and operators of a symbolic loss tree.

Each :class:`Primitive` carries everything the exports need: a torch implementation (the
compiled loss), a sympy implementation (canonical form, LaTeX, numpy reference), a LaTeX
template and a string template. The protected operators are written the same way in torch
and sympy so both give the same numbers:

* ``aq(a, b) = a / sqrt(1 + b^2)`` (analytic quotient, never divides by zero),
* ``plog(x) = log(max(|x|, 1e-7))``, ``psqrt(x) = sqrt(max(|x|, 1e-7))``.

Terminals are ``y`` (target), ``y_hat`` (prediction) and the constants ``1`` and ``-1``.

Example:
    >>> import torch
    >>> PRIMITIVES["aq"].torch(torch.tensor(3.0), torch.tensor(0.0))
    tensor(3.)
    >>> PRIMITIVES["plog"].sympy(Y_HAT)
    log(Max(1.0e-7, Abs(y_hat)))
    >>> PRIMITIVES["add"].fmt.format("y", "y_hat")
    '(y + y_hat)'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy
import torch
from torch import Tensor

#: Floor of the protected operators, as in EvoMAL.
EPS = 1e-7

#: The sympy symbols of the target and the prediction (real-valued).
Y = sympy.Symbol("y", real=True)
Y_HAT = sympy.Symbol("y_hat", real=True)


@dataclass(frozen=True)
class Primitive:
    """One node type of a symbolic tree.

    ``arity`` 0 marks a terminal; a terminal with ``value`` set is a constant, otherwise it is
    an input (``y`` or ``y_hat``) and ``torch`` is ``None``. ``fmt`` and ``latex`` are
    :meth:`str.format` templates over the argument strings (``{0}``, ``{1}``).
    """

    name: str
    arity: int
    torch: Callable[..., Tensor] | None
    sympy: Callable[..., sympy.Expr] | None
    latex: str
    fmt: str
    value: float | None = None

    @property
    def is_terminal(self) -> bool:
        """True for ``y``, ``y_hat`` and the constants."""
        return self.arity == 0


def _aq(a: Tensor, b: Tensor) -> Tensor:
    return a * torch.rsqrt(1 + b * b)


def _plog(x: Tensor) -> Tensor:
    return torch.log(torch.clamp(torch.abs(x), min=EPS))


def _psqrt(x: Tensor) -> Tensor:
    return torch.sqrt(torch.clamp(torch.abs(x), min=EPS))


_SYM_EPS = sympy.Float(EPS)


def _sym_plog(x: sympy.Expr) -> sympy.Expr:
    return sympy.log(sympy.Max(sympy.Abs(x), _SYM_EPS))


def _sym_psqrt(x: sympy.Expr) -> sympy.Expr:
    return sympy.sqrt(sympy.Max(sympy.Abs(x), _SYM_EPS))


_ALL: tuple[Primitive, ...] = (
    # Terminals.
    Primitive("y", 0, None, lambda: Y, "y", "y"),
    Primitive("y_hat", 0, None, lambda: Y_HAT, r"\hat{{y}}", "y_hat"),
    Primitive("1", 0, None, lambda: sympy.Integer(1), "1", "1", value=1.0),
    Primitive("-1", 0, None, lambda: sympy.Integer(-1), "-1", "-1", value=-1.0),
    # Binary operators.
    Primitive("add", 2, torch.add, lambda a, b: a + b, r"\left({0} + {1}\right)", "({0} + {1})"),
    Primitive("sub", 2, torch.sub, lambda a, b: a - b, r"\left({0} - {1}\right)", "({0} - {1})"),
    Primitive(
        "mul", 2, torch.mul, lambda a, b: a * b, r"\left({0} \cdot {1}\right)", "({0} * {1})"
    ),
    Primitive(
        "aq",
        2,
        _aq,
        lambda a, b: a / sympy.sqrt(1 + b**2),
        r"\frac{{{0}}}{{\sqrt{{1 + {1}^{{2}}}}}}",
        "aq({0}, {1})",
    ),
    Primitive(
        "min",
        2,
        torch.minimum,
        sympy.Min,
        r"\min\left({0}, {1}\right)",
        "min({0}, {1})",
    ),
    Primitive(
        "max",
        2,
        torch.maximum,
        sympy.Max,
        r"\max\left({0}, {1}\right)",
        "max({0}, {1})",
    ),
    # Unary operators.
    Primitive(
        "sign", 1, torch.sign, sympy.sign, r"\operatorname{{sign}}\left({0}\right)", "sign({0})"
    ),
    Primitive("square", 1, torch.square, lambda a: a**2, r"\left({0}\right)^{{2}}", "square({0})"),
    Primitive("abs", 1, torch.abs, sympy.Abs, r"\left|{0}\right|", "abs({0})"),
    Primitive("plog", 1, _plog, _sym_plog, r"\log\left|{0}\right|", "plog({0})"),
    Primitive("psqrt", 1, _psqrt, _sym_psqrt, r"\sqrt{{\left|{0}\right|}}", "psqrt({0})"),
    Primitive("tanh", 1, torch.tanh, sympy.tanh, r"\tanh\left({0}\right)", "tanh({0})"),
)

#: Every primitive by name.
PRIMITIVES: dict[str, Primitive] = {p.name: p for p in _ALL}
#: Names of the terminals (inputs first, then constants).
TERMINALS: tuple[str, ...] = tuple(p.name for p in _ALL if p.arity == 0)
#: Names of the operators (arity >= 1).
FUNCTIONS: tuple[str, ...] = tuple(p.name for p in _ALL if p.arity > 0)
#: The two input terminals every valid loss tree must contain.
INPUTS: tuple[str, str] = ("y", "y_hat")
#: Names of the constant terminals and their values.
CONSTANTS: dict[str, float] = {p.name: p.value for p in _ALL if p.value is not None}
#: Binary operator names (used by :meth:`Tree.repair`).
BINARY: tuple[str, ...] = tuple(p.name for p in _ALL if p.arity == 2)

__all__ = [
    "BINARY",
    "CONSTANTS",
    "EPS",
    "FUNCTIONS",
    "INPUTS",
    "PRIMITIVES",
    "TERMINALS",
    "Y",
    "Y_HAT",
    "Primitive",
]
