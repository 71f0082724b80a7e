"""Audit of the Newton-Krylov path's discrete adjoint (grid problems above ``dense_max``)
beyond tests/test_newton_krylov_adjoint.py: non-symmetric operators (Advection, sums and
scaled sums with Diffusion, ``kappa`` through them), 1-D and 3-D grids, pure grid
operators, non-autonomous ``f`` and user ``jac``/``paramjac``/``vjp``, loss times at
``t0`` and off the steps, backward ``tspan``, ensembles, ``check_gradient`` and the
failures (forward solve, transposed GMRES, missing ``jac_sparsity``).  Gradients are
checked against the dense path's where it supports the case, else against central
differences of fixed-step solves (the step sequence does not move)."""
import numpy as np
import pytest
import scipy.sparse as sp
from numba import njit

import jitsolve as js
from jitsolve.errors import InvalidProblemError, SolveFailedError
from test_newton_krylov_adjoint import fkpp, fkpp_vjp   # tests/, the same reaction

N = 8
T = 0.3
TT = np.array([0.1, 0.2, T])
P = np.array([2.0, 0.3])
KW = dict(rtol=1e-9, atol=1e-9)
RNG = np.random.default_rng(1)
U0 = RNG.uniform(0.0, 1.0, (N, N))
KAPPA = RNG.uniform(0.5, 1.5, (N, N))
DATA = np.random.default_rng(2).uniform(0.2, 0.8, (TT.size, N, N))
DIR = np.random.default_rng(7).standard_normal((N, N))
METHODS = ["Kvaerno5", "KenCarp4", "ImplicitEuler"]


@njit
def fna(du, u, p, t):           # explicit t dependence
    for i in range(u.size):
        du[i] = p[0] * u[i] * (1.0 - u[i]) * np.cos(3.0 * t) + p[1] * t * t


@njit
def fna_jac(J, u, p, t):
    for i in range(u.size):
        J[i, i] = p[0] * (1.0 - 2.0 * u[i]) * np.cos(3.0 * t)


@njit
def fna_pjac(Jp, u, p, t):
    for i in range(u.size):
        Jp[i, 0] = u[i] * (1.0 - u[i]) * np.cos(3.0 * t)
        Jp[i, 1] = t * t


@njit
def fabs(du, u, p, t):          # not complex-analytic: the complex step drops |u|'s slope
    for i in range(u.size):
        du[i] = -p[0] * abs(u[i]) * u[i]


@njit
def fabs_jac(J, u, p, t):
    for i in range(u.size):
        J[i, i] = -2.0 * p[0] * abs(u[i])


@njit
def fabs_vjp(ou, op, v, u, p, t):
    op[0] = 0.0
    for i in range(u.size):
        ou[i] = -2.0 * p[0] * abs(u[i]) * v[i]
        op[0] += -abs(u[i]) * u[i] * v[i]


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def _fixed(alg):
    return dict(KW, adaptive=False, dt=0.02 if alg == "ImplicitEuler" else 0.01)


def _fd_error(J, g, d, e=1e-5):
    fd = (J(e) - J(-e)) / (2 * e)
    return abs(fd - float(np.sum(g * d))) / abs(fd)


def _grid(bc=None):
    return js.Grid((N, N), bc=bc if bc is not None else js.Dirichlet(1.0))


def _fun():
    return js.ODEFunction(fkpp, jac_sparsity=sp.identity(N * N))


LOSS = js.L2Loss(TT, DATA)


