"""The solvers' work-vector pool (solvers/workspace.py): what it keeps, what it refuses,
and that solves drawing on it return independent, unchanged results."""
import threading

import numpy as np
import pytest

import jitsolve as js
from jitsolve.solvers import workspace as ws

N = (1 << 20) // 8          # float64 entries of the smallest array the pool keeps


@pytest.fixture(autouse=True)
def _empty_pool():
    ws.clear()
    yield
    ws.clear()


def test_take_give_round_trip():
    a = ws.take(N)
    assert a.shape == (N,) and a.dtype == np.float64 and a.flags.c_contiguous
    addr = a.ctypes.data
    ws.give(a)
    assert ws.held_bytes() == a.nbytes
    del a
    b = ws.take(N)
    assert b.ctypes.data == addr and ws.held_bytes() == 0
    c = ws.take(N, np.float32)          # another type: a new array
    assert c.dtype == np.float32 and c.ctypes.data != addr
    z = ws.take_zeros(N)
    assert not z.any()


def test_refuses_what_it_must_not_keep():
    small = ws.take(16)
    ws.give(small)
    assert ws.held_bytes() == 0                         # below MIN_BYTES
    a = ws.take(N)
    v = a.reshape(-1, 8)
    ws.give(a)
    assert ws.held_bytes() == 0                         # a view still refers to it
    del v
    alias = a
    ws.give(a)
    assert ws.held_bytes() == 0                         # two variables refer to it
    del alias
    ws.give(a[::2].copy().reshape(-1, 2))               # 2-D: ignored
    ws.give(a)
    ws.give(a)                                          # twice: kept once
    assert ws.held_bytes() == a.nbytes


def test_cap_drops_the_oldest(monkeypatch):
    monkeypatch.setattr(ws, "MAX_BYTES", 3 * N * 8)
    arrays = [ws.take(N) for _ in range(4)]
    addrs = [a.ctypes.data for a in arrays]
    for i in range(4):
        a = arrays[i]
        arrays[i] = None
        ws.give(a)
        del a
    assert ws.held_bytes() == 3 * N * 8
    kept = {ws.take(N).ctypes.data for _ in range(3)}
    assert kept == set(addrs[1:])


