"""Stiff ODE methods: measured orders, accuracy against SciPy Radau on stiff benchmarks,
step-count bounds, Jacobian sources, grid problems (Newton-Krylov), return codes."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import jitsolve as js
from jitsolve.errors import InvalidProblemError, UnsupportedAlgorithmError
from jitsolve.ode_stiff import ImplicitEuler, KenCarp4, Kvaerno5, Rodas5P, Rosenbrock23

ALL = [ImplicitEuler, Rosenbrock23, Rodas5P, KenCarp4, Kvaerno5]


# ----------------------------------------------------------------------------- problems
def forced(du, u, p, t):
    # y = cos t, z = exp(sin t): non-autonomous (tests df/dt), mildly stiff in y
    du[0] = -p[0] * (u[0] - np.cos(t)) - np.sin(t)
    du[1] = u[0] * u[1]


def forced_rest(du, u, p, t):
    # the same problem split as L u + f with L = diag(-p0, 0)
    du[0] = p[0] * np.cos(t) - np.sin(t)
    du[1] = u[0] * u[1]


def vdp(du, u, p, t):
    du[0] = u[1]
    du[1] = p[0] * ((1.0 - u[0] * u[0]) * u[1]) - u[0]


def vdp_jac(J, u, p, t):
    J[0, 0] = 0.0
    J[0, 1] = 1.0
    J[1, 0] = -2.0 * p[0] * u[0] * u[1] - 1.0
    J[1, 1] = p[0] * (1.0 - u[0] * u[0])


def robertson(du, u, p, t):
    du[0] = -0.04 * u[0] + 1e4 * u[1] * u[2]
    du[1] = 0.04 * u[0] - 1e4 * u[1] * u[2] - 3e7 * u[1] * u[1]
    du[2] = 3e7 * u[1] * u[1]


def hires(du, u, p, t):
    du[0] = -1.71 * u[0] + 0.43 * u[1] + 8.32 * u[2] + 0.0007
    du[1] = 1.71 * u[0] - 8.75 * u[1]
    du[2] = -10.03 * u[2] + 0.43 * u[3] + 0.035 * u[4]
    du[3] = 8.32 * u[1] + 1.71 * u[2] - 1.12 * u[3]
    du[4] = -1.745 * u[4] + 0.43 * u[5] + 0.43 * u[6]
    du[5] = -280.0 * u[5] * u[7] + 0.69 * u[3] + 1.71 * u[4] - 0.43 * u[5] + 0.69 * u[6]
    du[6] = 280.0 * u[5] * u[7] - 1.81 * u[6]
    du[7] = -280.0 * u[5] * u[7] + 1.81 * u[6]


def chain(du, u, p, t):
    # nonlinear tridiagonal reaction-diffusion chain (for coloured Jacobians)
    n = u.size
    for i in range(n):
        left = u[i - 1] if i > 0 else 1.0
        right = u[i + 1] if i < n - 1 else 0.0
        du[i] = 50.0 * (left - 2.0 * u[i] + right) - u[i] * u[i]


def _py(f, p):
    def g(t, u):
        du = np.empty_like(u)
        f(du, u, p, t)
        return du
    return g


# ----------------------------------------------------------------------------- orders
def _order(alg, prob, exact, dts):
    errs = []
    for dt in dts:
        s = js.solve(prob, alg, adaptive=False, dt=dt, rtol=1e-13, atol=1e-13, saveat=[1.0])
        assert s.retcode == js.ReturnCode.Success
        errs.append(np.max(np.abs(s.u[-1] - exact)))
    return np.polyfit(np.log(dts), np.log(errs), 1)[0]


EXACT = np.array([np.cos(1.0), np.exp(np.sin(1.0))])


@pytest.mark.parametrize("A, dts", [(ImplicitEuler, [1 / 64, 1 / 128, 1 / 256]),
                                    (Rosenbrock23, [1 / 32, 1 / 64, 1 / 128]),
                                    (Rodas5P, [1 / 4, 1 / 8, 1 / 16]),
                                    (KenCarp4, [1 / 8, 1 / 16, 1 / 32]),
                                    (Kvaerno5, [1 / 4, 1 / 8, 1 / 16])],
                         ids=lambda a: getattr(a, "__name__", ""))
def test_convergence_order(A, dts):
    prob = js.ODEProblem(forced, np.array([1.0, 1.0]), (0.0, 1.0), p=np.array([2.0]))
    slope = _order(A(), prob, EXACT, dts)
    assert abs(slope - A.order) < 0.2, slope


def test_kencarp4_imex_order():
    prob = js.SplitODEProblem(np.array([-2.0, 0.0]), forced_rest, np.array([1.0, 1.0]),
                              (0.0, 1.0), p=np.array([2.0]))
    slope = _order(KenCarp4(), prob, EXACT, [1 / 8, 1 / 16, 1 / 32])
    assert abs(slope - 4) < 0.2, slope


def test_interpolant_and_saveat():
    prob = js.ODEProblem(forced, np.array([1.0, 1.0]), (0.0, 1.0), p=np.array([2.0]))
    for A in (Rodas5P, KenCarp4, Kvaerno5, Rosenbrock23):
        s = js.solve(prob, A(), rtol=1e-8, atol=1e-10)
        tq = np.linspace(0.05, 0.95, 7)
        tol = 1e-5 if A is Rosenbrock23 else 1e-6
        np.testing.assert_allclose(s(tq)[:, 0], np.cos(tq), atol=tol)
        s2 = js.solve(prob, A(), rtol=1e-8, atol=1e-10, saveat=0.25)
        np.testing.assert_array_equal(s2.t, [0.0, 0.25, 0.5, 0.75, 1.0])


# ----------------------------------------------------------------------------- stiff benchmarks
def test_van_der_pol_mu1000_against_radau():
    p = np.array([1000.0])
    tspan = (0.0, 3000.0)
    ts = [500.0, 1500.0, 3000.0]
    ref = solve_ivp(_py(vdp, p), tspan, [2.0, 0.0], method="Radau", rtol=1e-11, atol=1e-12,
                    t_eval=ts)
    prob = js.ODEProblem(vdp, np.array([2.0, 0.0]), tspan, p=p)
    s = js.solve(prob, Rodas5P(), rtol=1e-10, atol=1e-12, saveat=ts)
    assert s.retcode == js.ReturnCode.Success
    np.testing.assert_allclose(s.u[:, 0], ref.y[0], rtol=1e-6)
    for A, bound in ((Rodas5P, 1500), (KenCarp4, 1500), (Kvaerno5, 1500), (Rosenbrock23, 6000)):
        s = js.solve(prob, A(), rtol=1e-6, atol=1e-6, saveat=[3000.0])
        assert s.retcode == js.ReturnCode.Success
        assert s.stats.naccept < bound, (A.__name__, s.stats)
        np.testing.assert_allclose(s.u[-1, 0], ref.y[0, -1], rtol=1e-3)


def test_robertson_against_radau_and_conservation():
    u0 = np.array([1.0, 0.0, 0.0])
    tspan = (0.0, 1e5)
    ref = solve_ivp(_py(robertson, None), tspan, u0, method="Radau", rtol=1e-11,
                    atol=np.array([1e-14, 1e-18, 1e-14]), t_eval=[1e5])
    prob = js.ODEProblem(robertson, u0, tspan)
    s = js.solve(prob, Rodas5P(), rtol=1e-10, atol=np.array([1e-14, 1e-18, 1e-14]),
                 saveat=[1e5])
    np.testing.assert_allclose(s.u[-1], ref.y[:, -1], rtol=1e-7)
    assert abs(s.u[-1].sum() - 1.0) < 1e-10
    for A, bound in ((Rodas5P, 300), (KenCarp4, 300), (Kvaerno5, 300), (Rosenbrock23, 2000)):
        s = js.solve(prob, A(), rtol=1e-6, atol=1e-10, saveat=[1e5])
        assert s.retcode == js.ReturnCode.Success
        assert s.stats.naccept + s.stats.nreject < bound, (A.__name__, s.stats)
        assert abs(s.u[-1].sum() - 1.0) < 1e-10
        np.testing.assert_allclose(s.u[-1], ref.y[:, -1], rtol=1e-3)


def test_hires_against_radau():
    u0 = np.array([1.0, 0, 0, 0, 0, 0, 0, 0.0057])
    tspan = (0.0, 321.8122)
    ref = solve_ivp(_py(hires, None), tspan, u0, method="Radau", rtol=1e-12, atol=1e-14,
                    t_eval=[tspan[1]])
    prob = js.ODEProblem(hires, u0, tspan)
    for A, rtol, tol in ((Rodas5P, 1e-10, 1e-7), (Kvaerno5, 1e-10, 1e-6),
                         (KenCarp4, 1e-9, 1e-5)):
        s = js.solve(prob, A(), rtol=rtol, atol=1e-14, saveat=[tspan[1]])
        np.testing.assert_allclose(s.u[-1], ref.y[:, -1], rtol=tol, atol=1e-12)


# ----------------------------------------------------------------------------- Jacobians
def test_user_jac_matches_complex_step():
    p = np.array([1000.0])
    u0 = np.array([2.0, 0.0])
    for A in (Rodas5P, Kvaerno5):
        a = js.solve(js.ODEProblem(vdp, u0, (0.0, 500.0), p=p), A(), rtol=1e-8, atol=1e-8)
        b = js.solve(js.ODEProblem(js.ODEFunction(vdp, jac=vdp_jac), u0, (0.0, 500.0), p=p),
                     A(), rtol=1e-8, atol=1e-8)
        assert a.stats.naccept == b.stats.naccept
        np.testing.assert_allclose(b.u[-1], a.u[-1], rtol=1e-9)
        assert b.stats.nf < a.stats.nf          # no complex evaluations for J


def test_coloured_jacobian():
    import scipy.sparse as sp
    n = 30
    S = sp.diags([1, 1, 1], [-1, 0, 1], shape=(n, n))
    u0 = np.zeros(n)
    a = js.solve(js.ODEProblem(chain, u0, (0.0, 2.0)), Rodas5P(), rtol=1e-8, atol=1e-10)
    b = js.solve(js.ODEProblem(js.ODEFunction(chain, jac_sparsity=S), u0, (0.0, 2.0)),
                 Rodas5P(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(b.u[-1], a.u[-1], rtol=1e-12, atol=1e-14)
    # 3 colours instead of 30 columns per Jacobian
    assert b.stats.nf - b.stats.njac * 3 == a.stats.nf - a.stats.njac * n


def test_split_linear_part_in_jacobian():
    import scipy.sparse as sp
    n = 20
    L = sp.diags([1.0, -2.0, 1.0], [-1, 0, 1], shape=(n, n)) * 400.0

    def react(du, u, p, t):
        for i in range(u.size):
            du[i] = -u[i] * u[i] * u[i] + 1.0
    u0 = np.linspace(0, 1, n)
    ref = solve_ivp(lambda t, u: L @ u - u ** 3 + 1.0, (0, 1), u0, method="Radau", rtol=1e-11,
                    atol=1e-12)
    for Lx in (L.tocsr(), L.toarray()):
        prob = js.SplitODEProblem(Lx, react, u0, (0.0, 1.0))
        for A in (Rodas5P, KenCarp4, Kvaerno5):
            s = js.solve(prob, A(), rtol=1e-8, atol=1e-10, saveat=[1.0])
            np.testing.assert_allclose(s.u[-1], ref.y[:, -1], rtol=1e-6, atol=1e-8)
            assert s.stats.naccept < 300, (A.__name__, s.stats)


# ----------------------------------------------------------------------------- grid problems
def test_heat_equation_2d_newton_krylov():
    g = js.Grid((16, 16), bc=js.Dirichlet(0.0))
    L = js.Laplacian(g)
    x, y = g.mesh()
    u0 = np.sin(np.pi * x) * np.sin(np.pi * y)
    lam = -np.sum(L.apply(u0) * u0) / np.sum(u0 * u0)
    exact = np.exp(-lam * 0.05) * u0
    prob = js.ODEProblem(L, u0, (0.0, 0.05))
    for A, rtol, tol, bound in ((ImplicitEuler, 1e-4, 3e-3, 150), (KenCarp4, 1e-6, 1e-6, 30),
                                (Kvaerno5, 1e-6, 1e-6, 30)):
        s = js.solve(prob, A(dense_max=100), rtol=rtol, atol=1e-8, saveat=[0.05])
        assert s.retcode == js.ReturnCode.Success
        np.testing.assert_allclose(s.u[-1], exact, atol=tol)
        assert s.stats.naccept < bound, (A.__name__, s.stats)
    with pytest.raises(UnsupportedAlgorithmError):
        js.solve(prob, Rosenbrock23(dense_max=100))


def test_allen_cahn_imex_newton_krylov():
    import scipy.sparse as sp
    g = js.Grid((16, 16), bc=js.Neumann())
    L = 0.01 * js.Laplacian(g)
    A = L.to_csr()

    def reaction(du, u, p, t):
        for i in range(u.size):
            du[i] = p[0] * (u[i] - u[i] * u[i] * u[i])
    u0 = np.random.default_rng(0).uniform(-0.5, 0.5, g.size)
    p = np.array([1.0])
    ref = solve_ivp(lambda t, u: A @ u + (u - u ** 3), (0, 1), u0, method="Radau",
                    rtol=1e-10, atol=1e-10,
                    jac=lambda t, u: A + sp.diags(1 - 3 * u ** 2))
    prob = js.SplitODEProblem(L, reaction, u0.reshape(16, 16), (0.0, 1.0), p)
    s = js.solve(prob, KenCarp4(dense_max=50), rtol=1e-6, atol=1e-8, saveat=[1.0])
    assert s.retcode == js.ReturnCode.Success
    np.testing.assert_allclose(s.u[-1].ravel(), ref.y[:, -1], atol=1e-4)


# ----------------------------------------------------------------------------- failures, inputs
def test_maxiters_and_bad_inputs():
    prob = js.ODEProblem(robertson, np.array([1.0, 0.0, 0.0]), (0.0, 1e5))
    for A in (Rodas5P, KenCarp4):
        s = js.solve(prob, A(), maxiters=10)
        assert s.retcode == js.ReturnCode.MaxIters
        assert s.t.size > 0 and s.t[-1] < 1e5
    with pytest.raises(InvalidProblemError):
        js.solve(prob, Rodas5P(), adaptive=False)             # fixed steps need dt
    import scipy.sparse as sp
    with pytest.raises(InvalidProblemError, match="jac_sparsity of shape"):  # when built
        js.ODEProblem(js.ODEFunction(robertson, jac_sparsity=sp.eye(4)),
                      np.array([1.0, 0.0, 0.0]), (0.0, 1.0))


def test_nonfinite_initial():
    def bad(du, u, p, t):
        du[0] = np.sqrt(u[0] - 2.0)          # NaN at u0 = 1
    s = js.solve(js.ODEProblem(bad, np.array([1.0]), (0.0, 1.0)), Kvaerno5())
    assert s.retcode == js.ReturnCode.InitialFailure


def test_events_and_backward():
    def fall(du, u, p, t):
        du[0] = u[1]
        du[1] = -9.81

    def ground(u, t, p):
        return u[0]
    cb = js.ContinuousCallback(ground, terminate=True)
    prob = js.ODEProblem(fall, np.array([1.0, 0.0]), (0.0, 5.0))
    for A in (Rodas5P, Kvaerno5, Rosenbrock23):
        s = js.solve(prob, A(autonomous=True), rtol=1e-8, atol=1e-10, callback=cb)
        assert s.retcode == js.ReturnCode.Terminated
        assert abs(s.t[-1] - np.sqrt(2 / 9.81)) < 1e-7
    back = js.ODEProblem(forced, np.array([np.cos(1.0), np.exp(np.sin(1.0))]), (1.0, 0.0),
                         p=np.array([2.0]))
    s = js.solve(back, Rodas5P(), rtol=1e-9, atol=1e-12, saveat=[0.0])
    np.testing.assert_allclose(s.u[-1], [1.0, 1.0], rtol=1e-6)
    # the same fall without a callback, to the ground's time: the loop's signature without
    # event code (cb None, its event blocks pruned before typing) lands where the event did
    from numba.core import types
    from jitsolve.kernels.cpu.stiff import stiff_solve
    t_hit = np.sqrt(2 / 9.81)
    free = js.solve(js.remake(prob, tspan=(0.0, t_hit)), Rodas5P(autonomous=True), rtol=1e-8,
                    atol=1e-10)
    assert free.retcode == js.ReturnCode.Success and abs(free.u[-1, 0]) < 1e-7
    kinds = [sig[8] for sig in stiff_solve.signatures]
    assert any(isinstance(k, types.NoneType) for k in kinds)
    assert any(isinstance(k, types.BaseTuple) for k in kinds)
