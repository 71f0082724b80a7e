"""Per-trajectory pathwise gradients of an SDE ensemble: one compiled kernel against one
compiled forward and reverse sweep per trajectory.

    python perf/sde_ensemble_gradient.py [--paths 256] [--repeat 7] [--methods em,heun,...]

A stochastic predator-prey model (2 states, multiplicative diagonal noise; additive noise
for SRA1), ``dt = 1/256`` on [0, 1] (adaptive SRIW1: rtol = atol = 1e-3), ``--paths``
trajectories (one initial state each, the same ``p``), an ``L2Loss`` with each path's
own data at 8 times; ``js.gradient(ens, alg, loss, wrt=("p", "u0"), seed=3)`` in the
kernel (``checkpoints="all"``, the default) and through the per-trajectory loop
(``DiscreteAdjoint(checkpoints=100000)``: every state kept as well, so the same
arithmetic; the rows are checked bit for bit), beside the ensemble's forward solve.
Methods: EM, EulerHeun (Stratonovich), Milstein (with ``ggprime``), SRA1, SRIW1 (fixed
steps) and SRIW1 adaptive.  Best of ``--repeat``, interleaved.
"""
import argparse
import os

import numpy as np

import jitsolve as js
from heat_nonlinear import interleaved_best   # perf/, the script's directory


def drift(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[1] * u[0] * u[1]


def noise(gu, u, p, t):
    gu[0] = p[3] * u[0]
    gu[1] = p[3] * u[1]


def noise_ggp(out, u, p, t):      # Milstein term of ``noise``: g_i dg_i/du_i
    out[0] = p[3] * p[3] * u[0]
    out[1] = p[3] * p[3] * u[1]


def additive(gu, u, p, t):
    gu[0] = p[3]
    gu[1] = 0.5 * p[3]


FIXED = dict(dt=1 / 256, seed=3)
METHODS = {
    "em": (js.EM, {}, FIXED),
    "heun": (js.EulerHeun, dict(interpretation="stratonovich"), FIXED),
    "milstein": (js.Milstein, dict(ggprime=noise_ggp), FIXED),
    "sra1": (js.SRA1, dict(g=additive), dict(FIXED, adaptive=False)),
    "sriw1": (js.SRIW1, {}, dict(FIXED, adaptive=False)),
    "sriw1-adaptive": (js.SRIW1, {}, dict(dt=1 / 64, rtol=1e-3, atol=1e-3, seed=3)),
}


def measure(name, N, repeat):
    """Best times (s) of the kernel, the loop and the forward solve for one method."""
    alg_cls, changes, kw = METHODS[name]
    alg = alg_cls()
    P = np.array([0.8, 0.6, 0.5, 0.3])
    rng = np.random.default_rng(0)
    prob = js.remake(js.SDEProblem(drift, noise, np.array([1.0, 0.5]), (0.0, 1.0), P), **changes)
    ens = js.EnsembleProblem(prob, u0s=0.5 + rng.random((N, 2)))
    t = np.linspace(0.125, 1.0, 8)
    loss = js.L2Loss(t, js.solve(ens, alg, saveat=t, **kw).u * 1.01)
    runs = {
        "kernel": lambda: js.gradient(ens, alg, loss, wrt=("p", "u0"), **kw),
        "loop": lambda: js.gradient(ens, alg, loss, wrt=("p", "u0"),
                                    sensealg=js.DiscreteAdjoint(checkpoints=100000), **kw),
        "solve": lambda: js.solve(ens, alg, saveat=t, **kw),
    }
    (v1, g1), (v2, g2) = runs["kernel"](), runs["loop"]()
    same = all(np.array_equal(g1[k], g2[k]) for k in g1)
    assert same and abs(v1 - v2) <= 1e-13 * abs(v2), name
    return interleaved_best(runs, repeat), same


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--methods", default=",".join(METHODS))
    a = ap.parse_args(argv)
    N = a.paths
    rows = []
    for name in a.methods.split(","):
        best, same = measure(name, N, a.repeat)
        rows.append(f"| {name} | {best['kernel'] * 1e3:.2f} | {best['kernel'] / N * 1e6:.1f} | "
                    f"{best['loop'] * 1e3:.1f} | {best['loop'] / N * 1e6:.0f} | "
                    f"{best['loop'] / best['kernel']:.1f} | {same} | "
                    f"{best['solve'] * 1e3:.2f} |")
    print(f"{N} paths, 256 steps (adaptive: its own); best of {a.repeat}; threads "
          f"{os.cpu_count()}; 1-minute load {os.getloadavg()[0]:.2f}")
    print("| method | gradient: kernel (ms) | per path (us) | loop (ms) | per path (us) "
          "| loop / kernel | same bits | ensemble solve (ms) |")
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
