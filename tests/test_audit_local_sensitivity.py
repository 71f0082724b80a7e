"""Audit of ``js.local_sensitivities``, ``js.parameter_covariance`` and the losses they use:
sensitivities against the matrix exponential and finite differences of the discrete
solution, the times ``t`` checked under their own name, the covariance against
``scipy.optimize.curve_fit``'s ``pcov`` (badly scaled parameters, ``dof <= 0``, ensembles
using fewer trajectories than rows), and the losses' values and gradients."""
import numpy as np
import pytest
import scipy.linalg as sl
from scipy.optimize import curve_fit

import jitsolve as js
from jitsolve.errors import InvalidProblemError, UnsupportedAlgorithmError

KW = dict(rtol=1e-11, atol=1e-13)
A = np.array([[-1.0, 0.5, 0.0], [0.2, -0.8, 0.3], [0.0, 0.1, -0.5]])
U0 = np.array([1.0, 2.0, -1.0])


def linear(du, u, p, t):              # du/dt = P u, P = p.reshape(3, 3)
    for i in range(3):
        s = 0.0
        for j in range(3):
            s += p[3 * i + j] * u[j]
        du[i] = s


def decay(du, u, p, t):
    du[0] = -p[0] * u[0]


def decay_each(du, u, p, t):
    for i in range(u.size):
        du[i] = -p[i] * u[i]


def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


def expm_references(t):
    """u(t) = e^{At} u0, du/du0 = e^{At} and du/dA_ij from the block exponential
    exp([[A, E_ij], [0, A]] t) (Van Loan, 1978)."""
    u = np.array([sl.expm(A * ti) @ U0 for ti in t])
    Su0 = np.array([sl.expm(A * ti) for ti in t])
    Sp = np.zeros((len(t), 3, 9))
    for k in range(9):
        E = np.zeros(9)
        E[k] = 1.0
        M = np.block([[A, E.reshape(3, 3)], [np.zeros((3, 3)), A]])
        for j, ti in enumerate(t):
            Sp[j, :, k] = sl.expm(M * ti)[:3, 3:] @ U0
    return u, Sp, Su0


@pytest.mark.parametrize("alg,kw,tol", [
    (js.Tsit5(), KW, 1e-9), (js.Vern7(), KW, 1e-10), (js.Rodas5P(), KW, 1e-10),
    (js.KenCarp4(), KW, 1e-8), (js.RK4(), dict(dt=1e-3, adaptive=False), 1e-10)],
    ids=["Tsit5", "Vern7", "Rodas5P", "KenCarp4", "RK4"])
def test_linear_ode_against_the_matrix_exponential(alg, kw, tol):
    prob = js.ODEProblem(linear, U0, (0.0, 2.0), p=A.ravel().copy())
    t = np.array([0.0, 0.3, 1.0, 2.0])            # t0 included
    u, S = js.local_sensitivities(prob, alg, t, wrt=("p", "u0"), **kw)
    ue, Spe, Su0e = expm_references(t)
    assert S["p"].shape == (4, 3, 9) and S["u0"].shape == (4, 3, 3)
    np.testing.assert_allclose(u, ue, rtol=0, atol=tol)
    np.testing.assert_allclose(S["p"], Spe, rtol=0, atol=10 * tol)
    np.testing.assert_allclose(S["u0"], Su0e, rtol=0, atol=tol)
    np.testing.assert_array_equal(S["u0"][0], np.eye(3))
    np.testing.assert_array_equal(S["p"][0], 0.0)


def test_fixed_step_tangents_differentiate_the_discrete_solution():
    """RK4 with dt not landing on t (interpolated saves): the tangents are the derivative
    of what js.solve computes, to central differences' accuracy."""
    P = np.array([1.5, 1.0, 3.0, 1.0])
    prob = js.ODEProblem(lotka, np.array([1.0, 1.2]), (0.0, 3.0), P)
    t = np.array([0.33, 1.05, 3.0])
    kw = dict(dt=0.1, adaptive=False)
    u, S = js.local_sensitivities(prob, js.RK4(), t, wrt="p", **kw)
    np.testing.assert_array_equal(u, js.solve(prob, js.RK4(), saveat=t, **kw).u)
    h = 1e-6
    for k in range(4):
        q = [P.copy(), P.copy()]
        q[0][k] += h
        q[1][k] -= h
        fd = [js.solve(js.remake(prob, p=x), js.RK4(), saveat=t, **kw).u for x in q]
        np.testing.assert_allclose(S["p"][..., k], (fd[0] - fd[1]) / (2 * h), rtol=1e-7,
                                   atol=1e-8)


