"""The user's own derivatives as VJP sources of the adjoints (``ODEFunction(vjp=...)``,
``jac``, ``paramjac``): they come before the complex step, give the same gradients to
rounding, and are really called (a deliberately wrong one changes the gradient)."""
import numpy as np
import pytest
import scipy.sparse as sp
from numba import njit

import jitsolve as js
from jitsolve.errors import UserFunctionError
from ode_models import lotka, lotka_jac, lotka_paramjac


@njit
def lotka_vjp(ou, op, lam, u, p, t):
    ou[0] = (p[0] - p[1] * u[1]) * lam[0] + p[3] * u[1] * lam[1]
    ou[1] = -p[1] * u[0] * lam[0] + (-p[2] + p[3] * u[0]) * lam[1]
    op[0] = u[0] * lam[0]
    op[1] = -u[0] * u[1] * lam[0]
    op[2] = -u[1] * lam[1]
    op[3] = u[0] * u[1] * lam[1]


def lotka_vjp_twice(ou, op, lam, u, p, t):
    lotka_vjp(ou, op, lam, u, p, t)
    for i in range(ou.size):
        ou[i] *= 2.0
    for i in range(op.size):
        op[i] *= 2.0


def lotka_jac_wrong(J, u, p, t):
    lotka_jac(J, u, p, t)
    J[0, 1] += 0.5


def lotka_paramjac_wrong(Jp, u, p, t):
    lotka_paramjac(Jp, u, p, t)
    Jp[1, 3] *= 3.0


def lotka_vjp_raises(ou, op, lam, u, p, t):
    raise ValueError("vjp failed on purpose")


P = np.array([1.5, 1.0, 3.0, 1.0])
U0 = np.array([1.0, 1.0])
TD = np.linspace(0.25, 4.0, 16)
LOSS = js.L2Loss(TD, np.ones((TD.size, 2)))
KW = dict(rtol=1e-8, atol=1e-8)


def grad(fun, alg, sensealg=None, **kw):
    prob = js.ODEProblem(fun, U0, (0.0, 4.0), P)
    v, g = js.gradient(prob, alg, LOSS, wrt=("p", "u0"), sensealg=sensealg, **dict(KW, **kw))
    return v, np.concatenate([g["p"], g["u0"]])


def rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


F_CS = js.ODEFunction(lotka)
F_VJP = js.ODEFunction(lotka, vjp=lotka_vjp)


@pytest.mark.parametrize("alg,kw", [(js.Tsit5(), {}), (js.RK4(), dict(dt=0.01, adaptive=False)),
                                    (js.Vern7(), {}), (js.Rodas5P(), {}), (js.KenCarp4(), {}),
                                    (js.ImplicitEuler(), dict(dt=0.01, adaptive=False))],
                         ids=["Tsit5", "RK4", "Vern7", "Rodas5P", "KenCarp4", "ImplicitEuler"])
def test_user_vjp_gives_the_complex_step_gradient(alg, kw):
    v0, g0 = grad(F_CS, alg, **kw)
    v1, g1 = grad(F_VJP, alg, **kw)
    assert v1 == v0                      # the forward solve is the same
    assert rel(g1, g0) < 1e-12


def test_checkpointed_user_vjp_is_bit_for_bit():
    _, g = grad(F_VJP, js.RK4(), dt=0.01, adaptive=False)
    _, gc = grad(F_VJP, js.RK4(), js.DiscreteAdjoint(checkpoints=4), dt=0.01, adaptive=False)
    assert np.array_equal(gc, g)


def test_user_vjp_is_called():
    """A vjp that returns twice the products doubles the gradient wrt p (every stage's
    product is linear in it) and changes the one wrt u0."""
    _, g0 = grad(F_CS, js.Tsit5())
    v2, g2 = grad(js.ODEFunction(lotka, vjp=lotka_vjp_twice), js.RK4(), dt=0.01, adaptive=False)
    v0, g0r = grad(F_CS, js.RK4(), dt=0.01, adaptive=False)
    assert v2 == v0
    assert rel(g2, g0r) > 0.1


