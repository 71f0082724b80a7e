"""Discrete adjoints of Euler-Maruyama (Itô), Euler-Heun (Stratonovich) and SRA1 (additive
noise, fixed or adaptive steps) with general (matrix) noise, ``g(G, u, p, t)`` writing the
n x m matrix G: the step ``u' = u + h f + G(u) dW`` (Euler-Heun: its predictor and
trapezoidal corrector; SRA1: its stages, where G_s meets dW and I_(1,0)/h) is reversed with
complex-step VJPs of ``u -> G(u) x`` (kernels/cpu/sde_adjoint.py ``vjp_noise_matrix``,
``vjp_noise_weighted``)."""
import numpy as np
import pytest

import jitsolve as js


def f2(du, u, p, t):
    du[0] = p[0] * u[1] - 0.2 * u[0] * u[0]
    du[1] = -p[1] * u[0] + 0.1 * t


def g23(G, u, p, t):             # n = 2 states, m = 3 Brownian motions, depends on u and p
    G[0, 0] = p[2] * u[0]
    G[0, 1] = 0.1 * u[1] * u[1]
    G[0, 2] = 0.05
    G[1, 0] = 0.2 * u[0] * u[1]
    G[1, 1] = p[3]
    G[1, 2] = p[2] * np.sin(u[1])


def g21(G, u, p, t):             # one Brownian motion driving both states
    G[0, 0] = p[2] * u[1]
    G[1, 0] = p[3] * u[0] * u[0]


P = np.array([1.1, 0.7, 0.4, 0.3])
U0 = np.array([1.0, 0.5])
GEN3 = js.SDEProblem(f2, g23, U0, (0.0, 1.0), P, noise="general", nbrownian=3)
GEN1 = js.SDEProblem(f2, g21, U0, (0.0, 1.0), P, noise="general", nbrownian=1)
STRAT3 = js.remake(GEN3, interpretation="stratonovich")
STRAT1 = js.remake(GEN1, interpretation="stratonovich")


def g_add(G, u, p, t):           # additive (SRA1's class): depends on p and t, not on u
    G[0, 0] = p[2] * (1.0 + t)
    G[0, 1] = 0.1
    G[0, 2] = p[3] * p[2]
    G[1, 0] = -0.2 * p[3]
    G[1, 1] = p[3] * np.cos(t)
    G[1, 2] = 0.05 * t


ADD3 = js.SDEProblem(f2, g_add, U0, (0.0, 1.0), P, noise="general", nbrownian=3)
SRA = js.SRA1()
CASES = [(js.EM(), GEN3), (js.EM(), GEN1), (js.EulerHeun(), STRAT3), (js.EulerHeun(), STRAT1),
         (SRA, ADD3)]
IDS = ["em-m3", "em-m1", "heun-m3", "heun-m1", "sra1-m3"]
ADAPT = dict(rtol=1e-3, atol=1e-3)


def _loss(td):
    return js.L2Loss(td, np.full((td.size, 2), 0.6))


@pytest.mark.parametrize("alg,prob", CASES, ids=IDS)
def test_general_noise_adjoint_matches_central_differences(alg, prob):
    td = np.array([0.25, 0.5, 1.0])
    kw = dict(wrt=("p", "u0"), dt=2.0 ** -7, seed=5)
    if alg is SRA:
        kw["adaptive"] = False
    v, g = js.gradient(prob, alg, _loss(td), **kw)
    v2, g2 = js.gradient(prob, alg, _loss(td), sensealg=js.FiniteDifference(step=1e-6), **kw)
    assert v == v2
    for k in ("p", "u0"):
        np.testing.assert_allclose(g[k], g2[k], rtol=1e-7, atol=1e-7 * np.abs(g2[k]).max())
    assert np.abs(g["p"][2:]).min() > 1e-6      # the noise parameters do enter


STEPS = [dict(), dict(), dict(adaptive=False), ADAPT]
VALUE_CASES = [(js.EM(), GEN3), (js.EulerHeun(), STRAT3), (SRA, ADD3), (SRA, ADD3)]
VALUE_IDS = ["em", "heun", "sra1-fixed", "sra1-adaptive"]


