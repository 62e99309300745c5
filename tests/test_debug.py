"""`tj.config`, differential checking (`tj.config.debug`) and `tj.config.debug_nans`."""

import random

import numpy as np
import pytest

import tracejit as tj
from tracejit.runtime.debugcheck import compare

rng = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def fresh_config(monkeypatch):
    monkeypatch.setenv("TRACEJIT_DISK_CACHE", "0")  # broken lowerings must not be stored
    tj.config.reset()
    yield
    tj.config.reset()


# -- tj.config --------------------------------------------------------------------------------

def test_config_defaults_from_environment(monkeypatch):
    monkeypatch.setenv("TRACEJIT_DEBUG", "1")
    monkeypatch.setenv("TRACEJIT_DEBUG_NANS", "0")
    tj.config.reset()
    assert tj.config.debug is True and tj.config.debug_nans is False
    monkeypatch.delenv("TRACEJIT_DEBUG")
    tj.config.reset()
    assert tj.config.debug is False


def test_config_set_at_runtime_and_validated():
    v = tj.config.version
    tj.config.debug = True
    assert tj.config.debug and tj.config.version > v
    with pytest.raises(AttributeError, match="no switch"):
        tj.config.debgu = True
    with pytest.raises(TypeError):
        tj.config.debug_nans = "yes"
    from tracejit.passes.pipeline import debug_enabled
    assert debug_enabled()
    tj.config.debug = False
    assert not debug_enabled()


def test_runner_is_rechosen_when_the_switch_changes():
    from tracejit.runtime.cpu import CPUProgram
    f = tj.compile(lambda x: tj.exp(x) * 3.0)
    x = rng.standard_normal(8).astype(np.float32)
    f(x)
    entry = next(iter(f._cache.values()))
    assert isinstance(entry.runner, CPUProgram)  # switches off: the plain program
    tj.config.debug = True
    np.testing.assert_allclose(f(x).numpy(), np.exp(x) * 3, rtol=1e-6)
    assert not isinstance(entry.runner, CPUProgram)
    tj.config.debug = False
    f(x)
    assert isinstance(entry.runner, CPUProgram)
    assert f.cache_info().misses == 1  # no retrace


# -- differential checking --------------------------------------------------------------------

def test_debug_agrees_on_ordinary_programs():
    tj.config.debug = True

    @tj.compile
    def f(x, w, i):
        h = tj.tanh(x @ w) + tj.sigmoid(x).sum(1, keepdim=True)
        return tj.softmax(h, dim=-1), (h * 1e3).sum(), (i * 3) // 2, x > 0.5, tj.log(x + 2.0)

    x = rng.random((16, 32)).astype(np.float32)
    w = rng.standard_normal((32, 8)).astype(np.float32)
    i = rng.integers(-50, 50, (5,), dtype=np.int64)
    f(x, w, i)
    f(x.astype(np.float64), w.astype(np.float64), i)


def test_compare_tolerance_rules():
    a = np.array([1.0, 2.0, np.nan], np.float32)
    assert compare(a, a.copy(), (1, 0)) is None
    assert compare(a, np.array([1.0, 2.0, 3.0], np.float32), (1, 0)) is not None  # NaN moved
    assert compare(a + np.float32(1e-7), a, (1, 0)) is None  # an ulp
    assert compare(a + 1e-3, a, (1, 0)) is not None
    assert compare(a[:2], a[:2].astype(np.float64), (1, 0)) is not None  # dtype
    ints = np.arange(4)
    assert compare(ints, ints + np.array([0, 0, 1, 0]), (100, 100)) is not None  # exact
    inf = np.array([np.inf], np.float32)
    assert compare(inf, -inf, (1e9, 1e9)) is not None


def _break_exp(monkeypatch):
    """The cpu backend's `exp` returns exp(x) + 1 (for code generated from now on)."""
    from llvmlite import ir

    import tracejit.codegen.llvm as L
    orig = L.lower_op

    def wrong(gen, e, args):
        v = orig(gen, e, args)
        if e.kind == "exp":
            return gen.b.fadd(v, ir.Constant(v.type, 1.0))
        return v
    monkeypatch.setattr(L, "lower_op", wrong)


def test_debug_names_the_wrong_kernel_and_the_user_line(monkeypatch):
    _break_exp(monkeypatch)
    tj.config.debug = True
    c = 1.0 + random.random()  # a graph no cache has seen

    @tj.compile
    def f(x, w):
        y = x * c
        z = tj.exp(y) - 0.25  # the broken line
        return (z @ w).sum(0), tj.tanh(x)

    x = rng.random((4, 5)).astype(np.float32)
    w = rng.random((5, 3)).astype(np.float32)
    with pytest.raises(tj.DebugCheckError) as info:
        f(x, w)
    msg = str(info.value)
    assert "output 0 (f32[3]) disagrees with the interpreter" in msg
    assert "max error" in msg
    first = msg.split("the first step that disagrees")[1]
    assert "exp" in first.splitlines()[0]  # the kernel fusing exp, not the sum after it
    assert "z = tj.exp(y) - 0.25  # the broken line" in first
    assert "test_debug.py" in first
    assert isinstance(info.value, AssertionError)
    tj.config.debug = False  # the switch off: the wrong result goes unchecked
    f(x, w)


def test_debug_off_does_not_check(monkeypatch):
    _break_exp(monkeypatch)
    c = 1.0 + random.random()
    f = tj.compile(lambda x: tj.exp(x * c))
    x = np.zeros(3, np.float32)
    np.testing.assert_allclose(f(x).numpy(), 2.0)  # wrong, and nobody looks


def test_debug_skips_the_interpreter_device():
    tj.config.debug = True
    f = tj.compile(lambda x: x + 1, device="interpreter")
    f(np.ones(3))
    from tracejit.runtime.cpu import CPUProgram  # noqa: F401
    entry = next(iter(f._cache.values()))
    assert entry.runner is entry.base


# -- debug_nans -------------------------------------------------------------------------------

def test_debug_nans_compiled_names_the_op_and_line():
    tj.config.debug_nans = True

    @tj.compile
    def f(x):
        y = x * 2.0
        z = tj.log(y - 1.0)  # NaN for x < 0.5
        return tj.exp(z) + 1.0

    f(np.array([1.0, 2.0], np.float32))  # no NaN: no error
    with pytest.raises(FloatingPointError) as info:
        f(np.array([0.1, 2.0], np.float32))
    msg = str(info.value)
    assert "NaN produced by log" in msg
    assert "z = tj.log(y - 1.0)  # NaN for x < 0.5" in msg


def test_debug_nans_interpreter_and_input_nans():
    tj.config.debug_nans = True
    f = tj.compile(lambda x: tj.sqrt(x), device="interpreter")
    with pytest.raises(FloatingPointError, match="NaN produced by sqrt"):
        f(np.array([-1.0]))
    g = tj.compile(lambda x: x + 1.0)
    with pytest.raises(FloatingPointError, match="comes from input"):
        g(np.array([np.nan], np.float32))


def test_debug_nans_eager():
    x = tj.tensor([-1.0, 4.0])
    tj.sqrt(x)  # off: numpy's NaN
    tj.config.debug_nans = True
    with pytest.raises(FloatingPointError, match="sqrt: produced NaN") as info:
        tj.sqrt(x)
    assert "test_debug.py" in str(info.value)
    tj.tensor([np.nan]) + 1.0  # a NaN passed along is not produced


def test_debug_nans_off_by_default():
    f = tj.compile(lambda x: tj.log(x))
    assert np.isnan(f(np.array([-1.0], np.float32)).numpy()[0])
