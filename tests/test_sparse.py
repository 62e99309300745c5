"""Sparse tensors (tracejit/sparse, primitives/sparse.py, codegen/cuda_sparse.py).

Checked: the layouts; COO <-> CSR <-> dense round trips (duplicates summed, empty rows, no
nonzeros, float32/float64); the constructors' validation errors; `tj.sparse.mm` / ``@`` against
dense numpy and scipy.sparse; gradients with respect to the dense operand and the values against
finite differences and the dense computation's gradients (eager ``.backward()``, and `tj.grad`
under `tj.compile`); clear errors for ops without sparse support; that the native kernels run
and nothing of the sparse matrix's dense shape is materialized; identical results on any number
of threads; vmap; and the CUDA renderings through the host emulation.
"""

from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from tracejit.sparse import SparseNotSupportedError, native

FLOATS = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def _matrix(n, m, density=0.3, seed=0, dtype=np.float64, empty_rows=(1,)):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, m)) * (rng.random((n, m)) < density)
    for r in empty_rows:
        if r < n:
            a[r] = 0
    return a.astype(dtype)


def _csr_of(a):
    r, c = np.nonzero(a)
    crow = np.zeros(a.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(r, minlength=a.shape[0]), out=crow[1:])
    return crow, c.astype(np.int64), a[r, c]


# -- layouts and printing -------------------------------------------------------------------------

def test_layouts():
    assert tj.zeros(2).layout is tj.strided and repr(tj.strided) == "tracejit.strided"
    s = tj.tensor([[0.0, 1.0], [2.0, 0.0]]).to_sparse()
    assert s.layout is tj.sparse_coo and s.is_sparse and not s.is_sparse_csr
    c = s.to_sparse_csr()
    assert c.layout is tj.sparse_csr and c.is_sparse_csr and repr(c.layout) == "tracejit.sparse_csr"
    assert s.shape == c.shape == (2, 2) and s.dtype == c.dtype == tj.float32
    assert s.device == tj.device("cpu") and s._nnz() == c._nnz() == 2
    assert not tj.zeros(2).is_sparse and tj.zeros(2).to_dense() is not None


def test_repr():
    s = tj.sparse_coo_tensor([[0, 1], [1, 0]], [1.0, 2.0], (2, 2))
    assert repr(s) == ("tensor(indices=tensor([[0, 1],\n"
                       "                       [1, 0]]),\n"
                       "       values=tensor([1., 2.]),\n"
                       "       size=(2, 2), nnz=2, layout=tracejit.sparse_coo)")
    c = tj.sparse_csr_tensor([0, 1, 2], [1, 0], np.array([1.0, 2.0]), (2, 2))
    assert repr(c) == ("tensor(crow_indices=tensor([0, 1, 2]),\n"
                       "       col_indices=tensor([1, 0]),\n"
                       "       values=tensor([1., 2.]),\n"
                       "       size=(2, 2), nnz=2, dtype=tracejit.float64, "
                       "layout=tracejit.sparse_csr)")


# -- round trips ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,density", [((5, 7), 0.3), ((4, 3), 0.0), ((1, 6), 1.0),
                                           ((0, 3), 0.5), ((6, 1), 0.5)])
def test_round_trips(dtype, shape, density):
    a = _matrix(*shape, density=density, dtype=dtype)
    x = tj.tensor(a)
    coo, csr = x.to_sparse(), x.to_sparse_csr()
    assert coo.is_coalesced() and coo._nnz() == csr._nnz() == np.count_nonzero(a)
    for s in (coo, csr, coo.to_sparse_csr(), csr.to_sparse(), csr.to_sparse().to_sparse_csr(),
              coo.to_sparse_csr().to_sparse().coalesce()):
        d = s.to_dense()
        assert d.dtype == x.dtype and d.shape == a.shape
        np.testing.assert_array_equal(d.numpy(), a)
    crow, col, vals = _csr_of(a)
    np.testing.assert_array_equal(csr.crow_indices().numpy(), crow)
    np.testing.assert_array_equal(csr.col_indices().numpy(), col)
    np.testing.assert_array_equal(csr.values().numpy(), vals)
    np.testing.assert_array_equal(coo.indices().numpy(), np.stack(np.nonzero(a)))
    assert csr.to_sparse().is_coalesced()  # sorted unique columns: known coalesced


