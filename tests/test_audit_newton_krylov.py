"""Audit of the stiff methods' Newton-Krylov path (grid problems with more than
``dense_max`` unknowns): against SciPy's Radau with the sparse Jacobian and against the
dense path on the same problem."""
import numpy as np
import pytest
import scipy.sparse as sp
from numba import njit
from scipy.integrate import solve_ivp

import jitsolve as js
from jitsolve.errors import InvalidProblemError, UnsupportedAlgorithmError
from jitsolve.ode_stiff import newton_krylov


@njit
def fkpp(du, u, p, t):
    for i in range(u.size):
        du[i] = p[0] * u[i] * (1.0 - u[i])


def radau(op, u0, T, teval, r=2.0):
    """Tight reference of u' = op u + op.boundary_term() + r u (1 - u)."""
    A = op.to_csr()
    b = op.boundary_term().ravel()
    sol = solve_ivp(lambda t, u: A @ u + b + r * u * (1 - u), (0.0, T), u0.ravel(),
                    method="Radau", rtol=1e-11, atol=1e-12, t_eval=teval,
                    jac=lambda t, u: A + sp.diags(r - 2 * r * u))
    return sol.y.T


N = 8
T = 0.3


def _grid(bc=None):
    g = js.Grid((N, N), bc=bc if bc is not None else js.Dirichlet(1.0))
    u0 = np.random.default_rng(1).uniform(0.0, 1.0, (N, N))
    return g, u0


def test_dense_max_must_be_a_nonnegative_integer():
    # int() truncated 1.5, took True as 1 and -5 (every grid problem to Newton-Krylov),
    # and raised a bare ValueError / TypeError for "x" / None
    for bad in (-5, 1.5, "x", None, True):
        with pytest.raises(InvalidProblemError, match="dense_max"):
            js.KenCarp4(dense_max=bad)
    assert js.Kvaerno5(dense_max=np.int64(7)).dense_max == 7
    assert js.ImplicitEuler(dense_max=0).dense_max == 0


def test_sum_operators_take_the_newton_krylov_path():
    # D + V (nonsymmetric: GMRES) and sigma I + c L: refused before ("SumOperator ... not
    # supported as a compiled right-hand side"), leaving no matrix-free path at all
    g, u0 = _grid()
    D = 0.05 * js.Laplacian(g)
    for op in (D + js.Advection(g, (0.5, 0.3), scheme="upwind"),
               2.0 * D - 1.0 * js.Identity(g)):
        ref = radau(op, u0, T, [T])[-1]
        prob = js.SplitODEProblem(op, fkpp, u0, (0.0, T), np.array([2.0]))
        alg = js.KenCarp4(dense_max=20)
        assert newton_krylov(prob, alg)
        s = js.solve(prob, alg, rtol=1e-6, atol=1e-6, saveat=[T])
        assert s.retcode == js.ReturnCode.Success
        np.testing.assert_allclose(s.u[-1].ravel(), ref, atol=1e-5)
    lin = radau(op, u0, T, [T], r=0.0)[-1]
    s = js.solve(js.ODEProblem(op, u0, (0.0, T)), js.Kvaerno5(dense_max=20), rtol=1e-7,
                 atol=1e-7, saveat=[T])
    np.testing.assert_allclose(s.u[-1].ravel(), lin, atol=1e-6)


def test_dense_output_is_the_methods_interpolant():
    # sol(t) interpolated linearly between the steps on this path: 3e-4 off at rtol 1e-6
    g, u0 = _grid()
    D = 0.05 * js.Laplacian(g)
    prob = js.SplitODEProblem(D, fkpp, u0, (0.0, T), np.array([2.0]))
    tq = np.linspace(0.01, 0.29, 9)
    ref = radau(D, u0, T, tq)
    for Alg in (js.KenCarp4, js.Kvaerno5):
        s = js.solve(prob, Alg(dense_max=20), rtol=1e-7, atol=1e-7)
        assert s.retcode == js.ReturnCode.Success
        err = np.abs(s(tq).reshape(tq.size, -1) - ref).max()
        assert err < 3e-6, (Alg.__name__, err)
        np.testing.assert_array_equal(s(s.t[3]), s.u[3])


@pytest.mark.parametrize("bc", [js.Neumann(), js.Periodic()])
def test_krylov_and_dense_paths_agree(bc):
    g, u0 = _grid(bc)
    D = js.Diffusion(g, 0.02 + 0.05 * np.outer(np.linspace(0, 1, N), np.linspace(0, 1, N)))
    prob = js.SplitODEProblem(D, fkpp, u0, (0.0, T), np.array([2.0]))
    ref = radau(D, u0, T, [T])[-1]
    for Alg in (js.KenCarp4, js.Kvaerno5):
        nk = js.solve(prob, Alg(dense_max=20), rtol=1e-9, atol=1e-9, saveat=[T])
        de = js.solve(prob, Alg(), rtol=1e-9, atol=1e-9, saveat=[T])
        np.testing.assert_allclose(nk.u[-1].ravel(), ref, atol=5e-9)
        np.testing.assert_allclose(nk.u[-1], de.u[-1], atol=5e-9)
        assert nk.stats.naccept < 2 * de.stats.naccept + 5


