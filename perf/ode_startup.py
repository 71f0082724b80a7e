"""Compile budget of the ODE integrators (issue 4): ``import jitsolve``, and the first
solve of a new user function in a fresh process with a cold and with a warm Numba cache,
per method.

Run:  python perf/ode_startup.py

Methods run in the order listed, sharing one cache directory: the first method of a
family compiles its loop (the explicit methods share one loop; the stiff loop is compiled
once per step family: Rodas5P, Rosenbrock23, and the (E)SDIRK methods KenCarp4, Kvaerno5,
ImplicitEuler), the later ones load it.

The first solve includes ``import numba`` (``import jitsolve`` does not import it), the
user function's cfunc (compiled, or loaded from the cache), and the integration loop
(compiled once for every user function and method, or loaded from the cache).
"""
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import jitsolve as js
t1 = time.perf_counter()
import numpy as np
name = sys.argv[1]
def lorenz(du, u, p, t):
    du[0] = 10.0 * (u[1] - u[0]); du[1] = u[0] * (28.0 - u[2]) - u[1]; du[2] = u[0] * u[1] - 8.0 / 3.0 * u[2]
prob = js.ODEProblem(lorenz, np.array([1.0, 0.0, 0.0]), (0.0, 1.0))
alg = getattr(js, name)()
kw = dict(dt=1e-3) if name in ("Euler", "RK4") else {}
t2 = time.perf_counter()
js.solve(prob, alg, **kw)
t3 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, problem_s=t2 - t1, first_solve_s=t3 - t2)))
"""

METHODS = ("Tsit5", "DP5", "Vern7", "RK4", "Euler", "Rodas5P", "Rosenbrock23", "KenCarp4",
           "Kvaerno5", "ImplicitEuler")


def _child(name, env, script):
    out = subprocess.run([sys.executable, script, name], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return dict(import_s=float("nan"), problem_s=float("nan"), first_solve_s=float("nan"),
                    error=f"exit {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as work:
        script = os.path.join(work, "child.py")   # a file, so the user's cfunc is cacheable
        with open(script, "w") as fh:
            fh.write(CHILD)
        rows = []
        with tempfile.TemporaryDirectory() as cache:
            env["NUMBA_CACHE_DIR"] = cache
            for m in METHODS:
                cold = _child(m, env, script)      # this method's loop compiled for the first time
                warm = _child(m, env, script)
                rows.append((m, cold, warm))
    print(f"{'method':14s} {'import':>8s} {'cold first solve':>17s} {'warm first solve':>17s}")
    for m, c, w in rows:
        print(f"{m:14s} {w['import_s']:8.3f} {c['problem_s'] + c['first_solve_s']:17.2f} "
              f"{w['problem_s'] + w['first_solve_s']:17.3f}")


if __name__ == "__main__":
    main()