@pytest.mark.parametrize("dtype", FLOATS)
def test_duplicates_coalesce_by_summing(dtype):
    idx = np.array([[2, 0, 2, 1, 0, 2], [1, 3, 1, 0, 3, 1]])
    v = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype)
    s = tj.sparse_coo_tensor(idx, v, (3, 4))
    assert not s.is_coalesced() and s._nnz() == 6
    with pytest.raises(RuntimeError, match="coalesce"):
        s.indices()
    want = np.zeros((3, 4), dtype)
    np.add.at(want, tuple(idx), v)
    np.testing.assert_array_equal(s.to_dense().numpy(), want)
    c = s.coalesce()
    assert c.is_coalesced() and c._nnz() == 3 and c.coalesce() is c
    np.testing.assert_array_equal(c.indices().numpy(), [[0, 1, 2], [3, 0, 1]])
    np.testing.assert_array_equal(c.values().numpy(), np.array([7.0, 4.0, 10.0], dtype))
    np.testing.assert_array_equal(s.to_sparse_csr().to_dense().numpy(), want)
    assert s.to_sparse_csr().crow_indices().tolist() == [0, 2, 3, 6]


def test_zero_nnz_and_3d_coo():
    s = tj.sparse_coo_tensor(np.zeros((2, 0), np.int64), np.zeros(0), (3, 2))
    assert s._nnz() == 0 and s.coalesce()._nnz() == 0
    np.testing.assert_array_equal(s.to_dense().numpy(), np.zeros((3, 2)))
    np.testing.assert_array_equal((s @ tj.ones(2, 4, dtype=tj.float64)).numpy(), np.zeros((3, 4)))
    a = _matrix(3, 4, 0.5).reshape(2, 6)[:, :6].reshape(2, 3, 2)
    t = tj.tensor(a).to_sparse()
    assert t.indices().shape == (3, np.count_nonzero(a))
    np.testing.assert_array_equal(t.to_dense().numpy(), a)
    inferred = tj.sparse_coo_tensor([[0, 4], [1, 2]], [1.0, 2.0])
    assert inferred.shape == (5, 3)


# -- validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("args,exc,needle", [
    (([0, 1], [1.0, 2.0], (2,)), ValueError, "2-d"),                       # indices 1-d
    (([[0, 1], [1, 0]], [1.0], (2, 2)), ValueError, "values has 1"),       # nnz mismatch
    (([[0, 5], [1, 0]], [1.0, 2.0], (2, 2)), ValueError, "for dim 0, size is 2 but found index 5"),
    (([[0, 1], [-1, 0]], [1.0, 2.0], (2, 2)), ValueError, "found index -1"),
    (([[0.5, 1], [1, 0]], [1.0, 2.0], (2, 2)), TypeError, "integers"),
    (([[0, 1], [1, 0]], [[1.0], [2.0]], (2, 2)), ValueError, "hybrid"),
    (([[0, 1], [1, 0]], [1.0, 2.0], (2, 2, 2)), ValueError, "size [2, 2, 2]"),
])
def test_coo_validation(args, exc, needle):
    with pytest.raises(exc, match=None) as info:
        tj.sparse_coo_tensor(*args)
    assert needle in str(info.value) and "sparse_coo_tensor" in str(info.value)


@pytest.mark.parametrize("args,needle", [
    (([0, 1, 2], [1, 0], [1.0, 2.0], (3, 2)), "needs 4"),                 # crow length
    (([0, 2, 1, 2], [1, 0], [1.0, 2.0], (3, 2)), "non-decreasing"),
    (([1, 1, 2, 2], [1, 0], [1.0, 2.0], (3, 2)), "start at 0"),
    (([0, 1, 1, 3], [1, 0], [1.0, 2.0], (3, 2)), "end at nnz = 2"),
    (([0, 1, 1, 2], [1, 2], [1.0, 2.0], (3, 2)), "column index 2 is out of bounds"),
    (([0, 1, 1, 2], [1, 0], [1.0, 2.0, 3.0], (3, 2)), "values has 3"),
    (([0, 1, 1, 2], [1, 0], [1.0, 2.0], (3, 2, 1)), "2-d"),
])
def test_csr_validation(args, needle):
    with pytest.raises(ValueError) as info:
        tj.sparse_csr_tensor(*args)
    assert needle in str(info.value) and "sparse_csr_tensor" in str(info.value)


