"""Stiff ensembles in one compiled kernel against one compiled solve per trajectory.

Robertson's kinetics (t to 1e5, rtol 1e-6, atol 1e-10, 20 log-spaced save times) with
``N`` parameter sets (rates scaled by up to +-10 %), solved by ``js.solve`` on an
``EnsembleProblem(prob, ps=...)`` -- the kernel, a trajectory per thread -- and by the
general path (the same ensemble given as ``prob_func``: one ``js.solve`` per trajectory in
a Python loop, what stiff ensembles ran before); and the per-trajectory gradients wrt
``p`` and ``u0`` of an L2 loss at the save times, kernel against loop.  The two paths'
results are compared bit for bit in the same run.  Timings: best of ``--reps``, the two
paths interleaved, after a warm-up call of each (compile time not counted).

Run:  python perf/stiff_ensemble.py [--n 200] [--reps 5] [--algs Rodas5P,KenCarp4]
"""
import argparse
import os
import time

import numba
import numpy as np

import jitsolve as js


def robertson(du, u, p, t):
    du[0] = -p[0] * u[0] + p[1] * u[1] * u[2]
    du[1] = p[0] * u[0] - p[1] * u[1] * u[2] - p[2] * u[1] * u[1]
    du[2] = p[2] * u[1] * u[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--algs", default="Rodas5P,KenCarp4,Rosenbrock23,Kvaerno5")
    a = ap.parse_args()
    p = np.array([0.04, 1e4, 3e7])
    prob = js.ODEProblem(robertson, np.array([1.0, 0.0, 0.0]), (0.0, 1e5), p)
    ps = p * (1.0 + 0.2 * (np.random.default_rng(0).random((a.n, 3)) - 0.5))
    sv = np.logspace(-3, 5, 20)
    kernel = js.EnsembleProblem(prob, ps=ps)
    loop = js.EnsembleProblem(prob, prob_func=lambda pr, i: js.remake(pr, p=ps[i]))
    kw = dict(rtol=1e-6, atol=1e-10)
    loss = js.L2Loss(sv, np.zeros((sv.size, 3)))
    print(f"threads: {numba.get_num_threads()} (cores: {os.cpu_count()})"
          f"  N = {a.n} trajectories, Robertson to 1e5, rtol 1e-6, atol 1e-10, "
          f"best of {a.reps}\n")
    print("| method | solve: kernel (ms) | loop (ms) | loop / kernel | same bits "
          "| gradient: kernel (ms) | loop (ms) | loop / kernel | same bits |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---|")
    for name in a.algs.split(","):
        alg = getattr(js, name)()
        runs = {
            "sk": lambda: js.solve(kernel, alg, saveat=sv, **kw),
            "sl": lambda: js.solve(loop, alg, saveat=sv, trajectories=a.n, **kw),
            "gk": lambda: js.gradient(kernel, alg, loss, wrt=("p", "u0"), **kw),
            "gl": lambda: js.gradient(loop, alg, loss, wrt=("p", "u0"), trajectories=a.n, **kw),
        }
        out = {k: f() for k, f in runs.items()}          # warm-up (compiles)
        best = dict.fromkeys(runs, np.inf)
        for _ in range(a.reps):
            for k, f in runs.items():
                t0 = time.perf_counter()
                f()
                best[k] = min(best[k], time.perf_counter() - t0)
        same_s = np.array_equal(out["sk"].u, out["sl"].u)
        same_g = all(np.array_equal(out["gk"][1][k], out["gl"][1][k]) for k in ("p", "u0"))
        print(f"| {name} | {best['sk'] * 1e3:.1f} | {best['sl'] * 1e3:.1f} | "
              f"{best['sl'] / best['sk']:.2f} | {same_s} | {best['gk'] * 1e3:.1f} | "
              f"{best['gl'] * 1e3:.1f} | {best['gl'] / best['gk']:.2f} | {same_g} |")


if __name__ == "__main__":
    main()
