"""`tj.debug.print` and `tj.debug.check`: effects inside compiled code.

Printed text is compared line for line (capsys); a print must show at every call of a compiled
function, once per call under the derivative transforms (never again from the backward pass),
per iteration of a loop, only in the branch taken; a failed check raises `tj.CheckError` naming
this file and the line of the check. Also: vmap, the passes (fold, CSE, DCE keep effects),
`tj.config.debug` (no second print), graph dumps and loaders, ONNX.
"""

import os
import warnings

import numpy as np
import pytest

import tracejit as tj

DEVICES = ["cpu", "interpreter"]
HERE = os.path.basename(__file__)


@pytest.fixture(autouse=True)
def fresh_config():
    tj.config.reset()
    yield
    tj.config.reset()


def out_lines(capsys) -> list[str]:
    return capsys.readouterr().out.splitlines()


def line_of(fn, offset: int) -> int:
    """The line `offset` lines below the ``def`` of `fn`."""
    return fn.__code__.co_firstlineno + offset


def assert_located(e: BaseException, line: int) -> None:
    assert f"{HERE}:{line}" in str(e), str(e)


# -- eager ------------------------------------------------------------------------------------

def test_eager_print_positional_keyword_and_specs(capsys):
    x = tj.tensor([1.0, 2.0])
    tj.debug.print("x = {}", x)
    tj.debug.print("{0} and {0}; total={t:.3f} n={n}", tj.tensor([1, 2]), t=x.sum(), n=3)
    tj.debug.print("no fields, {{braces}}")
    tj.debug.print("{:>8}|{!r}", tj.tensor(1.5), tj.tensor([True]))
    assert out_lines(capsys) == [
        "x = tensor([1., 2.])",
        "tensor([1, 2]) and tensor([1, 2]); total=3.000 n=tensor(3)",
        "no fields, {braces}",
        "     1.5|tensor([True])",
    ]


def test_eager_check():
    x = tj.tensor([1.0, -2.0])
    tj.debug.check(x < 5, "never shown")
    tj.debug.check(True)
    line = _line_here() + 2
    with pytest.raises(tj.CheckError) as info:
        tj.debug.check(x > 0, "x must be positive, min is {:.1f}", x.min())
    e = info.value
    assert isinstance(e, AssertionError) and isinstance(e, tj.TraceError)
    assert str(e).startswith("x must be positive, min is -2.0")
    assert_located(e, line)
    with pytest.raises(tj.CheckError, match="debug check failed"):
        tj.debug.check(tj.tensor(False))


def _line_here() -> int:
    import sys
    return sys._getframe(1).f_lineno


# -- compiled: every call ---------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_compiled_prints_at_every_call(device, capsys):
    @tj.compile(device=device)
    def f(x, s):
        tj.debug.print("x = {}, s = {:.2f}", x, s)
        return x * s
    for k in range(3):
        f(tj.tensor([1.0, float(k)]), k + 0.5)
    assert out_lines(capsys) == [
        "x = tensor([1., 0.]), s = 0.50",
        "x = tensor([1., 1.]), s = 1.50",
        "x = tensor([1., 2.]), s = 2.50",
    ]
    assert f.cache_info().misses == 1


@pytest.mark.parametrize("device", DEVICES)
def test_print_of_constants_is_not_folded(device, capsys):
    @tj.compile(device=device)
    def f(x):
        tj.debug.print("{} {:.1f} {}", 3, 2.5, np.arange(3))  # no traced value at all
        return x + 1

    assert out_lines(capsys) == []  # tracing and compiling print nothing
    f(tj.ones(1))
    f(tj.ones(1))
    assert out_lines(capsys) == ["tensor(3) 2.5 tensor([0, 1, 2])"] * 2


@pytest.mark.parametrize("device", DEVICES)
def test_function_returning_nothing_prints_once_per_call(device, capsys):
    @tj.compile(device=device)
    def f(x):
        tj.debug.print("only {}", x)

    assert f(tj.ones(2)) is None
    assert f(tj.ones(2)) is None
    assert out_lines(capsys) == ["only tensor([1., 1.])"] * 2


