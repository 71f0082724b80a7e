"""Fused grid-operator CG (issue 3): the kernels against NumPy, reduction order independent
of threads and chunking, and the solver against the unfused loop and SciPy's spsolve.

Kernels: :func:`jitsolve.kernels.cpu.krylov.grid_cg_direction` (``p = r + beta p``, ``A p``,
``p^T A p`` in one pass) and :func:`~jitsolve.kernels.cpu.krylov.grid_cg_update`
(``x += a p``, ``r -= a A p``, ``r^T r``; ``A p`` stored or recomputed).  Dispatch:
``js.solve(LinearProblem(A, b), CG())`` for a (scaled) Laplacian or Diffusion with no
preconditioner.
"""
import importlib

import numba
import numpy as np
import pytest
import scipy.sparse.linalg as spla

import jitsolve as js
from jitsolve.kernels.cpu import blas, krylov
from jitsolve.linear import operator_matvec, operator_stencil
from jitsolve.solvers.linear import cg

cgmod = importlib.import_module("jitsolve.solvers.linear.cg")

BCS = {"dirichlet": js.Dirichlet(0.0), "neumann": js.Neumann(), "periodic": js.Periodic()}
SHAPES = [(37, 29), (2, 6), (40, 3), (9, 8, 11), (3, 20, 5), (6, 2, 3)]


def _op(kind, g, rng, scale=-1.0):
    if kind == "laplacian":
        return scale * js.Laplacian(g)
    return scale * js.Diffusion(g, 0.5 + rng.random(g.shape))


def _stencil_args(A):
    gs = operator_stencil(A, np.float64)
    assert gs is not None
    kind = krylov.DIFFUSION if gs.kind == "diffusion" else krylov.LAPLACIAN
    k3 = np.empty(gs.shape3) if gs.kappa is None else gs.kappa
    return gs, kind, k3


def _direction(A, r, p, beta, nch, store, x=None, alpha_x=0.0):
    """Run the direction kernel on copies; returns (p, Ap, pAp), and with ``x`` given
    (the lagged ``x += alpha_x p``) (p, Ap, pAp, x)."""
    gs, kind, k3 = _stencil_args(A)
    units, sr, groups = krylov.grid_cg_units(gs.shape3)
    halo = np.full((nch, 2, sr, gs.shape3[2]), np.nan)
    part = np.full(groups, np.nan)
    p = p.copy()
    ap = np.full(p.size, np.nan)
    xx = np.full(p.size, np.nan) if x is None else x.copy()
    pap = krylov.grid_cg_direction(beta, r.reshape(gs.shape3), p.reshape(gs.shape3), kind, k3,
                                   ap.reshape(gs.shape3), store, gs.c, gs.per, gs.sgn, halo, part,
                                   xx.reshape(gs.shape3), alpha_x, x is not None)
    if x is None:
        assert np.isnan(xx).all()                           # not touched
        return p, ap, pap
    return p, ap, pap, xx


def _update(A, alpha, p, ap, x, r, nch, stored, with_x=True):
    gs, kind, k3 = _stencil_args(A)
    part = np.full(krylov.grid_cg_units(gs.shape3)[2], np.nan)
    x, r = x.copy(), r.copy()
    rr = krylov.grid_cg_update(alpha, p.reshape(gs.shape3), kind, k3, ap.reshape(gs.shape3),
                               stored, x.reshape(gs.shape3), r.reshape(gs.shape3), gs.c, gs.per,
                               gs.sgn, nch, part, with_x)
    return x, r, rr


