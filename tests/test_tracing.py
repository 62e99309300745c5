"""Tracing and `tj.compile` (SPEC §2): signatures and the cache, pytrees, static arguments,
captured tensors, Python scalars as runtime inputs, graphs, and the errors users see.

Every numeric result is checked against numpy on the same data."""

import collections
import logging
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tracejit as tj

HERE = pathlib.Path(__file__)


def _line(marker: str) -> int:
    """The line of this file that ends with the comment ``# <marker>``."""
    for i, text in enumerate(HERE.read_text().splitlines(), 1):
        if text.rstrip().endswith(f"# <{marker}>"):
            return i
    raise AssertionError(f"no line marked {marker}")


def _where(marker: str) -> str:
    return f"{HERE.name}:{_line(marker)}"


# -- the cache ----------------------------------------------------------------------------------


def test_same_signature_hits_and_new_values_are_used():
    f = tj.compile(lambda x, y: x * y + 1.0)
    rng = np.random.default_rng(0)
    for i in range(4):
        a = rng.standard_normal(5).astype(np.float32)
        b = rng.standard_normal(5).astype(np.float32)
        np.testing.assert_allclose(f(tj.tensor(a), tj.tensor(b)).numpy(), a * b + 1, rtol=1e-6)
        info = f.cache_info()
        assert (info.hits, info.misses) == (i, 1)


@pytest.mark.parametrize("second", [
    lambda: tj.ones(4), lambda: tj.ones(2, 3), lambda: tj.ones(3, dtype=tj.float64),
    lambda: tj.ones(3, dtype=tj.int32), lambda: np.ones(3, np.float32).reshape(3, 1),
])
def test_new_shape_or_dtype_misses(second):
    f = tj.compile(lambda x: x * 2)
    f(tj.ones(3))
    f(tj.zeros(3))
    x = second()
    out = f(x)
    np.testing.assert_array_equal(out.numpy(), np.asarray(x) * 2)
    info = f.cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 2, 2)
    f(x)
    assert f.cache_info().hits == 2


def test_numpy_arrays_and_tensors_share_a_signature():
    f = tj.compile(lambda x: x + 1)
    f(tj.ones(3))
    out = f(np.zeros(3, np.float32))
    np.testing.assert_array_equal(out.numpy(), np.ones(3, np.float32))
    assert f.cache_info().misses == 1


def test_cache_info_fields_and_clear():
    @tj.compile
    def f(x, s):
        return x * s

    assert f.cache_info().hits == 0 and f.cache_info().misses == 0
    f(tj.ones(2, 3), 2.0)
    f(tj.ones(2, 3), 3.0)
    f(tj.ones(4, dtype=tj.float64), 1)
    info = f.cache_info()
    assert info.hits == 1 and info.misses == 2 and info.currsize == 2
    assert len(info.signatures) == 2
    assert all(isinstance(s, str) for s in info.signatures)
    assert any("f32[2,3]" in s for s in info.signatures)
    assert any("f64[4]" in s for s in info.signatures)
    assert any("x" in s and "s" in s for s in info.signatures)  # named by parameter
    f.cache_clear()
    assert (f.cache_info().hits, f.cache_info().misses, f.cache_info().currsize) == (0, 0, 0)
    f(tj.ones(2, 3), 2.0)
    assert f.cache_info().misses == 1


def test_keyword_arguments():
    @tj.compile
    def f(x, y, scale=1.0):
        return (x - y) * scale

    a, b = np.arange(3.0, dtype=np.float32), np.ones(3, np.float32)
    np.testing.assert_allclose(f(a, y=b, scale=2.0).numpy(), (a - b) * 2)
    np.testing.assert_allclose(f(x=a, y=b).numpy(), a - b)
    np.testing.assert_allclose(f(a, b, 0.5).numpy(), (a - b) * 0.5)


# -- pytrees ------------------------------------------------------------------------------------

Pair = collections.namedtuple("Pair", ["first", "second"])


class Box:
    """A user class registered as a pytree container."""

    def __init__(self, value, scale):
        self.value, self.scale = value, scale


tj.tree.register(Box, lambda b: ((b.value, b.scale), None), lambda aux, ch: Box(*ch))


