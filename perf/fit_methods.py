"""``js.fit`` with L-BFGS-B (adjoint gradients) against ``method="least_squares"``
(Gauss-Newton trust region, Jacobian from forward sensitivities) on the same data, in
one run: solves needed, wall time, the optimum reached.

    python perf/fit_methods.py [--repeat 5]

Lotka-Volterra (4 parameters, 101 noisy observations of both species on [0, 10], Tsit5
at rtol = atol = 1e-8), from 1.2x the truth; the same with the initial state fitted too
(6 inputs); a stiff case: Robertson's three rate constants (Rodas5P, log-spaced
observations to t = 1e4).  Best wall time of ``--repeat`` fits each (after one untimed
fit: compilation).
"""
import argparse
import os
import time

import numpy as np

import jitsolve as js


def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


def robertson(du, u, p, t):
    du[0] = -p[0] * u[0] + p[1] * u[1] * u[2]
    du[1] = p[0] * u[0] - p[1] * u[1] * u[2] - p[2] * u[1] * u[1]
    du[2] = p[2] * u[1] * u[1]


def cases():
    P = np.array([1.5, 1.0, 3.0, 1.0])
    lv = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 10.0), P)
    t = np.linspace(0.0, 10.0, 101)
    rng = np.random.default_rng(0)
    d = js.solve(lv, js.Vern7(), saveat=t, rtol=1e-11, atol=1e-11).u
    d = d + 0.02 * rng.standard_normal(d.shape)
    kw = dict(rtol=1e-8, atol=1e-8, bounds=(0.1, 10.0))
    yield ("Lotka-Volterra, p (4)", lv, js.Tsit5(), js.L2Loss(t, d), 1.2 * P, "p", kw, P)
    yield ("Lotka-Volterra, p and u0 (6)", lv, js.Tsit5(), js.L2Loss(t, d),
           (1.2 * P, np.array([0.9, 1.1])), ("p", "u0"), kw, np.concatenate([P, [1.0, 1.0]]))
    K = np.array([0.04, 1e4, 3e7])
    rb = js.ODEProblem(robertson, np.array([1.0, 0.0, 0.0]), (0.0, 1e4), K)
    tr = np.logspace(-3, 4, 30)
    kwr = dict(rtol=1e-8, atol=1e-12)
    dr = js.solve(rb, js.Rodas5P(), saveat=tr, **kwr).u
    w = 1.0 / np.maximum(np.abs(dr), 1e-8) ** 2          # relative errors
    dr = dr * (1 + 0.01 * rng.standard_normal(dr.shape))
    yield ("Robertson, 3 rate constants (Rodas5P)", rb, js.Rodas5P(),
           js.L2Loss(tr, dr, weights=w), K * np.array([1.3, 0.8, 1.2]), "p",
           dict(kwr, bounds=(K * 0.1, K * 10)), K)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    print(f"1-minute load {os.getloadavg()[0]:.2f}\n")
    print("| problem | method | solves (nfev) | iterations | best wall (s) | loss | "
          "max rel. error to the truth |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, prob, alg, loss, p0, wrt, kw, truth in cases():
        for method in ("L-BFGS-B", "least_squares"):
            def run():
                return js.fit(prob, alg, loss, p0, wrt=wrt, method=method, progress=False,
                              maxiter=500, **kw)
            res = run()
            best = np.inf
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                res = run()
                best = min(best, time.perf_counter() - t0)
            x = (np.ravel(res.p) if isinstance(wrt, str) else
                 np.concatenate([np.ravel(b) for b in res.p]))
            err = float(np.max(np.abs(x / truth - 1)))
            print(f"| {name} | {method} | {res.nfev} | {res.nit} | {best:.3f} | "
                  f"{res.loss:.6g} | {err:.1e} |")


if __name__ == "__main__":
    main()
