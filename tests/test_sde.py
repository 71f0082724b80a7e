"""SDE integrators (issue 5): noise generator, strong/weak order, reproducibility,
ensembles, reverse-time SDEs, bad inputs and failures."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError, UnsupportedAlgorithmError
from jitsolve.kernels.cpu.philox import normals, philox4x32
from jitsolve.sde import (EM, SRA1, SRIW1, EulerHeun, Milstein, brownian_path,
                          ensemble_moments, reverse_sde)
from sde_models import gbm_f, gbm_g, ou_f


# ----------------------------------------------------------------------------- user functions
def ou_g(gu, u, p, t):
    gu[0] = p[1]


def kp_f(du, u, p, t):       # Kloeden-Platen additive test problem
    du[0] = p[1] / np.sqrt(1.0 + t) - u[0] / (2.0 * (1.0 + t))


def kp_g(gu, u, p, t):
    gu[0] = p[0] * p[1] / np.sqrt(1.0 + t)


def zero_f(du, u, p, t):
    for i in range(du.size):
        du[i] = 0.0


def general_g(G, u, p, t):
    G[0, 0] = 0.3
    G[0, 1] = -0.7
    G[1, 0] = 1.1
    G[1, 1] = 0.2


def blowup_f(du, u, p, t):
    du[0] = u[0] * u[0] * u[0]


def gbm2_f(du, u, p, t):
    du[0] = 0.5 * u[0]
    du[1] = -0.3 * u[1]


def gbm2_g(gu, u, p, t):
    gu[0] = 0.4 * u[0]
    gu[1] = 0.8 * u[1]


def gbm_g_real_only(gu, u, p, t):   # max() of a complex number does not compile
    gu[0] = p[1] * max(u[0], 0.0)


# ----------------------------------------------------------------------------- noise
def test_philox_known_answers():
    # Random123 kat_vectors, Philox4x32-10
    m = 0xffffffff
    assert philox4x32((0, 0, 0, 0), (0, 0)) == (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)
    assert philox4x32((m, m, m, m), (m, m)) == (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)
    assert philox4x32((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344),
                      (0xa4093822, 0x299f31d0)) == (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)


def test_normals_are_standard_and_pure():
    z = normals(11, 3, np.arange(200_000))
    se = 1 / np.sqrt(z.size)
    assert abs(z.mean()) < 5 * se
    assert abs(z.var() - 1) < 5 * np.sqrt(2) * se
    assert abs(np.mean(z ** 4) - 3) < 0.05
    np.testing.assert_array_equal(z[1000:1010], normals(11, 3, np.arange(1000, 1010)))
    assert not np.array_equal(z[:10], normals(12, 3, np.arange(10)))
    assert not np.array_equal(z[:10], normals(11, 4, np.arange(10)))


# ----------------------------------------------------------------------------- strong order
def _slope(dts, errs):
    return np.polyfit(np.log(dts), np.log(errs), 1)[0]


@pytest.mark.parametrize("alg, expected, params, ms", [
    (EM(), 0.5, (0.5, 1.0), range(5, 11)),
    (Milstein(), 1.0, (0.5, 1.0), range(5, 11)),
    (SRIW1(), 1.5, (1.5, 0.5), range(3, 9)),
])
def test_strong_order_gbm(alg, expected, params, ms):
    """Mean |u(1) - exact| over paths, exact GBM evaluated on the same path (sol.W)."""
    mu, sigma = params
    prob = js.SDEProblem(gbm_f, gbm_g, np.array([1.0]), (0.0, 1.0), p=np.array([mu, sigma]))
    ep = js.EnsembleProblem(prob)
    errs = []
    for m in ms:
        sol = js.solve(ep, alg, trajectories=300, dt=2.0 ** -m, adaptive=False, seed=7,
                       save_noise=True, saveat=np.array([1.0]))
        exact = np.exp(mu - 0.5 * sigma ** 2 + sigma * sol.W[:, -1, 0])
        errs.append(np.mean(np.abs(sol.u[:, -1, 0] - exact)))
    slope = _slope(2.0 ** -np.array(list(ms)), errs)
    assert abs(slope - expected) < 0.25, (slope, errs)


def test_strong_order_sra1_additive():
    """SRA1 on the Kloeden-Platen additive problem (exact solution a function of W(t)).
    Here the error is dominated by the drift part and converges at order 2 (as in
    StochasticDiffEq.jl's additive tests); the guaranteed order is 1.5."""
    prob = js.SDEProblem(kp_f, kp_g, np.array([1.0]), (0.0, 1.0), p=np.array([1.0, 0.5]))
    ep = js.EnsembleProblem(prob)
    ms = range(2, 7)
    errs = []
    for m in ms:
        sol = js.solve(ep, SRA1(), trajectories=300, dt=2.0 ** -m, adaptive=False, seed=7,
                       save_noise=True, saveat=np.array([1.0]))
        exact = (1.0 + 0.5 * (1.0 + sol.W[:, -1, 0])) / np.sqrt(2.0)
        errs.append(np.mean(np.abs(sol.u[:, -1, 0] - exact)))
    slope = _slope(2.0 ** -np.array(list(ms)), errs)
    assert slope > 1.5 - 0.25, (slope, errs)


def nl_f(du, u, p, t):
    du[0] = -u[0] ** 3 + np.sin(3.0 * u[0]) + np.cos(t)


def nl_g(gu, u, p, t):
    gu[0] = 0.8 + 0.5 * t


def test_strong_order_sra1_against_fine_reference_same_path():
    """Nonlinear drift, additive noise: no closed form, so the reference is SRA1 with
    dt = 2^-11 on the same Brownian path.  Its I_(1,0) comes from the tree's space-time
    Lévy area, so coarse and fine runs integrate the same path (an independent I_(1,0)
    per step size would cap the measured order at 1)."""
    ep = js.EnsembleProblem(js.SDEProblem(nl_f, nl_g, np.array([0.5]), (0.0, 1.0)))
    ref = js.solve(ep, SRA1(), trajectories=200, dt=2.0 ** -11, adaptive=False, seed=7,
                   saveat=np.array([1.0]))
    ms = range(3, 8)
    errs = []
    for m in ms:
        sol = js.solve(ep, SRA1(), trajectories=200, dt=2.0 ** -m, adaptive=False, seed=7,
                       saveat=np.array([1.0]))
        errs.append(np.mean(np.abs(sol.u[:, -1, 0] - ref.u[:, -1, 0])))
    slope = _slope(2.0 ** -np.array(list(ms)), errs)
    assert slope > 1.5 - 0.25, (slope, errs)


def test_scalar_noise_sriw1_and_eulerheun_stratonovich():
    # scalar noise: one W drives both components; exact u_i = u0_i exp((mu_i - s_i^2/2) t + s_i W)
    prob = js.SDEProblem(gbm2_f, gbm2_g, np.array([1.0, 2.0]), (0.0, 1.0), noise="scalar")
    sol = js.solve(prob, SRIW1(), dt=2.0 ** -8, adaptive=False, seed=3, save_noise=True)
    assert sol.W.shape == (257, 1)
    mu, s = np.array([0.5, -0.3]), np.array([0.4, 0.8])
    exact = np.array([1.0, 2.0]) * np.exp((mu - 0.5 * s ** 2) * sol.t[:, None] + s * sol.W)
    assert np.max(np.abs(sol.u - exact)) < 2e-3
    # Stratonovich GBM: exact u0 exp(mu t + s W); Euler-Heun is order 1 on commutative noise
    sp = js.SDEProblem(gbm2_f, gbm2_g, np.array([1.0, 2.0]), (0.0, 1.0), noise="scalar",
                       interpretation="stratonovich")
    errs = []
    for m in (6, 8, 10):
        sol = js.solve(sp, EulerHeun(), dt=2.0 ** -m, seed=3, save_noise=True)
        exact = np.array([1.0, 2.0]) * np.exp(mu * sol.t[:, None] + s * sol.W)
        errs.append(np.max(np.abs(sol.u - exact)))
    assert errs[2] < errs[0] / 8


def test_general_noise_em_sra1_exact_for_constant_g():
    prob = js.SDEProblem(zero_f, general_g, np.zeros(2), (0.0, 1.0), noise="general", nbrownian=2)
    G = np.array([[0.3, -0.7], [1.1, 0.2]])
    for alg in (EM(), SRA1()):
        sol = js.solve(prob, alg, dt=2.0 ** -5, adaptive=False, seed=5, save_noise=True)
        assert sol.W.shape == (33, 2)
        np.testing.assert_allclose(sol.u, sol.W @ G.T, atol=1e-12)


def test_milstein_derivative_free_fallback():
    prob = js.SDEProblem(gbm_f, gbm_g_real_only, np.array([1.0]), (0.0, 1.0), p=np.array([0.5, 1.0]))
    sol = js.solve(prob, Milstein(), dt=2.0 ** -10, seed=2, save_noise=True)
    exact = np.exp(0.0 + sol.W[-1, 0])
    assert abs(sol.u[-1, 0] - exact) < 0.02


# ----------------------------------------------------------------------------- weak order
def test_weak_ou_mean_variance_1e5_paths():
    lam, sig = 1.0, 0.5
    ep = js.EnsembleProblem(js.SDEProblem(ou_f, ou_g, np.array([1.0]), (0.0, 1.0),
                                          p=np.array([lam, sig])))
    mean = np.exp(-lam)
    var = sig ** 2 / (2 * lam) * (1 - np.exp(-2 * lam))
    N = 100_000
    for alg, dt in ((EM(), 2.0 ** -8), (SRA1(), 2.0 ** -4)):
        r = ensemble_moments(ep, alg, trajectories=N, dt=dt, adaptive=False, seed=1)
        assert r.n == N and r.failed == 0
        np.testing.assert_allclose(r.t, [0.0, 1.0])
        se_mean = np.sqrt(var / N)
        se_var = var * np.sqrt(2.0 / (N - 1))
        assert abs(r.mean[-1, 0] - mean) < 4 * se_mean, (alg, r.mean[-1, 0], mean)
        assert abs(r.var[-1, 0] - var) < 4 * se_var, (alg, r.var[-1, 0], var)
        assert r.var[0, 0] == 0.0


def test_moments_match_stored_paths_and_thread_independent():
    ep = js.EnsembleProblem(js.SDEProblem(ou_f, ou_g, np.array([1.0]), (0.0, 1.0),
                                          p=np.array([1.0, 0.5])))
    ts = np.linspace(0, 1, 5)
    r = ensemble_moments(ep, EM(), trajectories=500, dt=2.0 ** -6, saveat=ts, seed=4, block=7)
    sol = js.solve(ep, EM(), trajectories=500, dt=2.0 ** -6, saveat=ts, seed=4)
    np.testing.assert_allclose(r.mean[:, 0], sol.u[:, :, 0].mean(axis=0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(r.var[1:, 0], sol.u[:, 1:, 0].var(axis=0, ddof=1), rtol=1e-10)
    r2 = ensemble_moments(ep, EM(), trajectories=500, dt=2.0 ** -6, saveat=ts, seed=4, block=7)
    np.testing.assert_array_equal(r.mean, r2.mean)


# ----------------------------------------------------------------------------- reproducibility
def _gbm():
    return js.SDEProblem(gbm_f, gbm_g, np.array([1.0]), (0.0, 1.0), p=np.array([0.5, 1.0]))


def test_same_seed_identical_different_seeds_differ():
    prob = _gbm()
    a = js.solve(prob, EM(), dt=2.0 ** -6, seed=42, save_noise=True)
    b = js.solve(prob, EM(), dt=2.0 ** -6, seed=42, save_noise=True)
    c = js.solve(prob, EM(), dt=2.0 ** -6, seed=43, save_noise=True)
    np.testing.assert_array_equal(a.u, b.u)
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.array_equal(a.W, c.W)
    # seed=None is the fixed default seed 0
    d = js.solve(prob, EM(), dt=2.0 ** -6, save_noise=True)
    e = js.solve(prob, EM(), dt=2.0 ** -6, seed=0, save_noise=True)
    np.testing.assert_array_equal(d.W, e.W)


def test_dt_and_half_dt_same_brownian_motion():
    prob = _gbm()
    a = js.solve(prob, EM(), dt=2.0 ** -6, seed=9, save_noise=True)
    b = js.solve(prob, Milstein(), dt=2.0 ** -7, seed=9, save_noise=True)
    np.testing.assert_array_equal(a.W, b.W[::2])
    # the order-1.5 family (Brownian tree with Lévy area): nested too
    c = js.solve(prob, SRIW1(), dt=2.0 ** -6, adaptive=False, seed=9, save_noise=True)
    # (SRA1 on the additive twin: it refuses GBM's multiplicative noise)
    d = js.solve(js.remake(prob, g=ou_g), SRA1(), dt=2.0 ** -8, adaptive=False, seed=9,
                 save_noise=True)
    np.testing.assert_array_equal(c.W, d.W[::4])
    np.testing.assert_array_equal(c.W, brownian_path(c.t, (0.0, 1.0), seed=9, alg=SRIW1()))
    assert a.t.size == 65 and b.t.size == 129
    # the midpoints are Brownian-bridge values between the coarse points
    mid = b.W[1::2, 0] - 0.5 * (a.W[:-1, 0] + a.W[1:, 0])
    assert abs(mid.std() - np.sqrt(2.0 ** -6 / 4)) < 0.3 * np.sqrt(2.0 ** -6 / 4)


@pytest.mark.parametrize("dt", [0.01, 0.3], ids=["divides-span", "t1-inside-last-step"])
def test_non_dyadic_dt_and_half_dt_same_brownian_motion(dt):
    """A fixed step that is not (t1 - t0)/2^m reads a tree spanning 2^M steps of dt, so
    dt and dt/2 (and dt/4) are the same Brownian motion, as on dyadic grids; sol.W is
    regenerated by brownian_path(..., dt=dt)."""
    prob = js.remake(_gbm(), tspan=(0.25, 1.25))
    a = js.solve(prob, EM(), dt=dt, seed=9, save_noise=True)
    b = js.solve(prob, Milstein(), dt=dt / 2, seed=9, save_noise=True)
    c = js.solve(prob, EM(), dt=dt / 4, seed=9, save_noise=True)
    N = int(np.ceil(round(1.0 / dt, 9)))
    assert a.t.size == N + 1 and a.t[-1] == 1.25 and a.t[0] == 0.25
    np.testing.assert_allclose(np.diff(a.t[:-1]), dt, rtol=1e-12)
    # every grid point of dt is one of dt/2's and dt/4's (t1 too), with the same W
    np.testing.assert_array_equal(a.W[:-1], b.W[:-1:2][:N])
    np.testing.assert_array_equal(a.W[:-1], c.W[:-1:4][:N])
    np.testing.assert_array_equal(a.W[-1], b.W[-1])
    np.testing.assert_array_equal(a.W[-1], c.W[-1])
    for sol, h in ((a, dt), (b, dt / 2), (c, dt / 4)):
        np.testing.assert_array_equal(brownian_path(sol.t, prob.tspan, seed=9, dt=h), sol.W)
    # the order-1.5 family's tree (Lévy area) nests the same way
    d = js.solve(prob, SRIW1(), dt=dt, adaptive=False, seed=9, save_noise=True)
    e = js.solve(js.remake(prob, g=ou_g), SRA1(), dt=dt / 2, adaptive=False, seed=9,
                 save_noise=True)   # SRA1 refuses GBM's multiplicative noise
    np.testing.assert_array_equal(d.W[:-1], e.W[:-1:2][:N])
    np.testing.assert_array_equal(d.W[-1], e.W[-1])
    np.testing.assert_array_equal(brownian_path(d.t, prob.tspan, seed=9, dt=dt, alg=SRIW1()), d.W)
    assert not np.array_equal(d.W, a.W)


@pytest.mark.parametrize("dt", [1e-3, 0.3], ids=["divides-span", "t1-inside-last-step"])
def test_non_dyadic_grid_increments_have_the_law_of_brownian_motion(dt):
    """The tree reaching past t1 is scaled right: increments over the grid have variance
    h (quadratic variation t1 - t0 = 1, not the tree's span), independent across steps
    and paths, W(t1) ~ N(0, 1) and the short last step's increment ~ N(0, t1 - t_{N-1})."""
    ep = js.EnsembleProblem(js.SDEProblem(zero_f, ou_g, np.array([0.0]), (0.0, 1.0),
                                          p=np.array([0.0, 1.0])))
    P = 4000 if dt < 0.01 else 20000
    sol = js.solve(ep, EM(), trajectories=P, dt=dt, seed=21, save_noise=True)
    W = sol.W[:, :, 0]
    np.testing.assert_allclose(sol.u[:, :, 0], W, atol=1e-12)  # du = dW
    dW = np.diff(W, axis=1)
    h = np.diff(sol.t)
    qv = (dW ** 2).sum(axis=1)                                 # mean 1, sd sqrt(2 sum h^2)
    se = np.sqrt(2 * (h ** 2).sum() / P)
    assert abs(qv.mean() - 1.0) < 5 * se
    z = dW / np.sqrt(h)                                        # iid N(0, 1) if the law is right
    assert abs(z.mean()) < 5 / np.sqrt(z.size)
    assert abs(z.var() - 1.0) < 5 * np.sqrt(2.0 / z.size)
    assert abs(np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1]) < 5 / np.sqrt(z.size)
    assert abs(W[:, -1].var() - 1.0) < 5 * np.sqrt(2.0 / P)
    zl = z[:, -1]                                              # the last (short) step
    assert abs(zl.var() - 1.0) < 5 * np.sqrt(2.0 / P) and abs(zl.mean()) < 5 / np.sqrt(P)


def test_subinterval_regenerated_and_ensemble_path_zero():
    prob = _gbm()
    sol = js.solve(prob, EM(), dt=2.0 ** -8, seed=5, save_noise=True)
    W = brownian_path(sol.t[100:140], (0.0, 1.0), seed=5)
    np.testing.assert_array_equal(W, sol.W[100:140])
    ens = js.solve(js.EnsembleProblem(prob), EM(), trajectories=3, dt=2.0 ** -8, seed=5,
                   save_noise=True)
    np.testing.assert_array_equal(ens.u[0], sol.u)
    np.testing.assert_array_equal(ens.W[0], sol.W)
    assert not np.array_equal(ens.u[1], ens.u[0])
    # path 2 of the ensemble is trajectory 2
    np.testing.assert_array_equal(ens.W[2], brownian_path(sol.t, (0.0, 1.0), seed=5, trajectory=2))


def test_adaptive_sriw1_reproducible_and_on_its_path():
    prob = _gbm()
    a = js.solve(prob, SRIW1(), seed=3, save_noise=True, rtol=1e-3, atol=1e-3)
    b = js.solve(prob, SRIW1(), seed=3, save_noise=True, rtol=1e-3, atol=1e-3)
    assert a.retcode == js.ReturnCode.Success
    np.testing.assert_array_equal(a.u, b.u)
    assert a.t[-1] == 1.0 and a.stats.naccept == a.t.size - 1
    np.testing.assert_array_equal(brownian_path(a.t, (0.0, 1.0), seed=3, alg=SRIW1()), a.W)
    exact = np.exp(0.0 + a.W[:, 0])
    assert np.max(np.abs(a.u[:, 0] - exact)) < 0.05
    # tighter tolerance: more steps, smaller error on the same Brownian motion
    c = js.solve(prob, SRIW1(), seed=3, save_noise=True, rtol=1e-5, atol=1e-5)
    assert c.t.size > a.t.size
    assert np.max(np.abs(c.u[:, 0] - np.exp(c.W[:, 0]))) < np.max(np.abs(a.u[:, 0] - exact))


def test_saveat_and_non_dyadic_dt():
    prob = _gbm()
    sol = js.solve(prob, EM(), dt=0.01, seed=1, saveat=0.25, save_noise=True)
    np.testing.assert_allclose(sol.t, [0, 0.25, 0.5, 0.75, 1.0])
    assert sol.u.shape == (5, 1) and sol.W.shape == (5, 1)
    full = js.solve(prob, EM(), dt=0.01, seed=1, save_noise=True)
    assert full.t.size == 101
    np.testing.assert_allclose(full.t[[0, 25, 50, 75, 100]], sol.t, atol=1e-12)
    np.testing.assert_array_equal(full.u[[0, 25, 50, 75, 100]], sol.u)
    # off-grid save times are stepped to exactly
    off = js.solve(prob, EM(), dt=2.0 ** -4, seed=1, saveat=np.array([0.1, 0.33, 1.0]))
    np.testing.assert_allclose(off.t, [0.1, 0.33, 1.0])


def test_backward_span():
    prob = js.SDEProblem(ou_f, ou_g, np.array([1.0]), (1.0, 0.0), p=np.array([-1.0, 0.5]))
    sol = js.solve(prob, EM(), dt=2.0 ** -6, seed=1, save_noise=True)
    assert sol.t[0] == 1.0 and sol.t[-1] == 0.0 and np.all(np.diff(sol.t) < 0)
    assert sol.successful


# ----------------------------------------------------------------------------- ensembles
def test_ensemble_with_ps_and_u0s():
    prob = js.SDEProblem(ou_f, ou_g, np.array([1.0]), (0.0, 1.0), p=np.array([1.0, 0.0]))
    ps = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    u0s = np.array([[1.0], [2.0], [3.0]])
    sol = js.solve(js.EnsembleProblem(prob, u0s=u0s, ps=ps), EM(), dt=2.0 ** -10,
                   saveat=np.array([0.0, 1.0]))
    assert sol.u.shape == (3, 2, 1)
    np.testing.assert_allclose(sol.u[:, -1, 0], u0s[:, 0] * np.exp(-ps[:, 0]), rtol=1e-2)
    assert all(r == js.ReturnCode.Success for r in sol.retcodes)


def test_ensemble_prob_func_general_path():
    prob = js.SDEProblem(ou_f, ou_g, np.array([1.0]), (0.0, 1.0), p=np.array([1.0, 0.5]))
    ep = js.EnsembleProblem(prob, prob_func=lambda pr, i: js.remake(pr, u0=np.array([float(i)])))
    sol = js.solve(ep, EM(), trajectories=3, dt=2.0 ** -5, seed=2)
    assert sol.u.shape == (3, 33, 1)
    np.testing.assert_array_equal(sol.u[:, 0, 0], [0.0, 1.0, 2.0])


# ----------------------------------------------------------------------------- reverse time
def vp_f(du, u, p, t):
    for i in range(u.size):
        du[i] = -u[i]


def vp_g(gu, u, p, t):
    for i in range(u.size):
        gu[i] = np.sqrt(2.0)


def vp_score(s, u, p, t):
    # data N(mu, s0^2) pushed through dX = -X dt + sqrt(2) dW: N(mu e^-t, s0^2 e^-2t + 1 - e^-2t)
    e = np.exp(-t)
    for i in range(u.size):
        m = p[i] * e
        v = p[2 + i] ** 2 * e * e + 1.0 - e * e
        s[i] = -(u[i] - m) / v


def test_reverse_sde_recovers_gaussian_data():
    mu = np.array([1.0, -2.0])
    s0 = np.array([0.5, 2.0])
    p = np.concatenate([mu, s0])
    T = 3.0
    fr, gr = reverse_sde(vp_f, vp_g, vp_score)
    e = np.exp(-T)
    mT, vT = mu * e, s0 ** 2 * e * e + 1 - e * e
    N = 4000
    rng = np.random.default_rng(0)
    uT = mT + np.sqrt(vT) * rng.standard_normal((N, 2))
    prob = js.SDEProblem(fr, gr, uT[0], (T, 0.0), p=p)
    r = ensemble_moments(js.EnsembleProblem(prob, u0s=uT), EM(), trajectories=N,
                         dt=T / 2 ** 8, seed=3)
    np.testing.assert_allclose(r.t, [T, 0.0])
    se = np.sqrt(s0 ** 2 / N)
    assert np.all(np.abs(r.mean[-1] - mu) < 4 * se + 0.02), r.mean[-1]
    assert np.all(np.abs(r.var[-1] / s0 ** 2 - 1) < 4 * np.sqrt(2.0 / N) + 0.02), r.var[-1]


def corr_score(s, u, p, t):
    # data N(mu, S) through dX = -X dt + sqrt(2) dW: N(mu e^-t, S e^-2t + (1 - e^-2t) I);
    # p = (mu0, mu1, S00, S01, S11); the score is -S_t^{-1} (u - m_t)
    e = np.exp(-t)
    a = p[2] * e * e + 1.0 - e * e
    b = p[3] * e * e
    c = p[4] * e * e + 1.0 - e * e
    d0 = u[0] - p[0] * e
    d1 = u[1] - p[1] * e
    det = a * c - b * b
    s[0] = -(c * d0 - b * d1) / det
    s[1] = -(a * d1 - b * d0) / det


def test_reverse_sde_recovers_correlated_gaussian():
    """Samples of the reversed SDE (stored paths, final state) match the data's mean and
    full covariance (correlation 0.8) within 4 standard errors plus the O(dt) bias of EM."""
    mu = np.array([1.0, -2.0])
    S = np.array([[1.0, 1.6], [1.6, 4.0]])
    p = np.array([mu[0], mu[1], S[0, 0], S[0, 1], S[1, 1]])
    T = 3.0
    e = np.exp(-T)
    ST = S * e * e + (1 - e * e) * np.eye(2)
    N = 4000
    rng = np.random.default_rng(1)
    uT = mu * e + rng.standard_normal((N, 2)) @ np.linalg.cholesky(ST).T
    fr, gr = reverse_sde(vp_f, vp_g, corr_score)
    prob = js.SDEProblem(fr, gr, uT[0], (T, 0.0), p=p)
    sol = js.solve(js.EnsembleProblem(prob, u0s=uT), EM(), trajectories=N, dt=T / 2 ** 8,
                   seed=5, saveat=np.array([0.0]))
    assert sol.successful_mask.all()
    x = sol.u[:, -1, :]
    se_mean = np.sqrt(np.diag(S) / N)
    assert np.all(np.abs(x.mean(axis=0) - mu) < 4 * se_mean + 0.02), x.mean(axis=0)
    C = np.cov(x.T)
    se_cov = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S ** 2) / N)
    assert np.all(np.abs(C - S) < 4 * se_cov + 0.03 * np.sqrt(np.outer(np.diag(S), np.diag(S)))), C
    assert abs(C[0, 1] / np.sqrt(C[0, 0] * C[1, 1]) - 0.8) < 0.03