def test_pytrees_in_and_out():
    @tj.compile
    def f(t, lst, d, p, nothing, box):
        assert nothing is None
        return {
            "tuple": (t[0] + t[1], t[1]),
            "list": [lst[0] * 2, None],
            "pair": Pair(p.second, p.first),
            "box": Box(box.value * box.scale, box.scale),
            "sum": d["a"] + d["b"],
        }

    a = np.arange(3, dtype=np.float32)
    b = np.full(3, 2.0, np.float32)
    args = ((tj.tensor(a), tj.tensor(b)), [tj.tensor(a)], {"b": tj.tensor(b), "a": tj.tensor(a)},
            Pair(tj.tensor(a), tj.tensor(b)), None, Box(tj.tensor(a), 3.0))
    out = f(*args)
    assert set(out) == {"tuple", "list", "pair", "box", "sum"}
    assert isinstance(out["tuple"], tuple) and isinstance(out["list"], list)
    assert isinstance(out["pair"], Pair) and isinstance(out["box"], Box)
    np.testing.assert_array_equal(out["tuple"][0].numpy(), a + b)
    np.testing.assert_array_equal(out["tuple"][1].numpy(), b)
    np.testing.assert_array_equal(out["list"][0].numpy(), a * 2)
    assert out["list"][1] is None
    np.testing.assert_array_equal(out["pair"].first.numpy(), b)
    np.testing.assert_array_equal(out["pair"].second.numpy(), a)
    np.testing.assert_array_equal(out["box"].value.numpy(), a * 3)
    assert isinstance(out["box"].scale, tj.Tensor) and float(out["box"].scale) == 3.0
    np.testing.assert_array_equal(out["sum"].numpy(), a + b)
    assert all(isinstance(v, tj.Tensor) for v in tj.tree.flatten(out)[0])
    f(*args)
    assert f.cache_info().misses == 1


def test_ordered_dicts_keep_their_order():
    f = tj.compile(lambda d: collections.OrderedDict((k, v * 2) for k, v in d.items()))
    d = collections.OrderedDict([("z", tj.ones(1)), ("a", tj.zeros(2))])
    out = f(d)
    assert isinstance(out, collections.OrderedDict) and list(out) == ["z", "a"]
    np.testing.assert_array_equal(out["z"].numpy(), [2.0])
    np.testing.assert_array_equal(out["a"].numpy(), [0.0, 0.0])


def test_tree_structure_is_part_of_the_signature():
    f = tj.compile(lambda d: sum(d.values() if isinstance(d, dict) else d))
    x = tj.ones(2)
    f({"a": x, "b": x})
    f({"a": x, "c": x})
    f({"a": x, "b": x, "c": x})
    f([x, x])
    out = f({"a": x, "b": x})
    assert f.cache_info().misses == 4 and f.cache_info().hits == 1
    np.testing.assert_array_equal(out.numpy(), [2.0, 2.0])


def test_scalar_and_none_outputs():
    f = tj.compile(lambda x: (x.sum(), 2.0, 3, True, None))
    s, two, three, yes, nothing = f(tj.ones(4))
    assert float(s) == 4.0 and nothing is None
    assert two.dtype == tj.float32 and float(two) == 2.0
    assert three.dtype == tj.int64 and int(three) == 3
    assert yes.dtype == tj.bool and bool(yes)


# -- static arguments -------------------------------------------------------------------------


def test_static_argnums_retrace_per_value_and_allow_branching():
    @tj.compile(static_argnums=1)
    def f(x, n):
        if n > 2:  # Python branching on a static value
            return x * n
        return x - n

    a = np.arange(3.0, dtype=np.float32)
    np.testing.assert_array_equal(f(a, 3).numpy(), a * 3)
    np.testing.assert_array_equal(f(a, 1).numpy(), a - 1)
    np.testing.assert_array_equal(f(a, 3).numpy(), a * 3)
    assert f.cache_info().misses == 2 and f.cache_info().hits == 1
    f(a, 3.0)  # a float static value is a different value: its type is part of the key
    assert f.cache_info().misses == 3


