"""Gradients of linear solves (implicit function theorem) against the Taylor remainder test
and central differences; losses; dispatch errors; the conductivity demo at a small size."""
import numpy as np
import pytest

import jitsolve as js


def _setup(shape=(16, 16), seed=0):
    g = js.Grid(shape)
    rng = np.random.default_rng(seed)
    kappa = np.exp(0.4 * rng.standard_normal(g.shape))
    f = rng.standard_normal(g.shape)
    mask = (rng.random(g.shape) < 0.5).astype(float)
    loss = js.L2Loss(None, rng.standard_normal(g.shape), weights=mask)
    return g, rng, kappa, f, loss


def _J(g, kappa, f, loss, alg, scale=-1.0):
    prob = js.LinearProblem(scale * js.Diffusion(g, kappa), f)
    return js.gradient(prob, alg, loss, wrt=("b", "kappa"), rtol=1e-12)


@pytest.mark.parametrize("alg", [js.CG(js.Multigrid()), js.Direct(), js.GMRES(30, js.Jacobi()),
                                 js.CG(js.Multigrid(coarse="galerkin", smoother="jacobi"))])
def test_taylor_remainder_kappa_and_b(alg):
    g, rng, kappa, f, loss = _setup()
    v, grads = _J(g, kappa, f, loss, alg)
    dk = rng.standard_normal(g.shape) * kappa
    df = rng.standard_normal(g.shape)
    for name, (dirn, mk) in {"kappa": (dk, lambda e: (kappa + e * dk, f)),
                             "b": (df, lambda e: (kappa, f + e * df))}.items():
        rem = []
        for e in (4e-3, 2e-3, 1e-3):
            k2, f2 = mk(e)
            rem.append(abs(_J(g, k2, f2, loss, alg)[0] - v - e * np.sum(grads[name] * dirn)))
        ratios = np.array(rem[:-1]) / np.array(rem[1:])
        assert np.all((ratios > 3.6) & (ratios < 4.4)), (name, ratios)


@pytest.mark.parametrize("scale", [-1.0, -3.5])
def test_central_differences_kappa_and_b(scale):
    g, rng, kappa, f, loss = _setup((12, 10), 1)
    alg = js.CG(js.Multigrid())
    v, grads = _J(g, kappa, f, loss, alg, scale)
    # J is about 31 here: with e = 1e-6 its rounding alone moves the quotient by ~4e-9,
    # the size of the tolerance; e = 1e-4 keeps the truncation error below 1e-10
    e = 1e-4
    for _ in range(3):
        dk = rng.standard_normal(g.shape)
        fd = (_J(g, kappa + e * dk, f, loss, alg, scale)[0]
              - _J(g, kappa - e * dk, f, loss, alg, scale)[0]) / (2 * e)
        assert fd == pytest.approx(np.sum(grads["kappa"] * dk), rel=1e-6, abs=1e-9)
        df = rng.standard_normal(g.shape)
        fd = (_J(g, kappa, f + e * df, loss, alg, scale)[0]
              - _J(g, kappa, f - e * df, loss, alg, scale)[0]) / (2 * e)
        assert fd == pytest.approx(np.sum(grads["b"] * df), rel=1e-6, abs=1e-9)
    # entrywise at a few cells
    for idx in [(0, 0), (5, 4), (11, 9)]:
        dk = np.zeros(g.shape)
        dk[idx] = 1.0
        fd = (_J(g, kappa + 1e-4 * dk, f, loss, alg, scale)[0]
              - _J(g, kappa - 1e-4 * dk, f, loss, alg, scale)[0]) / 2e-4
        assert fd == pytest.approx(grads["kappa"][idx], rel=1e-5, abs=1e-8)


def test_gradient_wrt_dense_and_sparse_matrix_nonsymmetric():
    import scipy.sparse as sp
    rng = np.random.default_rng(2)
    n = 12
    A = 4 * np.eye(n) + rng.standard_normal((n, n))
    b = rng.standard_normal(n)
    loss = js.Loss(lambda u: 0.5 * np.sum(u ** 3), lambda u: 1.5 * u ** 2)
    for op, alg in ((A, js.GMRES(n)), (sp.csr_matrix(A), js.BiCGSTAB())):
        v, gr = js.gradient(js.LinearProblem(op, b), alg, loss, wrt=("A", "b"), rtol=1e-13)
        gA = gr["A"].toarray() if sp.issparse(gr["A"]) else gr["A"]
        e = 1e-6
        for (i, j) in [(0, 0), (3, 7), (11, 2)]:
            dA = np.zeros((n, n))
            dA[i, j] = 1.0
            jp = loss.value(np.linalg.solve(A + e * dA, b))
            jm = loss.value(np.linalg.solve(A - e * dA, b))
            assert (jp - jm) / (2 * e) == pytest.approx(gA[i, j], rel=1e-6, abs=1e-10)
        lam = np.linalg.solve(A.T, loss.grad(np.linalg.solve(A, b)))
        np.testing.assert_allclose(gr["b"], lam, rtol=1e-8)


