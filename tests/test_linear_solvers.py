"""Krylov and direct solvers against scipy.sparse.linalg.spsolve: every solver, every dtype,
return codes (Breakdown, MaxIters, Terminated, Failure) and the true residual."""
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import jitsolve as js

TOL = {np.float64: 1e-10, np.complex128: 1e-10, np.float32: 1e-5, np.complex64: 1e-5}
ERR = {np.float64: 1e-7, np.complex128: 1e-7, np.float32: 2e-3, np.complex64: 2e-3}


def _poisson(shape, bc=None):
    g = js.Grid(shape, bc=bc)
    A = -js.Laplacian(g)
    return g, A, A.to_csr()


def _rhs(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        b = b + 1j * rng.standard_normal(shape)
    return b.astype(dtype)


def _relerr(u, ref):
    return np.linalg.norm(np.ravel(u) - np.ravel(ref)) / np.linalg.norm(ref)


SPD_ALGS = [lambda: js.CG(), lambda: js.CG(js.Jacobi()), lambda: js.CG(js.Chebyshev(4)),
            lambda: js.CG(js.Multigrid()), lambda: js.FlexibleCG(js.Multigrid()),
            lambda: js.BiCGSTAB(js.Multigrid()), lambda: js.GMRES(20, js.Multigrid()),
            lambda: js.BiCGSTAB(), lambda: js.GMRES(40, js.Jacobi()), lambda: js.Direct()]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128, np.complex64])
@pytest.mark.parametrize("make", SPD_ALGS)
def test_poisson_2d_all_solvers_all_dtypes(make, dtype):
    g, A, M = _poisson((32, 32))
    b = _rhs(g.shape, dtype)
    ref = spla.spsolve(M.astype(np.result_type(dtype, np.float64)).tocsc(),
                       b.ravel().astype(np.result_type(dtype, np.float64)))
    alg = make()
    sol = js.solve(js.LinearProblem(A, b), alg, rtol=TOL[dtype])
    assert sol.retcode == js.ReturnCode.Success, (alg, sol)
    assert sol.u.dtype == dtype and sol.u.shape == g.shape
    assert _relerr(sol.u, ref) < ERR[dtype]
    true = np.linalg.norm((b.ravel() - M @ sol.u.ravel()).astype(np.complex128))
    bn = float(np.linalg.norm(b))
    assert abs(sol.resnorm - true) <= 0.05 * true + 0.5 * TOL[dtype] * bn
    assert sol.resnorm <= TOL[dtype] * bn * (1 + 1e-6) or isinstance(alg, js.Direct)


@pytest.mark.parametrize("make", SPD_ALGS)
def test_poisson_3d(make):
    g, A, M = _poisson((8, 8, 16), bc=[js.Dirichlet(), js.Neumann(), js.Dirichlet()])
    b = _rhs(g.shape, np.float64, 1)
    ref = spla.spsolve(M.tocsc(), b.ravel())
    sol = js.solve(js.LinearProblem(A, b), make(), rtol=1e-10)
    assert sol.retcode == js.ReturnCode.Success
    assert _relerr(sol.u, ref) < 1e-7


def _spd(n, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((n, n))
    if np.dtype(dtype).kind == "c":
        B = B + 1j * rng.standard_normal((n, n))
    return (B.conj().T @ B + n * np.eye(n)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128, np.complex64])
@pytest.mark.parametrize("kind", ["dense", "sparse", "linop"])
def test_random_spd_matrices(dtype, kind):
    n = 60
    A = _spd(n, 3, dtype)
    b = _rhs(n, dtype, 4)
    ref = np.linalg.solve(A.astype(np.complex128), b.astype(np.complex128))
    op = {"dense": A, "sparse": sp.csr_matrix(A), "linop": spla.aslinearoperator(A)}[kind]
    algs = [js.CG(), js.FlexibleCG(), js.BiCGSTAB(), js.GMRES(10), js.CG(js.Chebyshev(3))]
    if kind != "linop":
        algs += [js.CG(js.Jacobi()), js.Direct()]
    for alg in algs:
        sol = js.solve(js.LinearProblem(op, b), alg, rtol=TOL[dtype])
        assert sol.retcode == js.ReturnCode.Success, (alg, sol)
        assert _relerr(sol.u, ref) < ERR[dtype], alg


