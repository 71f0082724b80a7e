"""Heat equation with a reaction term, ``SplitODEProblem(Laplacian, reaction)`` with a
diagonal ``jac_sparsity``: the discrete adjoint against a hand-written reverse sweep and
central differences, and the large-state kernels (``kernels/cpu/erk_large.py``) against
the general loop."""
import numpy as np
import pytest
import scipy.sparse as sp
from numba import njit, prange

import jitsolve as js


def reaction(du, u, p, t):
    for i in range(u.size):
        x = u[i]
        du[i] = p[0] * (x - x * x * x)


@njit(parallel=True)
def reaction_par(du, u, p, t):
    for i in prange(u.size):
        x = u[i]
        du[i] = p[0] * (x - x * x * x)


def _problem(n, nsteps, f, seed=0):
    g = js.Grid((n, n), bc=js.Dirichlet(0.0))
    L = js.Laplacian(g)
    x, y = g.mesh()
    rng = np.random.default_rng(seed)
    u0 = np.sin(np.pi * x) * np.sin(np.pi * y) + 0.2 * rng.standard_normal(g.shape)
    dt = 0.2 * min(g.spacing) ** 2
    T = nsteps * dt
    k = 0.05 / dt                         # a reaction increment of 0.05 (u - u^3) per step
    F = js.ODEFunction(f, jac_sparsity=sp.identity(g.size))
    prob = js.SplitODEProblem(L, F, u0, (0.0, T), np.array([k]))
    d = 0.5 * np.sin(np.pi * x) * np.sin(2 * np.pi * y)
    return prob, L, js.L2Loss([T], d[None]), d, dt, k


def test_split_reaction_gradient_matches_hand_written_adjoint():
    n, N = 32, 20
    prob, L, loss, d, dt, k = _problem(n, N, reaction)
    val, g = js.gradient(prob, js.Euler(), loss, wrt="u0", dt=dt)
    # hand-written: u <- u + dt (L u + k (u - u^3)); lam <- lam + dt (L^T lam + k (1 - 3u^2) lam)
    us = [prob.u0.copy()]
    for _ in range(N):
        u = us[-1]
        us.append(u + dt * (L.apply(u) + k * (u - u * u * u)))
    lam = us[-1] - d
    assert val == pytest.approx(0.5 * np.sum(lam * lam), rel=1e-13)
    for j in range(N - 1, -1, -1):
        lam = lam + dt * (L.T.apply(lam) + k * (1.0 - 3.0 * us[j] ** 2) * lam)
    np.testing.assert_allclose(g["u0"], lam, rtol=0, atol=1e-10 * np.abs(lam).max())
    # central differences of the whole solve in a random direction
    v = np.random.default_rng(1).standard_normal(prob.u0.shape)

    def J(u0):
        s = js.solve(js.remake(prob, u0=u0), js.Euler(), dt=dt, saveat=loss.t_data)
        return loss.value(s.u)
    e = 1e-6
    fd = (J(prob.u0 + e * v) - J(prob.u0 - e * v)) / (2 * e)
    assert np.sum(g["u0"] * v) == pytest.approx(fd, rel=1e-7)


def test_split_reaction_parameter_gradient():
    prob, L, loss, d, dt, k = _problem(16, 10, reaction)
    _, g = js.gradient(prob, js.RK4(), loss, wrt=("p", "u0"), dt=dt)
    _, g2 = js.gradient(prob, js.RK4(), loss, wrt=("p", "u0"), dt=dt,
                        sensealg=js.FiniteDifference(step=1e-4))
    np.testing.assert_allclose(g["p"], g2["p"], rtol=1e-7)


@pytest.mark.parametrize("alg", [js.Euler(), js.RK4(), js.Tsit5()], ids=["Euler", "RK4", "Tsit5"])
def test_large_state_kernels_match_the_general_loop(alg, monkeypatch, tmp_path):
    """192^2 = 36,864 >= PARALLEL_N cells: the threaded loop gives the general loop's
    states bit for bit, the threaded reverse sweep its gradient to rounding, and the
    gradient is bit-for-bit independent of the checkpointing."""
    import jitsolve.adjoint.discrete as D
    import jitsolve.kernels.cpu.erk as K
    n, N = 192, 4
    assert n * n >= K.PARALLEL_N
    prob, L, loss, d, dt, k = _problem(n, N, reaction_par)
    kw = dict(dt=dt, adaptive=False) if alg.adaptive else dict(dt=dt)
    sol = js.solve(prob, alg, saveat=[0.0, N * dt / 2, N * dt], **kw)
    allsol = js.solve(prob, alg, **kw)
    val, g = js.gradient(prob, alg, loss, wrt=("u0", "p"), **kw)
    for sa in (js.DiscreteAdjoint(checkpoints=2),
               js.DiscreteAdjoint(checkpoints=2, store=js.HDF5Store(tmp_path / "ck.h5"))):
        _, gc = js.gradient(prob, alg, loss, wrt=("u0", "p"), sensealg=sa, **kw)
        assert np.array_equal(g["u0"], gc["u0"]) and np.array_equal(g["p"], gc["p"])
    monkeypatch.setattr(K, "PARALLEL_N", 10**12)
    monkeypatch.setattr(D, "PARALLEL_N", 10**12)
    ref = js.solve(prob, alg, saveat=[0.0, N * dt / 2, N * dt], **kw)
    val2, g2 = js.gradient(prob, alg, loss, wrt=("u0", "p"), **kw)
    assert np.array_equal(sol.u, ref.u) and np.array_equal(sol.t, ref.t)
    assert sol.stats.nf == ref.stats.nf and sol.stats.naccept == ref.stats.naccept == N
    assert np.array_equal(allsol.u[[0, N // 2, N]], ref.u) and allsol.t.size == N + 1
    assert val == val2
    # the same derivative; the last stage's transpose acts on lam itself (rounding differs)
    np.testing.assert_allclose(g["u0"], g2["u0"], rtol=0, atol=1e-13 * np.abs(g2["u0"]).max())
    np.testing.assert_allclose(g["p"], g2["p"], rtol=1e-12)    # blocked vs serial sum


def test_large_state_pure_operator_and_unstable_step():
    g = js.Grid((192, 192), bc=js.Dirichlet(0.0))
    L = js.Laplacian(g)
    x, y = g.mesh()
    u0 = np.sin(np.pi * x) * np.sin(np.pi * y)
    dt = 0.2 * min(g.spacing) ** 2
    sol = js.solve(js.ODEProblem(L, u0, (0.0, 3 * dt)), js.RK4(), dt=dt, saveat=[3 * dt])
    lam1 = -(np.pi ** 2) * 2      # the sine mode decays at about exp(-2 pi^2 t)
    assert np.allclose(sol.u[-1], u0 * np.exp(lam1 * 3 * dt), rtol=0, atol=1e-6)
    # forward Euler far beyond its stability limit blows up: Unstable, not garbage
    bad = js.solve(js.ODEProblem(L, u0, (0.0, 4000 * dt)), js.Euler(), dt=4 * dt,
                   saveat=[4000 * dt])
    assert bad.retcode == js.ReturnCode.Unstable
