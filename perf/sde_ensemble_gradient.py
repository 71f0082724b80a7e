"""Per-trajectory pathwise gradients of an SDE ensemble: one compiled kernel against one
compiled forward and reverse sweep per trajectory.

    python perf/sde_ensemble_gradient.py [--paths 256] [--repeat 7]

A stochastic predator-prey model (2 states, multiplicative diagonal noise), ``js.EM()``
with ``dt = 1/256`` on [0, 1], ``--paths`` trajectories (one initial state each, the
same ``p``), an ``L2Loss`` with each path's own data at 8 times; ``js.gradient(ens,
js.EM(), loss, wrt=("p", "u0"), seed=3)`` in the kernel (``checkpoints="all"``, the
default) and through the per-trajectory loop (``DiscreteAdjoint(checkpoints=256)``: every
state kept as well, so the same arithmetic; the rows are checked bit for bit), beside
the ensemble's forward solve.  Best of ``--repeat``, interleaved.
"""
import argparse
import os
import time

import numpy as np

import jitsolve as js


def drift(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[1] * u[0] * u[1]


def noise(gu, u, p, t):
    gu[0] = p[3] * u[0]
    gu[1] = p[3] * u[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args(argv)
    N = a.paths
    P = np.array([0.8, 0.6, 0.5, 0.3])
    rng = np.random.default_rng(0)
    prob = js.SDEProblem(drift, noise, np.array([1.0, 0.5]), (0.0, 1.0), P)
    ens = js.EnsembleProblem(prob, u0s=0.5 + rng.random((N, 2)))
    t = np.linspace(0.125, 1.0, 8)
    kw = dict(dt=1 / 256, seed=3)
    loss = js.L2Loss(t, js.solve(ens, js.EM(), saveat=t, **kw).u * 1.01)
    runs = {
        "kernel": lambda: js.gradient(ens, js.EM(), loss, wrt=("p", "u0"), **kw),
        "loop": lambda: js.gradient(ens, js.EM(), loss, wrt=("p", "u0"),
                                    sensealg=js.DiscreteAdjoint(checkpoints=256), **kw),
        "solve": lambda: js.solve(ens, js.EM(), saveat=t, **kw),
    }
    (v1, g1), (v2, g2) = runs["kernel"](), runs["loop"]()
    same = all(np.array_equal(g1[k], g2[k]) for k in g1)
    assert same and abs(v1 - v2) <= 1e-13 * abs(v2)
    best = {k: np.inf for k in runs}
    for _ in range(a.repeat):
        for k, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    print(f"{N} paths, EM, 256 steps; best of {a.repeat}; threads {os.cpu_count()}; "
          f"1-minute load {os.getloadavg()[0]:.2f}")
    print("| gradient: kernel (ms) | per path (us) | loop (ms) | per path (us) | loop / kernel "
          "| same bits | ensemble solve (ms) |")
    print("|---:|---:|---:|---:|---:|---|---:|")
    print(f"| {best['kernel'] * 1e3:.2f} | {best['kernel'] / N * 1e6:.1f} | "
          f"{best['loop'] * 1e3:.1f} | {best['loop'] / N * 1e6:.0f} | "
          f"{best['loop'] / best['kernel']:.1f} | {same} | {best['solve'] * 1e3:.2f} |")


if __name__ == "__main__":
    main()
