"""ETDRK4 (exponential time differencing, Cox-Matthews) on SplitODEProblems: the phi
functions, exactness on linear problems for every representation of L (diagonal,
separable Laplacian eigenbasis, dense symmetric, dense general), measured order 4,
boundary terms, saving, failures and bad input."""
import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st
from scipy.linalg import expm

import jitsolve as js
from jitsolve.errors import InvalidProblemError, UnsupportedAlgorithmError
from jitsolve.kernels.cpu import etdrk4 as K
from jitsolve.solvers.ode.etdrk4 import (MAX_STEP_SIZES, etd_coefficients, linear_representation,
                                         phi_functions, step_grid)


def zero(du, u, p, t):
    for i in range(du.size):
        du[i] = 0.0


def forced_rest(du, u, p, t):
    # with L = diag(-p0, 0): y = cos t, z = exp(sin t) (as tests/test_ode_stiff.py)
    du[0] = p[0] * np.cos(t) - np.sin(t)
    du[1] = u[0] * u[1]


def allen_cahn(du, u, p, t):
    for i in range(u.size):
        du[i] = p[0] * (u[i] - u[i] ** 3)


def blowup(du, u, p, t):
    for i in range(u.size):
        du[i] = u[i] * u[i]


def _phi_exact(z, k):
    """phi_k(z) for rational z by the series in exact arithmetic (150 terms: converged
    to far below double precision for |z| <= 20)."""
    z = Fraction(z)
    return float(sum(z ** j / math.factorial(j + k) for j in range(150)))


# ----------------------------------------------------------------------------- phi functions
@pytest.mark.parametrize("z", [0.0, 1e-9, -0.5, 1.9999, 2.0, -3.0, 5.5, -20.0])
def test_phi_functions_against_exact_series(z):
    got = phi_functions(np.array([z]))
    for k in (1, 2, 3):
        ref = _phi_exact(z, k)
        assert abs(got[k - 1][0] - ref) <= 4e-15 * abs(ref), (k, got[k - 1][0], ref)


def test_phi_functions_far_out():
    # closed forms: phi1(-1e6) ~ 1e-6, phi3(-1e6) ~ 1/(2 * 1e6) - ..., phi_k(50) huge
    p1, p2, p3 = phi_functions(np.array([-1e6, 50.0]))
    assert p1[0] == pytest.approx((np.exp(-1e6) - 1) / -1e6, rel=1e-15)
    assert p3[0] == pytest.approx((1 - 1e6 + 0.5e12) / 1e18, rel=1e-14)
    assert p2[1] == pytest.approx((np.exp(50.0) - 51.0) / 2500.0, rel=1e-14)
    # complex arguments take the same formulas
    c1, c2, c3 = phi_functions(np.array([0.5j, 3.0 + 4.0j]))
    assert c1[1] == pytest.approx((np.exp(3 + 4j) - 1) / (3 + 4j), rel=1e-14)
    assert c1[0] == pytest.approx((np.exp(0.5j) - 1) / 0.5j, rel=1e-14)


# ----------------------------------------------------------------------------- linear parts
def _operators():
    g2 = js.Grid((6, 5), extent=((0, 1), (0, 2)), bc=[js.Dirichlet(0.0), js.Neumann()])
    g3 = js.Grid((4, 3, 5), bc=[js.Periodic(), js.Dirichlet(0.0), js.Neumann()])
    g1 = js.Grid((9,), bc=[(js.Dirichlet(0.0), js.Neumann())])
    kappa = 1.0 + np.random.default_rng(3).random(g2.shape)
    vel = (np.full(g2.shape, 0.7), np.full(g2.shape, -0.4))
    return {
        "laplacian-2d": (js.Laplacian(g2), "separable"),
        "scaled-laplacian-3d": (-0.5 * (-js.Laplacian(g3)), "separable"),
        "laplacian-1d-mixed": (js.Laplacian(g1), "separable"),
        "diffusion-constant": (js.Diffusion(g2, 0.3), "separable"),
        "diffusion-variable": (js.Diffusion(g2, kappa), "symmetric"),
        "advection-diffusion": (0.05 * js.Laplacian(g2) - js.Advection(g2, vel), "dense"),
        "sparse-symmetric": (js.Laplacian(g2).to_csr(), "symmetric"),
        "diagonal": (-np.linspace(0.0, 40.0, 30), "diagonal"),
    }


