"""Audit of user derivatives on SDE problems (forty-fourth session).

Accumulating derivatives: the SDE adjoints (EM, EulerHeun, Milstein, SRA1, SRIW1; fixed
and adaptive steps; every checkpointing; single problems and ensembles, in one compiled
kernel or trajectory by trajectory, with an ``L2Loss`` or a ``MomentLoss``) call the
user's ``vjp`` / ``jac`` / ``paramjac`` of ``f`` and of ``g`` through the same VJP source
as the ODE adjoints, whose outputs are cleared before each call: a function that
accumulates (``op[0] += ...``) or writes only its nonzeros gives the gradient of one that
overwrites, which finite differences on the same Brownian path confirm.

Indices out of bounds: the SDE paths probed ``f`` and ``g`` but not their derivatives,
``ggprime`` or the parts of a ``js.reverse_sde`` drift.  A ``paramjac`` of ``f`` written
for three states on a two-state problem gave d/dp0 = 166.0 for -0.1114 (EM), a ``vjp`` of
``g`` gave d/dp2 = -0.318 for -0.146, a ``vjp`` of ``f`` ``double free or corruption``, a
``score`` for four states ``Success``; SRA1 called ``g`` compiled (its additivity
check) before the probe.
"""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError


def f(du, u, p, t):
    du[0] = -p[0] * u[0] + u[1] * u[1]
    du[1] = -p[1] * u[1] * u[0]


def f_vjp_acc(ou, op, lam, u, p, t):
    ou[0] += -p[0] * lam[0] - p[1] * u[1] * lam[1]
    ou[1] += 2 * u[1] * lam[0] - p[1] * u[0] * lam[1]
    op[0] += -u[0] * lam[0]
    op[1] += -u[1] * u[0] * lam[1]


def f_jac_acc(J, u, p, t):
    J[0, 0] += -p[0]
    J[0, 1] += 2 * u[1]
    J[1, 0] += -p[1] * u[1]
    J[1, 1] += -p[1] * u[0]


def f_pjac_acc(Jp, u, p, t):          # only the nonzeros, accumulated
    Jp[0, 0] += -u[0]
    Jp[1, 1] += -u[1] * u[0]


def g(gu, u, p, t):                   # diagonal, multiplicative
    gu[0] = p[2] * u[0]
    gu[1] = p[2] * u[1] * u[1]


def g_vjp_acc(ou, op, lam, u, p, t):
    ou[0] += p[2] * lam[0]
    ou[1] += 2 * p[2] * u[1] * lam[1]
    op[2] += u[0] * lam[0] + u[1] * u[1] * lam[1]


def g_jac_acc(J, u, p, t):
    J[0, 0] += p[2]
    J[1, 1] += 2 * p[2] * u[1]


def g_pjac_acc(Jp, u, p, t):
    Jp[0, 2] += u[0]
    Jp[1, 2] += u[1] * u[1]


def g_ggp(out, u, p, t):              # g_i dg_i/du_i
    out[0] = p[2] * p[2] * u[0]
    out[1] = 2 * p[2] * p[2] * u[1] ** 3


def gs(gu, u, p, t):                  # scalar noise
    gu[0] = p[2] * u[0]
    gu[1] = 0.5 * p[2] * u[1]


def gs_vjp_acc(ou, op, lam, u, p, t):
    ou[0] += p[2] * lam[0]
    ou[1] += 0.5 * p[2] * lam[1]
    op[2] += u[0] * lam[0] + 0.5 * u[1] * lam[1]


def gs_jac_acc(J, u, p, t):
    J[0, 0] += p[2]
    J[1, 1] += 0.5 * p[2]


def gs_pjac_acc(Jp, u, p, t):
    Jp[0, 2] += u[0]
    Jp[1, 2] += 0.5 * u[1]


def gs_ggp(out, u, p, t):             # (dg/du) g
    out[0] = p[2] * p[2] * u[0]
    out[1] = 0.25 * p[2] * p[2] * u[1]


def ga(gu, u, p, t):                  # additive (SRA1)
    gu[0] = p[2]
    gu[1] = 0.5 * p[2]