@pytest.mark.parametrize("device", DEVICES)
def test_effects_run_in_program_order_and_are_never_merged(device, capsys):
    @tj.compile(device=device)
    def f(x):
        tj.debug.print("a {}", x)
        y = tj.exp(x)
        tj.debug.print("b {}", y)
        tj.debug.print("a {}", x)  # identical to the first: printed again
        return y

    f(tj.zeros(1))
    assert out_lines(capsys) == ["a tensor([0.])", "b tensor([1.])", "a tensor([0.])"]


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_check(device):
    @tj.compile(device=device)
    def f(x):
        tj.debug.check(x > 0, "x must be positive: {x}", x=x)
        return tj.log(x)

    line = line_of(f.fn, 2)
    assert f(tj.tensor([1.0])).tolist() == [0.0]
    for _ in range(2):  # every call checks again
        with pytest.raises(tj.CheckError) as info:
            f(tj.tensor([1.0, -1.0]))
        assert str(info.value).startswith("x must be positive: tensor([ 1., -1.])")
        assert_located(info.value, line)
    assert f(tj.tensor([2.0, 3.0])).shape == (2,)


def test_two_functions_differing_only_in_a_print_do_not_share_code(capsys):
    def plain(x):
        return x * 2

    def printing(x):
        tj.debug.print("p {}", x)
        return x * 2

    tj.compile(plain)(tj.ones(2))
    tj.compile(printing)(tj.ones(2))
    tj.compile(plain)(tj.ones(2))
    assert out_lines(capsys) == ["p tensor([1., 1.])"]


# -- control flow -----------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_print_in_fori_loop_and_while_loop_bodies(device, capsys):
    @tj.compile(device=device)
    def f(x, n):
        def body(i, v):
            tj.debug.print("i={} v={}", i, v)
            return v * 2
        return tj.fori_loop(0, n, body, x)

    assert f(tj.tensor(1.0), 3).item() == 8.0
    assert out_lines(capsys) == ["i=tensor(0) v=tensor(1.)", "i=tensor(1) v=tensor(2.)",
                                 "i=tensor(2) v=tensor(4.)"]
    f(tj.tensor(1.0), 1)
    assert out_lines(capsys) == ["i=tensor(0) v=tensor(1.)"]

    @tj.compile(device=device)
    def g(x):
        def cond(v):
            tj.debug.print("cond {}", v)
            return v < 5
        return tj.while_loop(cond, lambda v: v + 2, x)

    g(tj.tensor(0))
    assert out_lines(capsys) == ["cond tensor(0)", "cond tensor(2)", "cond tensor(4)",
                                 "cond tensor(6)"]


@pytest.mark.parametrize("device", DEVICES)
def test_print_in_scan(device, capsys):
    @tj.compile(device=device)
    def f(xs):
        def step(c, x):
            tj.debug.print("c={} x={}", c, x)
            return c + x, c * x
        return tj.scan(step, tj.tensor(0.0), xs)

    c, ys = f(tj.tensor([1.0, 2.0, 3.0]))
    assert c.item() == 6.0 and ys.tolist() == [0.0, 2.0, 9.0]
    assert out_lines(capsys) == ["c=tensor(0.) x=tensor(1.)", "c=tensor(1.) x=tensor(2.)",
                                 "c=tensor(3.) x=tensor(3.)"]


@pytest.mark.parametrize("device", DEVICES)
def test_only_the_branch_taken_prints_and_checks(device, capsys):
    def pos(v):
        tj.debug.print("pos {}", v)
        return v * 2

    def neg(v):
        tj.debug.check(v < 0, "neg branch got {}", v)
        tj.debug.print("neg {}", v)
        return -v

    f = tj.compile(lambda x: tj.cond(x.sum() > 0, pos, neg, x), device=device)
    f(tj.tensor([1.0]))
    f(tj.tensor([-1.0]))
    f(tj.tensor([2.0]))
    assert out_lines(capsys) == ["pos tensor([1.])", "neg tensor([-1.])", "pos tensor([2.])"]


@pytest.mark.parametrize("device", DEVICES)
def test_cond_kept_only_for_its_print(device, capsys):
    @tj.compile(device=device)
    def f(x):
        tj.cond(x.sum() > 0, lambda v: tj.debug.print("pos {}", v), lambda v: None, x)
        return x + 1

    assert f(tj.ones(1)).tolist() == [2.0]
    assert f(-tj.ones(1)).tolist() == [0.0]
    assert out_lines(capsys) == ["pos tensor([1.])"]


@pytest.mark.parametrize("device", DEVICES)
def test_check_in_loop_body_names_its_line(device):
    def body(i, v):
        tj.debug.check(v < 10, "v grew to {} at step {}", v, i)
        return v * 3

    line = line_of(body, 1)
    f = tj.compile(lambda x: tj.fori_loop(0, 5, body, x), device=device)
    with pytest.raises(tj.CheckError, match=r"v grew to tensor\(27\.\) at step tensor\(3\)") as e:
        f(tj.tensor(1.0))
    assert_located(e.value, line)
    assert str(e.value).count(HERE) == 1  # located once, by the innermost runner


