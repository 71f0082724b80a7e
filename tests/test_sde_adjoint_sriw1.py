"""Discrete adjoint of fixed-step SRIW1 (Rößler 2010 SRI, strong order 1.5; Itô, diagonal and
scalar noise; adaptive steps in test_sde_adjoint_adaptive.py): the gradient against
central differences of the whole solve with the same seed, dot-product tests of single
reverse steps and of the whole sweep on a linear SDE, checkpointing variants bit-for-bit
equal, the advance kernel's states bit-identical to ``js.solve``, bad inputs. Nothing is
compared with stored numbers: every reference is computed by the same code with the same
seed (the noise generator may change)."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError, UnsupportedAlgorithmError
from sde_models import nl_f, nl_g, sc_g


P = np.array([1.1, 0.6, 0.8, 0.3])
NL = js.SDEProblem(nl_f, nl_g, np.array([1.0, 0.7]), (0.0, 1.0), P)
SC = js.SDEProblem(nl_f, sc_g, np.array([1.0, 0.7]), (0.0, 1.0), P, noise="scalar")
PROBS = [NL, SC]
IDS = ["diagonal", "scalar"]
FIXED = dict(adaptive=False)


def _loss(prob, td):
    return js.L2Loss(td, np.full((td.size,) + prob.u0.shape, 0.8))


def _check(prob, td, **kw):
    loss = _loss(prob, td)
    v, g = js.gradient(prob, js.SRIW1(), loss, wrt=("p", "u0"), **kw)
    v2, g2 = js.gradient(prob, js.SRIW1(), loss, wrt=("p", "u0"),
                         sensealg=js.FiniteDifference(step=1e-6), **kw)
    assert v == v2
    for k in ("p", "u0"):
        err = np.abs(g[k] - g2[k]).max() / np.abs(g2[k]).max()
        print(f"SRIW1 {prob.noise} {k}: max relative error vs central differences {err:.2e}")
        assert err < 1e-7, (k, g[k], g2[k])
    return v, g


@pytest.mark.parametrize("prob", PROBS, ids=IDS)
def test_sriw1_adjoint_matches_central_differences(prob):
    _check(prob, np.array([0.0, 0.25, 0.5, 1.0]), dt=2.0 ** -6, seed=4, **FIXED)


def test_sriw1_adjoint_non_dyadic_grid_and_other_span():
    # 50 steps, not a power of two: the Lévy-area tree spans 64 steps of dt
    prob = js.remake(NL, tspan=(0.5, 2.0))
    dt = 0.03
    td = 0.5 + dt * np.array([10, 20, 50])
    td[-1] = 2.0
    _check(prob, td, dt=dt, seed=5, **FIXED)


def _setup(prob, dt, seed, wrt=("u0",)):
    """The packed arguments of the sri_* kernels for one path, as sde_gradient builds them."""
    from jitsolve.kernels.cpu import sde_adjoint as K
    from jitsolve.sde import _prepare
    from jitsolve.sde_gradient import _vjp_sources
    from jitsolve.solve import _DE_DEFAULTS
    from jitsolve.solvers.sde.driver import geometry, schedule
    mod, funcs, kw = _prepare(prob, js.SRIW1(), dict(_DE_DEFAULTS, dt=dt, seed=seed, **FIXED))
    sch = schedule(kw["tspan"], dt, False, None)
    t0, t1 = kw["tspan"]
    vjf, vjg, _, _ = _vjp_sources(prob, wrt)
    fc, vjf_r, gc, vjg_r, uf = K.split_sources(vjf, vjg)
    return dict(K=K, f=funcs[0], gv=funcs[1], fc=fc, gc=gc, vjf_r=vjf_r, uf=uf, vjg_r=vjg_r,
                tab=np.ascontiguousarray(mod.TABLEAU), N=sch.N,
                geo=geometry(sch),
                ip=np.array([sch.N, sch.maxdepth, 0 if prob.noise == "diagonal" else 1,
                             prob.nbrownian, 0], dtype=np.int64),
                seed=np.uint64(seed), traj=np.uint64(0))


def _advance(a, p, u, i0, i1, states, store):
    K = a["K"]
    tf, ti = K.sra_tree(int(a["ip"][3]), a["seed"], a["traj"])
    K.sri_advance(a["f"], a["gv"], a["tab"], p, u, a["geo"], a["ip"], np.empty(0), a["seed"],
                  a["traj"], tf, ti, i0, i1, states, store)


def _reverse(a, p, states, i0, i1, lam):
    K = a["K"]
    tf, ti = K.sra_tree(int(a["ip"][3]), a["seed"], a["traj"])
    K.sri_reverse(a["f"], a["gv"], a["fc"], a["gc"], a["vjf_r"], a["uf"], a["vjg_r"], a["tab"], p,
                  states, a["geo"], a["ip"], np.empty(0), a["seed"], a["traj"], tf, ti, i0,
                  i1, np.zeros((1, lam.size)), -np.ones(a["N"], dtype=np.int64), lam,
                  np.zeros(0))


@pytest.mark.parametrize("prob", PROBS, ids=IDS)
@pytest.mark.parametrize("dt", [2.0 ** -7, 0.013], ids=["dyadic", "t1-off-the-nodes"])
def test_sriw1_advanced_states_equal_the_forward(prob, dt):
    a = _setup(prob, dt, 7)
    fwd = js.solve(prob, js.SRIW1(), dt=dt, seed=7, **FIXED)
    u = prob.u0.copy()
    states = np.zeros((a["N"], 2))
    _advance(a, prob.p, u, 0, a["N"], states, True)
    assert np.array_equal(states, fwd.u[:-1])
    assert np.array_equal(u, fwd.u[-1])
    # and restarted mid-path (as a checkpointed sweep does): the same states again
    k = a["N"] // 3
    u2 = fwd.u[k].copy()
    _advance(a, prob.p, u2, k, a["N"], np.zeros((1, 2)), False)
    assert np.array_equal(u2, fwd.u[-1])


# a linear SDE (coupled drift, noise coupling the states): every SRIW1 step is a linear
# map u' = M_i u (the stages are linear in u), so the reverse step must be its transpose
def lin_f(du, u, p, t):
    du[0] = p[0] * u[0] + p[1] * u[1]
    du[1] = -p[1] * u[0] + p[0] * u[1] + p[2] * u[2]
    du[2] = p[2] * u[0] - u[2]


def lin_g(gu, u, p, t):
    gu[0] = p[3] * u[0]
    gu[1] = p[3] * u[1] - 0.2 * p[3] * u[0]
    gu[2] = 0.5 * u[2] + p[3] * u[1]


def lin_gs(gu, u, p, t):
    gu[0] = p[3] * u[1]
    gu[1] = p[3] * u[0] - 0.3 * u[2]
    gu[2] = 0.4 * u[0]


P_LIN = np.array([-0.3, 0.7, 0.2, 0.5])
_U0 = np.array([0.3, -0.2, 0.9])
LIN = [js.SDEProblem(lin_f, lin_g, _U0, (0.0, 1.0), P_LIN),
       js.SDEProblem(lin_f, lin_gs, _U0, (0.0, 1.0), P_LIN, noise="scalar")]


@pytest.mark.parametrize("prob", LIN, ids=IDS)
def test_sriw1_reverse_step_and_sweep_dot_product(prob):
    rng = np.random.default_rng(1)
    a = _setup(prob, 2.0 ** -5, 4)
    for i in (0, 13, a["N"] - 1):
        w, v = rng.standard_normal(3), rng.standard_normal(3)
        Mv = v.copy()
        _advance(a, P_LIN, Mv, i, i + 1, np.zeros((1, 3)), False)       # M_i v
        lam = w.copy()
        # the step is linear: its transpose does not depend on the stored state
        _reverse(a, P_LIN, rng.standard_normal((1, 3)), i, i + 1, lam)  # M_i^T w
        assert lam @ v == pytest.approx(w @ Mv, rel=1e-13, abs=1e-15)
    # the whole sweep through js.gradient
    w, v = rng.standard_normal(3), rng.standard_normal(3)
    pv = js.remake(prob, u0=v)
    loss = js.Loss(lambda u: float(u[0] @ w), lambda u: np.broadcast_to(w, u.shape).copy())
    loss.t_data = np.array([1.0])
    _, g = js.gradient(pv, js.SRIW1(), loss, wrt="u0", dt=2.0 ** -5, seed=4, **FIXED)
    Mv = js.solve(pv, js.SRIW1(), dt=2.0 ** -5, seed=4, **FIXED).u[-1]
    assert g["u0"] @ v == pytest.approx(w @ Mv, rel=1e-12)


@pytest.mark.parametrize("prob", PROBS, ids=IDS)
def test_sriw1_checkpoint_variants_are_bitwise_equal(prob, tmp_path):
    td = np.array([0.125, 0.5, 0.75, 1.0])
    loss = _loss(prob, td)
    kw = dict(wrt=("p", "u0"), dt=2.0 ** -6, seed=9, **FIXED)
    v, g = js.gradient(prob, js.SRIW1(), loss, sensealg=js.DiscreteAdjoint(), **kw)
    variants = [js.DiscreteAdjoint(checkpoints=1), js.DiscreteAdjoint(checkpoints=5),
                js.DiscreteAdjoint(checkpoints="binomial"),
                js.DiscreteAdjoint(checkpoints=3, store=js.HDF5Store(tmp_path / "ck.h5"))]
    for sa in variants:
        v2, g2 = js.gradient(prob, js.SRIW1(), loss, sensealg=sa, **kw)
        assert v2 == v
        for k in g:
            assert np.array_equal(g[k], g2[k]), (sa.checkpoints, k)


def test_sriw1_seed_changes_the_path_and_the_gradient():
    loss = _loss(NL, np.array([1.0]))
    kw = dict(wrt="p", dt=2.0 ** -5, **FIXED)
    _, g1 = js.gradient(NL, js.SRIW1(), loss, seed=1, **kw)
    _, g2 = js.gradient(NL, js.SRIW1(), loss, seed=2, **kw)
    _, g1b = js.gradient(NL, js.SRIW1(), loss, seed=1, **kw)
    assert not np.allclose(g1["p"], g2["p"])
    assert np.array_equal(g1["p"], g1b["p"])


def test_sriw1_adjoint_bad_inputs():
    loss = _loss(NL, np.array([0.5, 1.0]))
    with pytest.raises(InvalidProblemError, match="dt"):
        js.gradient(NL, js.SRIW1(), loss, **FIXED)
    with pytest.raises(InvalidProblemError, match="step grid"):
        js.gradient(NL, js.SRIW1(), _loss(NL, np.array([0.3001, 1.0])), dt=2.0 ** -6, **FIXED)
    with pytest.raises(UnsupportedAlgorithmError, match="stratonovich"):
        js.gradient(js.remake(NL, interpretation="stratonovich"), js.SRIW1(), loss,
                    dt=2.0 ** -6, **FIXED)

    def gm(G, u, p, t):
        G[0, 0] = 0.1
        G[1, 0] = 0.1

    gen = js.SDEProblem(nl_f, gm, np.array([1.0, 0.7]), (0.0, 1.0), P, noise="general",
                        nbrownian=1)
    with pytest.raises(UnsupportedAlgorithmError, match="noise"):
        js.gradient(gen, js.SRIW1(), loss, dt=2.0 ** -6, **FIXED)
