"""One parameter vector from many experiments: ``js.fit`` of an ``EnsembleProblem``
against the same fit written as a sum of single-trajectory gradients.

    python perf/ensemble_fit.py [--experiments 64] [--repeat 5]

Lotka-Volterra, ``--experiments`` initial states, 20 noisy observations each (one
block of an ``L2Loss(t, data)`` with ``data`` of shape (N, 20, 2) per experiment),
``p`` shared by all of them.  Both fits run L-BFGS-B from the same start with the same
tolerances; the ensemble's objective is one ``js.gradient`` of the ensemble (all the
trajectories' forward solves and adjoints in one compiled kernel, a thread per
trajectory), the other's a Python loop of ``js.gradient`` per experiment summed, as a
user without ensembles would write it.  Checks that both reach the same parameters
(1e-8) and prints the best of ``--repeat`` interleaved fits, for Tsit5 and Rodas5P.
"""
import argparse
import os

import numpy as np
import scipy.optimize as so

import jitsolve as js
from heat_nonlinear import interleaved_best   # perf/, the script's directory


def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    N = a.experiments
    rng = np.random.default_rng(0)
    p_true = np.array([1.5, 1.0, 3.0, 1.0])
    prob = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 5.0), p_true)
    u0s = 0.5 + rng.random((N, 2))
    t = np.linspace(0.25, 5.0, 20)
    data = np.stack([js.solve(js.remake(prob, u0=u), js.Vern7(), saveat=t, rtol=1e-11,
                              atol=1e-11).u for u in u0s])
    data += 0.02 * rng.standard_normal(data.shape)
    loss = js.L2Loss(t, data)
    ens = js.EnsembleProblem(prob, u0s=u0s)
    singles = [(js.remake(prob, u0=u0s[i]), js.L2Loss(t, data[i])) for i in range(N)]
    p0 = p_true * 1.3
    kw = dict(rtol=1e-8, atol=1e-8)
    print(f"{N} experiments, 20 observations each; best of {a.repeat} interleaved fits; "
          f"threads {os.cpu_count()}; 1-minute load {os.getloadavg()[0]:.2f}")
    print("| method | fit, one ensemble gradient (s) | fit, loop of single gradients (s) "
          "| ratio | iterations | max rel. diff of p |")
    print("|---|---:|---:|---:|---:|---:|")
    for alg in (js.Tsit5(), js.Rodas5P()):
        def ensemble_fit():
            return js.fit(ens, alg, loss, p0, bounds=(0.1, 10), progress=False, **kw)

        def loop_fit():
            def fun(x):
                val, g = 0.0, np.zeros(4)
                for pr, li in singles:
                    v, gi = js.gradient(js.remake(pr, p=x), alg, li, wrt="p", **kw)
                    val += v
                    g += gi["p"]
                return val, g
            return so.minimize(fun, p0, jac=True, method="L-BFGS-B",
                               bounds=[(0.1, 10)] * 4, options=dict(maxiter=100, gtol=1e-8))

        r1, r2 = ensemble_fit(), loop_fit()             # compile / warm up, and check
        diff = float(np.abs(r1.p - r2.x).max() / np.abs(r2.x).max())
        assert diff < 1e-8, diff
        best = interleaved_best({0: ensemble_fit, 1: loop_fit}, a.repeat)
        print(f"| {type(alg).__name__} | {best[0]:.3f} | {best[1]:.3f} | "
              f"{best[1] / best[0]:.1f} | {r1.nit} | {diff:.1e} |")


if __name__ == "__main__":
    main()
