"""``jitsolve bench``, ``js.profile`` / ``jitsolve profile`` and ``js.work_precision``.

Structure, not speed: no test asserts a timing figure (the machine is shared).
"""
import json
import subprocess
import sys
import time

import numpy as np
import pytest

import jitsolve as js


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jitsolve", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


# ------------------------------------------------------------------ bench
def test_bench_stencil_json_subprocess():
    r = _run("bench", "stencil", "--quick", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["triad_gbs"] > 0 and res["threads"] >= 1
    names = [row["case"] for row in res["rows"]]
    assert any("Laplacian.apply" in n for n in names)
    for row in res["rows"]:
        assert row["ratio_to"] == "triad" and row["ratio"] > 0


@pytest.mark.parametrize("suite", ["krylov", "ode", "sde", "adjoint"])
def test_bench_suites_quick(suite):
    from jitsolve import bench
    res = bench.run([suite], quick=True, gib=0.05, repeat=1)
    assert res["rows"] and all(r["suite"] == suite for r in res["rows"])
    for r in res["rows"]:
        assert np.isfinite(r["seconds"]) and r["seconds"] > 0 and r["ratio"] > 0
    text = bench.format_table(res)
    assert "triad" in text and suite in text
    json.loads(bench.to_json(res))


def test_bench_ode_table_and_plot(tmp_path):
    r = _run("bench", "ode", "--quick", "--plot", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "SciPy RK45" in r.stdout and "Tsit5" in r.stdout and "work-precision" in r.stdout
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "work-precision-lorenz.png").stat().st_size > 5_000
    assert (tmp_path / "work-precision-lotka-volterra.png").exists()


# ------------------------------------------------------------------ profile
def _lorenz(du, u, p, t):
    du[0] = 10.0 * (u[1] - u[0])
    du[1] = u[0] * (28.0 - u[2]) - u[1]
    du[2] = u[0] * u[1] - 8.0 / 3.0 * u[2]


def test_profile_lists_kernels_and_round_trips():
    from jitsolve.grid import operators, stencils
    from jitsolve.profile import Profile
    import importlib
    solve_mod = importlib.import_module("jitsolve.solve")
    orig_apply = operators.GridOperator.__dict__["apply"]
    orig_vjp = stencils.Diffusion.__dict__["param_vjp"]
    orig_reg = dict(solve_mod._REGISTRY)
    g = js.Grid((32, 32), bc=js.Dirichlet(0.0))
    n = g.size
    u = np.random.default_rng(0).random(g.shape)
    L, D = js.Laplacian(g), js.Diffusion(g, 1.0 + u)
    A = js.Advection(g, np.ones((2,) + g.shape))
    prob = js.ODEProblem(_lorenz, np.array([1.0, 0.0, 0.0]), (0.0, 1.0))
    with js.profile(bandwidth=10.0) as prof:
        for _ in range(3):
            L.apply(u)
        A.T.apply(u)
        D.param_vjp(u, u)
        (-L).apply(u)
        js.solve(prob, js.Tsit5())
        d = js.solve(prob, js.Tsit5(), saveat=[0.5, 1.0]).u
        js.gradient(prob, js.Tsit5(), js.L2Loss([0.5, 1.0], d + 0.1), wrt="u0")
        heat = js.solve(js.ODEProblem(L, u, (0.0, 1e-4)), js.RK4(), dt=1e-5)
    ev = prof.events
    # FLOPs of the discrete formulas per cell (module docstring): 2-D Laplacian 9,
    # Advection (and its transpose) 7, Diffusion param_vjp 26, c*A one more
    assert ev["Laplacian.apply"]["flops"] == 4 * 9 * n
    assert ev["Advection.T.apply"]["flops"] == 7 * n
    assert ev["Diffusion.param_vjp"]["flops"] == 26 * n
    assert ev["ScaledOperator.apply"]["flops"] == 10 * n
    assert ev["solve ODEProblem/Tsit5"]["flops"] is None        # a user function: not counted
    assert heat.stats.nf == 40
    assert ev["solve ODEProblem/RK4"]["flops"] == 40 * (9 + 2) * n
    lap = next(r for r in prof.rows if r["name"] == "Laplacian.apply")
    e = ev["Laplacian.apply"]
    assert lap["gflops"] == pytest.approx(3 * 9 * n / (e["time"] - e["first"]) / 1e9)
    assert lap["gflops"] > 0 and next(r for r in prof.rows if r["name"].startswith(
        "gradient"))["gflops"] is None
    assert ev["Laplacian.apply"]["calls"] == 4          # 3 direct + 1 inside -L
    assert ev["Laplacian.apply"]["bytes"] == 4 * 2 * 8 * n
    assert ev["Advection.T.apply"]["calls"] == 1
    assert ev["Advection.T.apply"]["bytes"] == 4 * 8 * n
    assert ev["Diffusion.param_vjp"]["bytes"] == 4 * 8 * n
    assert ev["ScaledOperator.apply"]["inclusive"] >= ev["ScaledOperator.apply"]["time"]
    assert ev["solve ODEProblem/Tsit5"]["calls"] == 2
    assert ev["solve ODEProblem/Tsit5"]["bytes"] > 0
    assert any(k.startswith("gradient ODEProblem/Tsit5") for k in ev)
    rows = prof.rows
    assert [r["time"] for r in rows] == sorted((r["time"] for r in rows), reverse=True)
    assert sum(r["time"] for r in rows) <= prof.wall * 1.0001
    text = str(prof)
    assert "Laplacian.apply" in text and "GB/s" in text and "roofline" in text
    assert "GFLOP/s" in text
    s = prof.to_json()
    back = Profile.from_json(s)
    assert back.as_dict() == json.loads(s)
    assert back.events == json.loads(json.dumps(prof.events))
    # nothing left patched: no overhead when off
    assert operators.GridOperator.__dict__["apply"] is orig_apply
    assert stencils.Diffusion.__dict__["param_vjp"] is orig_vjp
    assert solve_mod._REGISTRY == orig_reg


def test_profile_restores_after_exception_and_nests():
    from jitsolve.grid import operators
    orig = operators.GridOperator.__dict__["apply"]
    g = js.Grid((8, 8))
    L = js.Laplacian(g)
    with pytest.raises(RuntimeError):
        with js.profile(bandwidth=1.0) as outer:
            with js.profile(bandwidth=1.0) as inner:
                L.apply(np.ones(g.shape))
            L.apply(np.ones(g.shape))
            raise RuntimeError("boom")
    assert operators.GridOperator.__dict__["apply"] is orig
    assert inner.events["Laplacian.apply"]["calls"] == 1
    assert outer.events["Laplacian.apply"]["calls"] == 2


def test_profile_overhead_on_heat_demo_is_small():
    """The heat demo under the profiler: its gradient/solve events are listed; the
    profiler's own cost (events x the measured cost of one wrapped call) is reported and
    must be a small share of the run (the figure, not a timing race)."""
    from jitsolve import demos
    from jitsolve.profile import _timed
    demos.heat_inverse(size=16, steps=10, maxiter=3)           # warm the compile cache
    t0 = time.perf_counter()
    with js.profile(bandwidth=10.0) as prof:
        demos.heat_inverse(size=16, steps=10, maxiter=15)
    wall = time.perf_counter() - t0
    names = set(prof.events)
    assert "solve ODEProblem/RK4" in names
    assert any(n.startswith("gradient ODEProblem/RK4") for n in names)
    calls = sum(e["calls"] for e in prof.events.values())
    f = _timed(lambda *a: "x", None, lambda *a: None)
    from jitsolve import profile as _p  # noqa: F401
    k = 20000
    t1 = time.perf_counter()
    for _ in range(k):
        f(1)
    per_call = (time.perf_counter() - t1) / k
    overhead = calls * per_call / wall
    print(f"profiler overhead on the heat demo: {calls} events x {per_call * 1e6:.2f} us "
          f"= {100 * overhead:.3f}% of {wall:.2f} s")
    assert overhead < 0.05


def test_profile_cli_script(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("import sys\nimport numpy as np\nimport jitsolve as js\n"
                      "g = js.Grid((16, 16)); L = js.Laplacian(g)\n"
                      "for _ in range(int(sys.argv[1])):\n    L.apply(np.ones(g.shape))\n")
    out = tmp_path / "prof.json"
    r = _run("profile", "--json", str(out), str(script), "7")
    assert r.returncode == 0, r.stderr
    assert "Laplacian.apply" in r.stdout
    d = json.loads(out.read_text())
    assert d["format"] == "jitsolve-profile" and d["events"]["Laplacian.apply"]["calls"] == 7


# ------------------------------------------------------------------ work_precision
def _lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


def test_work_precision_errors_fall_with_tolerance(tmp_path):
    prob = js.ODEProblem(_lotka, np.array([1.0, 1.0]), (0.0, 5.0), p=np.array([1.5, 1.0, 3.0, 1.0]))
    tols = [1e-4, 1e-6, 1e-8]
    wp = js.work_precision(prob, [js.Tsit5(), js.Vern7(), "scipy:RK45"], tols, repeat=1,
                           name="lotka")
    assert len(wp.rows) == 9
    assert wp.algorithms() == ["Tsit5", "Vern7", "SciPy RK45"]
    for name in wp.algorithms():
        errs = [r["error"] for r in wp.rows if r["alg"] == name]
        assert all(e is not None and e > 0 for e in errs)
        assert errs[-1] < errs[0] / 30, (name, errs)
        assert all(r["time"] > 0 and r["nf"] > 0 for r in wp.rows if r["alg"] == name)
    assert "Tsit5" in str(wp) and "error" in str(wp)
    # an explicit reference and saveat
    ts = np.linspace(1.0, 5.0, 5)
    ref = js.solve(prob, js.Vern7(), rtol=1e-12, atol=1e-12, saveat=ts).u
    wp2 = js.work_precision(prob, [js.DP5()], [1e-5, 1e-9], reference=ref, saveat=ts, repeat=1)
    assert wp2.rows[1]["error"] < wp2.rows[0]["error"]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert wp.plot(str(tmp_path / "wp.png")) is None
        return
    wp.plot(str(tmp_path / "wp.png"))
    assert (tmp_path / "wp.png").stat().st_size > 5_000


def test_work_precision_bad_input():
    prob = js.ODEProblem(_lotka, np.array([1.0, 1.0]), (0.0, 1.0), p=np.array([1.5, 1.0, 3.0, 1.0]))
    with pytest.raises(js.errors.InvalidProblemError, match="tols"):
        js.work_precision(prob, [js.Tsit5()], [])
    with pytest.raises(js.errors.InvalidProblemError, match="algs"):
        js.work_precision(prob, ["RK45"], [1e-6])


def test_import_stays_light():
    r = subprocess.run([sys.executable, "-c", "import sys, jitsolve as js; js.profile; "
                        "js.work_precision; print('numba' in sys.modules, 'scipy' in sys.modules)"],
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["False", "False"], r.stdout + r.stderr
