"""Audit of ``js.fit(method="L-BFGS-B")`` going on from failed trial points (it used to
stop at the first one).  A failed trial point is reported to scipy's line search as a
finite value above the search's start, so that it backtracks and L-BFGS-B goes on with
its memory; a search that gives up is followed by halving the step from the best iterate
and restarting L-BFGS-B there (the budget shared, at most 20 restarts, a stop when a
restart gets no lower or the failed points close in on the best one).

The problem is that of ``test_audit_fit.py``: ``u' = p0 u^2 - p1 u``, ``u(0) = 1`` on
``[0, 1]``, data from ``p = (0.5, 0.2)``; the solve fails (``DtLessThanMin``) where ``p0``
is large enough for a blow-up before ``t = 1``.  Every solve is counted by wrapping
``jitsolve.gradient.gradient`` (``fit`` calls it once per evaluation)."""
import re
import sys

import h5py
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import SolveFailedError


from test_audit_fit import KW, LOSS, P, PROB   # tests/, the same problem
TIGHT = {"ftol": 1e-15, "gtol": 1e-12}
# starts from which L-BFGS-B used to stop (success=False) at its first or second iterate:
# the first line searches step into a blow-up (the unit steepest-descent step from
# (0.1, 0.1) is p = (0.807, -0.607))
STARTS_THAT_FAILED = [[0.1, 0.1], [0.0, 2.0], [1.0, 1.0], [0.3, 1.5], [1.0, 2.0],
                      [0.0, 0.0]]


def _fit(p0, **kw):
    return js.fit(PROB, js.Tsit5(), LOSS, np.array(p0, dtype=float), progress=False,
                  **{**KW, **kw})


def _nfailed(message):
    m = re.search(r"(\d+) trial point\(s\) failed", message)
    return int(m.group(1)) if m else 0


def _restarts(message):
    m = re.search(r"restarting (\d+) time\(s\)", message)
    return int(m.group(1)) if m else 0


def _wall(x):
    """An objective falling towards p0 = 0.3 (-10 p0) and NaN beyond it."""
    return (np.nan if x[0] > 0.3 else -10.0 * x[0]), np.array([-10.0, 0.0])


@pytest.fixture
def solves(monkeypatch):
    """Every p fit solves at, and whether that solve failed: ``[(p, failed), ...]``."""
    mod = sys.modules["jitsolve.gradient"]
    orig = mod.gradient
    seen = []

    def counting(prob, *args, **kw):
        try:
            out = orig(prob, *args, **kw)
        except SolveFailedError:
            seen.append((np.array(prob.p), True))
            raise
        seen.append((np.array(prob.p), False))
        return out
    monkeypatch.setattr(mod, "gradient", counting)
    return seen


def _check_books(res, solves):
    """nfev + 1 solves (the start is solved once more for the history), one history
    entry per iteration and the start, every entry finite, p the best of them."""
    assert len(solves) == res.nfev + 1
    assert len(res.history) == len(res.grad_norm) == len(res.times) == res.nit + 1
    assert np.all(np.isfinite(res.history)) and np.all(np.diff(res.times) >= 0)
    assert res.loss == min(res.history)


# ---- from starts where the first line searches step into a blow-up -------------------

@pytest.mark.parametrize("p0", STARTS_THAT_FAILED)
def test_lbfgsb_backs_off_from_blow_ups_and_reaches_the_true_parameters(p0, solves):
    res = _fit(p0, options=TIGHT, maxiter=300)
    assert res.success, res.message
    assert np.abs(res.p - P).max() < 1e-6                 # measured: about 2e-8
    assert res.loss < 1e-16 and res.loss == res.history[-1]
    failed = sum(f for _, f in solves)
    assert 1 <= failed <= 2 and _nfailed(res.message) == failed   # measured: 1 or 2
    assert "DtLessThanMin" in res.message and "trial point p = [" in res.message
    assert _restarts(res.message) == 0                     # the line search backs off
    _check_books(res, solves)


def test_lbfgsb_from_p_fails_with_default_tolerances(solves):
    res = _fit([0.1, 0.1])
    assert res.success and res.nit == 16 and res.nfev == 19, res
    assert np.abs(res.p - P).max() < 1e-5                 # measured: 2.7e-6
    assert _nfailed(res.message) == 1 and _restarts(res.message) == 0
    assert [f for _, f in solves[:4]] == [False, False, True, False]
    # the failed point is the unit steepest-descent step; the next trial is back on the
    # same segment, shorter (the line search interpolated: 0.14 of the step)
    x0, bad, nxt = np.array([0.1, 0.1]), solves[2][0], solves[3][0]
    np.testing.assert_allclose(bad, [0.807107, -0.607107], atol=1e-6)
    alpha = (nxt - x0) / (bad - x0)
    assert alpha[0] == pytest.approx(alpha[1], rel=1e-9) and 0.1 < alpha[0] < 0.5
    _check_books(res, solves)


