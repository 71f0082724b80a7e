"""Recover a conductivity profile from temperature snapshots of a transient, stiff heat
equation, integrated implicitly (inverse heat conduction in time).

    du/dt = d/dx (kappa(x) du/dx)  on (0, 1),  u = 0 at both ends,  t in [0, 0.05]

Observations: the whole profile at 5 times with 1 % Gaussian noise.  Unknown: kappa on
every cell.  The diffusion is stiff on this grid (an explicit step would need dt below
h^2 / (2 max kappa)), so the solve is Rodas5P with adaptive steps; ``js.fit`` minimises
the misfit plus a smoothness penalty with L-BFGS-B (bounds keep kappa > 0), the gradient
wrt kappa coming from the Rosenbrock discrete adjoint: the exact derivative of the
computed solution (accepted steps held fixed), through the stages and the Jacobian
``A(kappa)`` of every step.

Run:  python examples/transient_conductivity.py [cells] [noise]
"""
import os
import sys
import time

import numpy as np

import jitsolve as js


def smoothness(alpha):
    """``0.5 alpha sum (kappa_{i+1} - kappa_i)^2`` and its gradient (a callable regularizer
    of ``js.fit``: ``x -> (value, gradient)``)."""
    def reg(x):
        d = np.diff(x)
        g = np.zeros_like(x)
        g[:-1] -= alpha * d
        g[1:] += alpha * d
        return 0.5 * alpha * float(d @ d), g
    return reg


def main(cells=32, noise=0.01, maxiter=100):
    grid = js.Grid((cells,), bc=js.Dirichlet(0.0))
    x = (np.arange(cells) + 0.5) / cells
    truth = 1.0 + 0.8 * np.exp(-((x - 0.35) / 0.12) ** 2) - 0.4 * np.exp(-((x - 0.75) / 0.08) ** 2)
    u0 = np.sin(np.pi * x) + 0.5 * np.sin(3 * np.pi * x) ** 2
    t_obs = np.linspace(0.01, 0.05, 5)
    kw = dict(rtol=1e-6, atol=1e-8)
    prob = js.ODEProblem(js.Diffusion(grid, truth), u0, (0.0, 0.05))
    clean = js.solve(prob, js.Rodas5P(), saveat=t_obs, **kw).u
    rng = np.random.default_rng(0)
    data = clean * (1 + noise * rng.standard_normal(clean.shape))
    loss = js.L2Loss(t_obs, data)
    k0 = np.full(cells, 1.0)
    t0 = time.perf_counter()
    res = js.fit(js.ODEProblem(js.Diffusion(grid, k0), u0, (0.0, 0.05)), js.Rodas5P(), loss,
                 k0, wrt="kappa", bounds=(0.05, 10.0), regularizer=smoothness(1e-2),
                 maxiter=maxiter, progress=False, **kw)
    wall = time.perf_counter() - t0
    err0 = np.linalg.norm(k0 - truth) / np.linalg.norm(truth)
    err = np.linalg.norm(res.p - truth) / np.linalg.norm(truth)
    print(f"{cells} cells, noise {noise:.1%}: {res.nit} L-BFGS-B iterations, {res.nfev} "
          f"gradients, {wall:.2f} s")
    print(f"relative error of kappa: initial {err0:.3f} -> recovered {err:.3f}")
    return err0, err


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:3]]
    small = os.environ.get("JITSOLVE_EXAMPLES_SMALL") == "1"     # the test's quick run
    err0, err = main(int(args[0]) if args else (12 if small else 32),
                     args[1] if len(args) > 1 else 0.01, maxiter=4 if small else 100)
    assert err < (0.8 if small else 0.5) * err0      # 0.29 -> 0.07 at the default size
