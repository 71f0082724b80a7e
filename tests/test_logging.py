"""Logging (issue 7): messages go through ``logging.getLogger("jitsolve")``; the library
prints only the progress lines a caller asked for."""
import ast
import logging
import pathlib

import numpy as np
import pytest

import jitsolve as js

PKG = pathlib.Path(js.__file__).parent

# (module, enclosing function) pairs allowed to print: the CLI, and progress/report lines
# printed only when the caller asks (fit progress=True, check_gradient verbose=True, the
# demos' progress flag, solve's progress=True lines for ODE/SDE solves)
ALLOWED_PRINTS = {("cli.py", "*"), ("fit.py", "record"), ("sensitivity.py", "check_gradient"),
                  ("demos.py", "cb"), ("solve.py", "_progress_start"),
                  ("solve.py", "_progress_end")}


def _print_sites():
    sites = set()
    for path in sorted(PKG.glob("*.py")):
        tree = ast.parse(path.read_text())
        stack = []

        class V(ast.NodeVisitor):
            def visit_FunctionDef(self, node):
                stack.append(node.name)
                self.generic_visit(node)
                stack.pop()

            visit_AsyncFunctionDef = visit_FunctionDef

            def visit_Call(self, node):
                if isinstance(node.func, ast.Name) and node.func.id == "print":
                    sites.add((path.name, stack[-1] if stack else "<module>"))
                self.generic_visit(node)

        V().visit(tree)
    return sites


def test_library_prints_only_where_asked():
    sites = _print_sites()
    stray = {s for s in sites if s not in ALLOWED_PRINTS and (s[0], "*") not in ALLOWED_PRINTS}
    assert not stray, f"print() outside the CLI/progress paths: {sorted(stray)} (use jitsolve.log)"
    assert ("fit.py", "record") in sites       # the scan itself sees the known progress print


def test_logger_has_null_handler_and_children():
    root = logging.getLogger("jitsolve")
    assert any(isinstance(h, logging.NullHandler) for h in root.handlers)
    from jitsolve.log import get_logger
    assert get_logger("solve").parent is root


def _blowup(du, u, p, t):
    du[0] = u[0] * u[0]


def _decay(du, u, p, t):
    du[0] = -p[0] * u[0]


def test_failed_solve_warns_with_retcode_and_time(caplog):
    prob = js.ODEProblem(_blowup, np.array([1.0]), (0.0, 2.0))
    with caplog.at_level(logging.WARNING, logger="jitsolve"):
        sol = js.solve(prob, js.Tsit5())
    assert not sol.successful
    recs = [r for r in caplog.records if r.name == "jitsolve.solve" and r.levelno == logging.WARNING]
    assert len(recs) == 1
    msg = recs[0].getMessage()
    assert str(sol.retcode) in msg and "ODEProblem/Tsit5" in msg
    assert f"t = {sol.t[-1]:.6g}" in msg                 # where it stopped (blow-up at t=1)
    assert 0.99 < sol.t[-1] <= 1.0


def test_successful_solve_is_silent_and_debug_reports_dispatch(caplog, capsys):
    prob = js.ODEProblem(_decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    with caplog.at_level(logging.DEBUG, logger="jitsolve"):
        sol = js.solve(prob, js.Tsit5(), rtol=1e-8, atol=1e-10)
        js.gradient(prob, js.Tsit5(), js.L2Loss([1.0], np.zeros((1, 1))), wrt="p",
                    rtol=1e-8, atol=1e-10)
    assert sol.successful and abs(sol.u[-1][0] - np.exp(-2.0)) < 1e-7
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    names = {r.name for r in caplog.records}
    assert {"jitsolve.solve", "jitsolve.gradient"} <= names
    assert any("solve ODEProblem/Tsit5" in r.getMessage() for r in caplog.records)
    assert capsys.readouterr().out == ""                 # nothing printed


def test_ensemble_failure_counts_trajectories(caplog):
    prob = js.ODEProblem(_blowup, np.array([1.0]), (0.0, 2.0))
    ep = js.EnsembleProblem(prob, u0s=np.array([[1.0], [-1.0], [0.1]]))
    with caplog.at_level(logging.WARNING, logger="jitsolve"):
        sol = js.solve(ep, js.Tsit5(), saveat=[0.0, 2.0])
    bad = sum(not r.successful for r in sol.retcodes)
    assert bad == 1                          # u0 = 1 blows up at t = 1; -1 and 0.1 do not
    msg = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING][0]
    assert f"{bad} of 3 trajectories unsuccessful" in msg