def test_jac_and_paramjac_are_sources_in_order():
    """``jac`` gives J^T v, ``paramjac`` J_p^T v; a wrong ``jac`` changes both gradients
    (p's through the adjoint state), a wrong ``paramjac`` only p's; ``vjp`` wins over both."""
    alg = js.Tsit5()
    _, g0 = grad(F_CS, alg)
    for fun in (js.ODEFunction(lotka, jac=lotka_jac),
                js.ODEFunction(lotka, paramjac=lotka_paramjac),
                js.ODEFunction(lotka, jac=lotka_jac, paramjac=lotka_paramjac),
                js.ODEFunction(lotka, vjp=lotka_vjp, jac=lotka_jac_wrong,
                               paramjac=lotka_paramjac_wrong)):
        assert rel(grad(fun, alg)[1], g0) < 1e-12, fun
    _, gj = grad(js.ODEFunction(lotka, jac=lotka_jac_wrong), alg)
    assert rel(gj[4:], g0[4:]) > 1e-3 and rel(gj[:4], g0[:4]) > 1e-3
    _, gp = grad(js.ODEFunction(lotka, paramjac=lotka_paramjac_wrong), alg)
    assert rel(gp[4:], g0[4:]) < 1e-12        # u0's gradient does not involve J_p
    assert abs(gp[3] - g0[3]) > 1e-3 * abs(g0[3]) and rel(gp[:3], g0[:3]) < 1e-12
    # with a jac_sparsity the coloured complex step is cheaper than the dense jac: not used
    fun = js.ODEFunction(lotka, jac=lotka_jac_wrong, jac_sparsity=np.ones((2, 2)))
    assert rel(grad(fun, alg)[1], g0) < 1e-12


@pytest.mark.parametrize("sensealg", [js.InterpolatingAdjoint(), js.QuadratureAdjoint(),
                                      js.BacksolveAdjoint()],
                         ids=["interpolating", "quadrature", "backsolve"])
def test_continuous_adjoints_use_the_vjp(sensealg):
    _, g0 = grad(F_CS, js.Tsit5(), sensealg)
    _, g1 = grad(F_VJP, js.Tsit5(), sensealg)
    assert rel(g1, g0) < 1e-9
    _, g2 = grad(js.ODEFunction(lotka, vjp=lotka_vjp_twice), js.Tsit5(), sensealg)
    assert rel(g2, g0) > 0.1


def test_ensemble_kernel_uses_the_vjp_per_thread():
    ps = np.array([[1.5, 1.0, 3.0, 1.0], [1.2, 0.8, 2.5, 1.1], [1.8, 1.1, 3.2, 0.9],
                   [1.4, 0.9, 2.8, 1.0]])
    out = {}
    for name, fun in (("cs", F_CS), ("vjp", F_VJP),
                      ("twice", js.ODEFunction(lotka, vjp=lotka_vjp_twice))):
        ep = js.EnsembleProblem(js.ODEProblem(fun, U0, (0.0, 4.0), P), ps=ps)
        v, g = js.gradient(ep, js.Tsit5(), LOSS, wrt=("p", "u0"), **KW)
        out[name] = (v, np.hstack([g["p"], g["u0"]]))
    assert np.array_equal(out["vjp"][0], out["cs"][0])
    assert rel(out["vjp"][1], out["cs"][1]) < 1e-12
    assert rel(out["twice"][1], out["cs"][1]) > 0.1
    # each row is that trajectory's own gradient
    _, g2 = js.gradient(js.ODEProblem(F_VJP, U0, (0.0, 4.0), ps[2]), js.Tsit5(), LOSS,
                        wrt=("p", "u0"), **KW)
    assert rel(out["vjp"][1][2], np.concatenate([g2["p"], g2["u0"]])) < 1e-12


def test_large_state_reaction_vjp():
    """A grid reaction-diffusion problem above the threaded kernels' size (erk_large):
    the user's vjp of the reaction against the diagonal complex step."""
    g = js.Grid((192, 192), bc=js.Neumann())
    L = 0.05 * js.Laplacian(g)

    def reaction(du, u, p, t):
        for i in range(u.size):
            du[i] = p[0] * (u[i] - u[i] * u[i] * u[i])

    def reaction_vjp(ou, op, lam, u, p, t):
        acc = 0.0
        for i in range(u.size):
            ou[i] = p[0] * (1.0 - 3.0 * u[i] * u[i]) * lam[i]
            acc += (u[i] - u[i] * u[i] * u[i]) * lam[i]
        op[0] = acc

    u0 = np.random.default_rng(3).uniform(-0.5, 0.5, g.size)
    loss = js.L2Loss([0.001], np.zeros((1, g.size)))
    res = []
    for fun in (js.ODEFunction(reaction, jac_sparsity=sp.identity(g.size)),
                js.ODEFunction(reaction, vjp=reaction_vjp)):
        prob = js.SplitODEProblem(L, fun, u0, (0.0, 0.001), np.array([2.0]))
        for alg in (js.Euler(), js.RK4(), js.Vern7()):
            v, gr = js.gradient(prob, alg, loss, wrt=("u0", "p"), dt=1e-4)
            res.append((v, np.concatenate([gr["p"], gr["u0"]])))
    # Euler, RK4, Vern7 (whose last stage has b = 0: only the error estimate uses it)
    for k in range(3):
        assert res[3 + k][0] == res[k][0]
        assert rel(res[3 + k][1], res[k][1]) < 1e-12
        assert rel(res[3 + k][1][:1], res[k][1][:1]) < 1e-12
    # checkpointed: bit for bit the store-all gradient
    _, gc = js.gradient(prob, js.RK4(), loss, wrt=("u0", "p"), dt=1e-4,
                        sensealg=js.DiscreteAdjoint(checkpoints=3))
    assert np.array_equal(np.concatenate([gc["p"], gc["u0"]]), res[4][1])


