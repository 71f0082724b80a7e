"""``js.Identity`` and multigrid for shifted operators ``sigma * I + c * L`` (issue 3).

The linear systems of implicit time steps, ``(I - dt L) u = u_old``: the identity as a
grid operator (its algebra, the fused apply of a shifted sum), the shift carried by every
multigrid level (the Laplacian kernels' diagonal, the Diffusion levels' face diagonal,
the Jacobi diagonal, the Galerkin and coarsest matrices), the cycle's symmetry, iteration
counts bounded from dt -> 0 to dt -> infinity, refusals of indefinite shifts, and the
gradient with respect to ``kappa`` through ``I - dt D(kappa)``."""
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import jitsolve as js
from jitsolve.grid.operators import shifted_parts
from jitsolve.kernels.cpu import multigrid as K
from jitsolve.solvers.linear.precond.multigrid import assemble
from mg_checks import assert_symmetric_positive


def test_identity_operator():
    g = js.Grid((8, 6), bc=[js.Dirichlet(1.0), js.Neumann(2.0)])
    identity = js.Identity(g)
    u = np.random.default_rng(0).standard_normal(g.shape)
    assert np.array_equal(identity.apply(u), u) and identity.T is identity
    assert np.array_equal(identity.apply(u.ravel()), u.ravel())
    assert np.array_equal(identity.diagonal(), np.ones(g.shape))
    assert np.array_equal(identity.to_csr().toarray(), np.eye(g.size))
    assert np.array_equal(identity.boundary_term(), np.zeros(g.shape))
    with pytest.raises(js.errors.InvalidProblemError, match="Identity has no coefficient"):
        identity.param_vjp(u, u)
    z = (u + 1j * u).astype(np.complex64)
    assert identity.apply(z).dtype == np.complex64


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_shifted_sum_applies_as_its_matrix(dtype):
    """``sigma I + c L`` in any nesting: the fused apply against the assembled matrix."""
    g = js.Grid((12, 10), bc=[js.Dirichlet(), js.Periodic()])
    L, D = js.Laplacian(g), js.Diffusion(g, np.exp(np.random.default_rng(1).uniform(-1, 1, (12, 10))))
    identity = js.Identity(g)
    rng = np.random.default_rng(2)
    u = rng.standard_normal(g.shape)
    if np.dtype(dtype).kind == "c":
        u = u + 1j * rng.standard_normal(g.shape)
    u = u.astype(dtype)
    for A, want in [(identity - 0.1 * L, (1.0, -0.1, L)),
                    (2.0 * identity + 3.0 * (identity - D), (5.0, -3.0, D)),
                    (-(0.5 * L) + 0.25 * identity, (0.25, -0.5, L))]:
        sh = shifted_parts(A)
        assert sh[0] == pytest.approx(want[0]) and sh[1] == pytest.approx(want[1])
        assert sh[2] is want[2]
        tol = 1e-5 if np.dtype(dtype) == np.float32 else 1e-12
        np.testing.assert_allclose(A.apply(u).ravel(), A.to_csr() @ u.ravel(),
                                   rtol=tol, atol=tol * np.abs(u).max() * 1e3)
        assert A.apply(u).dtype == dtype
    assert shifted_parts(L + L) is None and shifted_parts(identity + identity) is None
    assert shifted_parts(-2.0 * L) == (0.0, -2.0, L)


@pytest.mark.parametrize("bcs", ["xDN", "xPD", "DND"])
def test_shifted_laplacian_kernels_match_the_matrix(bcs):
    """A fourth entry of ``c`` shifts the Laplacian kernels' diagonal: the residual is
    ``f - (scale L + sigma I) u``, a red half-sweep solves the red rows of that matrix,
    the fused sweep and the residual-forming restriction equal their references."""
    rng = np.random.default_rng(4)
    shape = (1, 12, 10) if bcs[0] == "x" else (6, 8, 5)
    per = np.array([1 if b == "P" else 0 for b in bcs], dtype=np.int64)
    sgn = np.array([[-1.0 if b == "D" else 1.0] * 2 for b in bcs])
    c = np.array([0.0 if n == 1 else float(n * n) for n in shape])
    s, sigma = -1.3, 57.0
    c4 = np.append(c, sigma / s)
    A = assemble(shape, c, per, sgn, s) + sigma * sp.identity(int(np.prod(shape)))
    u, f = rng.standard_normal(shape), rng.standard_normal(shape)
    for res in (K.residual_laplacian, K.residual_laplacian_fast, K.residual_laplacian_serial):
        r = np.empty(shape)
        res(u, f, r, c4, per, sgn, s)
        np.testing.assert_allclose(r.ravel(), f.ravel() - A @ u.ravel(), rtol=1e-12, atol=1e-9)
    v = u.copy()
    K.rbgs_laplacian(v, f, c4, per, sgn, s, 0, False)
    red = (np.indices(shape).sum(axis=0) % 2 == 0).ravel()
    np.testing.assert_allclose((A @ v.ravel())[red], f.ravel()[red], rtol=1e-10, atol=1e-9)
    ref = u.copy()
    for k in range(3):
        K.rbgs_laplacian(ref, f, c4, per, sgn, s, k % 2, False)
    v = u.copy()
    K.gs_sweep_laplacian(v, f, c4, per, sgn, s, 0, False, 3, np.empty(0))
    np.testing.assert_array_equal(v, ref)
    if shape[0] == 1:
        act = np.array([0, 1, 1])
        r = np.empty(shape)
        K.residual_laplacian_fast(u, f, r, c4, per, sgn, s)
        want = np.empty((1, 6, 5))
        K.restrict_fw(r, want, act, per, sgn)
        got = np.empty((1, 6, 5))
        K.restrict_residual_laplacian(u, f, got, c4, per, sgn, sgn, s, act, 3)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kw", [dict(), dict(coarse="galerkin"), dict(smoother="jacobi"),
                                dict(smoother="srbgs"), dict(cycle="W")])
