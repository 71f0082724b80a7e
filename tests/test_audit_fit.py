"""Audit of ``js.fit``: failed solves and non-finite losses at trial points (SciML's
loss = inf convention where the method backs off, a stop with the history otherwise),
p0 clipped to the bounds, bounds that fix entries, joint bounds given as a pair of
arrays, ``options``, stopping from the callback, the log written whatever happens, and
the regularizers' input conversion.

One problem throughout: ``u' = p0 u^2 - p1 u``, ``u(0) = 1`` on ``[0, 1]``, which blows
up before ``t = 1`` when ``p0`` is large (the solve fails with ``DtLessThanMin``)."""
import re

import h5py
import numpy as np
import pytest
from numba import njit

import jitsolve as js
from jitsolve.errors import InvalidProblemError, SolveFailedError


@njit
def _rhs(du, u, p, t):
    du[0] = p[0] * u[0] * u[0] - p[1] * u[0]


T = np.linspace(0.1, 1.0, 5)
P = np.array([0.5, 0.2])
PROB = js.ODEProblem(_rhs, np.array([1.0]), (0.0, 1.0), p=np.array([0.1, 0.1]))
DATA = js.solve(js.remake(PROB, p=P), js.Tsit5(), saveat=T, rtol=1e-10, atol=1e-12).u
LOSS = js.L2Loss(T, DATA)
KW = dict(rtol=1e-8, atol=1e-10)
P_FAILS = np.array([0.1, 0.1])       # the first line searches step into a blow-up
METHODS = ["L-BFGS-B", "BFGS", "CG", "SLSQP", "least_squares"]


def _fit(p0, **kw):
    return js.fit(PROB, js.Tsit5(), LOSS, np.array(p0, dtype=float), progress=False,
                  **{**KW, **kw})


def _loss_at(p):
    return js.gradient(js.remake(PROB, p=np.asarray(p, dtype=float)), js.Tsit5(), LOSS,
                       wrt="p", **KW)[0]


def _nfailed(message):
    m = re.search(r"(\d+) trial point\(s\) failed", message)
    return int(m.group(1)) if m else 0


# ---- 1. failed solves at trial points -------------------------------------------------

@pytest.mark.parametrize("method, options", [("BFGS", None), ("CG", None),
                                             ("SLSQP", {"ftol": 1e-14})])
def test_failed_trial_point_backs_off_and_converges(method, options):
    res = _fit(P_FAILS, method=method, options=options, maxiter=300)
    assert res.success, res.message
    assert np.abs(res.p - P).max() < 1e-5
    assert _nfailed(res.message) >= 1
    assert "DtLessThanMin" in res.message
    assert np.all(np.isfinite(res.history)) and res.history[-1] < 1e-10


def test_failed_trial_point_lbfgsb_backs_off_with_the_history(tmp_path):
    # L-BFGS-B used to stop here (success=False, p = P_FAILS, one iterate); it now backs
    # off from the failed trial point (its line search backtracks) and converges
    path = tmp_path / "fit.h5"
    res = _fit(P_FAILS, log=str(path))
    assert res.success, res.message
    assert "DtLessThanMin" in res.message and "trial point p = [" in res.message
    assert _nfailed(res.message) == 1 and "L-BFGS-B backed off" in res.message
    assert np.abs(res.p - P).max() < 1e-5
    assert len(res.history) == res.nit + 1 and res.nit > 1 and res.nfev > res.nit
    assert res.history[0] == pytest.approx(_loss_at(P_FAILS), rel=1e-12)
    assert res.loss == res.history[-1] == min(res.history)
    with h5py.File(path) as f:
        assert f["iterates"].shape == (len(res.history), 2)
        np.testing.assert_array_equal(f["iterates"][0], P_FAILS)
        np.testing.assert_array_equal(f["loss"][...], res.history)


def test_failed_trial_point_least_squares_shrinks_its_trust_region():
    # least_squares used to stop here (success=False, p = p0, nfev 2); the failed point
    # is now a rejected step (tests/test_audit_fit3.py)
    res = _fit([0.0, 2.0], method="least_squares")
    assert res.success and np.abs(res.p - P).max() < 1e-7
    assert "DtLessThanMin" in res.message and "trial point" in res.message
    assert _nfailed(res.message) == 1 and np.isinf(res.history[1])
    assert len(res.history) == res.nfev == 13
    assert res.loss == min(res.history)


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "least_squares"])
def test_failed_solve_at_the_starting_point_raises(method):
    with pytest.raises(SolveFailedError, match="DtLessThanMin"):
        _fit([1.5, 0.0], method=method)


