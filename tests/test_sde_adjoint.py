"""Discrete adjoint of SDE solves (EM, EulerHeun, Milstein with ggprime and fixed-step
SRA1; SRIW1 in test_sde_adjoint_sriw1.py, adaptive SRA1/SRIW1 in
test_sde_adjoint_adaptive.py; diagonal and scalar noise): the gradient
against central differences of the whole solve with the same seed, dot-product tests of
the reverse sweep and of single reverse steps, checkpointing variants bit-for-bit equal,
recomputed states and regenerated noise equal to the forward's, bad inputs."""
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


def nl_ggp(out, u, p, t):
    # Milstein term of nl_g (diagonal): g_i dg_i/du_i
    out[0] = p[3] * np.sin(u[0]) * u[1] * (p[3] * np.cos(u[0]) * u[1])
    out[1] = p[3] * u[1] / (1.0 + u[0] * u[0]) * (p[3] / (1.0 + u[0] * u[0]))


def sc_ggp(out, u, p, t):
    # Milstein term of sc_g (scalar): (dg/du) g
    g0 = p[3] * u[0] * u[1]
    g1 = p[3] * np.cos(u[0])
    out[0] = p[3] * u[1] * g0 + p[3] * u[0] * g1
    out[1] = -p[3] * np.sin(u[0]) * g0


GBM = js.SDEProblem(gbm_f, gbm_g, np.array([1.0]), (0.0, 1.0), np.array([0.4, 0.6]))
NL = js.SDEProblem(nl_f, nl_g, np.array([1.0, 0.7]), (0.0, 1.0), np.array([1.1, 0.6, 0.8, 0.3]))
ADD = js.SDEProblem(nl_f, add_g, np.array([1.0, 0.7]), (0.0, 1.0), np.array([1.1, 0.6, 0.8, 0.3]))
SC = js.SDEProblem(nl_f, sc_g, np.array([1.0, 0.7]), (0.0, 1.0), np.array([1.1, 0.6, 0.8, 0.3]),
                   noise="scalar")
# Stratonovich twins for EulerHeun; the Milstein term supplied for Milstein
NL_S = js.remake(NL, interpretation="stratonovich")
SC_S = js.remake(SC, interpretation="stratonovich")
NL_M = js.remake(NL, ggprime=nl_ggp)
SC_M = js.remake(SC, ggprime=sc_ggp)
NEW_METHODS = [(js.EulerHeun(), NL_S), (js.EulerHeun(), SC_S), (js.Milstein(), NL_M),
               (js.Milstein(), SC_M)]
NEW_IDS = ["heun-diagonal", "heun-scalar", "milstein-diagonal", "milstein-scalar"]


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


def test_sra1_fixed_step_adjoint_matches_central_differences():
    _check(ADD, np.array([0.0, 0.5, 1.0]), alg=js.SRA1(), dt=2.0 ** -6, seed=4,
           adaptive=False)
    # SRA1 is for additive noise only: multiplicative noise is refused (test_audit_sde.py)
    for prob in (NL, SC):
        with pytest.raises(UnsupportedAlgorithmError, match="^g: SRA1 requires additive"):
            js.gradient(prob, js.SRA1(), _loss(prob, np.array([1.0])), dt=2.0 ** -6,
                        adaptive=False)


def test_sra1_checkpoint_variants_and_recomputed_states():
    from jitsolve.kernels.cpu import sde_adjoint as K
    from jitsolve.sde import _prepare
    from jitsolve.solve import _DE_DEFAULTS
    from jitsolve.solvers.sde.driver import geometry, schedule
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
    K.sra_advance(funcs[0], funcs[1], funcs[2], mod.TABLEAU, ADD.p, u, geometry(sch),
                  np.array([sch.N, sch.maxdepth, 0, 2], dtype=np.int64), np.empty(0),
                  np.uint64(6), np.uint64(0), tf, ti, 0, sch.N, states, True)
    assert np.array_equal(states, fwd.u[:-1]) and np.array_equal(u, fwd.u[-1])


