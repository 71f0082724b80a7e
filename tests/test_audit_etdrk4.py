"""Audit of ETDRK4 and its discrete adjoint against independent references: an
independent ETDRK4 (Kassam-Trefethen contour-integral coefficients in the eigenbasis of
a dense non-normal L), manufactured exact solutions, mpmath phi functions, fourth-order
central differences and the dot-product test."""
import mpmath as mp
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError, UnsupportedAlgorithmError
from jitsolve.solvers.ode.etdrk4 import phi_functions, step_grid
from ode_models import linear_mix


# ----------------------------------------------------------------------------- helpers
def _phi_mp(z, k):
    """phi_k(z) in 60-digit arithmetic (the series near 0, the closed form elsewhere)."""
    with mp.workdps(60):
        w = mp.mpc(z)
        if abs(w) < 0.5:
            return complex(mp.fsum(w ** j / mp.factorial(j + k) for j in range(80)))
        s = mp.exp(w)
        for j in range(k):
            s -= w ** j / mp.factorial(j)
        return complex(s / w ** k)


def _kt_coefficients(lam, h, m=64):
    """Kassam-Trefethen's contour-integral ETDRK4 coefficients for eigenvalues lam."""
    r = np.exp(1j * np.pi * (np.arange(1, m + 1) - 0.5) / m)
    z = h * lam[:, None] + r[None, :]
    e2, e = np.exp(h * lam / 2), np.exp(h * lam)
    q = h * np.mean((np.exp(z / 2) - 1) / z, axis=1)
    f1 = h * np.mean((-4 - z + np.exp(z) * (4 - 3 * z + z ** 2)) / z ** 3, axis=1)
    f2 = h * np.mean((2 + z + np.exp(z) * (-2 + z)) / z ** 3, axis=1)
    f3 = h * np.mean((-4 - 3 * z - z ** 2 + np.exp(z) * (4 - z)) / z ** 3, axis=1)
    return e2, q, e, f1, f2, f3


def _reference_etdrk4(M, f, p, u0, tg):
    """ETDRK4 over the step endpoints tg, in M's (complex) eigenbasis."""
    lam, V = np.linalg.eig(M.astype(complex))
    Vi = np.linalg.inv(V)
    n = u0.size

    def N(u, t):
        du = np.empty(n)
        f(du, u, p, t)
        return Vi @ du
    u = u0.astype(float).copy()
    out = [u.copy()]
    for t, t2 in zip(tg[:-1], tg[1:]):
        h = t2 - t
        e2, q, e, f1, f2, f3 = _kt_coefficients(lam, h)
        v = Vi @ u
        nu = N(u, t)
        av = e2 * v + q * nu
        na = N((V @ av).real, t + h / 2)
        bv = e2 * v + q * na
        nb = N((V @ bv).real, t + h / 2)
        cv = e2 * av + q * (2 * nb - nu)
        nc = N((V @ cv).real, t + h)
        u = (V @ (e * v + f1 * nu + 2 * f2 * (na + nb) + f3 * nc)).real
        out.append(u.copy())
    return np.array(out)


def _U(t, n):
    k = np.arange(n)
    return np.sin(t + k) + 0.5 * np.cos(2 * t * (1 + 0.1 * k))


def manufactured(du, u, p, t):
    # u' = M u - u^2 + g(t) with M = p (n x n): exact u = U(t) (see _U)
    n = u.size
    for i in range(n):
        acc = 0.0
        for j in range(n):
            acc += p[i * n + j] * (np.sin(t + j) + 0.5 * np.cos(2 * t * (1 + 0.1 * j)))
        ui = np.sin(t + i) + 0.5 * np.cos(2 * t * (1 + 0.1 * i))
        dui = np.cos(t + i) - (1 + 0.1 * i) * np.sin(2 * t * (1 + 0.1 * i))
        du[i] = -u[i] * u[i] + dui - acc + ui * ui


def _nonnormal(n=6, seed=0):
    """A non-normal matrix with eigenvalues -3 +- 40i, 0 (singular), 0.5, -100, -1e4."""
    rng = np.random.default_rng(seed)
    V = rng.standard_normal((n, n)) + 2 * np.eye(n)
    D = np.zeros((n, n))
    D[0:2, 0:2] = [[-3.0, 40.0], [-40.0, -3.0]]
    D[3, 3], D[4, 4], D[5, 5] = 0.5, -100.0, -1e4
    return V @ D @ np.linalg.inv(V)