@pytest.mark.parametrize("dtype", [np.float64, np.complex128, np.float32])
def test_nonsymmetric_matrices(dtype):
    n = 80
    rng = np.random.default_rng(7)
    A = (np.eye(n) * 4 + rng.standard_normal((n, n)) / np.sqrt(n)).astype(dtype)
    if np.dtype(dtype).kind == "c":
        A = A + 1j * (rng.standard_normal((n, n)) / np.sqrt(n))
    b = _rhs(n, dtype, 8)
    ref = spla.spsolve(sp.csc_matrix(A.astype(np.complex128)), b.astype(np.complex128))
    for alg in (js.BiCGSTAB(), js.GMRES(5), js.GMRES(30, js.Jacobi()), js.BiCGSTAB(js.Jacobi()),
                js.Direct(), js.BiCGSTAB(js.AMG(kind="rs")) if dtype == np.float64 else js.GMRES(80)):
        sol = js.solve(js.LinearProblem(sp.csr_matrix(A), b), alg, rtol=TOL[dtype])
        assert sol.retcode == js.ReturnCode.Success, (alg, sol)
        assert _relerr(sol.u, ref) < ERR[dtype], alg


def test_advection_diffusion_grid_operator_gmres_bicgstab():
    g = js.Grid((32, 32))
    A = -js.Laplacian(g) + 20.0 * js.Advection(g, velocity=(1.0, 0.5))
    b = _rhs(g.shape, np.float64, 2)
    ref = spla.spsolve(A.to_csr().tocsc(), b.ravel())
    for alg in (js.GMRES(30), js.BiCGSTAB(), js.GMRES(30, js.Jacobi()), js.Direct()):
        sol = js.solve(js.LinearProblem(A, b), alg, rtol=1e-10)
        assert sol.retcode == js.ReturnCode.Success, alg
        assert _relerr(sol.u, ref) < 1e-7


# ----------------------------------------------------------------- return codes & safety
def test_cg_breakdown_on_negative_definite():
    g = js.Grid((16, 16))
    sol = js.solve(js.LinearProblem(js.Laplacian(g), np.ones(g.shape)), js.CG())
    assert sol.retcode == js.ReturnCode.Breakdown
    assert sol.iters == 0
    assert sol.resnorm == pytest.approx(16.0)      # ||b|| for the untouched iterate


@pytest.mark.parametrize("seed", range(6))
def test_cg_indefinite_never_success_with_wrong_answer(seed):
    n = 50
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    ev = rng.uniform(0.5, 2.0, n) * np.where(rng.random(n) < 0.3, -1.0, 1.0)
    A = (Q * ev) @ Q.T
    b = rng.standard_normal(n)
    x = np.linalg.solve(A, b)
    for alg in (js.CG(), js.CG(js.Jacobi()), js.FlexibleCG()):
        sol = js.solve(js.LinearProblem(A, b), alg, rtol=1e-8, maxiter=200)
        true = np.linalg.norm(b - A @ sol.u)
        assert sol.resnorm == pytest.approx(true, rel=1e-6, abs=1e-12)
        if sol.retcode == js.ReturnCode.Success:
            assert true <= 1e-8 * np.linalg.norm(b)
            assert _relerr(sol.u, x) < 1e-5
        else:
            assert sol.retcode in (js.ReturnCode.Breakdown, js.ReturnCode.MaxIters)