def test_em_adjoint_non_dyadic_grid_and_other_span():
    prob = js.remake(NL, tspan=(0.5, 2.0))
    dt = 0.03                              # 50 steps, not a power of two: a tree of 64 steps
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
    from jitsolve.solvers.sde.driver import geometry, schedule
    for dt in (2.0 ** -9, 0.013):          # blocked dyadic fast path; t1 off the tree's nodes
        o = dict(_DE_DEFAULTS, dt=dt, seed=7)
        _, funcs, kw = _prepare(NL, js.EM(), o)
        sch = schedule(kw["tspan"], dt, False, None)
        fwd = js.solve(NL, js.EM(), dt=dt, seed=7, save_noise=True)
        geo = geometry(sch)
        ip = np.array([sch.N, sch.maxdepth, 0, 2], dtype=np.int64)
        u = NL.u0.copy()
        states = np.zeros((sch.N, 2))
        tf, ti = K.em_tree(2, np.uint64(7), np.uint64(0))
        K.em_advance(funcs[0], funcs[1], funcs[2], NL.p, u, geo, ip, np.uint64(7),
                     np.uint64(0), tf, ti, 0, sch.N, states, True)
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
    with pytest.raises(UnsupportedAlgorithmError, match="stratonovich"):
        js.gradient(NL, js.EulerHeun(), loss, dt=2.0 ** -6)
    with pytest.raises(InvalidProblemError, match="step grid"):
        js.gradient(NL, js.EM(), _loss(NL, np.array([0.3001, 1.0])), dt=2.0 ** -6)
    with pytest.raises(InvalidProblemError, match="kappa"):
        js.gradient(NL, js.EM(), loss, wrt="kappa", dt=2.0 ** -6)
    with pytest.raises(InvalidProblemError, match="saveat"):   # other times than the loss's
        js.gradient(NL, js.EM(), loss, dt=2.0 ** -6, saveat=td[:1])
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
    with pytest.raises(UnsupportedAlgorithmError, match="noise"):   # not Milstein
        js.gradient(gen, js.Milstein(), loss, dt=2.0 ** -6)
    noparam = js.SDEProblem(ou_f, ou_g, np.array([1.0]), (0.0, 1.0))
    with pytest.raises(InvalidProblemError, match="parameters"):
        js.gradient(noparam, js.EM(), _loss(noparam, td), wrt="p", dt=2.0 ** -6)


@pytest.mark.parametrize("checkpoints", ["all", 4])
def test_fixed_steps_beyond_maxiters_fail_clearly(checkpoints):
    """More fixed steps than maxiters: js.solve stops with MaxIters, so the gradient
    reports it (it raised an IndexError), for a single path and for an ensemble."""
    from jitsolve.gradient import SolveFailedError
    loss = _loss(NL, np.array([0.5, 1.0]))
    assert js.solve(NL, js.EM(), dt=2.0 ** -6, maxiters=10).retcode == js.ReturnCode.MaxIters
    sa = js.DiscreteAdjoint(checkpoints=checkpoints)
    with pytest.raises(SolveFailedError, match="ended with MaxIters at t = 0.15625; the fixed "
                                               "step needs 64 steps: raise maxiters"):
        js.gradient(NL, js.EM(), loss, dt=2.0 ** -6, maxiters=10, sensealg=sa)
    with pytest.raises(SolveFailedError, match="MaxIters.*64 steps: raise maxiters"):
        js.gradient(js.EnsembleProblem(NL), js.EM(), loss, dt=2.0 ** -6, maxiters=10,
                    trajectories=3, sensealg=sa)
    v, g = js.gradient(NL, js.EM(), loss, dt=2.0 ** -6, maxiters=64, sensealg=sa)
    assert np.isfinite(v) and np.isfinite(g["p"]).all()