@pytest.mark.parametrize("alg,prob,steps", [c + (s,) for c, s in zip(VALUE_CASES, STEPS)],
                         ids=VALUE_IDS)
def test_general_noise_value_is_the_forward_solve(alg, prob, steps):
    td = np.array([0.5, 1.0])
    kw = dict(dict(dt=2.0 ** -6), **steps)
    v, _ = js.gradient(prob, alg, _loss(td), wrt="p", seed=2, **kw)
    sol = js.solve(prob, alg, seed=2, saveat=td, **kw)
    assert v == _loss(td).value(sol.u)


@pytest.mark.parametrize("alg,prob,steps", [c + (s,) for c, s in zip(VALUE_CASES, STEPS)],
                         ids=VALUE_IDS)
def test_general_noise_checkpoints_bitwise_equal(alg, prob, steps, tmp_path):
    td = np.array([0.125, 0.5, 1.0])
    kw = dict(dict(wrt=("p", "u0"), dt=2.0 ** -7, seed=8), **steps)
    v, g = js.gradient(prob, alg, _loss(td), **kw)
    for sa in (js.DiscreteAdjoint(checkpoints=1), js.DiscreteAdjoint(checkpoints=5),
               js.DiscreteAdjoint(checkpoints=3, store=js.HDF5Store(tmp_path / "ck.h5"))):
        v2, g2 = js.gradient(prob, alg, _loss(td), sensealg=sa, **kw)
        assert v2 == v and all(np.array_equal(g[k], g2[k]) for k in g)


def lin_f(du, u, p, t):
    du[0] = p[0] * u[0] + p[1] * u[1]
    du[1] = -p[1] * u[0] - 0.5 * u[1]


def lin_g(G, u, p, t):           # linear in u: every step is a linear map of u
    G[0, 0] = p[2] * u[0]
    G[0, 1] = 0.3 * u[1]
    G[1, 0] = -0.2 * u[0] + p[2] * u[1]
    G[1, 1] = 0.1 * u[0]


@pytest.mark.parametrize("alg,interp", [(js.EM(), "ito"), (js.EulerHeun(), "stratonovich")],
                         ids=["em", "heun"])
def test_general_noise_dot_product(alg, interp):
    rng = np.random.default_rng(1)
    w, v = rng.standard_normal(2), rng.standard_normal(2)
    prob = js.SDEProblem(lin_f, lin_g, v, (0.0, 1.0), np.array([-0.3, 0.6, 0.4]),
                         noise="general", nbrownian=2, interpretation=interp)
    loss = js.Loss(lambda u: float(u[0] @ w), lambda u: np.broadcast_to(w, u.shape).copy())
    loss.t_data = np.array([1.0])
    _, g = js.gradient(prob, alg, loss, wrt="u0", dt=2.0 ** -7, seed=3)
    Mv = js.solve(prob, alg, dt=2.0 ** -7, seed=3).u[-1]
    assert g["u0"] @ v == pytest.approx(w @ Mv, rel=1e-12)


def test_sra1_general_noise_adaptive_gradient_is_the_recorded_steps_derivative():
    """Adaptive SRA1: the gradient is that of the recorded step sequence (held fixed),
    checked against central differences of the adaptive solve (a perturbation of 1e-7
    leaves the controller's dyadic steps unchanged here)."""
    td = np.array([0.25, 0.5, 1.0])
    kw = dict(wrt=("p", "u0"), dt=2.0 ** -4, seed=5, **ADAPT)
    v, g = js.gradient(ADD3, SRA, _loss(td), **kw)
    v2, g2 = js.gradient(ADD3, SRA, _loss(td), sensealg=js.FiniteDifference(step=1e-7), **kw)
    assert v == v2
    for k in ("p", "u0"):
        np.testing.assert_allclose(g[k], g2[k], rtol=1e-6, atol=1e-6 * np.abs(g2[k]).max())
    assert np.abs(g["p"][2:]).min() > 1e-6