def test_static_argnames():
    @tj.compile(static_argnames="mode")
    def f(x, mode="add"):
        return x + 1 if mode == "add" else x * 10

    a = np.ones(2, np.float32)
    np.testing.assert_array_equal(f(a).numpy(), a + 1)
    np.testing.assert_array_equal(f(a, mode="mul").numpy(), a * 10)
    np.testing.assert_array_equal(f(a, "mul").numpy(), a * 10)  # positionally, still static
    np.testing.assert_array_equal(f(a, mode="mul").numpy(), a * 10)
    assert f.cache_info().hits >= 1


def test_static_strings_and_tuples():
    @tj.compile(static_argnums=(1, 2))
    def f(x, axis, how):
        return x.sum(dim=axis) if how == "sum" else x.amax(dim=axis)

    a = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(f(a, (0, 1), "sum").numpy(), a.sum())
    np.testing.assert_array_equal(f(a, 1, "max").numpy(), a.max(axis=1))


def test_unhashable_static_argument_is_a_type_error_naming_it():
    f = tj.compile(lambda x, cfg: x * len(cfg), static_argnums=1)
    with pytest.raises(TypeError, match="cfg.*hashable.*list"):
        f(tj.ones(2), [1, 2])
    g = tj.compile(lambda x, cfg=None: x, static_argnames="cfg")
    with pytest.raises(TypeError, match="cfg.*hashable.*dict"):
        g(tj.ones(2), cfg={"a": 1})


def test_static_argnames_must_name_a_parameter():
    with pytest.raises(ValueError, match="nope"):
        tj.compile(lambda x: x, static_argnames="nope")


# -- captured tensors -------------------------------------------------------------------------


def test_captured_tensor_is_read_at_every_call():
    w = tj.tensor([1.0, 2.0, 3.0])

    @tj.compile
    def f(x):
        return x * w

    x = np.full(3, 2.0, np.float32)
    expected = np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_array_equal(f(x).numpy(), x * expected)
    for mutate in (lambda: w.copy_(tj.tensor([4.0, 5.0, 6.0])),
                   lambda: w.__setitem__(0, 10.0),
                   lambda: w.__setitem__(slice(1, None), tj.tensor([7.0, 8.0])),
                   lambda: w.add_(1),
                   lambda: w.mul_(0.5)):
        mutate()
        expected = w.numpy().copy()
        np.testing.assert_array_equal(f(x).numpy(), x * expected)
    assert f.cache_info().misses == 1  # mutation in place is a new value, not a new signature
    assert len(f.lower(x).graph.captures) == 1


W_GLOBAL = tj.ones(3)


def _helper(x):
    return x * W_GLOBAL


def test_rebinding_a_global_reads_the_new_tensor_and_retraces_only_on_a_new_type():
    global W_GLOBAL
    W_GLOBAL = tj.ones(3)
    f = tj.compile(lambda x: x + W_GLOBAL)
    x = np.arange(3.0, dtype=np.float32)
    np.testing.assert_array_equal(f(x).numpy(), x + 1)
    W_GLOBAL = tj.tensor([10.0, 20.0, 30.0])  # same shape and dtype: a new value, no retrace
    np.testing.assert_array_equal(f(x).numpy(), x + [10.0, 20.0, 30.0])
    assert f.cache_info().misses == 1
    W_GLOBAL = tj.full((2, 3), 5.0)  # a new shape: the retrace broadcasts differently
    np.testing.assert_array_equal(f(x).numpy(), x + np.full((2, 3), 5.0))
    assert f.cache_info().misses == 2
    W_GLOBAL = tj.ones(3)


def test_rebinding_a_global_read_by_a_helper_function():
    global W_GLOBAL
    W_GLOBAL = tj.ones(3)
    f = tj.compile(lambda x: _helper(x) + 1)
    x = np.arange(3.0, dtype=np.float32)
    np.testing.assert_array_equal(f(x).numpy(), x + 1)
    W_GLOBAL = tj.full((3,), 2.0)
    np.testing.assert_array_equal(f(x).numpy(), x * 2 + 1)
    W_GLOBAL = tj.ones(3)