@pytest.mark.parametrize("name", list(_operators()))
def test_linear_problem_is_exact(name):
    """f = 0: every step is e^{hL} u, so the solve equals expm(T L) u0 to rounding, for
    steps far beyond any explicit stability limit."""
    L, kind = _operators()[name]
    rep = linear_representation(L, L.shape[0] if hasattr(L, "shape") and len(L.shape) == 2
                                else np.size(L))
    assert kind in rep.kind
    if isinstance(L, np.ndarray) and L.ndim == 1:
        M = np.diag(L)
    elif sp.issparse(L):
        M = L.toarray()
    else:
        M = L.to_csr().toarray()
    n = M.shape[0]
    u0 = np.random.default_rng(1).standard_normal(n)
    T = 0.3
    prob = js.SplitODEProblem(L, zero, u0, (0.0, T))
    sol = js.solve(prob, js.ETDRK4(), dt=0.1)
    ref = expm(T * M) @ u0
    assert sol.retcode == js.ReturnCode.Success
    np.testing.assert_allclose(sol.u[-1].ravel(), ref, rtol=0, atol=1e-12 * np.abs(u0).max())
    assert sol.stats.naccept == 3 and sol.stats.nf == 12


def test_representation_matches_operator():
    """Q diag(lam) Q^T rebuilt from the separable factors is the operator's matrix."""
    L, _ = _operators()["scaled-laplacian-3d"]
    M = L.to_csr().toarray()
    rep = linear_representation(L, M.shape[0])
    assert rep.mode == K.MODE_EIG
    I0, I1, I2 = rep.inv
    Q = np.kron(np.kron(I0, I1), I2.T)
    np.testing.assert_allclose(Q @ np.diag(rep.lam) @ Q.T, M, atol=1e-12 * np.abs(M).max())


def test_boundary_term_enters_with_f():
    """Nonzero Dirichlet values: du/dt = L u + b, exactly e^{TL} u0 + T phi1(TL) b."""
    g = js.Grid((7, 4), bc=js.Dirichlet(1.5))
    L = 0.2 * js.Laplacian(g)
    b = L.boundary_term().ravel()
    assert np.any(b)
    u0 = np.zeros(g.shape)
    T = 0.7
    sol = js.solve(js.SplitODEProblem(L, zero, u0, (0.0, T)), js.ETDRK4(), dt=0.35)
    M = L.to_csr().toarray()
    n = M.shape[0]
    aug = np.zeros((n + 1, n + 1))
    aug[:n, :n] = T * M
    aug[:n, n] = T * b
    ref = expm(aug)[:n, n]          # = T phi1(TL) b
    np.testing.assert_allclose(sol.u[-1].ravel(), ref, atol=1e-12)


def test_dense_coefficients_match_diagonal_formulas():
    """The block-exponential coefficients of a diagonalisable matrix equal the entrywise
    phi functions in its eigenbasis."""
    rng = np.random.default_rng(5)
    V = rng.standard_normal((6, 6)) + 3 * np.eye(6)
    lam = -np.linspace(0.5, 30.0, 6)
    M = V @ np.diag(lam) @ np.linalg.inv(V)
    rep = linear_representation(M, 6)
    assert rep.mode == K.MODE_DENSE
    h = 0.37
    dense = etd_coefficients(rep, h)
    from jitsolve.solvers.ode.etdrk4 import LinearRepresentation
    diag = etd_coefficients(LinearRepresentation(K.MODE_DIAG, lam=lam), h)
    for k in range(6):
        ref = V @ np.diag(diag[k]) @ np.linalg.inv(V)
        np.testing.assert_allclose(dense[k], ref, atol=1e-12 * np.abs(ref).max())


# ----------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("lam, dts", [(1.0, [0.1, 0.05, 0.025, 0.0125]),
                                      (50.0, [0.0125, 0.00625, 0.003125, 0.0015625])])