def ga_vjp_acc(ou, op, lam, u, p, t):
    op[2] += lam[0] + 0.5 * lam[1]


def ga_jac_acc(J, u, p, t):           # dg/du = 0: writes nothing
    pass


def ga_pjac_acc(Jp, u, p, t):
    Jp[0, 2] += 1.0
    Jp[1, 2] += 0.5


def g_general(G, u, p, t):
    G[0, 0] = p[2] * u[0]
    G[0, 1] = 0.1
    G[1, 0] = 0.2
    G[1, 1] = p[2] * u[1]


G_DERIVS = {g: (g_vjp_acc, g_jac_acc, g_pjac_acc), gs: (gs_vjp_acc, gs_jac_acc, gs_pjac_acc),
            ga: (ga_vjp_acc, ga_jac_acc, ga_pjac_acc)}
U0, P, SPAN = np.array([1.0, 0.8]), np.array([1.0, 0.7, 0.3]), (0.0, 1.0)
T_DATA = np.array([0.25, 0.5, 1.0])
LOSS = js.L2Loss(T_DATA, np.full((3, 2), 0.5))
FIXED = dict(dt=1 / 32, seed=3, adaptive=False)


def _problem(which, gfun, **kw):
    """The SDE with plain f and g (``which`` "plain"), or with accumulating ``vjp``s, or
    ``jac`` and ``paramjac``s, of both (of f only for general noise)."""
    F, G = f, gfun
    if which != "plain":
        gv, gj, gp = G_DERIVS.get(gfun, (None, None, None))
        if which == "vjp":
            F = js.ODEFunction(f, vjp=f_vjp_acc)
            G = js.ODEFunction(gfun, vjp=gv) if gv else gfun
        else:
            F = js.ODEFunction(f, jac=f_jac_acc, paramjac=f_pjac_acc)
            G = js.ODEFunction(gfun, jac=gj, paramjac=gp) if gj else gfun
    return js.SDEProblem(F, G, U0, SPAN, P, **kw)


def _flat(gr):
    return np.concatenate([np.ravel(gr["p"]), np.ravel(gr["u0"])])


CASES = [
    ("EM", js.EM(), g, {}),
    ("EM-scalar", js.EM(), gs, dict(noise="scalar")),
    ("EM-general", js.EM(), g_general, dict(noise="general", nbrownian=2)),
    ("EulerHeun", js.EulerHeun(), g, dict(interpretation="stratonovich")),
    ("EulerHeun-scalar", js.EulerHeun(), gs, dict(noise="scalar",
                                                  interpretation="stratonovich")),
    ("Milstein", js.Milstein(), g, dict(ggprime=g_ggp)),
    ("Milstein-scalar", js.Milstein(), gs, dict(noise="scalar", ggprime=gs_ggp)),
    ("SRA1", js.SRA1(), ga, {}),
    ("SRIW1", js.SRIW1(), g, {}),
    ("SRIW1-scalar", js.SRIW1(), gs, dict(noise="scalar")),
]


@pytest.mark.parametrize("name, alg, gfun, kw", CASES, ids=[c[0] for c in CASES])
def test_accumulating_derivatives_of_f_and_g_give_the_finite_difference_gradient(
        name, alg, gfun, kw):
    _, fd = js.gradient(_problem("plain", gfun, **kw), alg, LOSS, wrt=("p", "u0"),
                        sensealg=js.FiniteDifference(), **FIXED)
    _, ref = js.gradient(_problem("plain", gfun, **kw), alg, LOSS, wrt=("p", "u0"), **FIXED)
    np.testing.assert_allclose(_flat(ref), _flat(fd), rtol=1e-5, atol=1e-8)
    for which in ("vjp", "jac+paramjac"):
        for ck in ("all", 3):
            _, gr = js.gradient(_problem(which, gfun, **kw), alg, LOSS, wrt=("p", "u0"),
                                sensealg=js.DiscreteAdjoint(checkpoints=ck), **FIXED)
            np.testing.assert_allclose(_flat(gr), _flat(ref), rtol=1e-10, atol=1e-14,
                                       err_msg=f"{which}, checkpoints={ck}")


