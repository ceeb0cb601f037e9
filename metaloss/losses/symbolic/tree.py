"""Immutable expression trees over the EvoMAL primitive set and their JSON form (random
generation: :mod:`metaloss.losses.symbolic.random_trees`).

A :class:`Tree` is a prefix-ordered tuple of primitive names (as DEAP's ``PrimitiveTree``):
``("mul", "y", "plog", "y_hat")`` is ``y * plog(y_hat)``. Node ``i`` owns the edge from its
parent (the root owns a virtual root edge), so a tree has ``size`` nodes and ``edges == size``
edge weights, weight ``i`` scaling the value of node ``i``.

The JSON form is plain nested data: an input is ``"y"`` / ``"y_hat"``, a constant is ``1`` /
``-1`` and an operator is ``[name, child, ...]``. The prefix string form
``"mul(y, plog(y_hat))"`` is accepted by :meth:`Tree.parse`.

Example:
    >>> t = Tree.parse("mul(y, plog(y_hat))")
    >>> str(t), t.size, t.height, t.edges
    ('(y * plog(y_hat))', 4, 2, 4)
    >>> t.to_json()
    ['mul', 'y', ['plog', 'y_hat']]
    >>> Tree.from_json(t.to_json()) == t
    True
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import numpy as np

from metaloss.errors import ConfigError
from metaloss.losses.symbolic.primitives import (
    BINARY,
    CONSTANTS,
    FUNCTIONS,
    INPUTS,
    PRIMITIVES,
)

#: Default maximum tree height of the GP search (EvoMAL), root-only tree = height 0.
MAX_HEIGHT = 10
#: Deepest tree accepted from JSON or a string (guards against recursion blow-ups).
MAX_PARSE_DEPTH = 200

T = TypeVar("T")
#: JSON form of a tree: ``"y"``, ``"y_hat"``, ``1``, ``-1`` or ``[name, child, ...]``.
TreeJSON = str | int | float | list[Any]
#: Anything usable as a random source: ``random.Random``, a numpy ``Generator`` or a seed.
RandomLike = random.Random | np.random.Generator | int | None


class _NumpyRandom:
    """The three ``random.Random`` methods this module needs, backed by a numpy Generator."""

    def __init__(self, gen: np.random.Generator) -> None:
        self.gen = gen

    def random(self) -> float:
        return float(self.gen.random())

    def randint(self, a: int, b: int) -> int:
        return int(self.gen.integers(a, b + 1))

    def choice(self, seq: Sequence[T]) -> T:
        return seq[int(self.gen.integers(len(seq)))]


def as_rng(rng: RandomLike) -> Any:
    """An object with ``random()``, ``randint(a, b)`` and ``choice(seq)``.

    A ``random.Random`` is used as is (its state advances), a numpy ``Generator`` is wrapped,
    an int seeds a new ``random.Random`` and ``None`` draws from OS entropy.

    >>> as_rng(3).randint(0, 9) == as_rng(3).randint(0, 9)
    True
    """
    if isinstance(rng, random.Random | _NumpyRandom):
        return rng
    if isinstance(rng, np.random.Generator):
        return _NumpyRandom(rng)
    if rng is None or (isinstance(rng, int) and not isinstance(rng, bool)):
        return random.Random(rng)
    raise ConfigError(f"rng must be random.Random, numpy Generator, int or None, got {rng!r}")


def _arity(name: str) -> int:
    return PRIMITIVES[name].arity


@dataclass(frozen=True, repr=False)
class Tree:
    """An immutable, hashable expression tree in prefix order.

    >>> Tree(("add", "y", "y_hat")) == Tree.parse("add(y, y_hat)")
    True
    """

    nodes: tuple[str, ...]

    def __post_init__(self) -> None:
        nodes = tuple(self.nodes)
        object.__setattr__(self, "nodes", nodes)
        if not nodes:
            raise ConfigError("symbolic tree: empty node list")
        need = 1
        for i, name in enumerate(nodes):
            if name not in PRIMITIVES:
                raise ConfigError(
                    f"symbolic tree: unknown primitive {name!r} at node {i}; "
                    f"known: {', '.join(PRIMITIVES)}"
                )
            if need == 0:
                raise ConfigError(f"symbolic tree: extra node {name!r} at node {i}")
            need += _arity(name) - 1
        if need != 0:
            raise ConfigError(f"symbolic tree: incomplete prefix list, {need} argument(s) missing")

    # ----------------------------------------------------------------- structure
    @cached_property
    def _structure(self) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...], tuple[int, ...]]:
        """(subtree end per node, children per node, subtree height per node)."""
        n = len(self.nodes)
        ends = [0] * n
        children: list[tuple[int, ...]] = [()] * n
        heights = [0] * n
        stack: list[int] = []  # start indices of finished subtrees; first child on top
        for i in range(n - 1, -1, -1):
            k = _arity(self.nodes[i])
            if k == 0:
                ends[i] = i + 1
            else:
                kids = tuple(reversed(stack[-k:]))
                del stack[-k:]
                children[i] = kids
                ends[i] = ends[kids[-1]]
                heights[i] = 1 + max(heights[c] for c in kids)
            stack.append(i)
        return tuple(ends), tuple(children), tuple(heights)

    @cached_property
    def depths(self) -> tuple[int, ...]:
        """Depth of every node (root 0), in prefix order."""
        depths = [0] * len(self.nodes)
        for i, kids in enumerate(self._structure[1]):
            for c in kids:
                depths[c] = depths[i] + 1
        return tuple(depths)

    @property
    def subtree_heights(self) -> tuple[int, ...]:
        """Height of the subtree rooted at every node, in prefix order."""
        return self._structure[2]

    @property
    def size(self) -> int:
        """Number of nodes (the complexity measure)."""
        return len(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def height(self) -> int:
        """Length of the longest root-to-leaf path (a single terminal has height 0)."""
        return self._structure[2][0]

    @property
    def edges(self) -> int:
        """Parent->child edges plus the root edge: the number of edge weights (== size)."""
        return len(self.nodes)

    def children(self, i: int) -> tuple[int, ...]:
        """Indices of the children of node ``i``, in argument order."""
        return self._structure[1][i]

    def subtree_slice(self, i: int) -> slice:
        """The slice of :attr:`nodes` holding the subtree rooted at node ``i``."""
        return slice(i, self._structure[0][i])

    def subtree(self, i: int) -> Tree:
        """The subtree rooted at node ``i``."""
        return Tree(self.nodes[self.subtree_slice(i)])

    def replace(self, i: int, sub: Tree | Sequence[str]) -> Tree:
        """A new tree with the subtree at node ``i`` replaced by ``sub``.

        >>> str(Tree.parse("add(y, 1)").replace(2, Tree.parse("y_hat")))
        '(y + y_hat)'
        """
        new = sub.nodes if isinstance(sub, Tree) else tuple(sub)
        s = self.subtree_slice(i)
        return Tree(self.nodes[: s.start] + new + self.nodes[s.stop :])

    def uses_both(self) -> bool:
        """True when the tree contains both ``y`` and ``y_hat`` (a valid loss)."""
        return "y" in self.nodes and "y_hat" in self.nodes

    def is_valid(self, max_height: int | None = MAX_HEIGHT) -> bool:
        """Uses both inputs and (unless ``max_height`` is None) is at most ``max_height`` tall."""
        return self.uses_both() and (max_height is None or self.height <= max_height)

    def fold(self, fn: Callable[[int, str, list[T]], T]) -> T:
        """Evaluate bottom-up without recursion: ``fn(index, name, child_values)`` per node.

        >>> Tree.parse("add(y, 1)").fold(lambda i, name, args: 1 + sum(args))
        3
        """
        stack: list[T] = []
        for i in range(len(self.nodes) - 1, -1, -1):
            name = self.nodes[i]
            k = _arity(name)
            if k:
                args = stack[-k:][::-1]
                del stack[-k:]
            else:
                args = []
            stack.append(fn(i, name, args))
        return stack[0]

    # ----------------------------------------------------------------- text forms
    def __str__(self) -> str:
        return self.fold(lambda i, name, args: PRIMITIVES[name].fmt.format(*args))

    def __repr__(self) -> str:
        return f"Tree.parse({self.to_prefix()!r})"

    def to_prefix(self) -> str:
        """The prefix string accepted by :meth:`parse`, e.g. ``"mul(y, plog(y_hat))"``."""
        return self.fold(lambda i, name, args: f"{name}({', '.join(args)})" if args else name)

    @classmethod
    def parse(cls, text: str) -> Tree:
        """Parse the prefix notation ``name(arg, arg)``; constants are ``1`` and ``-1``.

        >>> Tree.parse("sub(y_hat, -1)").nodes
        ('sub', 'y_hat', '-1')
        """
        if not isinstance(text, str):
            raise ConfigError(f"symbolic tree string must be a str, got {type(text).__name__}")
        tokens = re.findall(r"[A-Za-z_][A-Za-z0-9_]*|[+-]?\d+(?:\.\d*)?|\S", text)
        pos = 0
        nodes: list[str] = []

        def err(msg: str) -> ConfigError:
            return ConfigError(f"symbolic tree string {text!r}: {msg} (token {pos})")

        def node(depth: int) -> None:
            nonlocal pos
            if depth > MAX_PARSE_DEPTH:
                raise err(f"deeper than {MAX_PARSE_DEPTH}")
            if pos >= len(tokens):
                raise err("unexpected end")
            tok = tokens[pos]
            pos += 1
            name = _constant_name(tok)
            if name is None:
                if tok not in PRIMITIVES:
                    raise err(f"unknown primitive {tok!r}")
                name = tok
            nodes.append(name)
            k = _arity(name)
            if k == 0:
                return
            if pos >= len(tokens) or tokens[pos] != "(":
                raise err(f"{name!r} needs {k} argument(s) in parentheses")
            pos += 1
            for j in range(k):
                if j:
                    if pos >= len(tokens) or tokens[pos] != ",":
                        raise err(f"{name!r} takes {k} argument(s), expected ','")
                    pos += 1
                node(depth + 1)
            if pos >= len(tokens) or tokens[pos] != ")":
                raise err(f"{name!r} takes {k} argument(s), expected ')'")
            pos += 1

        node(0)
        if pos != len(tokens):
            raise err(f"trailing text {''.join(tokens[pos:])!r}")
        return cls(tuple(nodes))

    # ----------------------------------------------------------------- JSON
    def to_json(self) -> TreeJSON:
        """Plain nested data: ``"y"``, ``"y_hat"``, ``1``, ``-1`` or ``[name, child, ...]``."""

        def one(i: int, name: str, args: list[Any]) -> Any:
            if name in CONSTANTS:
                return int(CONSTANTS[name])
            return [name, *args] if args else name

        return self.fold(one)

    @classmethod
    def from_json(cls, data: TreeJSON) -> Tree:
        """Rebuild a tree from :meth:`to_json` data, validating every node.

        >>> Tree.from_json(["plog", "y_hat"]).nodes
        ('plog', 'y_hat')
        >>> Tree.from_json(["log", "y"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        metaloss.errors.ConfigError: symbolic tree JSON: unknown primitive 'log' at tree[0]...
        """
        nodes: list[str] = []

        def visit(item: Any, path: str, depth: int) -> None:
            if depth > MAX_PARSE_DEPTH:
                raise ConfigError(f"symbolic tree JSON: deeper than {MAX_PARSE_DEPTH} at {path}")
            if isinstance(item, bool):
                raise ConfigError(f"symbolic tree JSON: bad node {item!r} at {path}")
            if isinstance(item, int | float):
                name = _constant_name(item)
                if name is None:
                    raise ConfigError(
                        f"symbolic tree JSON: bad constant {item!r} at {path}; "
                        f"constants are {', '.join(CONSTANTS)}"
                    )
                nodes.append(name)
                return
            if isinstance(item, str):
                if item not in INPUTS:
                    raise ConfigError(
                        f"symbolic tree JSON: bad terminal {item!r} at {path}; "
                        "terminals are 'y', 'y_hat', 1, -1 (operators are lists)"
                    )
                nodes.append(item)
                return
            if not isinstance(item, list | tuple) or not item:
                raise ConfigError(f"symbolic tree JSON: bad node {item!r} at {path}")
            name = item[0]
            if not isinstance(name, str) or name not in FUNCTIONS:
                raise ConfigError(
                    f"symbolic tree JSON: unknown primitive {name!r} at {path}[0]; "
                    f"operators are {', '.join(FUNCTIONS)}"
                )
            k = _arity(name)
            if len(item) - 1 != k:
                raise ConfigError(
                    f"symbolic tree JSON: {name!r} takes {k} argument(s), "
                    f"got {len(item) - 1} at {path}"
                )
            nodes.append(name)
            for j, child in enumerate(item[1:], start=1):
                visit(child, f"{path}[{j}]", depth + 1)

        visit(data, "tree", 0)
        return cls(tuple(nodes))

    # ----------------------------------------------------------------- repair
    def repair(self, rng: RandomLike = None, max_height: int = MAX_HEIGHT) -> Tree:
        """A valid tree (uses ``y`` and ``y_hat``) made by inserting each missing input.

        Each missing input ``v`` is inserted by one random edit among: wrap a subtree ``s`` as
        ``op(s, v)`` / ``op(v, s)`` with a random binary ``op`` where that stays within
        ``max_height``, or replace a constant (or a surplus copy of the other input) by ``v``.
        When neither is possible a unary node is turned into a binary one, and as a last
        resort the root is wrapped (the only case that may exceed ``max_height``, and only
        when ``self`` already fills it). Valid trees are returned unchanged.

        >>> t = Tree.parse("add(y, 1)").repair(0)
        >>> t.uses_both(), t.height <= MAX_HEIGHT
        (True, True)
        """
        if max_height < 1:
            raise ConfigError(f"max_height must be >= 1 to hold y and y_hat, got {max_height}")
        r = as_rng(rng)
        tree = self
        while True:
            missing = [v for v in INPUTS if v not in tree.nodes]
            if not missing:
                return tree
            var = missing[0] if len(missing) == 1 else r.choice(missing)
            tree = tree._insert(var, r, max_height)

    def _insert(self, var: str, r: Any, max_height: int) -> Tree:
        depths, heights = self.depths, self.subtree_heights
        edits: list[tuple[str, int]] = [
            ("wrap", i) for i in range(len(self)) if depths[i] + heights[i] + 1 <= max_height
        ]
        counts = {v: self.nodes.count(v) for v in INPUTS}
        edits += [
            ("replace", i)
            for i, name in enumerate(self.nodes)
            if name in CONSTANTS or (name in INPUTS and counts[name] > 1)
        ]
        if not edits:
            edits = [("unary", i) for i, name in enumerate(self.nodes) if _arity(name) == 1]
        if not edits:
            edits = [("wrap", 0)]
        kind, i = r.choice(edits)
        if kind == "replace":
            return self.replace(i, (var,))
        op = r.choice(BINARY)
        # "unary": turn the unary node into op(its child, var); "wrap": op(subtree, var).
        sub = self.subtree(self.children(i)[0] if kind == "unary" else i).nodes
        new = (op, *sub, var) if r.random() < 0.5 else (op, var, *sub)
        return self.replace(i, new)


def _constant_name(value: Any) -> str | None:
    """``"1"`` / ``"-1"`` for a numeric or string constant equal to +-1, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if value == 1:
        return "1"
    if value == -1:
        return "-1"
    return None


def as_tree(tree: Tree | TreeJSON) -> Tree:
    """A :class:`Tree` from a tree, its JSON form, or a prefix string (``"add(y, y_hat)"``).

    >>> as_tree("add(y, y_hat)") == as_tree(["add", "y", "y_hat"])
    True
    """
    if isinstance(tree, Tree):
        return tree
    if isinstance(tree, str):
        return Tree.parse(tree)
    return Tree.from_json(tree)


_MOVED = ("TERMINAL_RATIO", "full", "generate", "grow", "ramped_half_and_half")


def __getattr__(name: str) -> Any:
    """The random-tree generators moved to :mod:`metaloss.losses.symbolic.random_trees`;
    importing them from here still works."""
    if name in _MOVED:
        from metaloss.losses.symbolic import random_trees

        return getattr(random_trees, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MAX_HEIGHT", "RandomLike", "Tree", "TreeJSON", "as_rng", "as_tree"]