def zero(du, u, p, t):
    for i in range(du.size):
        du[i] = 0.0


def kepler(du, u, p, t):
    r3 = (u[0] ** 2 + u[1] ** 2) ** 1.5
    du[0] = u[2]
    du[1] = u[3]
    du[2] = -u[0] / r3
    du[3] = -u[1] / r3


def allen_cahn(du, u, p, t):
    for i in range(u.size):
        du[i] = u[i] - u[i] ** 3


def reaction(du, u, p, t):
    for i in range(u.size):
        du[i] = p[0] * (u[i] - u[i] ** 3) + p[1] * np.sin(3.0 * t) * u[(i + 1) % u.size]


def _slopes(dts, errs):
    return np.diff(np.log(errs)) / np.diff(np.log(dts))


# ----------------------------------------------------------------------------- phi functions
@pytest.mark.parametrize("r", [1.9999, 2.0, 2.01, 4.0, 30.0])
def test_phi_functions_on_rings_against_mpmath(r):
    """Both sides of the series / closed-form switch, all around the circle."""
    zs = r * np.exp(1j * np.linspace(0.0, np.pi, 25))
    zs[0], zs[-1] = r, -r
    got = phi_functions(zs)
    for k in (1, 2, 3):
        ref = np.array([_phi_mp(z, k) for z in zs])
        np.testing.assert_allclose(got[k - 1], ref, rtol=4e-15, atol=0)


def test_phi_functions_of_huge_negative_arguments_are_finite():
    """z^3 overflowed in the closed form: phi3(-1e160) was inf/inf = NaN, phi3(-1e103)
    was 0; now the asymptotics -1/z, -1/z - 1/z^2 ~ 1/|z|, 1/(2|z|)."""
    zs = np.array([-3e5, -1e103, -1e160, -1e300])
    got = phi_functions(zs)
    for k in (1, 2, 3):
        assert np.isfinite(got[k - 1]).all()
        ref = np.array([_phi_mp(z, k).real for z in zs])
        np.testing.assert_allclose(got[k - 1], ref, rtol=1e-15, atol=0)


# ----------------------------------------------------------------------------- the L cache
def test_diagonal_L_changed_in_place_does_not_poison_the_cache():
    """The diagonal's representation was kept by content but held the caller's array:
    after prob.L[:] = -7, a solve with the original values returned exp(-7)."""
    prob = js.SplitODEProblem(-np.arange(3.0) - 1.0, zero, np.ones(3), (0.0, 1.0))
    js.solve(prob, js.ETDRK4(), dt=0.5)
    keep = prob.L.copy()
    prob.L[:] = -7.0
    np.testing.assert_allclose(js.solve(prob, js.ETDRK4(), dt=0.5).u[-1], np.exp(-7.0),
                               rtol=1e-14)
    sol = js.solve(js.SplitODEProblem(keep, zero, np.ones(3), (0.0, 1.0)), js.ETDRK4(), dt=0.3)
    np.testing.assert_allclose(sol.u[-1], np.exp(keep), rtol=1e-14)


# ----------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("rep", ["dense", "sparse"])
def test_nonnormal_L_matches_independent_etdrk4(rep):
    """A non-normal L with complex, zero, positive and very stiff eigenvalues: the solve
    equals an independent ETDRK4 (contour-integral coefficients in the eigenbasis)
    step for step, and converges to the manufactured solution."""
    import scipy.sparse as sp
    M = _nonnormal()
    n = M.shape[0]
    L = M if rep == "dense" else sp.csr_matrix(M)
    prob = js.SplitODEProblem(L, manufactured, _U(0.0, n), (0.0, 1.0), p=M.ravel().copy())
    errs = []
    for dt in (0.1, 0.05, 0.025):
        sol = js.solve(prob, js.ETDRK4(), dt=dt)
        ref = _reference_etdrk4(M, manufactured, M.ravel(), _U(0.0, n), sol.t)
        np.testing.assert_allclose(sol.u, ref, rtol=0, atol=1e-8)
        errs.append(np.abs(sol.u[-1] - _U(1.0, n)).max())
    assert errs[-1] < 2e-3 and errs[0] / errs[-1] > 50, errs