def test_split_imex_vjp_of_f():
    """KenCarp4's IMEX adjoint takes the user's vjp for the explicit part ``f``."""
    g = js.Grid((8, 8), bc=js.Neumann())
    L = 0.2 * js.Laplacian(g)

    def reaction(du, u, p, t):
        for i in range(u.size):
            du[i] = p[0] * u[i] * (1.0 - u[i])

    def reaction_vjp(ou, op, lam, u, p, t):
        acc = 0.0
        for i in range(u.size):
            ou[i] = p[0] * (1.0 - 2.0 * u[i]) * lam[i]
            acc += u[i] * (1.0 - u[i]) * lam[i]
        op[0] = acc

    u0 = np.random.default_rng(4).uniform(0.1, 0.9, g.size)
    loss = js.L2Loss([0.5, 1.0], np.full((2, g.size), 0.5))
    out = []
    for fun in (js.ODEFunction(reaction), js.ODEFunction(reaction, vjp=reaction_vjp)):
        prob = js.SplitODEProblem(L, fun, u0, (0.0, 1.0), np.array([1.5]))
        v, gr = js.gradient(prob, js.KenCarp4(), loss, wrt=("p", "u0"), rtol=1e-7, atol=1e-9)
        out.append(np.concatenate([gr["p"], gr["u0"]]))
    assert rel(out[1], out[0]) < 1e-11


def test_vjp_that_raises_is_reported():
    with pytest.raises(UserFunctionError, match="vjp failed on purpose"):
        grad(js.ODEFunction(lotka, vjp=lotka_vjp_raises), js.Tsit5())


def test_check_gradient_with_the_user_vjp():
    prob = js.ODEProblem(F_VJP, U0, (0.0, 4.0), P)
    rep = js.check_gradient(prob, js.Tsit5(), LOSS, wrt="p", verbose=False, **KW)
    assert rep["passed"] and abs(rep["order"] - 2) < 0.2


def test_large_dense_complex_step_is_refused_clearly():
    """Above DENSE_VJP_MAX unknowns an f with neither jac_sparsity nor vjp gets a clear
    error (it used to allocate an n x n pattern: 11 GB for a 192^2 grid)."""
    from jitsolve.adjoint.vjp import DENSE_VJP_MAX
    from jitsolve.errors import InvalidProblemError
    n = DENSE_VJP_MAX + 1

    def decay(du, u, p, t):
        for i in range(u.size):
            du[i] = -p[0] * u[i]

    prob = js.ODEProblem(decay, np.ones(n), (0.0, 0.1), np.array([1.0]))
    loss = js.L2Loss([0.1], np.zeros((1, n)))
    with pytest.raises(InvalidProblemError, match="f: .*jac_sparsity"):
        js.gradient(prob, js.RK4(), loss, wrt="u0", dt=0.05)
    ok = js.remake(prob, f=js.ODEFunction(decay, jac_sparsity=sp.identity(n)))
    v, g = js.gradient(ok, js.RK4(), loss, wrt="u0", dt=0.05)
    assert np.allclose(g["u0"], np.exp(-0.2) * np.ones(n), rtol=1e-6)


