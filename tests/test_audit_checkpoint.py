"""Audit of binomial checkpointing (Revolve): the schedule against Griewank-Walther's
optimum (property-tested), edge cases and refusals, and ``DiscreteAdjoint(checkpoints=C)``
through the public API: bitwise equal to ``"all"`` for every driver, the HDF5 store
holding at most ``C`` states, huge and deep ``C``, recomputation counts."""
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import jitsolve as js
from jitsolve.adjoint.checkpoint import (beta, binomial_reverse, record_schedule,
                                         repetitions, snapshot_slots)
from jitsolve.errors import InvalidProblemError, UnsupportedAlgorithmError


def _simulate(n, c):
    """Run the schedule against a checker; returns (reversed order, recomputed steps,
    most snapshots held, most recomputations of one step, returned count)."""
    held, cur, order = [], [0], []
    fw, most = [0], [0]
    diff = np.zeros(n + 1, dtype=np.int64)

    def advance(i0, i1):
        assert cur[0] == i0 and i1 > i0
        diff[i0] += 1
        diff[i1] -= 1
        fw[0] += i1 - i0
        cur[0] = i1

    def reverse_step(i):
        assert cur[0] == i
        assert not order or order[-1] == i + 1
        order.append(i)
        cur[0] = None

    def take(i):
        assert cur[0] == i and (not held or held[-1] < i)
        held.append(i)
        most[0] = max(most[0], len(held))

    def restore(i):
        assert i in held
        while held[-1] != i:
            held.pop()
        cur[0] = i

    nre = binomial_reverse(n, c, advance, reverse_step, take, restore)
    per_step = np.cumsum(diff)[:n]
    return order, fw[0], most[0], int(per_step.max()) if n else 0, nre


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 2000), c=st.integers(1, 40))
def test_schedule_is_griewank_walther_optimal(n, c):
    order, fw, most, per_step, nre = _simulate(n, c)
    t = repetitions(n, c)
    assert beta(c, t) >= n and (t == 0 or beta(c, t - 1) < n)
    assert order == list(range(n - 1, -1, -1))
    assert most <= c                              # u0 counts as one of the c snapshots
    assert fw == nre == t * n - beta(c + 1, t - 1)
    assert per_step <= t


def test_schedule_table_values():
    # Griewank & Walther's table: c = 1 is n (n - 1) / 2, c >= n stores every state
    assert _simulate(10, 1)[1] == 45 and _simulate(10, 1)[2] == 1
    assert _simulate(1000, 16)[1] == 2860
    assert _simulate(100, 5)[1] == 316
    assert _simulate(2000, 8)[1:4] == (6 * 2000 - beta(9, 5), 8, 6)
    for c in (20, 21, 500):
        order, fw, most, per_step, _ = _simulate(20, c)
        assert (fw, most, per_step) == (19, 20, 1)


def test_schedule_edge_cases():
    calls = []
    rec = [lambda *a: calls.append(a)] * 4
    assert binomial_reverse(0, 3, *rec) == 0 and calls == []
    ops, nre = record_schedule(1, 1)
    assert nre == 0 and ops.tolist() == [[2, 0, 0], [1, 0, 0]]
    ops, nre = record_schedule(0, 5)
    assert nre == 0 and ops.shape == (0, 3)
    assert [snapshot_slots(10, c) for c in (1, 9, 10, 11, 10 ** 30)] == [1, 9, 10, 10, 10]
    assert snapshot_slots(0, 4) == 1
    assert repetitions(1, 0) == 0 and repetitions(7, 1) == 6


@pytest.mark.parametrize("bad", [0, -1, 2.5, "foo", True, None, np.float64(3.0)])
def test_schedule_refuses_bad_checkpoints(bad):
    rec = [lambda *a: None] * 4
    with pytest.raises(InvalidProblemError, match="checkpoints"):
        binomial_reverse(5, bad, *rec)
    with pytest.raises(InvalidProblemError, match="checkpoints"):
        record_schedule(5, bad)


def test_schedule_refuses_bad_n_and_no_endless_loop():
    with pytest.raises(InvalidProblemError, match="^n:"):
        binomial_reverse(-1, 3, *[lambda *a: None] * 4)
    with pytest.raises(InvalidProblemError, match="checkpoints"):
        repetitions(5, 0)           # used to loop forever (beta(0, t) = 1)


def test_schedule_many_snapshots_no_recursion_error():
    # the recursion on the right part was as deep as min(C, N): C = N = 1500 overflowed
    # Python's stack (RecursionError) before the explicit stack
    for n, c in ((3000, 3000), (3000, 2500), (5000, 64)):
        ops, nre = record_schedule(n, c)
        t = repetitions(n, c)
        assert nre == t * n - beta(c + 1, t - 1)
        assert (ops[:, 0] == 1).sum() == n


