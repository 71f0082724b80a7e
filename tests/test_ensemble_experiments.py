"""Several experiments as one ensemble: an ``L2Loss`` with one block of data per
trajectory, ``(N, m, *u0.shape)``; ``js.gradient`` (in the ensemble kernels and in the
per-trajectory loop), ``js.check_gradient`` and ``js.fit`` of an ``EnsembleProblem``
with one ``p`` shared by the trajectories or one row of ``ps`` each."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import jitsolve as js
from jitsolve.errors import InvalidProblemError
from ode_models import lotka


P0 = np.array([1.5, 1.0, 3.0, 1.0])
LV = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 5.0), p=P0)
TD = np.linspace(0.5, 5.0, 10)
N = 4
U0S = np.array([[1.0, 1.0], [0.6, 1.4], [1.3, 0.7], [0.9, 0.5]])
KW = dict(rtol=1e-8, atol=1e-8)


def experiments(p=P0, noise=0.01, seed=3):
    """Data of the N experiments (one initial state each) with Gaussian noise."""
    rng = np.random.default_rng(seed)
    d = np.stack([js.solve(js.remake(LV, u0=u, p=p), js.Vern7(), saveat=TD, rtol=1e-11,
                           atol=1e-11).u for u in U0S])
    return d + noise * rng.standard_normal(d.shape)


DATA = experiments()


@pytest.mark.parametrize("alg", [js.Tsit5(), js.Rodas5P()], ids=["Tsit5", "Rodas5P"])
def test_rows_use_their_own_data(alg):
    """Row i of the ensemble gradient (one compiled kernel) is bit for bit the gradient of
    experiment i with its own data block and weights; the value is the sum; the
    per-trajectory loop (another sensealg) gives the same bits."""
    w = np.random.default_rng(1).random(DATA.shape)
    loss = js.L2Loss(TD, DATA, weights=w)
    ens = js.EnsembleProblem(LV, u0s=U0S)
    v, g = js.gradient(ens, alg, loss, wrt=("p", "u0"), **KW)
    assert g["p"].shape == (N, 4) and g["u0"].shape == (N, 2)
    total = 0.0
    for i in range(N):
        vi, gi = js.gradient(js.remake(LV, u0=U0S[i]), alg, js.L2Loss(TD, DATA[i], weights=w[i]),
                             wrt=("p", "u0"), **KW)
        total += vi
        assert np.array_equal(g["p"][i], gi["p"]) and np.array_equal(g["u0"][i], gi["u0"])
    assert v == pytest.approx(total, rel=1e-14)
    # the rows differ: each experiment saw other data
    assert np.abs(g["p"][0] - g["p"][1]).max() > 1e-3
    v2, g2 = js.gradient(ens, alg, loss, wrt=("p", "u0"),
                         sensealg=js.DiscreteAdjoint(checkpoints=3), **KW)
    assert v2 == v and np.array_equal(g2["p"], g["p"]) and np.array_equal(g2["u0"], g["u0"])


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 5), st.floats(0.5, 1.5))
def test_identical_blocks_equal_shared_data(n, scale):
    """Per-trajectory data whose blocks are all the shared data give the shared-data
    gradient, bit for bit, for any ensemble size."""
    ens = js.EnsembleProblem(LV, ps=P0 * np.linspace(scale, 1.2 * scale, n)[:, None])
    shared = js.L2Loss(TD, DATA[0])
    blocks = js.L2Loss(TD, np.broadcast_to(DATA[0], (n,) + DATA[0].shape))
    v1, g1 = js.gradient(ens, js.Tsit5(), shared, wrt="p", **KW)
    v2, g2 = js.gradient(ens, js.Tsit5(), blocks, wrt="p", **KW)
    assert v1 == v2 and np.array_equal(g1["p"], g2["p"])


def test_data_of_the_wrong_shape_names_data():
    ens = js.EnsembleProblem(LV, u0s=U0S)
    with pytest.raises(InvalidProblemError, match=r"data: expected shape \(10, 2\) shared .* "
                                                  r"or \(4, 10, 2\) one per trajectory"):
        js.gradient(ens, js.Tsit5(), js.L2Loss(TD, DATA[:3]), wrt="p", **KW)
    with pytest.raises(InvalidProblemError, match="data: expected shape"):
        js.gradient(ens, js.Tsit5(), js.L2Loss(TD, DATA[:3]), wrt="p",
                    sensealg=js.DiscreteAdjoint(checkpoints=3), **KW)
    # a single solve given an ensemble's data
    with pytest.raises(InvalidProblemError, match=r"data: shape \(4, 10, 2\) holds 4 trajectories"):
        js.gradient(LV, js.Tsit5(), js.L2Loss(TD, DATA), wrt="p", **KW)
    with pytest.raises(InvalidProblemError, match="data: 10 observation times"):
        js.L2Loss(TD, np.zeros((4, 9, 2)))


def test_check_gradient_of_an_ensemble():
    """The Taylor test of an ensemble: one shared p (gradient = sum of the rows) and the
    rows of u0s."""
    loss = js.L2Loss(TD, DATA)
    ens = js.EnsembleProblem(LV, u0s=U0S)
    for wrt in ("p", "u0"):
        r = js.check_gradient(ens, js.Tsit5(), loss, wrt=wrt, verbose=False, rtol=1e-10, atol=1e-10)
        assert r["passed"] and 1.8 < r["order"] < 2.2, (wrt, r)
    with pytest.raises(InvalidProblemError,
                       match="wrt: ensembles differentiate 'p' and 'u0', not 'kappa'"):
        js.check_gradient(ens, js.Tsit5(), loss, wrt="kappa")


def test_fit_one_p_from_several_experiments():
    """Lotka-Volterra parameters from four noisy experiments (their own initial states):
    one shared p, its gradient the sum of the ensemble kernel's rows."""
    p_true = np.array([1.2, 0.8, 2.5, 1.1])
    data = experiments(p_true, noise=0.01)
    ens = js.EnsembleProblem(LV, u0s=U0S)
    res = js.fit(ens, js.Tsit5(), js.L2Loss(TD, data), P0, bounds=(0.1, 10), progress=False, **KW)
    assert res.success
    np.testing.assert_allclose(res.p, p_true, rtol=0.02)
    # the objective's gradient at the start is the sum of the per-trajectory rows
    v, g = js.gradient(ens, js.Tsit5(), js.L2Loss(TD, data), wrt="p", **KW)
    assert res.history[0] == v and res.grad_norm[0] == pytest.approx(np.linalg.norm(g["p"].sum(0)))
    with pytest.raises(InvalidProblemError, match=r"p0: expected shape \(4,\) \(one p shared"):
        js.fit(ens, js.Tsit5(), js.L2Loss(TD, data), np.tile(P0, (N, 1)), progress=False)


