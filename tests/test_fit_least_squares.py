"""``js.fit(..., method="least_squares")``: a Gauss-Newton trust region on the residuals
with their exact Jacobian from forward sensitivities.  It reaches the L-BFGS-B optimum
in a fraction of the solves; bounds, joint inputs and Tikhonov regularization give the
same optimum as L-BFGS-B; bad input names the argument."""
import h5py
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError
from ode_models import lotka


P = np.array([1.5, 1.0, 3.0, 1.0])
U0 = np.array([1.0, 1.0])
PROB = js.ODEProblem(lotka, U0, (0.0, 10.0), P)
T = np.linspace(0.0, 10.0, 101)
KW = dict(rtol=1e-9, atol=1e-9)


def _data():
    clean = js.solve(PROB, js.Vern7(), saveat=T, rtol=1e-11, atol=1e-11).u
    return clean + 0.02 * np.random.default_rng(0).standard_normal(clean.shape)


@pytest.mark.parametrize("alg", [js.Tsit5(), js.Rodas5P()], ids=["Tsit5", "Rodas5P"])
def test_same_optimum_as_lbfgsb_in_fewer_solves(alg, tmp_path):
    w = np.random.default_rng(1).uniform(0.5, 2.0, (101, 2))
    loss = js.L2Loss(T, _data(), weights=w)
    a = js.fit(PROB, alg, loss, 1.2 * P, bounds=(0.1, 10.0), progress=False, **KW)
    seen = []
    b = js.fit(PROB, alg, loss, 1.2 * P, method="least_squares", bounds=(0.1, 10.0),
               progress=False, callback=lambda x, v: seen.append(v), log=tmp_path / "lm.h5",
               **KW)
    assert a.success and b.success
    np.testing.assert_allclose(b.p, a.p, rtol=2e-5)
    assert b.loss <= a.loss * (1 + 1e-8)
    assert b.nfev <= 15 and b.nfev < a.nfev / 2
    # the reported loss is the L2Loss's value at the estimate (exactly for the explicit
    # methods; the stiff ones solve state and tangents together, equal to the tolerance)
    v = loss.value(js.solve(js.remake(PROB, p=b.p), alg, saveat=T, **KW).u)
    assert b.loss == pytest.approx(v, rel=1e-12 if isinstance(alg, js.Tsit5) else 1e-6)
    assert len(seen) == b.nfev == len(b.history) and seen[0] == b.history[0]
    with h5py.File(tmp_path / "lm.h5") as f:
        assert f["iterates"].shape == (b.nfev, 4) and f.attrs["wrt"] == "p"


def test_joint_inputs_bounds_and_tikhonov_match_lbfgsb():
    loss = js.L2Loss(T, _data())
    reg = (js.Tikhonov(0.5, x_ref=P), js.Tikhonov(2.0, x_ref=np.array([1.2, 0.9])))
    start = (1.1 * P, np.array([0.9, 1.1]))
    kw = dict(wrt=("p", "u0"), regularizer=reg, bounds=((0.1, 10.0), (0.5, 1.08)),
              progress=False, **KW)
    a = js.fit(PROB, js.Tsit5(), loss, start, maxiter=500, **kw)
    b = js.fit(PROB, js.Tsit5(), loss, start, method="least_squares", **kw)
    assert isinstance(b.p, tuple) and b.p[1].shape == (2,)
    np.testing.assert_allclose(b.p[0], a.p[0], rtol=1e-4)
    np.testing.assert_allclose(b.p[1], a.p[1], rtol=1e-4)
    assert np.all(b.p[1] <= 1.08 + 1e-12)
    assert b.loss == pytest.approx(a.loss, rel=1e-6)


def test_bad_input_names_the_argument():
    loss = js.L2Loss(T, np.zeros((101, 2)))
    with pytest.raises(InvalidProblemError, match="^method: 'least_squares' fits an ODEProblem"):
        js.fit(js.EnsembleProblem(PROB, prob_func=lambda pr, i: pr), js.Tsit5(), loss, P,
               method="least_squares", progress=False, trajectories=2)
    with pytest.raises(InvalidProblemError, match="^method: 'least_squares' fits an ODEProblem"):
        js.fit(js.LinearProblem(np.eye(2), np.ones(2)), js.Direct(), js.L2Loss(None, np.ones(2)),
               np.ones(2), wrt="b", method="least_squares", progress=False)
    custom = js.Loss(lambda u: 0.0, lambda u: u, t_data=T)
    with pytest.raises(InvalidProblemError, match="^loss"):
        js.fit(PROB, js.Tsit5(), custom, P, method="least_squares", progress=False)
    with pytest.raises(InvalidProblemError, match="^regularizer"):
        js.fit(PROB, js.Tsit5(), loss, P, method="least_squares", progress=False,
               regularizer=js.TotalVariation(1.0))
    with pytest.raises(InvalidProblemError, match="^sensealg"):
        js.fit(PROB, js.Tsit5(), loss, P, method="least_squares", progress=False,
               sensealg=js.DiscreteAdjoint())
    with pytest.raises(InvalidProblemError, match="^method"):
        js.fit(PROB, js.Tsit5(), loss, P, method="levenberg", progress=False)


def test_experiments_with_shared_p_and_their_own_initial_states():
    """An ensemble of experiments (each its own unknown initial state, one p): the
    stacked residuals with a shared block (p) and a block-diagonal one (the u0 rows) give
    L-BFGS-B's optimum in far fewer solves."""
    rng = np.random.default_rng(4)
    u0s = 0.6 + rng.random((3, 2))
    ens = js.EnsembleProblem(js.remake(PROB, tspan=(0.0, 4.0)), u0s=u0s)
    t = np.linspace(0.2, 4.0, 20)
    data = js.solve(ens, js.Tsit5(), saveat=t, **KW).u
    data = data + 0.01 * rng.standard_normal(data.shape)
    loss = js.L2Loss(t, data)
    start = (1.1 * P, u0s * 1.1)
    ens0 = js.EnsembleProblem(js.remake(ens.prob, p=start[0]), u0s=start[1])
    kw = dict(wrt=("p", "u0"), bounds=(0.05, 10.0), progress=False, **KW)
    a = js.fit(ens0, js.Tsit5(), loss, start, maxiter=800, **kw)
    b = js.fit(ens0, js.Tsit5(), loss, start, method="least_squares", **kw)
    assert b.success and b.p[1].shape == (3, 2)
    np.testing.assert_allclose(b.p[0], a.p[0], rtol=1e-4)
    np.testing.assert_allclose(b.p[1], a.p[1], rtol=1e-4)
    assert b.loss <= a.loss * (1 + 1e-6) and b.nfev < a.nfev / 2
    # the ensemble's sensitivities are every trajectory's own
    u, S = js.local_sensitivities(ens, js.Tsit5(), t, wrt=("p", "u0"), **KW)
    u1, S1 = js.local_sensitivities(js.remake(ens.prob, u0=u0s[1]), js.Tsit5(), t,
                                    wrt=("p", "u0"), **KW)
    assert S["p"].shape == (3, 20, 2, 4) and S["u0"].shape == (3, 20, 2, 2)
    assert np.array_equal(S["p"][1], S1["p"]) and np.array_equal(u[1], u1)