# -- derivatives: once per call, forward values -----------------------------------------------

def _f(x):
    tj.debug.print("fwd {}", x)
    return (x * x * x).sum()


def test_grad_prints_forward_values_once_per_call(capsys):
    df = tj.grad(_f)
    for k in (1.0, 2.0):
        g = df(tj.tensor([k, 3.0]))
        np.testing.assert_allclose(g.numpy(), [3 * k * k, 27.0])
    assert out_lines(capsys) == ["fwd tensor([1., 3.])", "fwd tensor([2., 3.])"]
    v, g = tj.value_and_grad(_f)(tj.tensor([1.0, 2.0]))
    assert v.item() == 9.0 and g.tolist() == [3.0, 12.0]
    cg = tj.compile(tj.grad(_f))
    cg(tj.tensor([1.0, 2.0]))
    cg(tj.tensor([1.0, 2.0]))
    assert out_lines(capsys) == ["fwd tensor([1., 2.])"] * 3


def test_grad_matches_finite_differences_with_a_print(capsys):
    x = np.array([0.3, -0.7], dtype=np.float64)
    g = tj.grad(_f)(tj.tensor(x)).numpy()
    eps = 1e-6
    fd = [(_np_f(x + eps * e) - _np_f(x - eps * e)) / (2 * eps) for e in np.eye(2)]
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    assert len(out_lines(capsys)) == 1


def _np_f(x):
    return float((x ** 3).sum())


def test_second_order_and_functional_api_print_once(capsys):
    x = tj.tensor([1.0, 2.0])
    h = tj.grad(lambda v: tj.grad(_f)(v).sum())(x)
    assert h.tolist() == [6.0, 12.0]
    out, vjp = tj.vjp(_f, x)
    assert vjp.tolist() == [3.0, 12.0]
    out, jvp = tj.jvp(_f, x, tj.tensor([1.0, 0.0]))
    assert jvp.item() == 3.0
    assert tj.jacobian(_f, x).tolist() == [3.0, 12.0]
    assert tj.hessian(_f, x).tolist() == [[6.0, 0.0], [0.0, 12.0]]
    _, hv = tj.hvp(_f, x, tj.tensor([1.0, 1.0]))
    assert hv.tolist() == [6.0, 12.0]
    assert out_lines(capsys) == ["fwd tensor([1., 2.])"] * 6


def test_grad_through_loops_and_branches_prints_forward_iterations_only(capsys):
    def w(x):
        def body(v):
            tj.debug.print("w {}", v)
            return v * v + 1
        return tj.while_loop(lambda v: v.sum() < 10, body, x).sum()

    g = tj.grad(w)(tj.tensor([1.0, 2.0]))  # checkpointed reverse mode re-runs the body
    np.testing.assert_allclose(g.numpy(), [2 * 2 * 2 * 1, 2 * 5 * 2 * 2])  # chain rule
    assert out_lines(capsys) == ["w tensor([1., 2.])", "w tensor([2., 5.])"]
    tj.hessian(w, tj.tensor([1.0, 2.0]))
    assert len(out_lines(capsys)) == 2

    def c(x):
        return tj.cond(x.sum() > 0, lambda v: (tj.debug.print("pos {}", v), v * v)[1],
                       lambda v: -v, x).sum()

    assert tj.grad(c)(tj.tensor([1.0, 2.0])).tolist() == [2.0, 4.0]
    assert tj.jvp(c, tj.tensor([1.0, 2.0]), tj.tensor([1.0, 1.0]))[1].item() == 6.0
    assert tj.hessian(c, tj.tensor([1.0, 2.0])).tolist() == [[2.0, 0.0], [0.0, 2.0]]
    assert out_lines(capsys) == ["pos tensor([1., 2.])"] * 3


def test_value_dependent_function_prints_once_per_call(capsys):
    def f(x):
        y = x
        while y.norm() < 10:  # Python control flow on values: traced concretely
            tj.debug.print("y = {}", y)
            y = y * 2
        tj.debug.check(y.sum() > 0, "sum is {}", y.sum())
        return (y * y).sum()

    g = tj.grad(f)(tj.tensor([1.0, 2.0]))
    assert g.tolist() == [128.0, 256.0]
    assert out_lines(capsys) == ["y = tensor([1., 2.])", "y = tensor([2., 4.])",
                                 "y = tensor([4., 8.])"]
    tj.jacobian(f, tj.tensor([3.0, 2.0]))
    assert out_lines(capsys) == ["y = tensor([3., 2.])", "y = tensor([6., 4.])"]
    with pytest.raises(tj.CheckError, match="sum is") as e:
        tj.vjp(f, tj.tensor([-3.0, -4.0]))
    assert_located(e.value, line_of(f, 5))


