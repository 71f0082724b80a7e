"""Audit of user derivatives and problem edits (forty-third session): a ``jac`` that writes
only the nonzeros broke the Rosenbrock steps of a SplitODEProblem (the linear part piled
up in a buffer never cleared); a ``vjp`` / ``jac`` / ``paramjac`` that accumulates into
its outputs gave wrong gradients (-74.9 for -0.107); a ``jac_sparsity`` of the wrong
size reached the explicit adjoints (wrong gradients, segmentation faults); messages; an
SDE saving every step of a long grid asked for 75 GiB before stopping at ``maxiters``."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import CompileError, InvalidProblemError

L4 = -2 * np.eye(4) + np.eye(4, k=1) + np.eye(4, k=-1)


def cubic(du, u, p, t):
    for i in range(u.size):
        du[i] = -p[0] * u[i] ** 3


def cubic_jac_diagonal(J, u, p, t):          # only the nonzeros of df/du
    for i in range(u.size):
        J[i, i] = -3 * p[0] * u[i] ** 2


@pytest.mark.parametrize("alg", [js.Rodas5P(), js.Rosenbrock23(), js.Kvaerno5()],
                         ids=lambda a: type(a).__name__)
def test_a_jac_writing_only_its_nonzeros_with_a_linear_part(alg):
    u0, p, T = np.linspace(0.5, 1.0, 4), np.array([1.0]), np.array([0.5, 1.0])
    kw = dict(rtol=1e-8, atol=1e-10, saveat=T)
    ref = js.solve(js.SplitODEProblem(L4, cubic, u0, (0.0, 1.0), p), alg, **kw)
    sol = js.solve(js.SplitODEProblem(L4, js.ODEFunction(cubic, jac=cubic_jac_diagonal), u0,
                                      (0.0, 1.0), p), alg, **kw)
    assert sol.retcode == js.ReturnCode.Success
    assert sol.stats.naccept <= 2 * ref.stats.naccept
    np.testing.assert_allclose(sol.u, ref.u, rtol=0, atol=1e-12)


def vdp(du, u, p, t):
    du[0] = u[1]
    du[1] = p[0] * ((1 - u[0] * u[0]) * u[1]) - u[0]


def vjp_accumulating(ou, op, lam, u, p, t):
    ou[0] += lam[1] * (-2.0 * p[0] * u[0] * u[1] - 1.0)
    ou[1] += lam[0] + lam[1] * p[0] * (1 - u[0] * u[0])
    op[0] += lam[1] * (1 - u[0] * u[0]) * u[1]


def jac_accumulating(J, u, p, t):
    J[0, 1] += 1.0
    J[1, 0] += -2.0 * p[0] * u[0] * u[1] - 1.0
    J[1, 1] += p[0] * (1 - u[0] * u[0])


def paramjac_accumulating(Jp, u, p, t):
    Jp[1, 0] += (1 - u[0] * u[0]) * u[1]


U0, P, SPAN = np.array([2.0, 0.0]), np.array([5.0]), (0.0, 3.0)
LOSS = js.L2Loss(np.linspace(0.5, 3.0, 6), np.ones((6, 2)))
KW = dict(rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("alg, sensealg", [
    (js.Tsit5(), js.DiscreteAdjoint()), (js.Tsit5(), js.InterpolatingAdjoint()),
    (js.Tsit5(), js.QuadratureAdjoint()), (js.Tsit5(), js.ForwardSensitivity()),
    (js.Rodas5P(), js.DiscreteAdjoint()), (js.Rodas5P(), js.InterpolatingAdjoint()),
    (js.Rodas5P(), js.ForwardSensitivity())],
    ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("which", ["vjp", "jac+paramjac"])
def test_derivatives_that_accumulate_into_their_outputs(alg, sensealg, which):
    F = (js.ODEFunction(vdp, vjp=vjp_accumulating) if which == "vjp" else
         js.ODEFunction(vdp, jac=jac_accumulating, paramjac=paramjac_accumulating))
    _, g = js.gradient(js.ODEProblem(F, U0, SPAN, P), alg, LOSS, wrt=("p", "u0"),
                       sensealg=sensealg, **KW)
    _, ref = js.gradient(js.ODEProblem(vdp, U0, SPAN, P), alg, LOSS, wrt=("p", "u0"),
                         sensealg=sensealg, **KW)
    np.testing.assert_allclose(g["p"], ref["p"], rtol=1e-6)
    np.testing.assert_allclose(g["u0"], ref["u0"], rtol=1e-6)


@pytest.mark.parametrize("pattern", [np.eye(1), np.eye(3), np.ones((40, 40))],
                         ids=["1", "3", "40"])
def test_a_jac_sparsity_of_another_size_is_refused_when_the_problem_is_built(pattern):
    F = js.ODEFunction(vdp, jac_sparsity=pattern)
    with pytest.raises(InvalidProblemError, match=r"^f: jac_sparsity of shape .* 2 entries"):
        js.ODEProblem(F, U0, SPAN, P)
    prob = js.ODEProblem(js.ODEFunction(vdp, jac_sparsity=np.ones((2, 2))), U0, SPAN, P)
    with pytest.raises(InvalidProblemError, match=r"^f: jac_sparsity of shape \(2, 2\)"):
        js.remake(prob, u0=np.ones(3))


def branchy(du, u, p, t):
    if u[0] > 0:
        du[0] = -p[0] * u[0]
    else:
        du[0] = 0.0


def test_messages_for_the_complex_twin_and_the_jac_arguments():
    prob = js.ODEProblem(branchy, np.array([1.0]), (0.0, 1.0), np.array([1.0]))
    with pytest.raises(CompileError, match="complex step need it to compile for complex "
                                           "states.*give the derivatives"):
        js.solve(prob, js.Rodas5P())

    def jac3(J, u, p):
        J[0, 0] = -p[0]
    with pytest.raises(InvalidProblemError, match=r"^jac: .*\(e\.g\. jac\(J, u, p, t\)\)"):
        js.solve(js.ODEProblem(js.ODEFunction(branchy, jac=jac3), np.array([1.0]),
                               (0.0, 1.0), np.array([1.0])), js.Rodas5P())


def decay(du, u, p, t):
    du[0] = -u[0]


def small_noise(gu, u, p, t):
    gu[0] = 0.1


def test_an_sde_saving_every_step_of_a_long_grid_stops_at_maxiters():
    prob = js.SDEProblem(decay, small_noise, np.ones(1), (0.0, 1e7))
    sol = js.solve(prob, js.EM(), dt=1e-3, maxiters=1000)      # 10^10 grid points
    assert sol.retcode == js.ReturnCode.MaxIters
    assert sol.t.size == 1001 and sol.t[-1] == pytest.approx(1.0)
    # (refused since the forty-eighth session by the float spacing of t, before the
    # Brownian tree's depth, 2^60 steps, which it always implies)
    with pytest.raises(InvalidProblemError, match=r"^dt: 1e-19 does not move t"):
        js.solve(js.remake(prob, tspan=(0.0, 1.0)), js.EM(), dt=1e-19)


def sigma_diag(gu, u, p, t):
    gu[0] = 0.1 * u[0]
    gu[1] = 0.1 * u[1]


def sigma_general(G, u, p, t):
    G[0, 0] = 0.1 * u[0]
    G[1, 0] = 0.1 * u[1]


def test_remake_to_general_noise_asks_for_nbrownian():
    def drift(du, u, p, t):
        du[0] = -u[0]
        du[1] = -u[1]
    prob = js.SDEProblem(drift, sigma_diag, np.ones(2), (0.0, 1.0))
    with pytest.raises(InvalidProblemError, match="^nbrownian: "):
        js.remake(prob, noise="general", g=sigma_general)
    gen = js.remake(prob, noise="general", g=sigma_general, nbrownian=1)
    assert gen.nbrownian == 1


def test_check_gradient_says_when_loose_tolerances_make_it_fail():
    prob = js.ODEProblem(vdp, U0, SPAN, P)
    loose = js.check_gradient(prob, js.Rodas5P(), LOSS, wrt="p", verbose=False)
    assert not loose["passed"]
    assert "rtol > 1e-6" in loose["hint"]
    tight = js.check_gradient(prob, js.Rodas5P(), LOSS, wrt="p", verbose=False, **KW)
    assert tight["passed"] and tight["hint"] == ""


def jac_for_three(J, u, p, t):          # written for three states
    J[0, 1] = 1.0
    J[1, 0] = -2.0 * p[0] * u[0] * u[1] - 1.0
    J[1, 1] = p[0] * (1 - u[0] * u[0])
    J[2, 2] = 1e6


def paramjac_for_three(Jp, u, p, t):    # written for three parameters
    Jp[1, 0] = (1 - u[0] * u[0]) * u[1]
    Jp[1, 2] = 7.0


def vjp_for_three(ou, op, lam, u, p, t):
    ou[0] = lam[1] * (-2.0 * p[0] * u[0] * u[1] - 1.0)
    ou[1] = lam[0] + lam[1] * p[0] * (1 - u[0] * u[0])
    op[0] = lam[1] * (1 - u[0] * u[0]) * u[1]
    ou[2] = 5.0


@pytest.mark.parametrize("name, F", [
    ("jac", js.ODEFunction(vdp, jac=jac_for_three)),
    ("paramjac", js.ODEFunction(vdp, paramjac=paramjac_for_three)),
    ("vjp", js.ODEFunction(vdp, vjp=vjp_for_three))])
def test_derivatives_indexing_out_of_bounds_are_refused(name, F):
    """They corrupted memory (``free(): invalid pointer``) or gave wrong gradients."""
    prob = js.ODEProblem(F, U0, SPAN, P)
    with pytest.raises(InvalidProblemError, match=rf"^{name}: .* out of bounds"):
        js.gradient(prob, js.Tsit5(), LOSS, wrt="p", **KW)
    if name == "jac":
        with pytest.raises(InvalidProblemError, match=r"^jac: .*indexes J out of bounds"):
            js.solve(prob, js.Rodas5P())