def mixture_score(s, u, p, t):
    # data 0.3 N(-2, 0.5^2) + 0.7 N(2, 0.5^2) through the same OU process
    e = np.exp(-t)
    v = 0.25 * e * e + 1.0 - e * e
    m0 = -2.0 * e
    m1 = 2.0 * e
    w0 = 0.3 * np.exp(-0.5 * (u[0] - m0) ** 2 / v)
    w1 = 0.7 * np.exp(-0.5 * (u[0] - m1) ** 2 / v)
    s[0] = -(w0 * (u[0] - m0) + w1 * (u[0] - m1)) / (v * (w0 + w1))


def test_reverse_sde_recovers_gaussian_mixture():
    """A bimodal data law (weights 0.3/0.7 at -2/+2): the reversed samples put the right
    mass in each mode, with the mixture's mean and variance."""
    T = 4.0
    e = np.exp(-T)
    N = 6000
    rng = np.random.default_rng(2)
    comp = rng.random(N) < 0.3
    vT = 0.25 * e * e + 1 - e * e
    uT = np.where(comp, -2.0 * e, 2.0 * e) + np.sqrt(vT) * rng.standard_normal(N)
    fr, gr = reverse_sde(vp_f, vp_g, mixture_score)
    prob = js.SDEProblem(fr, gr, uT[:1], (T, 0.0))
    sol = js.solve(js.EnsembleProblem(prob, u0s=uT[:, None]), EM(), trajectories=N,
                   dt=T / 2 ** 9, seed=6, saveat=np.array([0.0]))
    x = sol.u[:, -1, 0]
    frac = np.mean(x < 0)
    assert abs(frac - 0.3) < 4 * np.sqrt(0.3 * 0.7 / N), frac
    mean = 0.3 * -2 + 0.7 * 2
    var = 0.25 + 4.0 - mean ** 2
    assert abs(x.mean() - mean) < 4 * np.sqrt(var / N) + 0.02
    assert abs(x.var() / var - 1) < 4 * np.sqrt(2.0 / N) + 0.03
    # each mode keeps its width (0.5) up to the O(dt) bias
    assert abs(x[x > 0].std() - 0.5) < 0.05 and abs(x[x < 0].std() - 0.5) < 0.05


