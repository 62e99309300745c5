"""Places where PyTorch and numpy disagree, and tracejit follows PyTorch (SPEC: PyTorch names and
semantics). Each test states the PyTorch behaviour it pins down, checked eagerly and compiled."""

import numpy as np
import pytest

import tracejit as tj


def _eager(f):
    return lambda *args: f(*(tj.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args))


BACKENDS = [_eager, lambda f: tj.compile(f, device="interpreter")]


@pytest.mark.parametrize("wrap", BACKENDS)
def test_sign_of_nan_is_zero(wrap):
    x = np.array([-2.0, -0.0, 0.0, 3.0, np.nan], np.float32)
    out = wrap(tj.sign)(x).numpy()
    np.testing.assert_array_equal(out, [-1.0, 0.0, 0.0, 1.0, 0.0])


@pytest.mark.parametrize("wrap", BACKENDS)
def test_integer_power_with_negative_exponent(wrap):
    a = np.array([0, 1, -1, -1, 2, -2, 5], np.int64)
    b = np.array([-1, -3, -3, -2, -2, -1, 0], np.int64)
    # 1 ** -n == 1, (-1) ** -n == +-1, any other base truncates to 0 (integer division)
    np.testing.assert_array_equal(wrap(lambda a, b: a ** b)(a, b).numpy(),
                                  [0, 1, -1, 1, 0, 0, 1])


@pytest.mark.parametrize("wrap", BACKENDS)
def test_empty_dim_reduces_everything_but_empty_axis_reduces_nothing(wrap):
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    assert float(wrap(lambda t: tj.sum(t, dim=()))(x)) == 15.0
    assert float(wrap(lambda t: tj.amax(t, dim=[]))(x)) == 5.0
    np.testing.assert_array_equal(wrap(lambda t: tj.sum(t, axis=()))(x).numpy(), x)


@pytest.mark.parametrize("wrap", BACKENDS)
def test_ints_select_before_advanced_indexing(wrap):
    x = np.arange(40.0, dtype=np.float32).reshape(4, 2, 5)
    i = np.array([0, 1, 2])
    out = wrap(lambda x, i: x[1, :, i])(x, i)
    assert out.shape == (2, 3)  # numpy gives (3, 2)
    np.testing.assert_array_equal(out.numpy(), x[1][:, i])


def test_clone_of_a_tracer_is_a_separate_tensor():
    def g(x):
        y = x.clone()
        y[0] = 5.0
        return x, y

    x, y = tj.compile(g)(np.zeros(2, np.float32))
    np.testing.assert_array_equal(x.numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(y.numpy(), [5.0, 0.0])
