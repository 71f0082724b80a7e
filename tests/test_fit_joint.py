"""``js.fit`` over several inputs at once (``wrt=("p", "u0")``): parameters and initial
states recovered jointly from data, for a single problem and for an ensemble of
experiments with one shared ``p`` and each experiment's own unknown initial state;
per-block bounds and regularizers, the callback and the log; bad input."""
import h5py
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError
from ode_models import lotka


P = np.array([1.5, 1.0, 3.0, 1.0])
U0 = np.array([1.0, 1.0])
PROB = js.ODEProblem(lotka, U0, (0.0, 5.0), P)
T = np.linspace(0.25, 5.0, 20)
KW = dict(rtol=1e-10, atol=1e-12)


def test_joint_fit_recovers_parameters_and_initial_state(tmp_path):
    data = js.solve(PROB, js.Tsit5(), saveat=T, **KW).u
    loss = js.L2Loss(T, data)
    seen = []
    res = js.fit(js.remake(PROB, p=1.2 * P, u0=1.3 * U0), js.Tsit5(), loss, (1.2 * P, 1.3 * U0),
                 wrt=("p", "u0"), bounds=(0.05, 10.0), progress=False, maxiter=300,
                 callback=lambda x, v: seen.append((x, v)), log=tmp_path / "fit.h5", **KW)
    assert res.success
    p, u0 = res.p
    np.testing.assert_allclose(p, P, rtol=1e-5)
    np.testing.assert_allclose(u0, U0, rtol=1e-5)
    assert isinstance(seen[0][0], tuple) and seen[0][0][0].shape == (4,)
    assert seen[0][0][1].shape == (2,)
    with h5py.File(tmp_path / "fit.h5") as f:
        assert f.attrs["wrt"] == "p,u0"
        assert f["iterates"].shape[1] == 6
        np.testing.assert_allclose(f["iterates"][-1], np.concatenate([p, u0]))
    # the objective's gradient is the concatenation of js.gradient's blocks
    v, g = js.gradient(js.remake(PROB, p=1.2 * P, u0=1.3 * U0), js.Tsit5(), loss,
                       wrt=("p", "u0"), **KW)
    assert res.history[0] == v
    assert res.grad_norm[0] == pytest.approx(np.linalg.norm(np.concatenate([g["p"], g["u0"]])),
                                             rel=1e-14)


def test_experiments_with_unknown_initial_states_and_one_shared_p():
    rng = np.random.default_rng(3)
    u0s = 0.5 + rng.random((4, 2))
    ens = js.EnsembleProblem(PROB, u0s=u0s)
    data = js.solve(ens, js.Tsit5(), saveat=T, **KW).u               # (4, 20, 2)
    loss = js.L2Loss(T, data)
    guess = (1.2 * P, u0s * (1 + 0.2 * rng.standard_normal(u0s.shape)))
    start = js.EnsembleProblem(js.remake(PROB, p=guess[0]), u0s=guess[1])
    res = js.fit(start, js.Tsit5(), loss, guess, wrt=("p", "u0"), progress=False,
                 bounds=((0.05, 10.0), (0.01, 5.0)), maxiter=400, **KW)
    p, u0 = res.p
    assert res.success and u0.shape == (4, 2)
    np.testing.assert_allclose(p, P, rtol=1e-4)
    np.testing.assert_allclose(u0, u0s, rtol=1e-4)


def test_per_block_regularizer_and_bounds():
    data = js.solve(PROB, js.Tsit5(), saveat=T, **KW).u
    loss = js.L2Loss(T, data)
    # a strong Tikhonov pull of u0 towards (2, 2) only: p stays free, u0 moves off
    res = js.fit(PROB, js.Tsit5(), loss, (P, U0), wrt=("p", "u0"), progress=False,
                 regularizer=(None, js.Tikhonov(10.0, x_ref=np.array([2.0, 2.0]))),
                 bounds=(None, (0.0, 1.5)), maxiter=200, **KW)
    p, u0 = res.p
    assert np.all(u0 <= 1.5 + 1e-12) and np.any(u0 > 1.0 + 1e-3)
    # one regularizer for both blocks: Tikhonov on each = Tikhonov on the whole vector
    r1 = js.fit(PROB, js.Tsit5(), loss, (P, U0), wrt=("p", "u0"), progress=False,
                regularizer=js.Tikhonov(1e-3), maxiter=3, **KW)
    r2 = js.fit(PROB, js.Tsit5(), loss, (P, U0), wrt=("p", "u0"), progress=False,
                regularizer=(js.Tikhonov(1e-3), js.Tikhonov(1e-3)), maxiter=3, **KW)
    assert r1.history[0] == r2.history[0] and np.array_equal(r1.p[0], r2.p[0])


def test_single_name_tuple_is_the_plain_fit():
    data = js.solve(PROB, js.Tsit5(), saveat=T, **KW).u
    loss = js.L2Loss(T, data)
    a = js.fit(PROB, js.Tsit5(), loss, 1.1 * P, wrt="p", progress=False, maxiter=5, **KW)
    b = js.fit(PROB, js.Tsit5(), loss, (1.1 * P,), wrt=("p",), progress=False, maxiter=5, **KW)
    assert np.array_equal(a.p, b.p) and a.p.shape == (4,)


def test_bad_joint_input_names_the_argument():
    loss = js.L2Loss(T, np.zeros((20, 2)))
    with pytest.raises(InvalidProblemError, match="^p0: fitting"):
        js.fit(PROB, js.Tsit5(), loss, P, wrt=("p", "u0"), progress=False)
    with pytest.raises(InvalidProblemError, match="^p0: fitting"):
        js.fit(PROB, js.Tsit5(), loss, (P, U0, U0), wrt=("p", "u0"), progress=False)
    with pytest.raises(InvalidProblemError, match="^wrt: expected distinct"):
        js.fit(PROB, js.Tsit5(), loss, (P, P), wrt=("p", "p"), progress=False)
    with pytest.raises(InvalidProblemError, match="^wrt"):
        js.fit(PROB, js.Tsit5(), loss, (P, U0), wrt=("p", "x"), progress=False)
    with pytest.raises(InvalidProblemError, match="^bounds"):
        js.fit(PROB, js.Tsit5(), loss, (P, U0), wrt=("p", "u0"), progress=False,
               bounds=((0, 1), (0, 1), (0, 1)))
    with pytest.raises(InvalidProblemError, match="^regularizer: expected one per name"):
        js.fit(PROB, js.Tsit5(), loss, (P, U0), wrt=("p", "u0"), progress=False,
               regularizer=(None,))
    with pytest.raises(InvalidProblemError, match="^regularizer"):
        js.fit(PROB, js.Tsit5(), loss, (P, U0), wrt=("p", "u0"), progress=False,
               regularizer=(None, 3.0))
    with pytest.raises(InvalidProblemError, match="^p0: expected shape .* for u0"):
        js.fit(js.EnsembleProblem(PROB, u0s=np.ones((3, 2))), js.Tsit5(), loss,
               (P, np.ones(2)), wrt=("p", "u0"), progress=False)