# ------------------------------------------------------------ non-symmetric operators
@pytest.mark.parametrize("alg", METHODS)
@pytest.mark.parametrize("bc", [js.Periodic(), js.Dirichlet(1.0)])
def test_advection_matches_the_dense_path(alg, bc):
    # a non-symmetric grid operator, alone (ODEProblem) and as a SplitODEProblem's L
    g = _grid(bc)
    V = 0.5 * js.Advection(g, velocity=(1.0, -0.5))
    kw = dict(KW, adaptive=False, dt=0.02) if alg == "ImplicitEuler" else KW
    A = getattr(js, alg)
    for prob, wrt in ((js.ODEProblem(V, U0, (0.0, T)), ("u0",)),
                      (js.SplitODEProblem(V, _fun(), U0, (0.0, T), P.copy()), ("u0", "p"))):
        v, gk = js.gradient(prob, A(dense_max=20), LOSS, wrt=wrt, **kw)
        vd, gd = js.gradient(prob, A(), LOSS, wrt=wrt, **kw)
        assert abs(v - vd) < 1e-9 * abs(vd)
        for k in wrt:
            assert _rel(gk[k], gd[k]) < 1e-8, (k, _rel(gk[k], gd[k]))


SUMS = {
    "D+V": lambda g, k: 0.05 * js.Diffusion(g, k) + js.Advection(g, velocity=(1.0, -0.5)),
    "c(D-V)": lambda g, k: 0.5 * (0.1 * js.Diffusion(g, k)
                                  - js.Advection(g, velocity=(1.0, -0.5))),
    "D+L": lambda g, k: 0.05 * js.Diffusion(g, k) + 0.02 * js.Laplacian(g),
}


@pytest.mark.parametrize("alg", METHODS)
@pytest.mark.parametrize("name", list(SUMS))
@pytest.mark.parametrize("split", [False, True])
def test_sums_against_central_differences(alg, name, split):
    # sums of grid operators take only the Newton-Krylov path (the dense path refuses
    # them); kappa of the one Diffusion term goes through the sum and the scalings, the
    # advection term's velocity field left alone
    g = _grid()
    kw = _fixed(alg)
    A = getattr(js, alg)(dense_max=20)

    def prob(k=KAPPA, u0=U0):
        op = SUMS[name](g, k)
        if split:
            return js.SplitODEProblem(op, _fun(), u0, (0.0, T), P.copy())
        return js.ODEProblem(op, u0, (0.0, T))

    _, gr = js.gradient(prob(), A, LOSS, wrt=("u0", "kappa"), **kw)

    def J(key):
        def val(e):
            pr = prob(k=KAPPA + e * DIR) if key == "kappa" else prob(u0=U0 + e * DIR)
            return LOSS.value(js.solve(pr, A, saveat=TT, **kw).u)
        return val
    for key in ("u0", "kappa"):
        err = _fd_error(J(key), gr[key], DIR)
        assert err < 2e-7, (key, err)


def test_kappa_refused_without_exactly_one_diffusion_term():
    g = _grid()
    for op, k in ((js.Diffusion(g, KAPPA) + js.Diffusion(g, KAPPA), 2),
                  (js.Advection(g, velocity=(1.0, 0.0)), 0)):
        msg = f"exactly one js.Diffusion term.*has {k}"
        with pytest.raises(InvalidProblemError, match=msg):
            js.gradient(js.ODEProblem(op, U0, (0.0, T)), js.Kvaerno5(dense_max=20), LOSS,
                        wrt="kappa", **KW)


