"""Audit of the command line, the profiler and ``js.work_precision``: the reference gets
the caller's options, only ODE problems, split problems in the SciPy peers, reference and
tolerance checks; profile reuse, self-nesting and threads; script errors under
``jitsolve profile``; argument errors before any work; zero noise and sizes in the demos;
the threading layer in ``jitsolve info``."""
import functools
import importlib
import subprocess
import sys
import threading
import time
import types

import h5py
import numpy as np
import pytest

import jitsolve as js
from jitsolve.cli import main
from jitsolve.errors import InvalidProblemError


def _main(argv):
    """``main(argv)``'s exit status, also when argparse exits."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _one_line_error(capsys, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jitsolve: error: "), err
    assert needle in err[0], err
    return err[0]


# ------------------------------------------------------------------ work_precision
def _decay(du, u, p, t):
    du[0] = -p[0] * u[0]


def _unit_decay(du, u, p, t):
    du[0] = -u[0]


def _cond(u, t, p):
    return u[0] - 0.5


def _reset(u, t, p):
    u[0] = 1.0


def _zero(du, u, p, t):
    du[0] = 0.0


def test_reference_gets_the_callers_callback():
    # u' = -u from 1, reset to 1 whenever it reaches 1/2 (t = ln 2, 2 ln 2): u(2) = 4 e^-2
    cb = js.ContinuousCallback(_cond, _reset)
    prob = js.ODEProblem(_unit_decay, np.array([1.0]), (0.0, 2.0))
    wp = js.work_precision(prob, [js.Tsit5()], [1e-4, 1e-8], repeat=1, callback=cb)
    assert wp.reference.shape == (1, 1)
    assert wp.reference[0, 0] == pytest.approx(4 * np.exp(-2.0), rel=1e-9)
    assert wp.reference_alg.startswith("Vern7")
    errs = [r["error"] for r in wp.rows]
    assert errs[0] < 1e-3 and errs[1] < 1e-6        # was 3.0: the reference had no resets
    with pytest.raises(InvalidProblemError,
                       match="^algs: SciPy peers cannot apply callback"):
        js.work_precision(prob, [js.Tsit5(), "scipy:RK45"], [1e-6], repeat=1, callback=cb)


def test_sde_problem_is_refused():
    prob = js.SDEProblem(_decay, _decay, np.array([1.0]), (0.0, 1.0), np.array([1.0]))
    with pytest.raises(InvalidProblemError, match="^prob: .*SDEProblem"):
        js.work_precision(prob, [js.SRIW1(), "scipy:RK45"], [1e-2], repeat=1)


def test_reference_failure_is_not_hidden(monkeypatch):
    solve_mod = importlib.import_module("jitsolve.solve")
    prob = js.ODEProblem(_decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))

    def boom(*a, **k):
        raise RuntimeError("reference solve broke")
    monkeypatch.setattr(solve_mod, "solve", boom)
    with pytest.raises(RuntimeError, match="reference solve broke"):
        js.work_precision(prob, ["scipy:RK45"], [1e-6], repeat=1)

    def failed(*a, **k):
        return types.SimpleNamespace(successful=False, retcode="MaxIters",
                                     u=np.zeros((1, 1)))
    monkeypatch.setattr(solve_mod, "solve", failed)
    with pytest.warns(RuntimeWarning, match="DOP853"):
        wp = js.work_precision(prob, ["scipy:RK45"], [1e-6], repeat=1)
    assert "SciPy DOP853" in wp.reference_alg and "MaxIters" in wp.reference_alg
    assert "reference: SciPy DOP853" in str(wp)
    assert wp.reference[0, 0] == pytest.approx(np.exp(-2.0), rel=1e-10)
    cb = js.ContinuousCallback(_cond, _reset)
    with pytest.raises(InvalidProblemError, match="^reference: Vern7 .* callback"):
        js.work_precision(prob, [js.Tsit5()], [1e-6], repeat=1, callback=cb)


@pytest.mark.parametrize("kind", ["diagonal", "dense", "sparse"])
def test_scipy_peer_integrates_the_linear_part_of_a_split_problem(kind):
    import scipy.sparse as sp
    L = {"diagonal": np.array([-5.0]), "dense": np.array([[-5.0]]),
         "sparse": sp.csr_matrix(np.array([[-5.0]]))}[kind]
    prob = js.SplitODEProblem(L, _zero, np.array([1.0]), (0.0, 1.0))
    wp = js.work_precision(prob, ["scipy:RK45", "scipy:DOP853"], [1e-6, 1e-9],
                           reference=np.array([np.exp(-5.0)]), repeat=1)
    for r in wp.rows:
        assert r["ok"] and r["error"] < 100 * r["tol"], r     # was 147: rhs = f only
    assert wp.rows[1]["error"] < wp.rows[0]["error"]


def test_scipy_peer_adds_the_grid_operators_boundary_term():
    # u' = Laplacian u with u = 1 on the walls, from u = 0: the walls heat the plate
    g = js.Grid((4, 4), bc=js.Dirichlet(1.0))
    L = js.Laplacian(g)
    prob = js.ODEProblem(L, np.zeros(g.shape), (0.0, 0.02))
    wp = js.work_precision(prob, [js.Tsit5(), "scipy:RK45"], [1e-7], repeat=1)
    assert wp.reference.min() > 0.1
    for r in wp.rows:
        assert r["error"] < 1e-4, r


def test_scipy_peer_honours_tstops():
    prob = js.ODEProblem(_decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    ts = np.array([0.25, 0.5, 1.0])
    ref = np.exp(-2.0 * ts)[:, None]
    wp = js.work_precision(prob, ["scipy:DOP853"], [1e-9], reference=ref, saveat=ts,
                           repeat=1, tstops=[0.3, 0.5, 0.8])
    one = js.work_precision(prob, ["scipy:DOP853"], [1e-9], reference=ref, saveat=ts,
                            repeat=1)
    assert wp.rows[0]["error"] < 1e-8 and one.rows[0]["error"] < 1e-8
    assert wp.rows[0]["nf"] > one.rows[0]["nf"]          # four pieces cost more evaluations


def test_reference_shape_and_tols_checks():
    prob = js.ODEProblem(_decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    ts = np.array([0.25, 0.5, 1.0])
    with pytest.raises(InvalidProblemError, match=r"^reference: expected shape \(3, 1\)"):
        js.work_precision(prob, [js.Tsit5()], [1e-6], reference=np.array([np.exp(-2.0)]),
                          saveat=ts, repeat=1)
    wp = js.work_precision(prob, [js.Tsit5()], 1e-6, reference=np.array([np.exp(-2.0)]),
                           repeat=1)
    assert [r["tol"] for r in wp.rows] == [1e-6] and wp.rows[0]["error"] < 1e-5
    with pytest.raises(InvalidProblemError, match="^tols"):
        js.work_precision(prob, [js.Tsit5()], "tight")
    with pytest.raises(InvalidProblemError, match="^tols"):
        js.work_precision(prob, [js.Tsit5()], [np.inf])
    with pytest.raises(InvalidProblemError, match="^algs: unknown SciPy method 'NOPE'"):
        js.work_precision(prob, ["scipy:NOPE"], [1e-6])
    with pytest.raises(InvalidProblemError, match="^saveat"):
        js.work_precision(prob, [js.Tsit5()], [1e-6], saveat=[0.5, 2.0])


# ------------------------------------------------------------------ profile
def test_profile_reused_accumulates_wall_time():
    g = js.Grid((16, 16))
    L, u = js.Laplacian(g), np.ones(g.shape)
    L.apply(u)
    prof = js.profile(bandwidth=10.0)
    with prof:
        for _ in range(5):
            L.apply(u)
    w1 = prof.wall
    t0 = time.perf_counter()
    with prof:
        time.sleep(0.05)
        L.apply(u)
    w2 = time.perf_counter() - t0
    assert prof.events["Laplacian.apply"]["calls"] == 6
    assert w1 + 0.05 <= prof.wall <= w1 + w2            # was the second block's wall only
    assert all(r["percent"] <= 100.0 for r in prof.rows)


def test_profile_nested_in_itself_counts_once():
    from jitsolve.grid import operators
    orig = operators.GridOperator.__dict__["apply"]
    g = js.Grid((8, 8))
    L, u = js.Laplacian(g), np.ones(g.shape)
    q = js.profile(bandwidth=10.0)
    with q:
        with q:
            L.apply(u)
        L.apply(u)          # the inner exit does not stop the outer block
    assert q.events["Laplacian.apply"]["calls"] == 2
    assert operators.GridOperator.__dict__["apply"] is orig


def test_profile_call_stack_is_per_thread():
    from jitsolve.profile import _timed
    inner = _timed(lambda *a: "inner", None, lambda: time.sleep(0.1))
    th = threading.Thread(target=inner)

    def body():
        th.start()
        time.sleep(0.2)
        th.join()
    outer = _timed(lambda *a: "outer", None, body)
    with js.profile(bandwidth=10.0) as prof:
        outer()
    ev = prof.events
    assert ev["inner"]["calls"] == 1 and ev["inner"]["time"] >= 0.1
    # the other thread's call is not a child: the outer self time keeps its 0.2 s
    assert ev["outer"]["time"] >= 0.2
    assert ev["outer"]["inclusive"] == pytest.approx(ev["outer"]["time"])


# ------------------------------------------------------------------ jitsolve profile
JSERR = ("import numpy as np, jitsolve as js\n"
         "def f(du, u, p, t):\n    du[0] = -u[0]\n"
         "print('before')\n"
         "js.solve(js.ODEProblem(f, np.array([1.0]), (0.0, 1.0)), js.Tsit5(), rtol=-1.0)\n")


def test_profile_script_jitsolve_error_is_a_script_error(tmp_path, capsys):
    script = tmp_path / "jserr.py"
    script.write_text(JSERR)
    with pytest.raises(InvalidProblemError, match="rtol"):
        main(["profile", str(script)])               # propagates: traceback, exit 1
    cap = capsys.readouterr()
    assert "before" in cap.out and "the script stopped with an error" in cap.err
    r = subprocess.run([sys.executable, "-m", "jitsolve", "profile", str(script)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and "Traceback" in r.stderr and "rtol: must be" in r.stderr


def test_profile_argument_errors(tmp_path, capsys):
    script = tmp_path / "s.py"
    script.write_text("raise AssertionError('the script must not run')\n")
    assert _main(["profile"]) == 2
    line = _one_line_error(capsys, "SCRIPT.py")
    assert "args" not in line
    assert _main(["profile", str(tmp_path)]) == 2
    _one_line_error(capsys, "folder")
    assert _main(["profile", "--json", str(tmp_path / "no" / "p.json"), str(script)]) == 2
    _one_line_error(capsys, "--json: the folder")
    assert _main(["profile", "--json", str(tmp_path), str(script)]) == 2
    _one_line_error(capsys, "--json: ")


def test_profile_folder_with_main_runs(tmp_path, capsys):
    (tmp_path / "__main__.py").write_text(
        "import numpy as np, jitsolve as js\ng = js.Grid((8, 8))\n"
        "js.Laplacian(g).apply(np.ones(g.shape))\n")
    assert _main(["profile", str(tmp_path)]) == 0
    assert "Laplacian.apply" in capsys.readouterr().out


def test_profile_json_failing_at_the_end_prints_the_table_first(tmp_path, capsys):
    folder = tmp_path / "gone"
    folder.mkdir()
    script = tmp_path / "s.py"
    script.write_text("import os, numpy as np, jitsolve as js\ng = js.Grid((8, 8))\n"
                      "js.Laplacian(g).apply(np.ones(g.shape))\n"
                      f"os.rmdir({str(folder)!r})\n")
    assert _main(["profile", "--json", str(folder / "p.json"), str(script)]) == 2
    cap = capsys.readouterr()
    assert "Laplacian.apply" in cap.out
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jitsolve: error: --json: cannot write")


# ------------------------------------------------------------------ demo / bench arguments
def test_demo_and_bench_argument_errors_before_any_work(tmp_path, capsys, monkeypatch):
    from jitsolve import bench, demos

    def no_work(*a, **k):
        raise AssertionError("work started before the arguments were checked")
    for name in ("heat_inverse", "conductivity", "lotka_volterra", "sde_calibration"):
        # same signature (the CLI reads which options a demo takes from it)
        monkeypatch.setattr(demos, name, functools.wraps(getattr(demos, name))(no_work))
    monkeypatch.setattr(bench, "run", no_work)
    afile = tmp_path / "afile"
    afile.write_text("")
    cases = [
        (["demo", "--seed", "-1"], "--seed"),
        (["demo", "--out", str(afile)], "--out: "),
        (["demo", "--out", str(afile / "sub")], "--out: "),
        (["bench", "ode", "--quick", "--plot", "--out", str(afile)], "--out: "),
        (["demo", "sde-calibration", "--size", "1"],
         "--size: the sde-calibration demo needs at least 2 observed paths"),
        (["demo", "conductivity", "--size", "3"],
         "--size: the conductivity demo needs at least 5 grid cells per side"),
        (["demo", "lotka-volterra", "--size", "1"],
         "--size: the lotka-volterra demo needs at least 2 observation times"),
    ]
    for argv, needle in cases:
        assert _main(argv) == 2, argv
        _one_line_error(capsys, needle)
    assert afile.is_file()


def test_demo_size_help_is_per_demo(capsys):
    assert _main(["demo", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in ("conductivity: grid cells per side (at least 5)",
                 "lotka-volterra: observation times (at least 2)",
                 "sde-calibration: observed paths"):
        assert text in out


def test_demo_functions_check_their_inputs():
    from jitsolve import demos
    with pytest.raises(InvalidProblemError, match="^size: the conductivity demo"):
        demos.conductivity(size=3)
    with pytest.raises(InvalidProblemError, match="^seed"):
        demos.heat_inverse(size=8, seed=-1)
    with pytest.raises(InvalidProblemError, match="^noise"):
        demos.lotka_volterra(size=8, noise=float("nan"))


@pytest.mark.parametrize("argv", [
    ["heat-inverse", "--size", "8", "--steps", "10", "--maxiter", "8"],
    ["conductivity", "--size", "8", "--maxiter", "6"],
])
def test_demo_zero_noise(tmp_path, capsys, argv):
    assert _main(["demo", *argv, "--noise", "0", "--quiet", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    with h5py.File(tmp_path / "result.h5", "r") as f:
        hist = f["loss_history"][()]
        truth, rec = f["truth"][()], f["recovered"][()]
        assert f.attrs["noise"] == 0.0
        rel0 = f.attrs["initial_error"]
    rel = np.linalg.norm(rec - truth) / np.linalg.norm(truth)
    assert np.all(np.isfinite(hist)) and hist[-1] < 0.1 * hist[0]
    assert rel < 0.8 * rel0


def test_lotka_volterra_zero_noise_recovers_exactly():
    from jitsolve import demos
    res = demos.lotka_volterra(size=12, noise=0.0, maxiter=10)
    assert np.all(np.isfinite(res["loss_history"]))
    assert res["relative_error"] < 1e-3


# ------------------------------------------------------------------ info
def test_info_reports_the_threading_layer_in_use(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("numba "))
    layer = line.split("threading layer ", 1)[1].split()[0]
    import numba
    assert layer in ("omp", "tbb", "workqueue")
    assert layer == numba.threading_layer()