@pytest.mark.parametrize("seed", range(4))
def test_cg_nonsymmetric_never_success_with_wrong_answer(seed):
    n = 40
    rng = np.random.default_rng(100 + seed)
    A = np.eye(n) * 3 + 2.0 * np.triu(rng.standard_normal((n, n)), 1)
    b = rng.standard_normal(n)
    x = np.linalg.solve(A, b)
    sol = js.solve(js.LinearProblem(A, b), js.CG(), rtol=1e-8, maxiter=300)
    true = np.linalg.norm(b - A @ sol.u)
    assert sol.resnorm == pytest.approx(true, rel=1e-6, abs=1e-12)
    if sol.retcode == js.ReturnCode.Success:
        assert true <= 1e-8 * np.linalg.norm(b) and _relerr(sol.u, x) < 1e-4
    else:
        assert sol.retcode in (js.ReturnCode.Breakdown, js.ReturnCode.MaxIters)


def test_cg_non_spd_preconditioner_breaks_down():
    g, A, _ = _poisson((16, 16))
    sol = js.solve(js.LinearProblem(A, np.ones(g.shape)), js.CG(lambda r: -r))
    assert sol.retcode == js.ReturnCode.Breakdown


@pytest.mark.parametrize("alg", [js.CG(), js.FlexibleCG(), js.BiCGSTAB(), js.GMRES(5)])
def test_maxiters_keeps_last_iterate_and_true_residual(alg):
    g, A, M = _poisson((32, 32))
    b = np.ones(g.shape)
    sol = js.solve(js.LinearProblem(A, b), alg, rtol=1e-10, maxiter=7)
    assert sol.retcode == js.ReturnCode.MaxIters
    assert sol.iters == 7
    true = np.linalg.norm(b.ravel() - M @ sol.u.ravel())
    assert sol.resnorm == pytest.approx(true, rel=1e-10)
    x = spla.spsolve(M.tocsc(), b.ravel())
    e = x - sol.u.ravel()
    assert 0 < e @ (M @ e) < x @ (M @ x)     # progress (in the energy norm) was kept
    assert len(sol.history) >= 2


def test_bicgstab_breakdown():
    A = np.array([[0.0, 1.0], [1.0, 0.0]])
    sol = js.solve(js.LinearProblem(A, np.array([1.0, 0.0])), js.BiCGSTAB())
    assert sol.retcode == js.ReturnCode.Breakdown
    assert sol.resnorm == pytest.approx(1.0)


def test_direct_singular_is_failure():
    A = sp.csr_matrix(np.array([[1.0, 2.0], [2.0, 4.0]]))
    sol = js.solve(js.LinearProblem(A, np.array([1.0, 0.0])), js.Direct())
    assert sol.retcode == js.ReturnCode.Failure
    sol = js.solve(js.LinearProblem(A.toarray(), np.array([1.0, 0.0])), js.Direct())
    assert sol.retcode == js.ReturnCode.Failure


def test_direct_numerically_singular_is_failure():
    # LU of the periodic Laplacian does not break down (its last pivot is rounding
    # noise), so only the true residual shows that b is outside the range of A
    g = js.Grid((32,), bc=js.Periodic())
    A = -js.Laplacian(g)
    b = np.random.default_rng(0).standard_normal(32)
    # (the grid operator itself is refused up front, naming b: its constant null space
    # is known; as a plain sparse matrix it reaches the LU)
    with pytest.raises(js.errors.InvalidProblemError, match="b: not in the range of A"):
        js.solve(js.LinearProblem(A, b), js.Direct())
    sol = js.solve(js.LinearProblem(A.to_csr(), b), js.Direct())
    assert sol.retcode == js.ReturnCode.Failure
    assert np.isfinite(sol.u).all() and np.abs(sol.u).max() > 1e6
    true = np.linalg.norm(b - A.to_csr() @ sol.u)
    assert sol.resnorm == pytest.approx(true) and true > 0.1 * np.linalg.norm(b)
    # a consistent right-hand side (mean zero) is solved
    sol = js.solve(js.LinearProblem(A, b - b.mean()), js.Direct())
    assert sol.retcode == js.ReturnCode.Success and sol.resnorm <= 1e-8 * np.linalg.norm(b)