def f_vjp_off_by_one(ou, op, lam, u, p, t):      # overwrites, but d/dp0 is off by one
    ou[0] = -p[0] * lam[0] - p[1] * u[1] * lam[1]
    ou[1] = 2 * u[1] * lam[0] - p[1] * u[0] * lam[1]
    op[0] = -u[0] * lam[0] + 1.0
    op[1] = -u[1] * u[0] * lam[1]


def test_the_users_derivatives_are_the_ones_used():
    # a vjp off by one in d/dp0 moves that entry by one per step: the adjoint calls it
    _, ref = js.gradient(_problem("plain", g), js.EM(), LOSS, wrt="p", **FIXED)
    prob = js.SDEProblem(js.ODEFunction(f, vjp=f_vjp_off_by_one), g, U0, SPAN, P)
    _, gr = js.gradient(prob, js.EM(), LOSS, wrt="p", **FIXED)
    np.testing.assert_allclose(gr["p"] - ref["p"], [32.0, 0.0, 0.0], atol=1e-9)


@pytest.mark.parametrize("alg, gfun", [(js.SRA1(), ga), (js.SRIW1(), g)],
                         ids=["SRA1", "SRIW1"])
def test_accumulating_derivatives_with_adaptive_steps(alg, gfun, tmp_path):
    kw = dict(seed=3, rtol=1e-3, atol=1e-4)
    _, ref = js.gradient(_problem("plain", gfun), alg, LOSS, wrt=("p", "u0"), **kw)
    for which, sa in (("vjp", js.DiscreteAdjoint()),
                      ("jac+paramjac", js.DiscreteAdjoint(checkpoints=2)),
                      ("vjp", js.DiscreteAdjoint(checkpoints=2,
                                                 store=js.HDF5Store(str(tmp_path / "c.h5"))))):
        _, gr = js.gradient(_problem(which, gfun), alg, LOSS, wrt=("p", "u0"),
                            sensealg=sa, **kw)
        np.testing.assert_allclose(_flat(gr), _flat(ref), rtol=1e-10, atol=1e-14)


N_TRAJ = 3
PS = P * np.linspace(0.9, 1.1, N_TRAJ)[:, None]
U0S = U0 * np.linspace(0.9, 1.1, N_TRAJ)[:, None]
MOMENTS = js.MomentLoss(T_DATA, mean=np.full((3, 2), 0.5), var=np.full((3, 2), 0.05))


# every method's compiled ensemble gradient; the moment loss in the kernels of the two
# families (EM's, SRA's); the trajectory-by-trajectory paths once each (the derivatives
# they call are the single adjoints' above).  Each case compiles its kernels for three
# sets of user functions: the full product (16 cases) cost ~4 minutes of a cold CI run.
ENSEMBLE_CASES = [(CASES[0], "kernel"), (CASES[3], "kernel"), (CASES[5], "kernel"),
                  (CASES[7], "kernel"), (CASES[0], "moments"), (CASES[7], "moments"),
                  (CASES[5], "checkpointed"), (CASES[3], "prob_func")]


@pytest.mark.parametrize("case, how", ENSEMBLE_CASES,
                         ids=[f"{c[0]}-{how}" for c, how in ENSEMBLE_CASES])
def test_accumulating_derivatives_in_ensemble_gradients(case, how):
    name, alg, gfun, kw = case
    sa = js.DiscreteAdjoint(checkpoints=2 if how == "checkpointed" else "all")
    loss = MOMENTS if how == "moments" else LOSS
    out = {}
    for which in ("plain", "vjp", "jac+paramjac"):
        prob = _problem(which, gfun, **kw)
        if how == "prob_func":
            ep = js.EnsembleProblem(prob, prob_func=lambda pr, i: js.remake(pr, p=PS[i],
                                                                           u0=U0S[i]))
        else:
            ep = js.EnsembleProblem(prob, u0s=U0S, ps=PS)
        _, gr = js.gradient(ep, alg, loss, wrt=("p", "u0"), sensealg=sa,
                            trajectories=N_TRAJ, **FIXED)
        out[which] = _flat(gr)
    assert out["plain"].size == N_TRAJ * 5 and np.all(np.isfinite(out["plain"]))
    for which in ("vjp", "jac+paramjac"):
        np.testing.assert_allclose(out[which], out["plain"], rtol=1e-10, atol=1e-14)