def test_rebinding_a_closure_variable_attribute_or_dict_entry():
    c = tj.ones(2)

    @tj.compile
    def by_closure(x):
        return x + c

    x = np.zeros(2, np.float32)
    np.testing.assert_array_equal(by_closure(x).numpy(), [1.0, 1.0])
    c = tj.full((2,), 3.0)  # noqa: F841  (read through the closure cell)
    np.testing.assert_array_equal(by_closure(x).numpy(), [3.0, 3.0])

    class Model:
        def __init__(self):
            self.w = tj.ones(2)

        def forward(self, x):
            return x * self.w

    m = Model()
    params = {"b": tj.ones(2)}
    by_attr = tj.compile(lambda x: m.forward(x) + params["b"])
    x = np.full(2, 2.0, np.float32)
    np.testing.assert_array_equal(by_attr(x).numpy(), [3.0, 3.0])
    m.w = tj.full((2,), 5.0)
    np.testing.assert_array_equal(by_attr(x).numpy(), [11.0, 11.0])
    params["b"] = tj.zeros(2)
    np.testing.assert_array_equal(by_attr(x).numpy(), [10.0, 10.0])
    method = tj.compile(m.forward)
    np.testing.assert_array_equal(method(x).numpy(), [10.0, 10.0])
    m.w = tj.full((2,), -1.0)
    np.testing.assert_array_equal(method(x).numpy(), [-2.0, -2.0])


def test_compile_as_a_method_decorator():
    class Layer:
        def __init__(self, w):
            self.w = w

        @tj.compile
        def forward(self, x):
            return x @ self.w

        @tj.compile(static_argnums=2)  # counts self as 0, as in the definition
        def scaled(self, x, k):
            return x * k if k > 1 else x

    w = np.arange(6.0, dtype=np.float32).reshape(3, 2)
    layer = Layer(tj.tensor(w))
    x = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(layer.forward(x).numpy(), x @ w)
    np.testing.assert_array_equal(layer.forward(x).numpy(), x @ w)
    assert layer.forward.cache_info().misses == 1 and layer.forward.cache_info().hits == 1
    layer.w = tj.tensor(w * 2)
    np.testing.assert_array_equal(layer.forward(x).numpy(), x @ (w * 2))
    other = Layer(tj.tensor(-w))
    np.testing.assert_array_equal(other.forward(x).numpy(), x @ -w)
    np.testing.assert_array_equal(layer.scaled(x, 3).numpy(), x * 3)
    np.testing.assert_array_equal(layer.scaled(x, 1).numpy(), x)


def test_results_never_alias_arguments_or_captures():
    cap = tj.ones(2)
    fns = [lambda x: x, lambda x: x.reshape(6), lambda x: x[0], lambda x: x.T, lambda x: cap]
    for fn in fns:
        f = tj.compile(fn)
        for arg in (tj.ones(2, 3), np.ones((2, 3), np.float32)):
            before = np.asarray(arg).copy()
            out = f(arg)
            out.add_(1)
            np.testing.assert_array_equal(np.asarray(arg), before)
            np.testing.assert_array_equal(cap.numpy(), [1.0, 1.0])
    a, b = tj.compile(lambda x: (x.reshape(3, 2), x.reshape(6)))(tj.ones(2, 3))
    a.zero_()
    np.testing.assert_array_equal(b.numpy(), np.ones(6))


# -- Python scalars -----------------------------------------------------------------------------


def test_python_scalars_are_runtime_inputs():
    f = tj.compile(lambda x, s: x * s)
    x = np.arange(4.0, dtype=np.float32)
    np.testing.assert_array_equal(f(x, 2.0).numpy(), x * np.float32(2.0))
    np.testing.assert_array_equal(f(x, 3.0).numpy(), x * np.float32(3.0))
    np.testing.assert_allclose(f(x, 0.1).numpy(), x * np.float32(0.1))
    assert f.cache_info().misses == 1 and f.cache_info().hits == 2
    g = f.lower(x, 2.0).graph
    assert "2.0" not in str(g)  # the value is an input, not a constant
    assert [n.op for n in g.inputs] == ["input", "input"]


def test_scalar_kind_is_part_of_the_signature():
    f = tj.compile(lambda x, s: x + s)
    x = np.ones(2, np.float32)
    f(x, 2.0)
    f(x, 2)
    f(x, True)
    assert f.cache_info().misses == 3
    f(x, 5)
    assert f.cache_info().misses == 3


def test_python_int_out_of_range_is_an_overflow_error():
    f = tj.compile(lambda x, s: x + s)
    with pytest.raises(OverflowError, match="s"):
        f(tj.ones(2), 2**70)


