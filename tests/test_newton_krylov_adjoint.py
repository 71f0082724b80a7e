"""The discrete adjoint of the stiff methods' Newton-Krylov path (grid problems above
``dense_max``): against the dense path's discrete adjoint on the same problem, against
central differences, and its reverse sweep against the exact step matrix of a linear
problem (dense NumPy algebra)."""
import numpy as np
import pytest
import scipy.sparse as sp
from numba import njit

import jitsolve as js
from jitsolve.adjoint.checkpoint import beta, repetitions
from jitsolve.adjoint.newton_krylov import sdirk_krylov_adjoint
from jitsolve.errors import SolveFailedError, UnsupportedAlgorithmError
from jitsolve.solvers.ode.esdirk import solve_sdirk_krylov
from jitsolve.solvers.ode.rosenbrock import stiff_tableau


@njit
def fkpp(du, u, p, t):
    for i in range(u.size):
        du[i] = p[0] * u[i] * (1.0 - u[i]) + p[1] * np.sin(t)


@njit
def fkpp_vjp(out_u, out_p, v, u, p, t):
    # (df/du)^T v and (df/dp)^T v of fkpp
    out_p[0] = 0.0
    out_p[1] = 0.0
    for i in range(u.size):
        out_u[i] = p[0] * (1.0 - 2.0 * u[i]) * v[i]
        out_p[0] += u[i] * (1.0 - u[i]) * v[i]
        out_p[1] += np.sin(t) * v[i]


N = 8
T = 0.3
TT = np.array([0.1, 0.2, T])
P = np.array([2.0, 0.3])
KW = dict(rtol=1e-9, atol=1e-9)


def _problem(bc=None, fun=None, scale=0.05):
    g = js.Grid((N, N), bc=bc if bc is not None else js.Dirichlet(1.0))
    rng = np.random.default_rng(1)
    u0 = rng.uniform(0.0, 1.0, (N, N))
    kappa = rng.uniform(0.5, 1.5, (N, N))
    D = scale * js.Diffusion(g, kappa)
    f = fun if fun is not None else js.ODEFunction(fkpp, jac_sparsity=sp.identity(N * N))
    prob = js.SplitODEProblem(D, f, u0, (0.0, T), P.copy())
    data = np.random.default_rng(2).uniform(0.2, 0.8, (TT.size, N, N))
    return prob, js.L2Loss(TT, data)


@pytest.mark.parametrize("alg,adaptive", [("Kvaerno5", True), ("Kvaerno5", False),
                                          ("ImplicitEuler", False)])
def test_matches_the_dense_path(alg, adaptive):
    # (ImplicitEuler's adaptive steps at rtol 1e-9 would be ~1e5 steps)
    prob, loss = _problem()
    kw = dict(KW) if adaptive else dict(KW, adaptive=False, dt=0.02)
    wrt = ("p", "u0", "kappa")
    A = getattr(js, alg)
    v, g = js.gradient(prob, A(dense_max=20), loss, wrt=wrt, **kw)
    vd, gd = js.gradient(prob, A(), loss, wrt=wrt, **kw)
    assert abs(v - vd) <= 1e-8 * abs(vd)
    for k in wrt:
        assert g[k].shape == gd[k].shape
        err = np.abs(g[k] - gd[k]).max() / np.abs(gd[k]).max()
        assert err < 1e-7, (k, err)
        assert np.abs(gd[k]).max() > 1e-3          # not a zero gradient


def test_kencarp4_imex_matches_the_dense_path_and_central_differences():
    # IMEX: f explicit (its J^T through the explicit tableau), the grid operator implicit
    prob, loss = _problem()
    v, g = js.gradient(prob, js.KenCarp4(dense_max=20), loss, wrt=("p", "u0", "kappa"), **KW)
    vd, gd = js.gradient(prob, js.KenCarp4(), loss, wrt=("p", "u0"), **KW)
    assert abs(v - vd) <= 1e-8 * abs(vd)
    for k in ("p", "u0"):
        assert np.abs(g[k] - gd[k]).max() < 1e-7 * np.abs(gd[k]).max(), k
    # kappa (not differentiated through the dense IMEX path): central differences along a
    # random direction, with fixed steps so the step sequence does not move
    kw = dict(KW, adaptive=False, dt=0.01)
    v, g = js.gradient(prob, js.KenCarp4(dense_max=20), loss, wrt="kappa", **kw)
    d = np.random.default_rng(5).standard_normal((N, N))
    kappa = prob.L.op.kappa.copy()

    def J(e):
        pr = js.SplitODEProblem(0.05 * js.Diffusion(prob.L.grid, kappa + e * d), prob.f,
                                prob.u0, prob.tspan, prob.p)
        return loss.value(js.solve(pr, js.KenCarp4(dense_max=20), saveat=TT, **kw).u)
    e = 1e-5
    fd = (J(e) - J(-e)) / (2 * e)
    assert abs(fd - np.sum(g["kappa"] * d)) < 1e-6 * abs(fd), (fd, np.sum(g["kappa"] * d))


