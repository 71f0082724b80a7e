"""Geometric Brownian motion: 20,000 reproducible paths in one compiled kernel, the
sample moments against the closed form, and the pathwise gradient of a loss of one
fixed-seed path with respect to the drift and volatility (discrete adjoint of EM, the
noise regenerated, never stored).

    python examples/sde_ensemble.py
"""
import os

import numpy as np

import jitsolve as js


def drift(du, u, p, t):
    du[0] = p[0] * u[0]


def vol(gu, u, p, t):
    gu[0] = p[1] * u[0]


N = 2_000 if os.environ.get("JITSOLVE_EXAMPLES_SMALL") else 20_000
p = np.array([0.5, 0.3])
prob = js.SDEProblem(drift, vol, np.array([1.0]), (0.0, 1.0), p)
ens = js.EnsembleProblem(prob, u0s=np.ones((N, 1)))
es = js.solve(ens, js.EM(), dt=1 / 256, saveat=[0.0, 1.0], seed=42)
m, v = es.u[:, -1, 0].mean(), es.u[:, -1, 0].var()
print(f"{N} paths: mean {m:.4f} (exact {np.exp(0.5):.4f}), var {v:.4f} "
      f"(exact {np.exp(1.0) * (np.exp(0.09) - 1):.4f})")
assert abs(m - np.exp(0.5)) < 5 * np.sqrt(v / N)

loss = js.L2Loss([1.0], np.array([[2.0]]))
val, g = js.gradient(prob, js.EM(), loss, wrt=("p", "u0"), dt=1 / 256, seed=7)
print("loss", val, "gradient wrt (mu, sigma)", g["p"], "wrt u0", g["u0"])