def test_bad_pattern_at_run_time_is_caught():
    """Traced indices are not validated when built; the kernel's reference checks them."""
    f = tj.compile(lambda crow, col, v, b: tj.sparse.mm(tj.sparse_csr_tensor(crow, col, v,
                                                                             (2, 2)), b))
    b = np.ones((2, 3))
    with pytest.raises(IndexError, match="column index 5"):
        f(np.array([0, 1, 2]), np.array([0, 5]), np.ones(2), b)
    with pytest.raises(ValueError, match="end at nnz"):
        f(np.array([0, 2, 1]), np.array([0, 1]), np.ones(2), b)


# -- products -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", ["coo", "csr", "coo_unsorted"])
def test_mm_matches_numpy_and_scipy(dtype, layout):
    sp = pytest.importorskip("scipy.sparse")
    a = _matrix(30, 20, 0.2, seed=3, dtype=dtype, empty_rows=(0, 7, 29))
    b = np.random.default_rng(4).standard_normal((20, 9)).astype(dtype)
    if layout == "coo_unsorted":
        r, c = np.nonzero(a)
        p = np.random.default_rng(5).permutation(len(r))
        s = tj.sparse_coo_tensor(np.stack([r[p], c[p]]), a[r[p], c[p]], a.shape)
    else:
        s = tj.tensor(a).to_sparse() if layout == "coo" else tj.tensor(a).to_sparse_csr()
    for y in (tj.sparse.mm(s, tj.tensor(b)), s @ tj.tensor(b), s.mm(b), s @ b):
        assert y.dtype.np == dtype and y.shape == (30, 9)
        np.testing.assert_allclose(y.numpy(), a @ b, **TOL[dtype])
        np.testing.assert_allclose(y.numpy(), sp.csr_matrix(a) @ b, **TOL[dtype])
    np.testing.assert_allclose((s @ b[:, 0]).numpy(), a @ b[:, 0], **TOL[dtype])


def test_mm_dtypes_and_shapes():
    s = tj.tensor(_matrix(3, 4, 0.5, dtype=np.float32)).to_sparse_csr()
    assert (s @ tj.ones(4, 2, dtype=tj.float64)).dtype == tj.float64  # promotes
    assert tj.sparse.mm(tj.ones(2, 3), tj.ones(3, 1)).shape == (2, 1)  # dense: tj.mm
    with pytest.raises(ValueError, match=r"sparse.mm: cannot multiply a sparse \[3, 4\]"):
        s @ tj.ones(3, 2)
    with pytest.raises(TypeError, match="float32 or float64"):
        tj.sparse_coo_tensor([[0], [1]], [1], (2, 2)) @ tj.ones(2, 2, dtype=tj.int64)
    with pytest.raises(SparseNotSupportedError):
        s @ s


def test_sampled_addmm():
    a = _matrix(5, 6, 0.4, seed=8)
    s = tj.tensor(a).to_sparse_csr()
    m1, m2 = np.random.default_rng(1).standard_normal((2, 5, 3))
    m2 = m2.reshape(3, 5)[:, :5].repeat(2, 1)[:, :6]
    out = tj.sparse.sampled_addmm(s, m1, m2, beta=0.5, alpha=2.0)
    assert out.layout is tj.sparse_csr
    mask = a != 0
    np.testing.assert_allclose(out.to_dense().numpy(), np.where(mask, 0.5 * a + 2 * m1 @ m2, 0))


# -- gradients ------------------------------------------------------------------------------------

def _loss_dense(a, b):
    return tj.sin(a @ b).sum()


def _setup(seed=0):
    a = _matrix(8, 6, 0.35, seed=seed, empty_rows=(2,))
    b = np.random.default_rng(seed + 1).standard_normal((6, 4))
    crow, col, vals = _csr_of(a)
    return a, b, crow, col, vals


@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_eager_backward_matches_dense(layout):
    a, b, crow, col, vals = _setup()
    v = tj.tensor(vals, requires_grad=True)
    bt = tj.tensor(b, requires_grad=True)
    if layout == "csr":
        s = tj.sparse_csr_tensor(crow, col, v, a.shape)
    else:
        r, c = np.nonzero(a)
        s = tj.sparse_coo_tensor(np.stack([r, c])[:, ::-1].copy(), v.flip(0), a.shape)
    tj.sin(s @ bt).sum().backward()
    ad, bd = tj.tensor(a, requires_grad=True), tj.tensor(b, requires_grad=True)
    _loss_dense(ad, bd).backward()
    np.testing.assert_allclose(bt.grad.numpy(), bd.grad.numpy(), rtol=1e-12, atol=1e-12)
    r, c = np.nonzero(a)
    np.testing.assert_allclose(v.grad.numpy(), ad.grad.numpy()[r, c], rtol=1e-12, atol=1e-12)


