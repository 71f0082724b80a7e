"""Gradients wrt a Diffusion operator's coefficient field (``wrt="kappa"``) through the
stiff discrete adjoints: Rosenbrock (the derivative of ``J = A(kappa)`` along the stages
included), ImplicitEuler and ESDIRK (implicit function theorem at the stages), on an
``ODEProblem(Diffusion)`` and on a ``SplitODEProblem(Diffusion, f)`` with both parts
implicit.  Checked against central differences of the same fixed-step solve, by the
Taylor remainder and across checkpointing variants."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import UnsupportedAlgorithmError

G1 = js.Grid((12,), bc=js.Dirichlet(0.0))
X = np.linspace(0.04, 0.96, 12)
KAPPA = 0.5 + X ** 2
U0 = np.sin(np.pi * X) + 0.3 * X
TD = np.array([0.01, 0.02])
FIXED = dict(adaptive=False, dt=0.02 / 16)


def _loss(shape):
    return js.L2Loss(TD, np.full((TD.size,) + shape, 0.2))


def reaction(du, u, p, t):
    for i in range(u.size):
        du[i] = p[0] * u[i] * (1.0 - u[i]) - p[1] * u[i]


def _check(prob, alg, wrt, step=1e-5, tol=1e-7, **kw):
    loss = _loss(prob.u0.shape)
    v, g = js.gradient(prob, alg, loss, wrt=wrt, **kw)
    v2, g2 = js.gradient(prob, alg, loss, wrt=wrt, sensealg=js.FiniteDifference(step=step), **kw)
    assert v == v2
    for k in wrt:
        err = np.abs(g[k] - g2[k]).max() / np.abs(g2[k]).max()
        assert err < tol, (type(alg).__name__, k, err)
    return g


@pytest.mark.parametrize("alg", [js.Rodas5P(), js.Rosenbrock23(), js.ImplicitEuler(),
                                 js.Kvaerno5(), js.KenCarp4()], ids=lambda a: type(a).__name__)
def test_kappa_gradient_matches_central_differences(alg):
    prob = js.ODEProblem(js.Diffusion(G1, KAPPA), U0, (0.0, 0.02))
    g = _check(prob, alg, ("kappa", "u0"), **FIXED)
    assert g["kappa"].shape == KAPPA.shape


@pytest.mark.parametrize("alg", [js.Rodas5P(), js.Kvaerno5()], ids=lambda a: type(a).__name__)
def test_kappa_and_p_through_a_split_problem(alg):
    # a nonlinear reaction: Kvaerno5's forward Newton stops at its tolerance, so the
    # differences of the forward solve are only as good as that (tight here); the adjoint
    # re-solves the stages to rounding (as tests/test_stiff_adjoint.py)
    grid = js.Grid((5, 4), bc=js.Dirichlet(1.0))          # nonzero boundary values
    rng = np.random.default_rng(2)
    kappa = 0.5 + rng.random((5, 4))
    u0 = 0.5 + 0.4 * rng.random((5, 4))
    prob = js.SplitODEProblem(js.Diffusion(grid, kappa), reaction, u0, (0.0, 0.02),
                              np.array([2.0, 0.3]))
    _check(prob, alg, ("kappa", "p"), tol=1e-6, rtol=1e-12, atol=1e-14, **FIXED)


def test_kappa_taylor_remainder_adaptive_rodas5p():
    prob = js.ODEProblem(js.Diffusion(G1, KAPPA), U0, (0.0, 0.02))
    loss = _loss(U0.shape)
    kw = dict(adaptive=False, dt=0.02 / 32)
    _, g = js.gradient(prob, js.Rodas5P(), loss, wrt="kappa", **kw)
    d = np.random.default_rng(0).standard_normal(KAPPA.shape)

    def J(k):
        pr = js.remake(prob, f=js.Diffusion(G1, k))
        return loss.value(js.solve(pr, js.Rodas5P(), saveat=TD, **kw).u)
    J0 = J(KAPPA)
    r = [abs(J(KAPPA + e * d) - J0 - e * (g["kappa"] @ d)) for e in (1e-2, 5e-3, 2.5e-3)]
    slopes = np.diff(np.log(r)) / np.diff(np.log([1e-2, 5e-3, 2.5e-3]))
    assert np.all(np.abs(slopes - 2.0) < 0.1), (r, slopes)


@pytest.mark.parametrize("alg", [js.Rodas5P(), js.Kvaerno5()], ids=lambda a: type(a).__name__)
def test_kappa_checkpoint_variants_bitwise_equal(alg, tmp_path):
    prob = js.ODEProblem(js.Diffusion(G1, KAPPA), U0, (0.0, 0.02))
    loss = _loss(U0.shape)
    kw = dict(wrt=("kappa", "u0"), rtol=1e-6, atol=1e-8)     # adaptive steps, held fixed
    v, g = js.gradient(prob, alg, loss, **kw)
    for sa in (js.DiscreteAdjoint(checkpoints=2),
               js.DiscreteAdjoint(checkpoints=2, store=js.HDF5Store(tmp_path / "k.h5"))):
        v2, g2 = js.gradient(prob, alg, loss, sensealg=sa, **kw)
        assert v2 == v and all(np.array_equal(g[k], g2[k]) for k in g)


def test_kappa_through_imex_kencarp4_is_refused():
    prob = js.SplitODEProblem(js.Diffusion(G1, KAPPA), reaction, U0, (0.0, 0.02),
                              np.array([2.0, 0.3]))
    with pytest.raises(UnsupportedAlgorithmError, match="kappa"):
        js.gradient(prob, js.KenCarp4(), _loss(U0.shape), wrt="kappa", **FIXED)
