"""Compile budget of the ODE integrators (issue 4): ``import jitsolve``, and the first
solve of a new user function in a fresh process with a cold and with a warm Numba cache,
per method.

Run:  python perf/ode_startup.py [--methods Tsit5,Rodas5P,...]

Two cold columns.  "cold, empty cache": each method's first solve in a process whose
cache directory is empty (nothing compiled before: a new install whose first solve uses
this method).  "cold, in sequence": the methods run in the order listed sharing one cache
directory, so the first method of a family compiles its loop (the explicit methods share
one loop; the stiff loop is compiled once per step family: Rodas5P, Rosenbrock23, and the
(E)SDIRK methods KenCarp4, Kvaerno5, ImplicitEuler) and the helpers the loops share
(starting step, Jacobian, step control), the later ones load them.  "warm": the same
process again on the sequence's cache.

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


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(METHODS),
                    help="comma-separated method names (default: all, in this order)")
    args = ap.parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as work:
        script = os.path.join(work, "child.py")   # a file, so the user's cfunc is cacheable
        with open(script, "w") as fh:
            fh.write(CHILD)
        rows = []
        with tempfile.TemporaryDirectory() as cache:
            for m in methods:
                with tempfile.TemporaryDirectory() as empty:
                    env["NUMBA_CACHE_DIR"] = empty
                    fresh = _child(m, env, script)     # nothing compiled before
                env["NUMBA_CACHE_DIR"] = cache
                cold = _child(m, env, script)      # this method's loop compiled for the first time
                warm = _child(m, env, script)
                rows.append((m, fresh, cold, warm))
    print(f"{'method':14s} {'import':>8s} {'cold, empty cache':>18s} {'cold, in sequence':>18s} "
          f"{'warm':>8s}")
    for m, f, c, w in rows:
        print(f"{m:14s} {w['import_s']:8.3f} {f['problem_s'] + f['first_solve_s']:18.2f} "
              f"{c['problem_s'] + c['first_solve_s']:18.2f} "
              f"{w['problem_s'] + w['first_solve_s']:8.3f}")


if __name__ == "__main__":
    main()