def test_sparse_leaf_grad_and_to_sparse_grad():
    a, b, crow, col, vals = _setup(1)
    s = tj.sparse_csr_tensor(crow, col, vals, a.shape, requires_grad=True)
    assert s.requires_grad
    (s @ b).sum().backward()
    g = s.grad
    assert g.layout is tj.sparse_csr
    np.testing.assert_allclose(g.to_dense().numpy(), np.where(a != 0, b.sum(1)[None, :], 0))
    x = tj.tensor(a, requires_grad=True)
    (x.to_sparse() @ b).sum().backward()  # through the gather of the values
    np.testing.assert_allclose(x.grad.numpy(), np.where(a != 0, b.sum(1)[None, :], 0))


def test_grad_under_compile_matches_dense_and_finite_differences():
    a, b, crow, col, vals = _setup(2)

    def f(v, b):
        return tj.sin(tj.sparse.mm(tj.sparse_csr_tensor(crow, col, v, a.shape), b)).sum()

    gv, gb = tj.compile(tj.grad(f, argnums=(0, 1)))(vals, b)
    dv, db = tj.grad(_loss_dense, argnums=(0, 1))(tj.tensor(a), tj.tensor(b))
    r, c = np.nonzero(a)
    np.testing.assert_allclose(gb.numpy(), db.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gv.numpy(), dv.numpy()[r, c], rtol=1e-12, atol=1e-12)
    rng = np.random.default_rng(9)
    u, w = rng.standard_normal(vals.shape), rng.standard_normal(b.shape)
    eps = 1e-6
    fd = (float(f(tj.tensor(vals + eps * u), tj.tensor(b + eps * w)))
          - float(f(tj.tensor(vals - eps * u), tj.tensor(b - eps * w)))) / (2 * eps)
    assert abs(fd - (np.sum(gv.numpy() * u) + np.sum(gb.numpy() * w))) < 1e-7
    ops = {n.op for n in tj.make_graph(tj.grad(f, argnums=(0, 1)))(vals, b).nodes}
    assert {"spmm_csr", "sddmm_csr"} <= ops and "dot_general" not in ops


def test_compile_takes_sparse_arguments():
    a, b, *_ = _setup(3)
    f = tj.compile(lambda s, b: s @ b)
    r, c = np.nonzero(a)
    unsorted = tj.sparse_coo_tensor(np.stack([r, c])[:, ::-1].copy(), a[r, c][::-1].copy(),
                                    a.shape)
    for s in (tj.tensor(a).to_sparse(), tj.tensor(a).to_sparse_csr(), unsorted):
        np.testing.assert_allclose(f(s, b).numpy(), a @ b, rtol=1e-12)
    np.testing.assert_array_equal(tj.compile(lambda s: s.to_dense())(unsorted).numpy(), a)
    with pytest.raises(tj.ConcretizationError, match="to_sparse"):
        tj.compile(lambda x: x.to_sparse().to_dense())(a)


# -- not densified; native kernels; threads -------------------------------------------------------

def test_native_kernels_run_and_nothing_dense_is_materialized():
    from tracejit.passes.pipeline import optimize
    from tracejit.schedule.fusion import schedule
    from tracejit.schedule.kernel import Extern
    n, m, k = 600, 800, 4
    rng = np.random.default_rng(0)
    crow = np.sort(rng.integers(0, 3000, n + 1)); crow[0], crow[-1] = 0, 3000  # noqa: E702
    col = rng.integers(0, m, 3000)

    def f(v, b):
        return tj.sin(tj.sparse.mm(tj.sparse_csr_tensor(crow, col, v, (n, m)), b)).sum()
    g = tj.make_graph(tj.grad(f, argnums=(0, 1)))(np.ones(3000, np.float32),
                                                 np.ones((m, k), np.float32))
    assert not any(n_.shape in ((n, m), (m, n)) for n_ in g.nodes)
    sched = schedule(optimize(g))
    externs = sorted(st.node.op for st in sched.steps if isinstance(st, Extern))
    assert externs == ["sddmm_csr", "spmm_csr", "spmm_csr"]
    assert all(b.shape not in ((n, m), (m, n)) for b in sched.buffers)
    before = native.kernel_stats["calls"]
    tj.compile(tj.grad(f, argnums=(0, 1)))(np.ones(3000, np.float32), np.ones((m, k), np.float32))
    assert native.kernel_stats["calls"] >= before + 3
    ir = native.kernels(np.float32)["ir"]
    assert "x float>" in ir  # the inner loops were vectorized