# ------------------------------------------------------------ EulerHeun and Milstein
@pytest.mark.parametrize("alg,prob", NEW_METHODS, ids=NEW_IDS)
def test_heun_milstein_adjoint_matches_central_differences(alg, prob):
    _check(prob, np.array([0.0, 0.25, 0.5, 1.0]), alg=alg, dt=2.0 ** -6, seed=11)


def test_milstein_stratonovich_and_non_dyadic_grid():
    # Stratonovich Milstein (dW^2 in place of dW^2 - h) on 50 steps, another span
    prob = js.remake(NL_M, interpretation="stratonovich", tspan=(0.5, 2.0))
    dt = 0.03
    td = 0.5 + dt * np.array([10, 20, 50])
    td[-1] = 2.0
    _check(prob, td, alg=js.Milstein(), dt=dt, seed=5)


def test_heun_non_dyadic_grid():
    prob = js.remake(NL_S, tspan=(0.5, 2.0))
    dt = 0.03
    td = 0.5 + dt * np.array([10, 20, 50])
    td[-1] = 2.0
    _check(prob, td, alg=js.EulerHeun(), dt=dt, seed=5)


@pytest.mark.parametrize("alg,prob", NEW_METHODS, ids=NEW_IDS)
def test_heun_milstein_checkpoint_variants_are_bitwise_equal(alg, prob, tmp_path):
    td = np.array([0.125, 0.5, 0.75, 1.0])
    loss = _loss(prob, td)
    kw = dict(wrt=("p", "u0"), dt=2.0 ** -6, seed=9)
    v, g = js.gradient(prob, alg, loss, sensealg=js.DiscreteAdjoint(), **kw)
    variants = [js.DiscreteAdjoint(checkpoints=1), js.DiscreteAdjoint(checkpoints=4),
                js.DiscreteAdjoint(checkpoints="binomial"),
                js.DiscreteAdjoint(checkpoints=3, store=js.HDF5Store(tmp_path / "ck.h5"))]
    for sa in variants:
        v2, g2 = js.gradient(prob, alg, loss, sensealg=sa, **kw)
        assert v2 == v
        for k in g:
            assert np.array_equal(g[k], g2[k]), (sa.checkpoints, k)


def _kernel_setup(prob, alg, dt, seed):
    """The packed arguments of the sde_adjoint kernels for one path (as sde_gradient
    builds them), u0 VJPs only."""
    from jitsolve.kernels.cpu import sde_adjoint as K
    from jitsolve.sde import _prepare
    from jitsolve.sde_gradient import _noise_matrix_twin, _vjp_sources
    from jitsolve.solve import _DE_DEFAULTS
    from jitsolve.solvers.sde.driver import geometry, schedule
    _, funcs, kw = _prepare(prob, alg, dict(_DE_DEFAULTS, dt=dt, seed=seed))
    sch = schedule(kw["tspan"], dt, False, None)
    t0, t1 = kw["tspan"]
    mil = isinstance(alg, js.Milstein)
    phic = funcs[3] if mil else None
    vjf, vjg, vjd, _ = _vjp_sources(prob, ("u0",), phic)
    fc, vjf_r, gc, vjg_r, uf = K.split_sources(vjf, vjg)
    vjd_r = K.split_vjp_source(vjd)[1] if mil else None
    return dict(K=K, f=funcs[0], gv=funcs[1], gm=funcs[2], gcm=_noise_matrix_twin(None), phic=phic,
                fc=fc, gc=gc, vjf_r=vjf_r, uf=uf,
                vjg_r=vjg_r, vjd_r=vjd_r, N=sch.N, mil=mil,
                geo=geometry(sch),
                ip=np.array([sch.N, sch.maxdepth, 0 if prob.noise == "diagonal" else 1,
                             prob.nbrownian, int(prob.interpretation == "stratonovich")],
                            dtype=np.int64),
                seed=np.uint64(seed), traj=np.uint64(0))