@pytest.mark.parametrize("x, s, want_dtype", [
    (np.array([1.5, -2.0], np.float32), 0.1, np.float32),
    (np.array([1.5, -2.0], np.float32), 3, np.float32),
    (np.array([1.5, -2.0], np.float64), 0.1, np.float64),
    (np.array([1, -2], np.int32), 7, np.int32),
    (np.array([1, -2], np.int32), 2.5, np.float32),
    (np.array([1, 2], np.uint8), 3, np.uint8),
    (np.array([True, False]), 2, np.int64),
])
def test_weak_scalar_promotion_inside_compile(x, s, want_dtype):
    f = tj.compile(lambda x, s: x * s + s)
    out = f(x, s)
    assert out.dtype.np == want_dtype
    ref = x.astype(want_dtype) * want_dtype(s) + want_dtype(s)
    np.testing.assert_array_equal(out.numpy(), ref)


def test_float64_times_python_float_is_exact():
    x = np.array([1.0, 3.0, 1e-3, 7.25])
    out = tj.compile(lambda x, s: x * s)(x, 0.1)
    assert out.dtype == tj.float64
    np.testing.assert_array_equal(out.numpy(), x * 0.1)  # bit-exact: s stays a float64 value


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, width=32), min_size=1, max_size=8),
       st.floats(-10, 10), st.integers(-50, 50))
def test_scalar_inputs_property(values, s, k):
    f = _SCALAR_FN
    x = np.array(values, np.float32)
    out = f(x, s, k).numpy()
    ref = (x * np.float32(s) + np.float32(k)).astype(np.float32)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-3)
    assert f.cache_info().currsize <= 8  # only shapes make signatures, never values


_SCALAR_FN = tj.compile(lambda x, s, k: x * s + k)


# -- graphs -------------------------------------------------------------------------------------


def test_lower_gives_the_graph_and_text():
    @tj.compile
    def f(x, w):
        return tj.tanh(x @ w).sum(dim=0)

    x, w = np.ones((2, 3), np.float32), np.full((3, 4), 0.1, np.float32)
    low = f.lower(x, w)
    assert isinstance(low.graph, tj.Graph)
    assert [n.name for n in low.graph.inputs] == ["x", "w"]
    assert [str(n.type) for n in low.graph.outputs] == ["f32[4]"]
    text = low.as_text("graph")
    assert text == str(low.graph)
    assert text.startswith("graph f(%x: f32[2,3], %w: f32[3,4])")
    assert "tanh" in text
    opt = low.as_text("optimized")
    assert opt.startswith("graph ") and "tanh" in opt
    with pytest.raises(ValueError, match="stage"):
        low.as_text("nonsense")
    assert f.cache_info().misses == 0  # lowering does not run or cache
    np.testing.assert_allclose(low.graph(x, w).numpy(), np.tanh(x @ w).sum(0), rtol=1e-6)


def test_make_graph_text_has_one_line_per_node_with_type_and_location():
    def fn(x, y):
        z = x * y  # <mul-line>
        return tj.exp(z).sum(dim=1)  # <sum-line>

    g = tj.make_graph(fn)(tj.ones(2, 3), tj.ones(3))
    assert isinstance(g, tj.Graph)
    lines = str(g).splitlines()
    assert lines[0].startswith("graph fn(") and lines[-1] == "}"
    assert lines[-2].strip().startswith("return")
    body = lines[1:-2]
    assert len(body) == len(g.nodes) == 3
    for line, node in zip(body, g.nodes):
        assert f": {node.type} = {node.op}(" in line
        assert str(node.type) in line
        assert HERE.name in line
    assert [n.op for n in g.nodes] == ["mul", "exp", "reduce_sum"]
    assert body[0].endswith(_where("mul-line"))
    assert body[1].endswith(_where("sum-line")) and body[2].endswith(_where("sum-line"))
    assert g.nodes[0].loc.line == _line("mul-line")