# --------------------------------------------------------------------------------------
# through the public API

def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


def vdp(du, u, p, t):
    du[0] = u[1]
    du[1] = p[0] * ((1.0 - u[0] * u[0]) * u[1]) - u[0]


def reaction(du, u, p, t):
    for i in range(u.size):
        du[i] = p[0] * (u[i] - u[i] ** 3) + p[1] * np.sin(3.0 * t)


LV = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 5.0),
                   p=np.array([1.5, 1.0, 3.0, 1.0]))
TD = np.linspace(0.0, 5.0, 11)
LOSS = js.L2Loss(TD, np.ones((11, 2)))
VDP = js.ODEProblem(vdp, np.array([2.0, 0.0]), (0.0, 6.0), p=np.array([5.0]))
TV = np.linspace(0.5, 6.0, 12)
LV_LOSS = js.L2Loss(TV, np.zeros((12, 2)))


def _variants(tmp_path):
    return [js.DiscreteAdjoint(checkpoints=1), js.DiscreteAdjoint(checkpoints=2),
            js.DiscreteAdjoint(checkpoints=7), js.DiscreteAdjoint(checkpoints=10 ** 6),
            js.DiscreteAdjoint(checkpoints=3, store=js.HDF5Store(tmp_path / "ck.h5"))]


def _assert_bitwise(prob, alg, loss, tmp_path, wrt=("p", "u0"), **kw):
    va, ga = js.gradient(prob, alg, loss, wrt=wrt, **kw)
    assert all(np.all(np.isfinite(ga[k])) and np.any(ga[k] != 0) for k in ga)
    for sa in _variants(tmp_path):
        vb, gb = js.gradient(prob, alg, loss, wrt=wrt, sensealg=sa, **kw)
        assert vb == va
        for k in ga:
            assert np.array_equal(ga[k], gb[k]), (sa, k, ga[k], gb[k])
    return ga


@pytest.mark.parametrize("alg", [js.Tsit5(), js.Rodas5P(), js.KenCarp4()],
                         ids=["Tsit5", "Rodas5P", "KenCarp4"])
def test_adaptive_with_rejections_replays_the_accepted_steps(alg, tmp_path):
    kw = dict(rtol=1e-4, atol=1e-6)
    sol = js.solve(VDP, alg, saveat=TV, **kw)
    assert sol.stats.nreject >= 3            # rejected steps inside recomputed segments
    g = _assert_bitwise(VDP, alg, LV_LOSS, tmp_path, **kw)
    # the gradient of the held step sequence: d/dp about -6.5 (checked against FD in
    # test_adjoint / test_stiff_adjoint); here only that it is the same for every schedule
    assert -7.0 < g["p"][0] < -6.0


def test_rk4_fixed_and_recomputation_counts(tmp_path):
    from jitsolve.sensitivity import _ode_discrete_adjoint
    _assert_bitwise(LV, js.RK4(), LOSS, tmp_path, dt=0.01)
    N = 500
    for C in (1, 3, 8, 499, 500, 10 ** 30):
        _, _, info = _ode_discrete_adjoint(LV, js.RK4(), LOSS, ("p",),
                                           js.DiscreteAdjoint(checkpoints=C), dict(dt=0.01))
        c = min(C, N)
        t = repetitions(N, c)
        assert info["naccept"] == N
        assert info["nrecompute"] == t * N - beta(c + 1, t - 1)
    assert t == 1 and info["nrecompute"] == N - 1


def test_many_checkpoints_long_solve(tmp_path):
    # 1500 steps, C = 1500: RecursionError before; also a C far above nsteps, which
    # the compiled executors used to allocate (C + 2) x n for (MemoryError at 1e12)
    kw = dict(dt=5.0 / 1500)
    _, ga = js.gradient(LV, js.RK4(), LOSS, wrt="p", **kw)
    for C in (1500, 10 ** 12, 10 ** 30):
        _, gb = js.gradient(LV, js.RK4(), LOSS, wrt="p",
                            sensealg=js.DiscreteAdjoint(checkpoints=C), **kw)
        assert np.array_equal(ga["p"], gb["p"])
    for alg in (js.Rodas5P(), js.KenCarp4()):
        _, ga = js.gradient(VDP, alg, LV_LOSS, wrt="p", rtol=1e-4, atol=1e-6)
        _, gb = js.gradient(VDP, alg, LV_LOSS, wrt="p", rtol=1e-4, atol=1e-6,
                            sensealg=js.DiscreteAdjoint(checkpoints=10 ** 30))
        assert np.array_equal(ga["p"], gb["p"])