def test_l2loss_value_and_grad():
    d = np.arange(6.0).reshape(2, 3)
    w = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    loss = js.L2Loss(None, d, weights=w)
    u = np.ones((2, 3))
    assert loss.value(u) == pytest.approx(0.5 * (1 * 1 + 2 * 1 + 1 * 9))
    np.testing.assert_allclose(loss.grad(u), w * (u - d))
    with pytest.raises(js.errors.InvalidProblemError, match="weights"):
        js.L2Loss(None, d, weights=np.ones(4))
    with pytest.raises(js.errors.InvalidProblemError, match="value"):
        js.Loss(3, lambda u: u)


def test_gradient_errors():
    g, rng, kappa, f, loss = _setup((8, 8))
    prob = js.LinearProblem(-js.Diffusion(g, kappa), f)
    with pytest.raises(js.errors.InvalidProblemError, match="wrt"):
        js.gradient(prob, js.CG(), loss, wrt=("velocity",))
    with pytest.raises(js.errors.InvalidProblemError, match="loss"):
        js.gradient(prob, js.CG(), lambda u: 0.0)
    ode = js.ODEProblem(lambda du, u, p, t: None, np.ones(2), (0.0, 1.0))
    with pytest.raises(js.errors.UnsupportedAlgorithmError):
        js.gradient(ode, js.CG(), loss)
    from jitsolve.gradient import SolveFailedError
    with pytest.raises(SolveFailedError, match="MaxIters"):
        js.gradient(prob, js.CG(), loss, wrt="b", maxiter=2)


def test_gradient_of_a_linear_operator_without_rmatvec():
    import scipy.sparse.linalg as spla
    A = np.diag([2.0, 4.0])
    loss = js.L2Loss(None, np.zeros(2))
    bare = spla.LinearOperator((2, 2), matvec=lambda x: A @ x, dtype=np.float64)
    with pytest.raises(js.errors.InvalidProblemError, match="^A: gradient\\(\\) solves with A\\^T, and this LinearOperator has no rmatvec"):
        js.gradient(js.LinearProblem(bare, np.ones(2)), js.GMRES(), loss, wrt="b")
    full = spla.LinearOperator((2, 2), matvec=lambda x: A @ x, rmatvec=lambda x: A.T @ x, dtype=np.float64)
    val, g = js.gradient(js.LinearProblem(full, np.ones(2)), js.GMRES(), loss, wrt="b", rtol=1e-12)
    np.testing.assert_allclose(g["b"], [0.25, 0.0625], rtol=1e-10)     # A^-T A^-1 b


def test_conductivity_demo_small():
    from jitsolve.demos import conductivity
    out = conductivity(size=16, noise=0.01, seed=1, maxiter=25)
    for key in ("truth", "recovered", "data", "loss_history", "relative_error", "iterations",
                "wall_time"):
        assert key in out
    assert out["recovered"].shape == (16, 16)
    assert out["loss_history"][-1] < 0.05 * out["loss_history"][0]
    assert out["relative_error"] < 0.75 * out["initial_error"]
    assert out["iterations"] >= 5


@pytest.mark.parametrize("make", [lambda g, k: -js.Diffusion(g, k),
                                  lambda g, k: -0.5 * js.Diffusion(g, k),
                                  lambda g, k: -(js.Diffusion(g, k) + js.Laplacian(g))],
                         ids=["neg", "scaled", "sum"])
@pytest.mark.parametrize("level", [1.0, 100.0])
def test_check_gradient_kappa_linear_problem(make, level):
    # kappa ~ 100: the Taylor steps are relative to kappa, so it stays > 0
    g, rng, kappa, f, loss = _setup((6, 6))
    prob = js.LinearProblem(make(g, level * kappa), f)
    rep = js.check_gradient(prob, js.CG(), loss, wrt="kappa", rtol=1e-12, verbose=False)
    assert rep["passed"] and abs(rep["order"] - 2) < 0.2, rep
    assert rep["value"] == pytest.approx(js.gradient(prob, js.CG(), loss, wrt="kappa", rtol=1e-12)[0])



def test_fit_kappa_of_a_summed_operator():
    # kappa inside -(D + L): fit used to accept only (scaled) Diffusion operators
    g, rng, kappa, f, _ = _setup((6, 6))
    f = 1e3 * f
    data = js.solve(js.LinearProblem(-(js.Diffusion(g, kappa) + js.Laplacian(g)), f), js.Direct()).u
    prob = js.LinearProblem(-(js.Diffusion(g, np.ones(g.shape)) + js.Laplacian(g)), f)
    res = js.fit(prob, js.Direct(), js.L2Loss(None, data), np.ones(g.shape), wrt="kappa",
                 bounds=(0.1, 10.0), maxiter=5, progress=False)
    assert res.p.shape == g.shape and res.history[-1] < 0.1 * res.history[0]