def test_graphs_run_and_verify():
    g = tj.make_graph(lambda x, y: (x * y).sum(dim=0) + 1.0)(tj.ones(2, 3), tj.ones(3))
    g.verify()
    a = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    b = np.array([1.0, -1.0, 2.0], np.float32)
    out = g(tj.tensor(a), b)
    assert isinstance(out, tj.Tensor)
    np.testing.assert_allclose(out.numpy(), (a * b).sum(0) + 1, rtol=1e-6)
    with pytest.raises(TypeError, match="takes 2 inputs"):
        g(a)
    two = tj.make_graph(lambda x: (x + 1, x * 2))(tj.ones(2))
    two.verify()
    p, q = two(np.array([1.0, 2.0], np.float32))
    np.testing.assert_array_equal(p.numpy(), [2.0, 3.0])
    np.testing.assert_array_equal(q.numpy(), [2.0, 4.0])


def test_graph_call_results_do_not_alias_arguments():
    g = tj.make_graph(lambda x: x.reshape(6))(tj.ones(2, 3))
    a = tj.ones(2, 3)
    g(a).add_(1)
    np.testing.assert_array_equal(a.numpy(), np.ones((2, 3)))


def test_make_graph_with_static_argnums():
    g = tj.make_graph(lambda x, n: x * n if n > 1 else -x, static_argnums=1)(tj.ones(2), 3)
    assert [n.name for n in g.inputs] == ["x"]
    np.testing.assert_array_equal(g(np.array([1.0, 2.0], np.float32)).numpy(), [3.0, 6.0])


def test_compiled_function_called_inside_another_inlines():
    @tj.compile
    def inner(x):
        return x * 2

    @tj.compile
    def outer(x):
        return inner(x) + 1

    a = np.arange(3.0, dtype=np.float32)
    np.testing.assert_array_equal(outer(a).numpy(), a * 2 + 1)
    assert inner.cache_info().misses == 0 and inner.cache_info().hits == 0
    assert [n.op for n in outer.lower(a).graph.nodes if n.op != "constant"] == ["mul", "add"]
    np.testing.assert_array_equal(inner(a).numpy(), a * 2)  # still works on its own


# -- errors -------------------------------------------------------------------------------------


def test_concretization_error_names_the_line_and_the_fixes():
    @tj.compile
    def f(x):
        if x.sum() > 0:  # <if-line>
            return x
        return -x

    with pytest.raises(tj.ConcretizationError) as e:
        f(tj.ones(2))
    msg = str(e.value)
    assert _where("if-line") in msg
    assert "if x.sum() > 0:" in msg
    for fix in ("tj.cond", "tj.while_loop", "static_argnums"):
        assert fix in msg


@pytest.mark.parametrize("fn", [
    lambda x: float(x.sum()), lambda x: x.sum().item(), lambda x: x.numpy(),
    lambda x: int(x[0]), lambda x: [v for v in range(int(x.sum()))],
])
def test_other_concretizations_raise(fn):
    with pytest.raises(tj.ConcretizationError, match="traced"):
        tj.compile(fn)(tj.ones(2))


def test_while_on_a_traced_value_raises():
    @tj.compile
    def f(x):
        while x.sum() < 10:  # <while-line>
            x = x * 2
        return x

    with pytest.raises(tj.ConcretizationError, match=_where("while-line")):
        f(tj.ones(2))


def test_trace_time_shape_error_mentions_the_user_line():
    @tj.compile
    def f(x, y):
        return x + y  # <shape-line>

    with pytest.raises(ValueError) as e:
        f(tj.ones(2, 3), tj.ones(4))
    msg = str(e.value)
    assert _where("shape-line") in msg and "add" in msg
    assert "[2, 3]" in msg and "[4]" in msg


def test_trace_time_bad_dim_mentions_the_user_line():
    @tj.compile
    def f(x):
        return x.sum(dim=5)  # <dim-line>

    with pytest.raises(IndexError) as e:
        f(tj.ones(2, 3))
    assert _where("dim-line") in str(e.value) and "5" in str(e.value)
    assert f.cache_info().currsize == 0  # a failed trace caches nothing


def test_matmul_shape_error_mentions_the_user_line():
    @tj.compile
    def f(a, b):
        return a @ b  # <matmul-line>

    with pytest.raises(ValueError, match=_where("matmul-line")):
        f(tj.ones(2, 3), tj.ones(4, 5))