def test_fit_logs_iterations_and_prints_only_with_progress(caplog, capsys, tmp_path):
    t = np.linspace(0.2, 1.0, 5)
    truth = np.array([1.5])
    prob = js.ODEProblem(_decay, np.array([1.0]), (0.0, 1.0), p=truth)
    data = np.exp(-truth[0] * t)[:, None]
    loss = js.L2Loss(t, data)
    with caplog.at_level(logging.INFO, logger="jitsolve"):
        res = js.fit(js.remake(prob, p=np.array([1.0])), js.Tsit5(), loss, np.array([1.0]),
                     progress=False, maxiter=30, rtol=1e-10, atol=1e-12, log=tmp_path / "fit.h5")
    assert abs(res.p[0] - 1.5) < 1e-5
    its = [r for r in caplog.records if r.getMessage().startswith("fit iter ")]
    assert len(its) == res.history.size                    # one record per iterate
    assert any("fit.h5" in r.getMessage() for r in caplog.records)
    assert capsys.readouterr().out == ""
    js.fit(js.remake(prob, p=np.array([1.0])), js.Tsit5(), loss, np.array([1.0]),
           progress=True, maxiter=2, rtol=1e-10, atol=1e-12)
    assert "iter    0" in capsys.readouterr().out


def test_progress_of_ode_and_sde_solves_prints_a_start_and_an_end_line(capsys):
    """``progress=True`` did nothing for ODE/SDE solves (API.md lists the option); now a
    line as the solve starts and one as it ends (retcode, time reached, steps, work);
    an ensemble reports once, not per trajectory; nothing without it."""
    prob = js.ODEProblem(_decay, np.array([1.0]), (0.0, 1.0), p=np.array([1.5]))
    sol = js.solve(prob, js.Tsit5(), progress=True)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Tsit5: solving ODEProblem with 1 states on [0, 1] ..."
    assert out[1].startswith(f"Tsit5: Success at t = 1, {sol.stats.naccept} steps "
                             f"({sol.stats.nreject} rejected), {sol.stats.nf} f evaluations")
    assert len(out) == 2
    sol = js.solve(prob, js.Tsit5(), progress=True, maxiters=3)
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith(f"Tsit5: MaxIters at t = {sol.t[-1]:.6g}, 3 steps")
    ens = js.EnsembleProblem(prob, prob_func=lambda pr, i: js.remake(pr, p=np.array([i + 1.0])))
    js.solve(ens, js.Tsit5(), trajectories=3, progress=True)
    out = capsys.readouterr().out.splitlines()
    assert out == [out[0], out[1]] and "3 trajectories" in out[0]
    assert out[1].startswith("Tsit5: Success: 3 of 3 trajectories successful")

    def noise(du, u, p, t):
        du[0] = 0.1
    sprob = js.SDEProblem(_decay, noise, np.array([1.0]), (0.0, 1.0), p=np.array([1.5]))
    js.solve(sprob, js.EM(), dt=0.01, seed=1, progress=True)
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("EM: Success at t = 1, 100 steps (0 rejected)")
    js.solve(sprob, js.EM(), dt=0.01, seed=1)
    js.solve(prob, js.Tsit5())
    assert capsys.readouterr().out == ""