# ---- every trial point fails: the best point, a bounded number of tries ------------------

def test_lbfgsb_every_trial_failing_ends_at_the_start(solves, tmp_path):
    x0 = np.array([0.2, 0.5])

    def only_x0(x):
        return (0.0 if np.array_equal(x, x0) else np.nan), np.zeros_like(x)
    path = tmp_path / "fit.h5"
    res = _fit(x0, regularizer=only_x0, log=str(path))
    assert not res.success
    np.testing.assert_array_equal(res.p, x0)
    assert res.nit == 0 and len(res.history) == 1 and res.loss == res.history[0]
    # scipy's line search tries 20 times (maxls), closing in on x0; then fit stops
    assert _nfailed(res.message) == 20 and res.nfev == 21 and len(solves) == 22
    assert "regularizer gives a value that is not finite (nan)" in res.message
    assert "close in on the best point" in res.message
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["iterates"][...], [x0])


def test_lbfgsb_at_a_wall_it_cannot_pass_stops_next_to_it(solves):
    # maxls=1: every failed trial point ends scipy's run, fit halves and restarts; each
    # restart gets a little closer to the wall at p0 = 0.3, until one gets no lower
    res = _fit([0.1, 0.2], regularizer=_wall, options={"maxls": 1}, maxiter=500)
    assert not res.success and "the last restart got no lower" in res.message
    assert _restarts(res.message) == 14 and _nfailed(res.message) == 26   # measured
    assert 0.2999 < res.p[0] <= 0.3
    _check_books(res, solves)


def test_lbfgsb_restarts_are_capped(monkeypatch, solves):
    monkeypatch.setattr(sys.modules["jitsolve.fit"], "_MAX_RESTARTS", 3)
    res = _fit([0.1, 0.2], regularizer=_wall, options={"maxls": 1}, maxiter=500)
    assert not res.success
    assert _restarts(res.message) == 3
    assert "the most fit makes, and failed again" in res.message
    assert res.p[0] <= 0.3
    _check_books(res, solves)


# ---- bounds and fixed entries hold while backing off ------------------------------------

@pytest.mark.parametrize("p0, lo, hi, options", [
    ([0.1, 0.2], [0.0, 0.2], [3.0, 0.2], TIGHT),                 # p1 held (lo == hi)
    ([1.0, 2.0], [0.0, 0.0], [3.0, 3.0], TIGHT),                 # every entry boxed
    ([1.0, 2.0], [0.0, -np.inf], [np.inf, np.inf], TIGHT),       # p0 >= 0 only
    ([0.1, 0.2], [0.0, 0.2], [3.0, 0.2], {**TIGHT, "maxls": 1}),  # with restarts
    ([1.0, 2.0], [0.0, 0.0], [3.0, 3.0], {**TIGHT, "maxls": 1}),
])
def test_lbfgsb_backing_off_respects_the_bounds(p0, lo, hi, options, solves):
    lo, hi = np.array(lo), np.array(hi)
    res = _fit(p0, bounds=(lo, hi), options=options, maxiter=300)
    assert _nfailed(res.message) >= 1
    ps = np.array([p for p, _ in solves])
    assert np.all(ps >= lo) and np.all(ps <= hi)
    fixed = lo == hi
    assert np.all(ps[:, fixed] == lo[fixed])              # exactly, in every solve
    assert np.all(res.p >= lo) and np.all(res.p <= hi) and np.all(res.p[fixed] == lo[fixed])
    if "maxls" not in options:
        assert res.success, res.message
        assert np.abs(res.p - P).max() < 1e-6
    else:
        assert _restarts(res.message) >= 1
    _check_books(res, solves)


# ---- the books: nfev, nit, history, the log, the budget, the callback -------------------

def test_lbfgsb_nfev_and_history_without_failures_are_scipys(solves):
    res = _fit([0.8, 0.3])                                  # no trial point fails
    assert res.success and "failed" not in res.message
    assert res.nit == 20 and res.nfev == 23                 # as before the back-off
    _check_books(res, solves)