def test_ensemble_rows_are_the_single_gradients_on_the_trajectories_paths():
    # an independent check of the reference above: row i is the gradient of trajectory
    # i alone, whose path is path i of the seed (finite differences of its ensemble solve)
    prob = _problem("vjp", g)
    ep = js.EnsembleProblem(prob, u0s=U0S, ps=PS)
    _, gr = js.gradient(ep, js.EM(), LOSS, wrt="p", trajectories=N_TRAJ, **FIXED)
    i, h = 1, 1e-6
    for j in range(P.size):
        vals = []
        for s in (1, -1):
            ps = PS.copy()
            ps[i, j] += s * h
            sol = js.solve(js.EnsembleProblem(_problem("plain", g), u0s=U0S, ps=ps), js.EM(),
                           trajectories=N_TRAJ, saveat=T_DATA, **FIXED)
            vals.append(LOSS.value(sol.u[i]))
        np.testing.assert_allclose(gr["p"][i, j], (vals[0] - vals[1]) / (2 * h), rtol=1e-6)


# ------------------------------------------------------------ indices out of bounds


def jac3(J, u, p, t):
    for i in range(3):
        for k in range(3):
            J[i, k] = 0.0


def pjac3(Jp, u, p, t):
    Jp[0, 0] = -u[0]
    Jp[2, 1] = 7.0


def vjp3(ou, op, lam, u, p, t):
    ou[0] = lam[0]
    ou[1] = lam[1]
    ou[2] = 1.0


def g_vjp3(ou, op, lam, u, p, t):
    ou[0] = p[2] * lam[0]
    ou[1] = 2 * p[2] * u[1] * lam[1]
    op[2] = u[0] * lam[0] + u[1] * u[1] * lam[1] + lam[2] * u[2]


def g_jac3(J, u, p, t):
    J[0, 0] = p[2]
    J[1, 1] = 2 * p[2] * u[1]
    J[2, 2] = 1.0


def g_pjac4(Jp, u, p, t):             # written for four parameters
    Jp[0, 2] = u[0]
    Jp[1, 3] = u[1]


def ggp3(out, u, p, t):
    out[0] = p[2] * p[2] * u[0]
    out[1] = 2 * p[2] * p[2] * u[1] ** 3
    out[2] = 1.0


OOB = {
    "f.jac": (dict(f=js.ODEFunction(f, jac=jac3)), js.EM(), r"^jac: jac3 indexes J out"),
    "f.paramjac": (dict(f=js.ODEFunction(f, jac=f_jac_acc, paramjac=pjac3)), js.EM(),
                   r"^paramjac: pjac3 indexes Jp out"),
    "f.vjp": (dict(f=js.ODEFunction(f, vjp=vjp3)), js.EulerHeun(),
              r"^vjp: vjp3 indexes out_u out"),
    "g.vjp": (dict(g=js.ODEFunction(g, vjp=g_vjp3)), js.EM(),
              r"^g\.vjp: g_vjp3 indexes lam out"),
    "g.jac": (dict(g=js.ODEFunction(g, jac=g_jac3, paramjac=g_pjac_acc)), js.SRIW1(),
              r"^g\.jac: g_jac3 indexes J out"),
    "g.paramjac": (dict(g=js.ODEFunction(g, paramjac=g_pjac4)), js.EM(),
                   r"^g\.paramjac: g_pjac4 indexes Jp out"),
    "ggprime": (dict(ggprime=ggp3), js.Milstein(), r"^ggprime: ggp3 indexes du out"),
}


@pytest.mark.parametrize("case", list(OOB))
def test_sde_derivatives_indexing_out_of_bounds_are_refused(case):
    changes, alg, msg = OOB[case]
    args = dict(dict(f=f, g=g, ggprime=None), **changes)
    prob = js.SDEProblem(args["f"], args["g"], U0, SPAN, P, ggprime=args["ggprime"],
                         interpretation="stratonovich" if isinstance(alg, js.EulerHeun)
                         else "ito")
    with pytest.raises(InvalidProblemError, match=msg):
        js.gradient(prob, alg, LOSS, wrt=("p", "u0"), **FIXED)
    with pytest.raises(InvalidProblemError, match=msg):
        js.solve(prob, alg, **FIXED)
    with pytest.raises(InvalidProblemError, match=msg):
        js.gradient(js.EnsembleProblem(prob, ps=PS), alg, LOSS, wrt="p",
                    trajectories=N_TRAJ, **FIXED)


