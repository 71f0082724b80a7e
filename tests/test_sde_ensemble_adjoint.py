"""Gradients of SDE ensembles in one compiled kernel (kernels/cpu/sde_ensemble_adjoint.py):
for every method with a discrete adjoint (EM, EulerHeun, Milstein, SRA1 and SRIW1, the
last two with fixed or adaptive steps; EM, EulerHeun and SRA1 with general noise too),
row ``i`` equals, bit for bit, the
single-trajectory adjoint on trajectory ``i``'s own path as the per-trajectory loop
computes it (the same ensemble written with ``prob_func``, which is never run in the
kernel), and the value is the loss of ``js.solve(ensemble, ...)``'s paths.  The loop's
rows are checked against central differences in tests/test_sde_adjoint*.py and
tests/test_sde_adjoint.py's ensemble test; nothing is compared with stored numbers."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.gradient import SolveFailedError
from sde_models import add_g, nl_f, nl_g, nl_ggp, sc_g, sc_ggp


def add_gm(G, u, p, t):           # additive general noise: 2 states, 3 Brownian motions
    G[0, 0] = p[3] * (1.0 + t)
    G[0, 1] = 0.1
    G[0, 2] = 0.2 * p[3]
    G[1, 0] = 0.0
    G[1, 1] = 0.5 * p[3]
    G[1, 2] = 0.3 * t


def gen_g(G, u, p, t):            # general noise: 2 states, 3 Brownian motions
    G[0, 0] = p[3] * u[0]
    G[0, 1] = 0.2 * u[1]
    G[0, 2] = 0.1
    G[1, 0] = 0.0
    G[1, 1] = p[3] * np.sin(u[0])
    G[1, 2] = 0.3 * u[1]


P = np.array([1.1, 0.6, 0.8, 0.9])
U0 = np.array([1.0, 0.7])
NL = js.SDEProblem(nl_f, nl_g, U0, (0.0, 1.0), P)
SC = js.SDEProblem(nl_f, sc_g, U0, (0.0, 1.0), P, noise="scalar")
FIXED = dict(dt=2.0 ** -6)
NOADAPT = dict(dt=2.0 ** -6, adaptive=False)
ADAPT = dict(rtol=1e-2, atol=1e-3, dt=0.5)     # rejections at the start and along the paths
CASES = {
    "em-general": (js.EM(), js.SDEProblem(nl_f, gen_g, U0, (0.0, 1.0), P, noise="general",
                                          nbrownian=3), FIXED),
    "heun-general": (js.EulerHeun(), js.SDEProblem(nl_f, gen_g, U0, (0.0, 1.0), P,
                                                   noise="general", nbrownian=3,
                                                   interpretation="stratonovich"), FIXED),
    "heun-diagonal": (js.EulerHeun(), js.remake(NL, interpretation="stratonovich"), FIXED),
    "heun-scalar": (js.EulerHeun(), js.remake(SC, interpretation="stratonovich"), FIXED),
    "milstein-diagonal": (js.Milstein(), js.remake(NL, ggprime=nl_ggp), FIXED),
    "milstein-scalar-stratonovich": (js.Milstein(), js.remake(SC, ggprime=sc_ggp,
                                                              interpretation="stratonovich"),
                                     FIXED),
    "sra1-fixed": (js.SRA1(), js.SDEProblem(nl_f, add_g, U0, (0.0, 1.0), P), NOADAPT),
    "sra1-adaptive": (js.SRA1(), js.SDEProblem(nl_f, add_g, U0, (0.0, 1.0), P), ADAPT),
    "sra1-general-fixed": (js.SRA1(), js.SDEProblem(nl_f, add_gm, U0, (0.0, 1.0), P,
                                                    noise="general", nbrownian=3), NOADAPT),
    "sra1-general-adaptive": (js.SRA1(), js.SDEProblem(nl_f, add_gm, U0, (0.0, 1.0), P,
                                                       noise="general", nbrownian=3), ADAPT),
    "sriw1-fixed-diagonal": (js.SRIW1(), NL, NOADAPT),
    "sriw1-adaptive-diagonal": (js.SRIW1(), NL, ADAPT),
    "sriw1-adaptive-scalar": (js.SRIW1(), SC, ADAPT),
}
N = 5
T = np.array([0.0, 0.25, 0.5, 1.0])


def _ensemble(prob, rng):
    ps = P * (1 + 0.08 * rng.standard_normal((N, P.size)))
    u0s = U0 * (1 + 0.1 * rng.standard_normal((N, U0.size)))
    return ps, u0s


@pytest.mark.parametrize("case", list(CASES))
def test_kernel_rows_are_the_per_trajectory_adjoints(case):
    alg, prob, kw = CASES[case]
    rng = np.random.default_rng(len(case))
    ps, u0s = _ensemble(prob, rng)
    data = rng.random((N, T.size, 2))
    weights = 0.5 + rng.random((N, T.size, 2))
    loss = js.L2Loss(T, data, weights)
    kw = dict(kw, seed=13)
    ens = js.EnsembleProblem(prob, u0s=u0s, ps=ps)
    v, g = js.gradient(ens, alg, loss, wrt=("p", "u0"), **kw)          # the kernel
    assert g["p"].shape == (N, P.size) and g["u0"].shape == (N, 2)
    assert np.isfinite(g["p"]).all() and np.isfinite(g["u0"]).all()
    loop = js.EnsembleProblem(prob, prob_func=lambda pr, i: js.remake(pr, u0=u0s[i], p=ps[i]))
    vl, gl = js.gradient(loop, alg, loss, wrt=("p", "u0"), trajectories=N, **kw)
    assert v == pytest.approx(vl, rel=1e-14)
    assert np.array_equal(g["p"], gl["p"]) and np.array_equal(g["u0"], gl["u0"])
    # the value is the loss of the ensemble solve's own paths
    u = js.solve(ens, alg, saveat=T, **kw).u
    ref = sum(0.5 * np.sum(weights[i] * (u[i] - data[i]) ** 2) for i in range(N))
    assert v == pytest.approx(ref, rel=1e-12)
    # the rows are the trajectories' own paths: two trajectories with the same problem
    # but different paths have different gradients
    same = js.EnsembleProblem(prob, u0s=np.repeat(u0s[:1], 2, 0), ps=np.repeat(ps[:1], 2, 0))
    _, g2 = js.gradient(same, alg, js.L2Loss(T, data[0], weights[0]), wrt="p", **kw)
    assert np.abs(g2["p"][0] - g2["p"][1]).max() > 1e-6
    assert np.array_equal(g2["p"][0], g["p"][0])


def test_wrt_subsets_and_failed_trajectories():
    alg, prob, kw = CASES["sriw1-adaptive-diagonal"]
    rng = np.random.default_rng(1)
    ps, u0s = _ensemble(prob, rng)
    ens = js.EnsembleProblem(prob, u0s=u0s, ps=ps)
    loss = js.L2Loss(T, rng.random((T.size, 2)))
    _, gu = js.gradient(ens, alg, loss, wrt="u0", seed=2, **kw)
    _, gb = js.gradient(ens, alg, loss, wrt=("p", "u0"), seed=2, **kw)
    assert set(gu) == {"u0"} and np.array_equal(gu["u0"], gb["u0"])
    with pytest.raises(SolveFailedError, match="trajectory 0 of the ensemble failed "
                                               r"\(maxiters reached\)"):
        js.gradient(ens, alg, loss, seed=2, **dict(kw, maxiters=3))
    bad = ps.copy()
    bad[3, 0] = 400.0                      # trajectory 3 overflows within the fixed grid
    with pytest.raises(SolveFailedError, match=r"trajectory 3 of the ensemble failed \(its "
                                               r"path is not finite\)"):
        js.gradient(js.EnsembleProblem(js.remake(prob, interpretation="stratonovich"), u0s=u0s,
                                       ps=bad), js.EulerHeun(), loss, seed=2, **FIXED)