@pytest.mark.parametrize("case", ["lap2d", "diff2d", "lap3d"])
def test_shifted_cycle_is_symmetric_positive_definite(case, kw):
    rng = np.random.default_rng(5)
    if case == "lap2d":
        g = js.Grid((33, 40), bc=[(js.Neumann(), js.Dirichlet(2.0)), js.Periodic()])
        A = js.Identity(g) - 0.01 * js.Laplacian(g)
    elif case == "diff2d":
        g = js.Grid((32, 31), bc=js.Neumann())          # singular without the shift
        A = 0.5 * js.Identity(g) - 0.1 * js.Diffusion(g, np.exp(rng.uniform(-1, 1, g.shape)))
    else:
        g = js.Grid((12, 16, 9))
        A = -(js.Laplacian(g) - 300.0 * js.Identity(g))
    M = js.Multigrid(coarse_size=8, **kw).setup(A)
    assert M.shift > 0 and M.nlevels >= 3
    x, y = rng.standard_normal(g.size), rng.standard_normal(g.size)
    assert_symmetric_positive(M, x, y)


@pytest.mark.parametrize("shape", [(256, 256), (129, 127), (32, 32, 32)])
def test_implicit_steps_converge_for_every_time_step(shape):
    """``(I - dt L) u = b`` from dt = 1e-6 (the identity dominates) to 1e4 (Poisson):
    CG + Multigrid to rtol 1e-8 in at most the Poisson count, against SciPy's solve."""
    g = js.Grid(shape)
    b = np.random.default_rng(6).standard_normal(shape)
    for op in (js.Laplacian(g), js.Diffusion(g, np.exp(np.random.default_rng(7).uniform(-1, 1, shape)))):
        for dt in (1e-6, 1e-4, 1e-2, 1.0, 1e4):
            A = js.Identity(g) - dt * op
            sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid()), rtol=1e-8)
            assert sol.retcode == js.ReturnCode.Success
            assert sol.iters <= (10 if op.param_name is None else 12), (dt, sol.iters)
            assert np.linalg.norm(b - A.apply(sol.u)) <= 1.01e-8 * np.linalg.norm(b)
            if shape == (129, 127) and dt in (1e-4, 1.0):
                want = spla.spsolve(A.to_csr().tocsc(), b.ravel())
                np.testing.assert_allclose(sol.u.ravel(), want, rtol=0,
                                           atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.complex128, 1e-8)])
def test_shifted_solves_in_other_precisions(dtype, rtol):
    g = js.Grid((64, 63))
    A = js.Identity(g) - 1e-3 * js.Laplacian(g)
    rng = np.random.default_rng(8)
    b = rng.standard_normal(g.shape) + (1j * rng.standard_normal(g.shape) if dtype == np.complex128 else 0)
    sol = js.solve(js.LinearProblem(A, b.astype(dtype)), js.CG(js.Multigrid()), rtol=rtol)
    assert sol.retcode == js.ReturnCode.Success and sol.u.dtype == dtype and sol.iters <= 9


def test_indefinite_or_unsupported_shifts_are_refused():
    g = js.Grid((16, 16))
    L = js.Laplacian(g)
    with pytest.raises(js.errors.InvalidProblemError, match="opposite definiteness.*I - dt \\* L"):
        js.Multigrid().setup(js.Identity(g) + 0.1 * L)       # Helmholtz-like
    with pytest.raises(js.errors.InvalidProblemError, match="sigma \\* js.Identity"):
        js.Multigrid().setup(js.Identity(g))
    with pytest.raises(js.errors.InvalidProblemError, match="supports c \\* Laplacian"):
        js.Multigrid().setup(js.Identity(g) - L + js.Advection(g, np.ones((2, 16, 16))))
    # the same definiteness in the other sign: -(I - dt L), whose cycle is minus that of
    # I - dt L (a negative definite preconditioner, for GMRES or MINRES-like solvers)
    x = np.random.default_rng(10).standard_normal(g.size)
    m_neg = js.Multigrid().setup(-js.Identity(g) + 0.1 * L)(x)
    m_pos = js.Multigrid().setup(js.Identity(g) - 0.1 * L)(x)
    np.testing.assert_allclose(m_neg, -m_pos, rtol=1e-13, atol=1e-15)


def test_gradient_through_an_implicit_step():
    """``d/dkappa`` of a loss on ``(I - dt D(kappa))^-1 b``: the adjoint solve with the
    shifted multigrid, against central differences."""
    g = js.Grid((24, 20))
    rng = np.random.default_rng(9)
    kap, b, d = np.exp(rng.uniform(-1, 1, g.shape)), rng.standard_normal(g.shape), rng.standard_normal(g.shape)
    loss = js.Loss(lambda u: 0.5 * np.sum((u.reshape(g.shape) - d) ** 2),
                   lambda u: u.reshape(g.shape) - d)

    def J(k):
        prob = js.LinearProblem(js.Identity(g) - 0.01 * js.Diffusion(g, k), b)
        return js.gradient(prob, js.CG(js.Multigrid()), loss, wrt=("kappa",), rtol=1e-12)

    _, grads = J(kap)
    dk = rng.standard_normal(g.shape)
    e = 1e-6
    fd = (J(kap + e * dk)[0] - J(kap - e * dk)[0]) / (2 * e)
    assert np.sum(grads["kappa"] * dk) == pytest.approx(fd, rel=1e-6)