def test_fit_each_trajectory_its_own_p():
    """With ``ps`` each row is fitted to its own experiment's data."""
    ps_true = P0 * np.array([[1.0], [1.1], [0.9], [1.05]])
    data = np.stack([js.solve(js.remake(LV, p=q), js.Vern7(), saveat=TD, rtol=1e-11,
                              atol=1e-11).u for q in ps_true])
    ens = js.EnsembleProblem(LV, ps=np.tile(P0, (N, 1)))
    res = js.fit(ens, js.Tsit5(), js.L2Loss(TD, data), np.tile(P0, (N, 1)), progress=False,
                 rtol=1e-10, atol=1e-10)
    assert res.p.shape == (N, 4)
    np.testing.assert_allclose(res.p, ps_true, rtol=1e-4)
    with pytest.raises(InvalidProblemError, match=r"p0: expected shape \(4, 4\) \(one row per"):
        js.fit(ens, js.Tsit5(), js.L2Loss(TD, data), P0, progress=False)


def test_remake_an_ensemble_with_another_base_problem():
    ens = js.EnsembleProblem(LV, u0s=U0S)
    e2 = js.remake(ens, prob=js.remake(LV, p=2 * P0))
    assert np.array_equal(e2.prob.p, 2 * P0) and e2.u0s is not None
    assert np.array_equal(e2.u0s, U0S)