@pytest.mark.parametrize("alg", [js.Rodas5P(), js.Kvaerno5()], ids=["Rodas5P", "Kvaerno5"])
def test_stiff_discrete_adjoint_with_jac_and_paramjac(alg):
    """A stiff method's Newton/Rosenbrock solves take the user's jac too, so the forward
    solve differs from the complex-step one by rounding only; the adjoint's products come
    from jac and paramjac (a wrong paramjac shows up in the gradient wrt p)."""
    _, g0 = grad(F_CS, alg)
    _, g1 = grad(js.ODEFunction(lotka, jac=lotka_jac, paramjac=lotka_paramjac), alg)
    assert rel(g1, g0) < 1e-7
    _, g2 = grad(js.ODEFunction(lotka, jac=lotka_jac, paramjac=lotka_paramjac_wrong), alg)
    assert rel(g2[4:], g1[4:]) < 1e-12 and abs(g2[3] - g1[3]) > 1e-3 * abs(g1[3])


def lotka_noise(gu, u, p, t):
    gu[0] = 0.1 * u[0]
    gu[1] = 0.1 * u[1]


def sde_grad(fun, alg, sensealg=None, **kw):
    prob = js.SDEProblem(fun, lotka_noise, U0, (0.0, 4.0), P)
    v, g = js.gradient(prob, alg, LOSS, wrt=("p", "u0"), sensealg=sensealg, seed=7,
                       **kw)
    return v, np.concatenate([g["p"], g["u0"]])


@pytest.mark.parametrize("alg,kw", [(js.EM(), dict(dt=1 / 64)),
                                    (js.SRIW1(), dict(rtol=1e-4, atol=1e-4))],
                         ids=["EM", "SRIW1-adaptive"])
def test_sde_adjoint_uses_the_drift_vjp(alg, kw):
    """The SDE discrete adjoints take the drift's own vjp (and jac/paramjac) first: the
    same pathwise gradient as the complex step to rounding, a wrong one changes it, and
    the checkpointed sweep gives the same bits."""
    v0, g0 = sde_grad(F_CS, alg, **kw)
    v1, g1 = sde_grad(F_VJP, alg, **kw)
    assert v1 == v0 and rel(g1, g0) < 1e-12
    _, g2 = sde_grad(js.ODEFunction(lotka, vjp=lotka_vjp_twice), alg, **kw)
    assert rel(g2, g0) > 0.1
    _, gj = sde_grad(js.ODEFunction(lotka, jac=lotka_jac, paramjac=lotka_paramjac), alg, **kw)
    assert rel(gj, g0) < 1e-12
    _, gw = sde_grad(js.ODEFunction(lotka, jac=lotka_jac, paramjac=lotka_paramjac_wrong), alg,
                     **kw)
    assert rel(gw[4:], g0[4:]) < 1e-12 and abs(gw[3] - g0[3]) > 1e-3 * abs(g0[3])
    if isinstance(alg, js.EM):
        _, gc = sde_grad(F_VJP, alg, js.DiscreteAdjoint(checkpoints=5), **kw)
        assert np.array_equal(gc, g1)


def noise_p(gu, u, p, t):                # diagonal noise, nonlinear in u and p
    gu[0] = 0.1 * p[3] * u[0] * u[1]
    gu[1] = 0.1 * u[1] * u[1] + 0.05 * p[0]


@njit
def noise_p_vjp(ou, op, lam, u, p, t):
    ou[0] = 0.1 * p[3] * u[1] * lam[0]
    ou[1] = 0.1 * p[3] * u[0] * lam[0] + 0.2 * u[1] * lam[1]
    op[0] = 0.05 * lam[1]
    op[1] = 0.0
    op[2] = 0.0
    op[3] = 0.1 * u[0] * u[1] * lam[0]


def noise_p_vjp_wrong(ou, op, lam, u, p, t):
    noise_p_vjp(ou, op, lam, u, p, t)
    op[3] *= 2.0


def noise_p_jac(J, u, p, t):
    J[0, 0] = 0.1 * p[3] * u[1]
    J[0, 1] = 0.1 * p[3] * u[0]
    J[1, 0] = 0.0
    J[1, 1] = 0.2 * u[1]


def noise_p_paramjac(Jp, u, p, t):
    Jp[:, :] = 0.0
    Jp[0, 3] = 0.1 * u[0] * u[1]
    Jp[1, 0] = 0.05


def sde_grad_g(g, alg, interp="ito", sensealg=None, **kw):
    prob = js.SDEProblem(F_VJP, g, U0, (0.0, 4.0), P, interpretation=interp)
    v, g = js.gradient(prob, alg, LOSS, wrt=("p", "u0"), sensealg=sensealg, seed=7, **kw)
    return v, np.concatenate([g["p"], g["u0"]])