# ----------------------------------------------------------------------------- bad inputs
def test_bad_inputs_raise_naming_the_argument():
    prob = _gbm()
    with pytest.raises(InvalidProblemError, match="^dt"):
        js.solve(prob, EM())
    with pytest.raises(InvalidProblemError, match="^dt"):
        js.solve(prob, SRIW1(), adaptive=False)
    with pytest.raises(InvalidProblemError, match="^dt"):
        js.solve(prob, EM(), dt=-0.1)
    # (dt = 2.0, longer than the span, is one step over it since the forty-seventh
    # session, as for ODEs: tests/test_sde_long_intervals.py)
    with pytest.raises(InvalidProblemError, match="^seed"):
        js.solve(prob, EM(), dt=0.1, seed=-1)
    with pytest.raises(InvalidProblemError, match="^saveat"):
        js.solve(prob, EM(), dt=0.1, saveat=np.array([0.5, 0.2]))
    with pytest.raises(InvalidProblemError, match="^alg"):
        js.solve(prob, EM)
    gen = js.SDEProblem(zero_f, general_g, np.zeros(2), (0.0, 1.0), noise="general", nbrownian=2)
    with pytest.raises(UnsupportedAlgorithmError, match="noise"):
        js.solve(gen, SRIW1(), dt=0.1)
    with pytest.raises(UnsupportedAlgorithmError, match="noise"):
        js.solve(gen, Milstein(), dt=0.1)
    strat = js.SDEProblem(gbm_f, gbm_g, np.array([1.0]), (0.0, 1.0), p=np.array([0.5, 1.0]),
                          interpretation="stratonovich")
    with pytest.raises(UnsupportedAlgorithmError, match="stratonovich"):
        js.solve(strat, EM(), dt=0.1)
    with pytest.raises(UnsupportedAlgorithmError, match="ito"):
        js.solve(prob, EulerHeun(), dt=0.1)
    grid = js.Grid((8,))
    gp = js.SDEProblem(js.Laplacian(grid), ou_g, np.zeros(8), (0.0, 1.0), p=np.array([1.0, 0.1]))
    with pytest.raises(UnsupportedAlgorithmError, match="^f"):
        js.solve(gp, EM(), dt=0.1)
    ode = js.ODEProblem(ou_f, np.array([1.0]), (0.0, 1.0), p=np.array([1.0, 0.0]))
    with pytest.raises(UnsupportedAlgorithmError):
        js.solve(js.EnsembleProblem(ode), EM(), trajectories=2, dt=0.1)
    with pytest.raises(InvalidProblemError, match="^trajectories"):
        ensemble_moments(js.EnsembleProblem(prob), EM(), trajectories=1, dt=0.1)
    with pytest.raises(InvalidProblemError, match="^noise"):
        reverse_sde(vp_f, vp_g, vp_score, noise="general")


