"""Audit of the preconditioners (Jacobi, Chebyshev, Multigrid, AMG): setups reused only
for an unchanged operator, pyamg missing, non-grid operators, unusual grids against
SciPy's direct solve, symmetry and positivity of the cycle."""
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import jitsolve as js
from jitsolve.errors import BackendUnavailableError, InvalidProblemError


def _ref(A, b):
    return spla.spsolve(A.to_csr().tocsc(), np.ravel(b))


@pytest.mark.parametrize("make", [js.Multigrid, js.Jacobi, js.Chebyshev, js.AMG])
def test_a_preconditioner_reused_after_kappa_changed_is_rebuilt(make):
    g = js.Grid((48, 48))
    D = js.Diffusion(g, 1.0)
    A = -D
    b = np.random.default_rng(0).standard_normal(g.shape)
    pc = make()
    alg = js.CG(pc)
    js.solve(js.LinearProblem(A, b), alg, rtol=1e-10)
    M_old = pc.setup(A)
    k = np.ones(g.shape)
    k[:, 24:] = 1e4
    D.kappa = k                                 # a new array
    s = js.solve(js.LinearProblem(A, b), alg, rtol=1e-10)
    fresh = js.solve(js.LinearProblem(A, b), js.CG(make()), rtol=1e-10)
    assert pc.setup(A) is not M_old
    assert s.iters == fresh.iters               # stale: Multigrid 90 against 12 at 64^2
    ref = _ref(A, b)
    assert np.abs(s.u.ravel() - ref).max() <= 1e-7 * np.abs(ref).max()


def test_in_place_kappa_changes_and_matrix_values_rebuild_the_setup():
    g = js.Grid((32, 32))
    D = js.Diffusion(g, 1.0)
    A = -D
    pc = js.Multigrid()
    M1 = pc.setup(A)
    assert pc.setup(A) is M1                    # unchanged: reused
    D.kappa[:, 16:] = 1e3                       # in place
    M2 = pc.setup(A)
    assert M2 is not M1 and pc.setup(A) is M2
    assert pc.setup(A, np.float32) is not M2    # another dtype: its own setup
    S = A.to_csr()
    amg, jac = js.AMG(), js.Jacobi()
    P1, J1 = amg.setup(S), jac.setup(S)
    assert amg.setup(S) is P1 and jac.setup(S) is J1
    S.data *= 2.0
    assert amg.setup(S) is not P1
    J2 = jac.setup(S)
    np.testing.assert_allclose(J2(np.ones(g.size)), 0.5 * J1(np.ones(g.size)))


def test_the_adjoint_solve_of_a_symmetric_operator_reuses_the_setup():
    g = js.Grid((24, 24))
    A = -js.Diffusion(g, 1.0 + np.random.default_rng(1).random(g.shape))
    pc = js.Multigrid()
    M = pc.setup(A)
    assert A.T is A and pc.setup(A.T) is M