def test_order_four_with_zero_linear_part():
    """L = 0 (diagonal or dense): the scheme is a fourth-order Runge-Kutta method;
    Kepler's circular orbit, exact (cos t, sin t)."""
    u0 = np.array([1.0, 0.0, 0.0, 1.0])
    T = 2.0
    exact = np.array([np.cos(T), np.sin(T), -np.sin(T), np.cos(T)])
    dts = np.array([0.2, 0.1, 0.05, 0.025])
    for L in (np.zeros(4), np.zeros((4, 4))):
        prob = js.SplitODEProblem(L, kepler, u0, (0.0, T))
        errs = [np.abs(js.solve(prob, js.ETDRK4(), dt=dt).u[-1] - exact).max() for dt in dts]
        assert np.all(np.abs(_slopes(dts, errs) - 4.0) < 0.2), errs


def test_order_four_allen_cahn_on_dense_and_separable_grid_operators():
    """Allen-Cahn on a 2-D Dirichlet/Neumann grid: separable Laplacian eigenbasis, its
    CSR matrix (dense eigenbasis) and an advection-diffusion operator (dense matrix
    functions); reference Rodas5P at 1e-12."""
    g = js.Grid((8, 6), bc=[js.Dirichlet(0.0), js.Neumann()])
    X, Y = g.mesh()
    u0 = 0.8 * np.sin(np.pi * X) * np.cos(np.pi * Y)
    vel = (np.full(g.shape, 0.2), np.full(g.shape, 0.1))
    dts = np.array([0.2, 0.1, 0.05, 0.025])
    for L in (0.01 * js.Laplacian(g), 0.01 * js.Laplacian(g) - js.Advection(g, vel)):
        ref = js.solve(js.SplitODEProblem(L.to_csr(), allen_cahn, u0, (0.0, 1.0)), js.Rodas5P(),
                       rtol=1e-12, atol=1e-13, saveat=[1.0]).u[-1]
        for Lx in (L, L.to_csr()):
            prob = js.SplitODEProblem(Lx, allen_cahn, u0, (0.0, 1.0))
            errs = [np.abs(js.solve(prob, js.ETDRK4(), dt=dt).u[-1] - ref).max() for dt in dts]
            assert np.all(np.abs(_slopes(dts, errs) - 4.0) < 0.25), errs
            assert errs[-1] < 2e-8, errs


# ----------------------------------------------------------------------------- step grid
def test_saveat_off_grid_and_partial_steps_land_exactly():
    """Steps land on saveat/tstops times and t1 (documented): the saved states equal an
    independent ETDRK4 over the same step endpoints, forward and backward."""
    M = _nonnormal()[:4, :4] * 0.01 - np.diag([1.0, 2.0, 0.0, 5.0])
    n = 4
    for tspan, saveat in (((0.0, 1.0), [0.05, 0.333, 0.9999]),
                          ((1.0, -0.2), [0.95, 0.2, -0.2])):
        prob = js.SplitODEProblem(M, manufactured, _U(tspan[0], n), tspan, p=M.ravel().copy())
        sol = js.solve(prob, js.ETDRK4(), dt=0.3, saveat=saveat, tstops=[0.5])
        np.testing.assert_array_equal(sol.t, saveat)
        tg, _, _ = step_grid(tspan[0], tspan[1], 0.3,
                             np.array(sorted(set(saveat) | {0.5, tspan[1]},
                                             reverse=tspan[1] < tspan[0])))
        ref = _reference_etdrk4(M, manufactured, M.ravel(), _U(tspan[0], n), tg)
        rows = [int(np.flatnonzero(tg == t)[0]) for t in saveat]
        np.testing.assert_allclose(sol.u, ref[rows], rtol=0, atol=1e-10)
        assert sol.stats.naccept == tg.size - 1
        if tspan[1] > tspan[0]:       # (backward, -u^2 amplifies the error)
            for t, u in zip(sol.t, sol.u):
                assert np.abs(u - _U(t, n)).max() < 5e-3
    # dt not dividing the span: a shortened last step onto t1
    prob = js.SplitODEProblem(M, manufactured, _U(0.0, n), (0.0, 1.0), p=M.ravel().copy())
    sol = js.solve(prob, js.ETDRK4(), dt=0.3)
    np.testing.assert_allclose(sol.t, [0.0, 0.3, 0.6, 0.9, 1.0], rtol=0, atol=1e-15)
    ref = _reference_etdrk4(M, manufactured, M.ravel(), _U(0.0, n), sol.t)
    np.testing.assert_allclose(sol.u, ref, rtol=0, atol=1e-12)