def test_order_four_diagonal_forced(lam, dts):
    """Exact solution y = cos t, z = exp(sin t); L = diag(-lam, 0) (one zero eigenvalue).
    With lam = 50 and h lam > 1 the stiff y's stage values are less accurate than the
    step and z = exp(sin t), driven by them, converges with slope ~3.3 first (the stiff
    order reduction of Hochbruck-Ostermann); order 4 is measured once h lam <= 0.6."""
    prob = js.SplitODEProblem(np.array([-lam, 0.0]), forced_rest, np.array([1.0, 1.0]),
                              (0.0, 2.0), p=np.array([lam]))
    exact = np.array([np.cos(2.0), np.exp(np.sin(2.0))])
    dts = np.array(dts)
    errs = [np.abs(js.solve(prob, js.ETDRK4(), dt=dt).u[-1] - exact).max() for dt in dts]
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert abs(slope - 4.0) < 0.2, (slope, errs)


def test_order_four_allen_cahn_periodic():
    """Kassam-Trefethen's setting: a periodic reaction-diffusion PDE with a stiff
    Laplacian (h * max|lam| up to ~30); reference Rodas5P at 1e-12."""
    g = js.Grid((48,), bc=js.Periodic())
    x = g.cell_centers()[0]
    L = 0.02 * js.Laplacian(g)
    prob = js.SplitODEProblem(L, allen_cahn, np.sin(2 * np.pi * x) + 0.3 * np.cos(6 * np.pi * x),
                              (0.0, 1.0), p=np.array([3.0]))
    ref = js.solve(prob, js.Rodas5P(), rtol=1e-12, atol=1e-12, saveat=[1.0]).u[-1]
    dts = np.array([0.2, 0.1, 0.05, 0.025])
    errs = [np.abs(js.solve(prob, js.ETDRK4(), dt=dt).u[-1] - ref).max() for dt in dts]
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert abs(slope - 4.0) < 0.2, (slope, errs)
    assert errs[-1] < 1e-6


def test_separable_and_dense_paths_agree():
    """The same 2-D problem through the Laplacian's eigenbasis and through its CSR matrix
    (dense symmetric eigenbasis): the same solution to rounding."""
    g = js.Grid((8, 6), bc=[js.Dirichlet(0.0), js.Periodic()])
    X, Y = g.mesh()
    u0 = np.sin(np.pi * X) * (1 + 0.5 * np.cos(2 * np.pi * Y))
    L = 0.1 * js.Laplacian(g)
    a = js.solve(js.SplitODEProblem(L, allen_cahn, u0, (0.0, 0.5), p=np.array([2.0])),
                 js.ETDRK4(), dt=0.05)
    b = js.solve(js.SplitODEProblem(L.to_csr(), allen_cahn, u0.ravel(), (0.0, 0.5),
                                    p=np.array([2.0])), js.ETDRK4(), dt=0.05)
    np.testing.assert_allclose(a.u.reshape(b.u.shape), b.u, atol=1e-13)


def test_nonsymmetric_dense_against_rodas():
    """Advection-diffusion (nonsymmetric, dense coefficient matrices) with a reaction."""
    g = js.Grid((10, 6), bc=js.Periodic())
    X, Y = g.mesh()
    vel = (np.full(g.shape, 1.0), np.full(g.shape, 0.5))
    L = 0.02 * js.Laplacian(g) - js.Advection(g, vel)
    prob = js.SplitODEProblem(L, allen_cahn, np.sin(2 * np.pi * X) * np.cos(2 * np.pi * Y),
                              (0.0, 0.4), p=np.array([1.0]))
    # the other integrators take a sum of operators as its matrix
    ref = js.solve(js.remake(prob, L=L.to_csr()), js.Rodas5P(), rtol=1e-12, atol=1e-13,
                   saveat=[0.4]).u[-1]
    dts = np.array([0.02, 0.01, 0.005])
    errs = [np.abs(js.solve(prob, js.ETDRK4(), dt=dt).u[-1] - ref).max() for dt in dts]
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert abs(slope - 4.0) < 0.2 and errs[-1] < 2e-7, (slope, errs)