def _advance(a, u, i0, i1, states, store):
    K = a["K"]
    tf, ti = K.em_tree(int(a["ip"][3]), a["seed"], a["traj"])
    if a["mil"]:
        K.milstein_advance(a["f"], a["gv"], a["phic"], P_LIN, u, a["geo"], a["ip"], a["seed"],
                           a["traj"], tf, ti, i0, i1, states, store)
    else:
        K.heun_advance(a["f"], a["gv"], a["gm"], P_LIN, u, a["geo"], a["ip"], a["seed"],
                       a["traj"], tf, ti, i0, i1, states, store)


def _reverse(a, states, i0, i1, lam):
    K = a["K"]
    n = lam.size
    tf, ti = K.em_tree(int(a["ip"][3]), a["seed"], a["traj"])
    gsave = np.zeros((1, n))
    save_after = -np.ones(a["N"], dtype=np.int64)
    pbar = np.zeros(0)
    if a["mil"]:
        K.milstein_reverse(a["f"], a["fc"], a["gc"], a["phic"], a["vjf_r"], a["uf"], a["vjg_r"],
                           a["vjd_r"], P_LIN, states, a["geo"], a["ip"], a["seed"], a["traj"],
                           tf, ti, i0, i1, gsave, save_after, lam, pbar)
    else:
        K.heun_reverse(a["f"], a["gv"], a["gm"], a["fc"], a["gc"], a["gcm"], a["vjf_r"], a["uf"],
                       a["vjg_r"], P_LIN, states, a["geo"], a["ip"], a["seed"], a["traj"], tf,
                       ti, i0, i1, gsave, save_after, lam, pbar)


# a linear SDE (coupled drift, multiplicative noise coupling the states): every step is a
# linear map u' = M_i u, so the reverse step must be its exact transpose
def lin_f(du, u, p, t):
    du[0] = p[0] * u[0] + p[1] * u[1]
    du[1] = -p[1] * u[0] + p[0] * u[1] + p[2] * u[2]
    du[2] = p[2] * u[0] - u[2]


def lin_g(gu, u, p, t):
    gu[0] = p[3] * u[0]
    gu[1] = p[3] * u[1] - 0.2 * p[3] * u[0]
    gu[2] = 0.5 * u[2] + p[3] * u[1]


def lin_ggp(out, u, p, t):          # diagonal: g_i dg_i/du_i
    out[0] = p[3] * u[0] * p[3]
    out[1] = (p[3] * u[1] - 0.2 * p[3] * u[0]) * p[3]
    out[2] = (0.5 * u[2] + p[3] * u[1]) * 0.5


def lin_gs(gu, u, p, t):            # scalar noise
    gu[0] = p[3] * u[1]
    gu[1] = p[3] * u[0] - 0.3 * u[2]
    gu[2] = 0.4 * u[0]


def lin_gsp(out, u, p, t):          # scalar: (dg/du) g
    g0 = p[3] * u[1]
    g1 = p[3] * u[0] - 0.3 * u[2]
    g2 = 0.4 * u[0]
    out[0] = p[3] * g1
    out[1] = p[3] * g0 - 0.3 * g2
    out[2] = 0.4 * g0


P_LIN = np.array([-0.3, 0.7, 0.2, 0.5])
_U0 = np.array([0.3, -0.2, 0.9])
LIN = [(js.EulerHeun(), js.SDEProblem(lin_f, lin_g, _U0, (0.0, 1.0), P_LIN,
                                      interpretation="stratonovich")),
       (js.EulerHeun(), js.SDEProblem(lin_f, lin_gs, _U0, (0.0, 1.0), P_LIN, noise="scalar",
                                      interpretation="stratonovich")),
       (js.Milstein(), js.SDEProblem(lin_f, lin_g, _U0, (0.0, 1.0), P_LIN, ggprime=lin_ggp)),
       (js.Milstein(), js.SDEProblem(lin_f, lin_gs, _U0, (0.0, 1.0), P_LIN, noise="scalar",
                                     ggprime=lin_gsp))]


