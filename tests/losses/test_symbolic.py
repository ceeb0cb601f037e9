"""Tests of the symbolic loss representation (EvoMAL / GP-LFL)."""

from __future__ import annotations

import doctest
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call, grad, vmap

from metaloss.errors import ConfigError
from metaloss.losses import build_loss
from metaloss.losses.symbolic import (
    FUNCTIONS,
    MAX_HEIGHT,
    PRIMITIVES,
    SymbolicLoss,
    Tree,
    canonical,
    double_tournament,
    export,
    full,
    generate,
    gp,
    grow,
    height_limit,
    module,
    one_point_crossover,
    primitives,
    ramped_half_and_half,
    subtree_mutation,
    to_callable,
    to_latex,
    to_sympy,
    tree,
)
from metaloss.losses.symbolic.primitives import Y_HAT, Y

CE_TREE = "mul(-1, mul(y, plog(y_hat)))"
EDGE_VALUES = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 1e-9, -1e-8, 3e3, -1e4]

UNARY = [name for name in FUNCTIONS if PRIMITIVES[name].arity == 1]
BINARY = [name for name in FUNCTIONS if PRIMITIVES[name].arity == 2]


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:
    unary = st.tuples(st.sampled_from(UNARY), children).map(list)
    binary = st.tuples(st.sampled_from(BINARY), children, children).map(list)
    return unary | binary


#: Random JSON trees over the whole primitive set (valid or not: both are representable).
tree_json = st.recursive(st.sampled_from(["y", "y_hat", 1, -1]), _extend, max_leaves=24)