def test_lbfgsb_log_and_history_cover_the_back_off(solves, tmp_path):
    path = tmp_path / "fit.h5"
    res = _fit([0.1, 0.2], regularizer=_wall, options={"maxls": 1}, maxiter=500,
               log=str(path))
    assert _nfailed(res.message) == 26 and _restarts(res.message) == 14
    _check_books(res, solves)
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["loss"][...], res.history)
        np.testing.assert_array_equal(f["grad_norm"][...], res.grad_norm)
        assert f["iterates"].shape == (res.nit + 1, 2)
        its = f["iterates"][...]
    # every recorded iterate was solved at, none of them at a failed point
    good = {p.tobytes() for p, failed in solves if not failed}
    assert all(np.ascontiguousarray(x).tobytes() in good for x in its)
    np.testing.assert_array_equal(its[int(np.argmin(res.history))], res.p)


@pytest.mark.parametrize("maxiter, options, nit, nfev", [
    (5, {"maxls": 1}, 5, None),                       # the iterations of all runs
    (500, {"maxls": 1, "maxfun": 20}, None, 20),       # the evaluations of all runs
])
def test_lbfgsb_budget_is_shared_by_the_restarts(maxiter, options, nit, nfev, solves):
    res = _fit([0.1, 0.2], regularizer=_wall, options=options, maxiter=maxiter)
    assert not res.success and _restarts(res.message) >= 1
    if nit is not None:
        assert res.nit == nit and "ITERATIONS REACHED LIMIT" in res.message
    if nfev is not None:
        assert res.nfev == nfev and "EVALUATIONS EXCEEDS LIMIT" in res.message
    _check_books(res, solves)


@pytest.mark.parametrize("how", ["StopIteration", "True"])
def test_callback_stops_lbfgsb_after_backing_off(how, solves):
    seen = []

    def cb(x, loss):
        seen.append((np.array(x), loss))
        if len(seen) == 4:                 # the failed point came before the 2nd
            if how == "True":
                return True
            raise StopIteration
        return False
    res = _fit([0.1, 0.1], callback=cb)
    assert not res.success and "stopped by the callback" in res.message
    assert len(res.history) == 4 and res.nit == 3
    np.testing.assert_array_equal(res.history, [s[1] for s in seen])
    i = int(np.argmin(res.history))
    np.testing.assert_array_equal(res.p, seen[i][0])
    assert sum(f for _, f in solves) == 1
    assert len(solves) == res.nfev + 1


# ---- a +inf region between the start and the minimum ---------------------------------

def _hole(centre, radius):
    def reg(x):
        return (np.inf if np.linalg.norm(x - centre) < radius else 0.0), np.zeros_like(x)
    return reg


def test_lbfgsb_goes_around_an_inf_region_on_its_path(solves):
    start = np.array([0.8, 0.3])
    path = []
    free = _fit(start, options=TIGHT, callback=lambda x, loss: path.append(x.copy()))
    assert free.success and "failed" not in free.message
    centre, radius = 0.5 * (start + P), 0.1                # the midpoint of start and P
    dist = np.linalg.norm(np.array(path) - centre, axis=1)
    assert dist.min() < radius                             # the free path crosses it
    solves.clear()
    res = _fit(start, options=TIGHT, regularizer=_hole(centre, radius))
    assert res.success, res.message
    assert np.abs(res.p - P).max() < 1e-6
    assert _nfailed(res.message) == 4 and _restarts(res.message) == 0   # measured
    assert "regularizer gives a value that is not finite (inf)" in res.message
    ps = np.array([p for p, _ in solves])
    inside = np.linalg.norm(ps - centre, axis=1) < radius
    assert int(inside.sum()) == _nfailed(res.message)
    _check_books(res, solves)


def test_lbfgsb_stops_at_an_inf_region_across_the_descent(solves):
    # the steepest descent meets this disc head on: the failed points close in on the
    # best point at its rim, and fit stops there (BFGS happens to pass it)
    start = np.array([0.3, 0.9])
    centre, radius = start + 0.33 * (P - start), 0.15
    res = _fit(start, options=TIGHT, regularizer=_hole(centre, radius))
    assert not res.success and "close in on the best point" in res.message
    assert np.isfinite(res.loss) and res.loss < res.history[0]
    assert np.linalg.norm(res.p - centre) == pytest.approx(radius, abs=1e-6)
    assert _nfailed(res.message) >= 20
    _check_books(res, solves)
