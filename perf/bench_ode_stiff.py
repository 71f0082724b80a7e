"""Stiff ODE figures for issue 4: Robertson to t = 1e5 at rtol 1e-6, atol 1e-10.

jitsolve Rodas5P / KenCarp4 / Kvaerno5 / Rosenbrock23 (complex-step Jacobian, and
Rodas5P with the user's Jacobian) against SciPy ``solve_ivp`` LSODA and BDF (given the
analytic Jacobian too), all in the same run; best of ``--reps`` solves each (after a warm-up
solve, so compile time is not counted), with the end state's error against a tight Radau
reference and the number of steps.

Run:  python perf/bench_ode_stiff.py [--reps 20]
"""
import argparse
import time

import numpy as np


def robertson(du, u, p, t):
    du[0] = -0.04 * u[0] + 1e4 * u[1] * u[2]
    du[1] = 0.04 * u[0] - 1e4 * u[1] * u[2] - 3e7 * u[1] * u[1]
    du[2] = 3e7 * u[1] * u[1]


def robertson_jac(J, u, p, t):
    J[0, 0] = -0.04
    J[0, 1] = 1e4 * u[2]
    J[0, 2] = 1e4 * u[1]
    J[1, 0] = 0.04
    J[1, 1] = -1e4 * u[2] - 6e7 * u[1]
    J[1, 2] = -1e4 * u[1]
    J[2, 0] = 0.0
    J[2, 1] = 6e7 * u[1]
    J[2, 2] = 0.0


def _best(fn, reps):
    fn()
    best = np.inf
    out = None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    from scipy.integrate import solve_ivp

    import jitsolve as js
    from jitsolve.ode_stiff import KenCarp4, Kvaerno5, Rodas5P, Rosenbrock23

    u0 = np.array([1.0, 0.0, 0.0])
    T = 1e5
    rtol, atol = 1e-6, 1e-10

    def f_py(t, u):
        return [-0.04 * u[0] + 1e4 * u[1] * u[2],
                0.04 * u[0] - 1e4 * u[1] * u[2] - 3e7 * u[1] ** 2, 3e7 * u[1] ** 2]

    def j_py(t, u):
        J = np.zeros((3, 3))
        robertson_jac(J, u, None, t)
        return J

    ref = solve_ivp(f_py, (0, T), u0, method="Radau", rtol=1e-12,
                    atol=np.array([1e-16, 1e-20, 1e-16]), jac=j_py).y[:, -1]

    rows = []
    for name, method, jac in (("SciPy LSODA", "LSODA", None), ("SciPy LSODA + jac", "LSODA", j_py),
                              ("SciPy BDF", "BDF", None), ("SciPy BDF + jac", "BDF", j_py)):
        kw = {} if jac is None else {"jac": jac}
        reps = max(3, a.reps // 4)
        tb, s = _best(lambda: solve_ivp(f_py, (0, T), u0, method=method, rtol=rtol, atol=atol,
                                        **kw), reps)
        rows.append((name, tb, s.t.size - 1, np.max(np.abs(s.y[:, -1] - ref) / np.abs(ref))))
    lsoda = rows[0][1]

    prob = js.ODEProblem(robertson, u0, (0.0, T))
    probj = js.ODEProblem(js.ODEFunction(robertson, jac=robertson_jac), u0, (0.0, T))
    for name, pr, alg in (("jitsolve Rodas5P", prob, Rodas5P()),
                          ("jitsolve Rodas5P (autonomous)", prob, Rodas5P(autonomous=True)),
                          ("jitsolve Rodas5P + jac", probj, Rodas5P()),
                          ("jitsolve KenCarp4", prob, KenCarp4()),
                          ("jitsolve Kvaerno5", prob, Kvaerno5()),
                          ("jitsolve Rosenbrock23", prob, Rosenbrock23())):
        tb, s = _best(lambda: js.solve(pr, alg, rtol=rtol, atol=atol, saveat=[T]), a.reps)
        rows.append((name, tb, s.stats.naccept,
                     np.max(np.abs(s.u[-1] - ref) / np.abs(ref))))

    print(f"Robertson to t = 1e5, rtol {rtol:g}, atol {atol:g} (best of {a.reps}; SciPy best of "
          f"{max(3, a.reps // 4)})\n")
    print("| solver | time (ms) | steps | max rel. error at t = 1e5 | speed-up vs LSODA |")
    print("|---|---|---|---|---|")
    for name, tb, steps, err in rows:
        print(f"| {name} | {tb * 1e3:.3f} | {steps} | {err:.1e} | {lsoda / tb:.1f}x |")


if __name__ == "__main__":
    main()