# ---- 2, 3. bounds: p0 clipped, entries fixed -----------------------------------------

@pytest.mark.parametrize("method", ["L-BFGS-B", "SLSQP", "least_squares"])
def test_p0_outside_the_bounds_is_clipped_before_the_first_evaluation(method, tmp_path):
    path = tmp_path / "fit.h5"
    res = _fit([0.1, 0.1], method=method, bounds=(0.6, 0.8), log=str(path))
    assert res.history[0] == pytest.approx(_loss_at([0.6, 0.6]), rel=1e-8)
    with h5py.File(path) as f:              # least_squares nudges x0 1e-10 inside
        np.testing.assert_allclose(f["iterates"][0], [0.6, 0.6], rtol=0, atol=1e-9)
    assert np.all((res.p >= 0.6) & (res.p <= 0.8))


@pytest.mark.parametrize("method", ["L-BFGS-B", "SLSQP", "least_squares"])
def test_bounds_fixing_every_entry(method):
    res = _fit([1.0, 1.0], method=method, bounds=(0.6, 0.6))
    assert res.success and res.nit == 0 and len(res.history) == 1
    np.testing.assert_array_equal(res.p, [0.6, 0.6])
    assert res.loss == pytest.approx(_loss_at([0.6, 0.6]), rel=1e-10)


def test_least_squares_holds_an_entry_with_equal_bounds():
    res = _fit([0.5, 0.9], method="least_squares", bounds=[(0.5, 0.5), (0.0, 1.0)])
    assert res.success, res.message
    assert res.p[0] == 0.5
    assert res.p[1] == pytest.approx(0.2, abs=1e-6)


# ---- 4. joint bounds -------------------------------------------------------------------

def test_joint_bounds_as_a_pair_of_arrays_is_refused():
    with pytest.raises(InvalidProblemError, match=r"^bounds: .*pair of arrays"):
        js.fit(PROB, js.Tsit5(), LOSS, (np.array([0.1, 0.1]), np.array([1.0])),
               wrt=("p", "u0"), bounds=(np.zeros(2), np.full(2, 5.0)), progress=False)


# ---- 5. options ----------------------------------------------------------------------

def test_options_tighten_the_optimizer():
    loose = _fit([0.2, 0.5])
    tight = _fit([0.2, 0.5], options={"ftol": 1e-15, "gtol": 1e-12})
    assert loose.success and tight.success
    err_loose, err_tight = np.abs(loose.p - P).max(), np.abs(tight.p - P).max()
    assert err_loose > 1e-4                        # L-BFGS-B's default ftol stops early
    assert err_tight < 1e-6 and tight.nit > loose.nit


def test_options_of_least_squares_override_fits_settings():
    res = _fit([0.2, 0.5], method="least_squares", options={"max_nfev": 2})
    assert res.nfev == 2 and len(res.history) == 2 and not res.success


@pytest.mark.parametrize("method, options, match", [
    ("L-BFGS-B", [("ftol", 1e-12)], r"^options: expected a dict"),
    ("L-BFGS-B", {1: 2}, r"^options: expected a dict"),
    ("least_squares", {"bounds": (0, 1)}, r"^options: method 'least_squares'.*\['bounds'\]"),
    ("least_squares", {"maxiter": 3}, r"^options: method 'least_squares'.*\['maxiter'\]"),
])
def test_bad_options(method, options, match):
    with pytest.raises(InvalidProblemError, match=match):
        _fit([0.2, 0.5], method=method, options=options)


# ---- 6. non-finite objective -----------------------------------------------------------

def test_non_finite_objective_at_the_start_raises_naming_its_source():
    with pytest.raises(InvalidProblemError, match=r"^regularizer: .*not finite \(nan\)"):
        _fit([0.2, 0.5], regularizer=lambda x: (np.nan, np.zeros_like(x)))
    with pytest.raises(InvalidProblemError, match=r"^regularizer: gives a gradient"):
        _fit([0.2, 0.5], regularizer=lambda x: (0.0, np.full_like(x, np.inf)))
    nan_loss = js.Loss(lambda u: float("nan"), lambda u: np.zeros_like(u), t_data=T)
    with pytest.raises(InvalidProblemError, match=r"^loss: is not finite \(nan\)"):
        js.fit(PROB, js.Tsit5(), nan_loss, np.array([0.2, 0.5]), progress=False, **KW)


def _nan_at_call(k):
    """A zero regularizer that returns NaN at its k-th call only."""
    calls = [0]

    def reg(x):
        calls[0] += 1
        return (np.nan if calls[0] == k else 0.0), np.zeros_like(x)
    return reg