def test_amg_without_pyamg_is_backend_unavailable():
    code = ("import sys; sys.modules['pyamg'] = None\n"
            "import numpy as np, jitsolve as js\n"
            "g = js.Grid((8, 8))\n"
            "try:\n"
            "    js.solve(js.LinearProblem(-js.Laplacian(g), np.ones(g.shape)), js.CG(js.AMG()))\n"
            "except js.errors.BackendUnavailableError as e:\n"
            "    print('OK', 'pyamg' in str(e), 'precond' in str(e))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["OK", "True", "True"], out.stderr
    assert issubclass(BackendUnavailableError, js.errors.JitsolveError)


def test_non_grid_operators():
    g = js.Grid((20, 20))
    A = -js.Laplacian(g)
    M = A.to_csr()
    b = np.random.default_rng(2).standard_normal(g.size)
    ref = spla.spsolve(M.tocsc(), b)
    for Aop in (M, M.toarray()):
        with pytest.raises(InvalidProblemError, match="precond: Multigrid"):
            js.solve(js.LinearProblem(Aop, b), js.CG(js.Multigrid()))
        s = js.solve(js.LinearProblem(Aop, b), js.CG(js.AMG()), rtol=1e-10)
        assert s.retcode == js.ReturnCode.Success and s.iters <= 15
        np.testing.assert_allclose(s.u, ref, rtol=0, atol=1e-8 * np.abs(ref).max())
    with pytest.raises(InvalidProblemError, match="precond: AMG.*LinearOperator"):
        js.solve(js.LinearProblem(spla.aslinearoperator(M), b), js.CG(js.AMG()))


@pytest.mark.parametrize("shape, bc, extent", [
    ((256, 4), "D", None), ((4, 256), "N", None), ((3, 97), "D", None),
    ((97, 101), "mixed", None), ((1000,), "N", None), ((17, 19, 23), "D", None),
    ((48, 48, 2), "P", None), ((1, 1, 50), "D", None),
    ((64, 64), "D", ((0, 1), (0, 1e-3))), ((64, 64), "N", ((0, 1e-3), (0, 1))),
])
def test_multigrid_on_unusual_grids_agrees_with_spsolve(shape, bc, extent):
    bcs = {"D": js.Dirichlet(0.0), "N": js.Neumann(), "P": js.Periodic(),
           "mixed": [(js.Dirichlet(0.0), js.Neumann())] + [(js.Neumann(), js.Neumann())]
           * (len(shape) - 1)}[bc]
    kw = {} if extent is None else {"extent": extent}
    g = js.Grid(shape, bc=bcs, **kw)
    A = -js.Laplacian(g)
    b = np.random.default_rng(3).standard_normal(g.shape)
    if bc in ("N", "P"):
        b -= b.mean()
    s = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid()), rtol=1e-8)
    assert s.retcode == js.ReturnCode.Success and s.iters <= 16
    u = s.u.ravel()
    M = A.to_csr()
    assert np.linalg.norm(b.ravel() - M @ u) <= 1.01e-8 * np.linalg.norm(b)
    if bc in ("N", "P"):            # singular: compare the zero-mean parts
        ref = np.linalg.lstsq(M.toarray(), b.ravel(), rcond=None)[0] if g.size <= 1100 \
            else spla.spsolve(M[:-1, :-1].tocsc(), b.ravel()[:-1])
        ref = np.append(ref, 0.0) if ref.size < u.size else ref
        u, ref = u - u.mean(), ref - ref.mean()
    else:
        ref = _ref(A, b)
    assert np.abs(u - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("dtype", [np.float32, np.complex128])
def test_every_preconditioner_in_other_dtypes(dtype):
    g = js.Grid((40, 30), bc=[(js.Dirichlet(0.0), js.Neumann()), (js.Periodic(), js.Periodic())])
    rng = np.random.default_rng(4)
    A = -js.Diffusion(g, np.exp(rng.standard_normal(g.shape)))
    b = rng.standard_normal(g.shape) + (1j * rng.standard_normal(g.shape)
                                        if np.dtype(dtype).kind == "c" else 0)
    b = b.astype(dtype)
    ref = spla.spsolve(A.to_csr().tocsc().astype(complex), b.ravel().astype(complex))
    for pc in (js.Multigrid(), js.Multigrid(coarse="galerkin"), js.Jacobi(), js.Chebyshev(),
               js.AMG()):
        for alg in (js.CG, js.GMRES):
            s = js.solve(js.LinearProblem(A, b), alg(precond=pc), rtol=1e-5, maxiter=3000)
            assert s.retcode == js.ReturnCode.Success and s.u.dtype == dtype, (pc, alg)
            r = b.ravel().astype(complex) - A.to_csr() @ s.u.ravel().astype(complex)
            assert np.linalg.norm(r) <= 1.1e-5 * np.linalg.norm(b)
            if isinstance(pc, (js.Multigrid, js.AMG)):
                assert np.abs(s.u.ravel() - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("case", ["checker", "layers_neumann", "shifted"])
def test_cycle_is_symmetric_positive_and_converges_like_pyamg(case):
    import pyamg
    shape = (33, 47)
    X = np.indices(shape)
    if case == "checker":
        g = js.Grid(shape)
        A = -js.Diffusion(g, np.where(((X // 8).sum(0)) % 2 == 1, 1e6, 1.0))
    elif case == "layers_neumann":
        g = js.Grid(shape, bc=js.Neumann())
        A = -js.Diffusion(g, np.where((X[0] // 8) % 2 == 1, 1e6, 1.0))
    else:
        g = js.Grid(shape, bc=js.Neumann())
        A = js.Identity(g) - 0.3 * js.Laplacian(g)
    rng = np.random.default_rng(5)
    b = rng.standard_normal(shape)
    if case == "layers_neumann":
        b -= b.mean()
    P = js.Multigrid().setup(A)
    n = g.size
    B = np.column_stack([P(np.eye(n)[:, i]) for i in range(0, n, 7)])
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    assert np.dot(P(x), y) == pytest.approx(np.dot(x, P(y)), rel=1e-11)
    assert np.dot(x, P(x)) > 0 and np.all(np.diag(B[::7][:B.shape[1]]) > 0)
    s = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid()), rtol=1e-8)
    M = A.to_csr()
    res = []
    ml = pyamg.smoothed_aggregation_solver(M)
    ml.solve(b.ravel(), tol=1e-8, accel="cg", residuals=res, maxiter=300)
    assert s.retcode == js.ReturnCode.Success
    assert s.iters <= max(2 * (len(res) - 1), 20)
    assert np.linalg.norm(b.ravel() - M @ s.u.ravel()) <= 1.01e-8 * np.linalg.norm(b)
