"""Discrete adjoint of adaptive SRIW1 (diagonal and scalar noise) and SRA1 (additive noise):
the forward's accepted steps (rejections included) are recorded and held fixed in the
reverse pass, so the gradient is that of the discrete solution for that step sequence
(the step-size controller is not differentiated).

Checked here: the gradient against central differences of the same discrete map (the
recorded step sequence re-run by the advance kernel at perturbed p and u0); plain central
differences of the adaptive solve agree where the controller picks the same steps at the
perturbed values; the advance kernel's states equal ``js.solve``'s bit for bit (every
step, and at clamped loss times); dot-product tests of single reverse steps and of the
whole sweep; checkpointing variants bit-for-bit equal; bad inputs.  Nothing is compared
with stored numbers: every reference is computed by the same code with the same seed
(the noise generator may change)."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError, UnsupportedAlgorithmError
from jitsolve.gradient import SolveFailedError
from sde_models import add_g, nl_f, nl_g, sc_g


P = np.array([1.1, 0.6, 0.8, 1.5])      # noise strong enough for rejections mid-path
U0 = np.array([1.0, 0.7])
NL = js.SDEProblem(nl_f, nl_g, U0, (0.0, 1.0), P)
SC = js.SDEProblem(nl_f, sc_g, U0, (0.0, 1.0), P, noise="scalar")
ADD = js.SDEProblem(nl_f, add_g, U0, (0.0, 1.0), P)
CASES = [(NL, js.SRIW1), (SC, js.SRIW1), (ADD, js.SRA1)]
IDS = ["SRIW1-diagonal", "SRIW1-scalar", "SRA1-additive"]
# a first step far too long and strong noise: the controller rejects steps at the start
# and along the path (a rejected trial queries the Brownian tree at its own end point)
ADAPT = dict(rtol=1e-2, atol=1e-3, dt=0.5)
TD = np.array([0.0, 0.3, 0.5, 1.0])


def _loss(prob, td):
    return js.L2Loss(td, np.full((td.size,) + prob.u0.shape, 0.8))


def _adjoint(prob, alg, loss, sensealg=None, wrt=("p", "u0"), **kw):
    """Value, gradients and info (with the recorded endpoints ``xsteps``)."""
    from jitsolve.sde_gradient import sde_discrete_adjoint
    return sde_discrete_adjoint(prob, alg, loss, wrt, sensealg or js.DiscreteAdjoint(), kw)


def _setup(prob, alg, xg, seed, td, wrt=("p", "u0")):
    """The packed arguments of the sri_*/sra_* kernels over the recorded steps ``xg``, as
    sde_gradient builds them."""
    from jitsolve.kernels.cpu import sde_adjoint as K
    from jitsolve.sde import _prepare
    from jitsolve.sde_gradient import _noise_matrix_twin, _vjp_sources
    from jitsolve.solve import _DE_DEFAULTS
    from jitsolve.solvers.sde.driver import schedule
    mod, funcs, kw = _prepare(prob, alg, dict(_DE_DEFAULTS, seed=seed, **ADAPT))
    assert kw["adaptive"]
    sch = schedule(kw["tspan"], kw["dt"], True, td)
    t0, t1 = kw["tspan"]
    vjf, vjg, _, _ = _vjp_sources(prob, wrt)
    fc, vjf_r, gc, vjg_r, uf = K.split_sources(vjf, vjg)
    sri = isinstance(alg, js.SRIW1)
    N = xg.size - 1
    # SRA's kernels also take the matrix g of general noise and its complex twin
    gfs, gms = (((funcs[0], funcs[1]), (fc, gc)) if sri else
                ((funcs[0], funcs[1], funcs[2]), (fc, gc, _noise_matrix_twin(None))))
    return dict(K=K, gfs=gfs, gms=gms, vjf_r=vjf_r, uf=uf, vjg_r=vjg_r,
                tab=np.ascontiguousarray(mod.TABLEAU), N=N, xg=xg, xs=sch.xs,
                adv=K.sri_advance if sri else K.sra_advance,
                rev=K.sri_reverse if sri else K.sra_reverse,
                geo=np.array([t0, t1 - t0, 0.0, 1.0]),
                ip=np.array([N, sch.maxdepth, 0 if prob.noise == "diagonal" else 1,
                             prob.nbrownian, 0], dtype=np.int64),
                seed=np.uint64(seed), traj=np.uint64(0))


def _advance(a, p, u, i0, i1, states, store):
    tf, ti = a["K"].sra_tree(int(a["ip"][3]), a["seed"], a["traj"])
    a["adv"](*a["gfs"], a["tab"], p, u, a["geo"], a["ip"], a["xg"], a["seed"], a["traj"], tf, ti,
             i0, i1, states, store)


def _reverse(a, p, states, i0, i1, lam):
    tf, ti = a["K"].sra_tree(int(a["ip"][3]), a["seed"], a["traj"])
    a["rev"](*a["gfs"], *a["gms"], a["vjf_r"], a["uf"], a["vjg_r"], a["tab"], p, states,
             a["geo"], a["ip"], a["xg"], a["seed"], a["traj"], tf, ti, i0, i1,
             np.zeros((1, lam.size)), -np.ones(a["N"], dtype=np.int64), lam, np.zeros(0))


def _path(a, p, u0):
    """States at every recorded endpoint (N + 1 rows) by the advance kernel."""
    u = np.array(u0, dtype=np.float64)
    states = np.zeros((a["N"], u.size))
    _advance(a, p, u, 0, a["N"], states, True)
    return np.vstack([states, u])


def _rows(a):
    return np.searchsorted(a["xg"], a["xs"])


@pytest.mark.parametrize("prob,alg", CASES, ids=IDS)
def test_adaptive_adjoint_matches_central_differences_with_the_steps_held_fixed(prob, alg):
    seed = 3
    loss = _loss(prob, TD)
    v, g, info = _adjoint(prob, alg(), loss, seed=seed, **ADAPT)
    sol = js.solve(prob, alg(), seed=seed, saveat=TD, **ADAPT)
    assert sol.stats.nreject > 0 and info["nsteps"] == sol.stats.naccept
    assert v == loss.value(sol.u)
    a = _setup(prob, alg(), info["xsteps"], seed, TD)
    ks = _rows(a)

    def J(p, u0):
        return loss.value(_path(a, p, u0)[ks].reshape((TD.size,) + prob.u0.shape))

    assert J(P, U0) == v                       # the same discrete map, the same value
    for name, base in (("p", P), ("u0", U0)):
        fd = np.zeros(base.size)
        for k in range(base.size):
            h = 1e-6 * max(1.0, abs(base[k]))
            up, dn = base.copy(), base.copy()
            up[k] += h
            dn[k] -= h
            args = (lambda x: (x, U0)) if name == "p" else (lambda x: (P, x))
            fd[k] = (J(*args(up)) - J(*args(dn))) / (2 * h)
        err = np.abs(g[name] - fd).max() / np.abs(fd).max()
        print(f"adaptive {alg.__name__} {prob.noise} {name}: {info['nsteps']} steps "
              f"({sol.stats.nreject} rejected), max rel. error vs central differences "
              f"(steps held fixed) {err:.2e}")
        assert err < 1e-7, (name, g[name], fd)


@pytest.mark.parametrize("span", [(0.5, 2.0), (2.0, 0.5)], ids=["other-span", "reversed"])
def test_adaptive_adjoint_other_span_and_reversed_time(span):
    prob = js.remake(NL, tspan=span)
    td = np.array([span[0], 1.2, span[1]])
    loss = _loss(prob, td)
    v, g, info = _adjoint(prob, js.SRIW1(), loss, seed=3, **ADAPT)
    sol = js.solve(prob, js.SRIW1(), seed=3, saveat=td, **ADAPT)
    a = _setup(prob, js.SRIW1(), info["xsteps"], 3, td)
    ks = _rows(a)
    assert np.array_equal(_path(a, P, U0)[ks], sol.u) and v == loss.value(sol.u)

    def J(p):
        return loss.value(_path(a, p, U0)[ks])

    fd = np.array([(J(P + 1e-6 * e) - J(P - 1e-6 * e)) / 2e-6 for e in np.eye(P.size)])
    err = np.abs(g["p"] - fd).max() / np.abs(fd).max()
    print(f"tspan {span}: {info['nsteps']} steps, max rel. error vs central differences {err:.2e}")
    assert err < 1e-7


def test_plain_differences_agree_where_the_controller_keeps_its_steps():
    """Central differences of the adaptive solve itself (js.FiniteDifference) are the
    derivative of another function (the steps move with p), but for perturbations
    small enough that the controller picks the same steps they are the same numbers as
    the fixed-sequence differences, and agree with the adjoint."""
    loss = _loss(NL, TD)
    h = 1e-6
    agreed = 0
    for seed in (1, 2, 3):
        _, g, info = _adjoint(NL, js.SRIW1(), loss, wrt=("p",), seed=seed, **ADAPT)
        same = True
        for k in range(P.size):
            for sgn in (1, -1):
                pp = P.copy()
                pp[k] += sgn * h
                _, _, inf2 = _adjoint(js.remake(NL, p=pp), js.SRIW1(), loss, wrt=("p",),
                                      seed=seed, **ADAPT)
                same &= np.array_equal(inf2["xsteps"], info["xsteps"])
        if not same:
            continue
        agreed += 1
        _, gfd = js.gradient(NL, js.SRIW1(), loss, wrt="p", seed=seed,
                             sensealg=js.FiniteDifference(step=h), **ADAPT)
        err = np.abs(g["p"] - gfd["p"]).max() / np.abs(gfd["p"]).max()
        print(f"seed {seed}: plain central differences of the adaptive solve, rel. error {err:.2e}")
        assert err < 1e-7
    assert agreed >= 1


@pytest.mark.parametrize("prob,alg", CASES, ids=IDS)
def test_advanced_states_equal_the_forward(prob, alg):
    # loss at t1 only: no clamping, so the steps are those of the save-every-step solve
    td = np.array([1.0])
    _, _, info = _adjoint(prob, alg(), _loss(prob, td), seed=7, **ADAPT)
    fwd = js.solve(prob, alg(), seed=7, **ADAPT)
    assert fwd.stats.nreject > 0
    a = _setup(prob, alg(), info["xsteps"], 7, td)
    path = _path(a, prob.p, prob.u0)
    assert np.array_equal(path, fwd.u)
    x = info["xsteps"]
    t0, t1 = prob.tspan
    assert np.array_equal(np.where(x < 1.0, t0 + (t1 - t0) * x, t1), fwd.t)
    # restarted mid-path (as a checkpointed sweep does): the same states again
    k = a["N"] // 3
    u2 = fwd.u[k].copy()
    _advance(a, prob.p, u2, k, a["N"], np.zeros((1, 2)), False)
    assert np.array_equal(u2, fwd.u[-1])
    # loss times inside the span: the forward clamps its steps onto them
    _, _, info = _adjoint(prob, alg(), _loss(prob, TD), seed=7, **ADAPT)
    fwd = js.solve(prob, alg(), seed=7, saveat=TD, **ADAPT)
    a = _setup(prob, alg(), info["xsteps"], 7, TD)
    assert np.array_equal(_path(a, prob.p, prob.u0)[_rows(a)], fwd.u)
    assert info["nsteps"] == fwd.stats.naccept


def test_recorder_counts_equal_the_forward():
    from jitsolve.sde import _prepare
    from jitsolve.sde_gradient import _record_steps
    from jitsolve.solve import _DE_DEFAULTS
    for prob, alg in CASES:
        mod, funcs, kw = _prepare(prob, alg(), dict(_DE_DEFAULTS, seed=5, **ADAPT))
        _, xg, states, saved, rc, _ = _record_steps(mod, funcs, prob.u0, prob.p, kw, TD, True)
        fwd = js.solve(prob, alg(), seed=5, saveat=TD, **ADAPT)
        assert rc == 0 and np.array_equal(saved, fwd.u)
        assert xg.size - 1 == fwd.stats.naccept and states.shape == (xg.size, 2)
        assert np.all(np.diff(xg) > 0) and xg[0] == 0.0 and xg[-1] == 1.0


# a linear SDE: with the steps held fixed every SRIW1 step is a linear map u' = M_i u, so
# the reverse step must be its transpose; with additive noise (SRA1) the map is affine,
# u' = M_i u + c_i, and M_i v is the difference of two advances
def lin_f(du, u, p, t):
    du[0] = p[0] * u[0] + p[1] * u[1]
    du[1] = -p[1] * u[0] + p[0] * u[1] + p[2] * u[2]
    du[2] = p[2] * u[0] - u[2]


def lin_g(gu, u, p, t):
    gu[0] = p[3] * u[0]
    gu[1] = p[3] * u[1] - 0.2 * p[3] * u[0]
    gu[2] = 0.5 * u[2] + p[3] * u[1]


def lin_ga(gu, u, p, t):
    gu[0] = p[3]
    gu[1] = 0.2
    gu[2] = p[3] * t


P_LIN = np.array([-0.3, 0.7, 0.2, 0.5])
_V = np.array([0.3, -0.2, 0.9])
LIN = [(js.SDEProblem(lin_f, lin_g, _V, (0.0, 1.0), P_LIN), js.SRIW1, 1e-12),
       (js.SDEProblem(lin_f, lin_ga, _V, (0.0, 1.0), P_LIN), js.SRA1, 1e-10)]


@pytest.mark.parametrize("prob,alg,rel", LIN, ids=["SRIW1-linear", "SRA1-affine"])
def test_adaptive_reverse_step_and_sweep_dot_product(prob, alg, rel):
    rng = np.random.default_rng(1)
    td = np.array([1.0])
    w = rng.standard_normal(3)
    loss = js.Loss(lambda u: float(u[0] @ w), lambda u: np.broadcast_to(w, u.shape).copy())
    loss.t_data = td
    _, g, info = _adjoint(prob, alg(), loss, wrt=("u0",), seed=4, **ADAPT)
    a = _setup(prob, alg(), info["xsteps"], 4, td, wrt=("u0",))
    assert np.unique(np.diff(info["xsteps"])).size > 3          # steps of unequal lengths
    zero = np.zeros(3)
    # the whole sweep: <M^T w, v> = <w, M v> with M the map of these steps
    for v in (_V, rng.standard_normal(3)):
        Mv = _path(a, P_LIN, v)[-1] - _path(a, P_LIN, zero)[-1]
        assert g["u0"] @ v == pytest.approx(w @ Mv, rel=rel)
    if alg is js.SRIW1:                                          # linear: M u0 is the solve
        Mv = js.solve(prob, alg(), seed=4, **ADAPT).u[-1]
        assert g["u0"] @ _V == pytest.approx(w @ Mv, rel=1e-12)
    # single steps
    for i in (0, a["N"] // 2, a["N"] - 1):
        w1, v = rng.standard_normal(3), rng.standard_normal(3)
        Mv, c = v.copy(), zero.copy()
        _advance(a, P_LIN, Mv, i, i + 1, np.zeros((1, 3)), False)
        _advance(a, P_LIN, c, i, i + 1, np.zeros((1, 3)), False)
        lam = w1.copy()
        # the step is linear (affine): its transpose does not depend on the stored state
        _reverse(a, P_LIN, rng.standard_normal((1, 3)), i, i + 1, lam)
        assert lam @ v == pytest.approx(w1 @ (Mv - c), rel=rel, abs=1e-15)


@pytest.mark.parametrize("prob,alg", [CASES[0], CASES[2]], ids=["SRIW1", "SRA1"])
def test_adaptive_checkpoint_variants_are_bitwise_equal(prob, alg, tmp_path):
    loss = _loss(prob, np.array([0.125, 0.5, 0.7, 1.0]))
    kw = dict(wrt=("p", "u0"), seed=9, **ADAPT)
    v, g = js.gradient(prob, alg(), loss, sensealg=js.DiscreteAdjoint(), **kw)
    variants = [js.DiscreteAdjoint(checkpoints=1), js.DiscreteAdjoint(checkpoints=5),
                js.DiscreteAdjoint(checkpoints="binomial"),
                js.DiscreteAdjoint(checkpoints=3, store=js.HDF5Store(tmp_path / "ck.h5"))]
    for sa in variants:
        v2, g2 = js.gradient(prob, alg(), loss, sensealg=sa, **kw)
        assert v2 == v
        for k in g:
            assert np.array_equal(g[k], g2[k]), (sa.checkpoints, k)


def test_adaptive_is_the_default_and_fixed_steps_still_work():
    loss = _loss(NL, np.array([0.5, 1.0]))
    v, g = js.gradient(NL, js.SRIW1(), loss, wrt="p", seed=2)        # adaptive by default
    sol = js.solve(NL, js.SRIW1(), seed=2, saveat=np.array([0.5, 1.0]))
    assert v == loss.value(sol.u) and np.isfinite(g["p"]).all()
    v, g = js.gradient(NL, js.SRIW1(), loss, wrt="p", seed=2, dt=2.0 ** -6, adaptive=False)
    assert v == loss.value(js.solve(NL, js.SRIW1(), seed=2, dt=2.0 ** -6, adaptive=False,
                                    saveat=np.array([0.5, 1.0])).u)


def test_adaptive_adjoint_bad_inputs():
    loss = _loss(NL, np.array([0.5, 1.0]))
    with pytest.raises(SolveFailedError, match="forward SDE solve ended with MaxIters at t = "):
        js.gradient(NL, js.SRIW1(), loss, maxiters=5, **ADAPT)
    with pytest.raises(InvalidProblemError, match="saveat"):
        js.gradient(NL, js.SRIW1(), loss, saveat=np.array([0.25, 1.0]), **ADAPT)
    with pytest.raises(InvalidProblemError, match="tspan"):
        js.gradient(NL, js.SRIW1(), _loss(NL, np.array([0.5, 2.0])), **ADAPT)
    with pytest.raises(UnsupportedAlgorithmError, match="stratonovich"):
        js.gradient(js.remake(NL, interpretation="stratonovich"), js.SRIW1(), loss, **ADAPT)

    def gm(G, u, p, t):
        G[0, 0] = 0.1
        G[1, 0] = 0.1

    gen = js.SDEProblem(nl_f, gm, U0, (0.0, 1.0), P, noise="general", nbrownian=1)
    with pytest.raises(UnsupportedAlgorithmError, match="noise"):    # SRIW1: not general
        js.gradient(gen, js.SRIW1(), loss, **ADAPT)
