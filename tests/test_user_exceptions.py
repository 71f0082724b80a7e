"""A user function that raises inside a compiled loop is reported, never silent
(python/user_exceptions.py), and floating-point failures follow NumPy's rule."""
import sys
import types

import numba
import numpy as np
import pytest

import jitsolve as js
from jitsolve import user_exceptions as UE
from jitsolve.errors import JitsolveError, UserFunctionError


def raising(du, u, p, t):
    if u[0].real > 0.5:          # .real: the complex-step twin compiles too
        raise ValueError("boom")
    du[0] = -u[0] + 1.0


def pole(du, u, p, t):              # du/dt = 1 / (1 - u): u reaches 1 at t = 1/2
    du[0] = 1.0 / (1.0 - u[0])


def ou_raising_g(gu, u, p, t):
    if u[0] > 1e300:
        raise ValueError("never")
    gu[0] = 0.5


@pytest.fixture
def quiet_numba_reports(monkeypatch):
    """Record unraisable reports that reach the previous hook (none should, inside solve)."""
    seen = []
    # restore the chain afterwards too: solve re-installs its hook on top of this one
    monkeypatch.setitem(UE._state, "previous", UE._state["previous"])
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u))
    return seen


def test_raising_rhs_raises_once_after_solve(quiet_numba_reports):
    prob = js.ODEProblem(raising, np.array([0.0]), (0.0, 2.0))
    with pytest.raises(UserFunctionError) as info:
        js.solve(prob, js.Tsit5())
    assert isinstance(info.value, JitsolveError)
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value.__cause__) == "boom"
    msg = str(info.value)
    assert msg.startswith("solve: a user function raised ValueError(boom)")
    assert " times)" in msg
    assert quiet_numba_reports == []        # counted, not printed one by one
    # the next solve of a healthy problem is not affected by the earlier count
    ok = js.solve(js.ODEProblem(pole, np.array([0.0]), (0.0, 0.25)), js.Tsit5())
    assert ok.retcode == js.ReturnCode.Success


@pytest.mark.parametrize("N", [8, 96], ids=["per-lane", "lockstep"])
def test_raising_rhs_in_an_ensemble(quiet_numba_reports, N):
    prob = js.ODEProblem(raising, np.array([0.0]), (0.0, 2.0))
    with pytest.raises(UserFunctionError, match=r"ValueError\(boom\)"):
        js.solve(js.EnsembleProblem(prob, u0s=np.zeros((N, 1))), js.Tsit5())
    assert quiet_numba_reports == []


def test_raising_rhs_in_a_gradient(quiet_numba_reports):
    prob = js.ODEProblem(raising, np.array([0.0]), (0.0, 2.0))
    loss = js.L2Loss(np.array([1.0, 2.0]), np.zeros((2, 1)))
    with pytest.raises(UserFunctionError, match=r"^gradient: a user function raised ValueError"):
        js.gradient(prob, js.Tsit5(), loss, wrt="u0")


def test_division_by_zero_is_a_retcode_not_an_exception(quiet_numba_reports):
    # NumPy's rule inside jitsolve's compilations: 1/0 = inf, which the integrator turns
    # into a failed solve with what was computed so far (before 2026-12-02: the cfunc's
    # ZeroDivisionError was printed and the solve came back Success with du unset)
    at_pole = js.solve(js.ODEProblem(pole, np.array([1.0]), (0.0, 1.0)), js.Tsit5())
    assert at_pole.retcode == js.ReturnCode.InitialFailure
    assert at_pole.t[-1] == 0.0 and at_pole.u[-1][0] == 1.0
    u0s = np.zeros((96, 1))
    u0s[::2] = 1.0                      # every other trajectory starts on the pole
    ens = js.solve(js.EnsembleProblem(js.ODEProblem(pole, np.array([0.0]), (0.0, 0.25)),
                                      u0s=u0s), js.Tsit5())
    assert [r.value for r in ens.retcodes] == ["InitialFailure", "Success"] * 48
    assert quiet_numba_reports == []


def test_user_njit_function_follows_numpy_rule_on_every_path():
    # a dispatcher the user compiled with Python's rule: its cfunc and batch forms follow
    # NumPy's rule (inf, then a failed retcode), the same outcome on every path
    jpole = numba.njit(pole)
    single = js.solve(js.ODEProblem(jpole, np.array([1.0]), (0.0, 1.0)), js.Tsit5())
    assert single.retcode == js.ReturnCode.InitialFailure
    ens = js.solve(js.EnsembleProblem(js.ODEProblem(jpole, np.array([1.0]), (0.0, 1.0)),
                                      u0s=np.ones((96, 1))), js.Tsit5())
    assert all(r == js.ReturnCode.InitialFailure for r in ens.retcodes)


def test_sde_diffusion_that_never_raises_is_unaffected():
    def drift(du, u, p, t):
        du[0] = -u[0]
    prob = js.SDEProblem(drift, ou_raising_g, np.array([1.0]), (0.0, 1.0))
    sol = js.solve(prob, js.EM(), dt=2.0 ** -6, seed=1)
    assert sol.retcode == js.ReturnCode.Success


def test_reports_outside_a_call_go_to_the_previous_hook(monkeypatch):
    seen = []
    UE._install()
    monkeypatch.setitem(UE._state, "previous", lambda u: seen.append(u))
    report = types.SimpleNamespace(object="<numba.core.cpu.CPUContext>", exc_type=ValueError,
                                   exc_value=ValueError("outside"), exc_traceback=None,
                                   err_msg=None)
    UE._hook(report)                         # no solve running: passed on
    assert seen == [report]
    with pytest.raises(UserFunctionError, match=r"raised ValueError\(inside\) inside the "
                                                r"compiled loop \(1 time\)"):
        with UE.WatchUserExceptions("solve"):
            UE._hook(types.SimpleNamespace(object="<numba.core.cpu.CPUContext>",
                                           exc_type=ValueError, exc_value=ValueError("inside"),
                                           exc_traceback=None, err_msg=None))
    other = types.SimpleNamespace(object=object(), exc_type=KeyError, exc_value=KeyError("x"),
                                  exc_traceback=None, err_msg=None)
    with UE.WatchUserExceptions("solve"):
        UE._hook(other)                      # not from compiled code: passed on, no error
    assert seen == [report, other]
    assert UE._state["depth"] == 0 and UE._state["count"] == 0


def test_an_exception_of_the_call_itself_wins():
    with pytest.raises(KeyError):
        with UE.WatchUserExceptions("solve"):
            UE._hook(types.SimpleNamespace(object="<numba.core.cpu.CPUContext>",
                                           exc_type=ValueError, exc_value=ValueError("x"),
                                           exc_traceback=None, err_msg=None))
            raise KeyError("own")
    assert UE._state["count"] == 0