@pytest.mark.parametrize("alg,interp,kw", [(js.EM(), "ito", dict(dt=1 / 64)),
                                           (js.EulerHeun(), "stratonovich", dict(dt=1 / 64)),
                                           (js.SRIW1(), "ito", dict(rtol=1e-4, atol=1e-4))],
                         ids=["EM", "EulerHeun", "SRIW1-adaptive"])
def test_sde_adjoint_uses_the_noise_vjp(alg, interp, kw):
    """``g`` given as ``js.ODEFunction(g, vjp=...)`` (or ``jac``/``paramjac``), diagonal
    noise: its own derivatives replace the complex steps of ``g`` in the SDE adjoints
    (the same gradient to rounding; a wrong one changes it), in the checkpointed sweep
    and in the ensemble kernel (rows bit for bit the per-trajectory sweeps)."""
    v0, g0 = sde_grad_g(noise_p, alg, interp, **kw)
    v1, g1 = sde_grad_g(js.ODEFunction(noise_p, vjp=noise_p_vjp), alg, interp, **kw)
    assert v1 == v0 and rel(g1, g0) < 1e-12
    _, gj = sde_grad_g(js.ODEFunction(noise_p, jac=noise_p_jac, paramjac=noise_p_paramjac),
                       alg, interp, **kw)
    assert rel(gj, g0) < 1e-12
    _, gw = sde_grad_g(js.ODEFunction(noise_p, vjp=noise_p_vjp_wrong), alg, interp, **kw)
    assert abs(gw[3] - g0[3]) > 1e-3 * abs(g0[3]) and rel(gw[4:], g0[4:]) < 1e-12
    gf = js.ODEFunction(noise_p, vjp=noise_p_vjp)
    if isinstance(alg, js.EM):
        _, gc = sde_grad_g(gf, alg, interp, js.DiscreteAdjoint(checkpoints=5), **kw)
        assert np.array_equal(gc, g1)
    prob = js.SDEProblem(F_VJP, gf, U0, (0.0, 4.0), P, interpretation=interp)
    assert js.remake(prob, p=P).g_function is gf
    u0s = U0 * np.array([[1.0], [0.9], [1.1]])
    ens = js.EnsembleProblem(prob, u0s=u0s)
    _, ge = js.gradient(ens, alg, LOSS, wrt=("p", "u0"), seed=7, **kw)
    loop = js.EnsembleProblem(prob, prob_func=lambda pr, i: js.remake(pr, u0=u0s[i]))
    _, gl = js.gradient(loop, alg, LOSS, wrt=("p", "u0"), seed=7, trajectories=3, **kw)
    assert np.array_equal(ge["p"], gl["p"]) and np.array_equal(ge["u0"], gl["u0"])
    assert np.array_equal(ge["p"][0], g1[:4]) and np.array_equal(ge["u0"][0], g1[4:])


def test_noise_derivatives_need_a_vector_g():
    def gm(G, u, p, t):
        G[0, 0] = 0.1
        G[1, 0] = 0.1 * u[0]
    with pytest.raises(js.errors.InvalidProblemError, match="g: its own vjp is for diagonal or "
                                                            "scalar noise"):
        js.SDEProblem(lotka, js.ODEFunction(gm, vjp=noise_p_vjp), U0, (0.0, 1.0), P,
                      noise="general", nbrownian=1)


def relu_decay(du, u, p, t):
    for i in range(u.size):
        du[i] = -p[0] * max(u[i], 0.0) + p[1]      # max: no complex version in Numba


def relu_decay_vjp(out_u, out_p, lam, u, p, t):
    s0 = 0.0
    s1 = 0.0
    for i in range(u.size):
        d = 1.0 if u[i] > 0.0 else 0.0
        out_u[i] = -p[0] * d * lam[i]
        s0 += -max(u[i], 0.0) * lam[i]
        s1 += lam[i]
    out_p[0] = s0
    out_p[1] = s1


@pytest.mark.parametrize("alg, kw", [(js.Tsit5(), dict(rtol=1e-10, atol=1e-12)),
                                     (js.ETDRK4(), dict(dt=0.05))])