def test_fixed_step_order_with_tight_newton_tolerance():
    g, u0 = _grid(js.Neumann())
    D = 0.05 * js.Laplacian(g)
    prob = js.SplitODEProblem(D, fkpp, u0, (0.0, T), np.array([2.0]))
    ref = radau(D, u0, T, [T])[-1]
    dts = np.array([T / 3, T / 6, T / 12])
    errs = [np.abs(js.solve(prob, js.KenCarp4(dense_max=20), dt=dt, adaptive=False,
                            rtol=1e-11, atol=1e-13, saveat=[T]).u[-1].ravel() - ref).max()
            for dt in dts]
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert 3.6 < slope < 4.6, (errs, slope)


def test_gradient_refusals_name_a_working_alternative():
    # the continuous adjoints refuse the Newton-Krylov path and name the discrete one
    # (which has its own adjoint since the forty-fifth session)
    g, u0 = _grid(js.Neumann())
    prob = js.SplitODEProblem(0.05 * js.Laplacian(g), fkpp, u0, (0.0, T), np.array([2.0]))
    loss = js.L2Loss(np.array([T]), np.full((1, N, N), 0.5))
    for sa in (js.InterpolatingAdjoint(), js.ForwardSensitivity()):
        with pytest.raises(UnsupportedAlgorithmError, match="FiniteDifference") as e:
            js.gradient(prob, js.Kvaerno5(dense_max=20), loss, sensealg=sa, rtol=1e-8,
                        atol=1e-8)
        assert "js.DiscreteAdjoint()" in str(e.value)
        assert "dense_max=64" in str(e.value)
    # what it advises works, and matches the dense path's discrete adjoint
    kw = dict(rtol=1e-8, atol=1e-8)
    vd, gd = js.gradient(prob, js.Kvaerno5(), loss, **kw)
    v, gr = js.gradient(prob, js.Kvaerno5(dense_max=20), loss,
                        sensealg=js.FiniteDifference(), **kw)
    assert abs(v - vd) < 1e-6 * abs(vd)
    np.testing.assert_allclose(gr["p"], gd["p"], rtol=1e-4)
    v, gr = js.gradient(prob, js.Kvaerno5(dense_max=20), loss, **kw)
    assert abs(v - vd) < 1e-8 * abs(vd)
    np.testing.assert_allclose(gr["p"], gd["p"], rtol=1e-7)


def test_stats_count_the_gmres_iterations(monkeypatch):
    """``sol.stats.nliniter`` (forty-eighth session) is the sum of the GMRES iterations
    of the Newton-Krylov path's linear solves (counted here by wrapping its GMRES), and 0
    on the dense path (LU solves)."""
    import jitsolve.solvers.ode.esdirk as esdirk
    g, u0 = _grid()
    D = js.Diffusion(g, 0.05)
    prob = js.SplitODEProblem(D, fkpp, u0, (0.0, T), np.array([2.0]))
    seen = {"solves": 0, "iters": 0}
    real = esdirk.gmres

    def counting(*a, **k):
        res = real(*a, **k)
        seen["solves"] += 1
        seen["iters"] += res.iters
        return res

    monkeypatch.setattr(esdirk, "gmres", counting)
    for Alg in (js.KenCarp4, js.ImplicitEuler):
        seen.update(solves=0, iters=0)
        nk = js.solve(prob, Alg(dense_max=20), rtol=1e-6, atol=1e-6)
        assert nk.stats.nsolve == seen["solves"] > 0
        assert nk.stats.nliniter == seen["iters"] > nk.stats.nsolve
    monkeypatch.setattr(esdirk, "gmres", real)
    de = js.solve(prob, js.KenCarp4(), rtol=1e-6, atol=1e-6)
    assert de.stats.nsolve > 0 and de.stats.nliniter == 0


def test_ensemble_stats_have_a_column_per_field():
    """Per-trajectory stats of every ODE ensemble path have the six SolverStats columns
    (the compiled kernels count five: nliniter is 0 there), so trajectories' stats and
    HDF5 files look alike whichever path ran."""
    g, u0 = _grid()
    prob = js.SplitODEProblem(js.Diffusion(g, 0.05), fkpp, u0, (0.0, T), np.array([2.0]))
    nk = js.EnsembleProblem(prob, prob_func=lambda pr, i: js.remake(pr, p=[1.0 + i]))
    es = js.solve(nk, js.KenCarp4(dense_max=20), trajectories=2, rtol=1e-6, atol=1e-6,
                  saveat=[T])
    assert es.stats.shape == (2, 6) and np.all(es.stats[:, 5] > es.stats[:, 2])
    assert es[1].stats.nliniter == es.stats[1, 5]
    small = js.EnsembleProblem(js.ODEProblem(fkpp, np.array([0.2, 0.4]), (0.0, 1.0),
                                             np.array([2.0])),
                               u0s=np.array([[0.1, 0.1], [0.3, 0.3]]))
    ek = js.solve(small, js.Tsit5(), trajectories=2, saveat=[1.0])
    assert ek.stats.shape == (2, 6) and np.all(ek.stats[:, 5] == 0) and np.all(ek.stats[:, 3] > 0)
