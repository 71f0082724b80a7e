"""Stiff ensemble gradients in one compiled kernel (a trajectory per thread): every stiff
method, each row bit for bit the gradient of that trajectory's own problem, and against
central differences of the whole solve."""
import numpy as np
import pytest

import jitsolve as js
import jitsolve.sensitivity as S

STIFF = [js.Rodas5P(), js.Rosenbrock23(), js.KenCarp4(), js.Kvaerno5(), js.ImplicitEuler()]
IDS = [type(a).__name__ for a in STIFF]


def vdp(du, u, p, t):
    du[0] = u[1]
    du[1] = p[0] * ((1.0 - u[0] ** 2) * u[1]) - u[0]


def vdp_forced(du, u, p, t):            # non-autonomous: the Rosenbrock df/dt term
    du[0] = u[1]
    du[1] = p[0] * ((1.0 - u[0] ** 2) * u[1]) - u[0] + p[1] * np.sin(3.0 * t)


def vdp_vjp(out_u, out_p, v, u, p, t):
    out_u[0] = (-2.0 * p[0] * u[0] * u[1] - 1.0) * v[1]
    out_u[1] = v[0] + p[0] * (1.0 - u[0] ** 2) * v[1]
    out_p[0] = (1.0 - u[0] ** 2) * u[1] * v[1]


PROB = js.ODEProblem(vdp, np.array([2.0, 0.0]), (0.0, 1.0), p=np.array([5.0]))
TD = np.array([0.0, 0.3, 0.7, 1.0])
KW = dict(rtol=1e-7, atol=1e-9)
PS = np.array([[3.0], [5.0], [8.0]])
U0S = np.array([[2.0, 0.0], [1.5, 0.5], [1.0, -1.0]])