def test_user_vjp_spares_f_the_complex_twin(alg, kw):
    """With its own vjp, f need not compile for complex numbers (max has no complex
    version): the adjoint takes no complex step of f; without it, a clear error."""
    from jitsolve.errors import JitsolveError
    u0 = np.array([1.0, 0.5, -0.2])
    p = np.array([0.7, 0.1])
    fun = js.ODEFunction(relu_decay, vjp=relu_decay_vjp)
    prob = (js.ODEProblem(fun, u0, (0.0, 1.0), p=p) if isinstance(alg, js.Tsit5) else
            js.SplitODEProblem(np.array([-0.3, -0.1, 0.0]), fun, u0, (0.0, 1.0), p=p))
    loss = js.L2Loss(np.array([0.5, 1.0]), np.zeros((2, 3)))
    val, g = js.gradient(prob, alg, loss, wrt=("p", "u0"), **kw)
    _, fd = js.gradient(prob, alg, loss, wrt=("p", "u0"), sensealg=js.FiniteDifference(), **kw)
    np.testing.assert_allclose(g["p"], fd["p"], rtol=1e-5)
    np.testing.assert_allclose(g["u0"], fd["u0"], rtol=1e-5, atol=1e-9)
    with pytest.raises(JitsolveError, match="f: Numba could not compile relu_decay"):
        js.gradient(js.remake(prob, f=js.ODEFunction(relu_decay)), alg, loss, wrt=("p",), **kw)


def cir_noise(gu, u, p, t):
    for i in range(u.size):
        gu[i] = p[1] * np.sqrt(max(u[i], 0.0))     # a CIR-type noise: max, no complex twin


def cir_noise_vjp(ou, op, lam, u, p, t):
    s = 0.0
    for i in range(u.size):
        x = max(u[i], 0.0)
        r = np.sqrt(x)
        ou[i] = p[1] * 0.5 / r * lam[i] if x > 0.0 else 0.0
        s += r * lam[i]
    op[0] = 0.0
    op[1] = s


def cir_noise_smooth(gu, u, p, t):          # the same noise where u > 0, complex-steppable
    for i in range(u.size):
        gu[i] = p[1] * np.sqrt(u[i])


@pytest.mark.parametrize("alg,kw", [(js.EM(), dict(dt=1 / 128)),
                                    (js.SRIW1(), dict(rtol=1e-4, atol=1e-4))],
                         ids=["EM", "SRIW1-adaptive"])
def test_sde_own_derivatives_spare_the_complex_twins(alg, kw):
    """With their own vjp, the drift and the noise need not compile for complex numbers
    (max): the SDE adjoint takes no complex step of them, single path and ensemble
    kernel alike, and gives the gradient of the same functions written without max
    (their paths stay positive here) differentiated by complex step; without the vjp, a
    clear error naming the function."""
    from jitsolve.errors import JitsolveError
    u0 = np.array([1.0, 0.6, 0.8])
    p = np.array([0.7, 0.1])
    T = np.array([0.5, 1.0])
    loss = js.L2Loss(T, np.zeros((2, 3)))
    f_vjp = js.ODEFunction(relu_decay, vjp=relu_decay_vjp)
    g_vjp = js.ODEFunction(cir_noise, vjp=cir_noise_vjp)
    prob = js.SDEProblem(f_vjp, g_vjp, u0, (0.0, 1.0), p)
    val, g = js.gradient(prob, alg, loss, wrt=("p", "u0"), seed=3, **kw)
    smooth = js.SDEProblem(decay_smooth, cir_noise_smooth, u0, (0.0, 1.0), p)
    val_s, g_s = js.gradient(smooth, alg, loss, wrt=("p", "u0"), seed=3, **kw)
    assert js.solve(prob, alg, seed=3, **kw).u.min() > 0.0
    assert val == pytest.approx(val_s, rel=1e-13)
    np.testing.assert_allclose(g["p"], g_s["p"], rtol=1e-10)
    np.testing.assert_allclose(g["u0"], g_s["u0"], rtol=1e-10)
    ens = js.EnsembleProblem(prob, u0s=np.stack([u0, 0.9 * u0]))
    _, ge = js.gradient(ens, alg, loss, wrt=("p", "u0"), seed=3, **kw)
    assert np.array_equal(ge["p"][0], g["p"]) and np.array_equal(ge["u0"][0], g["u0"])
    with pytest.raises(JitsolveError, match="^g: "):
        js.gradient(js.remake(prob, g=cir_noise), alg, loss, wrt="p", seed=3, **kw)
    with pytest.raises(JitsolveError, match="f: Numba could not compile relu_decay"):
        js.gradient(js.remake(prob, f=relu_decay), alg, loss, wrt="p", seed=3, **kw)


def decay_smooth(du, u, p, t):
    for i in range(u.size):
        du[i] = -p[0] * u[i] + p[1]