@pytest.mark.parametrize("dtype", FLOATS)
def test_threads_give_identical_results(monkeypatch, dtype):
    a = _matrix(300, 200, 0.05, seed=11, dtype=dtype, empty_rows=range(0, 300, 17))
    crow, col, vals = _csr_of(a)
    rng = np.random.default_rng(2)
    b = rng.standard_normal((200, 16)).astype(dtype)
    g = rng.standard_normal((300, 16)).astype(dtype)
    monkeypatch.setattr(native, "PARALLEL_WORK", 0)
    results = []
    for t in ("1", "2", "3", "7"):
        monkeypatch.setenv("TRACEJIT_NUM_THREADS", t)
        results.append((native.spmm(crow, col, vals, b, 300, 200),
                        native.spmm(crow, col, vals, g, 300, 200, transpose=True),
                        native.sddmm(crow, col, g, b)))
    for other in results[1:]:
        for x, y in zip(results[0], other):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(results[0][0], a @ b, **TOL[dtype])
    np.testing.assert_allclose(results[0][1], a.T @ g, **TOL[dtype])
    mask = a != 0
    np.testing.assert_allclose(results[0][2], (g @ b.T)[mask], **TOL[dtype])


# -- unsupported ops ------------------------------------------------------------------------------

S = tj.sparse_coo_tensor([[0, 1], [1, 0]], [1.0, 2.0], (2, 2))
UNSUPPORTED = [
    ("__add__", lambda: S + 1), ("__radd__", lambda: 1 + S), ("add", lambda: tj.ones(2, 2) + S),
    ("exp", lambda: tj.exp(S)), ("sum", lambda: S.sum()), ("__getitem__", lambda: S[0]),
    ("__neg__", lambda: -S), ("mm", lambda: tj.mm(S, tj.ones(2, 2))),
    ("reshape", lambda: S.reshape(4)),
    ("softmax", lambda: tj.softmax(S, 0)), ("__mul__", lambda: S * S), ("relu", lambda: S.relu()),
    ("conversion to a numpy array", lambda: np.asarray(S)), ("__bool__", lambda: bool(S)),
]


