"""Ensemble gradients outside the ensemble kernels (``prob_func``, custom losses, other
sensealgs) -- one ``js.gradient`` per trajectory -- and in them (Rodas5P's discrete
adjoint, tests/test_stiff_ensemble_gradient.py): each row equal bit for bit to the
gradient of that trajectory's own problem, the value their sum."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError
from jitsolve.gradient import SolveFailedError


def vdp(du, u, p, t):
    du[0] = u[1]
    du[1] = p[0] * ((1.0 - u[0] ** 2) * u[1]) - u[0]


PROB = js.ODEProblem(vdp, np.array([2.0, 0.0]), (0.0, 1.0), p=np.array([5.0]))
TD = np.array([0.5, 1.0])
LOSS = js.L2Loss(TD, np.ones((2, 2)))
KW = dict(rtol=1e-8, atol=1e-10)


def per_trajectory(probs, alg, loss, sensealg=None):
    out = [js.gradient(pr, alg, loss, wrt=("p", "u0"), sensealg=sensealg, **KW) for pr in probs]
    return (sum(v for v, _ in out), np.stack([g["p"] for _, g in out]),
            np.stack([g["u0"] for _, g in out]))


@pytest.mark.parametrize("alg,sensealg", [(js.Rodas5P(), None),
                                          (js.KenCarp4(), js.InterpolatingAdjoint()),
                                          (js.Tsit5(), js.ForwardSensitivity())],
                         ids=["Rodas5P-discrete", "KenCarp4-interpolating", "Tsit5-forward"])
def test_rows_of_u0s_and_ps(alg, sensealg):
    ps = np.array([[3.0], [5.0], [8.0]])
    u0s = np.array([[2.0, 0.0], [1.5, 0.5], [1.0, -1.0]])
    v, g = js.gradient(js.EnsembleProblem(PROB, u0s=u0s, ps=ps), alg, LOSS, wrt=("p", "u0"),
                       sensealg=sensealg, **KW)
    probs = [js.remake(PROB, u0=u0s[i], p=ps[i]) for i in range(3)]
    v_ref, gp, gu = per_trajectory(probs, alg, LOSS, sensealg)
    assert v == v_ref
    assert np.array_equal(g["p"], gp) and np.array_equal(g["u0"], gu)
    assert g["p"].shape == (3, 1) and g["u0"].shape == (3, 2)
    assert len({float(x) for x in gp.ravel()}) == 3       # the trajectories differ


def test_prob_func_and_custom_loss():
    def prob_func(pr, i):
        return js.remake(pr, p=np.array([2.0 + i]))
    custom = js.Loss(lambda u: float(np.sum(u ** 4)), lambda u: 4.0 * u ** 3, t_data=TD)
    for alg in (js.Tsit5(), js.Rodas5P()):
        v, g = js.gradient(js.EnsembleProblem(PROB, prob_func=prob_func), alg, custom,
                           wrt=("p", "u0"), trajectories=2, **KW)
        v_ref, gp, gu = per_trajectory([prob_func(PROB, i) for i in range(2)], alg, custom)
        assert v == v_ref and np.array_equal(g["p"], gp) and np.array_equal(g["u0"], gu)
    # against central differences of one trajectory's loss
    h = 1e-6
    fd = [(custom.value(js.solve(prob_func(PROB, 1 + s * h), js.Rodas5P(), saveat=TD,
                                 rtol=1e-11, atol=1e-13).u)) for s in (1, -1)]
    assert g["p"][1, 0] == pytest.approx((fd[0] - fd[1]) / (2 * h), rel=1e-5)


def test_errors_name_the_trajectory():
    ps = np.array([[5.0], [5.0]])
    with pytest.raises(SolveFailedError, match="trajectory 0 of the ensemble: .*MaxIters"):
        js.gradient(js.EnsembleProblem(PROB, ps=ps), js.Rodas5P(), LOSS, maxiters=3, **KW)
    bad = js.EnsembleProblem(PROB, prob_func=lambda pr, i: js.remake(pr, p=np.ones(1 + i)))
    with pytest.raises(InvalidProblemError, match="prob_func: .*differ in size"):
        js.gradient(bad, js.Rodas5P(), LOSS, wrt="p", trajectories=2, **KW)
    with pytest.raises(InvalidProblemError, match="prob_func: tspan of trajectory 1"):
        js.gradient(js.EnsembleProblem(PROB, prob_func=lambda pr, i: js.remake(
            pr, tspan=(0.0, 1.0 + i))), js.Rodas5P(), LOSS, trajectories=2, **KW)
    with pytest.raises(InvalidProblemError, match="trajectories: required"):
        js.gradient(js.EnsembleProblem(PROB, prob_func=lambda pr, i: pr), js.Rodas5P(), LOSS)
    for bad_n in (0, 2.5, True):      # as js.solve says it (0 read as "not given" before)
        with pytest.raises(InvalidProblemError, match="trajectories: expected an integer >= 1"):
            js.gradient(js.EnsembleProblem(PROB), js.Rodas5P(), LOSS, trajectories=bad_n)
    with pytest.raises(InvalidProblemError, match="wrt: ensembles differentiate"):
        js.gradient(js.EnsembleProblem(PROB, ps=ps), js.Rodas5P(), LOSS, wrt="kappa")
