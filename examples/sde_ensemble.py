"""Geometric Brownian motion: 20,000 reproducible paths in one compiled kernel, the
sample moments against the closed form, the pathwise gradient of a loss of one
fixed-seed path with respect to the drift and volatility (discrete adjoint of EM, the
noise regenerated, never stored), and a calibration of both parameters from an observed
path whose noise is known by its seed (a twin experiment with common random numbers;
`jitsolve demo sde-calibration` calibrates from ensemble statistics instead).

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

# calibration: observe one path (true parameters, seed 11) at 64 times, start from a wrong
# guess and fit with the same seed; L-BFGS-B, each gradient one EM solve + its adjoint
t_obs = np.linspace(0.0, 1.0, 65)[1:]
observed = js.solve(prob, js.EM(), dt=1 / 256, saveat=t_obs, seed=11).u
fit = js.fit(prob, js.EM(), js.L2Loss(t_obs, observed), np.array([0.2, 0.6]), wrt="p",
             dt=1 / 256, seed=11, bounds=(1e-3, 5.0), progress=False)
print("calibrated (mu, sigma):", fit.p, "true:", p, "iterations:", fit.nit)
assert np.allclose(fit.p, p, rtol=1e-4)
