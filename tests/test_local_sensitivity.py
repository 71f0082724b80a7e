"""``js.local_sensitivities`` (``du(t)/dp``, ``du(t)/du0`` from forward sensitivities)
against closed forms and central differences of ``js.solve``, explicit and stiff; and
``js.parameter_covariance`` against the linear least-squares formula and against the
spread of estimates over many noisy data sets (its statistical meaning)."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError


def decay(du, u, p, t):
    du[0] = -p[0] * u[0]


def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


def line(du, u, p, t):
    du[0] = p[0] + p[1] * t


KW = dict(rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("alg", [js.Tsit5(), js.Vern7(), js.Rodas5P(), js.KenCarp4()],
                         ids=["Tsit5", "Vern7", "Rodas5P", "KenCarp4"])
def test_decay_against_the_closed_form(alg):
    prob = js.ODEProblem(decay, np.array([2.0]), (0.0, 2.0), p=np.array([0.7]))
    t = np.array([0.0, 0.5, 2.0])
    u, S = js.local_sensitivities(prob, alg, t, wrt=("p", "u0"), **KW)
    e = np.exp(-0.7 * t)
    np.testing.assert_allclose(u[:, 0], 2.0 * e, rtol=1e-8)
    assert S["p"].shape == (3, 1, 1) and S["u0"].shape == (3, 1, 1)
    np.testing.assert_allclose(S["p"][:, 0, 0], -t * 2.0 * e, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(S["u0"][:, 0, 0], e, rtol=1e-7)


@pytest.mark.parametrize("alg", [js.Tsit5(), js.Rodas5P()], ids=["Tsit5", "Rodas5P"])
def test_lotka_against_central_differences(alg):
    P = np.array([1.5, 1.0, 3.0, 1.0])
    prob = js.ODEProblem(lotka, np.array([1.0, 1.2]), (0.0, 3.0), P)
    t = np.array([0.5, 1.5, 3.0])
    u, S = js.local_sensitivities(prob, alg, t, wrt=("u0", "p"), **KW)
    plain = js.solve(prob, alg, saveat=t, **KW).u
    if isinstance(alg, js.Tsit5):       # the explicit tangents ride on the solve's own steps
        np.testing.assert_array_equal(u, plain)
    else:                               # stiff: state and tangents as one system
        np.testing.assert_allclose(u, plain, rtol=1e-8)
    assert S["p"].shape == (3, 2, 4) and S["u0"].shape == (3, 2, 2)
    h = 1e-6
    for k in range(4):
        q = [P.copy(), P.copy()]
        q[0][k] += h
        q[1][k] -= h
        fd = [js.solve(js.remake(prob, p=x), alg, saveat=t, **KW).u for x in q]
        np.testing.assert_allclose(S["p"][..., k], (fd[0] - fd[1]) / (2 * h), rtol=1e-5,
                                   atol=1e-7)
    for k in range(2):
        v = [prob.u0.copy(), prob.u0.copy()]
        v[0][k] += h
        v[1][k] -= h
        fd = [js.solve(js.remake(prob, u0=x), alg, saveat=t, **KW).u for x in v]
        np.testing.assert_allclose(S["u0"][..., k], (fd[0] - fd[1]) / (2 * h), rtol=1e-5,
                                   atol=1e-7)


def test_covariance_of_a_linear_model_is_the_least_squares_formula():
    prob = js.ODEProblem(line, np.array([0.0]), (0.0, 1.0), p=np.array([1.0, 2.0]))
    t = np.linspace(0.1, 1.0, 10)
    X = np.stack([t, t ** 2 / 2], axis=1)
    rng = np.random.default_rng(1)
    y = X @ np.array([1.0, 2.0]) + 0.05 * rng.standard_normal(10)
    w = rng.uniform(0.5, 2.0, 10)
    loss = js.L2Loss(t, y[:, None], weights=w[:, None])
    c = js.parameter_covariance(prob, js.Tsit5(), loss, **KW)
    # weighted least squares at p (not refitted): s^2 (X^T W X)^-1, s^2 = chi2 / (m - k)
    r = X @ np.array([1.0, 2.0]) - y
    ref = np.linalg.inv(X.T @ (w[:, None] * X)) * np.sum(w * r * r) / 8
    np.testing.assert_allclose(c.cov, ref, rtol=1e-8)
    assert c.dof == 8 and c.std.shape == (2,)
    np.testing.assert_allclose(c.std, np.sqrt(np.diag(ref)), rtol=1e-8)
    assert c.corr[0, 0] == pytest.approx(1.0) and -1 < c.corr[0, 1] < 0
    ca = js.parameter_covariance(prob, js.Tsit5(), loss, absolute_sigma=True, **KW)
    np.testing.assert_allclose(ca.cov, np.linalg.inv(X.T @ (w[:, None] * X)), rtol=1e-8)
    # a zero weight removes an observation from the count
    w0 = w.copy()
    w0[3] = 0.0
    c0 = js.parameter_covariance(prob, js.Tsit5(), js.L2Loss(t, y[:, None],
                                                             weights=w0[:, None]), **KW)
    assert c0.dof == 7


def test_covariance_predicts_the_spread_of_fitted_parameters():
    """Fit a decay rate and amplitude to 150 noisy data sets: the sample covariance of the
    estimates matches the predicted covariance at the truth (absolute_sigma, weights
    1/sigma^2) within the sampling error of 150 draws."""
    truth_p, truth_u0, sigma = np.array([0.8]), np.array([2.0]), 0.05
    prob = js.ODEProblem(decay, truth_u0, (0.0, 3.0), truth_p)
    t = np.linspace(0.2, 3.0, 15)
    clean = js.solve(prob, js.Tsit5(), saveat=t, **KW).u
    wts = np.full((15, 1), 1.0 / sigma ** 2)
    rng = np.random.default_rng(7)
    est = []
    for _ in range(150):
        loss = js.L2Loss(t, clean + sigma * rng.standard_normal(clean.shape), weights=wts)
        res = js.fit(prob, js.Tsit5(), loss, (truth_p, truth_u0), wrt=("p", "u0"),
                     progress=False, **KW)
        est.append(np.concatenate(res.p))
    est = np.array(est)
    # the joint covariance of (p, u0): local sensitivities of both, (S^T W S)^-1
    u, S = js.local_sensitivities(prob, js.Tsit5(), t, wrt=("p", "u0"), **KW)
    J = np.concatenate([S["p"].reshape(15, 1), S["u0"].reshape(15, 1)], axis=1)
    pred = np.linalg.inv(J.T @ (wts.reshape(15, 1) * J))
    cj = js.parameter_covariance(prob, js.Tsit5(), js.L2Loss(t, clean, weights=wts),
                                 wrt=("p", "u0"), absolute_sigma=True, **KW)
    np.testing.assert_allclose(cj.cov, pred, rtol=1e-12)
    assert isinstance(cj.std, tuple) and cj.std[1].shape == (1,) and cj.dof == 13
    sample = np.cov(est.T)
    np.testing.assert_allclose(np.sqrt(np.diag(sample)), np.sqrt(np.diag(pred)), rtol=0.15)
    cp = js.parameter_covariance(prob, js.Tsit5(), js.L2Loss(t, clean, weights=wts),
                                 wrt="p", absolute_sigma=True, **KW)
    # p alone (u0 known) is better determined than p jointly with u0
    assert cp.std[0] < np.sqrt(pred[0, 0])
    assert abs(est[:, 0].mean() - truth_p[0]) < 4 * np.sqrt(pred[0, 0] / 150)


def test_bad_input():
    prob = js.ODEProblem(decay, np.array([2.0]), (0.0, 1.0), p=np.array([0.7]))
    t = np.array([0.5, 1.0])
    with pytest.raises(InvalidProblemError, match="^wrt"):
        js.local_sensitivities(prob, js.Tsit5(), t, wrt="kappa")
    with pytest.raises(InvalidProblemError, match="^wrt"):
        js.local_sensitivities(prob, js.Tsit5(), t, wrt=("p", "p"))
    with pytest.raises(InvalidProblemError, match="^prob"):
        js.local_sensitivities(js.LinearProblem(np.eye(2), np.ones(2)), js.CG(), t)
    custom = js.Loss(lambda u: 0.0, lambda u: u, t_data=t)
    with pytest.raises(InvalidProblemError, match="^loss"):
        js.parameter_covariance(prob, js.Tsit5(), custom)
    with pytest.raises(InvalidProblemError, match="^wrt"):
        js.parameter_covariance(prob, js.Tsit5(), js.L2Loss(t, np.zeros((2, 1))),
                                wrt=("p", "kappa"))

    def product(du, u, p, t):          # only p0 p1 enters: not identifiable
        du[0] = -p[0] * p[1] * u[0]
    pp = js.ODEProblem(product, np.array([1.0]), (0.0, 1.0), p=np.array([0.5, 2.0]))
    with pytest.raises(InvalidProblemError, match="singular"):
        js.parameter_covariance(pp, js.Tsit5(), js.L2Loss(t, np.zeros((2, 1))), **KW)


def test_covariance_of_an_ensemble_of_experiments():
    """Three experiments (own initial states) sharing p: the covariance of p stacks every
    experiment's sensitivities; with u0 rows too the u0 columns are block-diagonal."""
    P = np.array([1.5, 1.0, 3.0, 1.0])
    u0s = np.array([[1.0, 1.0], [0.7, 1.4], [1.3, 0.6]])
    ens = js.EnsembleProblem(js.ODEProblem(lotka, u0s[0], (0.0, 3.0), P), u0s=u0s)
    t = np.linspace(0.2, 3.0, 12)
    data = js.solve(ens, js.Tsit5(), saveat=t, **KW).u + 0.01
    loss = js.L2Loss(t, data)
    c = js.parameter_covariance(ens, js.Tsit5(), loss, wrt="p", absolute_sigma=True, **KW)
    J = np.concatenate([js.local_sensitivities(js.remake(ens.prob, u0=u0), js.Tsit5(), t,
                                               wrt="p", **KW)[1]["p"].reshape(24, 4)
                        for u0 in u0s])
    np.testing.assert_allclose(c.cov, np.linalg.inv(J.T @ J), rtol=1e-10)
    assert c.dof == 72 - 4 and c.std.shape == (4,)
    cj = js.parameter_covariance(ens, js.Tsit5(), loss, wrt=("p", "u0"), **KW)
    assert cj.std[1].shape == (3, 2) and cj.dof == 72 - 10
    with pytest.raises(InvalidProblemError, match="^prob"):
        js.parameter_covariance(js.EnsembleProblem(ens.prob, prob_func=lambda pr, i: pr),
                                js.Tsit5(), loss, trajectories=3, **KW)