def test_sde_derivatives_that_fit_pass_the_probe_and_p_too_short_is_named():
    # the same derivatives on a problem of the right size are accepted...
    prob = js.SDEProblem(js.ODEFunction(f, vjp=f_vjp_acc), js.ODEFunction(g, vjp=g_vjp_acc),
                         U0, SPAN, P)
    _, gr = js.gradient(prob, js.EM(), LOSS, wrt="p", **FIXED)
    _, ref = js.gradient(_problem("plain", g), js.EM(), LOSS, wrt="p", **FIXED)
    np.testing.assert_allclose(gr["p"], ref["p"], rtol=1e-12)
    # ...and on a problem with two parameters, where g needs none but its vjp writes
    # op[2], the vjp is refused naming it and out_p
    short = js.SDEProblem(f, js.ODEFunction(g_fixed, vjp=g_fixed_vjp), U0, SPAN, P[:2] * 1.0)
    with pytest.raises(InvalidProblemError, match=r"^g\.vjp: g_fixed_vjp indexes out_p out"):
        js.gradient(short, js.EM(), LOSS, wrt="u0", **FIXED)


def g_fixed(gu, u, p, t):
    gu[0] = 0.3 * u[0]
    gu[1] = 0.3 * u[1]


def g_fixed_vjp(ou, op, lam, u, p, t):    # written for the three-parameter problem
    ou[0] = 0.3 * lam[0]
    ou[1] = 0.3 * lam[1]
    op[2] = 0.0


def rev_f(du, u, p, t):
    du[0] = -u[0]
    du[1] = -u[1]


def rev_g(gu, u, p, t):
    gu[0] = 1.0
    gu[1] = 1.0


def score4(s, u, p, t):               # written for four states
    for i in range(4):
        s[i] = -2.0 * u[i]


def test_a_reverse_sde_score_indexing_out_of_bounds_is_refused():
    fr, gr = js.reverse_sde(rev_f, rev_g, score4)
    prob = js.SDEProblem(fr, gr, np.zeros(2), (1.0, 0.0))
    with pytest.raises(InvalidProblemError, match=r"^score: score4 indexes"):
        js.solve(prob, js.EM(), dt=1 / 16, seed=0)


def g_multiplicative3(gu, u, p, t):   # multiplicative and written for three states
    gu[0] = u[0]
    gu[1] = 0.3
    gu[2] = 1.0


def test_sra1_probes_g_before_its_additivity_check_calls_it_compiled():
    # before: the additivity check ran g compiled (writing past gu) and answered
    # "SRA1 requires additive noise"; now the probe names the index out of bounds
    prob = js.SDEProblem(f, g_multiplicative3, U0, SPAN, P)
    with pytest.raises(InvalidProblemError, match=r"^g: g_multiplicative3 indexes du out"):
        js.solve(prob, js.SRA1(), **FIXED)


def test_general_noise_overflowing_nbrownian_names_the_output_matrix():
    """A general-noise g writing three columns of an n x 2 matrix was reported as
    "indexes du out of bounds (u0 has 2 entries)": the output is the matrix, and its
    second axis is nbrownian."""
    def drift(du, u, p, t):
        du[0] = -u[0]
        du[1] = -u[1]

    def three_columns(G, u, p, t):
        for i in range(2):
            for j in range(3):
                G[i, j] = 0.1
    prob = js.SDEProblem(drift, three_columns, np.ones(2), (0.0, 1.0), noise="general",
                         nbrownian=2)
    with pytest.raises(InvalidProblemError,
                       match=r"^g: .*output matrix out of bounds \(shape \(2, 2\).*"
                             r"nbrownian = 2"):
        js.solve(prob, js.EM(), dt=0.1, seed=1)
