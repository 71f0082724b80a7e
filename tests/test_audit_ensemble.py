"""Audit of ensembles (forty-third session): an ensemble gradient with an explicit method
ignored ``callback=`` (the gradient of another problem); ``prob_func`` with ``u0s``/``ps``
dropped the rows; terminated trajectories made ``summary()`` NaN and ``esol[i]`` end in NaN
rows; slices of an ensemble solution; float32 ``u0s``."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError, UnsupportedAlgorithmError


def decay(du, u, p, t):
    du[0] = -p[0] * u[0]


PROB = js.ODEProblem(decay, np.array([1.0]), (0.0, 2.0), np.array([1.0]))


def low(u, t, p):
    return u[0] < 0.6


def reset(u, t, p):
    u[0] = 1.0


@pytest.mark.parametrize("loss", [js.L2Loss(np.array([0.5, 1.0]), np.zeros((3, 2, 1))),
                                  js.MomentLoss(np.array([0.5, 1.0]), np.zeros((2, 1)))],
                         ids=["L2Loss", "MomentLoss"])
def test_an_ensemble_gradient_through_a_callback_is_refused(loss):
    ep = js.EnsembleProblem(PROB, ps=np.array([[1.0], [2.0], [3.0]]))
    cb = js.DiscreteCallback(low, reset)
    with pytest.raises(UnsupportedAlgorithmError, match="^callback: "):
        js.gradient(ep, js.Tsit5(), loss, wrt="p", callback=cb)


def test_finite_differences_of_an_ensemble_see_the_callback():
    ep = js.EnsembleProblem(PROB, ps=np.array([[1.0], [2.0]]))
    loss = js.L2Loss(np.array([1.0]), np.zeros((2, 1, 1)))
    cb = js.DiscreteCallback(low, reset)
    v_cb, g_cb = js.gradient(ep, js.Tsit5(), loss, wrt="p", sensealg=js.FiniteDifference(),
                             callback=cb, rtol=1e-10, atol=1e-12)
    v, g = js.gradient(ep, js.Tsit5(), loss, wrt="p", rtol=1e-10, atol=1e-12)
    # the value is that of the solve with the callback (resets inside the span)
    sol = js.solve(ep, js.Tsit5(), saveat=[1.0], callback=cb, rtol=1e-10, atol=1e-12)
    assert abs(v_cb - 0.5 * np.sum(sol.u[:, 0, 0] ** 2)) < 1e-12
    assert abs(v - 0.5 * (np.exp(-2.0) + np.exp(-4.0))) < 1e-8
    assert v_cb > v + 0.01
    assert abs(g_cb["p"][1, 0] - g["p"][1, 0]) > 1e-2


def test_prob_func_with_rows_is_refused():
    with pytest.raises(InvalidProblemError, match="^prob_func: give prob_func or u0s/ps"):
        js.EnsembleProblem(PROB, u0s=np.array([[10.0], [20.0]]), prob_func=lambda pr, i: pr)
    with pytest.raises(InvalidProblemError, match="^prob_func: "):
        js.EnsembleProblem(PROB, ps=np.array([[1.0]]), prob_func=lambda pr, i: pr)


def above(u, t, p):
    return u[0] - 0.3


@pytest.fixture(scope="module")
def terminated():
    ep = js.EnsembleProblem(PROB, ps=np.array([[0.5], [1.0], [2.0], [4.0]]))
    return js.solve(ep, js.Tsit5(), saveat=0.5, rtol=1e-10, atol=1e-12,
                    callback=js.ContinuousCallback(above, terminate=True))


def test_a_terminated_trajectory_ends_at_its_last_saved_time(terminated):
    e = terminated
    assert [rc.name for rc in e.retcodes] == ["Success"] + ["Terminated"] * 3
    # p = 1 stops at ln(1/0.3) = 1.204: saved at 0, 0.5, 1.0
    s1 = e[1]
    np.testing.assert_array_equal(s1.t, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(s1.u[:, 0], np.exp(-s1.t), rtol=1e-8)
    assert np.isfinite(s1.u).all()
    assert e[0].t.size == 5


def test_the_summary_counts_a_terminated_trajectory_before_its_stop(terminated):
    s = terminated.summary(quantiles=(0.0, 1.0))
    np.testing.assert_array_equal(s.counts, [4, 3, 2, 1, 1])   # stops at ln(1/0.3)/p
    ps = np.array([0.5, 1.0, 2.0, 4.0])
    t = s.t
    for k, c in enumerate(s.counts):
        vals = np.exp(-ps[:c] * t[k])
        assert abs(s.mean[k, 0] - vals.mean()) < 1e-8
        if c >= 2:
            assert abs(s.var[k, 0] - vals.var(ddof=1)) < 1e-8
        else:
            assert np.isnan(s.var[k, 0])
        assert abs(s.qlow[k, 0] - vals.min()) < 1e-8
    assert s.n == 4


def test_slices_give_lists_of_trajectories(terminated):
    part = terminated[1:3]
    assert isinstance(part, list) and len(part) == 2
    np.testing.assert_array_equal(part[1].u, terminated[2].u)
    assert [s.retcode for s in terminated[::2]] == [terminated.retcodes[0],
                                                  terminated.retcodes[2]]
    with pytest.raises(TypeError, match="integer or a slice"):
        terminated["a"]


def test_float32_u0s_are_taken_as_ps_are():
    a = js.solve(js.EnsembleProblem(PROB, u0s=np.array([[1.0], [2.0]], dtype=np.float32)),
                 js.Tsit5(), saveat=[1.0])
    b = js.solve(js.EnsembleProblem(PROB, u0s=np.array([[1.0], [2.0]])), js.Tsit5(),
                 saveat=[1.0])
    np.testing.assert_array_equal(a.u, b.u)
