"""Discrete adjoints of the stiff methods (Rosenbrock23, Rodas5P; ImplicitEuler, Kvaerno5,
KenCarp4; KenCarp4's IMEX form on a SplitODEProblem): gradients wrt p and u0 against
central differences of the whole solve at fixed steps, adaptive solves against the same
step sequence held fixed, checkpointing variants bitwise equal, the transposed LU solve
and dot-product tests of one reverse step."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import UnsupportedAlgorithmError
from jitsolve.ode_stiff import ImplicitEuler, KenCarp4, Kvaerno5, Rodas5P, Rosenbrock23
from jitsolve.stiff_gradient import stiff_discrete_adjoint

ROS = [Rosenbrock23, Rodas5P]


def vdp(du, u, p, t):
    du[0] = u[1]
    du[1] = p[0] * ((1.0 - u[0] * u[0]) * u[1]) - u[0]


def rober(du, u, p, t):
    # Robertson with its rate constants as parameters
    du[0] = -p[0] * u[0] + p[2] * u[1] * u[2]
    du[1] = p[0] * u[0] - p[2] * u[1] * u[2] - p[1] * u[1] * u[1]
    du[2] = p[1] * u[1] * u[1]


def forced(du, u, p, t):
    # non-autonomous and not polynomial (exp): exercises T = df/dt and the J derivative
    du[0] = -p[0] * (u[0] - np.cos(t)) - np.sin(t)
    du[1] = -np.exp(0.5 * u[0]) * u[1] + p[1] * u[0]


VDP = (vdp, np.array([2.0, 0.0]), (0.0, 1.0), np.array([10.0]), np.linspace(0.2, 1.0, 5), 0.01)
# fixed steps must resolve the initial transient (dt = 2e-3 is already unstable for
# Rodas5P and chaotic for Rosenbrock23): 100 steps of 1e-3; adaptive runs go to t = 10
ROB = (rober, np.array([1.0, 0.0, 0.0]), (0.0, 0.1), np.array([0.04, 3e7, 1e4]),
       np.array([0.01, 0.05, 0.1]), 1e-3)
ROB_LONG = (rober, np.array([1.0, 0.0, 0.0]), (0.0, 10.0), np.array([0.04, 3e7, 1e4]),
            np.array([0.1, 1.0, 10.0]), None)
FOR = (forced, np.array([0.3, 1.0]), (0.0, 1.0), np.array([50.0, 0.7]), np.array([0.5, 1.0]),
       0.02)


def _setup(case, alg_cls, autonomous=True):
    f, u0, tspan, p, td, dt = case
    rng = np.random.default_rng(1)
    n = u0.size
    scale = np.array([1.0, 1e-5, 1.0]) if f is rober else np.ones(n)
    data = rng.standard_normal((td.size, n)) * scale
    w = 1.0 / scale ** 2
    loss = js.L2Loss(td, data, weights=np.broadcast_to(w, data.shape).copy())
    return f, u0, tspan, p, td, dt, loss, alg_cls(autonomous=autonomous)


def _J(f, u0, tspan, p, td, alg, loss, kw):
    s = js.solve(js.ODEProblem(f, u0, tspan, p), alg, saveat=td, tstops=td, **kw)
    assert s.retcode == js.ReturnCode.Success
    return loss.value(s.u)


def _fd(f, u0, tspan, p, td, alg, loss, kw, rel=1e-5):
    out = {}
    for name, x in (("p", p), ("u0", u0)):
        g = np.zeros(x.size)
        for k in range(x.size):
            e = rel * max(abs(x[k]), 1e-2)
            v = []
            for sgn in (1, -1):
                y = x.copy()
                y[k] += sgn * e
                args = (y, u0) if name == "p" else (p, y)
                v.append(_J(f, args[1], tspan, args[0], td, alg, loss, kw))
            g[k] = (v[0] - v[1]) / (2 * e)
        out[name] = g
    return out


def _rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.mark.parametrize("alg_cls", ROS)
@pytest.mark.parametrize("case", [VDP, ROB], ids=["vanderpol", "robertson"])
def test_fixed_steps_against_central_differences(alg_cls, case):
    f, u0, tspan, p, td, dt, loss, alg = _setup(case, alg_cls)
    kw = dict(adaptive=False, dt=dt)
    val, g = stiff_discrete_adjoint(js.ODEProblem(f, u0, tspan, p), alg, loss, ("p", "u0"), None,
                                    dict(kw))
    assert val == pytest.approx(_J(f, u0, tspan, p, td, alg, loss, kw), rel=1e-14)
    ref = _fd(f, u0, tspan, p, td, alg, loss, kw)
    for name in ("p", "u0"):
        assert _rel(g[name], ref[name]) < 1e-7, (name, g[name], ref[name])


@pytest.mark.parametrize("alg_cls", ROS)
def test_non_autonomous_fixed_steps(alg_cls):
    # df/dt by the forward loop's difference is differentiated as written
    f, u0, tspan, p, td, dt, loss, alg = _setup(FOR, alg_cls, autonomous=False)
    kw = dict(adaptive=False, dt=dt)
    val, g = stiff_discrete_adjoint(js.ODEProblem(f, u0, tspan, p), alg, loss, ("p", "u0"), None,
                                    dict(kw))
    ref = _fd(f, u0, tspan, p, td, alg, loss, kw, rel=1e-4)
    for name in ("p", "u0"):
        assert _rel(g[name], ref[name]) < 1e-7, (name, g[name], ref[name])


@pytest.mark.parametrize("alg_cls", ROS)
@pytest.mark.parametrize("case", [VDP, ROB_LONG], ids=["vanderpol", "robertson"])
def test_adaptive_against_fixed_step_sequence(alg_cls, case):
    f, u0, tspan, p, td, dt, loss, alg = _setup(case, alg_cls)
    prob = js.ODEProblem(f, u0, tspan, p)
    kw = dict(rtol=1e-6, atol=1e-10)
    val, g = stiff_discrete_adjoint(prob, alg, loss, ("p", "u0"), None, dict(kw))
    sol = js.solve(prob, alg, tstops=td, **kw)
    assert sol.steps_t.size > 10
    # the recorded step sequence, replayed with fixed steps landing on every step end
    ends = np.append(sol.steps_t[1:], tspan[1])
    fixed = dict(adaptive=False, dt=float(tspan[1] - tspan[0]), tstops=ends)
    s2 = js.solve(prob, alg, saveat=td, **fixed)
    assert s2.steps_t.size == sol.steps_t.size
    assert val == pytest.approx(loss.value(s2.u), rel=1e-12)
    fixed.pop("tstops")

    def J(pp, uu):
        s = js.solve(js.ODEProblem(f, uu, tspan, pp), alg, saveat=td, tstops=ends, **fixed)
        return loss.value(s.u)
    for name, x in (("p", p), ("u0", u0)):
        ref = np.zeros(x.size)
        for k in range(x.size):
            e = 1e-5 * max(abs(x[k]), 1e-2)
            y1, y2 = x.copy(), x.copy()
            y1[k] += e
            y2[k] -= e
            ref[k] = ((J(y1, u0) - J(y2, u0)) if name == "p" else (J(p, y1) - J(p, y2))) / (2 * e)
        assert _rel(g[name], ref) < 1e-7, (name, g[name], ref)


@pytest.mark.parametrize("alg_cls", ROS)
def test_checkpoint_variants_bitwise_equal(alg_cls, tmp_path):
    f, u0, tspan, p, td, dt, loss, alg = _setup(ROB_LONG, alg_cls)
    prob = js.ODEProblem(f, u0, tspan, p)
    kw = dict(rtol=1e-6, atol=1e-10)
    _, g_all = stiff_discrete_adjoint(prob, alg, loss, ("p", "u0"), js.DiscreteAdjoint(), dict(kw))
    for sa in (js.DiscreteAdjoint(checkpoints=3), js.DiscreteAdjoint(checkpoints=1),
               js.DiscreteAdjoint(checkpoints=4, store=js.HDF5Store(tmp_path / "c.h5"))):
        _, g = stiff_discrete_adjoint(prob, alg, loss, ("p", "u0"), sa, dict(kw))
        for name in ("p", "u0"):
            assert np.array_equal(g[name], g_all[name])


def test_non_autonomous_adaptive_checkpoints_bitwise_equal():
    f, u0, tspan, p, td, dt, loss, alg = _setup(FOR, Rodas5P, autonomous=False)
    prob = js.ODEProblem(f, u0, tspan, p)
    _, g_all = stiff_discrete_adjoint(prob, alg, loss, ("p", "u0"), None, dict(rtol=1e-6))
    _, g_c = stiff_discrete_adjoint(prob, alg, loss, ("p", "u0"),
                                    js.DiscreteAdjoint(checkpoints=2), dict(rtol=1e-6))
    assert np.array_equal(g_all["p"], g_c["p"]) and np.array_equal(g_all["u0"], g_c["u0"])


def test_lu_solve_transpose():
    from jitsolve.kernels.cpu.rosenbrock_adjoint import lu_solve_transpose
    from jitsolve.kernels.cpu.stiffjac import lu_factor
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6))
    b = rng.standard_normal(6)
    W = A.copy()
    piv = np.zeros(6, np.int64)
    assert lu_factor(W, piv)
    x = b.copy()
    lu_solve_transpose(W, piv, x)
    assert np.allclose(A.T @ x, b, rtol=0, atol=1e-13)


@pytest.mark.parametrize("alg_cls", ROS)
def test_dot_product_one_step(alg_cls):
    # <lam, dPhi/du du> == <dPhi/du^T lam, du>, the tangent by complex step of the step map
    # (f and its complex twin are polynomial: the step is analytic in u)
    from jitsolve.adjoint.vjp import make_vjp_source
    from jitsolve.kernels.cpu import rosenbrock_adjoint as K
    from jitsolve.kernels.cpu.rhs import zero_f
    from jitsolve.ode_stiff import _jacobian_tuple
    from jitsolve.rhs import problem_rhs
    from jitsolve.solvers.ode.rosenbrock import stiff_tableau
    f, u0, tspan, p, td, dt, loss, alg = _setup(VDP, alg_cls)
    prob = js.ODEProblem(f, u0, tspan, p)
    rhs = problem_rhs(prob)
    n = 2
    krhs = (rhs.f, rhs.p, zero_f, np.zeros(0), False, np.empty(n))
    jd = _jacobian_tuple(rhs, alg, False, n)
    vj = make_vjp_source(rhs.fun.cfunc("f_complex"), rhs.p, True, n, np_grad=1)
    tab = stiff_tableau(alg.method)
    wk = K.ros_work(n, tab[6].size, 1)
    u = np.array([1.5, -0.7])
    t, h = 0.0, 0.05
    st, sh = np.array([t]), np.array([h])

    def step(uu):
        c = uu.copy()
        K.ros_advance(krhs, jd, tab, c, st, sh, 0, 1, np.zeros((1, n)), False, wk)
        return c
    rng = np.random.default_rng(3)
    lam = rng.standard_normal(n)
    du = rng.standard_normal(n)
    e = 1e-6
    jvp = (step(u + e * du) - step(u - e * du)) / (2 * e)
    lb = lam.copy()
    pb = np.zeros(1)
    K.ros_reverse(krhs, jd, vj, tab, u[None, :].copy(), st, sh, 0, 1, np.zeros((1, n)),
                  -np.ones(1, np.int64), lb, pb, wk)
    assert lam @ jvp == pytest.approx(lb @ du, rel=1e-8)


@pytest.mark.parametrize("alg_cls", [ImplicitEuler, Kvaerno5, KenCarp4])
@pytest.mark.parametrize("case", [VDP, ROB], ids=["vanderpol", "robertson"])
def test_newton_methods_fixed_steps(alg_cls, case):
    # implicit function theorem at stages re-solved to rounding: agrees with differences of
    # the forward solve to its Newton tolerance (tight here)
    f, u0, tspan, p, td, dt, loss, alg = _setup(case, alg_cls)
    kw = dict(adaptive=False, dt=dt, rtol=1e-12, atol=1e-14)
    val, g = stiff_discrete_adjoint(js.ODEProblem(f, u0, tspan, p), alg, loss, ("p", "u0"), None,
                                    dict(kw))
    ref = _fd(f, u0, tspan, p, td, alg, loss, kw)
    for name in ("p", "u0"):
        assert _rel(g[name], ref[name]) < 2e-5, (name, g[name], ref[name])


def test_newton_methods_checkpoints_bitwise_equal():
    f, u0, tspan, p, td, dt, loss, alg = _setup(ROB_LONG, Kvaerno5)
    prob = js.ODEProblem(f, u0, tspan, p)
    kw = dict(rtol=1e-6, atol=1e-10)
    _, g_all = stiff_discrete_adjoint(prob, alg, loss, ("p", "u0"), None, dict(kw))
    _, g_c = stiff_discrete_adjoint(prob, alg, loss, ("p", "u0"),
                                    js.DiscreteAdjoint(checkpoints=3), dict(kw))
    assert np.array_equal(g_all["p"], g_c["p"]) and np.array_equal(g_all["u0"], g_c["u0"])


def test_unsupported():
    f, u0, tspan, p, td, dt, loss, _ = _setup(VDP, Rodas5P)
    prob = js.ODEProblem(f, u0, tspan, p)
    with pytest.raises(js.errors.InvalidProblemError, match="kappa"):   # no Diffusion here
        stiff_discrete_adjoint(prob, Rodas5P(), loss, "kappa", None, {})
    with pytest.raises(UnsupportedAlgorithmError, match="wrt"):
        stiff_discrete_adjoint(prob, Rodas5P(), loss, "tspan", None, {})
    with pytest.raises(UnsupportedAlgorithmError):
        stiff_discrete_adjoint(prob, Rodas5P(), loss, "p", js.ForwardSensitivity(), {})


def test_gradient_api_routes_stiff_methods():
    """js.gradient with a stiff algorithm uses its discrete adjoint (bitwise checkpoint
    independence, Taylor order 2)."""
    import jitsolve as js

    def vdp(du, u, p, t):
        du[0] = u[1]
        du[1] = p[0] * ((1 - u[0] * u[0]) * u[1]) - u[0]
    prob = js.ODEProblem(vdp, np.array([2.0, 0.0]), (0.0, 1.0), p=np.array([10.0]))
    t = np.linspace(0.1, 1.0, 5)
    loss = js.L2Loss(t, np.zeros((5, 2)))
    _, ga = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"), rtol=1e-8, atol=1e-8)
    _, gb = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"), rtol=1e-8, atol=1e-8,
                        sensealg=js.DiscreteAdjoint(checkpoints=2))
    assert np.array_equal(ga["p"], gb["p"]) and np.array_equal(ga["u0"], gb["u0"])
    rep = js.check_gradient(prob, js.Rodas5P(), loss, wrt="p", rtol=1e-8, atol=1e-8,
                            verbose=False, eps=0.5 * 0.5 ** np.arange(4))
    assert rep["passed"]


# ------------------------------------------------------------------ KenCarp4, IMEX form
# du/dt = D Lap u + f(u, p): the Laplacian (Dirichlet 0.5 at both ends: an affine linear
# part) implicit through the ESDIRK tableau, the reaction explicit through the ERK tableau
IMEX_N = 24
IMEX_TD = np.array([0.1, 0.25, 0.5])


def fisher_ac(du, u, p, t):
    # Fisher-KPP growth minus an Allen-Cahn cubic (products: complex-step safe)
    for i in range(u.size):
        du[i] = p[0] * u[i] * (1.0 - u[i]) - p[1] * u[i] * u[i] * u[i]


def _imex_setup(kind="grid", D=0.05):
    g = js.Grid((IMEX_N,), bc=js.Dirichlet(0.5))
    op = D * js.Laplacian(g)
    if kind == "grid":
        L = op
    else:
        # the same operator as a matrix (homogeneous: the boundary term dropped)
        L = op.to_csr() if kind == "csr" else op.to_csr().toarray()
    x = (np.arange(IMEX_N) + 0.5) / IMEX_N
    u0 = 0.5 + 0.4 * np.sin(2 * np.pi * x)
    p = np.array([2.0, 0.7])
    data = 0.5 + 0.1 * np.random.default_rng(0).standard_normal((IMEX_TD.size, IMEX_N))
    return L, u0, p, js.L2Loss(IMEX_TD, data)


def _imex_J(L, u0, p, loss, kw):
    kw = dict(kw)
    kw.setdefault("tstops", IMEX_TD)          # a replayed step sequence already has them
    s = js.solve(js.SplitODEProblem(L, fisher_ac, u0, (0.0, 0.5), p), KenCarp4(), saveat=IMEX_TD,
                 **kw)
    assert s.retcode == js.ReturnCode.Success
    return loss.value(s.u)


def _imex_fd(L, u0, p, loss, kw, rel=1e-5):
    out = {}
    for name, x in (("p", p), ("u0", u0)):
        g = np.zeros(x.size)
        for k in range(x.size):
            e = rel * max(abs(x[k]), 1e-2)
            v = []
            for sgn in (1, -1):
                y = x.copy()
                y[k] += sgn * e
                v.append(_imex_J(L, u0, y, loss, kw) if name == "p" else
                         _imex_J(L, y, p, loss, kw))
            g[k] = (v[0] - v[1]) / (2 * e)
        out[name] = g
    return out


@pytest.mark.parametrize("kind, D", [("grid", 0.05), ("grid", 2.0), ("csr", 0.05),
                                     ("dense", 0.05)])
def test_kencarp4_imex_fixed_steps_against_central_differences(kind, D):
    # D = 2: h gamma |L| ~ 12, the implicit part stiff (the explicit reaction is not); its
    # u0-gradient is small (diffusion forgets u0), so larger differences beat rounding
    L, u0, p, loss = _imex_setup(kind, D)
    kw = dict(adaptive=False, dt=0.01)
    prob = js.SplitODEProblem(L, fisher_ac, u0, (0.0, 0.5), p)
    val, g = stiff_discrete_adjoint(prob, KenCarp4(), loss, ("p", "u0"), None, dict(kw))
    assert val == pytest.approx(_imex_J(L, u0, p, loss, kw), rel=1e-13)
    ref = _imex_fd(L, u0, p, loss, kw, rel=1e-4 if D > 1 else 1e-5)
    for name in ("p", "u0"):
        assert _rel(g[name], ref[name]) < 1e-7, (name, g[name], ref[name])


def test_kencarp4_imex_adaptive_against_fixed_step_sequence():
    L, u0, p, loss = _imex_setup()
    prob = js.SplitODEProblem(L, fisher_ac, u0, (0.0, 0.5), p)
    kw = dict(rtol=1e-8, atol=1e-10)
    val, g = stiff_discrete_adjoint(prob, KenCarp4(), loss, ("p", "u0"), None, dict(kw))
    sol = js.solve(prob, KenCarp4(), tstops=IMEX_TD, **kw)
    assert sol.steps_t.size > 10 and np.ptp(sol.steps_h) > 0
    # the recorded step sequence, replayed with fixed steps landing on every step end
    ends = np.append(sol.steps_t[1:], 0.5)
    fixed = dict(adaptive=False, dt=0.5, tstops=ends)
    s2 = js.solve(prob, KenCarp4(), saveat=IMEX_TD, **fixed)
    assert s2.steps_t.size == sol.steps_t.size
    assert val == pytest.approx(loss.value(s2.u), rel=1e-12)
    ref = _imex_fd(L, u0, p, loss, fixed)
    for name in ("p", "u0"):
        assert _rel(g[name], ref[name]) < 1e-7, (name, g[name], ref[name])


def test_kencarp4_imex_checkpoints_bitwise_equal(tmp_path):
    L, u0, p, loss = _imex_setup()
    prob = js.SplitODEProblem(L, fisher_ac, u0, (0.0, 0.5), p)
    kw = dict(rtol=1e-6, atol=1e-8)
    _, g_all = stiff_discrete_adjoint(prob, KenCarp4(), loss, ("p", "u0"), None, dict(kw))
    for sa in (js.DiscreteAdjoint(checkpoints=3), js.DiscreteAdjoint(checkpoints=1),
               js.DiscreteAdjoint(checkpoints=4, store=js.HDF5Store(tmp_path / "c.h5"))):
        _, g = stiff_discrete_adjoint(prob, KenCarp4(), loss, ("p", "u0"), sa, dict(kw))
        for name in ("p", "u0"):
            assert np.array_equal(g[name], g_all[name]), (sa.checkpoints, name)
    # js.gradient routes the SplitODEProblem + KenCarp4 here
    _, g_api = js.gradient(prob, KenCarp4(), loss, wrt=("p", "u0"), **kw)
    assert np.array_equal(g_api["p"], g_all["p"]) and np.array_equal(g_api["u0"], g_all["u0"])


def test_kencarp4_imex_dot_product_one_step():
    # <lam, dPhi/du du + dPhi/dp dp> == <dPhi/du^T lam, du> + <dPhi/dp^T lam, dp> for one
    # reversed IMEX step Phi (central differences of the step map; f is a cubic)
    from jitsolve.kernels.cpu import esdirk_adjoint as K
    from jitsolve.rhs import problem_rhs
    from jitsolve.sensitivity import _vjp_for
    from jitsolve.solvers.ode.rosenbrock import stiff_tableau
    L, u0, p, loss = _imex_setup()
    prob = js.SplitODEProblem(L, fisher_ac, u0, (0.0, 0.5), p)
    rhs = problem_rhs(prob)
    n = IMEX_N
    vj, npg = _vjp_for(prob, rhs, ("p", "u0"))
    tab = stiff_tableau("kencarp4", True)
    assert tab[12] and npg == 2

    def krhs(pp):
        return (rhs.f, pp, rhs.lin, rhs.plin, True, np.empty(n))
    wk = K.ark_work(n, tab[6].size)
    K.ark_setup(krhs(p), 0.0, wk)
    t, h = 0.1, 0.05
    st, sh = np.array([t]), np.array([h])

    def step(uu, pp):
        c = uu.copy()
        assert K.ark_advance(krhs(pp), tab, c, st, sh, 0, 1, np.zeros((1, n)), False, wk)
        return c
    rng = np.random.default_rng(3)
    lam = rng.standard_normal(n)
    du = rng.standard_normal(n)
    dp = rng.standard_normal(2)
    e = 1e-5            # Phi is a polynomial of low degree: rounding-limited differences
    jvp = (step(u0 + e * du, p + e * dp) - step(u0 - e * du, p - e * dp)) / (2 * e)
    lb = lam.copy()
    pb = np.zeros(2)
    assert K.ark_reverse(krhs(p), vj, tab, u0[None, :].copy(), st, sh, 0, 1, np.zeros((1, n)),
                         -np.ones(1, np.int64), lb, pb, wk)
    assert lam @ jvp == pytest.approx(lb @ du + pb @ dp, rel=1e-9)
    # the step is the one the forward loop takes (stages to rounding either way)
    s = js.solve(js.SplitODEProblem(L, fisher_ac, u0, (t, t + h), p), KenCarp4(),
                 adaptive=False, dt=h)
    np.testing.assert_allclose(step(u0, p), s.u[-1], rtol=1e-14, atol=1e-14)