# ----------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("kind", ["laplacian", "diffusion"])
@pytest.mark.parametrize("bc", list(BCS))
@pytest.mark.parametrize("shape", SHAPES)
def test_kernels_match_numpy(kind, bc, shape, rng):
    g = js.Grid(shape, bc=BCS[bc])
    A = _op(kind, g, rng, scale=-1.7)
    n = g.size
    r, p0, x = (rng.standard_normal(n) for _ in range(3))
    beta, alpha = 0.61, 0.37
    p_ref = r + beta * p0                               # blas.xpay's expression
    # the solve's matvec (the scale folded into the stencil): bit for bit; the operator's
    # own apply (stencil, then a scaling pass): to rounding
    ap_ref = operator_matvec(A, np.float64)(p_ref, np.empty(n))
    np.testing.assert_allclose(ap_ref, A.apply(p_ref.reshape(shape)).ravel(), rtol=0,
                               atol=1e-15 * np.abs(ap_ref).max() * 4)
    x_ref = x + alpha * p_ref
    r_ref = r - alpha * ap_ref
    units = krylov.grid_cg_units(operator_stencil(A, np.float64).shape3)[0]
    outs = []
    for nch in sorted({1, 2, 3, units} & set(range(1, units + 1))):
        for store in (True, False):
            p, ap, pap = _direction(A, r, p0, beta, nch, store)
            np.testing.assert_array_equal(p, p_ref)
            if store:
                np.testing.assert_array_equal(ap, ap_ref)
            else:
                assert np.isnan(ap).all()                   # not touched
            assert abs(pap - np.dot(p_ref, ap_ref)) <= 1e-13 * abs(np.dot(p_ref, ap_ref))
            xx, rr_, rr = _update(A, alpha, p, ap if store else np.full(n, np.nan), x, r, nch,
                                  store)
            np.testing.assert_array_equal(xx, x_ref)
            np.testing.assert_array_equal(rr_, r_ref)
            assert abs(rr - np.dot(r_ref, r_ref)) <= 1e-13 * np.dot(r_ref, r_ref)
            outs.append((pap, rr))
            # the solver's order: x left alone by the update, then updated by the next
            # direction pass (with the old p) or by blas.axpy: the same bits
            xx, rr_, rr2 = _update(A, alpha, p, ap if store else np.full(n, np.nan), x, r, nch,
                                   store, with_x=False)
            np.testing.assert_array_equal(xx, x)
            np.testing.assert_array_equal(rr_, r_ref)
            assert rr2 == rr
            p2, ap2, pap2, x2 = _direction(A, r_ref, p, 0.45, nch, store, x=x, alpha_x=alpha)
            np.testing.assert_array_equal(x2, x_ref)
            np.testing.assert_array_equal(p2, r_ref + 0.45 * p_ref)
            x3 = x.copy()
            blas.axpy(alpha, p, x3)
            np.testing.assert_array_equal(x3, x_ref)
    # the reductions do not depend on the chunking, nor on storing A p
    assert len(set(outs)) == 1, outs


def test_first_direction_keeps_p_equal_r(rng):
    g = js.Grid((16, 12))
    A = -js.Laplacian(g)
    r = rng.standard_normal(g.size)
    p, ap, pap = _direction(A, r, r.copy(), 0.0, 2, True)
    np.testing.assert_array_equal(p, r)
    np.testing.assert_array_equal(ap, operator_matvec(A, np.float64)(r, np.empty(g.size)))


def test_first_direction_in_z_itself(rng):
    """The preconditioned loop's first direction pass runs on ``z``'s own vector (``r`` and
    ``p`` the same array, ``beta = 0``): ``p`` keeps its bits, as after a copy."""
    for shape in [(16, 12), (6, 7, 5)]:
        g = js.Grid(shape, bc=(js.Periodic(),) + (js.Dirichlet(0.0),) * (len(shape) - 1))
        A = _op("diffusion", g, rng)
        z = rng.standard_normal(g.size)
        z[3] = -0.0
        gs, kind, k3 = _stencil_args(A)
        units, sr, groups = krylov.grid_cg_units(gs.shape3)
        halo = np.empty((2, 2, sr, gs.shape3[2]))
        p = z.copy()
        ap = np.empty(g.size)
        pap = krylov.grid_cg_direction(0.0, p.reshape(gs.shape3), p.reshape(gs.shape3), kind,
                                       k3, ap.reshape(gs.shape3), True, gs.c, gs.per, gs.sgn,
                                       halo, np.empty(groups), np.empty(gs.shape3), 0.0, False)
        np.testing.assert_array_equal(p, z)
        assert np.signbit(p[3])
        ref = _direction(A, z, z.copy(), 0.0, 2, True)
        np.testing.assert_array_equal(ap, ref[1])
        assert pap == ref[2]