@pytest.mark.parametrize("bad, name", [
    ("a string", "x"), (object(), "x"), ([[1, 2], [3]], "x"), ({"w": "text"}, "x['w']"),
    ((tj.ones(2), object()), "x[1]"), (["a", "b"], "x[0]"),
])
def test_wrong_argument_types_name_the_argument(bad, name):
    f = tj.compile(lambda x, y: y)
    with pytest.raises(TypeError) as e:
        f(bad, tj.ones(2))
    msg = str(e.value)
    assert f"argument {name} " in msg
    assert HERE.name in msg  # the caller's line


def test_wrong_type_in_a_keyword_argument():
    f = tj.compile(lambda x, y=None: x)
    with pytest.raises(TypeError, match="argument y "):
        f(tj.ones(2), y="nope")


def test_rectangular_nested_lists_are_array_data():
    f = tj.compile(lambda x: x * 2)
    out = f([[1, 2], [3, 4]])
    assert out.dtype == tj.int64
    np.testing.assert_array_equal(out.numpy(), np.array([[1, 2], [3, 4]]) * 2)
    out = f([0.5, 1.5])
    assert out.dtype == tj.float32
    np.testing.assert_array_equal(out.numpy(), np.array([1.0, 3.0], np.float32))
    assert f.lower([[1, 2], [3, 4]]).graph.inputs[0].type.shape == (2, 2)


def test_escaped_tracer_used_in_another_trace_is_a_clear_error():
    leak = []
    tj.compile(lambda x: leak.append(x) or x)(tj.ones(2))
    with pytest.raises(tj.TraceError, match="escaped"):
        tj.compile(lambda y: y + leak[0])(tj.ones(2))


def test_escaped_tracer_used_eagerly_is_a_clear_error():
    leak = []
    tj.compile(lambda x: leak.append(x) or x)(tj.ones(2))
    with pytest.raises(tj.TraceError, match="escaped"):
        leak[0] + 1


# -- TRACEJIT_EXPLAIN_CACHE_MISSES ----------------------------------------------------------------


def test_explain_cache_misses_logs_what_changed(monkeypatch, caplog):
    monkeypatch.setenv("TRACEJIT_EXPLAIN_CACHE_MISSES", "1")

    @tj.compile
    def f(x, y):
        return x.sum() + y.sum()

    with caplog.at_level(logging.WARNING, logger="tracejit"):
        f(tj.ones(2), tj.ones(2))
        assert caplog.records == []  # the first trace is not a retrace
        f(tj.ones(2), tj.ones(2))  # a hit
        assert caplog.records == []
        f(tj.ones(2), tj.ones(3))
    assert len(caplog.records) == 1
    msg = caplog.records[0].getMessage()
    assert "y" in msg and "f32[2] -> f32[3]" in msg and "x changed" not in msg
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tracejit"):
        f(tj.ones(2, dtype=tj.float64), tj.ones(3))
    assert "x changed f32[2] -> f64[2]" in caplog.records[-1].getMessage()


def test_explain_cache_misses_for_static_args_and_captures(monkeypatch, caplog):
    monkeypatch.setenv("TRACEJIT_EXPLAIN_CACHE_MISSES", "1")
    f = tj.compile(lambda x, n: x * n, static_argnums=1)
    global W_GLOBAL
    W_GLOBAL = tj.ones(3)
    g = tj.compile(lambda x: x * W_GLOBAL)
    with caplog.at_level(logging.WARNING, logger="tracejit"):
        f(tj.ones(2), 2)
        f(tj.ones(2), 5)
        g(tj.ones(3))
        W_GLOBAL = tj.zeros(3)  # same type: read without a retrace
        g(tj.ones(3))
        W_GLOBAL = tj.zeros(4, 3)  # a new shape: a retrace, explained
        g(tj.ones(3))
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 2
    assert "n" in msgs[0] and "2 -> 5" in msgs[0]
    assert "W_GLOBAL" in msgs[1]
    W_GLOBAL = tj.ones(3)


def test_no_explanations_without_the_variable(monkeypatch, caplog):
    monkeypatch.delenv("TRACEJIT_EXPLAIN_CACHE_MISSES", raising=False)
    f = tj.compile(lambda x: x)
    with caplog.at_level(logging.DEBUG, logger="tracejit"):
        f(tj.ones(2))
        f(tj.ones(3))
    assert caplog.records == []
