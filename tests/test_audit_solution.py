"""Audit of the solution objects and their dense output: ``sol(t)`` against a tight
reference solve (SciPy's DOP853 at rtol 1e-13) or the analytic solution, the order of each
method's interpolant, exactness at the saved times, events, shapes, bad input."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import jitsolve as js
from jitsolve.errors import InvalidProblemError
from ode_models import ball, ground


def lv(du, u, p, t):
    du[0] = u[0] - u[0] * u[1]
    du[1] = -u[1] + 0.5 * u[0] * u[1] + 0.1 * np.sin(u[0])


def _lv(t, u):
    return [u[0] - u[0] * u[1], -u[1] + 0.5 * u[0] * u[1] + 0.1 * np.sin(u[0])]


U0 = np.array([1.5, 0.7])
REF = solve_ivp(_lv, (0.0, 2.0), U0, method="DOP853", rtol=1e-13, atol=1e-15,
                dense_output=True).sol


def osc(du, u, p, t):
    du[0] = u[1]
    du[1] = -u[0]


def _osc_exact(t, t0=0.0):
    t = np.asarray(t) - t0
    return np.stack([np.cos(t), -np.sin(t)], axis=-1)


THETA = np.linspace(0.0, 1.0, 41)[1:-1]

# (algorithm, interpolant order documented in its docstring, step sizes)
ORDERS = [
    (js.RK4, 3, (0.2, 0.1, 0.05)),
    (js.Tsit5, 4, (0.2, 0.1, 0.05)),
    (js.DP5, 4, (0.2, 0.1, 0.05)),
    (js.Vern7, 7, (0.8, 0.4, 0.2)),
    (js.Rosenbrock23, 2, (0.2, 0.1, 0.05)),
    (js.Rodas5P, 4, (0.2, 0.1, 0.05)),
    (js.KenCarp4, 3, (0.2, 0.1, 0.05)),
    (js.Kvaerno5, 3, (0.2, 0.1, 0.05)),
]


@pytest.mark.parametrize("cls,q,hs", ORDERS, ids=[c.__name__ for c, _, _ in ORDERS])
def test_interpolant_order_matches_docstring(cls, q, hs):
    # one fixed step of size h from the exact start: the interpolant's error inside the
    # step is O(h^(q+1)) for an interpolant of order q (Hairer-Norsett-Wanner II.6)
    errs = []
    for h in hs:
        sol = js.solve(js.ODEProblem(lv, U0, (0.0, h)), cls(), dt=h, adaptive=False,
                       rtol=1e-12, atol=1e-14)          # tight Newton for the ESDIRKs
        assert sol.dense
        tq = THETA * h
        errs.append(np.abs(sol(tq) - REF(tq).T).max())
    slopes = np.diff(np.log(errs)) / np.diff(np.log(hs))
    # Vern7's pre-asymptotic slopes are 8.3-8.5 (errors 1e-7 to 1e-12); order 6 gives 7
    assert np.all(np.abs(slopes - (q + 1)) < (0.6 if q == 7 else 0.4)), (errs, slopes)


def test_implicit_euler_interpolates_linearly():
    sol = js.solve(js.ODEProblem(lv, U0, (0.0, 1.0)), js.ImplicitEuler(), rtol=1e-4)
    assert sol.dense
    tq = np.linspace(0.0, 1.0, 97)
    lin = np.stack([np.interp(tq, sol.t, sol.u[:, j]) for j in range(2)], axis=-1)
    np.testing.assert_allclose(sol(tq), lin, rtol=0, atol=1e-14)


DENSE = [(js.Tsit5, {}, 1e-6), (js.DP5, {}, 1e-6), (js.Vern7, {}, 1e-7),
         (js.RK4, {"dt": 0.05}, 1e-6), (js.Rosenbrock23, {}, 1e-4),
         (js.Rodas5P, {}, 1e-6), (js.KenCarp4, {}, 1e-5), (js.Kvaerno5, {}, 1e-5),
         (js.ImplicitEuler, {}, 3e-2)]


@pytest.mark.parametrize("cls,kw,tol", DENSE, ids=[c.__name__ for c, _, _ in DENSE])
def test_dense_output_against_reference_and_exact_at_saved_times(cls, kw, tol):
    opts = dict(rtol=1e-7, atol=1e-9, **kw)
    sol = js.solve(js.ODEProblem(lv, U0, (0.0, 2.0)), cls(), **opts)
    assert sol.dense and sol.successful
    tq = np.linspace(0.0, 2.0, 301)
    assert np.abs(sol(tq) - REF(tq).T).max() < tol
    # at the saved times, the saved states bit for bit (the last one included: the
    # interpolant at theta = 1 is off by rounding, 1e-14 for Vern7)
    np.testing.assert_array_equal(sol(sol.t), sol.u)
    np.testing.assert_array_equal(sol(sol.t[-1]), sol.u[-1])
    np.testing.assert_array_equal(sol(2.0), sol.u[-1])
    np.testing.assert_array_equal(sol(0.0), U0)


@pytest.mark.parametrize("cls", [js.Tsit5, js.Vern7, js.Rodas5P, js.KenCarp4])
def test_backward_time_dense_output(cls):
    sol = js.solve(js.ODEProblem(osc, np.array([1.0, 0.0]), (2.0, 0.0)), cls(),
                   rtol=1e-9, atol=1e-11)
    tq = np.linspace(2.0, 0.0, 37)
    assert np.abs(sol(tq) - _osc_exact(tq, 2.0)).max() < 1e-6
    np.testing.assert_array_equal(sol(sol.t), sol.u)
    with pytest.raises(InvalidProblemError, match=r"^t: 2\.5 is outside .*\[0\.0, 2\.0\]"):
        sol(2.5)


def test_bad_times_are_refused_naming_t():
    sol = js.solve(js.ODEProblem(osc, np.array([1.0, 0.0]), (0.0, 2.0)), js.Tsit5())
    for bad, what in [("a", "text"), (1 + 0j, "complex128"), (None, "NoneType"),
                      (True, "bool"), ([0.5, "x"], "text"), ([1.0, None], "list")]:
        with pytest.raises(InvalidProblemError, match=f"^t: expected a real time.*{what}"):
            sol(bad)
    with pytest.raises(InvalidProblemError, match=r"^t: contains NaN or Inf \(nan at flat "
                                                  r"index 1\)"):
        sol([0.5, np.nan])
    with pytest.raises(InvalidProblemError, match=r"^t: contains NaN or Inf \(inf"):
        sol(np.inf)
    with pytest.raises(InvalidProblemError, match=r"^t: 2\.000000000000001 is outside"):
        sol(np.array([1.0, 2.0 + 1e-15]))
    with pytest.raises(InvalidProblemError, match=r"^t: -1e-300 is outside"):
        sol(-1e-300)
    with pytest.raises(InvalidProblemError, match="^continuity: expected 'left' or 'right'"):
        sol(1.0, continuity="middle")


def test_solve_that_ended_early_refuses_times_after_its_end():
    sol = js.solve(js.ODEProblem(osc, np.array([1.0, 0.0]), (0.0, 2.0)), js.Tsit5(),
                   maxiters=3)
    assert sol.retcode is js.ReturnCode.MaxIters and sol.dense
    end = sol.t[-1]
    assert 0.0 < end < 2.0
    np.testing.assert_array_equal(sol(end), sol.u[-1])
    assert np.abs(sol(end / 2) - _osc_exact(end / 2)).max() < 1e-6
    with pytest.raises(InvalidProblemError, match=r"^t: 1\.9 is outside .* ended with "
                                                  r"MaxIters at t = "):
        sol(1.9)


def decay_grid(du, u, p, t):
    for i in range(du.size):
        du[i] = -(i + 1) * u[i]


@pytest.mark.parametrize("cls", [js.Tsit5, js.Rodas5P])
def test_shapes_follow_t_and_u0(cls):
    u0 = np.arange(1.0, 7.0).reshape(2, 3)
    rates = np.arange(1.0, 7.0).reshape(2, 3)
    sol = js.solve(js.ODEProblem(decay_grid, u0, (0.0, 1.0)), cls(), rtol=1e-9, atol=1e-12)

    def exact(t):
        return u0 * np.exp(-rates * np.asarray(t)[..., None, None])

    assert sol(0.3).shape == (2, 3)
    assert sol(np.array(0.3)).shape == (2, 3)
    assert sol([0.3, 0.7]).shape == (2, 2, 3)
    tq = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.9]])
    assert sol(tq).shape == (2, 3, 2, 3)
    assert np.abs(sol(tq) - exact(tq)).max() < 1e-8
    assert sol(np.array([])).shape == (0, 2, 3)
    assert sol(1).shape == (2, 3)                        # an int time is a time


def bounce(u, t, p):
    u[1] = -0.8 * u[1]


TE = np.sqrt(2 / 9.81)


def _ball_exact(t):
    t = np.asarray(t)
    ve = 9.81 * TE
    x = np.where(t < TE, 1 - 0.5 * 9.81 * t ** 2, 0.8 * ve * (t - TE) - 0.5 * 9.81 * (t - TE) ** 2)
    v = np.where(t < TE, -9.81 * t, 0.8 * ve - 9.81 * (t - TE))
    return np.stack([x, v], axis=-1)


@pytest.mark.parametrize("cls", [js.Tsit5, js.Vern7, js.Rodas5P, js.KenCarp4])
def test_event_is_a_jump_of_the_interpolant(cls, tmp_path):
    cb = js.ContinuousCallback(ground, bounce, direction=-1)
    sol = js.solve(js.ODEProblem(ball, np.array([1.0, 0.0]), (0.0, 1.0)), cls(), callback=cb,
                   rtol=1e-10, atol=1e-12)
    (te, ue), = sol.events
    assert abs(te - TE) < 1e-12
    i = int(np.flatnonzero(sol.t == te)[0])
    assert sol.t[i + 1] == te                            # saved twice: before, after
    np.testing.assert_array_equal(sol(te), sol.u[i])     # "left" (SciML's default)
    np.testing.assert_array_equal(sol(te, continuity="left"), ue)
    np.testing.assert_array_equal(sol(te, continuity="right"), sol.u[i + 1])
    assert sol(te)[1] == pytest.approx(-9.81 * TE, rel=1e-10)
    assert sol(te, continuity="right")[1] == pytest.approx(0.8 * 9.81 * TE, rel=1e-10)
    tq = np.concatenate([np.linspace(0, 1, 201), [te - 1e-9, te + 1e-9]])
    assert np.abs(sol(tq) - _ball_exact(tq)).max() < 1e-8
    sol.to_hdf5(tmp_path / "ball.h5")
    back = js.load(tmp_path / "ball.h5")
    assert back.dense
    np.testing.assert_array_equal(back(tq), sol(tq))
    for c in ("left", "right"):
        np.testing.assert_array_equal(back(te, continuity=c), sol(te, continuity=c))
        np.testing.assert_array_equal(back(back.t, continuity=c), sol(sol.t, continuity=c))


def test_terminated_solution_ends_at_the_event():
    cb = js.ContinuousCallback(ground, terminate=True)
    sol = js.solve(js.ODEProblem(ball, np.array([1.0, 0.0]), (0.0, 1.0)), js.Tsit5(),
                   callback=cb, rtol=1e-10, atol=1e-12)
    assert sol.retcode is js.ReturnCode.Terminated
    assert sol.t[-1] == pytest.approx(TE, abs=1e-12)
    np.testing.assert_array_equal(sol(sol.t[-1]), sol.u[-1])
    with pytest.raises(InvalidProblemError, match="ended with Terminated"):
        sol(0.9)


def test_changing_saved_states_leaves_the_dense_output_alone():
    sol = js.solve(js.ODEProblem(osc, np.array([1.0, 0.0]), (0.0, 2.0)), js.Tsit5(),
                   rtol=1e-8, atol=1e-10)
    tq = np.concatenate([sol.t, np.linspace(0, 2, 17)])
    before = sol(tq).copy()
    at_half = sol(0.5).copy()
    sol.u[0][:] = 0.0
    sol.u[-1][:] = 0.0
    sol.u[3][:] = 0.0
    np.testing.assert_array_equal(sol(tq), before)
    out = sol(0.5)
    out[:] = 7.0                                         # a fresh array each call
    np.testing.assert_array_equal(sol(0.5), at_half)
    np.testing.assert_array_equal(at_half, before[len(sol) + 4])   # 0.5 among 17 times
    for k, tk in enumerate(tq):                   # one at a time = all at once, bit for bit
        np.testing.assert_array_equal(sol(tk), before[k])
    assert np.abs(at_half - _osc_exact(0.5)).max() < 1e-8


def test_saveat_interpolates_linearly_between_saved_states():
    prob = js.ODEProblem(osc, np.array([1.0, 0.0]), (0.0, 2.0))
    sol = js.solve(prob, js.Tsit5(), saveat=0.5, rtol=1e-10, atol=1e-12)
    assert not sol.dense
    np.testing.assert_allclose(sol.t, [0.0, 0.5, 1.0, 1.5, 2.0])
    assert np.abs(sol.u - _osc_exact(sol.t)).max() < 1e-9
    tq = np.linspace(0.0, 2.0, 33)
    lin = np.stack([np.interp(tq, sol.t, sol.u[:, j]) for j in range(2)], axis=-1)
    np.testing.assert_allclose(sol(tq), lin, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(sol(sol.t), sol.u)
    # interior saved times only: the span is theirs
    sol = js.solve(prob, js.Rodas5P(), saveat=[0.5, 1.0])
    with pytest.raises(InvalidProblemError, match=r"^t: 0\.2 is outside .*\[0\.5, 1\.0\]"):
        sol(0.2)


def test_hand_built_solutions():
    t = np.array([0.0, 1.0, 1.0, 2.0])
    u = np.array([[0.0], [1.0], [5.0], [7.0]])
    sol = js.ODESolution(t, u)
    assert not sol.dense and len(sol) == 4
    assert sol(1.0)[0] == 1.0 and sol(1.0, continuity="right")[0] == 5.0
    assert sol(0.5)[0] == 0.5 and sol(1.5)[0] == 6.0
    rev = js.ODESolution(t[::-1], u[::-1])                 # backward in time
    assert rev(1.0)[0] == 5.0 and rev(1.0, continuity="right")[0] == 1.0
    assert rev(1.5)[0] == 6.0 and rev(0.25)[0] == 0.25
    one = js.ODESolution([3.0], [[4.0, 5.0]])
    np.testing.assert_array_equal(one([3.0, 3.0]), [[4.0, 5.0], [4.0, 5.0]])
    with pytest.raises(InvalidProblemError, match=r"^u: expected shape \(3, \*state shape\)"):
        js.ODESolution([0.0, 1.0, 2.0], np.zeros((2, 1)))
    with pytest.raises(InvalidProblemError, match=r"^u: expected shape \(2, "):
        js.ODESolution([0.0, 1.0], 0.0)
    with pytest.raises(InvalidProblemError, match=r"^t: expected a 1-D array"):
        js.ODESolution(np.zeros((2, 2)), np.zeros((2, 1)))
    with pytest.raises(InvalidProblemError, match="^retcodes: one retcode per trajectory"):
        js.EnsembleSolution([0.0], np.zeros(3), ["Success"] * 3)


def decay(du, u, p, t):
    du[0] = -p[0] * u[0]


def test_ensemble_trajectories_interpolate_their_saved_times():
    prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([1.0]))
    eprob = js.EnsembleProblem(prob, ps=np.array([[1.0], [2.0], [3.0]]))
    es = js.solve(eprob, js.Tsit5(), trajectories=3, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(es.t, [0.0, 1.0])      # no saveat: tspan's ends only
    es = js.solve(eprob, js.Tsit5(), trajectories=3, saveat=np.linspace(0, 1, 11),
                  rtol=1e-10, atol=1e-12)
    for i, k in enumerate((1.0, 2.0, 3.0)):
        s = es[i]
        assert not s.dense
        np.testing.assert_allclose(s.u[:, 0], np.exp(-k * es.t), rtol=1e-8)
        tq = np.array([0.0, 0.37, 0.5, 1.0])
        lin = np.interp(tq, es.t, es.u[i, :, 0])
        np.testing.assert_allclose(s(tq)[:, 0], lin, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(s(es.t), es.u[i])
    summ = es.summary(quantiles=(0.0, 1.0))
    ex = np.exp(-np.outer([1.0, 2.0, 3.0], es.t))
    np.testing.assert_allclose(summ.mean[:, 0], ex.mean(axis=0), rtol=1e-8)
    np.testing.assert_allclose(summ.var[:, 0], ex.var(axis=0, ddof=1), rtol=1e-7, atol=1e-16)
    np.testing.assert_allclose(summ.qhigh[:, 0], ex.max(axis=0), rtol=1e-8)
    for q in ("ab", (0.1 + 1j, 0.9), None):
        with pytest.raises(InvalidProblemError, match="^quantiles: expected"):
            es.summary(quantiles=q)
