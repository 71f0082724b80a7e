"""Continuous adjoints (InterpolatingAdjoint, QuadratureAdjoint, BacksolveAdjoint) with the
stiff methods: the adjoint ODE solved backwards by the forward method itself
(jitsolve.adjoint.continuous_stiff).  Each gradient is checked against the discrete
adjoint at a tight tolerance (exact for a solution that is itself accurate to ~1e-10) and
every method x sensealg pair against central differences of the whole solve; accuracy is
that of the tolerance the adjoint was solved at."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError, UnsupportedAlgorithmError
from jitsolve.gradient import SolveFailedError
from ode_models import lotka


def vdp(du, u, p, t):
    du[0] = u[1]
    du[1] = p[0] * ((1.0 - u[0] ** 2) * u[1]) - u[0]


def vdp_jac(J, u, p, t):
    J[0, 0] = 0.0
    J[0, 1] = 1.0
    J[1, 0] = -2.0 * p[0] * u[0] * u[1] - 1.0
    J[1, 1] = p[0] * (1.0 - u[0] ** 2)


def vdp_paramjac(Jp, u, p, t):
    Jp[0, 0] = 0.0
    Jp[1, 0] = (1.0 - u[0] ** 2) * u[1]


def robertson(du, u, p, t):
    du[0] = -p[0] * u[0] + p[2] * u[1] * u[2]
    du[1] = p[0] * u[0] - p[1] * u[1] ** 2 - p[2] * u[1] * u[2]
    du[2] = p[1] * u[1] ** 2


def forced(du, u, p, t):
    # stiff relaxation onto a moving target: df/dt != 0 (the Rosenbrock T term)
    du[0] = -p[0] * (u[0] - np.cos(3.0 * t)) + p[1] * u[1]
    du[1] = -u[1] + np.sin(t) * u[0]


def reaction(du, u, p, t):
    for i in range(u.size):
        du[i] = -p[0] * u[i] ** 3 + p[1]


STIFF = [js.Rodas5P(), js.Rosenbrock23(), js.KenCarp4(), js.Kvaerno5()]
STIFF_IDS = ["Rodas5P", "Rosenbrock23", "KenCarp4", "Kvaerno5"]
CONT = [js.InterpolatingAdjoint(), js.QuadratureAdjoint()]
CONT_IDS = ["interpolating", "quadrature"]
TIGHT = dict(rtol=1e-11, atol=1e-13)
KW = dict(rtol=1e-8, atol=1e-10)
#: relative gradient error allowed at KW's tolerance (Rosenbrock23 is order 2)
ACC = {"Rodas5P": 1e-6, "Rosenbrock23": 1e-4, "KenCarp4": 1e-5, "Kvaerno5": 1e-5}


def rel_err(g, ref):
    return float(np.max(np.abs(np.ravel(g) - np.ravel(ref))) / np.max(np.abs(ref)))


@pytest.fixture(scope="module")
def vdp_case():
    prob = js.ODEProblem(vdp, np.array([2.0, 0.0]), (0.0, 2.0), p=np.array([5.0]))
    td = np.linspace(0.5, 2.0, 4)
    data = np.array([[1.5, -0.5], [1.0, -1.0], [0.5, -1.5], [0.0, -2.0]])
    loss = js.L2Loss(td, data)
    ref = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"), **TIGHT)
    return prob, loss, ref


@pytest.mark.parametrize("sensealg", CONT, ids=CONT_IDS)
@pytest.mark.parametrize("alg", STIFF, ids=STIFF_IDS)
def test_van_der_pol_every_stiff_method(vdp_case, alg, sensealg):
    prob, loss, (vref, gref) = vdp_case
    v, g = js.gradient(prob, alg, loss, wrt=("p", "u0"), sensealg=sensealg, **KW)
    tol = ACC[type(alg).__name__]
    assert v == pytest.approx(vref, rel=tol)
    assert rel_err(g["p"], gref["p"]) < tol
    assert rel_err(g["u0"], gref["u0"]) < tol


def test_van_der_pol_against_central_differences(vdp_case):
    prob, loss, _ = vdp_case
    v, g = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"),
                       sensealg=js.InterpolatingAdjoint(), **KW)
    _, fd = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"),
                        sensealg=js.FiniteDifference(), **TIGHT)
    assert rel_err(g["p"], fd["p"]) < 1e-6
    assert rel_err(g["u0"], fd["u0"]) < 1e-6


@pytest.fixture(scope="module")
def fd_refs(vdp_case):
    """Central differences of whole solves (Rodas5P at TIGHT): Van der Pol (dissipative)
    and Lotka-Volterra (where backsolve is stable)."""
    prob, loss, _ = vdp_case
    _, fd_vdp = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"),
                            sensealg=js.FiniteDifference(), **TIGHT)
    lv = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 2.0), p=np.array([1.5, 1.0, 3.0, 1.0]))
    lv_loss = js.L2Loss(np.linspace(0.5, 2.0, 4), np.ones((4, 2)))
    _, fd_lv = js.gradient(lv, js.Rodas5P(), lv_loss, wrt=("p", "u0"),
                           sensealg=js.FiniteDifference(), **TIGHT)
    return (prob, loss, fd_vdp), (lv, lv_loss, fd_lv)


EVERY = STIFF + [js.ImplicitEuler()]
EVERY_IDS = STIFF_IDS + ["ImplicitEuler"]


@pytest.mark.parametrize("sensealg", [js.InterpolatingAdjoint(), js.QuadratureAdjoint(),
                                      js.BacksolveAdjoint(), js.ForwardSensitivity()],
                         ids=["interpolating", "quadrature", "backsolve", "forward"])
@pytest.mark.parametrize("alg", EVERY, ids=EVERY_IDS)
def test_every_pair_against_central_differences(fd_refs, alg, sensealg):
    """Each stiff method x continuous sensealg against central differences of the whole
    solve, to the accuracy of the tolerance it ran at (backsolve on Lotka-Volterra, the
    others on Van der Pol; ImplicitEuler, order 1, at a looser tolerance and bound)."""
    name = type(alg).__name__
    prob, loss, fd = fd_refs[1] if isinstance(sensealg, js.BacksolveAdjoint) else fd_refs[0]
    kw, tol = (dict(rtol=1e-8, atol=1e-8), 3e-3) if name == "ImplicitEuler" else (KW, ACC[name])
    _, g = js.gradient(prob, alg, loss, wrt=("p", "u0"), sensealg=sensealg, **kw)
    assert rel_err(g["p"], fd["p"]) < tol
    assert rel_err(g["u0"], fd["u0"]) < tol


def test_implicit_euler_converges_with_the_tolerance(vdp_case):
    # order 1 forward and backward: the gradient error falls with rtol
    prob, loss, (_, gref) = vdp_case
    errs = []
    for rt in (1e-4, 1e-6):
        _, g = js.gradient(prob, js.ImplicitEuler(), loss, wrt="p",
                           sensealg=js.InterpolatingAdjoint(), rtol=rt, atol=rt)
        errs.append(rel_err(g["p"], gref["p"]))
    assert errs[1] < 2e-3 and errs[1] < errs[0] / 5


def test_user_jac_and_paramjac_give_the_complex_step_gradient(vdp_case):
    prob, loss, _ = vdp_case
    fun = js.ODEFunction(vdp, jac=vdp_jac, paramjac=vdp_paramjac)
    prob_j = js.ODEProblem(fun, prob.u0, prob.tspan, p=prob.p)
    for sensealg in CONT:
        _, g = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"), sensealg=sensealg, **KW)
        _, gj = js.gradient(prob_j, js.Rodas5P(), loss, wrt=("p", "u0"), sensealg=sensealg, **KW)
        assert rel_err(gj["p"], g["p"]) < 1e-9
        assert rel_err(gj["u0"], g["u0"]) < 1e-9


@pytest.mark.parametrize("sensealg", CONT, ids=CONT_IDS)
@pytest.mark.parametrize("alg", [js.Rodas5P(), js.KenCarp4()], ids=["Rodas5P", "KenCarp4"])
def test_robertson(alg, sensealg):
    # rates over 9 orders of magnitude; the explicit methods cannot run it at all
    prob = js.ODEProblem(robertson, np.array([1.0, 0.0, 0.0]), (0.0, 100.0),
                         p=np.array([0.04, 3e7, 1e4]))
    td = np.array([1.0, 10.0, 100.0])
    loss = js.L2Loss(td, np.zeros((3, 3)))
    _, gref = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"), rtol=1e-11, atol=1e-14)
    _, g = js.gradient(prob, alg, loss, wrt=("p", "u0"), sensealg=sensealg,
                       rtol=1e-8, atol=1e-12)
    # per parameter: the rates' sensitivities span 1e-10 .. 1e-1
    np.testing.assert_allclose(g["p"], gref["p"], rtol=1e-6)
    assert rel_err(g["u0"], gref["u0"]) < 1e-6


@pytest.mark.parametrize("alg", [js.Rodas5P(), js.Kvaerno5()], ids=["Rodas5P", "Kvaerno5"])
def test_backsolve_on_a_conservative_problem(alg):
    # Lotka-Volterra is not dissipative: the backward state equation is stable
    prob = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 2.0),
                         p=np.array([1.5, 1.0, 3.0, 1.0]))
    loss = js.L2Loss(np.linspace(0.5, 2.0, 4), np.ones((4, 2)))
    _, gref = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"), **TIGHT)
    _, g = js.gradient(prob, alg, loss, wrt=("p", "u0"), sensealg=js.BacksolveAdjoint(), **KW)
    assert rel_err(g["p"], gref["p"]) < 1e-6
    assert rel_err(g["u0"], gref["u0"]) < 1e-6


def test_backsolve_is_unstable_on_a_dissipative_problem(vdp_case):
    # documented: the backward state equation of Van der Pol (attracting limit cycle)
    # amplifies errors; the interpolating adjoint on the same solve is accurate
    prob, loss, (_, gref) = vdp_case
    _, gb = js.gradient(prob, js.Rodas5P(), loss, wrt="p", sensealg=js.BacksolveAdjoint(), **KW)
    _, gi = js.gradient(prob, js.Rodas5P(), loss, wrt="p",
                        sensealg=js.InterpolatingAdjoint(), **KW)
    assert rel_err(gi["p"], gref["p"]) < 1e-6
    assert rel_err(gb["p"], gref["p"]) > 1e-2


@pytest.mark.parametrize("alg", [js.Rodas5P(), js.Rosenbrock23(), js.Kvaerno5()],
                         ids=["Rodas5P", "Rosenbrock23", "Kvaerno5"])
def test_time_dependent_right_hand_side(alg):
    prob = js.ODEProblem(forced, np.array([0.0, 1.0]), (0.0, 3.0), p=np.array([200.0, 0.5]))
    loss = js.L2Loss(np.array([1.0, 2.0, 3.0]), np.zeros((3, 2)))
    _, gref = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"), **TIGHT)
    _, g = js.gradient(prob, alg, loss, wrt=("p", "u0"), sensealg=js.InterpolatingAdjoint(),
                       **KW)
    tol = ACC[type(alg).__name__]
    assert rel_err(g["p"], gref["p"]) < tol
    assert rel_err(g["u0"], gref["u0"]) < tol


@pytest.fixture(scope="module")
def split_case():
    grid = js.Grid((24,), extent=((0.0, 1.0),), bc=js.Dirichlet(0.0))
    x = np.linspace(0.0, 1.0, 24)
    prob = js.SplitODEProblem(js.Laplacian(grid), reaction, np.sin(np.pi * x), (0.0, 0.2),
                              p=np.array([2.0, 1.0]))
    loss = js.L2Loss(np.array([0.1, 0.2]), np.full((2, 24), 0.3))
    ref = js.gradient(prob, js.Kvaerno5(), loss, wrt=("p", "u0"), **TIGHT)
    return grid, x, prob, loss, ref


@pytest.mark.parametrize("alg", [js.KenCarp4(), js.Rodas5P()], ids=["KenCarp4-IMEX", "Rodas5P"])
def test_split_problem(split_case, alg):
    # KenCarp4 runs the forward solve in IMEX form and the adjoint fully implicit
    _, _, prob, loss, (_, gref) = split_case
    _, g = js.gradient(prob, alg, loss, wrt=("p", "u0"), sensealg=js.InterpolatingAdjoint(), **KW)
    assert rel_err(g["p"], gref["p"]) < 1e-6
    assert rel_err(g["u0"], gref["u0"]) < 1e-6


def test_pure_grid_operator_problem(split_case):
    grid, x, _, _, _ = split_case
    prob = js.ODEProblem(js.Diffusion(grid, 1.0 + 0.5 * x), np.sin(np.pi * x), (0.0, 0.1))
    loss = js.L2Loss(np.array([0.05, 0.1]), np.zeros((2, 24)))
    _, gref = js.gradient(prob, js.Rodas5P(), loss, wrt="u0", **TIGHT)
    for sensealg in (js.InterpolatingAdjoint(), js.QuadratureAdjoint(), js.BacksolveAdjoint()):
        _, g = js.gradient(prob, js.Rodas5P(), loss, wrt="u0", sensealg=sensealg, **KW)
        assert rel_err(g["u0"], gref["u0"]) < 1e-7
    with pytest.raises(InvalidProblemError, match="wrt: this problem has no parameters p"):
        js.gradient(prob, js.Rodas5P(), loss, wrt="p", sensealg=js.InterpolatingAdjoint(), **KW)


def test_check_gradient_passes_on_van_der_pol(vdp_case):
    prob, loss, _ = vdp_case
    rep = js.check_gradient(prob, js.Rodas5P(), loss, wrt="p",
                            sensealg=js.InterpolatingAdjoint(), verbose=False,
                            rtol=1e-10, atol=1e-12)
    assert rep["passed"] and rep["order"] > 1.8


def test_refusals(vdp_case, split_case):
    prob, loss, _ = vdp_case
    with pytest.raises(UnsupportedAlgorithmError, match="sensealg: .*adaptive=False"):
        js.gradient(prob, js.Rodas5P(), loss, sensealg=js.InterpolatingAdjoint(),
                    adaptive=False, dt=0.01)
    grid, _, sp, sloss, _ = split_case
    with pytest.raises(UnsupportedAlgorithmError, match="dense_max=10"):
        js.gradient(sp, js.KenCarp4(dense_max=10), sloss, sensealg=js.InterpolatingAdjoint())
    with pytest.raises(UnsupportedAlgorithmError, match="wrt: use DiscreteAdjoint"):
        js.gradient(sp, js.KenCarp4(), sloss, wrt="kappa", sensealg=js.QuadratureAdjoint())
    with pytest.raises(UnsupportedAlgorithmError, match="648 unknowns .*dense_max=600"):
        js.gradient(sp, js.Rodas5P(dense_max=600), sloss, wrt=("p", "u0"),
                    sensealg=js.ForwardSensitivity())
    with pytest.raises(InvalidProblemError, match="rtoll"):
        js.gradient(prob, js.Rodas5P(), loss, sensealg=js.InterpolatingAdjoint(), rtoll=1e-8)


def test_failed_adjoint_solve_is_reported(vdp_case):
    # a budget the forward solve meets but the backward solve does not
    prob, loss, _ = vdp_case
    fwd = js.solve(prob, js.Rodas5P(), tstops=loss.t_data, **KW)
    assert fwd.successful
    budget = fwd.stats.naccept + fwd.stats.nreject + 10     # the backward solve needs ~2x
    with pytest.raises(SolveFailedError, match="adjoint solve of InterpolatingAdjoint .*MaxIters"):
        js.gradient(prob, js.Rodas5P(), loss, sensealg=js.InterpolatingAdjoint(),
                    maxiters=budget, **KW)


# ------------------------------------------------------------------ ForwardSensitivity
@pytest.mark.parametrize("alg", STIFF, ids=STIFF_IDS)
def test_forward_sensitivity_every_stiff_method(alg):
    # the tangent system solved by the forward method; t0 among the loss's times (the
    # initial tangents enter the gradient directly)
    prob = js.ODEProblem(vdp, np.array([2.0, 0.0]), (0.0, 2.0), p=np.array([5.0]))
    loss = js.L2Loss(np.array([0.0, 0.5, 1.0, 2.0]), np.ones((4, 2)))
    vref, gref = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"), **TIGHT)
    v, g = js.gradient(prob, alg, loss, wrt=("p", "u0"), sensealg=js.ForwardSensitivity(), **KW)
    tol = ACC[type(alg).__name__]
    assert v == pytest.approx(vref, rel=tol)
    assert rel_err(g["p"], gref["p"]) < tol
    assert rel_err(g["u0"], gref["u0"]) < tol


def test_forward_sensitivity_robertson_split_and_fixed_steps(split_case):
    prob = js.ODEProblem(robertson, np.array([1.0, 0.0, 0.0]), (0.0, 100.0),
                         p=np.array([0.04, 3e7, 1e4]))
    loss = js.L2Loss(np.array([1.0, 10.0, 100.0]), np.zeros((3, 3)))
    _, gref = js.gradient(prob, js.Rodas5P(), loss, wrt="p", rtol=1e-11, atol=1e-14)
    _, g = js.gradient(prob, js.Rodas5P(), loss, wrt="p", sensealg=js.ForwardSensitivity(),
                       rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(g["p"], gref["p"], rtol=1e-6)
    _, _, sp, sloss, (_, sref) = split_case
    _, gs = js.gradient(sp, js.KenCarp4(), sloss, wrt=("p", "u0"),
                        sensealg=js.ForwardSensitivity(), **KW)
    assert rel_err(gs["p"], sref["p"]) < 1e-6 and rel_err(gs["u0"], sref["u0"]) < 1e-6
    # fixed steps: the tangents ride along the state's steps (order 5 in dt)
    errs = []
    for dt in (0.02, 0.01):
        _, gd = js.gradient(sp, js.Rodas5P(), sloss, wrt="p", sensealg=js.ForwardSensitivity(),
                            adaptive=False, dt=dt)
        errs.append(rel_err(gd["p"], sref["p"]))
    assert errs[1] < 1e-6 and errs[1] < errs[0] / 8


def test_user_jac_in_backsolve_and_forward_sensitivity():
    def lotka_jac(J, u, p, t):
        J[0, 0] = p[0] - p[1] * u[1]
        J[0, 1] = -p[1] * u[0]
        J[1, 0] = p[3] * u[1]
        J[1, 1] = -p[2] + p[3] * u[0]
    p0 = np.array([1.5, 1.0, 3.0, 1.0])
    plain = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 2.0), p=p0)
    withjac = js.ODEProblem(js.ODEFunction(lotka, jac=lotka_jac), plain.u0, plain.tspan, p=p0)
    loss = js.L2Loss(np.linspace(0.5, 2.0, 4), np.ones((4, 2)))
    for sensealg in (js.BacksolveAdjoint(), js.ForwardSensitivity()):
        _, g = js.gradient(plain, js.Rodas5P(), loss, wrt=("p", "u0"), sensealg=sensealg, **KW)
        _, gj = js.gradient(withjac, js.Rodas5P(), loss, wrt=("p", "u0"), sensealg=sensealg, **KW)
        assert rel_err(gj["p"], g["p"]) < 1e-9 and rel_err(gj["u0"], g["u0"]) < 1e-9


@pytest.mark.parametrize("sensealg", [js.DiscreteAdjoint(), js.DiscreteAdjoint(checkpoints=3),
                                      js.ForwardSensitivity(), js.InterpolatingAdjoint(),
                                      js.BacksolveAdjoint(), js.QuadratureAdjoint(),
                                      js.FiniteDifference()], ids=lambda s: repr(s))
def test_check_gradient_every_sensealg_with_a_stiff_method(sensealg):
    prob = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 2.0),
                         p=np.array([1.5, 1.0, 3.0, 1.0]))
    loss = js.L2Loss(np.linspace(0.5, 2.0, 4), np.ones((4, 2)))
    rep = js.check_gradient(prob, js.Rodas5P(), loss, wrt="p", sensealg=sensealg, verbose=False,
                            rtol=1e-10, atol=1e-10, eps=0.05 * 0.5 ** np.arange(4))
    assert rep["passed"] and abs(rep["order"] - 2) < 0.3, rep


def test_backward_in_time_with_an_observation_at_t0():
    prob = js.ODEProblem(lotka, np.array([1.0, 1.0]), (2.0, 0.0),
                         p=np.array([1.5, 1.0, 3.0, 1.0]))
    # times along tspan: 2.0 is t0 (its gradient enters lam(t0) directly), 0.0 is t1
    loss = js.L2Loss(np.array([2.0, 1.5, 1.0, 0.0]), np.ones((4, 2)))
    _, gref = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"), rtol=1e-11, atol=1e-12)
    for sensealg in (js.InterpolatingAdjoint(), js.QuadratureAdjoint(), js.BacksolveAdjoint(),
                     js.ForwardSensitivity()):
        _, g = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"), sensealg=sensealg, **KW)
        assert rel_err(g["p"], gref["p"]) < 1e-7 and rel_err(g["u0"], gref["u0"]) < 1e-7


def test_jac_sparsity_colours_the_adjoint_jacobian(split_case):
    # the reaction is pointwise: a diagonal pattern, one complex evaluation per Jacobian
    import scipy.sparse as sp
    _, _, prob, loss, (_, gref) = split_case
    n = prob.u0.size
    sparse = js.SplitODEProblem(prob.L, js.ODEFunction(reaction, jac_sparsity=sp.eye(n)),
                                prob.u0, prob.tspan, p=prob.p)
    for alg, sensealg in ((js.KenCarp4(), js.InterpolatingAdjoint()),
                          (js.Rodas5P(), js.QuadratureAdjoint()),
                          (js.Kvaerno5(), js.ForwardSensitivity())):
        _, g = js.gradient(prob, alg, loss, wrt=("p", "u0"), sensealg=sensealg, **KW)
        _, gs = js.gradient(sparse, alg, loss, wrt=("p", "u0"), sensealg=sensealg, **KW)
        assert rel_err(gs["p"], g["p"]) < 1e-12 and rel_err(gs["u0"], g["u0"]) < 1e-12
        assert rel_err(gs["p"], gref["p"]) < 1e-6
    # backsolve here: the state integrated backwards blows up near t = 0.18 (heat equation
    # backwards plus a cubic); a clear failure (it was a ZeroDivisionError from the stiff
    # loop once the rejected steps had halved h down to 0)
    for pr in (prob, sparse):
        with pytest.raises(SolveFailedError, match="BacksolveAdjoint .*ReturnCode.Unstable"):
            js.gradient(pr, js.Rodas5P(), loss, sensealg=js.BacksolveAdjoint(), **KW)
    with pytest.raises(InvalidProblemError, match="jac_sparsity of shape"):  # when built
        js.SplitODEProblem(prob.L, js.ODEFunction(reaction, jac_sparsity=sp.eye(n + 1)),
                           prob.u0, prob.tspan, p=prob.p)