@pytest.mark.parametrize("case", ["laplacian", "advection-diffusion", "unsymmetric pattern",
                                  "complex"])
def test_direct_orders_by_the_pattern_and_matches_spsolve(case):
    """Direct() orders a symmetric pattern by minimum degree on A + A^T (about half
    COLAMD's fill on grid operators) and any other by COLAMD: the same solution."""
    from jitsolve.solvers.linear.direct import structurally_symmetric
    rng = np.random.default_rng(4)
    g = js.Grid((40, 30))
    if case == "laplacian":
        A = -js.Laplacian(g)
    elif case == "advection-diffusion":
        A = -js.Laplacian(g) + js.Advection(g, (np.full(g.shape, 30.0), np.full(g.shape, -5.0)))
    elif case == "complex":
        A = (-js.Laplacian(g)).to_csr() * (1 + 0.5j)
    else:
        A = (sp.random(300, 300, density=0.02, random_state=2) + 10 * sp.eye(300)).tocsr()
    M = A if sp.issparse(A) else A.to_csr()
    assert structurally_symmetric(M) == (case != "unsymmetric pattern")
    b = rng.standard_normal(M.shape[0]) + (1j * rng.standard_normal(M.shape[0])
                                            if case == "complex" else 0.0)
    sol = js.solve(js.LinearProblem(A, b.reshape(g.shape) if not sp.issparse(A) else b),
                   js.Direct(), rtol=1e-12)
    assert sol.retcode == js.ReturnCode.Success
    ref = spla.spsolve(M.tocsc(), b)
    np.testing.assert_allclose(sol.u.ravel(), ref, rtol=1e-10, atol=1e-12 * np.abs(ref).max())


def test_direct_tolerance_below_float32_rounding_is_failure():
    g, A, M = _poisson((32, 32))
    b = _rhs(g.shape, np.float32)
    assert js.solve(js.LinearProblem(A, b), js.Direct(), rtol=1e-5).retcode == js.ReturnCode.Success
    sol = js.solve(js.LinearProblem(A, b), js.Direct(), rtol=1e-9)
    assert sol.retcode == js.ReturnCode.Failure and sol.resnorm > 1e-9 * np.linalg.norm(b)


@pytest.mark.parametrize("mdtype, bdtype", [(np.float32, np.float64), (np.int64, np.float64),
                                            (np.float64, np.complex128), (np.complex128, np.float32)])
def test_amg_matrix_dtype_differs_from_rhs(mdtype, bdtype):
    g, A, M = _poisson((16, 16))
    b = _rhs(g.size, bdtype, 3)
    wdtype = np.result_type(bdtype, np.complex64 if np.dtype(mdtype).kind == "c" else bdtype)
    ref = spla.spsolve(M.tocsc(), b.astype(np.complex128))
    for alg in (js.CG(js.AMG()), js.GMRES(precond=js.AMG())):
        sol = js.solve(js.LinearProblem(M.astype(mdtype), b), alg, rtol=1e-5)
        assert sol.retcode == js.ReturnCode.Success and sol.iters <= 8, (alg, sol)
        assert sol.u.dtype == wdtype and _relerr(sol.u, ref) < 1e-4
    if np.dtype(mdtype).kind == "c":
        with pytest.raises(js.errors.InvalidProblemError, match=r"^precond: AMG\(kind='rs'\) needs a real"):
            js.solve(js.LinearProblem(M.astype(mdtype), b), js.CG(js.AMG(kind="rs")))