@pytest.mark.parametrize("name,fn", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_ops_raise_clearly(name, fn):
    with pytest.raises(SparseNotSupportedError) as info:
        fn()
    msg = str(info.value)
    assert msg.startswith(name + ":") and "to_dense()" in msg and "sparse_coo" in msg
    assert isinstance(info.value, NotImplementedError) and isinstance(info.value, TypeError)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        S.not_a_tensor_method  # noqa: B018


# -- vmap -----------------------------------------------------------------------------------------

def test_vmap_over_the_dense_operand():
    a, b, crow, col, vals = _setup(4)
    bs = np.random.default_rng(0).standard_normal((3, 6, 4))
    s = tj.sparse_csr_tensor(crow, col, vals, a.shape)
    y = tj.vmap(lambda b: tj.sparse.mm(s, b))(bs)
    np.testing.assert_allclose(y.numpy(), np.stack([a @ x for x in bs]), rtol=1e-12)
    # a batch of sparse matrices (batched values): one product per batch element
    vs = np.stack([vals, 2 * vals, -vals])
    y = tj.vmap(lambda v: tj.sparse.mm(tj.sparse_csr_tensor(crow, col, v, a.shape), b))(vs)
    np.testing.assert_allclose(y.numpy(), np.stack([a @ b, 2 * a @ b, -a @ b]), rtol=1e-12)
    g = tj.vmap(tj.grad(lambda v: tj.sparse.mm(tj.sparse_csr_tensor(crow, col, v, a.shape),
                                               b).sum()))(vs)
    np.testing.assert_allclose(g.numpy()[1], tj.grad(lambda v: tj.sparse.mm(
        tj.sparse_csr_tensor(crow, col, v, a.shape), b).sum())(vals).numpy(), rtol=1e-12)


# -- CUDA, through the host emulation --------------------------------------------------------------

@pytest.fixture(scope="module")
def emulate():
    from tracejit.runtime import cuda_emu
    if cuda_emu.compiler() is None:
        pytest.skip("the CUDA host emulation needs a C++ compiler")
    return cuda_emu.emulate_graph


def _cuda_fn(shape):
    def f(crow, col, v, b, g):
        s = tj.sparse_csr_tensor(crow, col, v, shape)
        y = tj.sparse.mm(s, b)
        gv, gb = tj.grad(lambda v, b: (tj.sparse.mm(tj.sparse_csr_tensor(crow, col, v, shape), b)
                                       * g).sum(), argnums=(0, 1))(v, b)
        return y, gv, gb
    return f


@pytest.mark.parametrize("dtype", FLOATS)
def test_cuda_renderings_emulated(emulate, dtype):
    from tracejit.codegen.cuda import render_schedule
    from tracejit.codegen.cuda_sparse import RENDERED_SPARSE, render_sparse
    from tracejit.passes.pipeline import optimize
    from tracejit.runtime.interpreter import run_graph
    from tracejit.schedule.fusion import schedule
    from tracejit.schedule.kernel import Extern
    a, b, crow, col, vals = _setup(5)
    g = np.random.default_rng(3).standard_normal((8, 4))
    args = [crow, col, vals.astype(dtype), b.astype(dtype), g.astype(dtype)]
    graph = tj.make_graph(_cuda_fn(a.shape))(*args)
    sched = schedule(optimize(graph))
    src = render_schedule(sched)
    for i, st in enumerate(sched.steps):
        if isinstance(st, Extern) and st.node.op in RENDERED_SPARSE:
            text, cstep = render_sparse(sched, st, i)
            assert cstep.error_flag and all(ln.name.startswith(f"x{i}_{st.node.op}")
                                            for ln in cstep.launches)
            assert text in src.text
    want = run_graph(optimize(graph), args)
    got = emulate(graph, args)
    for w, v in zip(want, got):
        assert v.dtype == np.asarray(w).dtype
        np.testing.assert_allclose(v, np.asarray(w), **TOL[dtype])
    r, c = np.nonzero(a)
    np.testing.assert_allclose(got[0], a @ b, **TOL[dtype])
    np.testing.assert_allclose(got[2], a.T @ g, **TOL[dtype])
    np.testing.assert_allclose(got[1], (g @ b.T)[r, c], **TOL[dtype])


def test_cuda_bad_pattern_raises_like_cpu(emulate):
    a, b, crow, col, vals = _setup(6)
    bad = col.copy()
    bad[3] = 99
    args = [crow, bad, vals, b, np.ones((8, 4))]
    graph = tj.make_graph(_cuda_fn(a.shape))(*args)
    with pytest.raises(IndexError, match="column index 99"):
        emulate(graph, args)


def test_sparse_tensors_on_the_emulated_device(emulate):
    """A sparse tensor moved to a CUDA device keeps every component there; products,
    conversions and gradients run there (eager: compiled for the device) and match the CPU."""
    was = tj.cuda._emulate[0]
    tj.cuda.emulate(True)
    try:
        a, b, crow, col, vals = _setup(7)
        s = tj.sparse_csr_tensor(crow, col, vals, a.shape).cuda()
        assert s.device == tj.device("cuda:0")
        assert all(p.device == s.device for p in (s.crow_indices(), s.col_indices(), s.values()))
        d = tj.tensor(b, device="cuda", requires_grad=True)
        y = tj.sparse.mm(s, d)
        assert y.device == s.device
        np.testing.assert_allclose(y.numpy(), a @ b, rtol=1e-12)
        (y * 2).sum().backward()
        assert d.grad.device == s.device
        np.testing.assert_allclose(d.grad.numpy(), 2 * a.T @ np.ones((a.shape[0], b.shape[1])),
                                   rtol=1e-12)
        x = tj.tensor(a, device="cuda")
        for sp in (x.to_sparse(), x.to_sparse_csr(), x.to_sparse().to_sparse_csr()):
            assert sp.device == s.device
            np.testing.assert_allclose(sp.to_dense().numpy(), a)
        coo = tj.sparse_coo_tensor([[0, 0, 1], [1, 1, 2]], [1.0, 2.0, 3.0], (2, 3)).cuda()
        c = coo.coalesce()
        assert c.values().device == s.device and c.values().tolist() == [3.0, 3.0]
        assert s.cpu().device == tj.device("cpu")
        np.testing.assert_allclose((s.cpu() @ b).numpy(), a @ b, rtol=1e-12)
    finally:
        tj.cuda.emulate(was)