def test_backward_integration_linear():
    g = js.Grid((5, 4), bc=js.Neumann())
    L = js.Laplacian(g)
    u0 = np.random.default_rng(2).standard_normal(g.shape)
    sol = js.solve(js.SplitODEProblem(L, zero, u0, (0.2, 0.0)), js.ETDRK4(), dt=0.05)
    ref = expm(-0.2 * L.to_csr().toarray()) @ u0.ravel()
    np.testing.assert_allclose(sol.t, [0.2, 0.15, 0.1, 0.05, 0.0], atol=1e-15)
    np.testing.assert_allclose(sol.u[-1].ravel(), ref, rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(lam=st.lists(st.floats(-1e4, 5.0), min_size=1, max_size=6),
       dt=st.floats(1e-3, 0.5), T=st.floats(0.01, 1.0))
def test_property_diagonal_linear_exact(lam, dt, T):
    """Any diagonal (zero, tiny, stiff) and any dt, T: e^{T lam} u0 to rounding."""
    lam = np.array(lam)
    u0 = np.linspace(1.0, 2.0, lam.size)
    sol = js.solve(js.SplitODEProblem(lam, zero, u0, (0.0, T)), js.ETDRK4(), dt=dt)
    assert sol.t[-1] == T
    np.testing.assert_allclose(sol.u[-1], np.exp(T * lam) * u0, rtol=1e-12, atol=1e-300)


# ----------------------------------------------------------------------------- steps, saving
def test_step_grid_lands_on_stops():
    tg, hid, hs = step_grid(0.0, 1.0, 0.3, np.array([0.5, 1.0]))
    np.testing.assert_allclose(tg, [0.0, 0.3, 0.5, 0.8, 1.0])
    assert list(hid) == [0, 1, 0, 1] and hs[0] == 0.3 and hs[1] == pytest.approx(0.2)
    tg, hid, hs = step_grid(0.0, 1.0, 0.25, np.array([1.0]))
    np.testing.assert_allclose(tg, [0, 0.25, 0.5, 0.75, 1.0])
    assert hs.size == 1 and not hid.any()


def test_saveat_and_tstops_hit_exactly():
    prob = js.SplitODEProblem(np.array([-3.0]), zero, np.array([1.0]), (0.0, 1.0))
    sol = js.solve(prob, js.ETDRK4(), dt=0.3, saveat=[0.0, 0.45, 1.0], tstops=[0.7])
    np.testing.assert_array_equal(sol.t, [0.0, 0.45, 1.0])
    np.testing.assert_allclose(sol.u[:, 0], np.exp(-3.0 * sol.t), rtol=1e-13)
    assert sol.stats.naccept == 4       # 0 -> 0.3 -> 0.45 (landing) -> 0.7 -> 1.0
    every = js.solve(prob, js.ETDRK4(), dt=0.3)
    np.testing.assert_allclose(every.t, [0.0, 0.3, 0.6, 0.9, 1.0])
    interval = js.solve(prob, js.ETDRK4(), dt=0.1, saveat=0.25)
    np.testing.assert_allclose(interval.t, [0.0, 0.25, 0.5, 0.75, 1.0])


def test_ensemble_rows_are_single_solves():
    g = js.Grid((12,), bc=js.Periodic())
    x = g.cell_centers()[0]
    prob = js.SplitODEProblem(0.05 * js.Laplacian(g), allen_cahn, np.sin(2 * np.pi * x),
                              (0.0, 0.5), p=np.array([1.0]))
    ps = np.array([[0.5], [1.0], [2.0]])
    ens = js.solve(js.EnsembleProblem(prob, ps=ps), js.ETDRK4(), trajectories=3, dt=0.05,
                   saveat=[0.25, 0.5])
    for i in range(3):
        one = js.solve(js.remake(prob, p=ps[i]), js.ETDRK4(), dt=0.05, saveat=[0.25, 0.5])
        np.testing.assert_array_equal(ens.u[i], one.u)


def test_gradient_by_finite_differences():
    prob = js.SplitODEProblem(np.array([-2.0, -1.0]), forced_rest, np.array([1.0, 1.0]),
                              (0.0, 1.0), p=np.array([2.0]))
    loss = js.L2Loss(np.array([1.0]), np.array([[0.5, 2.0]]))
    val, g = js.gradient(prob, js.ETDRK4(), loss, wrt=("p",), sensealg=js.FiniteDifference(),
                         dt=0.05)
    h = 1e-6
    lp = [loss_at(prob, loss, 2.0 + s * h) for s in (1, -1)]
    assert g["p"][0] == pytest.approx((lp[0] - lp[1]) / (2 * h), rel=1e-5)
    # and the discrete adjoint (tests/test_etdrk4_adjoint.py) agrees with it
    _, ga = js.gradient(prob, js.ETDRK4(), loss, wrt=("p",), dt=0.05)
    assert ga["p"][0] == pytest.approx(g["p"][0], rel=1e-5)


def loss_at(prob, loss, p0):
    sol = js.solve(js.remake(prob, p=np.array([p0])), js.ETDRK4(), dt=0.05, saveat=[1.0])
    return 0.5 * float(np.sum((sol.u[-1] - np.array([0.5, 2.0])) ** 2))


# ----------------------------------------------------------------------------- failures
def test_blowup_returns_unstable_with_the_trajectory():
    prob = js.SplitODEProblem(np.array([0.0]), blowup, np.array([1.0]), (0.0, 5.0))
    sol = js.solve(prob, js.ETDRK4(), dt=0.1)
    assert sol.retcode == js.ReturnCode.Unstable
    # u = 1 / (1 - t) blows up at t = 1; the steps stay finite a little past it
    assert 0.9 <= sol.t[-1] < 2.0 and np.isfinite(sol.u).all()
    early = sol.t <= 0.5
    np.testing.assert_allclose(sol.u[early, 0], 1.0 / (1.0 - sol.t[early]), rtol=1e-4)


def test_maxiters():
    prob = js.SplitODEProblem(np.array([-1.0]), zero, np.array([1.0]), (0.0, 1.0))
    sol = js.solve(prob, js.ETDRK4(), dt=0.01, maxiters=10)
    assert sol.retcode == js.ReturnCode.MaxIters
    assert sol.t[-1] == pytest.approx(0.1) and sol.u.shape == (11, 1)


def test_bad_input_names_the_argument():
    split = js.SplitODEProblem(np.array([-1.0]), zero, np.array([1.0]), (0.0, 1.0))
    with pytest.raises(InvalidProblemError, match="dt"):
        js.solve(split, js.ETDRK4())
    with pytest.raises(UnsupportedAlgorithmError, match="prob: ETDRK4"):
        js.solve(js.ODEProblem(zero, np.array([1.0]), (0.0, 1.0)), js.ETDRK4(), dt=0.1)

    def low(u, t, p):
        return u[0] - 0.5
    with pytest.raises(UnsupportedAlgorithmError, match="callback"):
        js.solve(split, js.ETDRK4(), dt=0.1, callback=js.ContinuousCallback(low))
    dense = js.SplitODEProblem(np.array([[-1.0, 0.5], [0.0, -2.0]]), zero,
                               np.array([1.0, 1.0]), (0.0, 1.0))
    with pytest.raises(UnsupportedAlgorithmError, match="saveat"):
        js.solve(dense, js.ETDRK4(), dt=0.3,
                 saveat=np.linspace(0.0, 1.0, MAX_STEP_SIZES + 40) ** 2)
    g = js.Grid((24, 24), bc=js.Periodic())
    vel = (np.ones(g.shape), np.ones(g.shape))
    big = js.SplitODEProblem(js.Advection(g, vel), zero, np.zeros(g.shape), (0.0, 1.0))
    with pytest.raises(UnsupportedAlgorithmError, match="L: a nonsymmetric"):
        js.solve(big, js.ETDRK4(), dt=0.1)


def test_representation_is_kept_by_content():
    """A fit or an ensemble solves with the same L many times: one eigh / expm per
    content, not per solve; a changed L is a new representation."""
    g = js.Grid((6, 5), bc=js.Dirichlet(0.0))
    kappa = 1.0 + np.random.default_rng(7).random(g.shape)
    r1 = linear_representation(js.Diffusion(g, kappa), g.size)
    assert r1 is linear_representation(js.Diffusion(g, kappa.copy()), g.size)
    k2 = kappa.copy()
    k2[0, 0] += 1.0
    assert linear_representation(js.Diffusion(g, k2), g.size) is not r1
    s1 = linear_representation(0.5 * js.Laplacian(g), g.size)
    assert s1 is linear_representation(0.5 * js.Laplacian(js.Grid((6, 5))), g.size)
    assert s1 is not linear_representation(0.25 * js.Laplacian(g), g.size)
    c1 = etd_coefficients(r1, 0.1)
    assert c1 is etd_coefficients(r1, 0.1) and not c1.flags.writeable
    assert etd_coefficients(r1, 0.2) is not c1
