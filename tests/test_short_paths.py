"""The short fast paths of the per-solve Python checks give what the general paths give.

``solve`` checks ``saveat``/``tstops`` and builds the loops' stop times on every call; for
short lists these run on Python floats (a few us instead of ~20 us of NumPy calls, which
are a third of a small stiff solve's fixed cost).  Property tests: the short path returns
the same array, or raises the same error, as the general NumPy path.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitsolve as js
from jitsolve.errors import InvalidProblemError
from jitsolve.solve import _check_times, _check_times_array, _check_times_short
from jitsolve.solvers.ode.explicit import _stops_sorted, _stops_short, make_stops

finite = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)


def _outcome(fn, *a):
    try:
        return ("ok", fn(*a))
    except InvalidProblemError as e:
        return ("err", str(e))


@settings(max_examples=300, deadline=None)
@given(st.lists(finite, min_size=0, max_size=20), finite, finite, st.sampled_from(["list", "array"]),
       st.booleans())
def test_check_times_short_matches_general(v, a, b, form, sort):
    if a == b:
        b = a + 1.0
    if sort:
        v = sorted(v, reverse=b < a)
    x = v if form == "list" else np.array(v, dtype=np.float64)
    ref = _outcome(_check_times_array, x, "saveat", (a, b))
    got = _outcome(_check_times, x, "saveat", (a, b))
    assert got[0] == ref[0]
    if ref[0] == "ok":
        assert got[1].dtype == np.float64 and np.array_equal(got[1], ref[1])
    else:
        assert got[1] == ref[1]
    if len(v) > 16 or not v:
        assert _check_times_short(x, "saveat", (a, b)) is None   # the general path decides


@pytest.mark.parametrize("x", [[0.5, np.nan], [np.inf], [1, 2], [[0.1, 0.2]], np.array([0.1, 0.2], np.float32)])
def test_check_times_short_leaves_other_forms_to_numpy(x):
    assert _check_times_short(x, "saveat", (0.0, 3.0)) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(finite, min_size=1, max_size=20, unique=True), finite, finite)
def test_make_stops_short_matches_sorted(v, t0, t1):
    tdir = 1.0 if t1 >= t0 else -1.0
    # the grid of save times, with t0 and t1 themselves among them sometimes
    v = sorted(v + [t1] * (len(v) % 2) + [t0] * (len(v) % 3 == 0), reverse=tdir < 0)
    v = list(dict.fromkeys(v))
    savet = np.array(v, dtype=np.float64)
    ref = _stops_sorted(t0, t1, tdir, None, savet)
    got = make_stops(t0, t1, None, savet)
    short = _stops_short(t0, t1, tdir, savet)
    assert got.dtype == np.float64 and np.array_equal(got, ref)
    if len(v) <= 16:
        assert short is not None and np.array_equal(short, ref)


def test_make_stops_short_refuses_unsorted():
    assert _stops_short(0.0, 1.0, 1.0, np.array([0.5, 0.2])) is None
    np.testing.assert_array_equal(make_stops(0.0, 1.0, None, np.array([0.5, 0.2])), [0.2, 0.5, 1.0])


@pytest.mark.parametrize("alg", [js.Rodas5P(), js.Tsit5()])
def test_solve_saveat_short_paths_bit_for_bit(alg, monkeypatch):
    import jitsolve.solvers.ode.explicit as E
    solve_mod = __import__("sys").modules["jitsolve.solve"]

    def decay(du, u, p, t):
        du[0] = -u[0]
    prob = js.ODEProblem(decay, np.array([1.0]), (1.0, 0.0))
    ts = [0.9, 0.75, 0.5, 0.0]
    a = js.solve(prob, alg, saveat=ts)
    monkeypatch.setattr(solve_mod, "_check_times_short", lambda *a: None)
    monkeypatch.setattr(E, "_stops_short", lambda *a: None)
    b = js.solve(prob, alg, saveat=ts)
    assert np.array_equal(a.t, ts) and np.array_equal(a.t, b.t) and np.array_equal(a.u, b.u)