# ----------------------------------------------------------------------------- failures
def test_blowup_returns_unstable_with_path_so_far():
    prob = js.SDEProblem(blowup_f, ou_g, np.array([2.0]), (0.0, 1.0), p=np.array([0.0, 0.1]))
    sol = js.solve(prob, EM(), dt=2.0 ** -8, seed=1)
    assert sol.retcode == js.ReturnCode.Unstable
    assert not sol.successful
    assert 1 < sol.t.size < 257 and sol.t[-1] < 1.0
    assert np.all(np.isfinite(sol.u))
    ens = js.solve(js.EnsembleProblem(prob), EM(), trajectories=2, dt=2.0 ** -8)
    assert ens.retcode == js.ReturnCode.Unstable
    assert np.isnan(ens.u[0, -1, 0]) and np.isfinite(ens.u[0, 0, 0])


def test_maxiters():
    sol = js.solve(_gbm(), EM(), dt=2.0 ** -6, maxiters=10)
    assert sol.retcode == js.ReturnCode.MaxIters
    assert sol.t.size == 11


def test_algorithm_metadata():
    assert (EM().strong_order, Milstein().strong_order, SRIW1().strong_order,
            SRA1().strong_order) == (0.5, 1.0, 1.5, 1.5)
    assert isinstance(SRIW1(), js.SDEAlgorithm)
    assert SRIW1() == SRIW1() and repr(EM()) == "EM()"