def test_custom_function_backward_prints_in_the_backward_pass(capsys):
    class Square(tj.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            tj.debug.print("forward {}", x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            tj.debug.print("backward {}", g)
            return 2 * x * g

    g = tj.grad(lambda x: Square.apply(x).sum())(tj.tensor([1.0, 2.0]))
    assert g.tolist() == [2.0, 4.0]
    assert out_lines(capsys) == ["forward tensor([1., 2.])", "backward tensor([1., 1.])"]


# -- vmap -------------------------------------------------------------------------------------

def test_vmap_prints_the_batched_value_once(capsys):
    def f(x, w):
        tj.debug.print("x={} w={}", x, w)
        return (x * w).sum()

    y = tj.vmap(f, in_dims=(0, None))(tj.tensor([[1.0, 2.0], [3.0, 4.0]]), tj.tensor([1.0, 0.0]))
    assert y.tolist() == [1.0, 3.0]
    assert out_lines(capsys) == ["x=tensor([[1., 2.],", "        [3., 4.]]) w=tensor([1., 0.])"]
    gs = tj.vmap(tj.grad(lambda x: f(x, tj.tensor(2.0))))(tj.tensor([[1.0], [3.0]]))
    assert gs.tolist() == [[2.0], [2.0]]
    assert out_lines(capsys) == ["x=tensor([[1.],", "        [3.]]) w=tensor(2.)"]


def test_vmap_check_fails_when_one_example_fails():
    def f(x):
        tj.debug.check(x.sum() > 0, "example sum {}", x.sum())
        return x * 2

    vf = tj.vmap(f)
    assert vf(tj.tensor([[1.0], [2.0]])).tolist() == [[2.0], [4.0]]
    with pytest.raises(tj.CheckError, match=r"example sum tensor\(\[ 1., -2.\]\)") as e:
        vf(tj.tensor([[1.0], [-2.0]]))
    assert_located(e.value, line_of(f, 1))


def test_vmap_check_ignores_lanes_a_batched_branch_discards():
    def f(x):
        return tj.cond(x.sum() > 0,
                       lambda v: (tj.debug.check(v > 0, "pos branch {}", v), v)[1],
                       lambda v: (tj.debug.check(v <= 0, "neg branch {}", v), -v)[1], x)

    vf = tj.vmap(f)
    assert vf(tj.tensor([[1.0], [-2.0]])).tolist() == [[1.0], [2.0]]

    def g(x):  # a batched loop condition: finished lanes are not checked
        def body(v):
            tj.debug.check(v < 4, "v={}", v)
            return v + 1
        return tj.while_loop(lambda v: v < 3, body, x)

    assert tj.vmap(g)(tj.tensor([0, 2])).tolist() == [3, 3]


# -- runners and passes -----------------------------------------------------------------------

def test_debug_config_does_not_print_twice(capsys):
    tj.config.debug = True
    tj.config.debug_nans = True
    try:
        f = tj.compile(lambda x: (tj.debug.print("x {}", x), tj.exp(x))[1])
        f(tj.zeros(2))
        f(tj.zeros(2))
        g = tj.compile(lambda x: (tj.debug.print("y {}", x), tj.log(x))[1])
        with pytest.raises(FloatingPointError):
            g(tj.tensor([-1.0]))
    finally:
        tj.config.reset()
    assert out_lines(capsys) == ["x tensor([0., 0.])"] * 2 + ["y tensor([-1.])"]


@pytest.mark.parametrize("device", DEVICES)
def test_dce_keeps_prints_of_unused_values(device, capsys):
    @tj.compile(device=device)
    def f(x):
        tj.debug.print("unused {}", tj.exp(x))

        def body(st):
            i, v, w = st
            tj.debug.print("w {}", w)  # w is read by nothing else
            return i + 1, v * 2, w + 1
        _, v, _ = tj.while_loop(lambda st: st[0] < 2, body, (0, x, tj.zeros(())))
        return v

    assert f(tj.zeros(1)).tolist() == [0.0]
    assert out_lines(capsys) == ["unused tensor([1.])", "w tensor(0.)", "w tensor(1.)"]
    opt = f.lower(tj.zeros(1)).as_text("optimized")
    assert opt.count("debug_print") == 2 and "exp" in opt


def test_passes_keep_effects():
    from tracejit.passes.pipeline import PASSES

    def f(x):
        tj.debug.print("{}", x * 1.0)
        tj.debug.print("{}", x * 1.0)
        tj.cond(x.sum() > 0, lambda v: tj.debug.check(v > 0, "c"), lambda v: None, x)
        return x

    g = tj.make_graph(f)(tj.ones(2))
    assert [n.op for n in g.effects] == ["debug_print", "debug_print", "cond"]
    for name, run in PASSES:
        g = run(g)
        g.verify()
        assert [n.op for n in g.effects] == ["debug_print", "debug_print", "cond"], name


# -- dumps and loaders ------------------------------------------------------------------------

def test_text_and_json_round_trips_keep_effects(capsys):
    def f(x):
        tj.debug.print("a 'q' {{}} {v:.2f} {}\n", x, v=x.sum())
        tj.debug.check(x > -1, "c {name}", name=x)
        tj.cond(x.sum() > 0, lambda v: tj.debug.print("b {}", v), lambda v: None, x)
        return x * 2

    g = tj.make_graph(f)(tj.ones(2))
    text = str(g)
    assert """debug_print(%x, %0) {fmt="a 'q' {{}} {v:.2f} {}\\n", names=('v',)}""" in text
    check_line = next(t for t in text.splitlines() if "debug_check(" in t)
    assert check_line.endswith(f"{HERE}:{line_of(f, 2)}")
    for loaded in (tj.Graph.from_text(text), tj.Graph.from_json(g.to_json())):
        assert str(loaded) == text
        assert [n.op for n in loaded.effects] == ["debug_print", "debug_check", "cond"]
        loaded.verify()
        assert loaded(tj.tensor([1.0, 2.0])).tolist() == [2.0, 4.0]
        assert out_lines(capsys) == ["a 'q' {} 3.00 tensor([1., 2.])", "",
                                     "b tensor([1., 2.])"]
        with pytest.raises(tj.CheckError, match="c tensor"):
            loaded(tj.tensor([-3.0, 2.0]))
        assert out_lines(capsys)[0] == "a 'q' {} -1.00 tensor([-3.,  2.])"  # ran before it
    assert "debug_print" in g.to_dot()


def test_make_graph_of_grad_shows_the_forward_print_once():
    g = tj.make_graph(tj.grad(_f))(tj.ones(2))
    assert str(g).count("debug_print") == 1


def test_onnx_export_drops_prints_and_refuses_checks():
    pytest.importorskip("onnx")

    def f(x):
        tj.debug.print("x {}", x)
        return tj.cond(x.sum() > 0, lambda v: (tj.debug.print("in {}", v), v * 2)[1],
                       lambda v: v, x)

    g = tj.make_graph(f)(tj.ones(2))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        model = g.to_onnx()
    assert any("2 tj.debug.print call(s)" in str(m.message) for m in w)
    assert "If" in [n.op_type for n in model.graph.node]

    def c(x):
        tj.debug.check(x > 0, "positive")
        return x

    with pytest.raises(NotImplementedError, match="'debug_check'.*no ONNX equivalent"):
        tj.make_graph(c)(tj.ones(2)).to_onnx()


# -- errors at the call -----------------------------------------------------------------------

def test_bad_format_and_arguments_raise_at_the_call():
    x = tj.ones(2)

    def bad_field(x):
        tj.debug.print("{} {}", x)

    with pytest.raises(ValueError, match="more positional fields") as e:
        tj.compile(bad_field)(x)
    assert_located(e.value, line_of(bad_field, 1))
    with pytest.raises(ValueError, match=r"keyword field \{nme\}"):
        tj.debug.print("{nme}", name=x)
    with pytest.raises(ValueError, match="0-d values only"):
        tj.compile(lambda v: tj.debug.print("{:.2f}", v))(x)  # a spec needs a 0-d value
    with pytest.raises(TypeError, match="argument 1 is a str"):
        tj.debug.print("{} {}", x, "text")
    with pytest.raises(TypeError, match="argument 'k' is a NoneType"):
        tj.debug.print("{k}", k=None)
    with pytest.raises(TypeError, match="must be a bool tensor"):
        tj.compile(lambda v: tj.debug.check(v, "not bool"))(x)
    with pytest.raises(TypeError, match="format string must be a str"):
        tj.debug.print(x)


def test_docstring_examples_run():
    import doctest

    import tracejit.debug
    res = doctest.testmod(tracejit.debug,
                          optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0