def test_threads_never_share_an_array():
    def work(out):
        for _ in range(200):
            a = ws.take(N)
            out.append(a.ctypes.data)
            a[:4] = threading.get_ident()
            assert a[0] == threading.get_ident()
            ws.give(a)
            del a
    outs = [[] for _ in range(4)]
    ts = [threading.Thread(target=work, args=(o,)) for o in outs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert all(len(o) == 200 for o in outs)


def test_lent_arrays_come_back_only_when_nothing_refers_to_them():
    v = ws.lend(N)
    assert v.shape == (N,) and v.base is not None and ws.held_bytes() == 0
    addr = v.ctypes.data
    w = v.reshape(-1, 8)                     # a view of the lent array outlives it
    del v
    a = ws.take(N)
    assert a.ctypes.data != addr             # still referred to: not taken back
    del w
    b = ws.take(N)
    assert b.ctypes.data == addr             # dropped: taken back
    small = ws.lend(16)
    assert small.base is None and len(ws._lent) == 0
    z = ws.lend_zeros(N, np.float32)
    assert z.dtype == np.float32 and not z.any()


def test_lent_arrays_remembered_are_bounded(monkeypatch):
    monkeypatch.setattr(ws, "MAX_LENT", 2)
    kept = [ws.lend(N) for _ in range(3)]
    first = kept[0].ctypes.data
    assert len(ws._lent) == 2
    del kept
    taken = {ws.take(N).ctypes.data for _ in range(2)}
    assert first not in taken                # forgotten: freed as a plain array


def test_dropped_solutions_give_their_memory_back(rng):
    """A solution leaves the solve as a lent view: once the caller drops it, the pool
    takes its memory back for the next solve (no fresh pages); a solution still held is
    never reused, and later solves leave it unchanged."""
    g = js.Grid((384, 384))
    A = -js.Laplacian(g)
    b = rng.standard_normal(g.shape)

    def pooled():
        with ws._lock:
            ws._reclaim()
            return {a.ctypes.data for a in ws._free}

    for alg, x0 in ((js.CG(js.Multigrid()), None), (js.CG(), 0.5 * b)):
        prob = js.LinearProblem(A, b, x0=x0)
        s1 = js.solve(prob, alg, rtol=1e-8)
        s2 = js.solve(prob, alg, rtol=1e-8)
        a1, a2, u1 = s1.u.ctypes.data, s2.u.ctypes.data, np.array(s1.u, copy=True)
        assert a1 not in pooled() and a2 not in pooled()
        del s1
        assert a1 in pooled() and a2 not in pooled()
        s3 = js.solve(prob, alg, rtol=1e-8)
        assert not np.shares_memory(s2.u, s3.u)
        np.testing.assert_array_equal(s2.u, u1)
        np.testing.assert_array_equal(s3.u, u1)
        del s2, s3
        assert {a1, a2} <= pooled()


def _solvers():
    g = js.Grid((384, 384))
    A = -js.Laplacian(g)
    # (name, algorithm, operator, whether the solver gives its vectors back)
    return g, A, [("cg-grid", js.CG(), A, True), ("cg-jacobi", js.CG(js.Jacobi()), A, True),
                  ("cg-mg", js.CG(js.Multigrid()), A, True),
                  ("bicgstab", js.BiCGSTAB(js.Jacobi()), A, True),
                  ("gmres", js.GMRES(restart=20), A, True),
                  ("fcg", js.FlexibleCG(js.Jacobi(), truncate=2), A, True),
                  ("cg-csr", js.CG(), A.to_csr(), True)]


@pytest.mark.parametrize("case", range(7))
def test_solutions_independent_and_equal_without_the_pool(case, rng, monkeypatch):
    g, _, solvers = _solvers()
    name, alg, A, gives = solvers[case]
    shape = g.shape if isinstance(A, js.GridOperator) else (g.size,)
    b1 = rng.standard_normal(shape)
    b2 = rng.standard_normal(shape)
    kw = dict(rtol=1e-8, maxiter=40)
    s1 = js.solve(js.LinearProblem(A, b1), alg, **kw)
    u1 = np.array(s1.u, copy=True)
    s2 = js.solve(js.LinearProblem(A, b2), alg, **kw)
    s3 = js.solve(js.LinearProblem(A, b1), alg, **kw)
    assert (ws.held_bytes() > 0) == gives, name         # the solves gave vectors back
    assert np.array_equal(s1.u, u1), name               # later solves left it alone
    assert np.array_equal(s3.u, u1), name
    assert not np.shares_memory(s1.u, s2.u) and not np.shares_memory(s1.u, s3.u)
    monkeypatch.setattr(ws, "MIN_BYTES", 1 << 62)       # no pool: fresh arrays
    ws.clear()
    s4 = js.solve(js.LinearProblem(A, b1), alg, **kw)
    assert ws.held_bytes() == 0
    assert np.array_equal(s4.u, u1) and s4.iters == s1.iters and s4.resnorm == s1.resnorm, name
    assert np.array_equal(s4.history, s1.history), name  # (the fused start: the same bits)


def _reaction(du, u, p, t):
    for i in range(u.size):
        x = u[i]
        du[i] = p[0] * (x - x * x * x)


def test_store_all_gradient_reuses_its_state_buffer(rng, monkeypatch):
    """A store-all discrete gradient of a large state (the threaded fixed-step kernels)
    takes its buffer of every state from the pool and gives it back once reversed: the
    next gradient of that size reuses it (no fresh pages) and gives the same bits as
    without the pool and as with checkpoints; the states of a ``solve`` that saves every
    step are the caller's and never pooled."""
    import scipy.sparse as sp

    g = js.Grid((192, 192), bc=js.Dirichlet(0.0))
    h = min(g.spacing)
    dt, nsteps = 0.2 * h * h, 40
    T = nsteps * dt
    F = js.ODEFunction(_reaction, jac_sparsity=sp.identity(g.size, format="csr"))
    u0 = rng.standard_normal(g.shape)
    prob = js.SplitODEProblem(js.Laplacian(g), F, u0, (0.0, T), np.array([0.05 / dt]))
    loss = js.L2Loss([T], 0.5 * rng.standard_normal((1,) + g.shape))
    states_bytes = (nsteps + 1) * g.size * 8

    def grad(**kw):
        return js.gradient(prob, js.Euler(), loss, wrt="u0", dt=dt, **kw)

    sol = js.solve(prob, js.Euler(), dt=dt)             # every step saved: the caller's
    assert sol.u.shape == (nsteps + 1,) + g.shape
    kept = np.array(sol.u, copy=True)
    assert ws.held_bytes() == 0
    v1, g1 = grad()
    assert ws.held_bytes() == states_bytes              # given back
    with ws._lock:
        addr = ws._free[-1].ctypes.data
    v2, g2 = grad()
    assert ws.held_bytes() == states_bytes
    with ws._lock:
        assert ws._free[-1].ctypes.data == addr         # the same buffer again
    assert v1 == v2 and np.array_equal(g1["u0"], g2["u0"])
    v3, g3 = grad(sensealg=js.DiscreteAdjoint(checkpoints=4))
    assert v3 == v1 and np.array_equal(g3["u0"], g1["u0"])
    np.testing.assert_array_equal(sol.u, kept)          # untouched by the gradients
    assert not any(np.shares_memory(sol.u, a) for a in ws._free)
    monkeypatch.setattr(ws, "MIN_BYTES", 1 << 62)       # no pool: fresh arrays
    ws.clear()
    v4, g4 = grad()
    assert ws.held_bytes() == 0
    assert v4 == v1 and np.array_equal(g4["u0"], g1["u0"])