@pytest.mark.parametrize("alg,prob", LIN, ids=NEW_IDS)
def test_heun_milstein_reverse_step_dot_product(alg, prob):
    rng = np.random.default_rng(1)
    a = _kernel_setup(prob, alg, 2.0 ** -5, 4)
    for i in (0, 13, a["N"] - 1):
        w, v = rng.standard_normal(3), rng.standard_normal(3)
        Mv = v.copy()
        _advance(a, Mv, i, i + 1, np.zeros((1, 3)), False)       # M_i v
        lam = w.copy()
        # the step is linear: its transpose does not depend on the stored state
        _reverse(a, rng.standard_normal((1, 3)), i, i + 1, lam)  # M_i^T w
        assert lam @ v == pytest.approx(w @ Mv, rel=1e-13, abs=1e-15)
    # and the whole sweep through js.gradient
    w, v = rng.standard_normal(3), rng.standard_normal(3)
    pv = js.remake(prob, u0=v)
    loss = js.Loss(lambda u: float(u[0] @ w), lambda u: np.broadcast_to(w, u.shape).copy())
    loss.t_data = np.array([1.0])
    _, g = js.gradient(pv, alg, loss, wrt="u0", dt=2.0 ** -5, seed=4)
    Mv = js.solve(pv, alg, dt=2.0 ** -5, seed=4).u[-1]
    assert g["u0"] @ v == pytest.approx(w @ Mv, rel=1e-12)


@pytest.mark.parametrize("alg,prob", NEW_METHODS, ids=NEW_IDS)
@pytest.mark.parametrize("dt", [2.0 ** -7, 0.013], ids=["dyadic", "t1-off-the-nodes"])
def test_heun_milstein_recomputed_states_equal_the_forward(alg, prob, dt):
    a = _kernel_setup(prob, alg, dt, 7)
    fwd = js.solve(prob, alg, dt=dt, seed=7)
    u = prob.u0.copy()
    states = np.zeros((a["N"], 2))
    K = a["K"]
    tf, ti = K.em_tree(int(a["ip"][3]), a["seed"], a["traj"])
    if a["mil"]:
        K.milstein_advance(a["f"], a["gv"], a["phic"], prob.p, u, a["geo"], a["ip"], a["seed"],
                           a["traj"], tf, ti, 0, a["N"], states, True)
    else:
        K.heun_advance(a["f"], a["gv"], a["gm"], prob.p, u, a["geo"], a["ip"], a["seed"],
                       a["traj"], tf, ti, 0, a["N"], states, True)
    assert np.array_equal(states, fwd.u[:-1])
    assert np.array_equal(u, fwd.u[-1])


# NL's diagonal noise is coupled on purpose (g_0 reads u_1): Milstein warns of it
COUPLED = pytest.mark.filterwarnings("ignore:.*Milstein with diagonal noise assumes:UserWarning")


@COUPLED
@pytest.mark.parametrize("base,ggp", [(NL, NL_M), (SC, SC_M)], ids=["diagonal", "scalar"])
def test_milstein_ggprime_forward_matches_complex_step_of_g(base, ggp):
    # the user's Milstein term replaces complex-step differentiation of g in the forward
    a = js.solve(base, js.Milstein(), dt=2.0 ** -6, seed=3).u
    b = js.solve(ggp, js.Milstein(), dt=2.0 ** -6, seed=3).u
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


