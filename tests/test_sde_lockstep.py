"""Lockstep EM ensembles (kernels/cpu/sde_lockstep.py) and the vectorisable normal
generator (kernels/cpu/philox.py): each is checked bit for bit against the general,
one-path-at-a-time code it replaces, which the rest of tests/test_sde.py checks against
exact solutions and statistics."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import jitsolve as js
from jitsolve.kernels.cpu import sde_lockstep as KL
from jitsolve.kernels.cpu.philox import normal_pairs_lanes, normals, unit_functions
from jitsolve.sde import EM, ensemble_moments
from jitsolve.solvers.sde import driver


def ou_f(du, u, p, t):
    du[0] = -p[0] * u[0]


def ou_g(gu, u, p, t):
    gu[0] = p[1]


def two_f(du, u, p, t):
    du[0] = -p[0] * u[0] + u[1]
    du[1] = np.sin(u[0]) - u[1] * t


def two_g(gu, u, p, t):
    gu[0] = p[1] * u[1]
    gu[1] = 0.3 + 0.1 * u[0]


def two_g_scalar(gu, u, p, t):
    gu[0] = p[1]
    gu[1] = 0.3 * u[0]


def three_f(du, u, p, t):
    for i in range(3):
        du[i] = -p[0] * u[i] + 0.1 * u[(i + 1) % 3]


def three_g(gu, u, p, t):
    for i in range(3):
        gu[i] = p[1] * (1.0 + 0.1 * i)


def _ou(**kw):
    return js.EnsembleProblem(js.SDEProblem(ou_f, ou_g, np.array([1.0]), (0.0, 1.0),
                                            p=np.array([1.0, 0.5])), **kw)


def _both(monkeypatch, run):
    """(lockstep result, general-loop result) of the same call."""
    calls = []
    real = driver._lockstep

    def spy(*a):
        calls.append(real(*a))
        return calls[-1]
    monkeypatch.setattr(driver, "_lockstep", spy)
    a = run()
    assert calls and calls[-1], "the lockstep kernel was not used"
    monkeypatch.setattr(driver, "_lockstep", lambda *a: False)
    b = run()
    monkeypatch.setattr(driver, "_lockstep", real)
    return a, b


CASES = {
    "ou-saveat-noise": (lambda: _ou(), dict(trajectories=130, dt=2.0 ** -10, save_noise=True,
                                            saveat=np.array([0.0, 0.25, 0.5, 1.0]))),
    "diagonal-2d-every-step": (
        lambda: js.EnsembleProblem(js.SDEProblem(two_f, two_g, np.array([1.0, 0.2]), (0.0, 2.0),
                                                 p=np.array([1.0, 0.5]))),
        dict(trajectories=70, dt=2.0 ** -8, save_noise=True)),
    "scalar-backward": (
        lambda: js.EnsembleProblem(js.SDEProblem(two_f, two_g_scalar, np.array([1.0, 0.2]),
                                                 (1.0, -1.0), p=np.array([1.0, 0.5]),
                                                 noise="scalar")),
        dict(trajectories=65, dt=2.0 ** -3, seed=5, save_noise=True)),
    "per-path-u0-p": (lambda: _ou(u0s=np.linspace(-1, 1, 33).reshape(33, 1),
                                  ps=np.column_stack([np.linspace(0.5, 2, 33), np.full(33, 0.3)])),
                      dict(trajectories=33, dt=0.5, saveat=0.5, seed=3)),
    "one-step": (lambda: _ou(), dict(trajectories=3, dt=1.0)),
    "unstable": (lambda: js.EnsembleProblem(js.SDEProblem(ou_f, ou_g, np.array([1.0]), (0.0, 1.0),
                                                          p=np.array([-400.0, 1e300]))),
                 dict(trajectories=10, dt=2.0 ** -7)),
    # dt divides the span into 1,000 steps: a tree of 1,024 steps, the grid stops at 1,000
    "dt-1e-3-saveat": (lambda: _ou(), dict(trajectories=40, dt=1e-3, save_noise=True,
                                           saveat=np.array([0.0, 0.1, 0.999, 1.0]))),
    "dt-0.01-every-step-2d": (
        lambda: js.EnsembleProblem(js.SDEProblem(two_f, two_g, np.array([1.0, 0.2]), (0.0, 2.0),
                                                 p=np.array([1.0, 0.5]))),
        dict(trajectories=37, dt=0.01, save_noise=True)),
    # dt does not divide the span: t1 inside the last step, off the tree's nodes
    "dt-0.3-t1-off-nodes-backward": (
        lambda: js.EnsembleProblem(js.SDEProblem(two_f, two_g_scalar, np.array([1.0, 0.2]),
                                                 (1.0, -1.0), p=np.array([1.0, 0.5]),
                                                 noise="scalar")),
        dict(trajectories=9, dt=0.3, seed=2, save_noise=True)),
    "dt-0.07-three-components": (
        lambda: js.EnsembleProblem(js.SDEProblem(three_f, three_g, np.array([1.0, 0.2, -0.4]),
                                                 (0.0, 1.0), p=np.array([1.0, 0.5]))),
        dict(trajectories=300, dt=0.07, seed=11, save_noise=True)),
}


@pytest.mark.parametrize("batched", [False, True], ids=["per-path-calls", "batch-calls"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_lockstep_paths_bit_identical_to_general_loop(monkeypatch, name, batched):
    make, kw = CASES[name]
    ep = make()
    monkeypatch.setattr(driver, "BATCH_MIN_WORK", 0 if batched else 1 << 62)
    a, b = _both(monkeypatch, lambda: js.solve(ep, EM(), **kw))
    np.testing.assert_array_equal(a.t, b.t)
    np.testing.assert_array_equal(a.u, b.u)
    if kw.get("save_noise"):
        np.testing.assert_array_equal(a.W, b.W)
    assert a.retcodes == b.retcodes and a.stats == b.stats
    if name == "unstable":
        assert all(r is js.ReturnCode.Unstable for r in a.retcodes)
        assert np.isfinite(a.u[:, 0]).all() and np.isnan(a.u[:, -1]).all()
    else:
        steps = math.ceil(abs(ep.prob.tspan[1] - ep.prob.tspan[0]) / kw["dt"] * (1 - 1e-12))
        assert a.stats.naccept == kw["trajectories"] * steps
        assert a.t[-1] == ep.prob.tspan[1]


@pytest.mark.parametrize("block", [100, 7])
def test_lockstep_moments_bit_identical_to_general_loop(monkeypatch, block):
    ep = _ou()
    monkeypatch.setattr(driver, "BATCH_MIN_WORK", 0 if block == 7 else 1 << 62)
    a, b = _both(monkeypatch, lambda: ensemble_moments(ep, EM(), trajectories=1000, dt=2.0 ** -8,
                                                       block=block, saveat=0.25))
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.var, b.var)
    assert a.n == b.n == 1000 and a.stats == b.stats
    # OU: mean e^-t, variance sigma^2 (1 - e^-2t) / 2, within 5 standard errors
    t = a.t
    se = np.sqrt(0.125 * (1 - np.exp(-2 * t)) / 1000) + 1e-12
    assert np.all(np.abs(a.mean[:, 0] - np.exp(-t)) < 5 * se + 0.01)


def test_batch_cfunc_evaluates_every_row():
    from jitsolve.functions import compile_batch_cfunc
    fb = compile_batch_cfunc(two_f, "f")
    U = np.arange(10.0).reshape(5, 2) / 7
    P = np.column_stack([np.linspace(1, 2, 8), np.zeros(8)])
    DU = np.full((5, 2), np.nan)
    import numba

    @numba.njit
    def call(fb, DU, U, P, t, i0, nl):
        fb(DU, U, P, t, i0, nl)
    call(fb, DU, U, P, 0.3, 2, 4)
    for l in range(4):
        ref = np.empty(2)
        two_f(ref, U[l], P[2 + l], 0.3)
        np.testing.assert_array_equal(DU[l], ref)
    assert np.isnan(DU[4]).all()                  # rows past nl untouched
    assert compile_batch_cfunc(two_f, "f") is fb   # one compile per function and process


def test_lockstep_not_used_off_its_domain(monkeypatch):
    """Off-grid saves, general noise, other methods and short ``maxiters`` take the
    general loop; any fixed step with saves on its grid takes the lockstep kernels."""
    mod = EM()._mod()
    for dt in (0.1, 0.3, 1e-3):
        assert driver._lockstep(mod, driver.schedule((0.0, 1.0), dt, False, None), "scalar", 10 ** 6)
    sch = driver.schedule((0.0, 1.0), 0.1, False, np.array([0.25]))
    assert not driver._lockstep(mod, sch, "diagonal", 10 ** 6)
    sch = driver.schedule((0.0, 1.0), 2.0 ** -4, False, np.array([0.3]))
    assert not driver._lockstep(mod, sch, "diagonal", 10 ** 6)
    sch = driver.schedule((0.0, 1.0), 2.0 ** -4, False, None)
    assert driver._lockstep(mod, sch, "diagonal", 10 ** 6)
    assert not driver._lockstep(mod, sch, "general", 10 ** 6)
    assert not driver._lockstep(mod, sch, "diagonal", 8)       # maxiters below the grid
    assert not driver._lockstep(js.SRIW1()._mod(), sch, "diagonal", 10 ** 6)
    assert KL.LANES >= 8 and KL.MAX_LEVELS >= 20


@settings(max_examples=30, deadline=None)
@given(xs=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12), m=st.integers(1, 3),
       maxdepth=st.integers(1, 50), seed=st.integers(0, 2 ** 63 - 1),
       traj0=st.integers(0, 2 ** 32 - 8))
def test_shared_walk_bit_identical_to_tree_query(xs, m, maxdepth, seed, traj0):
    """The batch's shared tree walk (t1 off the nodes) gives every lane its own path's
    ``tree_query`` values: increasing times, on and off the nodes, any depth."""
    from jitsolve.kernels.cpu import sde as K
    xs = np.array(sorted(set(xs + [0.5, 0.75])))
    L = 5
    out = np.empty((m, xs.size, L))
    KL.walk_sample(xs, maxdepth, np.uint64(seed), np.uint64(traj0), m, L, out)
    for l in range(L):
        ref = np.empty((xs.size, m))
        K.tree_sample(xs, maxdepth, np.uint64(seed), np.uint64(traj0 + l),
                      np.arange(m, dtype=np.int64), ref)
        np.testing.assert_array_equal(out[:, :, l].T, ref)
    assert np.all(np.isfinite(out)) and np.all(out[:, xs == 0.0] == 0.0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 63 - 1), traj0=st.integers(0, 2 ** 32 - 1),
       n=st.integers(0, 2 ** 62), block=st.integers(0, 2 ** 24 - 1), stream=st.integers(0, 255))
def test_lane_normals_bit_identical_to_scalar(seed, traj0, n, block, stream):
    L = 19
    z0 = np.empty(L)
    z1 = np.empty(L)
    normal_pairs_lanes(np.uint64(seed), np.uint64(traj0), np.int64(n), np.int64(block),
                       np.int64(stream), z0, z1)
    for l in (0, 7, L - 1):
        tr = (traj0 + l) % 2 ** 32
        ref = normals(seed, tr, np.array([n]), comp=2 * block, stream=stream)[0]
        ref1 = normals(seed, tr, np.array([n]), comp=2 * block + 1, stream=stream)[0]
        assert z0[l] == ref and z1[l] == ref1


def test_polynomial_log_sin_cos_match_libm():
    rng = np.random.default_rng(0)
    x = np.concatenate([(np.arange(1 << 16) + 0.5) / (1 << 16), rng.random(1 << 16),
                        [2.0 ** -54, 0.5, 0.25, 1 - 2.0 ** -53]])
    lg, c, s = unit_functions(x)
    assert np.max(np.abs(lg - np.log(x)) / np.abs(np.log(x))) < 5e-16
    assert np.max(np.abs(c - np.cos(2 * np.pi * x))) < 2e-15
    assert np.max(np.abs(s - np.sin(2 * np.pi * x))) < 2e-15