def test_etdrk4_checkpoints_bitwise(tmp_path):
    g = js.Grid((6, 5), bc=js.Dirichlet(0.0))
    X, Y = g.mesh()
    prob = js.SplitODEProblem(0.05 * js.Laplacian(g), reaction,
                              np.sin(np.pi * X) * np.cos(np.pi * Y), (0.0, 0.6),
                              p=np.array([1.5, 0.3]))
    T = np.array([0.0, 0.2, 0.45, 0.6])
    loss = js.L2Loss(T, np.random.default_rng(0).standard_normal((4,) + g.shape))
    _assert_bitwise(prob, js.ETDRK4(), loss, tmp_path, dt=0.02)


def test_sde_em_checkpoints_bitwise(tmp_path):
    def f(du, u, p, t):
        du[0] = p[0] * u[0] - u[0] * u[1]
        du[1] = -p[1] * u[1] + u[0] * u[1]

    def g(du, u, p, t):
        du[0] = p[2] * u[0]
        du[1] = p[2] * u[1]
    prob = js.SDEProblem(f, g, np.array([1.0, 0.5]), (0.0, 1.0),
                         p=np.array([1.0, 1.0, 0.2]))
    loss = js.L2Loss(np.array([0.25, 0.5, 1.0]), np.ones((3, 2)))
    _assert_bitwise(prob, js.EM(), loss, tmp_path, dt=2.0 ** -7, seed=3)


def test_ensemble_checkpoints_bitwise(tmp_path):
    ep = js.EnsembleProblem(js.remake(LV, tspan=(0.0, 2.0)),
                            u0s=np.array([[1.0, 1.0], [1.2, 0.8], [0.9, 1.1]]))
    loss = js.L2Loss(np.array([1.0, 2.0]), np.ones((2, 2)))
    kw = dict(wrt=("p", "u0"), trajectories=3, rtol=1e-6, atol=1e-6)
    va, ga = js.gradient(ep, js.Tsit5(), loss, **kw)
    for sa in _variants(tmp_path)[:2] + _variants(tmp_path)[-1:]:
        vb, gb = js.gradient(ep, js.Tsit5(), loss, sensealg=sa, **kw)
        assert vb == va and all(np.array_equal(ga[k], gb[k]) for k in ga)


class _CountingStore(js.HDF5Store):
    """An HDF5 store that records how many datasets its file held at most."""

    def __init__(self, path):
        super().__init__(path)
        self.most = 0
        self.puts = 0

    def put(self, i, u):
        super().put(i, u)
        self.puts += 1
        self.most = max(self.most, len(self._file().keys()))


@pytest.mark.parametrize("C", [1, 2, 3, 8])
def test_hdf5_store_holds_at_most_C_states(C, tmp_path):
    _, ga = js.gradient(LV, js.RK4(), LOSS, wrt=("p", "u0"), dt=0.05)
    store = _CountingStore(tmp_path / "ck.h5")
    _, gb = js.gradient(LV, js.RK4(), LOSS, wrt=("p", "u0"), dt=0.05,
                        sensealg=js.DiscreteAdjoint(checkpoints=C, store=store))
    assert np.array_equal(ga["p"], gb["p"]) and np.array_equal(ga["u0"], gb["u0"])
    assert store.most == C              # was C + 1 (u0 not counted) before
    if C == 1:
        assert store.puts == 1          # every step from u0; was one write per step
    assert not os.path.exists(store.path)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "foo", True, None, "ALL", 3.0])
def test_discrete_adjoint_refuses_bad_checkpoints(bad):
    with pytest.raises(InvalidProblemError, match="^checkpoints"):
        js.DiscreteAdjoint(checkpoints=bad)


def test_checkpoints_changed_after_construction_is_refused():
    sa = js.DiscreteAdjoint(checkpoints=3)
    sa.checkpoints = 0
    for alg, kw in ((js.RK4(), dict(dt=0.1)), (js.Rodas5P(), {})):
        with pytest.raises(InvalidProblemError, match="^checkpoints"):
            js.gradient(LV, alg, LOSS, wrt="p", sensealg=sa, **kw)


def test_callbacks_with_checkpoints_are_refused():
    cb = js.ContinuousCallback(lambda u, t, p: u[0] - 0.5, terminate=True)
    for alg in (js.Tsit5(), js.Rodas5P()):
        with pytest.raises(UnsupportedAlgorithmError, match="callback"):
            js.gradient(LV, alg, LOSS, wrt="p", callback=cb,
                        sensealg=js.DiscreteAdjoint(checkpoints=3))