@pytest.mark.parametrize("kind", ["laplacian", "diffusion"])
@pytest.mark.parametrize("bc", list(BCS))
@pytest.mark.parametrize("shape", SHAPES)
def test_residual_kernel_matches_numpy(kind, bc, shape, rng):
    """``grid_residual``: ``r = b - A x`` with the solve's matvec bit for bit, ``r^T r`` to
    rounding, the same sum for every chunk count."""
    g = js.Grid(shape, bc=BCS[bc])
    A = _op(kind, g, rng, scale=-1.3)
    gs, kind_, k3 = _stencil_args(A)
    n = g.size
    b, x = rng.standard_normal(n), rng.standard_normal(n)
    r_ref = b - operator_matvec(A, np.float64)(x, np.empty(n))
    units, sr, groups = krylov.grid_cg_units(gs.shape3)
    sums = set()
    for nch in sorted({1, 2, 3, units} & set(range(1, units + 1))):
        r = np.full(n, np.nan)
        s = krylov.grid_residual(b.reshape(gs.shape3), x.reshape(gs.shape3), r.reshape(gs.shape3),
                                 kind_, k3, gs.c, gs.per, gs.sgn, nch, np.full(groups, np.nan))
        np.testing.assert_array_equal(r, r_ref)
        assert s == pytest.approx(np.dot(r_ref, r_ref), rel=1e-13)
        sums.add(s)
    assert len(sums) == 1, sums