def test_fixed_step_ignores_adaptive_and_tolerances():
    """Documented: adaptive, rtol and atol do not change a fixed-step ETDRK4 solve."""
    prob = js.SplitODEProblem(-np.array([1.0, 30.0]), allen_cahn, np.array([0.3, 0.9]),
                              (0.0, 1.0))
    a = js.solve(prob, js.ETDRK4(), dt=0.1)
    b = js.solve(prob, js.ETDRK4(), dt=0.1, adaptive=True, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(a.t, b.t)
    np.testing.assert_array_equal(a.u, b.u)
    assert b.stats.naccept == 10


def test_too_many_step_sizes_names_what_the_caller_passed():
    """A gradient's irregular loss times are tstops: the refusal names tstops (it named
    saveat, which gradient() does not even accept).  Only a dense L is limited to
    MAX_STEP_SIZES sizes (a set is six n x n matrices); a diagonal one takes 102 sizes
    (six n-vectors a set): the solve lands on every time and the gradient matches
    central differences of the solve."""
    rng = np.random.default_rng(0)
    t = np.sort(rng.random(100))
    loss = js.L2Loss(t, np.zeros((100, 2)))
    dense = js.SplitODEProblem(np.array([[-1.0, 0.5], [0.0, -2.0]]), allen_cahn,
                               np.array([0.3, 0.5]), (0.0, 1.0))
    with pytest.raises(UnsupportedAlgorithmError, match="^tstops: .*102 different step"):
        js.gradient(dense, js.ETDRK4(), loss, wrt=("u0",), dt=0.1)
    with pytest.raises(UnsupportedAlgorithmError, match="^saveat: .*with a dense L"):
        js.solve(dense, js.ETDRK4(), dt=0.1, saveat=t)
    prob = js.SplitODEProblem(-np.array([1.0, 2.0]), allen_cahn, np.array([0.3, 0.5]),
                              (0.0, 1.0))
    sol = js.solve(prob, js.ETDRK4(), dt=0.1, saveat=t)
    np.testing.assert_array_equal(sol.t, t)
    _, g = js.gradient(prob, js.ETDRK4(), loss, wrt=("u0",), dt=0.1)

    def J(u0):
        s = js.solve(js.remake(prob, u0=u0), js.ETDRK4(), dt=0.1, saveat=t)
        return loss.value(s.u)
    np.testing.assert_allclose(g["u0"], _cd4(J, prob.u0.copy()), rtol=1e-7, atol=1e-12)


# ----------------------------------------------------------------------------- gradients
def _cd4(fun, x, h=1e-5):
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        g.flat[i] = (8 * (fun(x + e) - fun(x - e)) - (fun(x + 2 * e) - fun(x - 2 * e))) / (12 * h)
    return g


@pytest.mark.parametrize("kind", ["diagonal", "dense"])
@pytest.mark.parametrize("tspan, t_data", [((0.0, 0.7), [0.0, 0.13, 0.41, 0.7]),
                                           ((0.7, -0.3), [0.5, -0.29])])
def test_gradient_off_grid_both_directions(kind, tspan, t_data):
    """wrt p and u0 together, loss times off the step grid (dt = 0.15 divides nothing),
    forward and backward, every-state and binomial checkpointing: against
    fourth-order central differences of solve(saveat=t_data)."""
    n = 5
    rng = np.random.default_rng(1)
    M = rng.standard_normal((n, n)) - 3 * np.eye(n)
    L = -np.linspace(0.0, 20.0, n) if kind == "diagonal" else M
    back = tspan[1] < tspan[0]
    if back:
        L = 0.1 * L
    u0 = (0.2 if back else 0.5) * rng.standard_normal(n)
    p = np.array([1.3, 0.4])
    t_data = np.array(t_data)
    prob = js.SplitODEProblem(L, reaction, u0, tspan, p=p)
    loss = js.L2Loss(t_data, rng.standard_normal((t_data.size, n)))

    def J(**ch):
        s = js.solve(js.remake(prob, **ch), js.ETDRK4(), dt=0.15, saveat=t_data)
        return loss.value(s.u)
    gp = _cd4(lambda q: J(p=q), p)
    gu = _cd4(lambda q: J(u0=q), u0)
    for ck in ("all", 2):
        val, g = js.gradient(prob, js.ETDRK4(), loss, wrt=("p", "u0"),
                             sensealg=js.DiscreteAdjoint(checkpoints=ck), dt=0.15)
        assert val == J()
        np.testing.assert_allclose(g["p"], gp, rtol=0, atol=1e-7 * np.abs(gp).max())
        np.testing.assert_allclose(g["u0"], gu, rtol=0, atol=1e-7 * np.abs(gu).max())


def test_dot_product_backward_dense_off_grid():
    """f linear (u' = L u + P u): u0 -> u(t_j) is linear, so <J v, w> = <v, J^T w>
    with J^T w from the adjoint (loss <w_j, u(t_j)>), backward in time, L non-normal."""
    n = 4
    rng = np.random.default_rng(4)
    M = 0.1 * _nonnormal(n=6)[:n, :n] + 0.2 * rng.standard_normal((n, n))
    P = 0.3 * rng.standard_normal((n, n))
    t_data = np.array([0.77, 0.31, -0.4])
    w = rng.standard_normal((t_data.size, n))
    v = rng.standard_normal(n)
    prob = js.SplitODEProblem(M, linear_mix, v, (1.0, -0.4), p=P.ravel().copy())
    loss = js.Loss(lambda us: float(np.sum(w * us)), lambda us: w.copy(), t_data=t_data)
    Jv = js.solve(prob, js.ETDRK4(), dt=0.25, saveat=t_data).u
    _, g = js.gradient(prob, js.ETDRK4(), loss, wrt=("u0",), dt=0.25)
    lhs, rhs = float(np.sum(Jv * w)), float(v @ g["u0"])
    assert abs(lhs - rhs) <= 1e-13 * max(abs(lhs), 1.0), (lhs, rhs)


def test_continuous_sensealgs_are_refused_by_name():
    prob = js.SplitODEProblem(-np.array([1.0, 2.0]), allen_cahn, np.array([0.3, 0.5]),
                              (0.0, 1.0))
    loss = js.L2Loss(np.array([1.0]), np.zeros((1, 2)))
    for sa in (js.InterpolatingAdjoint(), js.BacksolveAdjoint(), js.QuadratureAdjoint(),
               js.ForwardSensitivity()):
        with pytest.raises(UnsupportedAlgorithmError, match="^sensealg: ETDRK4"):
            js.gradient(prob, js.ETDRK4(), loss, wrt=("u0",), sensealg=sa, dt=0.1)


def test_scipy_linear_operator_as_L_is_refused_with_the_alternatives():
    """A scipy LinearOperator (e.g. ``A.as_linear_operator()``) was refused as "expected
    a numeric array, got an object array"; the message now says what L may be."""
    g = js.Grid(shape=(8,), extent=((0.0, 1.0),), bc=js.Dirichlet(0.0))
    A = js.Laplacian(g)

    def zero(du, u, p, t):
        du[:] = 0.0
    with pytest.raises(InvalidProblemError, match="L: a scipy LinearOperator.*to_csr"):
        js.SplitODEProblem(A.as_linear_operator(), zero, np.ones(8), (0.0, 1.0))
    prob = js.SplitODEProblem(A.to_csr(), zero, np.ones(8), (0.0, 0.5))
    sol = js.solve(prob, js.ETDRK4(), dt=0.05)
    import scipy.linalg as sl
    np.testing.assert_allclose(sol.u[-1], sl.expm(0.5 * A.to_csr().toarray()) @ np.ones(8),
                               rtol=1e-10, atol=1e-12)