def test_user_vjp_gives_the_same_gradient():
    prob, loss = _problem()
    pv, _ = _problem(fun=js.ODEFunction(fkpp, vjp=fkpp_vjp))
    a = js.gradient(prob, js.Kvaerno5(dense_max=20), loss, wrt=("p", "u0"), **KW)[1]
    b = js.gradient(pv, js.Kvaerno5(dense_max=20), loss, wrt=("p", "u0"), **KW)[1]
    for k in ("p", "u0"):
        np.testing.assert_allclose(b[k], a[k], rtol=1e-9, atol=1e-12 * np.abs(a[k]).max())


@pytest.mark.parametrize("bc", [js.Neumann(), js.Periodic()])
def test_other_boundaries_against_central_differences(bc):
    prob, loss = _problem(bc=bc)
    kw = dict(KW, adaptive=False, dt=0.015)
    v, g = js.gradient(prob, js.Kvaerno5(dense_max=20), loss, wrt="u0", **kw)
    d = np.random.default_rng(7).standard_normal((N, N))

    def J(e):
        return loss.value(js.solve(js.remake(prob, u0=prob.u0 + e * d),
                                   js.Kvaerno5(dense_max=20), saveat=TT, **kw).u)
    e = 1e-5
    fd = (J(e) - J(-e)) / (2 * e)
    assert abs(fd - np.sum(g["u0"] * d)) < 1e-6 * abs(fd)


@pytest.mark.parametrize("name", ["kvaerno5", "kencarp4", "implicit_euler"])
def test_reverse_sweep_is_the_transpose_of_the_exact_step_matrix(name):
    # u' = A u (a 1-D Diffusion matrix): with fixed steps every stage solve is linear and
    # the step is the matrix R = I + h b^T (I - h A_I x A)^{-1}-recursion; built here
    # densely, and the sweep's lam must be (R^N)^T c (the dot-product test against it)
    n = 12
    g = js.Grid((n,), bc=js.Dirichlet(0.0))
    Dop = 3.0 * js.Diffusion(g, np.linspace(0.5, 2.0, n))
    A = Dop.to_csr().toarray()
    tab = stiff_tableau(name, False)
    AI, C, B = tab[2], tab[4], tab[6]
    s = B.size
    h, nsteps = 0.05, 6

    def lin(du, u, t):
        du[:] = A @ u

    def jv(v, out):
        out[:] = A @ v
        return out
    u0 = np.random.default_rng(3).standard_normal(n)
    raw = solve_sdirk_krylov(name, None, lin, jv, u0, 0.0, h * nsteps, adaptive=False, dt=h,
                             rtol=1e-12, atol=1e-14, record=True)
    assert raw["retcode"] == "Success" and raw["stages"].shape == (nsteps, s, n)
    # the exact step matrix
    Ks = []
    I = np.eye(n)
    for i in range(s):
        base = I + h * sum(AI[i, j] * Ks[j] for j in range(i)) if i else I.copy()
        Z = np.linalg.solve(I - h * AI[i, i] * A, base) if AI[i, i] else base
        Ks.append(A @ Z)
    R = I + h * sum(B[i] * Ks[i] for i in range(s))
    RN = np.linalg.matrix_power(R, nsteps)
    np.testing.assert_allclose(raw["u"][-1], RN @ u0, rtol=1e-9, atol=1e-10)
    c = np.random.default_rng(4).standard_normal(n)
    save_after = -np.ones(nsteps, dtype=np.int64)
    save_after[-1] = 0

    def jtv(z, t, v, out):
        out[:] = A.T @ v
    lam, info = sdirk_krylov_adjoint(tab, raw["steps_t"], raw["steps_h"], raw["stages"],
                                     c[None, :], save_after, None, jtv)
    assert info["failed"] is None
    np.testing.assert_allclose(lam, RN.T @ c, rtol=1e-9, atol=1e-11)
    # dot-product form: <c, R^N v> = <lam, v>
    v = np.random.default_rng(6).standard_normal(n)
    assert abs(c @ (RN @ v) - lam @ v) < 1e-10 * (abs(lam) @ abs(v))