def no_loop(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the stiff ensemble gradient took the Python loop")
    monkeypatch.setattr(S, "_ensemble_gradient_loop", refuse)


def kernel_equals_singles(prob, alg, loss, u0s, ps, monkeypatch):
    """The ensemble gradient (the kernel: the loop refused) and its rows against the
    single gradients, bit for bit; returns the ensemble's ``(value, grads)``."""
    no_loop(monkeypatch)
    v, g = js.gradient(js.EnsembleProblem(prob, u0s=u0s, ps=ps), alg, loss, wrt=("p", "u0"),
                       **KW)
    monkeypatch.undo()
    out = [js.gradient(js.remake(prob, u0=u0s[i], p=ps[i]), alg, loss, wrt=("p", "u0"), **KW)
           for i in range(len(ps))]
    assert np.array_equal(g["p"], np.stack([gi["p"] for _, gi in out]))
    assert np.array_equal(g["u0"], np.stack([gi["u0"] for _, gi in out]))
    assert v == pytest.approx(sum(vi for vi, _ in out), rel=1e-14)
    return v, g


@pytest.mark.parametrize("alg", STIFF, ids=IDS)
def test_rows_are_single_gradients(alg, monkeypatch):
    loss = js.L2Loss(TD, np.random.default_rng(1).normal(size=(TD.size, 2)))
    v, g = kernel_equals_singles(PROB, alg, loss, U0S, PS, monkeypatch)
    assert g["p"].shape == (3, 1) and g["u0"].shape == (3, 2)
    assert len({float(x) for x in g["p"].ravel()}) == 3          # the trajectories differ


@pytest.mark.parametrize("alg", [js.Rodas5P(), js.Rosenbrock23()], ids=["Rodas5P", "Rosenbrock23"])
def test_non_autonomous_adaptive_rosenbrock(alg, monkeypatch):
    """The states recomputed with the accepted steps' df/dt increment, as the single
    adjoint does: rows equal, and the gradient against central differences."""
    prob = js.ODEProblem(vdp_forced, np.array([2.0, 0.0]), (0.0, 1.0), p=np.array([5.0, 2.0]))
    ps = np.array([[5.0, 2.0], [3.0, -1.0]])
    u0s = np.array([[2.0, 0.0], [1.0, 0.5]])
    loss = js.L2Loss(TD, np.ones((TD.size, 2)))
    v, g = kernel_equals_singles(prob, alg, loss, u0s, ps, monkeypatch)
    # central differences of the loss (rtol 1e-7: the adjoint holds the steps fixed)
    h = 1e-5
    for j in range(2):
        e = np.zeros(2)
        e[j] = h
        fd = [loss.value(js.solve(js.remake(prob, u0=u0s[1], p=ps[1] + s * e), alg, saveat=TD,
                                  rtol=1e-11, atol=1e-13).u) for s in (1, -1)]
        assert g["p"][1, j] == pytest.approx((fd[0] - fd[1]) / (2 * h), rel=2e-4, abs=1e-6)


def test_user_vjp_weights_and_central_differences(monkeypatch):
    """The user's vjp as the VJP source (its work arrays copied per thread), weighted
    data; rows equal to the single gradients, and against central differences of each
    trajectory's loss.  (One method: each VJP-source type is a compile of the whole
    kernel, ~45 s cold; the (E)SDIRK reverse takes the user's vjp through the same
    ``vjp_apply``, tests/test_user_vjp.py.)"""
    alg = js.Rodas5P()
    prob = js.ODEProblem(js.ODEFunction(vdp, vjp=vdp_vjp), np.array([2.0, 0.0]), (0.0, 1.0),
                         p=np.array([5.0]))
    rng = np.random.default_rng(2)
    loss = js.L2Loss(TD, rng.normal(size=(TD.size, 2)),
                     weights=rng.uniform(0.5, 2.0, size=(TD.size, 2)))
    v, g = kernel_equals_singles(prob, alg, loss, U0S, PS, monkeypatch)
    h = 1e-6
    for i in range(3):
        fd = [loss.value(js.solve(js.remake(prob, u0=U0S[i], p=PS[i] + s * h), alg, saveat=TD,
                                  rtol=1e-11, atol=1e-13).u) for s in (1, -1)]
        assert g["p"][i, 0] == pytest.approx((fd[0] - fd[1]) / (2 * h), rel=1e-3)


def test_fallbacks_stay_correct():
    """KenCarp4's IMEX form and an integer checkpoint budget take one gradient per
    trajectory (not the kernel) and give the same rows."""
    g1 = js.Grid((12,), extent=((0.0, 1.0),), bc=js.Dirichlet(0.0))

    def react(du, u, p, t):
        for i in range(u.size):
            du[i] = p[0] * u[i] * (1.0 - u[i])
    u0 = 0.5 * np.sin(np.pi * g1.cell_centers()[0])
    prob = js.SplitODEProblem(0.05 * js.Laplacian(g1), react, u0, (0.0, 0.5), p=np.array([1.0]))
    ps = np.array([[1.0], [3.0]])
    loss = js.L2Loss(np.array([0.25, 0.5]), np.zeros((2, 12)))
    v, g = js.gradient(js.EnsembleProblem(prob, ps=ps), js.KenCarp4(), loss, wrt="p", **KW)
    for i in range(2):
        _, gi = js.gradient(js.remake(prob, p=ps[i]), js.KenCarp4(), loss, wrt="p", **KW)
        assert np.array_equal(g["p"][i], gi["p"])
    loss = js.L2Loss(TD, np.ones((TD.size, 2)))
    _, ga = js.gradient(js.EnsembleProblem(PROB, ps=PS), js.Rodas5P(), loss, wrt="p", **KW)
    _, gc = js.gradient(js.EnsembleProblem(PROB, ps=PS), js.Rodas5P(), loss, wrt="p",
                        sensealg=js.DiscreteAdjoint(checkpoints=3), **KW)
    assert np.array_equal(ga["p"], gc["p"])
