"""``js.MomentLoss``: an ensemble's sample mean and variance against data.

The loss itself against NumPy and central differences (hypothesis over sizes, ``ddof``
and weights); its gradient through SDE ensembles (EM, SRA1, Milstein; shared ``p``,
per-trajectory ``u0s``) and ODE ensembles (explicit and stiff kernels, the
per-trajectory loop of ``prob_func``) against central differences of the value that
``js.solve`` of the ensemble gives; ``check_gradient``; a fit that recovers an
Ornstein-Uhlenbeck process's three parameters from its exact moments; bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitsolve as js
from jitsolve.errors import InvalidProblemError
from jitsolve.gradient import SolveFailedError
from sde_models import nl_f, nl_g, nl_ggp


def ou_f(du, u, p, t):            # Ornstein-Uhlenbeck: theta (mu - u) dt + sigma dW
    du[0] = p[0] * (p[1] - u[0])


def ou_g(gu, u, p, t):
    gu[0] = p[2]


def ou_moments(p, t, u0=0.0):
    th, mu, s = p
    mean = mu + (u0 - mu) * np.exp(-th * t)
    var = s * s / (2.0 * th) * (1.0 - np.exp(-2.0 * th * t))
    return mean[:, None], var[:, None]


def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


P_OU = np.array([1.5, 1.0, 0.4])
OU = js.SDEProblem(ou_f, ou_g, np.array([0.0]), (0.0, 2.0), P_OU)
T_OU = np.array([0.5, 1.0, 1.5, 2.0])


# ---------------------------------------------------------------------- the loss itself
def _reference(us, M, V, wm, wv, ddof):
    N = us.shape[0]
    mean = us.sum(axis=0) / N
    var = ((us - mean) ** 2).sum(axis=0) / (N - ddof)
    return 0.5 * np.sum(wm * (mean - M) ** 2) + 0.5 * np.sum(wv * (var - V) ** 2)


@settings(max_examples=30, deadline=None)
@given(N=st.integers(2, 7), m=st.integers(1, 3), n=st.integers(1, 3), ddof=st.sampled_from([0, 1]),
       which=st.sampled_from(["mean", "var", "both"]), weighted=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_value_and_grad_against_numpy_and_differences(N, m, n, ddof, which, weighted, seed):
    rng = np.random.default_rng(seed)
    us = rng.standard_normal((N, m, n))
    M = rng.standard_normal((m, n)) if which != "var" else None
    V = rng.random((m, n)) if which != "mean" else None
    wm = rng.random((m, n)) if weighted and M is not None else None
    wv = rng.random((m, n)) if weighted and V is not None else None
    loss = js.MomentLoss(np.arange(1.0, m + 1), mean=M, var=V, mean_weights=wm,
                         var_weights=wv, ddof=ddof)
    ref = _reference(us, 0.0 if M is None else M, 0.0 if V is None else V,
                     (0.0 if M is None else 1.0) if wm is None else wm,
                     (0.0 if V is None else 1.0) if wv is None else wv, ddof)
    assert loss.value(us) == pytest.approx(ref, rel=1e-13, abs=1e-15)
    g = loss.grad(us)
    assert g.shape == us.shape
    h = 1e-6
    for _ in range(4):                       # random entries, central differences
        k = tuple(int(rng.integers(s)) for s in us.shape)
        up, um = us.copy(), us.copy()
        up[k] += h
        um[k] -= h
        fd = (loss.value(up) - loss.value(um)) / (2 * h)
        assert g[k] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_docstring_numbers_and_moments():
    loss = js.MomentLoss([1.0], mean=[[0.5]], var=[[0.25]])
    us = np.array([[[0.0]], [[1.0]]])
    mean, var = loss.moments(us)
    assert mean[0, 0] == 0.5 and var[0, 0] == 0.5          # ddof = 1
    assert loss.value(us) == 0.03125
    assert np.array_equal(loss.grad(us)[:, 0, 0], [-0.25, 0.25])
    assert js.MomentLoss([1.0], var=[[0.25]], ddof=0).moments(us)[1][0, 0] == 0.25


# ---------------------------------------------------------------------- SDE ensembles
def _fd_shared_p(eprob, alg, loss, kw, h=1e-6):
    p = eprob.prob.p
    out = []
    for k in range(p.size):
        J = []
        for s in (1, -1):
            q = p.copy()
            q[k] += s * h
            ek = js.EnsembleProblem(js.remake(eprob.prob, p=q), u0s=eprob.u0s)
            J.append(loss.value(js.solve(ek, alg, saveat=loss.t_data, **kw).u))
        out.append((J[0] - J[1]) / (2 * h))
    return np.array(out)


@pytest.mark.parametrize("alg,kw", [(js.EM(), dict(dt=2.0 ** -7)),
                                    (js.SRA1(), dict(dt=2.0 ** -7, adaptive=False))],
                         ids=["EM", "SRA1"])
def test_sde_ensemble_shared_p_against_differences(alg, kw):
    M, V = ou_moments(P_OU, T_OU)
    loss = js.MomentLoss(T_OU, mean=1.1 * M, var=0.9 * V)
    kw = dict(kw, trajectories=64, seed=3)
    ep = js.EnsembleProblem(OU)
    val, g = js.gradient(ep, alg, loss, wrt="p", **kw)
    assert g["p"].shape == (64, 3)
    assert val == loss.value(js.solve(ep, alg, saveat=T_OU, **kw).u)
    fd = _fd_shared_p(ep, alg, loss, kw)
    np.testing.assert_allclose(g["p"].sum(axis=0), fd, rtol=1e-6)
    assert np.abs(g["p"].sum(axis=0)).min() > 1e-3           # not a trivially zero gradient


def test_sde_ensemble_u0_rows_milstein_against_differences():
    # a nonlinear, coupled two-state system with multiplicative noise; each trajectory
    # starts from its own row of u0s; wrt u0 gives one row per trajectory
    P = np.array([1.1, 0.6, 0.8, 0.3])
    prob = js.SDEProblem(nl_f, nl_g, np.array([1.0, 0.7]), (0.0, 1.0), P, ggprime=nl_ggp)
    rng = np.random.default_rng(5)
    N = 6
    u0s = np.array([1.0, 0.7]) * (1 + 0.1 * rng.standard_normal((N, 2)))
    T = np.array([0.5, 1.0])
    loss = js.MomentLoss(T, mean=np.full((2, 2), 0.8), var=np.full((2, 2), 0.01),
                         mean_weights=np.array([1.0, 0.0]))     # mean of component 0 only
    kw = dict(dt=2.0 ** -6, trajectories=N, seed=1)
    ep = js.EnsembleProblem(prob, u0s=u0s)
    val, g = js.gradient(ep, js.Milstein(), loss, wrt=("u0", "p"), **kw)
    h = 1e-6
    for i in (0, N - 1):
        for k in range(2):
            J = []
            for s in (1, -1):
                v = u0s.copy()
                v[i, k] += s * h
                us = js.solve(js.EnsembleProblem(prob, u0s=v), js.Milstein(), saveat=T, **kw).u
                J.append(loss.value(us))
            assert g["u0"][i, k] == pytest.approx((J[0] - J[1]) / (2 * h), rel=1e-6, abs=1e-10)
    np.testing.assert_allclose(g["p"].sum(axis=0),
                               _fd_shared_p(ep, js.Milstein(), loss, kw), rtol=1e-6, atol=1e-10)


def test_check_gradient_passes_for_an_sde_ensemble():
    M, V = ou_moments(P_OU, T_OU)
    loss = js.MomentLoss(T_OU, mean=M + 0.05, var=2.0 * V)
    rep = js.check_gradient(js.EnsembleProblem(OU), js.EM(), loss, wrt="p", verbose=False,
                            dt=2.0 ** -6, trajectories=32, seed=0)
    assert rep["passed"] and rep["order"] > 1.8


def test_fit_recovers_ornstein_uhlenbeck_parameters_from_moments():
    T = np.linspace(0.25, 2.0, 8)
    M, V = ou_moments(P_OU, T)
    loss = js.MomentLoss(T, mean=M, var=V, var_weights=(M.mean() / V.mean()) ** 2)
    p0 = np.array([0.8, 0.5, 0.8])
    ep = js.EnsembleProblem(js.remake(OU, p=p0))
    res = js.fit(ep, js.SRA1(), loss, p0, wrt="p", bounds=(1e-3, 10.0), progress=False,
                 dt=2.0 ** -7, adaptive=False, trajectories=500, seed=11, maxiter=200)
    assert res.success
    # the Monte Carlo error of 500 paths is a few per cent; the start was 50-100 % off
    np.testing.assert_allclose(res.p, P_OU, rtol=0.06)
    assert res.loss < 1e-3 * res.history[0]


# ---------------------------------------------------------------------- ODE ensembles
P_LV = np.array([1.5, 1.0, 3.0, 1.0])
LV = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 2.0), P_LV)
T_LV = np.array([0.5, 1.0, 2.0])
KW_LV = dict(rtol=1e-10, atol=1e-12)


def _lv_ensemble(N=5):
    rng = np.random.default_rng(2)
    return (np.array([1.0, 1.0]) * (1 + 0.2 * rng.random((N, 2))),
            P_LV * (1 + 0.05 * rng.standard_normal((N, 4))))


@pytest.mark.parametrize("alg", [js.Tsit5(), js.Rodas5P()], ids=["Tsit5", "Rodas5P"])
def test_ode_ensemble_rows_against_differences(alg):
    u0s, ps = _lv_ensemble()
    loss = js.MomentLoss(T_LV, mean=np.ones((3, 2)), var=np.full((3, 2), 0.05))
    ep = js.EnsembleProblem(LV, u0s=u0s, ps=ps)
    val, g = js.gradient(ep, alg, loss, wrt=("p", "u0"), trajectories=5, **KW_LV)
    assert val == pytest.approx(loss.value(js.solve(ep, alg, saveat=T_LV, trajectories=5,
                                                    **KW_LV).u), rel=1e-14)
    h = 1e-6
    for i, k in ((0, 0), (2, 3), (4, 1)):
        J = []
        for s in (1, -1):
            q = ps.copy()
            q[i, k] += s * h
            us = js.solve(js.EnsembleProblem(LV, u0s=u0s, ps=q), alg, saveat=T_LV,
                          trajectories=5, **KW_LV).u
            J.append(loss.value(us))
        assert g["p"][i, k] == pytest.approx((J[0] - J[1]) / (2 * h), rel=2e-5)


def test_prob_func_loop_equals_the_kernel():
    u0s, ps = _lv_ensemble()
    loss = js.MomentLoss(T_LV, mean=np.ones((3, 2)))

    def prob_func(pr, i):
        return js.remake(pr, u0=u0s[i], p=ps[i])
    v1, g1 = js.gradient(js.EnsembleProblem(LV, u0s=u0s, ps=ps), js.Tsit5(), loss,
                         wrt="p", trajectories=5, **KW_LV)
    v2, g2 = js.gradient(js.EnsembleProblem(LV, prob_func=prob_func), js.Tsit5(), loss,
                         wrt="p", trajectories=5, **KW_LV)
    assert v1 == v2
    np.testing.assert_allclose(g2["p"], g1["p"], rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------- bad input
def test_bad_input_names_the_argument():
    M = np.zeros((2, 1))
    with pytest.raises(InvalidProblemError, match="mean, var"):
        js.MomentLoss([1.0, 2.0])
    with pytest.raises(InvalidProblemError, match="^var"):
        js.MomentLoss([1.0, 2.0], var=-np.ones((2, 1)))
    with pytest.raises(InvalidProblemError, match="^ddof"):
        js.MomentLoss([1.0, 2.0], mean=M, ddof=2)
    with pytest.raises(InvalidProblemError, match="^mean"):
        js.MomentLoss([1.0, 2.0, 3.0], mean=M)
    with pytest.raises(InvalidProblemError, match="^mean"):
        js.MomentLoss([1.0], mean=np.zeros(3))
    with pytest.raises(InvalidProblemError, match="^var"):
        js.MomentLoss([1.0, 2.0], mean=M, var=np.zeros((2, 2)))
    with pytest.raises(InvalidProblemError, match="^var_weights"):
        js.MomentLoss([1.0, 2.0], mean=M, var_weights=np.ones((2, 1)))
    with pytest.raises(InvalidProblemError, match="^mean_weights"):
        js.MomentLoss([1.0, 2.0], mean=M, mean_weights=-np.ones((2, 1)))
    with pytest.raises(InvalidProblemError, match="^mean"):
        js.MomentLoss([1.0, 2.0], mean=[[np.nan], [0.0]])
    loss = js.MomentLoss([1.0, 2.0], mean=M, var=np.ones((2, 1)))
    with pytest.raises(InvalidProblemError, match="^trajectories"):
        loss.value(np.zeros((1, 2, 1)))                     # a variance of one path
    with pytest.raises(InvalidProblemError, match="^u"):
        loss.value(np.zeros((3, 2, 2)))
    # a single problem, not an ensemble
    with pytest.raises(InvalidProblemError, match="^loss.*EnsembleProblem"):
        js.gradient(OU, js.EM(), js.MomentLoss(T_OU, mean=np.zeros((4, 1))), wrt="p",
                    dt=2.0 ** -5)
    # the moments' shape against the trajectories' states
    with pytest.raises(InvalidProblemError, match="^mean"):
        js.gradient(js.EnsembleProblem(OU), js.EM(), js.MomentLoss(T_OU, mean=np.zeros((4, 2))),
                    wrt="p", dt=2.0 ** -5, trajectories=4)


def test_a_failed_trajectory_is_reported():
    def blow(du, u, p, t):
        du[0] = p[0] * u[0] * u[0]
    prob = js.ODEProblem(blow, np.array([1.0]), (0.0, 2.0), np.array([1.0]))
    ep = js.EnsembleProblem(prob, u0s=np.array([[0.1], [2.0]]))    # the second blows up at 0.5
    loss = js.MomentLoss([1.0, 2.0], mean=np.zeros((2, 1)))
    with pytest.raises(SolveFailedError, match="trajectory 1"):
        js.gradient(ep, js.Tsit5(), loss, wrt="u0", trajectories=2)


# ---------------------------------------------------------------------- custom ensemble losses
def _cov01(us):
    d = us - us.mean(axis=0)
    return (d[..., 0] * d[..., 1]).sum(axis=0) / (us.shape[0] - 1)


def _cov_value(us):
    return 0.5 * float(np.sum((_cov01(us) - 0.01) ** 2))


def _cov_grad(us):
    d = us - us.mean(axis=0)
    r = (_cov01(us) - 0.01) / (us.shape[0] - 1)
    return np.stack([r * d[..., 1], r * d[..., 0]], axis=-1)


def test_custom_ensemble_loss_covariance_against_differences():
    """``js.EnsembleLoss``: the covariance of the two components of a nonlinear SDE
    ensemble against a target, its gradient wrt the shared p against central
    differences of the value of ``js.solve``'s paths; check_gradient passes; a wrong
    ``grad`` is caught by check_gradient."""
    P = np.array([1.1, 0.6, 0.8, 0.3])
    prob = js.SDEProblem(nl_f, nl_g, np.array([1.0, 0.7]), (0.0, 1.0), P)
    T = np.array([0.5, 1.0])
    loss = js.EnsembleLoss(_cov_value, _cov_grad, t_data=T)
    us = np.random.default_rng(0).standard_normal((5, 2, 2))
    g = loss.grad(us)
    k = (3, 1, 0)
    up, um = us.copy(), us.copy()
    up[k] += 1e-6
    um[k] -= 1e-6
    assert g[k] == pytest.approx((loss.value(up) - loss.value(um)) / 2e-6, rel=1e-6)
    kw = dict(dt=2.0 ** -6, trajectories=16, seed=4)
    ep = js.EnsembleProblem(prob)
    val, gr = js.gradient(ep, js.EM(), loss, wrt="p", **kw)
    assert val == loss.value(js.solve(ep, js.EM(), saveat=T, **kw).u)
    np.testing.assert_allclose(gr["p"].sum(axis=0), _fd_shared_p(ep, js.EM(), loss, kw),
                               rtol=1e-6, atol=1e-12)
    assert js.check_gradient(ep, js.EM(), loss, wrt="p", verbose=False, **kw)["passed"]
    wrong = js.EnsembleLoss(_cov_value, lambda us: 1.1 * _cov_grad(us), t_data=T)
    assert not js.check_gradient(ep, js.EM(), wrong, wrt="p", verbose=False, **kw)["passed"]
    with pytest.raises(InvalidProblemError, match="^loss.*EnsembleLoss.*EnsembleProblem"):
        js.gradient(prob, js.EM(), loss, wrt="p", dt=2.0 ** -6)


def test_seeds_are_exact_whatever_the_scale_of_the_states():
    """States of order 1e12 and seeds of order 1e-3: the ensemble kernel's rows equal the
    per-trajectory adjoints seeded with ``dJ/du_i`` directly (``js.Loss`` on each
    trajectory) to rounding; data ``u - s`` would have lost the seeds to ``ulp(u)``."""
    def decay(du, u, p, t):
        du[0] = -p[0] * u[0]
        du[1] = -p[1] * u[1] + 1e-3 * u[0]
    u0s = 1e12 * np.array([[1.0, 0.5], [1.1, 0.4], [0.9, 0.7], [1.2, 0.6]])
    prob = js.ODEProblem(decay, u0s[0], (0.0, 1.0), np.array([0.7, 0.4]))
    T = np.array([0.5, 1.0])
    kw = dict(rtol=1e-10, atol=1e-2)
    ep = js.EnsembleProblem(prob, u0s=u0s)
    us = js.solve(ep, js.Tsit5(), saveat=T, trajectories=4, **kw).u
    loss = js.MomentLoss(T, mean=us.mean(axis=0) + 1e-2)          # tiny residuals
    seeds = loss.grad(us)
    assert np.abs(seeds).max() < 1e-2 and us.min() > 1e11
    val, g = js.gradient(ep, js.Tsit5(), loss, wrt=("p", "u0"), trajectories=4, **kw)
    for i in range(4):
        li = js.Loss(lambda u: 0.0, lambda u, i=i: seeds[i], t_data=T)
        _, gi = js.gradient(js.remake(prob, u0=u0s[i]), js.Tsit5(), li, wrt=("p", "u0"), **kw)
        np.testing.assert_allclose(g["p"][i], gi["p"], rtol=1e-13)
        np.testing.assert_allclose(g["u0"][i], gi["u0"], rtol=1e-13)


def test_a_loss_gradient_that_is_not_finite_is_refused():
    loss = js.EnsembleLoss(lambda us: 0.0, lambda us: np.full(us.shape, np.nan), t_data=T_OU)
    with pytest.raises(InvalidProblemError, match="^grad: .*not finite"):
        js.gradient(js.EnsembleProblem(OU), js.EM(), loss, wrt="p", dt=2.0 ** -5,
                    trajectories=3)


def test_moment_loss_refuses_states_with_the_wrong_axes():
    # (N, n, nt) of the right size was reshaped silently to (N, nt, n): value computed,
    # then grad refused with a message about the gradient
    loss = js.MomentLoss([1.0, 2.0], mean=np.zeros((2, 3)))
    us = np.arange(24.0).reshape(4, 2, 3)
    assert loss.value(us) == loss.value(us.reshape(4, 2, 3, 1))     # flattened states: same
    with pytest.raises(InvalidProblemError, match=r"^u: a MomentLoss expects the ensemble's "
                                                  r"saved states, \(N, 2, 3\), got \(4, 3, 2\)"):
        loss.value(np.arange(24.0).reshape(4, 3, 2))