def test_check_gradient_passes_through_the_krylov_path():
    prob, loss = _problem()
    rep = js.check_gradient(prob, js.Kvaerno5(dense_max=20), loss, wrt="p", verbose=False,
                            adaptive=False, dt=0.02, **KW)
    assert rep["passed"], rep


@pytest.mark.parametrize("alg", ["Kvaerno5", "KenCarp4"])
@pytest.mark.parametrize("adaptive", [True, False])
def test_checkpointed_gradients_match_store_all(alg, adaptive, monkeypatch):
    # C states and the steps re-solved from them: within the Newton tolerance of the
    # store-all gradient; the schedule recomputes what Revolve says
    import jitsolve.adjoint.newton_krylov as NK
    prob, loss = _problem()
    kw = dict(KW) if adaptive else dict(KW, adaptive=False, dt=0.02)
    A = getattr(js, alg)(dense_max=20)
    wrt = ("p", "u0", "kappa")
    v, g = js.gradient(prob, A, loss, wrt=wrt, **kw)
    seen = {}
    orig = NK.sdirk_krylov_adjoint_checkpointed

    def spy(*a, **k):
        lam, info = orig(*a, **k)
        seen.update(info, N=a[1].size)
        return lam, info
    monkeypatch.setattr(NK, "sdirk_krylov_adjoint_checkpointed", spy)
    for C in (1, 3, 10_000):
        vc, gc = js.gradient(prob, A, loss, wrt=wrt,
                             sensealg=js.DiscreteAdjoint(checkpoints=C), **kw)
        assert vc == v                              # the same forward pass
        for k in wrt:
            err = np.abs(gc[k] - g[k]).max() / np.abs(g[k]).max()
            assert err < 1e-7, (C, k, err)
        N = seen["N"]
        t = repetitions(N, min(C, N)) if N > 1 else 0
        want = t * N - beta(min(C, N) + 1, t - 1)
        assert seen["recomputed"] == want, (C, N, seen["recomputed"], want)


@pytest.mark.parametrize("alg", ["Kvaerno5", "KenCarp4"])
def test_hdf5_store_gives_the_in_memory_gradient(tmp_path, alg):
    """``store=js.HDF5Store(path)`` on the Newton-Krylov path (refused until the
    forty-eighth session): the snapshots on disk, the gradient bit for bit that of the
    in-memory checkpoints; the file removed after, or kept with at most ``C`` states."""
    import h5py
    prob, loss = _problem()
    A = getattr(js, alg)(dense_max=20)
    wrt = ("p", "u0", "kappa")
    ref = js.gradient(prob, A, loss, wrt=wrt, sensealg=js.DiscreteAdjoint(checkpoints=3), **KW)
    store = js.HDF5Store(tmp_path / "s.h5")
    got = js.gradient(prob, A, loss, wrt=wrt,
                      sensealg=js.DiscreteAdjoint(checkpoints=3, store=store), **KW)
    assert got[0] == ref[0] and all(np.array_equal(got[1][k], ref[1][k]) for k in wrt)
    assert not (tmp_path / "s.h5").exists()
    kept = js.HDF5Store(tmp_path / "k.h5", keep=True)
    js.gradient(prob, A, loss, wrt="u0", sensealg=js.DiscreteAdjoint(checkpoints=3, store=kept),
                **KW)
    with h5py.File(tmp_path / "k.h5", "r") as f:
        assert 1 <= len(f.keys()) <= 3 and f["0"].shape == (N * N,)


def test_refusals_name_what_works(tmp_path):
    prob, loss = _problem()
    with pytest.raises(UnsupportedAlgorithmError, match="needs a dense Jacobian"):
        js.gradient(prob, js.Rodas5P(dense_max=20), loss, **KW)
    for sa in (js.InterpolatingAdjoint(), js.ForwardSensitivity()):
        with pytest.raises(UnsupportedAlgorithmError, match="DiscreteAdjoint"):
            js.gradient(prob, js.Kvaerno5(dense_max=20), loss, sensealg=sa, **KW)


def test_failed_forward_solve_is_reported():
    prob, loss = _problem()
    with pytest.raises(SolveFailedError, match="ReturnCode.MaxIters"):
        js.gradient(prob, js.Kvaerno5(dense_max=20), loss, maxiters=2, **KW)