@pytest.mark.parametrize("shape", [(64, 48), (12, 10, 9)])
def test_reductions_independent_of_thread_count(shape):
    """1 vs 2 threads (and so 1 vs 2 chunks in the solver): the same bits."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two Numba threads")
    g = js.Grid(shape, bc=(js.Periodic(),) + (js.Dirichlet(0.0),) * (len(shape) - 1))
    A = -js.Diffusion(g, 0.5 + np.random.default_rng(3).random(shape))
    old = numba.get_num_threads()
    out = []
    try:
        for t in (1, 2):
            numba.set_num_threads(t)
            rng = np.random.default_rng(7)
            r, p0, x = (rng.standard_normal(g.size) for _ in range(3))
            p, ap, pap = _direction(A, r, p0, 0.3, t, True)
            rr = _update(A, 0.2, p, ap, x, r, t, True)[2]
            b = rng.standard_normal(shape)
            out.append((pap, rr, js.solve(js.LinearProblem(A, b), js.CG(), rtol=1e-10)))
    finally:
        numba.set_num_threads(old)
    (pap1, rr1, s1), (pap2, rr2, s2) = out
    assert pap1 == pap2 and rr1 == rr2
    assert s1.iters == s2.iters
    np.testing.assert_array_equal(s1.u, s2.u)
    np.testing.assert_array_equal(s1.history, s2.history)


# ----------------------------------------------------------------------------- solver
def _unfused(A, b, **kw):
    mv = operator_matvec(A, np.float64)
    return cg(mv, np.ascontiguousarray(b, dtype=np.float64).ravel(), **kw)


def _fused(A, b, **kw):
    mv = operator_matvec(A, np.float64)
    return cg(mv, np.ascontiguousarray(b, dtype=np.float64).ravel(),
              grid=operator_stencil(A, np.float64), **kw)


@pytest.mark.parametrize("kind", ["laplacian", "diffusion"])
@pytest.mark.parametrize("bcs", [("dirichlet",), ("neumann", "dirichlet"), ("periodic", "dirichlet"),
                                 ("dirichlet", "periodic", "neumann")])
@pytest.mark.parametrize("shape", [(24, 20), (8, 7, 6)])
def test_cg_matches_unfused_and_spsolve(kind, bcs, shape, rng):
    bc = tuple(BCS[bcs[a % len(bcs)]] for a in range(len(shape)))
    g = js.Grid(shape, bc=bc)
    A = _op(kind, g, rng)
    b = rng.standard_normal(shape)
    sol = js.solve(js.LinearProblem(A, b), js.CG(), rtol=1e-10)
    assert sol.retcode == js.ReturnCode.Success
    ref = spla.spsolve(A.to_csr().tocsc(), b.ravel()).reshape(shape)
    assert np.linalg.norm(sol.u - ref) / np.linalg.norm(ref) < 1e-7
    un = _unfused(A, b, rtol=1e-10)
    assert sol.iters == un.iters
    assert np.linalg.norm(sol.u.ravel() - un.x) <= 1e-10 * np.linalg.norm(un.x)
    assert sol.resnorm <= 1e-10 * np.linalg.norm(b)
    assert len(sol.history) == sol.iters + 1


@pytest.mark.parametrize("kind", ["laplacian", "diffusion"])
@pytest.mark.parametrize("bc", ["neumann", "periodic"])
@pytest.mark.parametrize("shape", [(16, 12), (6, 5, 4)])
def test_cg_singular_consistent(kind, bc, shape, rng):
    """All-Neumann / all-periodic: semidefinite; a mean-zero b is consistent, and CG from
    zero converges to the minimum-norm solution (the pseudo-inverse's)."""
    g = js.Grid(shape, bc=BCS[bc])
    A = _op(kind, g, rng)
    b = rng.standard_normal(shape)
    b -= b.mean()
    sol = js.solve(js.LinearProblem(A, b), js.CG(), rtol=1e-10)
    un = _unfused(A, b, rtol=1e-10)
    assert sol.retcode == js.ReturnCode.Success
    assert sol.iters == un.iters
    assert np.linalg.norm(sol.u.ravel() - un.x) <= 1e-9 * np.linalg.norm(un.x)
    ref = np.linalg.pinv(A.to_csr().toarray()) @ b.ravel()
    assert np.linalg.norm(sol.u.ravel() - ref) <= 1e-7 * np.linalg.norm(ref)


def test_store_and_recompute_give_the_same_bits(rng, monkeypatch):
    g = js.Grid((33, 17, 9), bc=(js.Periodic(), js.Neumann(), js.Dirichlet(0.0)))
    A = -js.Diffusion(g, 0.5 + rng.random(g.shape))
    b = rng.standard_normal(g.shape)
    out = []
    for store in (True, False):
        monkeypatch.setitem(cgmod.STORE_AP, "diffusion", store)
        out.append(_fused(A, b, rtol=1e-9))
    assert out[0].iters == out[1].iters
    np.testing.assert_array_equal(out[0].x, out[1].x)
    np.testing.assert_array_equal(out[0].history, out[1].history)


def test_dispatch(rng, monkeypatch):
    calls = []
    real = cgmod._cg_grid

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(cgmod, "_cg_grid", spy)
    g = js.Grid((20, 16))
    b = rng.standard_normal(g.shape)
    js.solve(js.LinearProblem(-js.Laplacian(g), b), js.CG(), rtol=1e-8)
    js.solve(js.LinearProblem(-2.0 * js.Diffusion(g, 1.0 + rng.random(g.shape)), b), js.CG())
    assert len(calls) == 2
    # preconditioned too
    js.solve(js.LinearProblem(-js.Laplacian(g), b), js.CG(js.Jacobi()), rtol=1e-8)
    assert len(calls) == 3
    # not for a non-stencil operator, float32, 1-D grids or sums
    js.solve(js.LinearProblem(-js.Laplacian(g).to_csr(), b.ravel()), js.CG(), rtol=1e-8)
    js.solve(js.LinearProblem(-js.Laplacian(g), b.astype(np.float32)), js.CG(), rtol=1e-4)
    g1 = js.Grid((50,))
    js.solve(js.LinearProblem(-js.Laplacian(g1), np.ones(50)), js.CG(), rtol=1e-8)
    js.solve(js.LinearProblem(-js.Laplacian(g) - js.Laplacian(g), b), js.CG(), rtol=1e-8)
    assert len(calls) == 3


@pytest.mark.parametrize("kind", ["laplacian", "diffusion"])
@pytest.mark.parametrize("shape", [(40, 32), (8, 16, 8)])
@pytest.mark.parametrize("pc", ["multigrid", "jacobi", "chebyshev"])
def test_preconditioned_grid_loop_matches_unfused(kind, shape, pc, rng):
    """``p = z + beta p`` in the direction pass: the iterates of the unfused preconditioned
    loop up to the order of the two reductions (status, iterations, history, solution);
    MaxIters with the lagged ``x`` brought up to date; x0 and true-residual recomputation."""
    g = js.Grid(shape, bc=(js.Neumann(),) + (js.Dirichlet(0.0),) * (len(shape) - 1))
    A = _op(kind, g, rng)
    b = rng.standard_normal(shape)
    M = {"multigrid": js.Multigrid(), "jacobi": js.Jacobi(),
         "chebyshev": js.Chebyshev()}[pc].setup(A)
    for kw in (dict(rtol=1e-10), dict(rtol=1e-12, maxiter=4),
               dict(rtol=1e-10, recompute=3, x0=rng.standard_normal(g.size))):
        f = _fused(A, b, precond=M, **kw)
        u = _unfused(A, b, precond=M, **kw)
        assert f.status == u.status and f.iters == u.iters
        # (rounding differences grow over Jacobi's ~180 iterations: relative to the start)
        np.testing.assert_allclose(f.history, u.history, rtol=1e-6, atol=1e-12 * u.history[0])
        assert np.linalg.norm(f.x - u.x) <= 1e-9 * np.linalg.norm(u.x)
        assert f.resnorm == pytest.approx(np.linalg.norm(b.ravel() - A.apply(f.x.reshape(shape)).ravel()),
                                          rel=1e-8)


def test_preconditioned_grid_loop_breakdown_keeps_the_last_iterate(rng):
    """An indefinite preconditioner (r^T z <= 0) stops the fused loop with Breakdown and
    the iterate so far (the lagged update of x applied), as in the unfused loop."""
    g = js.Grid((24, 20))
    A = -js.Laplacian(g)
    b = rng.standard_normal(g.shape)
    calls = []

    def flip(r, out):                   # positive at first, then indefinite
        calls.append(1)
        out[:] = r if len(calls) < 3 else -r
        return out

    f = _fused(A, b, precond=flip)
    calls.clear()
    u = _unfused(A, b, precond=flip)
    assert f.status == u.status == "Breakdown" and f.iters == u.iters == 2
    assert np.linalg.norm(f.x - u.x) <= 1e-12 * np.linalg.norm(u.x)
    assert f.resnorm == pytest.approx(np.linalg.norm(b.ravel() - A.apply(f.x.reshape(g.shape)).ravel()),
                                      rel=1e-10)


def test_semantics_breakdown_maxiters_callback_x0(rng):
    g = js.Grid((30, 22), bc=(js.Neumann(), js.Dirichlet(0.0)))
    b = rng.standard_normal(g.shape)
    # indefinite (negative definite) -> Breakdown at the first p^T A p, as unfused
    L = js.Laplacian(g)
    s = js.solve(js.LinearProblem(L, b), js.CG())
    un = _unfused(L, b)
    assert s.retcode == js.ReturnCode.Breakdown and un.status == "Breakdown"
    assert s.iters == un.iters == 0
    np.testing.assert_allclose(s.resnorm, un.resnorm, rtol=1e-14)
    A = -L
    # MaxIters: history of every iteration, true residual at the end
    s = js.solve(js.LinearProblem(A, b), js.CG(), rtol=1e-12, maxiter=7)
    un = _unfused(A, b, rtol=1e-12, maxiter=7)
    assert s.retcode == js.ReturnCode.MaxIters and s.iters == 7 and len(s.history) == 8
    np.testing.assert_allclose(s.history, un.history, rtol=1e-10)
    r_true = np.linalg.norm(b - A.apply(s.u))
    np.testing.assert_allclose(s.resnorm, r_true, rtol=1e-10)
    # callback: sees every iteration with the current x, and can stop the solve
    seen = []

    def cb(it, x, rnorm):
        seen.append((it, np.linalg.norm(b.ravel() - A.apply(x.reshape(g.shape)).ravel()), rnorm))
        return it == 5

    s = js.solve(js.LinearProblem(A, b), js.CG(), callback=cb)
    assert s.retcode == js.ReturnCode.Terminated and s.iters == 5
    assert [t[0] for t in seen] == [1, 2, 3, 4, 5]
    for _, true, rec in seen:
        assert abs(true - rec) <= 1e-8 * np.linalg.norm(b)
    # x0 and periodic true-residual recomputation (recompute=3)
    x0 = rng.standard_normal(g.shape)
    s = _fused(A, b, x0=x0, rtol=1e-10, recompute=3)
    un = _unfused(A, b, x0=x0, rtol=1e-10, recompute=3)
    assert s.status == un.status == "Success" and s.iters == un.iters
    assert np.linalg.norm(s.x - un.x) <= 1e-9 * np.linalg.norm(un.x)
    # an exact start returns at once
    s = js.solve(js.LinearProblem(A, np.zeros(g.shape)), js.CG())
    assert s.iters == 0 and s.retcode == js.ReturnCode.Success


def test_poisson_iteration_count_unchanged():
    """The standard problem of the benchmark: same iteration count as the unfused loop."""
    g = js.Grid((128, 128))
    A = -js.Laplacian(g)
    b = np.ones(g.shape)
    s = js.solve(js.LinearProblem(A, b), js.CG(), rtol=1e-8)
    un = _unfused(A, b, rtol=1e-8)
    assert s.retcode == js.ReturnCode.Success
    assert s.iters == un.iters
    assert np.linalg.norm(s.u.ravel() - un.x) <= 1e-8 * np.linalg.norm(un.x)


@pytest.mark.parametrize("kind", ["laplacian", "diffusion"])
@pytest.mark.parametrize("shape", [(40, 31), (9, 8, 7)])
@pytest.mark.parametrize("recompute, maxiter", [(50, None), (3, None), (50, 6)])
def test_lagged_x_update_gives_the_same_bits(kind, shape, recompute, maxiter, rng):
    """``x += alpha p`` is left to the next direction pass except where ``x`` is looked at;
    a callback looks at it every iteration (so the update is never lagged): the same
    iterates, history and status bit for bit."""
    g = js.Grid(shape, bc=(js.Neumann(),) + (js.Dirichlet(0.0),) * (len(shape) - 1))
    A = _op(kind, g, rng)
    b = rng.standard_normal(shape)
    x0 = rng.standard_normal(g.size)
    seen = []

    def cb(it, x, rn):
        seen.append(x.copy())
        return False

    kw = dict(rtol=1e-11, recompute=recompute, maxiter=maxiter, x0=x0)
    lagged = _fused(A, b, **kw)
    eager = _fused(A, b, callback=cb, **kw)
    assert lagged.status == eager.status
    assert lagged.iters == eager.iters == len(seen)    # the last iteration's call too
    np.testing.assert_array_equal(lagged.x, eager.x)
    np.testing.assert_array_equal(lagged.history, eager.history)
    un = _unfused(A, b, **kw)
    assert un.iters == lagged.iters and un.status == lagged.status
    assert np.linalg.norm(lagged.x - un.x) <= 1e-10 * np.linalg.norm(un.x)


@pytest.mark.parametrize("store", [True, False])
def test_lagged_and_eager_x_give_the_same_bits(store, rng, monkeypatch):
    """``LAG_X`` off (``x`` updated in the update pass, the iteration before the lag)
    and on: the same iterates and history bit for bit, with ``A p`` stored or not."""
    g = js.Grid((31, 18, 7), bc=(js.Periodic(), js.Neumann(), js.Dirichlet(0.0)))
    A = -js.Diffusion(g, 0.5 + rng.random(g.shape))
    b = rng.standard_normal(g.shape)
    monkeypatch.setitem(cgmod.STORE_AP, "diffusion", store)
    out = []
    for lag in (True, False):
        monkeypatch.setattr(cgmod, "LAG_X", lag)
        out.append(_fused(A, b, rtol=1e-9, recompute=7))
    assert out[0].iters == out[1].iters and out[0].status == out[1].status == "Success"
    np.testing.assert_array_equal(out[0].x, out[1].x)
    np.testing.assert_array_equal(out[0].history, out[1].history)