def _inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A grid of edge values for (y_hat, y) plus random normals, float64."""
    edge = torch.tensor(EDGE_VALUES, dtype=torch.float64)
    p, t = torch.meshgrid(edge, edge, indexing="ij")
    gen = torch.Generator().manual_seed(seed)
    rp, rt = torch.randn(2, 64, generator=gen, dtype=torch.float64) * 3
    return torch.cat([p.reshape(-1), rp]), torch.cat([t.reshape(-1), rt])


def _evolved_tree(seed: int, generations: int = 3) -> Tree:
    rng = random.Random(seed)
    t = ramped_half_and_half(rng)
    for _ in range(generations):
        t, _ = one_point_crossover(t, ramped_half_and_half(rng), rng)
        t = subtree_mutation(t, rng)
    return t


# --------------------------------------------------------------------------- primitives
def test_primitive_set_is_evomal() -> None:
    assert set(PRIMITIVES) == {
        *("y", "y_hat", "1", "-1", "add", "sub", "mul", "aq", "min", "max"),
        *("sign", "square", "abs", "plog", "psqrt", "tanh"),
    }
    for p in PRIMITIVES.values():
        assert p.fmt and p.latex and p.sympy is not None
        assert (p.torch is None) == (p.arity == 0)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_each_primitive_torch_matches_sympy(name: str) -> None:
    import sympy

    prim = PRIMITIVES[name]
    a, b = _inputs(0)
    args = (a, b)[: prim.arity]
    out = prim.torch(*args).numpy()
    fn = sympy.lambdify([Y_HAT, Y], prim.sympy(*(Y_HAT, Y)[: prim.arity]), modules="numpy")
    ref = np.broadcast_to(fn(a.numpy(), b.numpy()), out.shape)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-300)


def test_protected_operators() -> None:
    x = torch.tensor([0.0, -4.0, 1e-12])
    assert torch.allclose(PRIMITIVES["plog"].torch(x), torch.log(torch.tensor([1e-7, 4.0, 1e-7])))
    assert torch.allclose(PRIMITIVES["psqrt"].torch(x), torch.tensor([1e-7, 4.0, 1e-7]).sqrt())
    assert float(PRIMITIVES["aq"].torch(torch.tensor(3.0), torch.tensor(4.0))) == pytest.approx(
        3 / 17**0.5
    )


# --------------------------------------------------------------------------- tree
def test_tree_basics() -> None:
    t = Tree.parse("mul(y, plog(y_hat))")
    assert t.nodes == ("mul", "y", "plog", "y_hat")
    assert str(t) == "(y * plog(y_hat))"
    assert (t.size, t.height, t.edges, len(t)) == (4, 2, 4, 4)
    assert t.depths == (0, 1, 1, 2)
    assert t.children(0) == (1, 2)
    assert t.subtree(2) == Tree.parse("plog(y_hat)")
    assert t.uses_both() and not Tree.parse("plog(y_hat)").uses_both()
    assert hash(t) == hash(Tree.parse(t.to_prefix()))
    assert {t, Tree.parse("mul(y, plog(y_hat))")} == {t}
    assert eval(repr(t), {"Tree": Tree}) == t
    assert Tree.parse("y").height == 0
    with pytest.raises(ConfigError, match="incomplete"):
        Tree(("add", "y"))
    with pytest.raises(ConfigError, match="extra node"):
        Tree(("y", "y_hat"))
    with pytest.raises(ConfigError, match="unknown primitive 'log'"):
        Tree(("log", "y"))


@settings(max_examples=60, deadline=None)
@given(tree_json)
def test_json_round_trip_is_exact(data: object) -> None:
    t = Tree.from_json(data)
    assert t.to_json() == data
    encoded = json.loads(json.dumps(t.to_json()))
    assert Tree.from_json(encoded) == t
    assert Tree.parse(t.to_prefix()) == t
    assert t.edges == t.size


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (["log", "y"], r"unknown primitive 'log' at tree\[0\]"),
        (["add", "y", ["mul", "y_hat", ["exp", 1]]], r"'exp' at tree\[2\]\[2\]\[0\]"),
        (["add", "y"], r"'add' takes 2 argument\(s\), got 1 at tree"),
        (["plog", "x"], r"bad terminal 'x' at tree\[1\]"),
        (["mul", "y", 2], r"bad constant 2 at tree\[2\]"),
        (["mul", "y", True], r"bad node True at tree\[2\]"),
        ({"op": "add"}, r"bad node"),
        ([], r"bad node"),
    ],
)
def test_json_validation_names_the_bad_node(data: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Tree.from_json(data)


def test_json_accepts_float_constants_and_rejects_deep_nesting() -> None:
    assert Tree.from_json(["add", "y", -1.0]).nodes == ("add", "y", "-1")
    deep: object = "y"
    for _ in range(tree.MAX_PARSE_DEPTH + 5):
        deep = ["abs", deep]
    with pytest.raises(ConfigError, match="deeper"):
        Tree.from_json(deep)


@pytest.mark.parametrize(
    "text", ["add(y)", "add(y, y_hat", "foo(y)", "add(y, y_hat) y", "mul(y, 2)", "plog y", ""]
)
def test_parse_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        Tree.parse(text)


def test_parse_constants_and_whitespace() -> None:
    assert Tree.parse(" sub( y_hat ,+1 )").nodes == ("sub", "y_hat", "1")
    assert Tree.parse("max(-1, y)").to_json() == ["max", -1, "y"]


def test_generation_is_deterministic_and_valid() -> None:
    a = [ramped_half_and_half(random.Random(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    gen_trees = [ramped_half_and_half(np.random.default_rng(5)) for _ in range(2)]
    assert gen_trees[0] == gen_trees[1]
    rng = random.Random(0)
    for _ in range(200):
        t = ramped_half_and_half(rng)
        assert t.uses_both() and t.height <= 6  # depth 4 plus one level per missing input
    for _ in range(50):
        assert generate(rng, 3, 3, "full").height == 3
        assert full(rng, 2, 3).uses_both() and grow(rng, 0, 2).uses_both()


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12))
def test_repair_makes_valid_trees_within_height(seed: int, max_height: int) -> None:
    rng = random.Random(seed)
    raw = generate(rng, 0, max_height, rng.choice(["full", "grow"]))
    fixed = raw.repair(rng, max_height)
    assert fixed.uses_both() and fixed.height <= max_height
    if raw.uses_both():
        assert fixed == raw


def test_repair_edge_cases() -> None:
    chain = Tree(("abs",) * 4 + ("y",))  # every leaf at the height limit, no constants
    fixed = chain.repair(0, max_height=4)
    assert fixed.uses_both() and fixed.height == 4
    assert Tree.parse("1").repair(1, max_height=1).uses_both()
    with pytest.raises(ConfigError):
        Tree.parse("y").repair(0, max_height=0)


# --------------------------------------------------------------------------- GP operators
@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, MAX_HEIGHT))
def test_gp_operators_return_valid_trees_within_height(seed: int, max_height: int) -> None:
    rng = random.Random(seed)
    pop = [ramped_half_and_half(rng, 1, min(4, max_height - 1), max_height) for _ in range(8)]
    for _ in range(6):
        nxt = []
        for a, b in zip(pop[::2], pop[1::2], strict=True):
            c, d = one_point_crossover(a, b, rng, max_height=max_height)
            nxt += [subtree_mutation(c, rng, max_height=max_height), d]
        pop = nxt
        for t in pop:
            assert t.uses_both() and t.height <= max_height, str(t)


def test_crossover_swaps_subtrees_and_falls_back_to_parents() -> None:
    a, b = Tree.parse("add(y, y_hat)"), Tree.parse("mul(tanh(y), y_hat)")
    seen = set()
    for seed in range(30):
        c, d = one_point_crossover(a, b, seed)
        seen.add((c, d))
        assert c.size + d.size >= a.size + b.size  # repair only adds nodes
    assert len(seen) > 1
    tall = Tree.parse("add(abs(abs(abs(y))), y_hat)")
    fallbacks = 0
    for seed in range(30):  # a child taller than 2 is replaced by its parent
        c, d = one_point_crossover(a, tall, seed, max_height=2)
        assert c.height <= 2 and c.uses_both() and (d == tall or d.height <= 2)
        fallbacks += d == tall
    assert fallbacks > 0
    assert one_point_crossover(Tree.parse("y"), a, 0) == (Tree.parse("y"), a)


def test_mutation_uses_a_grow_subtree() -> None:
    t = Tree.parse("add(y, y_hat)")
    children = {subtree_mutation(t, seed) for seed in range(40)}
    assert len(children) > 10
    assert all(c.height <= 1 + 2 + 1 for c in children)  # depth 1 + grow(<=2) + repair
    assert subtree_mutation(t, random.Random(3)) == subtree_mutation(t, random.Random(3))


def test_height_limit_wrapper() -> None:
    wrap = height_limit(lambda a, b: (Tree(("abs", *a.nodes)), b), max_height=1)
    a, b = Tree.parse("add(y, y_hat)"), Tree.parse("sub(y, y_hat)")
    assert wrap(a, b) == (a, b)
    assert gp.within_height(a, 1) and not gp.within_height(Tree(("abs", *a.nodes)), 1)


def test_double_tournament() -> None:
    pop = list(range(10))
    fit = [float(i) for i in range(10)]
    fit[0] = float("nan")  # NaN is the worst fitness
    sel = double_tournament(pop, fit, [5] * 10, k=2000, rng=0, fitness_size=4)
    counts = np.bincount(sel, minlength=10)
    assert counts[0] == 0 or counts[0] < counts[1] / 10
    assert counts[1] > counts[5] > counts[9]
    # equal fitness: parsimony prefers the smaller of two different trees with probability
    # 1.4 / 2; two random draws differ half the time, so the smaller one wins 0.25 + 0.5 * 0.7
    for first in (True, False):
        sel = double_tournament([0, 1], [1.0, 1.0], [1, 9], 4000, random.Random(1), 4, 1.4, first)
        assert 0.56 < sel.count(0) / len(sel) < 0.64
        sel = double_tournament([0, 1], [1.0, 1.0], [1, 9], 4000, random.Random(1), 4, 1.0, first)
        assert 0.46 < sel.count(0) / len(sel) < 0.54
    trees = [Tree.parse("add(y, y_hat)"), Tree.parse("add(y, abs(y_hat))")]
    assert double_tournament(trees, [1.0, 0.0], None, 3, 0)[0] in trees
    assert double_tournament(pop, fit, [5] * 10, 7, 3) == double_tournament(
        pop, fit, [5] * 10, 7, 3
    )
    with pytest.raises(ConfigError, match="parsimony"):
        double_tournament(pop, fit, [5] * 10, 2, 0, parsimony_size=2.5)
    with pytest.raises(ConfigError, match="length"):
        double_tournament(pop, fit[:3], [5] * 10, 2, 0)


# --------------------------------------------------------------------------- exports
EQUIVALENT = [
    ("add(y, y_hat)", "add(y_hat, y)"),
    ("add(y, y_hat)", "add(y_hat, mul(y, 1))"),
    ("mul(y, plog(y_hat))", "mul(plog(y_hat), mul(-1, mul(-1, y)))"),
    ("sub(y_hat, y)", "add(y_hat, mul(-1, y))"),
    ("square(sub(y, y_hat))", "square(sub(y_hat, y))"),
    ("square(sub(y, y_hat))", "mul(sub(y, y_hat), sub(y, y_hat))"),
    ("abs(sub(y, y_hat))", "abs(sub(y_hat, y))"),
    ("max(y, y_hat)", "max(y_hat, y)"),
    ("mul(add(y, 1), y_hat)", "add(mul(y, y_hat), y_hat)"),
    ("add(y, y_hat)", "add(y, add(y_hat, sub(y, y)))"),
]
DIFFERENT = [
    "add(y, y_hat)",
    "mul(y, y_hat)",
    "sub(y, y_hat)",
    "sub(y_hat, y)",
    "aq(y, y_hat)",
    "aq(y_hat, y)",
    "min(y, y_hat)",
    "max(y, y_hat)",
    "mul(y, plog(y_hat))",
    "mul(y, psqrt(y_hat))",
    "mul(y, tanh(y_hat))",
    "mul(y, sign(y_hat))",
    "mul(y, abs(y_hat))",
    "mul(y, square(y_hat))",
    CE_TREE,
    "square(sub(y, y_hat))",
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_canonical_equal_for_equivalent_trees(a: str, b: str) -> None:
    assert canonical(Tree.parse(a)) == canonical(Tree.parse(b))


def test_canonical_differs_for_different_functions() -> None:
    keys = [canonical(Tree.parse(s)) for s in DIFFERENT]
    assert len(set(keys)) == len(keys)
    big = Tree(("add",) * 200 + ("y",) * 100 + ("y_hat",) * 101)
    assert canonical(big).startswith("raw:")


def test_canonical_is_stable_across_processes() -> None:
    trees = [_evolved_tree(s, 2) for s in range(15)]
    code = (
        "import json, sys\n"
        "from metaloss.losses.symbolic import Tree, canonical\n"
        "print(json.dumps([canonical(Tree.from_json(t)) for t in json.load(sys.stdin)]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps([t.to_json() for t in trees]),
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert json.loads(out.stdout) == [canonical(t) for t in trees]


def test_sympy_latex_and_callable() -> None:
    t = Tree.parse(CE_TREE)
    assert str(to_sympy(t)) == "-y*log(Max(1.0e-7, Abs(y_hat)))"
    assert to_latex(t) == r"\left(-1 \cdot \left(y \cdot \log\left|\hat{y}\right|\right)\right)"
    assert r"\hat{y}" in to_latex(t, simplify=True)
    assert "0.500" in to_latex(Tree.parse("add(y, y_hat)"), weights=[1, 0.5, 1])
    f = to_callable(Tree.parse("add(y, 1)"))
    assert f(np.zeros(3), np.ones(3)).tolist() == [2.0, 2.0, 2.0]
    assert to_callable(Tree.parse("1"))(np.zeros((2, 2)), np.zeros((2, 2))).shape == (2, 2)
    with pytest.raises(ConfigError, match="3 edges"):
        to_sympy(Tree.parse("add(y, y_hat)"), weights=[1.0, 2.0])


# --------------------------------------------------------------------------- torch module
@settings(max_examples=40, deadline=None)
@given(tree_json, st.booleans(), st.integers(0, 2**16))
def test_compiled_tree_matches_sympy(data: object, weighted: bool, seed: int) -> None:
    t = Tree.from_json(data)
    loss = SymbolicLoss(t, learn_weights=weighted, weight_init_std=0.3, seed=seed).double()
    p, y = _inputs(seed)
    out = loss.pointwise(p, y).detach().numpy()
    weights = loss.weights if weighted else None
    # Structure-preserving sympy: same operations in the same order as the compiled tree.
    ref = to_callable(t, weights, evaluate=False)(p.numpy(), y.numpy())
    both = np.isfinite(out) & np.isfinite(ref)
    np.testing.assert_allclose(out[both], ref[both], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "text",
    [
        CE_TREE,
        "square(sub(y, y_hat))",
        "aq(sub(y, y_hat), tanh(y_hat))",
        "max(psqrt(sub(y_hat, y)), min(sign(y), abs(y_hat)))",
        "add(plog(mul(y, y_hat)), square(aq(-1, y)))",
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_tree_matches_simplified_sympy(text: str, weighted: bool) -> None:
    loss = SymbolicLoss.from_string(text, learn_weights=weighted, weight_init_std=0.2).double()
    p, y = _inputs(1)
    out = loss.pointwise(p, y).detach().numpy()
    ref = to_callable(loss.tree, loss.weights if weighted else None)(p.numpy(), y.numpy())
    np.testing.assert_allclose(out, ref, rtol=1e-9, atol=1e-12)


def test_cross_entropy_tree_equals_torch_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 10, generator=gen)
    labels = torch.randint(0, 10, (32,), generator=gen)
    gp_lfl = SymbolicLoss.from_string(CE_TREE, learn_weights=False)
    assert torch.allclose(gp_lfl(logits, labels), F.cross_entropy(logits, labels), atol=1e-6)
    evomal = SymbolicLoss.from_string(CE_TREE, weight_init_std=0.0)
    assert torch.allclose(evomal(logits, labels), F.cross_entropy(logits, labels), atol=1e-6)
    mean = SymbolicLoss.from_string(CE_TREE, learn_weights=False, class_reduction="mean")
    assert torch.allclose(mean(logits, labels) * 10, F.cross_entropy(logits, labels), atol=1e-5)


def test_regression_batch() -> None:
    loss = SymbolicLoss.from_string("square(sub(y_hat, y))", learn_weights=False)
    pred, target = torch.randn(8, 3), torch.randn(8, 3)
    assert torch.allclose(loss(pred, target), ((pred - target) ** 2).sum(-1).mean())


def test_weights_init_and_gp_lfl_has_no_trainable_parameters() -> None:
    a = SymbolicLoss.from_string(CE_TREE, seed=3)
    b = SymbolicLoss.from_string(CE_TREE, seed=3)
    c = SymbolicLoss.from_string(CE_TREE, seed=4)
    assert isinstance(a.weights, torch.nn.Parameter) and a.weights.shape == (6,)
    assert torch.equal(a.weights, b.weights) and not torch.equal(a.weights, c.weights)
    assert (a.weights - 1).abs().max() < 0.01
    fixed = SymbolicLoss.from_string(CE_TREE, learn_weights=False)
    assert list(fixed.parameters()) == []
    assert torch.equal(fixed.weights, torch.ones(6))
    assert set(fixed.state_dict()) == {"weights"} == set(a.state_dict())


def test_gradient_wrt_weights_matches_finite_differences() -> None:
    loss = SymbolicLoss.from_string(
        "add(mul(y, plog(y_hat)), aq(square(sub(y_hat, y)), tanh(max(y_hat, psqrt(y)))))",
        weight_init_std=0.3,
    ).double()
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 4, (6,), generator=gen)
    w = loss.weights.detach().clone().requires_grad_(True)

    def f(weights: torch.Tensor) -> torch.Tensor:
        return functional_call(loss, {"weights": weights}, (logits, labels))

    assert torch.autograd.gradcheck(f, (w,))
    # the same gradient through torch.func
    (expected,) = torch.autograd.grad(f(w), w)
    assert torch.allclose(grad(f)(w.detach()), expected)


def test_vmap_over_weights() -> None:
    loss = SymbolicLoss.from_string("add(mul(y, plog(y_hat)), min(1, square(y_hat)))")
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    stack = torch.stack([loss.weights.detach() * (1 + 0.1 * i) for i in range(4)])

    def f(w: torch.Tensor) -> torch.Tensor:
        return functional_call(loss, {"weights": w}, (logits, labels))

    batched = vmap(f)(stack)
    assert torch.allclose(batched, torch.stack([f(w) for w in stack]))
    assert vmap(grad(f))(stack).shape == stack.shape


def test_build_loss_round_trip_from_json_spec() -> None:
    loss = SymbolicLoss.from_string(CE_TREE, seed=7, class_reduction="mean")
    spec = json.loads(json.dumps(loss.spec()))
    assert spec == {
        "kind": "symbolic",
        "config": {
            "tree": ["mul", -1, ["mul", "y", ["plog", "y_hat"]]],
            "learn_weights": True,
            "class_reduction": "mean",
            "weight_init_std": 1e-3,
            "seed": 7,
        },
    }
    again = build_loss(spec)
    assert isinstance(again, SymbolicLoss) and again.tree == loss.tree
    assert torch.equal(again.weights, loss.weights)
    logits, labels = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    assert torch.equal(again(logits, labels), loss(logits, labels))
    from_text = build_loss({"kind": "symbolic", "config": {"tree": "add(y, y_hat)"}})
    assert from_text.tree == Tree.parse("add(y, y_hat)")
    with pytest.raises(ConfigError, match="unknown primitive"):
        build_loss({"kind": "symbolic", "config": {"tree": ["exp", "y"]}})
    with pytest.raises(ConfigError, match="weight_init_std"):
        SymbolicLoss(CE_TREE, weight_init_std=-1.0)


def test_nan_tree_is_representable() -> None:
    t = Tree.parse("add(y, sub(square(y_hat), square(y_hat)))")  # inf - inf for large y_hat
    loss = SymbolicLoss(t.to_json(), learn_weights=False)
    out = loss.pointwise(torch.tensor([1.0, 1e30]), torch.tensor([0.0, 1.0]))
    assert out[0] == 0.0 and torch.isnan(out[1])
    assert Tree.from_json(t.to_json()) == t and canonical(t) == "y"
    assert torch.isnan(loss(torch.tensor([[1e30, 0.0]]), torch.tensor([[1.0, 0.0]])))


def test_tree_without_inputs_broadcasts() -> None:
    loss = SymbolicLoss.from_string("add(1, 1)", learn_weights=False)
    assert loss.pointwise(torch.zeros(3, 2), torch.zeros(3, 2)).shape == (3, 2)
    assert float(loss(torch.zeros(3, 2), torch.tensor([0, 1, 1]))) == pytest.approx(4.0)


def test_describe_and_exports_of_module() -> None:
    loss = SymbolicLoss.from_string("add(y, y_hat)", learn_weights=False)
    assert loss.describe() == "(y + y_hat)"
    assert "SymbolicLoss((y + y_hat)" in repr(loss)
    weighted = SymbolicLoss.from_string("add(y, y_hat)")
    with torch.no_grad():
        weighted.weights.copy_(torch.tensor([2.0, 1.0, 0.25]))
    assert weighted.describe() == "2.000*(y + 0.250*y_hat)"
    assert str(weighted.to_sympy()) == "2.0*y + 0.5*y_hat"
    assert "0.250" in weighted.to_latex()


@pytest.mark.parametrize("mod", [primitives, tree, export, gp, module])
def test_docstring_examples(mod: object) -> None:
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