# ------------------------------------------------------------------ 1-D and 3-D grids
@pytest.mark.parametrize("shape", [(24,), (4, 4, 4)])
@pytest.mark.parametrize("alg", METHODS)
def test_1d_and_3d_grids_match_the_dense_path(shape, alg):
    n = int(np.prod(shape))
    rng = np.random.default_rng(3)
    u0, kap = rng.uniform(0, 1, shape), rng.uniform(0.5, 1.5, shape)
    loss = js.L2Loss(np.array([0.1, T]), rng.uniform(0.2, 0.8, (2,) + shape))
    g = js.Grid(shape, bc=js.Dirichlet(1.0))
    kw = dict(KW, adaptive=False, dt=0.02) if alg == "ImplicitEuler" else KW
    A = getattr(js, alg)
    prob = js.SplitODEProblem(0.05 * js.Diffusion(g, kap),
                              js.ODEFunction(fkpp, jac_sparsity=sp.identity(n)), u0,
                              (0.0, T), P.copy())
    wrt = ("u0", "p") if alg == "KenCarp4" else ("u0", "p", "kappa")
    _, gk = js.gradient(prob, A(dense_max=n // 2), loss, wrt=wrt, **kw)
    _, gd = js.gradient(prob, A(), loss, wrt=wrt, **kw)
    for k in wrt:
        assert _rel(gk[k], gd[k]) < 2e-8, (k, _rel(gk[k], gd[k]))
    adv = js.ODEProblem(js.Advection(g, velocity=(1.0,) * len(shape)), u0, (0.0, T))
    _, gk = js.gradient(adv, A(dense_max=n // 2), loss, wrt="u0", **kw)
    _, gd = js.gradient(adv, A(), loss, wrt="u0", **kw)
    assert _rel(gk["u0"], gd["u0"]) < 1e-8


# ----------------------------------------------------------------- pure grid operator
@pytest.mark.parametrize("alg", METHODS)
def test_pure_grid_operator_u0_and_kappa_and_p_refused(alg):
    kw = dict(KW, adaptive=False, dt=0.02) if alg == "ImplicitEuler" else KW
    A = getattr(js, alg)
    prob = js.ODEProblem(0.05 * js.Diffusion(_grid(), KAPPA), U0, (0.0, T))
    _, gk = js.gradient(prob, A(dense_max=20), LOSS, wrt=("u0", "kappa"), **kw)
    _, gd = js.gradient(prob, A(), LOSS, wrt=("u0", "kappa"), **kw)
    for k in ("u0", "kappa"):
        assert _rel(gk[k], gd[k]) < 1e-8, (k, _rel(gk[k], gd[k]))
    with pytest.raises(InvalidProblemError, match="no parameters p"):
        js.gradient(prob, A(dense_max=20), LOSS, wrt="p", **kw)


# ------------------------------------------------------------------- user functions
@pytest.mark.parametrize("alg", METHODS)
def test_non_autonomous_f_with_jac_or_paramjac_matches_the_complex_step(alg):
    kw = dict(KW, adaptive=False, dt=0.02) if alg == "ImplicitEuler" else KW
    A = getattr(js, alg)
    D = 0.05 * js.Diffusion(_grid(), KAPPA)
    ref = js.SplitODEProblem(D, js.ODEFunction(fna, jac_sparsity=sp.identity(N * N)), U0,
                             (0.0, T), P.copy())
    wd = ("u0", "p") if alg == "KenCarp4" else ("u0", "p", "kappa")
    _, gd = js.gradient(ref, A(), LOSS, wrt=wd, **kw)
    for fun in (js.ODEFunction(fna, jac_sparsity=sp.identity(N * N)),
                js.ODEFunction(fna, jac=fna_jac),
                js.ODEFunction(fna, jac=fna_jac, paramjac=fna_pjac)):
        prob = js.SplitODEProblem(D, fun, U0, (0.0, T), P.copy())
        _, gk = js.gradient(prob, A(dense_max=20), LOSS, wrt=("u0", "p", "kappa"), **kw)
        for k in wd:
            assert _rel(gk[k], gd[k]) < 2e-8, (k, _rel(gk[k], gd[k]))


@pytest.mark.parametrize("alg", ["Kvaerno5", "ImplicitEuler"])
def test_non_analytic_f_with_its_own_derivatives(alg):
    # with jac + vjp both paths agree; with vjp alone the Krylov adjoint (J^T v from vjp
    # only) still matches central differences
    kw = dict(KW, adaptive=False, dt=0.02)
    A = getattr(js, alg)
    D = 0.05 * js.Diffusion(_grid(), KAPPA)
    both = js.SplitODEProblem(D, js.ODEFunction(fabs, jac=fabs_jac, vjp=fabs_vjp), U0,
                              (0.0, T), np.array([1.5]))
    _, gk = js.gradient(both, A(dense_max=20), LOSS, wrt=("u0", "p"), **kw)
    _, gd = js.gradient(both, A(), LOSS, wrt=("u0", "p"), **kw)
    for k in ("u0", "p"):
        assert _rel(gk[k], gd[k]) < 1e-8, (k, _rel(gk[k], gd[k]))
    only = js.remake(both, f=js.ODEFunction(fabs, vjp=fabs_vjp))
    _, gv = js.gradient(only, A(dense_max=20), LOSS, wrt="u0", **kw)

    def J(e):
        return LOSS.value(js.solve(js.remake(only, u0=U0 + e * DIR), A(dense_max=20),
                                   saveat=TT, **kw).u)
    assert _fd_error(J, gv["u0"], DIR) < 1e-7
    # the dense path built I - h gamma J by complex step (|u|'s slope dropped) and took
    # the products from the vjp: 5.5e-2 off (ImplicitEuler) with no error; refused now
    with pytest.raises(InvalidProblemError, match="f: its vjp and the complex step of f "
                                                  "disagree at u0 .* jac=\\.\\.\\."):
        js.gradient(only, A(), LOSS, wrt="u0", **kw)
    # an analytic f with its own vjp passes the check (the dense path as before)
    ok = js.SplitODEProblem(D, js.ODEFunction(fkpp, vjp=fkpp_vjp), U0, (0.0, T), P.copy())
    _, g1 = js.gradient(ok, A(), LOSS, wrt="u0", **kw)
    _, g2 = js.gradient(js.remake(ok, f=js.ODEFunction(fkpp)), A(), LOSS, wrt="u0", **kw)
    assert _rel(g1["u0"], g2["u0"]) < 1e-10


def test_f_without_sparsity_above_the_dense_limit_is_refused_before_solving(monkeypatch):
    import jitsolve.ode_stiff as OS
    M = 65                                   # 4225 > DENSE_VJP_MAX = 4096 unknowns
    g = js.Grid((M, M), bc=js.Dirichlet(1.0))
    prob = js.SplitODEProblem(0.05 * js.Laplacian(g), js.ODEFunction(fkpp),
                              np.full((M, M), 0.5), (0.0, 0.01), P.copy())

    def no_solve(*a, **k):
        raise AssertionError("the forward solve ran before the refusal")
    monkeypatch.setattr(OS, "grid_krylov_stepper", no_solve)
    with pytest.raises(InvalidProblemError, match="jac_sparsity"):
        js.gradient(prob, js.Kvaerno5(), js.L2Loss(np.array([0.01]), np.zeros((1, M, M))),
                    wrt="u0", **KW)


# ------------------------------------------------------------- loss times and tspan
@pytest.mark.parametrize("alg", ["Kvaerno5", "ImplicitEuler"])
def test_t0_and_times_between_steps(alg):
    kw = dict(KW, adaptive=False, dt=0.02) if alg == "ImplicitEuler" else KW
    A = getattr(js, alg)
    t2 = np.array([0.0, 0.0731, 0.1517, T])
    loss = js.L2Loss(t2, np.random.default_rng(3).uniform(0.2, 0.8, (4, N, N)))
    prob = js.SplitODEProblem(0.05 * js.Diffusion(_grid(), KAPPA), _fun(), U0, (0.0, T),
                              P.copy())
    wrt = ("u0", "p", "kappa")
    v, gk = js.gradient(prob, A(dense_max=20), loss, wrt=wrt, **kw)
    vd, gd = js.gradient(prob, A(), loss, wrt=wrt, **kw)
    assert abs(v - vd) < 1e-9 * vd
    for k in wrt:
        assert _rel(gk[k], gd[k]) < 1e-8, (k, _rel(gk[k], gd[k]))


@pytest.mark.parametrize("alg,adaptive", [("Kvaerno5", True), ("Kvaerno5", False),
                                          ("ImplicitEuler", False)])
def test_backward_tspan(alg, adaptive):
    # t1 < t0 with -D (stable backwards), store-all and checkpointed
    kw = dict(KW) if adaptive else dict(KW, adaptive=False, dt=0.02)
    A = getattr(js, alg)
    loss = js.L2Loss(np.array([0.2, 0.1, 0.0]), DATA)
    prob = js.SplitODEProblem(-0.05 * js.Diffusion(_grid(), KAPPA), _fun(), U0, (T, 0.0),
                              P.copy())
    wrt = ("u0", "p", "kappa")
    v, gk = js.gradient(prob, A(dense_max=20), loss, wrt=wrt, **kw)
    vd, gd = js.gradient(prob, A(), loss, wrt=wrt, **kw)
    _, gc = js.gradient(prob, A(dense_max=20), loss, wrt=wrt,
                        sensealg=js.DiscreteAdjoint(checkpoints=3), **kw)
    assert abs(v - vd) < 1e-9 * vd
    for k in wrt:
        assert _rel(gk[k], gd[k]) < 1e-8, (k, _rel(gk[k], gd[k]))
        assert _rel(gc[k], gd[k]) < 1e-8, (k, _rel(gc[k], gd[k]))


# -------------------------------------------------------- ensembles, check_gradient
@pytest.mark.parametrize("how", ["u0s", "prob_func"])
def test_ensembles_equal_their_single_gradients(how):
    prob = js.SplitODEProblem(0.05 * js.Diffusion(_grid(), KAPPA), _fun(), U0, (0.0, T),
                              P.copy())
    u0s = np.stack([U0, 0.5 * U0, U0 ** 2])
    A = js.KenCarp4(dense_max=20) if how == "prob_func" else js.Kvaerno5(dense_max=20)
    eloss = js.L2Loss(TT, np.stack([DATA] * 3))
    if how == "u0s":
        v, ge = js.gradient(js.EnsembleProblem(prob, u0s=u0s), A, eloss, wrt=("u0", "p"),
                            **KW)
    else:
        ep = js.EnsembleProblem(prob, prob_func=lambda pr, i: js.remake(pr, u0=u0s[i]))
        v, ge = js.gradient(ep, A, eloss, wrt=("u0", "p"), trajectories=3, **KW)
    total = 0.0
    for i in range(3):
        vi, gi = js.gradient(js.remake(prob, u0=u0s[i]), A, LOSS, wrt=("u0", "p"), **KW)
        total += vi
        for k in ("u0", "p"):
            np.testing.assert_array_equal(ge[k][i], gi[k])
    assert abs(v - total) < 1e-12 * total


@pytest.mark.parametrize("alg", ["Kvaerno5", "ImplicitEuler"])
def test_check_gradient_kappa_and_checkpointed_p(alg):
    prob = js.SplitODEProblem(0.05 * js.Diffusion(_grid(), KAPPA), _fun(), U0, (0.0, T),
                              P.copy())
    kw = dict(KW, adaptive=False, dt=0.02)
    A = getattr(js, alg)(dense_max=20)
    r = js.check_gradient(prob, A, LOSS, wrt="kappa", verbose=False, **kw)
    assert r["passed"] and abs(r["order"] - 2.0) < 0.05, r
    r = js.check_gradient(prob, A, LOSS, wrt="p", verbose=False,
                          sensealg=js.DiscreteAdjoint(checkpoints=2), **kw)
    assert r["passed"] and abs(r["order"] - 2.0) < 0.05, r


# ------------------------------------------------------------------------- failures
def test_failures_are_reported(monkeypatch):
    import jitsolve.adjoint.newton_krylov as NK
    prob = js.SplitODEProblem(0.05 * js.Diffusion(_grid(), KAPPA), _fun(), U0, (0.0, T),
                              P.copy())
    A = js.Kvaerno5(dense_max=20)
    with pytest.raises(SolveFailedError, match="ReturnCode.MaxIters"):
        js.gradient(prob, A, LOSS, wrt="u0", maxiters=3, **KW)
    # transposed stage solves asked for an unreachable tolerance: GMRES stops and says so
    monkeypatch.setattr(NK, "adjoint_rtol", lambda rtol: 1e-300)
    for sa in (None, js.DiscreteAdjoint(checkpoints=2)):
        msg = r"transposed stage system of step \d+ \(t = .*, stage \d\) ended GMRES with"
        with pytest.raises(SolveFailedError, match=msg):
            js.gradient(prob, A, LOSS, wrt="u0", sensealg=sa, **KW)