def test_non_finite_objective_at_a_trial_point():
    res = _fit([0.2, 0.5], method="BFGS", regularizer=_nan_at_call(3))
    assert res.success and _nfailed(res.message) == 1
    assert "regularizer" in res.message
    assert np.abs(res.p - P).max() < 1e-5
    # L-BFGS-B used to stop at the NaN (success=False); it now backs off and converges
    res = _fit([0.2, 0.5], method="L-BFGS-B", regularizer=_nan_at_call(3))
    assert res.success and _nfailed(res.message) == 1, res.message
    assert "regularizer gives a value that is not finite" in res.message
    assert np.isfinite(res.loss) and res.loss == min(res.history)
    # L-BFGS-B's default ftol stops early (measured: 8.8e-3, 1.8e-3 without the NaN)
    assert res.loss < 1e-6 * res.history[0] and np.abs(res.p - P).max() < 2e-2


# ---- 7. stopping from the callback --------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_callback_stops_with_stop_iteration_at_any_call(method):
    for k in (1, 3):
        seen = []

        def cb(x, loss):
            seen.append((np.array(x), loss))
            if len(seen) == k:
                raise StopIteration
        res = _fit([0.2, 0.5], method=method, callback=cb)
        assert not res.success and "stopped by the callback" in res.message
        assert len(res.history) == k
        np.testing.assert_array_equal(res.history, [s[1] for s in seen])
        i = int(np.argmin(res.history))
        assert res.loss == res.history[i]
        np.testing.assert_array_equal(res.p, seen[i][0])


@pytest.mark.parametrize("method", ["L-BFGS-B", "least_squares"])
def test_callback_returning_true_stops(method):
    n = [0]

    def cb(x, loss):
        n[0] += 1
        return np.bool_(n[0] == 2)
    res = _fit([0.2, 0.5], method=method, callback=cb)
    assert not res.success and "returned True" in res.message
    assert len(res.history) == 2 and n[0] == 2


# ---- 8. the log --------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["L-BFGS-B", "least_squares"])
def test_log_is_written_when_the_fit_raises_and_overwrites(method, tmp_path):
    path = tmp_path / "fit.h5"
    path.write_bytes(b"not an HDF5 file")
    seen = []

    def cb(x, loss):
        seen.append(loss)
        if len(seen) == 3:
            raise RuntimeError("user abort")
    with pytest.raises(RuntimeError, match="user abort"):
        _fit([0.2, 0.5], method=method, callback=cb, log=str(path))
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["loss"][...], seen)
        assert f["iterates"].shape == (3, 2)


# ---- 10. regularizers take ints and lists ---------------------------------------------

def test_regularizers_convert_their_input():
    ref_v, ref_g = js.TotalVariation(1.0)(np.array([0.0, 1.0, 3.0]))
    for x in (np.array([0, 1, 3]), [0, 1, 3]):
        v, g = js.TotalVariation(1.0)(x)
        assert v == ref_v and g.dtype == np.float64
        np.testing.assert_array_equal(g, ref_g)
    assert ref_v == pytest.approx(3.0, abs=2e-3)
    v, g = js.Tikhonov(2.0)([1, 2])
    assert v == 5.0
    np.testing.assert_array_equal(g, [2.0, 4.0])


def test_ensemble_rows_beyond_trajectories_are_refused_naming_trajectories():
    """fit(ensemble with 3 ps rows, p0 = ps, trajectories=2) crashed inside scipy
    (IndexError / reshape ValueError): the third row never enters the loss.  Refused
    naming ``trajectories``; the ensemble of the first two rows fits the two rates."""
    def decay(du, u, p, t):
        du[0] = -p[0] * u[0]
    base = js.ODEProblem(decay, np.array([2.0]), (0.0, 3.0), p=np.array([0.7]))
    ens = js.EnsembleProblem(base, ps=np.array([[0.5], [0.7], [0.9]]))
    tt = np.array([0.5, 1.0, 2.0])
    data = 2 * np.exp(-np.array([0.6, 0.8])[:, None] * tt)[..., None]
    for method in ("least_squares", "L-BFGS-B"):
        with pytest.raises(InvalidProblemError, match="trajectories: 2.*3 rows"):
            js.fit(ens, js.Tsit5(), js.L2Loss(tt, data), ens.ps, method=method,
                   trajectories=2, progress=False)
    two = js.remake(ens, ps=ens.ps[:2])
    res = js.fit(two, js.Tsit5(), js.L2Loss(tt, data), two.ps, trajectories=2,
                 progress=False, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.p.ravel(), [0.6, 0.8], rtol=1e-6)