def test_adaptive_sra1_and_scalar_milstein():
    # adaptive SRA1 on additive noise: steps on its own path, accurate on the KP problem
    prob = js.SDEProblem(kp_f, kp_g, np.array([1.0]), (0.0, 1.0), p=np.array([1.0, 0.5]))
    sol = js.solve(prob, SRA1(), rtol=1e-4, atol=1e-4, seed=2, save_noise=True)
    assert sol.retcode == js.ReturnCode.Success and sol.stats.naccept > 5
    exact = (1.0 + 0.5 * (sol.t + sol.W[:, 0])) / np.sqrt(1.0 + sol.t)
    assert np.max(np.abs(sol.u[:, 0] - exact)) < 1e-3
    # Milstein, scalar noise, complex-step directional derivative
    sp = js.SDEProblem(gbm2_f, gbm2_g, np.array([1.0, 2.0]), (0.0, 1.0), noise="scalar")
    mu, s = np.array([0.5, -0.3]), np.array([0.4, 0.8])
    errs = []
    for m in (6, 10):
        sol = js.solve(sp, Milstein(), dt=2.0 ** -m, seed=4, save_noise=True)
        exact = np.array([1.0, 2.0]) * np.exp((mu - 0.5 * s ** 2) * sol.t[:, None] + s * sol.W)
        errs.append(np.max(np.abs(sol.u - exact)))
    assert errs[1] < errs[0] / 8


def test_sde_solution_hdf5_roundtrip(tmp_path):
    pytest.importorskip("h5py")
    sol = js.solve(_gbm(), EM(), dt=2.0 ** -5, seed=1, save_noise=True)
    path = tmp_path / "sde.h5"
    sol.to_hdf5(path)
    back = js.load(path)
    np.testing.assert_array_equal(back.u, sol.u)
    np.testing.assert_array_equal(back.W, sol.W)
    assert back.retcode == sol.retcode


def test_unsupported_options_are_named():
    with pytest.raises(UnsupportedAlgorithmError, match="^tstops"):
        js.solve(_gbm(), EM(), dt=0.1, tstops=np.array([0.5]))
