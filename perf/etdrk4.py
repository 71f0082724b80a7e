"""ETDRK4 on a stiff semilinear PDE against the other integrators of the same problem,
and its discrete adjoint against its forward solve.

    python perf/etdrk4.py [--n 128] [--repeat 5] [--no-kencarp]

2-D Allen-Cahn ``u_t = eps Lap u + u - u^3`` on the unit square (``n x n`` cells, Neumann
walls), ``eps = 0.01``, ``t`` in [0, 1], a smooth random start.  ``h max|lam| = eps * 8
n^2 dt`` is about 650 for ``n = 128`` at ``dt = 0.05``: explicit methods are held to
``dt <~ 2.8 / max|lam|`` (RK4's stability bound on the negative axis).  Every method is
timed in the same run (best of ``--repeat`` calls in a block after a pause, compile
excluded; see the comment at the timing loop) and its
error measured at ``t = 1`` against ETDRK4 at ``dt / 32`` (an order-4 error ~1e6 times
smaller than at ``dt``):

- ETDRK4 at ``dt`` = 0.05 and 0.025 (the Laplacian's separable eigenbasis);
- RK4 at the largest stable step (``dt = 2.5 / max|lam|``, fixed steps);
- KenCarp4 (IMEX: the Laplacian implicit, Newton-Krylov on the grid operator) at
  rtol 1e-5 (seconds per solve: timed once after a warm-up; ``--no-kencarp`` skips it);
- ``js.gradient`` of ``0.5 ||u(1) - d||^2`` wrt ``u0`` and ``p`` by ETDRK4's discrete
  adjoint (every state stored; and 4 binomial checkpoints), in units of the forward solve.
"""
import argparse
import os
import time

import numpy as np
import scipy.sparse as sp

import jitsolve as js
from heat_nonlinear import interleaved_best, loadavg   # perf/, the script's directory


def reaction(du, u, p, t):
    for i in range(u.size):
        du[i] = p[0] * (u[i] - u[i] * u[i] * u[i])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-kencarp", action="store_true", help="skip the (slow) KenCarp4 peer")
    a = ap.parse_args()
    n, eps, T = a.n, 0.01, 1.0
    g = js.Grid((n, n), bc=js.Neumann())
    X, Y = g.mesh()
    # smooth data (rough data, e.g. white noise, shows ETDRK4's stiff order reduction:
    # order ~1 at these steps, Hochbruck-Ostermann)
    u0 = (0.3 * np.cos(2 * np.pi * X) * np.cos(3 * np.pi * Y)
          + 0.2 * np.cos(np.pi * X + 0.3) * np.cos(5 * np.pi * Y - 0.2))
    L = eps * js.Laplacian(g)
    fun = js.ODEFunction(reaction, jac_sparsity=sp.identity(g.size, format="csr"))
    prob = js.SplitODEProblem(L, fun, u0, (0.0, T), p=np.array([1.0]))
    lam_max = eps * 8 * n * n
    print(f"threads: {os.cpu_count()}  load: {loadavg()}  grid {n}x{n}  eps {eps}  "
          f"max|lam| {lam_max:.0f}")

    t0 = time.perf_counter()
    js.solve(prob, js.ETDRK4(), dt=0.05)
    print(f"first ETDRK4 solve in this process (compile or cache load): "
          f"{time.perf_counter() - t0:.2f} s")
    ref = js.solve(prob, js.ETDRK4(), dt=0.05 / 32, saveat=[T]).u[-1]
    dt_rk4 = 2.5 / lam_max
    cases = {
        "ETDRK4 dt=0.05": lambda: js.solve(prob, js.ETDRK4(), dt=0.05, saveat=[T]),
        "ETDRK4 dt=0.025": lambda: js.solve(prob, js.ETDRK4(), dt=0.025, saveat=[T]),
        f"RK4 dt={dt_rk4:.2e} (stability limit)":
            lambda: js.solve(prob, js.RK4(), dt=dt_rk4, saveat=[T]),
    }
    slow = {"KenCarp4 rtol=1e-5 (IMEX, Newton-Krylov)":
            lambda: js.solve(prob, js.KenCarp4(), rtol=1e-5, atol=1e-8, saveat=[T])}
    sols = {k: fn() for k, fn in cases.items()}       # warm-up (compiles), and the errors
    best = {}
    if not a.no_kencarp:
        for k, fn in slow.items():      # seconds per solve: timed once, after a warm-up
            sols[k] = fn()
            t0 = time.perf_counter()
            fn()
            best[k] = time.perf_counter() - t0
    data = ref + 0.01
    loss = js.L2Loss(np.array([T]), data[None])
    grads = {
        "gradient, every state stored":
            lambda: js.gradient(prob, js.ETDRK4(), loss, wrt=("u0", "p"), dt=0.05),
        "gradient, 4 checkpoints":
            lambda: js.gradient(prob, js.ETDRK4(), loss, wrt=("u0", "p"), dt=0.05,
                                sensealg=js.DiscreteAdjoint(checkpoints=4)),
    }
    g_all = grads["gradient, every state stored"]()
    g_c = grads["gradient, 4 checkpoints"]()
    same = (np.array_equal(g_all[1]["u0"], g_c[1]["u0"])
            and np.array_equal(g_all[1]["p"], g_c[1]["p"]))
    # each case in a block after a pause, not interleaved: three thread pools share the
    # two cores (Numba's OpenMP kernels, the OpenBLAS of SciPy that ETDRK4's compiled
    # matrix products call, NumPy's OpenBLAS), and a pool's threads keep spinning for a
    # while after its last call, slowing whichever pool runs next
    for k, fn in {**cases, **grads}.items():
        time.sleep(0.5)
        best[k] = interleaved_best({k: fn}, a.repeat)[k]

    base = best["ETDRK4 dt=0.05"]
    print("\n| method | steps | max error at t=1 | time (ms) | / ETDRK4 dt=0.05 |")
    print("|---|---:|---:|---:|---:|")
    for k, s in sols.items():
        err = np.abs(s.u[-1] - ref).max()
        print(f"| {k} | {s.stats.naccept} | {err:.1e} | {1e3 * best[k]:.1f} | "
              f"{best[k] / base:.2f} |")
    print("\n| gradient (wrt u0 and p, ETDRK4 dt=0.05, 20 steps) | time (ms) | / forward |")
    print("|---|---:|---:|")
    for k in grads:
        print(f"| {k} | {1e3 * best[k]:.1f} | {best[k] / base:.2f} |")
    print(f"\ncheckpointed gradient equal to the stored one bit for bit: {same}")
    print(f"load after: {loadavg()}")


if __name__ == "__main__":
    main()
