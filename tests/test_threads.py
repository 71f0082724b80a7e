"""The parallel kernels give the same results on one Numba thread and on two.

The test workers launch their kernels on ``cores // workers`` threads (tests/conftest.py:
one each on a two-core machine, so that two workers do not oversubscribe the cores); the
kernels' multi-threaded paths are checked here, each against its own one-thread run, bit
for bit: stencils and their transposes, multigrid-preconditioned CG (its chunked
reductions), the explicit ensembles (one trajectory per thread and lockstep), their
gradients, the stiff ensembles and their gradients, the SDE ensemble gradients and the
large-grid explicit loop.  (The blas reductions, the fused CG kernels and the SDE
ensembles have their own thread tests: tests/test_blas.py, test_cg_fused.py,
test_audit_sde_orders.py.)"""
import numba
import numpy as np
import pytest

import jitsolve as js
from ensemble_modes import bits, solve_mode
from test_erk_large_stencil import _split as split_problem
from test_ode_explicit import LV
from test_stiff_ensemble_gradient import KW as VDP_KW
from test_stiff_ensemble_gradient import PROB as VDP
from test_stiff_ensemble_gradient import PS as VDP_PS
from test_stiff_ensemble_gradient import TD as VDP_T
from test_stiff_ensemble_gradient import U0S as VDP_U0S

pytestmark = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                reason="Numba's pool has one thread (NUMBA_NUM_THREADS)")


def on_threads(fn, counts=(1, 2)):
    """``[fn() on 1 thread, fn() on 2 threads]``; the thread count restored after."""
    old = numba.get_num_threads()
    out = []
    try:
        for t in counts:
            numba.set_num_threads(t)
            out.append(fn())
    finally:
        numba.set_num_threads(old)
    return out


def assert_same_bits(one, two):
    assert len(one) == len(two)
    for x, y in zip(one, two):
        np.testing.assert_array_equal(bits(np.asarray(x)), bits(np.asarray(y)))


def ou_f(du, u, p, t):
    du[0] = -p[0] * u[0]
    du[1] = -p[0] * u[1] + u[0]


def ou_g(gu, u, p, t):
    gu[0] = p[1]
    gu[1] = p[1] * u[0]


# the problems of other test files, so that their kernels' compiles serve these too
N_TRAJ = 24
T_DATA = np.array([0.5, 1.0])


def _lotka_ensemble():
    rng = np.random.default_rng(0)
    u0s = 1 + rng.random((N_TRAJ, 2))
    ps = LV.p * (1 + 0.1 * rng.random((N_TRAJ, 4)))
    return js.EnsembleProblem(js.remake(LV, tspan=(0.0, 1.0)), u0s=u0s, ps=ps)


@pytest.mark.parametrize("shape", [(96, 80), (20, 18, 16)])
def test_stencils_and_their_transposes(shape):
    rng = np.random.default_rng(1)
    g = js.Grid(shape, bc=js.Dirichlet(0.0))
    kappa = rng.uniform(0.5, 1.5, shape)
    vel = [rng.uniform(-1, 1, shape) for _ in shape]
    ops = [js.Laplacian(g), js.Diffusion(g, kappa), js.Advection(g, vel)]
    u, w = rng.standard_normal(shape), rng.standard_normal(shape)

    def run():
        out = []
        for A in ops:
            out += [A.apply(u), A.T.apply(w)]
        out.append(ops[1].param_vjp(u, w))
        return out

    assert_same_bits(*on_threads(run))


@pytest.mark.parametrize("coarse", ["rediscretised", "galerkin"])
def test_multigrid_preconditioned_cg(coarse):
    rng = np.random.default_rng(2)
    g = js.Grid((128, 96), bc=js.Dirichlet(0.0))
    A = -js.Diffusion(g, np.exp(rng.uniform(-2, 2, g.shape)))
    b = rng.standard_normal(g.shape)

    def run():
        sol = js.solve(js.LinearProblem(A, b), js.CG(js.Multigrid(coarse=coarse)),
                       rtol=1e-10)
        assert sol.retcode == js.ReturnCode.Success
        return [sol.u, sol.iters]

    assert_same_bits(*on_threads(run))


@pytest.mark.parametrize("mode", ["general", "percall"])
def test_explicit_ensembles(mode, monkeypatch):
    ep = _lotka_ensemble()

    def run():
        sol = solve_mode(monkeypatch, mode, ep, js.Tsit5(), N_TRAJ, saveat=T_DATA,
                         rtol=1e-8, atol=1e-8)
        return [sol.u]

    assert_same_bits(*on_threads(run))


def test_explicit_ensemble_gradient():
    ep = _lotka_ensemble()
    loss = js.L2Loss(T_DATA, np.ones((T_DATA.size, 2)))

    def run():
        v, g = js.gradient(ep, js.Tsit5(), loss, wrt=("p", "u0"), trajectories=N_TRAJ,
                           rtol=1e-8, atol=1e-8)
        return [v, g["p"], g["u0"]]

    assert_same_bits(*on_threads(run))


def test_stiff_ensemble_and_its_gradient():
    ep = js.EnsembleProblem(VDP, u0s=VDP_U0S, ps=VDP_PS)
    loss = js.L2Loss(VDP_T, np.random.default_rng(1).normal(size=(VDP_T.size, 2)))

    def run():
        sol = js.solve(ep, js.Rodas5P(), saveat=VDP_T, **VDP_KW)
        v, g = js.gradient(ep, js.Rodas5P(), loss, wrt=("p", "u0"), **VDP_KW)
        return [sol.u, v, g["p"], g["u0"]]

    assert_same_bits(*on_threads(run))


def test_sde_ensemble_gradient():
    rng = np.random.default_rng(4)
    ps = np.array([1.0, 0.3]) * rng.uniform(0.9, 1.1, (N_TRAJ, 2))
    prob = js.SDEProblem(ou_f, ou_g, np.array([1.0, 0.5]), (0.0, 1.0), ps[0])
    ep = js.EnsembleProblem(prob, ps=ps)
    loss = js.L2Loss(T_DATA, np.full((T_DATA.size, 2), 0.5))

    def run():
        v, g = js.gradient(ep, js.EM(), loss, wrt=("p", "u0"), trajectories=N_TRAJ,
                           dt=1 / 64, seed=5)
        return [v, g["p"], g["u0"]]

    assert_same_bits(*on_threads(run))


def test_large_grid_explicit_solve_and_gradient():
    # above PARALLEL_N: the threaded loop with the stencil folded into the stages (and a
    # user f that is itself a prange loop)
    prob, dt = split_problem((192, 192), js.Dirichlet(0.5), 1.0, "laplacian")
    loss = js.L2Loss(np.array([prob.tspan[1]]), np.full((1,) + prob.u0.shape, 0.1))

    def run():
        sol = js.solve(prob, js.RK4(), dt=dt, adaptive=False)
        v, gr = js.gradient(prob, js.RK4(), loss, wrt=("p", "u0"), dt=dt, adaptive=False)
        return [sol.u[-1], v, gr["p"], gr["u0"]]

    assert_same_bits(*on_threads(run))