@COUPLED
def test_milstein_adjoint_needs_ggprime():
    loss = _loss(NL, np.array([0.5, 1.0]))
    with pytest.raises(UnsupportedAlgorithmError, match="ggprime.*second derivatives"):
        js.gradient(NL, js.Milstein(), loss, dt=2.0 ** -6)
    # finite differences of the whole solve still work
    js.gradient(NL, js.Milstein(), loss, dt=2.0 ** -6, sensealg=js.FiniteDifference())

    def gm(G, u, p, t):
        G[0, 0] = 0.1
        G[1, 0] = 0.1

    with pytest.raises(InvalidProblemError, match="ggprime"):
        js.SDEProblem(nl_f, gm, np.array([1.0, 0.7]), (0.0, 1.0), NL.p, noise="general",
                      nbrownian=1, ggprime=nl_ggp)
    with pytest.raises(InvalidProblemError, match="ggprime"):
        js.SDEProblem(nl_f, nl_g, np.array([1.0, 0.7]), (0.0, 1.0), NL.p, ggprime=3.0)

    def ggp_real(out, u, p, t):          # comparisons do not compile for complex128
        out[0] = u[0] if u[0] > 0.0 else 0.0
        out[1] = 0.0

    bad = js.remake(NL, ggprime=ggp_real)
    with pytest.raises(UnsupportedAlgorithmError, match="ggprime.*complex128"):
        js.solve(bad, js.Milstein(), dt=2.0 ** -6)


def test_g_sparsity_colours_the_noise_adjoint():
    """``g`` given as ``js.ODEFunction(g, jac_sparsity=...)``: its complex steps in the
    adjoint are coloured by the pattern (the same gradient as dense to rounding; a
    pattern that hides a coupling changes it, so it is used), it survives ``remake``,
    and it lifts the dense limit; what it cannot be used for is refused by name."""
    import scipy.sparse as sp
    from jitsolve.adjoint.vjp import DENSE_VJP_MAX
    u0, p = np.array([1.0, 0.5]), np.array([0.8, 0.6, 0.5, 0.3])
    loss = js.L2Loss([0.5, 1.0], np.ones((2, 2)))
    kw = dict(dt=1 / 64, seed=5)

    def grad(g):
        v, gr = js.gradient(js.SDEProblem(nl_f, g, u0, (0.0, 1.0), p), js.EM(), loss,
                            wrt=("p", "u0"), **kw)
        return v, np.concatenate([gr["p"], gr["u0"]])
    v0, g0 = grad(nl_g)
    full = js.ODEFunction(nl_g, jac_sparsity=np.ones((2, 2)))
    v1, g1 = grad(full)
    assert v1 == v0 and np.abs(g1 - g0).max() < 1e-12 * np.abs(g0).max()
    _, g2 = grad(js.ODEFunction(nl_g, jac_sparsity=sp.identity(2)))   # hides the coupling
    assert np.abs(g2[4:] - g0[4:]).max() > 1e-3 * np.abs(g0[4:]).max()
    prob = js.SDEProblem(nl_f, js.ODEFunction(nl_g, jac_sparsity=sp.identity(2)), u0,
                         (0.0, 1.0), p)
    kept = js.remake(prob, p=2 * p).g_sparsity
    assert kept is not None and (kept != prob.g_sparsity).nnz == 0
    with pytest.raises(InvalidProblemError, match=r"g: jac_sparsity of shape \(3, 3\)"):
        js.SDEProblem(nl_f, js.ODEFunction(nl_g, jac_sparsity=np.ones((3, 3))), u0, (0.0, 1.0), p)
    with pytest.raises(InvalidProblemError, match="g: a jac_sparsity of g is for diagonal"):
        js.SDEProblem(nl_f, js.ODEFunction(nl_g, jac_sparsity=np.ones((2, 2))), u0, (0.0, 1.0),
                      p, noise="general", nbrownian=2)
    # above the dense limit: f and g both with a pattern
    n = DENSE_VJP_MAX + 1
    big = js.SDEProblem(js.ODEFunction(ou_f_n, jac_sparsity=sp.identity(n)), ou_g_n, np.ones(n),
                        (0.0, 1.0))
    bloss = js.L2Loss([1.0], np.zeros((1, n)))
    with pytest.raises(InvalidProblemError, match=r"g: its adjoint needs .*js.ODEFunction\(g, "
                                                  r"jac_sparsity"):
        js.gradient(big, js.EM(), bloss, wrt="u0", dt=0.25, seed=1)
    big = js.remake(big, g=js.ODEFunction(ou_g_n, jac_sparsity=sp.identity(n)))
    v, g = js.gradient(big, js.EM(), bloss, wrt="u0", dt=0.25, seed=1)
    u = js.solve(big, js.EM(), dt=0.25, seed=1, saveat=[1.0]).u[-1]
    # linear, decoupled: du = -u dt + 0.5 u dW, so d(0.5 u_T^2)/du0_i = u_T,i^2 / u0_i
    np.testing.assert_allclose(g["u0"], u * u, rtol=1e-12)


