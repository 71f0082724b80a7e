"""Discrete adjoint of SDE solves (EM and fixed-step SRA1, diagonal and scalar noise): the
gradient against central differences of the whole solve with the same seed, a
dot-product test of the reverse sweep, checkpointing variants bit-for-bit equal, the
regenerated noise equal to the forward's, bad inputs."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError, UnsupportedAlgorithmError


def gbm_f(du, u, p, t):
    du[0] = p[0] * u[0]


def gbm_g(gu, u, p, t):
    gu[0] = p[1] * u[0]


def nl_f(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[1] * u[0] * u[1]


def nl_g(gu, u, p, t):
    gu[0] = p[3] * np.sin(u[0]) * u[1]
    gu[1] = p[3] * u[1] / (1.0 + u[0] * u[0])


def sc_g(gu, u, p, t):
    gu[0] = p[3] * u[0] * u[1]
    gu[1] = p[3] * np.cos(u[0])


def ou_f(du, u, p, t):
    du[0] = -u[0]


def ou_g(gu, u, p, t):
    gu[0] = 0.5 * u[0]


def add_g(gu, u, p, t):
    gu[0] = p[3] * (1.0 + t)
    gu[1] = 0.5 * p[3]


GBM = js.SDEProblem(gbm_f, gbm_g, np.array([1.0]), (0.0, 1.0), np.array([0.4, 0.6]))
NL = js.SDEProblem(nl_f, nl_g, np.array([1.0, 0.7]), (0.0, 1.0), np.array([1.1, 0.6, 0.8, 0.3]))
ADD = js.SDEProblem(nl_f, add_g, np.array([1.0, 0.7]), (0.0, 1.0), np.array([1.1, 0.6, 0.8, 0.3]))
SC = js.SDEProblem(nl_f, sc_g, np.array([1.0, 0.7]), (0.0, 1.0), np.array([1.1, 0.6, 0.8, 0.3]),
                   noise="scalar")


def _loss(prob, td):
    return js.L2Loss(td, np.full((td.size,) + prob.u0.shape, 0.8))


def _check(prob, td, alg=None, **kw):
    alg = alg or js.EM()
    loss = _loss(prob, td)
    v, g = js.gradient(prob, alg, loss, wrt=("p", "u0"), **kw)
    v2, g2 = js.gradient(prob, alg, loss, wrt=("p", "u0"),
                         sensealg=js.FiniteDifference(step=1e-6), **kw)
    assert v == v2
    for k in ("p", "u0"):
        np.testing.assert_allclose(g[k], g2[k], rtol=1e-7, atol=1e-7 * np.abs(g2[k]).max())
    return v, g


@pytest.mark.parametrize("prob,name", [(GBM, "gbm"), (NL, "diagonal"), (SC, "scalar")],
                         ids=["GBM", "nonlinear-diagonal", "nonlinear-scalar"])
def test_em_adjoint_matches_central_differences_same_seed(prob, name):
    td = np.array([0.0, 0.25, 0.5, 1.0])
    _check(prob, td, dt=2.0 ** -7, seed=11)


@pytest.mark.parametrize("prob", [ADD, NL, SC], ids=["additive", "multiplicative-diagonal",
                                                     "multiplicative-scalar"])
def test_sra1_fixed_step_adjoint_matches_central_differences(prob):
    # exact for the computed scheme even where g depends on u (g is differentiated at
    # the stages), though SRA1 is meant for additive noise
    _check(prob, np.array([0.0, 0.5, 1.0]), alg=js.SRA1(), dt=2.0 ** -6, seed=4,
           adaptive=False)


def test_sra1_checkpoint_variants_and_recomputed_states():
    from jitsolve.kernels.cpu import sde_adjoint as K
    from jitsolve.sde import _prepare
    from jitsolve.solve import _DE_DEFAULTS
    from jitsolve.solvers.sde.driver import schedule
    td = np.array([0.2, 1.0])
    loss = _loss(ADD, td)
    kw = dict(wrt=("p", "u0"), dt=0.02, seed=6, adaptive=False)
    v, g = js.gradient(ADD, js.SRA1(), loss, **kw)
    for C in (1, 5):
        v2, g2 = js.gradient(ADD, js.SRA1(), loss, sensealg=js.DiscreteAdjoint(checkpoints=C), **kw)
        assert v2 == v and all(np.array_equal(g[k], g2[k]) for k in g)
    mod, funcs, skw = _prepare(ADD, js.SRA1(), dict(_DE_DEFAULTS, dt=0.02, seed=6, adaptive=False))
    sch = schedule(skw["tspan"], 0.02, False, None)
    fwd = js.solve(ADD, js.SRA1(), dt=0.02, seed=6, adaptive=False)
    u = ADD.u0.copy()
    states = np.zeros((sch.N, 2))
    tf, ti = K.sra_tree(2, np.uint64(6), np.uint64(0))
    K.sra_advance(funcs[0], funcs[1], mod.TABLEAU, ADD.p, u, np.array([0.0, 1.0, sch.xstep]),
                  np.array([sch.N, sch.maxdepth, 0, 2], dtype=np.int64), np.uint64(6),
                  np.uint64(0), tf, ti, 0, sch.N, states, True)
    assert np.array_equal(states, fwd.u[:-1]) and np.array_equal(u, fwd.u[-1])


def test_em_adjoint_non_dyadic_grid_and_other_span():
    prob = js.remake(NL, tspan=(0.5, 2.0))
    dt = 0.03                              # 50 steps, not a power of two: deep tree leaves
    td = 0.5 + dt * np.array([10, 20, 50])
    td[-1] = 2.0
    _check(prob, td, dt=dt, seed=5)


def test_gbm_gradient_is_the_pathwise_derivative():
    # EM for GBM: u_N = u0 prod (1 + mu h + sigma dW_k), so dJ/du0 = (u_N - d) u_N / u0
    dt = 2.0 ** -8
    td = np.array([1.0])
    loss = js.L2Loss(td, np.array([[0.5]]))
    v, g = js.gradient(GBM, js.EM(), loss, wrt="u0", dt=dt, seed=2)
    uN = js.solve(GBM, js.EM(), dt=dt, seed=2).u[-1, 0]
    assert g["u0"][0] == pytest.approx((uN - 0.5) * uN / GBM.u0[0], rel=1e-12)
    assert v == pytest.approx(0.5 * (uN - 0.5) ** 2, rel=1e-14)


def test_seed_changes_the_path_and_the_gradient():
    td = np.array([1.0])
    loss = _loss(NL, td)
    _, g1 = js.gradient(NL, js.EM(), loss, wrt="p", dt=2.0 ** -6, seed=1)
    _, g2 = js.gradient(NL, js.EM(), loss, wrt="p", dt=2.0 ** -6, seed=2)
    _, g1b = js.gradient(NL, js.EM(), loss, wrt="p", dt=2.0 ** -6, seed=1)
    assert not np.allclose(g1["p"], g2["p"])
    assert np.array_equal(g1["p"], g1b["p"])


def test_dot_product_of_the_reverse_sweep():
    # a linear SDE (coupled drift, diagonal multiplicative noise): u_N = M u0 exactly, so
    # <M^T w, v> = <w, M v> holds to rounding for the reverse sweep's M^T w
    def lf(du, u, p, t):
        du[0] = p[0] * u[0] + p[1] * u[1]
        du[1] = -p[1] * u[0] + p[0] * u[1] + p[2] * u[2]
        du[2] = p[2] * u[0] - u[2]

    def lg(gu, u, p, t):
        gu[0] = p[3] * u[0]
        gu[1] = p[3] * u[1] - 0.2 * p[3] * u[0]
        gu[2] = 0.5 * u[2] + p[3] * u[1]

    rng = np.random.default_rng(0)
    w, v = rng.standard_normal(3), rng.standard_normal(3)
    prob = js.SDEProblem(lf, lg, v, (0.0, 1.0), np.array([-0.3, 0.7, 0.2, 0.5]))
    loss = js.Loss(lambda u: float(u[0] @ w), lambda u: np.broadcast_to(w, u.shape).copy())
    loss.t_data = np.array([1.0])
    _, g = js.gradient(prob, js.EM(), loss, wrt="u0", dt=2.0 ** -7, seed=4)
    Mv = js.solve(prob, js.EM(), dt=2.0 ** -7, seed=4).u[-1]
    assert g["u0"] @ v == pytest.approx(w @ Mv, rel=1e-12)


@pytest.mark.parametrize("prob", [NL, SC], ids=["diagonal", "scalar"])
def test_checkpoint_variants_are_bitwise_equal(prob, tmp_path):
    td = np.array([0.125, 0.5, 0.75, 1.0])
    loss = _loss(prob, td)
    kw = dict(wrt=("p", "u0"), dt=2.0 ** -7, seed=9)
    v, g = js.gradient(prob, js.EM(), loss, sensealg=js.DiscreteAdjoint(), **kw)
    variants = [js.DiscreteAdjoint(checkpoints=1), js.DiscreteAdjoint(checkpoints=4),
                js.DiscreteAdjoint(checkpoints="binomial"),
                js.DiscreteAdjoint(checkpoints=3, store=js.HDF5Store(tmp_path / "ck.h5"))]
    for sa in variants:
        v2, g2 = js.gradient(prob, js.EM(), loss, sensealg=sa, **kw)
        assert v2 == v
        for k in g:
            assert np.array_equal(g[k], g2[k]), (sa.checkpoints, k)


def test_recomputed_states_and_regenerated_noise_equal_the_forward():
    from jitsolve.kernels.cpu import sde_adjoint as K
    from jitsolve.sde import _prepare
    from jitsolve.solve import _DE_DEFAULTS
    from jitsolve.solvers.sde.driver import schedule
    for dt in (2.0 ** -9, 0.013):          # blocked dyadic fast path; deep-leaf tree
        o = dict(_DE_DEFAULTS, dt=dt, seed=7)
        _, funcs, kw = _prepare(NL, js.EM(), o)
        sch = schedule(kw["tspan"], dt, False, None)
        fwd = js.solve(NL, js.EM(), dt=dt, seed=7, save_noise=True)
        geo = np.array([0.0, 1.0, sch.xstep])
        ip = np.array([sch.N, sch.maxdepth, 0, 2], dtype=np.int64)
        u = NL.u0.copy()
        states = np.zeros((sch.N, 2))
        tf, ti = K.em_tree(2, np.uint64(7), np.uint64(0))
        K.em_advance(funcs[0], funcs[1], NL.p, u, geo, ip, np.uint64(7), np.uint64(0), tf, ti,
                     0, sch.N, states, True)
        assert np.array_equal(states, fwd.u[:-1])
        assert np.array_equal(u, fwd.u[-1])


def test_check_gradient_taylor_order():
    td = np.array([0.5, 1.0])
    rep = js.check_gradient(NL, js.EM(), _loss(NL, td), wrt="p", dt=2.0 ** -6, seed=3,
                            verbose=False)
    assert rep["passed"], rep


def test_bad_inputs():
    td = np.array([0.5, 1.0])
    loss = _loss(NL, td)
    with pytest.raises(UnsupportedAlgorithmError, match="EM"):
        js.gradient(NL, js.EulerHeun(), loss, dt=0.01)
    with pytest.raises(UnsupportedAlgorithmError, match="adaptive=False"):
        js.gradient(ADD, js.SRA1(), loss, dt=2.0 ** -6)
    with pytest.raises(InvalidProblemError, match="step grid"):
        js.gradient(NL, js.EM(), _loss(NL, np.array([0.3001, 1.0])), dt=2.0 ** -6)
    with pytest.raises(InvalidProblemError, match="kappa"):
        js.gradient(NL, js.EM(), loss, wrt="kappa", dt=2.0 ** -6)
    with pytest.raises(InvalidProblemError, match="saveat"):
        js.gradient(NL, js.EM(), loss, dt=2.0 ** -6, saveat=td)
    with pytest.raises(InvalidProblemError, match="dt"):
        js.gradient(NL, js.EM(), loss)
    with pytest.raises(InvalidProblemError, match="tspan"):
        js.gradient(NL, js.EM(), _loss(NL, np.array([0.5, 2.0])), dt=2.0 ** -6)
    with pytest.raises(InvalidProblemError, match="checkpoints"):
        js.DiscreteAdjoint(checkpoints=0)
    with pytest.raises(UnsupportedAlgorithmError, match="sensealg"):
        js.gradient(NL, js.EM(), loss, dt=2.0 ** -6, sensealg=js.BacksolveAdjoint())

    def gm(G, u, p, t):
        G[0, 0] = 0.1
        G[1, 0] = 0.1

    gen = js.SDEProblem(nl_f, gm, np.array([1.0, 0.7]), (0.0, 1.0), NL.p, noise="general",
                        nbrownian=1)
    with pytest.raises(UnsupportedAlgorithmError, match="noise"):
        js.gradient(gen, js.EM(), loss, dt=2.0 ** -6)
    noparam = js.SDEProblem(ou_f, ou_g, np.array([1.0]), (0.0, 1.0))
    with pytest.raises(InvalidProblemError, match="parameters"):
        js.gradient(noparam, js.EM(), _loss(noparam, td), wrt="p", dt=2.0 ** -6)