def test_tolerance_semantics_and_history():
    g, A, M = _poisson((32, 32))
    b = np.ones(g.shape)
    bn = np.linalg.norm(b)
    s1 = js.solve(js.LinearProblem(A, b), js.CG(), rtol=1e-4, atol=0.0)
    assert s1.resnorm <= 1e-4 * bn and s1.history[0] == pytest.approx(bn)
    s2 = js.solve(js.LinearProblem(A, b), js.CG(), rtol=1e-12, atol=1e-2 * bn)
    assert s2.resnorm <= 1e-2 * bn and s2.iters < s1.iters
    assert len(s1.history) == s1.iters + 1
    # zero right-hand side: converged at once
    s0 = js.solve(js.LinearProblem(A, np.zeros(g.shape)), js.CG())
    assert s0.retcode == js.ReturnCode.Success and s0.iters == 0 and not s0.u.any()


def test_x0_and_callback_terminates():
    g, A, M = _poisson((32, 32))
    b = np.ones(g.shape)
    ref = js.solve(js.LinearProblem(A, b), js.Direct()).u
    sol = js.solve(js.LinearProblem(A, b, x0=ref), js.CG())
    assert sol.iters == 0 and sol.retcode == js.ReturnCode.Success
    seen = []
    sol = js.solve(js.LinearProblem(A, b), js.CG(), callback=lambda it, x, r: seen.append(r) or it >= 3)
    assert sol.retcode == js.ReturnCode.Terminated and sol.iters == 3 and len(seen) == 3


def test_user_preconditioner_callable_and_linear_operator():
    g, A, M = _poisson((32, 32))
    b = np.ones(g.shape)
    lu = spla.splu(M.tocsc())
    for pc in (lambda r: lu.solve(r), spla.LinearOperator(M.shape, matvec=lu.solve)):
        sol = js.solve(js.LinearProblem(A, b), js.CG(pc), rtol=1e-10)
        assert sol.retcode == js.ReturnCode.Success and sol.iters <= 2


def test_user_preconditioner_bad_output_is_a_clear_error():
    g, A, M = _poisson((8, 8))
    prob = js.LinearProblem(M, np.ones(64))
    for alg in (js.CG(lambda r: r[:10]), js.GMRES(precond=lambda r: r[:10])):
        with pytest.raises(js.errors.InvalidProblemError,
                           match=r"^precond: the callable returned shape \(10,\); expected an array of 64 values"):
            js.solve(prob, alg)
    with pytest.raises(js.errors.InvalidProblemError, match="^precond: the callable returned None"):
        js.solve(prob, js.CG(lambda r: None))
    bad = spla.LinearOperator((10, 64), matvec=lambda r: r[:10])
    with pytest.raises(js.errors.InvalidProblemError,
                       match=r"^precond: the LinearOperator has shape \(10, 64\), expected \(64, 64\)"):
        js.solve(prob, js.BiCGSTAB(bad))


def test_bad_arguments():
    g, A, M = _poisson((8, 8))
    with pytest.raises(js.errors.InvalidProblemError, match="precond"):
        js.CG(precond=3)
    with pytest.raises(js.errors.InvalidProblemError, match="restart"):
        js.GMRES(restart=0)
    with pytest.raises(js.errors.InvalidProblemError, match="degree"):
        js.Chebyshev(degree=0)
    with pytest.raises(js.errors.InvalidProblemError, match="Multigrid"):
        js.solve(js.LinearProblem(M, np.ones(64)), js.CG(js.Multigrid()))
    with pytest.raises(js.errors.InvalidProblemError, match="diagonal"):
        js.solve(js.LinearProblem(spla.aslinearoperator(M), np.ones(64)), js.CG(js.Jacobi()))
    with pytest.raises(js.errors.InvalidProblemError, match="explicit matrix"):
        js.solve(js.LinearProblem(spla.aslinearoperator(M), np.ones(64)), js.Direct())
    with pytest.raises(js.errors.InvalidProblemError, match="atol"):
        js.solve(js.LinearProblem(A, np.ones(64)), js.CG(), atol=np.ones(64))
