"""The initial temperature of a 2-D heat equation from one late, noisy snapshot
(what ``jitsolve demo heat-inverse`` runs), with 16 binomial checkpoints so the
adjoint's memory stays at 16 states whatever the number of steps.

    python examples/heat_initial_condition.py
"""
import os

import numpy as np

import jitsolve as js
from jitsolve.demos import heat_inverse_truth

small = bool(os.environ.get("JITSOLVE_EXAMPLES_SMALL"))
g = js.Grid((24, 24) if small else (48, 48), bc=js.Dirichlet(0.0))
truth = heat_inverse_truth(g)
T, steps = 0.004, (40 if small else 200)
dt = T / steps
prob = js.ODEProblem(js.Laplacian(g), truth, (0.0, T))
uT = js.solve(prob, js.RK4(), dt=dt, saveat=[T]).u[0]
data = uT + 0.01 * np.abs(uT).max() * np.random.default_rng(1).standard_normal(g.shape)
loss = js.L2Loss([T], data[None], weights=1.0 / g.size)

res = js.fit(js.remake(prob, u0=np.zeros(g.shape)), js.RK4(), loss, np.zeros(g.shape), wrt="u0",
             regularizer=js.Tikhonov(1e-6), maxiter=10 if small else 80, dt=dt,
             sensealg=js.DiscreteAdjoint(checkpoints=16))
err = np.linalg.norm(res.p - truth) / np.linalg.norm(truth)
print(res, "relative error", err)
assert err < 0.15                     # from 1.0 (the zero start); 0.06 at the full size