def test_scalar_t_backward_span_and_two_dimensional_u0():
    prob = js.ODEProblem(decay, np.array([2.0]), (0.0, 2.0), p=np.array([0.7]))
    u, S = js.local_sensitivities(prob, js.Tsit5(), 1.0, wrt="p", **KW)
    assert u.shape == (1, 1) and S["p"].shape == (1, 1, 1)
    assert S["p"][0, 0, 0] == pytest.approx(-2.0 * np.exp(-0.7), rel=1e-9)
    back = js.ODEProblem(decay, np.array([2.0]), (2.0, 0.0), p=np.array([0.7]))
    t = np.array([2.0, 1.0, 0.0])                  # increasing along the backward span
    u, S = js.local_sensitivities(back, js.Tsit5(), t, wrt=("p", "u0"), **KW)
    e = np.exp(-0.7 * (t - 2.0))
    np.testing.assert_allclose(u[:, 0], 2.0 * e, rtol=1e-9)
    np.testing.assert_allclose(S["p"][:, 0, 0], -(t - 2.0) * 2.0 * e, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(S["u0"][:, 0, 0], e, rtol=1e-9)
    u0 = np.array([[1.0, 2.0], [3.0, 4.0]])
    rates = np.array([0.1, 0.2, 0.3, 0.4])
    p2 = js.ODEProblem(decay_each, u0, (0.0, 1.0), p=rates)
    t = np.array([0.5, 1.0])
    u, S = js.local_sensitivities(p2, js.Tsit5(), t, wrt=("p", "u0"), **KW)
    assert S["p"].shape == (2, 2, 2, 4) and S["u0"].shape == (2, 2, 2, 2, 2)
    ue = u0 * np.exp(-rates.reshape(2, 2) * t[:, None, None])
    np.testing.assert_allclose(u, ue, rtol=1e-9)
    for k in range(4):
        i, j = divmod(k, 2)
        ref_p, ref_u0 = np.zeros((2, 2, 2)), np.zeros((2, 2, 2))
        ref_p[:, i, j] = -t * ue[:, i, j]
        ref_u0[:, i, j] = np.exp(-rates[k] * t)
        np.testing.assert_allclose(S["p"][..., k], ref_p, rtol=1e-8, atol=1e-14)
        np.testing.assert_allclose(S["u0"][..., i, j], ref_u0, rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("t", [[1.0, 0.5], [0.5, 0.5], [0.5, 3.0], [-0.5], [], [np.nan],
                               [[0.5, 1.0]]],
                         ids=["unsorted", "repeated", "after", "before", "empty", "nan", "2-D"])
def test_bad_times_are_refused_naming_t(t):
    prob = js.ODEProblem(decay, np.array([2.0]), (0.0, 2.0), p=np.array([0.7]))
    with pytest.raises(InvalidProblemError, match="^t: "):
        js.local_sensitivities(prob, js.Tsit5(), t)


def test_bad_wrt_and_options_are_refused_by_name():
    prob = js.ODEProblem(decay, np.array([2.0]), (0.0, 2.0), p=np.array([0.7]))
    for wrt in (None, 5, (), ("p", 3)):
        with pytest.raises(InvalidProblemError, match="^wrt"):
            js.local_sensitivities(prob, js.Tsit5(), [1.0], wrt=wrt)
    with pytest.raises(InvalidProblemError, match="^saveat"):
        js.local_sensitivities(prob, js.Tsit5(), [1.0], saveat=[1.0])
    with pytest.raises(InvalidProblemError, match="^sensealg"):
        js.local_sensitivities(prob, js.Tsit5(), [1.0], sensealg=js.DiscreteAdjoint())
    split = js.SplitODEProblem(np.array([-1.0]), decay, np.array([1.0]), (0.0, 1.0),
                               p=np.array([0.5]))
    with pytest.raises(UnsupportedAlgorithmError, match="^alg: .*ETDRK4"):
        js.local_sensitivities(split, js.ETDRK4(), [1.0], dt=0.01)
    sde = js.SDEProblem(decay, decay, np.array([1.0]), (0.0, 1.0), p=np.array([0.5]))
    with pytest.raises(InvalidProblemError, match="^prob"):
        js.local_sensitivities(sde, js.EM(), [1.0], dt=0.01)


def _decay_fit_data():
    t = np.linspace(0.2, 3.0, 8)
    rng = np.random.default_rng(3)
    sig = 0.05 * (1.0 + rng.uniform(size=8))
    y = 2.0 * np.exp(-0.8 * t) + sig * rng.standard_normal(8)
    return t, y, sig


@pytest.mark.parametrize("absolute_sigma", [False, True])
def test_covariance_is_curve_fits_pcov(absolute_sigma):
    t, y, sig = _decay_fit_data()

    def model(tt, k, a):
        return a * np.exp(-k * tt)

    def jac(tt, k, a):
        return np.stack([-tt * a * np.exp(-k * tt), np.exp(-k * tt)], axis=1)
    popt, pcov = curve_fit(model, t, y, p0=[0.8, 2.0], sigma=sig, jac=jac,
                           absolute_sigma=absolute_sigma, xtol=1e-15, ftol=1e-15, gtol=1e-15)
    prob = js.ODEProblem(decay, np.array([popt[1]]), (0.0, 3.0), p=np.array([popt[0]]))
    loss = js.L2Loss(t, y[:, None], weights=(1 / sig ** 2)[:, None])
    c = js.parameter_covariance(prob, js.Tsit5(), loss, wrt=("p", "u0"),
                                absolute_sigma=absolute_sigma, **KW)
    np.testing.assert_allclose(c.cov, pcov, rtol=1e-7)
    assert c.dof == 6
    r = (y - model(t, *popt)) / sig
    assert c.chi2 == pytest.approx(r @ r, rel=1e-8)
    assert "std=" in repr(c)                        # a joint estimate's repr


def test_covariance_does_not_depend_on_the_units_of_the_parameters():
    """A population of 1e9 and a rate of order one: S^T W S has condition ~1e18, the
    estimate is well determined all the same (it was refused as singular)."""
    t = np.linspace(0.2, 3.0, 8)
    N0 = 1e9
    prob = js.ODEProblem(decay, np.array([N0]), (0.0, 3.0), p=np.array([0.8]))
    e = np.exp(-0.8 * t)
    y = N0 * e * (1 + 0.01 * np.sin(7 * t))
    c = js.parameter_covariance(prob, js.Tsit5(), js.L2Loss(t, y[:, None]),
                                wrt=("p", "u0"), **KW)
    J = np.stack([-t * N0 * e, e], axis=1)
    r = N0 * e - y
    D = np.diag(1 / np.linalg.norm(J, axis=0))
    ref = D @ np.linalg.inv((J @ D).T @ (J @ D)) @ D * (r @ r) / 6
    np.testing.assert_allclose(c.cov, ref, rtol=1e-7)
    assert c.cond == pytest.approx(np.linalg.cond((J @ D).T @ (J @ D)), rel=1e-6)
    assert c.cond < 100


def line(du, u, p, t):                 # u = p0 t + p1 t^2 / 2
    du[0] = p[0] + p[1] * t


def test_covariance_without_degrees_of_freedom_is_inf_like_curve_fit():
    """Two observations, two parameters (negatively correlated): curve_fit's pcov is all
    inf; the negative entry was -inf (cov * inf) before."""
    t = np.array([0.5, 1.0])
    y = np.array([0.7, 1.9])
    prob = js.ODEProblem(line, np.array([0.0]), (0.0, 1.0), p=np.array([1.0, 2.0]))
    loss = js.L2Loss(t, y[:, None])
    c = js.parameter_covariance(prob, js.Tsit5(), loss, **KW)
    with pytest.warns(Warning):
        pcov = curve_fit(lambda tt, a, b: a * tt + b * tt ** 2 / 2, t, y, p0=[1.0, 2.0])[1]
    assert c.dof == 0 and c.residual_variance == np.inf
    np.testing.assert_array_equal(c.cov, pcov)
    assert np.all(c.cov == np.inf)
    ca = js.parameter_covariance(prob, js.Tsit5(), loss, absolute_sigma=True, **KW)
    X = np.stack([t, t ** 2 / 2], axis=1)
    np.testing.assert_allclose(ca.cov, np.linalg.inv(X.T @ X), rtol=1e-8)
    assert ca.cov[0, 1] < 0


def test_covariance_bad_input_is_refused_by_name():
    prob = js.ODEProblem(decay, np.array([2.0]), (0.0, 3.0), p=np.array([0.8]))
    t = np.array([1.0, 2.0, 3.0])
    loss = js.L2Loss(t, np.ones((3, 1)))
    with pytest.raises(InvalidProblemError, match="^absolute_sigma"):
        js.parameter_covariance(prob, js.Tsit5(), loss, absolute_sigma="no")
    with pytest.raises(InvalidProblemError, match="^wrt"):
        js.parameter_covariance(prob, js.Tsit5(), loss, wrt=None)
    with pytest.raises(InvalidProblemError, match="^data"):
        js.parameter_covariance(prob, js.Tsit5(), js.L2Loss(t, np.ones((3, 2))))
    with pytest.raises(InvalidProblemError, match="^loss: .*MomentLoss"):
        js.parameter_covariance(prob, js.Tsit5(), js.MomentLoss(t, mean=np.ones((3, 1))))
    with pytest.raises(InvalidProblemError, match="^wrt: .*singular"):   # w = 0: no data
        js.parameter_covariance(prob, js.Tsit5(), js.L2Loss(t, np.ones((3, 1)), weights=0.0))


def test_ensemble_covariance_with_fewer_trajectories_than_rows():
    base = js.ODEProblem(decay, np.array([2.0]), (0.0, 3.0), p=np.array([0.7]))
    ens = js.EnsembleProblem(base, ps=np.array([[0.5], [0.7], [0.9]]))
    t = np.array([0.5, 1.0, 2.0])
    c = js.parameter_covariance(ens, js.Tsit5(), js.L2Loss(t, np.ones((3, 1))),
                                trajectories=2, absolute_sigma=True, **KW)
    assert c.std.shape == (2, 1) and c.dof == 6 - 2
    for i, k in enumerate([0.5, 0.7]):
        S = -t * 2.0 * np.exp(-k * t)
        assert c.std[i, 0] == pytest.approx(1 / np.sqrt(S @ S), rel=1e-8)
    u, S = js.local_sensitivities(ens, js.Tsit5(), t, trajectories=2, **KW)
    assert u.shape == (2, 3, 1)
    np.testing.assert_allclose(S["p"][1, :, 0, 0], -t * 2.0 * np.exp(-0.7 * t), rtol=1e-9)


def test_l2loss_value_and_gradient_with_broadcast_weights():
    rng = np.random.default_rng(0)
    d = rng.standard_normal((4, 3))
    u = rng.standard_normal((4, 3))
    for w in (rng.uniform(0, 2, (4, 3)), np.array([1.0, 2.0, 3.0]), np.full((4, 1), 2.0),
              2.5):
        loss = js.L2Loss(np.arange(4.0), d, weights=w)
        wb = np.broadcast_to(w, d.shape)
        assert loss.value(u) == pytest.approx(0.5 * np.sum(wb * (u - d) ** 2), rel=1e-14)
        g = loss.grad(u)
        np.testing.assert_allclose(g, wb * (u - d), rtol=1e-14)
        h = 1e-6
        fd = np.zeros_like(u)
        for i in np.ndindex(u.shape):
            e = np.zeros_like(u)
            e[i] = h
            fd[i] = (loss.value(u + e) - loss.value(u - e)) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_loss_shape_and_type_errors_name_the_argument():
    with pytest.raises(InvalidProblemError, match="^grad: .*real"):
        js.Loss(lambda u: 1.0, lambda u: u + 1j).grad(np.ones((2, 2)))
    with pytest.raises(InvalidProblemError, match=r"^grad: .*\(3,\)"):
        js.Loss(lambda u: 1.0, lambda u: np.ones(3)).grad(np.ones((2, 2)))
    with pytest.raises(InvalidProblemError, match="^grad"):
        js.Loss(lambda u: 1.0, lambda u: np.array(["a", "b"])).grad(np.ones(2))
    with pytest.raises(InvalidProblemError, match="^data"):
        js.L2Loss(np.arange(4.0), np.ones(5))         # 5 values for 4 times
    with pytest.raises(InvalidProblemError, match="^data"):
        js.L2Loss(np.arange(4.0), 1.0)
    with pytest.raises(InvalidProblemError, match="^weights"):
        js.L2Loss(np.arange(4.0), np.ones((4, 3)), weights=np.ones(4))
    with pytest.raises(InvalidProblemError, match="^data"):
        js.L2Loss(np.arange(4.0), np.ones((5, 3)))
    ok = js.L2Loss(np.arange(4.0), np.ones(4))        # one state entry per time
    assert ok.value(np.zeros((4, 1))) == 2.0


def test_moment_loss_against_numpy_and_differences():
    rng = np.random.default_rng(1)
    us = rng.standard_normal((5, 3, 2))
    M = rng.standard_normal((3, 2))
    V = rng.uniform(0.5, 1.5, (3, 2))
    wm, wv = rng.uniform(0, 2, (3, 2)), rng.uniform(0, 2, (3, 2))
    for ddof in (0, 1):
        loss = js.MomentLoss([0.0, 1.0, 2.0], mean=M, var=V, mean_weights=wm,
                             var_weights=wv, ddof=ddof)
        ref = (0.5 * np.sum(wm * (us.mean(0) - M) ** 2)
               + 0.5 * np.sum(wv * (us.var(0, ddof=ddof) - V) ** 2))
        assert loss.value(us) == pytest.approx(ref, rel=1e-13)
        h = 1e-6
        fd = np.zeros_like(us)
        for i in np.ndindex(us.shape):
            e = np.zeros_like(us)
            e[i] = h
            fd[i] = (loss.value(us + e) - loss.value(us - e)) / (2 * h)
        np.testing.assert_allclose(loss.grad(us), fd, rtol=1e-6, atol=1e-8)
