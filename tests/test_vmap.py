"""`tj.vmap`: every op of the conformance table batched, checked against a Python loop over the
examples; in_dims/out_dims, pytrees, nesting, control flow, composition with compile, errors."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_cases import F32, INSTANCES, Arr, Idx, Mask, _spec, make_arg

import tracejit as tj
from tracejit.primitives import PRIMITIVES

B = 3  # examples per batch

# -- every op of the conformance table ------------------------------------------------------


def _leaves(x) -> list:
    if isinstance(x, (tuple, list)):
        return [leaf for v in x for leaf in _leaves(v)]
    return [x]


def _lane_args(inst, lane: int) -> list:
    rng = np.random.default_rng(zlib.crc32(f"{inst.id}/{lane}".encode()))
    doms = inst.case.domain
    doms = doms if isinstance(doms, tuple) else (doms,) * len(inst.specs)
    return [make_arg(_spec(s), inst.dtype, d, rng) for s, d in zip(inst.specs, doms)]


def _is_array(spec) -> bool:
    return isinstance(_spec(spec), (Arr, Idx))


OP_INSTANCES = [i for i in INSTANCES if i.dtype in (F32, "mixed") and not i.case.eager_only
                and not any(isinstance(_spec(s), Mask) for s in i.specs)]
MODES = {
    "first": lambda k, arr: k == 0 and arr,  # the first argument batched, the rest shared
    "rest": lambda k, arr: k > 0 and arr,  # e.g. only the index of a gather batched
    "all": lambda k, arr: arr,
}
PARAMS = [pytest.param(inst, mode, id=f"{inst.id}-{mode}") for inst in OP_INSTANCES
          for mode in MODES
          if any(MODES[mode](k, _is_array(s)) for k, s in enumerate(inst.specs))
          and (mode != "rest" or sum(map(_is_array, inst.specs)) > 1)]


def _tensor(a):
    return tj.tensor(a) if isinstance(a, np.ndarray) else a


@pytest.mark.parametrize("inst, mode", PARAMS)
def test_vmap_op(inst, mode):
    lanes = [_lane_args(inst, b) for b in range(B)]
    batched = [MODES[mode](k, _is_array(s)) for k, s in enumerate(inst.specs)]
    per_lane = [[a if batched[k] else lanes[0][k] for k, a in enumerate(args)] for args in lanes]
    expected = [_leaves(inst.case.fn(*map(_tensor, args))) for args in per_lane]
    in_dims = tuple(0 if b else None for b in batched)
    stacked = [np.stack([args[k] for args in lanes]) if b else lanes[0][k]
               for k, b in enumerate(batched)]
    got = _leaves(tj.vmap(inst.case.fn, in_dims=in_dims)(*map(_tensor, stacked)))
    assert len(got) == len(expected[0])
    for j, g in enumerate(got):
        want = np.stack([np.asarray(e[j].numpy()) for e in expected])
        assert isinstance(g, tj.Tensor)
        assert g.shape == want.shape and g.numpy().dtype == want.dtype, (g, want.dtype)
        if want.dtype.kind == "f":
            np.testing.assert_allclose(g.numpy(), want, rtol=2e-5, atol=2e-6, equal_nan=True)
        else:
            np.testing.assert_array_equal(g.numpy(), want)


def test_every_primitive_has_a_batching_rule():
    missing = sorted(n for n, op in PRIMITIVES.items() if op.batch is None)
    assert not missing, f"primitives without a batching rule: {missing}"


# -- helpers for the hand-written tests -----------------------------------------------------

rng = np.random.default_rng(0)


def _rand(*shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _loop(f, *args, in_dims=0):
    """The reference: f on each example (numpy slices along each batched dim), stacked."""
    dims = in_dims if isinstance(in_dims, tuple) else (in_dims,) * len(args)
    n = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    outs = [f(*(tj.tensor(np.take(a, i, axis=d)) if d is not None else
                (tj.tensor(a) if isinstance(a, np.ndarray) else a)
                for a, d in zip(args, dims))) for i in range(n)]
    if isinstance(outs[0], (tuple, list)):
        return tuple(np.stack([o[k].numpy() for o in outs]) for k in range(len(outs[0])))
    return np.stack([o.numpy() for o in outs])


def _close(got, want, rtol=1e-5, atol=1e-6):
    assert isinstance(got, tj.Tensor)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got.numpy(), want, rtol=rtol, atol=atol)


def _ops(g) -> list[str]:
    return [n.op for n in g.nodes]


def _all_nodes(g):
    """Every node of `g` and of its sub-graphs."""
    for n in g.nodes:
        yield n
        for v in n.params.values():
            for sub in (v if isinstance(v, tuple) else (v,)):
                if isinstance(sub, tj.Graph):
                    yield from _all_nodes(sub)


def mlp(x, w, b):
    return tj.tanh(x @ w + b).sum()


# -- in_dims / out_dims -----------------------------------------------------------------------

@pytest.mark.parametrize("in_dims", [0, 1, -1, -2])
def test_in_dims_int(in_dims):
    x = _rand(3, 4)
    f = lambda v: tj.exp(v) * v.sum()
    _close(tj.vmap(f, in_dims=in_dims)(x), _loop(f, x, in_dims=in_dims))


@pytest.mark.parametrize("in_dims, shapes", [
    ((0, None, None), [(6, 4), (4, 5), (5,)]),
    ((1, None, 0), [(4, 6), (4, 5), (6, 5)]),
    ((None, 2, None), [(3, 4), (4, 5, 6), (5,)]),
])
def test_in_dims_tuple_with_none(in_dims, shapes):
    args = [_rand(*s) for s in shapes]
    got = tj.vmap(mlp, in_dims=in_dims)(*args)
    _close(got, _loop(mlp, *args, in_dims=in_dims), rtol=1e-4)
    assert tj.vmap(mlp, in_dims=list(in_dims))(*args).shape == got.shape  # a list works too


@pytest.mark.parametrize("out_dims", [0, 1, 2, -1, -3])
def test_out_dims(out_dims):
    x = _rand(4, 2, 3)
    got = tj.vmap(lambda v: v * 2, out_dims=out_dims)(x)
    np.testing.assert_allclose(got.numpy(), np.moveaxis(x * 2, 0, out_dims))


def test_out_dims_none_for_an_unbatched_result_and_tuple_out_dims():
    x, w = _rand(4, 3), _rand(3)
    a, b, c = tj.vmap(lambda v: (v + w, w * 2, v.sum()), out_dims=(1, None, 0))(x)
    np.testing.assert_allclose(a.numpy(), (x + w).T, rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), w * 2)  # not batched: no batch axis at all
    np.testing.assert_allclose(c.numpy(), x.sum(1), rtol=1e-5)


def test_unbatched_result_is_broadcast_for_an_int_out_dim():
    x, w = _rand(4, 3), _rand(2)
    got = tj.vmap(lambda v: w * 3, out_dims=1)(x)
    np.testing.assert_allclose(got.numpy(), np.broadcast_to((w * 3)[:, None], (2, 4)))


def test_axis_size_when_nothing_is_batched():
    w = _rand(3)
    got = tj.vmap(lambda v: v + 1, in_dims=None, axis_size=4)(w)
    np.testing.assert_allclose(got.numpy(), np.broadcast_to(w + 1, (4, 3)))


def test_jax_spellings_in_axes_out_axes():
    x, w = _rand(3, 4), _rand(4)
    got = tj.vmap(lambda a, b: a * b, in_axes=(1, None), out_axes=1)(x.T, w)
    np.testing.assert_allclose(got.numpy(), (x * w).T, rtol=1e-6)


def test_python_scalars_and_numpy_arrays_as_unbatched_arguments():
    x = _rand(3, 2)
    got = tj.vmap(lambda v, s, a: v * s + a, in_dims=(0, None, None))(x, 2.5,
                                                                  np.ones(2, np.float32))
    assert got.dtype == tj.float32  # a Python float stays weakly typed
    np.testing.assert_allclose(got.numpy(), x * 2.5 + 1, rtol=1e-6)


def test_zero_size_batch():
    got = tj.vmap(lambda v: v.sum() * 2)(np.zeros((0, 3), np.float32))
    assert got.shape == (0,)


# -- pytrees ----------------------------------------------------------------------------------

def test_pytree_arguments_with_prefix_in_dims():
    params = {"w": _rand(4, 2), "b": _rand(5, 2)}
    x = _rand(5, 4)

    def f(p, v):
        return tj.relu(v @ p["w"] + p["b"])

    got = tj.vmap(f, in_dims=({"w": None, "b": 0}, 0))(params, x)
    want = np.stack([np.maximum(x[i] @ params["w"] + params["b"][i], 0) for i in range(5)])
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


def test_pytree_results_and_out_dims_prefix():
    x = _rand(3, 4)
    out = tj.vmap(lambda v: {"s": v.sum(), "pair": (v * 2, v[:2])}, out_dims={"s": 0,
                                                                             "pair": 1})(x)
    np.testing.assert_allclose(out["s"].numpy(), x.sum(1), rtol=1e-5)
    np.testing.assert_allclose(out["pair"][0].numpy(), (x * 2).T)
    np.testing.assert_allclose(out["pair"][1].numpy(), x[:, :2].T)


def test_namedtuple_results_and_keyword_arguments():
    x = _rand(3, 5)
    got = tj.vmap(lambda v, *, k: tj.max(v * k, dim=0))(x, k=np.full((3, 5), 2, np.float32))
    assert got._fields == ("values", "indices")
    np.testing.assert_allclose(got.values.numpy(), (x * 2).max(1))
    np.testing.assert_array_equal(got.indices.numpy(), x.argmax(1))


# -- nesting and composition -----------------------------------------------------------------

def test_nested_vmap_outer_product():
    a, b = _rand(3), _rand(4)
    got = tj.vmap(tj.vmap(lambda u, v: u * v, in_dims=(None, 0)), in_dims=(0, None))(a, b)
    np.testing.assert_allclose(got.numpy(), np.outer(a, b), rtol=1e-6)


def test_nested_vmap_closing_over_the_outer_example():
    xs, ys = _rand(3, 4), _rand(5, 4)

    def per_x(x):
        return tj.vmap(lambda y: (x * y).sum() + x.sum())(ys)

    got = tj.vmap(per_x)(xs)
    np.testing.assert_allclose(got.numpy(), xs @ ys.T + xs.sum(1, keepdims=True), rtol=1e-5)


def test_triple_nested_vmap_of_matmul():
    a, b = _rand(2, 3, 4, 5), _rand(2, 3, 5, 6)
    f = tj.vmap(tj.vmap(tj.vmap(lambda u, v: u @ v, in_dims=(0, None)), in_dims=(1, 0)))
    got = f(a.transpose(0, 2, 1, 3), b)  # i over 2, then j over 3 (dim 1 of a), then rows
    want = np.einsum("ijrk,ijkl->ijrl", a, b)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)


def test_compile_of_vmap_and_vmap_of_compile():
    x, w, b = _rand(6, 4), _rand(4, 3), _rand(3)
    want = _loop(mlp, x, w, b, in_dims=(0, None, None))
    _close(tj.compile(tj.vmap(mlp, in_dims=(0, None, None)))(x, w, b), want, rtol=1e-4)
    _close(tj.vmap(tj.compile(mlp), in_dims=(0, None, None))(x, w, b), want, rtol=1e-4)
    g = tj.make_graph(tj.vmap(tj.compile(mlp), in_dims=(0, None, None)))(x, w, b)
    assert "dot_general" in _ops(g)


def test_eager_vmap_is_compiled_once_per_signature():
    f = tj.vmap(lambda v: tj.sin(v) * 2)
    for _ in range(3):
        x = _rand(4, 3)
        np.testing.assert_allclose(f(x).numpy(), np.sin(x) * 2, rtol=1e-6)
    info = f.cache_info()
    assert (info.misses, info.hits) == (1, 2)
    f(_rand(5, 3))
    assert f.cache_info().misses == 2


def test_vmap_reads_closed_over_tensors_at_every_call():
    w = tj.tensor([1.0, 2.0])
    f = tj.vmap(lambda v: v * w)
    x = np.ones((3, 2), np.float32)
    np.testing.assert_allclose(f(x).numpy(), [[1, 2]] * 3)
    w.copy_(tj.tensor([5.0, 6.0]))
    np.testing.assert_allclose(f(x).numpy(), [[5, 6]] * 3)


def test_vmap_inside_a_cond_branch_inside_compile():
    @tj.compile
    def f(x, p):
        return tj.cond(p > 0, lambda a: tj.vmap(lambda r: r.sum())(a), lambda a: a[:, 0], x)

    x = _rand(3, 4)
    np.testing.assert_allclose(f(x, 1).numpy(), x.sum(1), rtol=1e-5)
    np.testing.assert_allclose(f(x, -1).numpy(), x[:, 0])


def _needs_vjp():
    if any(op.vjp is None for n, op in PRIMITIVES.items()
           if not op.has("nondiff") and n not in ("get",)):
        pytest.skip("reverse-mode rules are not all defined yet")


def test_vmap_of_grad_and_grad_of_vmap():
    _needs_vjp()
    x, w = _rand(4, 3), _rand(3)
    per_example = tj.vmap(tj.grad(lambda v, w: tj.tanh(v @ w)), in_dims=(0, None))(x, w)
    t = np.tanh(x.astype(np.float64) @ w)
    # 1 - tanh^2 cancels where tanh is near 1: a few-ulp error in float32 tanh (~5e-7 absolute)
    # becomes an absolute error of about 1e-6 * |w| in the gradient
    atol = 2e-6 * max(np.abs(w).max(), np.abs(x).max()) * x.shape[0]
    np.testing.assert_allclose(per_example.numpy(), (1 - t ** 2)[:, None] * w, rtol=1e-5,
                               atol=atol)
    gw = tj.grad(lambda w: tj.vmap(lambda v: tj.tanh(v @ w))(x).sum())(w)
    np.testing.assert_allclose(gw.numpy(), ((1 - t ** 2)[:, None] * x).sum(0), rtol=1e-5,
                               atol=atol)


def test_per_example_gradients_of_an_mlp():
    _needs_vjp()
    x, y = _rand(6, 5), np.array([0, 2, 1, 1, 0, 2])
    params = {"w1": _rand(5, 4), "b1": _rand(4), "w2": _rand(4, 3)}

    def loss(p, x, y):
        h = tj.relu(x @ p["w1"] + p["b1"])
        return -tj.log_softmax(h @ p["w2"], dim=-1)[y]

    got = tj.vmap(tj.grad(loss), in_dims=(None, 0, 0))(params, x, y)
    each = [tj.grad(loss)(params, x[i], y[i]) for i in range(6)]
    for k in params:
        _close(got[k], np.stack([e[k].numpy() for e in each]), rtol=1e-5, atol=1e-6)


def test_custom_function_under_vmap():
    _needs_vjp()

    class Cube(tj.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x * x * g

    x, w = _rand(3, 2), _rand(2)
    np.testing.assert_allclose(tj.vmap(Cube.apply)(x).numpy(), x ** 3, rtol=1e-6)
    gw = tj.grad(lambda w: tj.vmap(lambda r: Cube.apply(r * w))(x).sum())(w)
    np.testing.assert_allclose(gw.numpy(), (3 * (x * w) ** 2 * x).sum(0), rtol=1e-5)


# -- no wasted work ---------------------------------------------------------------------------

def test_matmul_with_an_unbatched_weight_does_not_copy_the_weight():
    x, w = _rand(8, 4), _rand(4, 3)
    g = tj.make_graph(tj.vmap(lambda v, w: v @ w, in_dims=(0, None)))(x, w)
    assert "broadcast" not in _ops(g) and _ops(g).count("dot_general") == 1
    dot = next(n for n in g.nodes if n.op == "dot_general")
    assert g.inputs[1] in dot.inputs  # the weight feeds the dot as it is
    np.testing.assert_allclose(g(x, w).numpy(), x @ w, rtol=1e-5)
    # weight batched, input shared: still one dot, no copy of the input
    g2 = tj.make_graph(tj.vmap(lambda v, w: v @ w, in_dims=(None, 0)))(x, np.stack([w] * 5))
    assert "broadcast" not in _ops(g2) and _ops(g2).count("dot_general") == 1
    np.testing.assert_allclose(g2(x, np.stack([w] * 5)).numpy(), np.stack([x @ w] * 5),
                               rtol=1e-5)


def test_values_that_do_not_depend_on_the_batch_stay_unbatched():
    x, w = _rand(5, 3), _rand(3)
    g = tj.make_graph(tj.vmap(lambda v, w: v * tj.exp(w).sum(), in_dims=(0, None)))(x, w)
    exp = next(n for n in g.nodes if n.op == "exp")
    red = next(n for n in g.nodes if n.op == "reduce_sum")
    assert exp.shape == (3,) and red.shape == ()


# -- control flow -----------------------------------------------------------------------------

def branchy(x, w):
    return tj.cond(x.sum() > 0, lambda a, b: a * b + 1.0, lambda a, b: a - b, x, w)


def test_cond_with_a_batched_predicate_selects_per_example():
    x, w = _rand(6, 4), _rand(4)
    got = tj.vmap(branchy, in_dims=(0, None))(x, w)
    _close(got, _loop(branchy, x, w, in_dims=(0, None)))
    assert (x.sum(1) > 0).any() and (x.sum(1) <= 0).any()  # both branches are exercised
    g = tj.make_graph(tj.vmap(branchy, in_dims=(0, None)))(x, w)
    assert "cond" not in _ops(g) and "select" in _ops(g)


def test_cond_with_an_unbatched_predicate_stays_a_cond_of_batched_branches():
    x, w = _rand(6, 4), _rand(4)
    f = lambda v, w, p: tj.cond(p > 0, lambda a: a * w, lambda a: w + 0.0, v)  # noqa: E731
    for p in (1.0, -1.0):
        _close(tj.vmap(f, in_dims=(0, None, None))(x, w, p),
               _loop(f, x, w, p, in_dims=(0, None, None)))
    g = tj.make_graph(tj.vmap(f, in_dims=(0, None, None)))(x, w, 1.0)
    node = next(n for n in g.nodes if n.op == "cond")
    then, orelse = node.params["branches"]
    # the false branch ignores the batch but must return it too, like the true branch
    assert then.outputs[0].shape == orelse.outputs[0].shape == (6, 4)
    g.verify()


def test_cond_with_integer_division_in_the_branch_not_taken():
    n, d = np.array([7, 8, 9]), np.array([2, 0, 3])
    f = lambda n, d: tj.cond(d != 0, lambda: n // d, lambda: n * 0)  # noqa: E731
    np.testing.assert_array_equal(tj.vmap(f)(n, d).numpy(), [3, 0, 3])


def collatz_steps(n):
    def body(c):
        k, steps = c
        return tj.where(k % 2 == 0, k // 2, 3 * k + 1), steps + 1
    return tj.while_loop(lambda c: c[0] > 1, body, (n, tj.zeros((), dtype=tj.int64)))[1]


def test_while_with_a_batched_condition_runs_each_example_to_its_own_end():
    n = np.array([1, 6, 27, 7], np.int64)
    got = tj.vmap(collatz_steps)(n)
    np.testing.assert_array_equal(got.numpy(), [0, 8, 111, 16])
    g = tj.make_graph(tj.vmap(collatz_steps))(n)
    loop = next(n for n in g.nodes if n.op == "while")
    assert "select" in _ops(loop.params["body"]) and _ops(g).count("while") == 1
    g.verify()


def test_while_with_an_unbatched_condition_keeps_the_counter_unbatched():
    x = _rand(4, 3)
    f = lambda v: tj.fori_loop(0, 5, lambda i, c: c * 0.5 + v, tj.zeros(3))  # noqa: E731
    _close(tj.vmap(f)(x), _loop(f, x))
    g = tj.make_graph(tj.vmap(f))(x)
    loop = next(n for n in g.nodes if n.op == "while")
    counter, carry = loop.params["body"].inputs[:2]
    assert counter.shape == () and carry.shape == (4, 3)  # zeros(3) became batched: fixpoint
    assert "select" not in _ops(loop.params["body"])


def test_fori_loop_with_batched_trip_counts_indexes_safely():
    x = _rand(4, 5)
    n = np.array([5, 0, 3, 5])

    def f(v, n):
        return tj.fori_loop(0, n, lambda i, c: c + v[i], tj.zeros(()))

    got = tj.vmap(f)(x, n)  # finished lanes keep computing v[n] (out of range): clamped
    np.testing.assert_allclose(got.numpy(), [x[k, :n[k]].sum() for k in range(4)], rtol=1e-5)


@pytest.mark.parametrize("in_dims", [(0, 0), (None, 0), (0, None)])
def test_scan(in_dims):
    c0, xs = _rand(4, 2), _rand(4, 5, 2)
    args = [c0 if in_dims[0] is not None else c0[0], xs if in_dims[1] is not None else xs[0]]

    def f(c, xs):
        return tj.scan(lambda c, x: (c * 0.9 + x, (c * x).sum()), c, xs)

    got = tj.vmap(f, in_dims=in_dims)(*args)
    want = _loop(f, *args, in_dims=in_dims)
    for g, w in zip(got, want):
        _close(g, w, rtol=1e-5)


def test_nested_control_flow_under_vmap():
    x = _rand(5, 3)

    def f(v):
        def body(i, c):
            return tj.cond(c.sum() > i, lambda a: a - 1.0, lambda a: a * 1.5, c)
        return tj.fori_loop(0, 4, body, v)

    _close(tj.vmap(f)(x), _loop(f, x), rtol=1e-5)


# -- random numbers ---------------------------------------------------------------------------

def test_batched_keys_draw_each_examples_own_numbers():
    keys = tj.random.split(tj.random.key(0), 4)
    got = tj.vmap(lambda k: tj.random.normal(k, (3,)))(keys)
    want = np.stack([tj.random.normal(k, (3,)).numpy() for k in keys])
    np.testing.assert_allclose(got.numpy(), want)
    assert not np.allclose(want[0], want[1])


def test_an_unbatched_key_gives_every_example_the_same_numbers():
    key = tj.random.key(1)
    got = tj.vmap(lambda v, k: v + tj.random.uniform(k, (2,)), in_dims=(0, None))(
        np.zeros((3, 2), np.float32), key)
    np.testing.assert_allclose(got.numpy(), np.stack([tj.random.uniform(key, (2,)).numpy()] * 3))


# -- errors -----------------------------------------------------------------------------------

def test_error_batch_sizes_disagree_names_the_arguments():
    with pytest.raises(ValueError) as e:
        tj.vmap(lambda x, y: x + y)(np.zeros((3, 2)), np.zeros((4, 2)))
    msg = str(e.value)
    assert "x has size 3" in msg and "y has size 4" in msg and "[4, 2]" in msg
    assert "test_vmap.py:" in msg


def test_error_in_dim_out_of_range():
    with pytest.raises(ValueError, match=r"in_dims 2 is out of range for argument x of shape "
                                         r"\[3, 4\](.|\n)*test_vmap.py:"):
        tj.vmap(lambda x: x, in_dims=2)(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="0-d tensor"):
        tj.vmap(lambda x, s: x * s)(np.zeros(3), 2.0)


def test_error_in_dims_structure():
    with pytest.raises(ValueError, match="one entry per positional argument"):
        tj.vmap(lambda x, y: x + y, in_dims=(0,))(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="does not match the structure of argument p"):
        tj.vmap(lambda p: p["a"], in_dims=({"b": 0},))({"a": np.zeros(3)})
    with pytest.raises(TypeError, match="must be ints or None"):
        tj.vmap(lambda x: x, in_dims=(0.5,))(np.zeros(3))


def test_error_out_dims_none_for_a_batched_result():
    with pytest.raises(ValueError, match="output.*depends on a batched argument"):
        tj.vmap(lambda x: x * 2, out_dims=None)(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="out_dims 3 is out of range"):
        tj.vmap(lambda x: x * 2, out_dims=3)(np.zeros((3, 2)))


def test_error_nothing_batched_without_axis_size():
    with pytest.raises(ValueError, match="axis_size"):
        tj.vmap(lambda x: x, in_dims=None)(np.zeros(3))
    with pytest.raises(ValueError, match="axis_size=5"):
        tj.vmap(lambda x: x, axis_size=5)(np.zeros((3, 2)))


def test_errors_inside_the_function_point_at_the_users_line():
    with pytest.raises(ValueError, match=r"(?s)cannot be broadcast.*test_vmap.py:"):
        tj.vmap(lambda x, y: x + y, in_dims=(0, None))(np.zeros((2, 3)), np.zeros(4))


def test_docstring_examples():
    import doctest
    import sys

    mod = sys.modules["tracejit.vmap"]  # (tj.vmap is the function)
    res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0 and res.attempted >= 4


def test_error_non_array_argument():
    with pytest.raises(TypeError, match=r"(?s)argument act \(str\) is not an array.*test_vmap"):
        tj.vmap(lambda x, act: x, in_dims=(0, None))(np.zeros(3), "relu")


# -- lanes whose results are discarded must not fail ------------------------------------------

def test_loop_lanes_that_have_stopped_may_index_out_of_range():
    v = _rand(4, 5)
    n, stride = np.array([3, 5, 2, 1]), np.array([2, 1, 4, 1])

    def f(v, n, s):  # a lane that stops early has j past the end while the others go on
        def body(c):
            i, j, acc = c
            return i + 1, j + s, acc + v[j]
        return tj.while_loop(lambda c: c[0] < n, body, (0, 0, tj.zeros(())))[2]

    got = tj.vmap(f)(v, n, stride)
    want = [v[k, [stride[k] * i for i in range(n[k])]].sum() for k in range(4)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)


def test_cond_branch_not_taken_may_index_out_of_range():
    v, i = _rand(3, 4), np.array([1, 4, 3])
    f = lambda v, i: tj.cond(i < 4, lambda: v[i], lambda: v[0] * 0 - 1)  # noqa: E731
    np.testing.assert_allclose(tj.vmap(f)(v, i).numpy(), [v[0, 1], -1, v[2, 3]])


# -- property: random shapes, in_dims and out_dims ----------------------------------------------

@settings(max_examples=30, deadline=None)
@given(st.data())
def test_random_in_dims_and_out_dims(data):
    shape = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=4), label="shape")
    nd = len(shape)
    in_dim = data.draw(st.integers(-nd, nd - 1), label="in_dim")
    out_dim = data.draw(st.integers(-nd, nd - 1), label="out_dim")
    x = _rand(*shape)
    example = np.take(x, 0, axis=in_dim)
    w = _rand(*example.shape[-1:])  # unbatched, broadcast against each example

    def f(v, w):
        return tj.exp(v * 0.5) * w - v.mean()

    got = tj.vmap(f, in_dims=(in_dim, None), out_dims=out_dim)(x, w)
    want = np.moveaxis(_loop(f, x, w, in_dims=(in_dim, None)), 0, out_dim)
    _close(got, want)
