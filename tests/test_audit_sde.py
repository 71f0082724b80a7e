"""SDE audit fixes: SRA1 refuses multiplicative noise (solve, ensembles, gradient), and
``prob_func`` ensembles keep failed trajectories, their Brownian paths and their stats."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import UnsupportedAlgorithmError
from jitsolve.sde import EM, SRA1, SRIW1, brownian_path, ensemble_moments
from sde_models import gbm_f, gbm_g, ou_f


def ou_g(gu, u, p, t):
    gu[0] = p[1] * (1.0 + t)          # additive: depends on t and p, not on u


def zero2_f(du, u, p, t):
    du[0] = 0.0
    du[1] = 0.0


def cross_g(gu, u, p, t):             # diagonal, g_0 depends on u_1 only
    gu[0] = 0.3 + 0.1 * u[1]
    gu[1] = 0.2


def scalar_g(gu, u, p, t):
    gu[0] = 0.4 * u[0]
    gu[1] = 0.1


def gen_mult_g(G, u, p, t):           # general noise, one entry multiplicative
    G[0, 0] = 0.3
    G[0, 1] = -0.7
    G[1, 0] = 1.1
    G[1, 1] = 0.2 * u[0]


def gen_add_g(G, u, p, t):
    G[0, 0] = 0.3
    G[0, 1] = -0.7 * p[0]
    G[1, 0] = 1.1
    G[1, 1] = 0.2 + t


def blow_f(du, u, p, t):              # u' = p u^2 (+ noise): blows up at t = 1/p for u0 = 1
    du[0] = p[0] * u[0] * u[0]


def blow_g(gu, u, p, t):
    gu[0] = 0.1


GBM = js.SDEProblem(gbm_f, gbm_g, np.array([1.0]), (0.0, 1.0), p=np.array([0.5, 0.4]))
OU = js.SDEProblem(ou_f, ou_g, np.array([1.0]), (0.0, 1.0), p=np.array([0.0, 0.5]))
BLOW = js.SDEProblem(blow_f, blow_g, np.array([1.0]), (0.0, 1.0), p=np.array([0.5]))
PS = [0.5, 2.5, 0.2]                 # trajectory 1 blows up at t = 0.4
ADDITIVE_MSG = r"^g: SRA1 requires additive noise.*SRIW1, Milstein or EM"


# ------------------------------------------------------------------------ SRA1: additive only
def test_sra1_refuses_multiplicative_noise():
    for kw in (dict(), dict(dt=2.0 ** -6, adaptive=False)):
        with pytest.raises(UnsupportedAlgorithmError, match=ADDITIVE_MSG):
            js.solve(GBM, SRA1(), seed=1, **kw)
    # g_0 depends on u_1 only, scalar noise, general noise with one u-dependent entry
    cross = js.SDEProblem(zero2_f, cross_g, np.array([0.0, 0.0]), (0.0, 1.0))
    scal = js.SDEProblem(zero2_f, scalar_g, np.array([2.0, -1.0]), (0.0, 1.0), noise="scalar")
    gen = js.SDEProblem(zero2_f, gen_mult_g, np.zeros(2), (0.0, 1.0), noise="general",
                        nbrownian=2)
    for prob in (cross, scal):
        with pytest.raises(UnsupportedAlgorithmError, match=ADDITIVE_MSG):
            js.solve(prob, SRA1(), dt=2.0 ** -5, adaptive=False)
    with pytest.raises(UnsupportedAlgorithmError, match=r"^g: SRA1 requires additive.*use EM$"):
        js.solve(gen, SRA1(), dt=2.0 ** -5, adaptive=False)
    strat = js.remake(GBM, interpretation="stratonovich")
    with pytest.raises(UnsupportedAlgorithmError, match=r"^g: .*use EulerHeun or Milstein$"):
        js.solve(strat, SRA1(), seed=1)


def test_sra1_still_solves_additive_noise():
    # du = sigma (1 + t) dW: u(t) = u0 + sigma int (1 + s) dW, SRA1 exact up to the Lévy area
    sol = js.solve(OU, SRA1(), dt=2.0 ** -6, adaptive=False, seed=3, save_noise=True)
    assert sol.successful and sol.u.shape == (65, 1)
    # int_0^t (1 + s) dW = (1 + t) W(t) - int_0^t W ds, the last by the trapezoid rule on
    # a 64 times finer grid of the same Brownian motion
    tf = np.linspace(0.0, 1.0, 2 ** 12 + 1)
    Wf = brownian_path(tf, (0.0, 1.0), seed=3, alg=SRA1(), dt=2.0 ** -12)[:, 0]
    np.testing.assert_array_equal(Wf[::64], sol.W[:, 0])
    iw = np.concatenate([[0.0], np.cumsum(0.5 * (Wf[1:] + Wf[:-1]) * np.diff(tf))])[::64]
    exact = 1.0 + 0.5 * ((1 + sol.t) * sol.W[:, 0] - iw)
    np.testing.assert_allclose(sol.u[:, 0], exact, atol=3e-4)
    # an OU process with mean reversion, adaptive, and general additive noise
    ou = js.remake(OU, p=np.array([1.0, 0.5]))
    assert js.solve(ou, SRA1(), seed=3).successful
    gen = js.SDEProblem(zero2_f, gen_add_g, np.zeros(2), (0.0, 1.0), np.array([1.0]),
                        noise="general", nbrownian=2)
    sol = js.solve(gen, SRA1(), dt=2.0 ** -5, adaptive=False, seed=5, save_noise=True)
    np.testing.assert_allclose(sol.u[-1, 0], 0.3 * sol.W[-1, 0] - 0.7 * sol.W[-1, 1],
                               atol=1e-12)


def test_sra1_ensembles_probe_their_trajectories():
    # prob.p makes g vanish (additive), but the ensemble's own ps do not; the first
    # trajectory alone (p[1] = 0: additive) does not tell either
    zero = js.remake(GBM, p=np.array([0.5, 0.0]))
    for ps in (np.array([[0.5, 0.4], [0.5, 0.3]]), np.array([[0.5, 0.0], [0.5, 0.3]])):
        ep = js.EnsembleProblem(zero, ps=ps)
        with pytest.raises(UnsupportedAlgorithmError, match=ADDITIVE_MSG):
            js.solve(ep, SRA1(), trajectories=2, dt=2.0 ** -5, adaptive=False)
        with pytest.raises(UnsupportedAlgorithmError, match=ADDITIVE_MSG):
            ensemble_moments(ep, SRA1(), trajectories=2, dt=2.0 ** -5, adaptive=False)
    # many rows: a sample of 64, first and last included (the last one multiplicative)
    many = np.tile([0.5, 0.0], (200, 1))
    many[-1, 1] = 0.3
    with pytest.raises(UnsupportedAlgorithmError, match=ADDITIVE_MSG):
        js.solve(js.EnsembleProblem(zero, ps=many), SRA1(), dt=2.0 ** -5, adaptive=False)
    # prob_func: every remade problem is checked
    pf = js.EnsembleProblem(OU, prob_func=lambda pr, i: GBM if i == 1 else pr)
    with pytest.raises(UnsupportedAlgorithmError, match=ADDITIVE_MSG):
        js.solve(pf, SRA1(), trajectories=2, dt=2.0 ** -5, adaptive=False)
    # additive ensembles still run, on both paths
    ep = js.EnsembleProblem(OU, ps=np.array([[0.0, 0.5], [0.0, 0.3]]))
    es = js.solve(ep, SRA1(), trajectories=2, dt=2.0 ** -5, adaptive=False, seed=2)
    pf = js.EnsembleProblem(OU, prob_func=lambda pr, i: js.remake(pr, p=ep.ps[i]))
    es2 = js.solve(pf, SRA1(), trajectories=2, dt=2.0 ** -5, adaptive=False, seed=2)
    assert es.retcode is es2.retcode is js.ReturnCode.Success
    np.testing.assert_array_equal(es.u, es2.u)


def test_sra1_gradient_refuses_multiplicative_noise():
    loss = js.L2Loss(np.array([1.0]), np.array([[1.2]]))
    for kw in (dict(dt=2.0 ** -6, adaptive=False), dict()):
        with pytest.raises(UnsupportedAlgorithmError, match=ADDITIVE_MSG):
            js.gradient(GBM, SRA1(), loss, wrt="p", seed=1, **kw)
    # additive: the discrete adjoint runs
    val, g = js.gradient(js.remake(OU, p=np.array([1.0, 0.5])), SRA1(), loss, wrt="p",
                         dt=2.0 ** -6, adaptive=False, seed=1)
    assert np.isfinite(val) and g["p"].shape == (2,) and g["p"][1] != 0.0


# ------------------------------------------------------------------- prob_func ensembles
def _pair(alg, **kw):
    """The same ensemble through prob_func and through ps (trajectory i keyed i in both)."""
    ps = np.array(PS)[:, None]
    pf = js.EnsembleProblem(BLOW, prob_func=lambda pr, i: js.remake(pr, p=ps[i]))
    fast = js.EnsembleProblem(BLOW, ps=ps)
    return (js.solve(pf, alg, trajectories=3, seed=4, **kw),
            js.solve(fast, alg, trajectories=3, seed=4, **kw))


@pytest.mark.parametrize("alg,kw", [
    (EM(), dict(dt=2.0 ** -6)),                                    # every grid point
    (EM(), dict(dt=2.0 ** -6, saveat=np.array([0.0, 0.25, 0.5, 1.0]))),
    (SRIW1(), dict()),                                             # adaptive: (t0, t1)
    (SRIW1(), dict(saveat=0.25)),
], ids=["EM", "EM-saveat", "SRIW1-adaptive", "SRIW1-saveat"])
def test_prob_func_ensemble_keeps_failed_trajectories(alg, kw):
    es, ref = _pair(alg, save_noise=True, **kw)
    np.testing.assert_array_equal(es.t, ref.t)
    assert [r.value for r in es.retcodes] == [r.value for r in ref.retcodes]
    assert es.retcodes[0] is es.retcodes[2] is js.ReturnCode.Success
    assert not es.retcodes[1].successful and es.retcode is es.retcodes[1]
    np.testing.assert_array_equal(es.u, ref.u)          # NaN after the failure, both
    assert np.isnan(es.u[1, -1, 0]) and np.isfinite(es.u[[0, 2]]).all()
    # the Brownian paths are kept, as on the compiled path (NaN after the failure)
    assert es.W is not None and es.W.shape == (3, es.t.size, 1)
    np.testing.assert_array_equal(es.W, ref.W)
    assert np.isfinite(es.W[[0, 2]]).all() and np.isnan(es.W[1, -1]).all()
    assert es.stats.nf == ref.stats.nf > 0
    assert es.stats.naccept == ref.stats.naccept and es.stats.nreject == ref.stats.nreject


def test_prob_func_ensemble_noise_round_trips_hdf5(tmp_path):
    es, _ = _pair(EM(), dt=2.0 ** -5, save_noise=True)
    assert es.W.shape == (3, 33, 1) and es.stats.nf > 0
    path = tmp_path / "ens.h5"
    es.to_hdf5(path)
    back = js.load(path)
    np.testing.assert_array_equal(back.u, es.u)
    np.testing.assert_array_equal(back.W, es.W)
    assert back.retcodes == es.retcodes and back.stats == es.stats
    # without save_noise there is no W
    es, _ = _pair(EM(), dt=2.0 ** -5)
    assert es.W is None


def cubic_chirp_f(du, u, p, t):
    du[0] = np.cos(t * t * t)


def tiny_g(gu, u, p, t):
    gu[0] = 1e-6


def test_dtmin_stops_accepted_steps_that_shrink_below_it():
    # the controller shrinks accepted steps to 0.00256 and 0.00238 after the start: a
    # user dtmin above them ends the solve (it ran on to Success when only rejected steps
    # were checked); one below them does not, nor does the step clamped onto t1
    prob = js.SDEProblem(cubic_chirp_f, tiny_g, np.array([0.0]), (0.0, 3.0), np.zeros(1))
    kw = dict(dt=0.01, rtol=1e-3, atol=1e-3, seed=1)
    free = js.solve(prob, SRA1(), **kw)
    steps = np.diff(free.t)
    assert free.retcode == js.ReturnCode.Success and steps[:-1].min() == pytest.approx(0.00238037109375)
    s = js.solve(prob, SRA1(), dtmin=0.0026, **kw)
    assert s.retcode == js.ReturnCode.DtLessThanMin
    assert 0.0 < s.t[-1] < 0.01 and s.stats.naccept == 1
    np.testing.assert_array_equal(s.u, free.u[:s.t.size])          # what was computed is kept
    ok = js.solve(prob, SRA1(), dtmin=0.00238, **kw)
    assert ok.retcode == js.ReturnCode.Success and ok.t[-1] == 3.0