def ou_f_n(du, u, p, t):
    for i in range(u.size):
        du[i] = -u[i]


def ou_g_n(gu, u, p, t):
    for i in range(u.size):
        gu[i] = 0.5 * u[i]


def test_ensemble_gradient_rows_are_the_trajectories_paths():
    """``js.gradient`` of an SDE ensemble: row i is the pathwise gradient on trajectory i's
    own path (the one ``js.solve(ensemble, seed=...)`` gives it, not path 0), with its own
    data block; the value is the ensemble solve's loss, bit for bit; rows against central
    differences of the ensemble solve; ``prob_func`` alike; the Taylor test and a fit of
    one shared parameter vector run on it."""
    P = np.array([0.8, 0.6, 0.5, 0.3])
    prob = js.SDEProblem(nl_f, nl_g, np.array([1.0, 0.5]), (0.0, 1.0), P)
    N = 4
    ps = P * (1 + 0.1 * np.arange(N))[:, None]
    ens = js.EnsembleProblem(prob, ps=ps)
    t = np.array([0.5, 1.0])
    data = np.random.default_rng(0).random((N, 2, 2))
    loss = js.L2Loss(t, data)
    kw = dict(dt=1 / 64, seed=3)
    v, g = js.gradient(ens, js.EM(), loss, wrt=("p", "u0"), **kw)
    assert g["p"].shape == (N, 4) and g["u0"].shape == (N, 2)

    def losses(e):
        u = js.solve(e, js.EM(), saveat=t, **kw).u
        return [0.5 * np.sum((u[i] - data[i]) ** 2) for i in range(N)]
    assert v == pytest.approx(sum(losses(ens)), rel=1e-14)
    h = 1e-6
    for i, k in ((0, 0), (3, 3), (2, 1)):
        pp, pm = ps.copy(), ps.copy()
        pp[i, k] += h
        pm[i, k] -= h
        fd = (losses(js.remake(ens, ps=pp))[i] - losses(js.remake(ens, ps=pm))[i]) / (2 * h)
        assert g["p"][i, k] == pytest.approx(fd, rel=1e-6)
    # trajectory 2 is not path 0: its row differs from the single problem's gradient
    _, g2 = js.gradient(js.remake(prob, p=ps[2]), js.EM(), js.L2Loss(t, data[2]), wrt="p", **kw)
    assert np.abs(g2["p"] - g["p"][2]).max() > 1e-3
    pf = js.EnsembleProblem(prob, prob_func=lambda pr, i: js.remake(pr, p=ps[i]))
    vf, gf = js.gradient(pf, js.EM(), loss, wrt=("p", "u0"), trajectories=N, **kw)
    assert vf == pytest.approx(v, rel=1e-14)
    assert np.array_equal(gf["p"], g["p"]) and np.array_equal(gf["u0"], g["u0"])
    with pytest.raises(UnsupportedAlgorithmError, match="sensealg: SDE ensembles"):
        js.gradient(ens, js.EM(), loss, sensealg=js.FiniteDifference(), **kw)
    r = js.check_gradient(ens, js.EM(), loss, wrt="u0", verbose=False, **kw)
    assert r["passed"], r
    shared = js.EnsembleProblem(prob, u0s=np.array([[1.0, 0.5], [0.7, 0.9], [1.2, 0.4]]))
    obs = js.solve(shared, js.EM(), saveat=t, **kw).u
    res = js.fit(shared, js.EM(), js.L2Loss(t, obs), P * 1.2, progress=False, **kw)
    np.testing.assert_allclose(res.p, P, rtol=1e-4)
