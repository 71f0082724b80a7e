"""Gradient API audit: ``saveat`` gives a loss its observation times (API.md: gradient,
fit and check_gradient save at the loss's times unless ``saveat`` is given), custom
``js.Loss`` on ODEs, argument checks of the sensitivity algorithms, ``sol(t)`` at NaN,
``esol[i]`` (one trajectory of an ensemble as a solution)."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError
from ode_models import lotka


P0 = np.array([1.5, 1.0, 3.0, 1.0])
TD = np.linspace(0.5, 5.0, 10)
KW = dict(rtol=1e-8, atol=1e-8)


@pytest.fixture(scope="module")
def setup():
    prob = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 5.0), P0)
    data = js.solve(prob, js.Tsit5(), saveat=TD, rtol=1e-10, atol=1e-10).u + 0.1
    custom = js.Loss(lambda u: 0.5 * float(np.sum((u - data) ** 2)), lambda u: u - data)
    return prob, data, custom


@pytest.mark.parametrize("alg", [js.Tsit5(), js.Rodas5P()], ids=["Tsit5", "Rodas5P"])
def test_custom_loss_observes_at_saveat(setup, alg):
    prob, data, custom = setup
    v_ref, g_ref = js.gradient(prob, alg, js.L2Loss(TD, data), wrt=("p", "u0"), **KW)
    for loss, kw in ((custom, dict(saveat=TD)),
                     (js.Loss(custom._value, custom._grad, t_data=TD), {}),
                     (js.L2Loss(TD, data), dict(saveat=TD))):
        v, g = js.gradient(prob, alg, loss, wrt=("p", "u0"), **kw, **KW)
        assert v == v_ref
        np.testing.assert_array_equal(g["p"], g_ref["p"])
        np.testing.assert_array_equal(g["u0"], g_ref["u0"])


def test_saveat_interval_is_the_solve_grid(setup):
    prob, _, _ = setup
    total = js.Loss(lambda u: float(np.sum(u)), lambda u: np.ones_like(u))
    v, g = js.gradient(prob, js.Tsit5(), total, wrt="u0", saveat=0.5, **KW)
    s = js.solve(prob, js.Tsit5(), saveat=0.5, **KW)
    assert s.t.size == 11 and v == pytest.approx(float(np.sum(s.u)), rel=1e-13)
    fd = [(js.gradient(js.remake(prob, u0=prob.u0 + e), js.Tsit5(), total, wrt="u0",
                       saveat=0.5, **KW)[0]
           - js.gradient(js.remake(prob, u0=prob.u0 - e), js.Tsit5(), total, wrt="u0",
                         saveat=0.5, **KW)[0]) / 2e-6 for e in 1e-6 * np.eye(2)]
    np.testing.assert_allclose(g["u0"], fd, rtol=1e-5)


def test_check_gradient_and_fit_accept_saveat(setup):
    prob, data, custom = setup
    rep = js.check_gradient(prob, js.Tsit5(), custom, wrt="p", saveat=TD, verbose=False, **KW)
    assert rep["passed"] and rep["order"] > 1.8
    res = js.fit(prob, js.Tsit5(), custom, 1.1 * P0, saveat=TD, progress=False, maxiter=3, **KW)
    assert res.history[0] > res.loss


def test_saveat_conflicts_and_bad_intervals(setup):
    prob, data, custom = setup
    with pytest.raises(InvalidProblemError, match="saveat: the loss observes at its own t_data"):
        js.gradient(prob, js.Tsit5(), js.L2Loss(TD, data), saveat=TD[:3], **KW)
    with pytest.raises(InvalidProblemError, match="saveat: an interval must be a positive"):
        js.gradient(prob, js.Tsit5(), custom, saveat=-0.5, **KW)
    with pytest.raises(InvalidProblemError, match="needs observation times.*saveat"):
        js.gradient(prob, js.Tsit5(), custom, **KW)


def test_l2loss_rows_match_times():
    with pytest.raises(InvalidProblemError, match="data: 2 observation times but data of shape"):
        js.L2Loss(np.array([1.0, 2.0]), np.ones((3, 2)))
    js.L2Loss(np.array([1.0, 2.0]), np.ones(4))      # flat data of the right size stays allowed


@pytest.mark.parametrize("step", [-1.0, 0.0, float("nan")])
def test_finite_difference_step_checked(step):
    with pytest.raises(InvalidProblemError, match="step: must be"):
        js.FiniteDifference(step=step)


def test_forward_sensitivity_runs_on_stiff_methods(setup):
    # was refused (explicit methods only); now the tangent system is solved by Rodas5P
    prob, data, _ = setup
    loss = js.L2Loss(TD, data)
    _, gd = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"), rtol=1e-11, atol=1e-12)
    _, gf = js.gradient(prob, js.Rodas5P(), loss, wrt=("p", "u0"),
                        sensealg=js.ForwardSensitivity(), **KW)
    for k in ("p", "u0"):
        np.testing.assert_allclose(gf[k], gd[k], rtol=1e-5)


@pytest.mark.parametrize("alg,sensealg", [(js.Tsit5(), None), (js.Rodas5P(), None),
                                          (js.Tsit5(), js.InterpolatingAdjoint())],
                         ids=["Tsit5", "Rodas5P", "Tsit5-interpolating"])
def test_gradient_refuses_unknown_options(setup, alg, sensealg):
    prob, data, _ = setup
    with pytest.raises(InvalidProblemError, match="rtoll: not an option of solve"):
        js.gradient(prob, alg, js.L2Loss(TD, data), sensealg=sensealg, rtoll=1e-8)
    with pytest.raises(InvalidProblemError, match="rtoll: not an option of solve"):
        js.fit(prob, alg, js.L2Loss(TD, data), P0, progress=False, maxiter=1, rtoll=1e-8)


def test_hdf5_store_path_checked(tmp_path):
    with pytest.raises(InvalidProblemError, match="path: the folder .* does not exist"):
        js.HDF5Store(tmp_path / "missing" / "c.h5")
    (tmp_path / "taken.h5").mkdir()                   # a folder where the file should go
    store = js.HDF5Store(tmp_path / "taken.h5")
    with pytest.raises(InvalidProblemError, match="path: cannot create the checkpoint store"):
        store.put(0, np.zeros(2))


def test_dense_output_refuses_nan_time(setup):
    prob, _, _ = setup
    sol = js.solve(prob, js.Tsit5(), **KW)
    with pytest.raises(InvalidProblemError, match="t: contains NaN"):
        sol(np.array([1.0, np.nan]))


def blow(du, u, p, t):          # u = 1 / (1 - p t): blows up at t = 1 / p
    du[0] = p[0] * u[0] * u[0]


def small_noise(gu, u, p, t):
    gu[0] = 0.1
    gu[1] = 0.1


def test_ensemble_trajectory_indexing(setup):
    prob, _, _ = setup
    ps = np.stack([P0, 1.1 * P0, 0.9 * P0])
    es = js.solve(js.EnsembleProblem(prob, ps=ps), js.Tsit5(), saveat=TD, **KW)
    assert [s.retcode for s in es] == es.retcodes and len(list(es)) == 3
    for i in (1, -1):
        s = es[i]
        single = js.solve(js.remake(prob, p=ps[i]), js.Tsit5(), saveat=TD, **KW)
        assert isinstance(s, js.ODESolution) and s.stats == single.stats
        np.testing.assert_array_equal(s.u, single.u)
        np.testing.assert_array_equal(s.t, TD)
    with pytest.raises(IndexError, match="trajectory 3 of an ensemble of 3"):
        es[3]
    # a failed trajectory keeps its saved prefix, without the NaN rows
    bp = js.ODEProblem(blow, np.array([1.0]), (0.0, 1.0), np.array([0.5]))
    eb = js.solve(js.EnsembleProblem(bp, ps=np.array([[0.5], [2.0]])), js.Tsit5(),
                  saveat=np.linspace(0.0, 1.0, 11), **KW)
    bad = eb[1]
    assert bad.retcode != js.ReturnCode.Success and 0 < bad.t.size < 11
    assert np.isfinite(bad.u).all() and eb[0].t.size == 11
    # SDE ensembles: an SDESolution with its Brownian path
    sp = js.SDEProblem(lotka, small_noise, np.array([1.0, 1.0]), (0.0, 1.0), P0)
    se = js.solve(js.EnsembleProblem(sp, ps=ps), js.EM(), dt=2.0 ** -6, seed=1, save_noise=True,
                  saveat=np.array([0.5, 1.0]))
    np.testing.assert_array_equal(se[2].W, se.W[2])
    np.testing.assert_array_equal(se[2].u, se.u[2])
