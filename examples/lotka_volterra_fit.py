"""Recover the four Lotka-Volterra parameters from noisy observations.

    python examples/lotka_volterra_fit.py

Tsit5 forward solves; exact gradients from the compiled discrete adjoint; L-BFGS-B.
"""
import numpy as np

import jitsolve as js


def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


p_true = np.array([1.5, 1.0, 3.0, 1.0])
prob = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 10.0), p_true)
t = np.linspace(0.0, 10.0, 101)
clean = js.solve(prob, js.Vern7(), saveat=t, rtol=1e-10, atol=1e-10).u
data = clean + 0.02 * np.random.default_rng(0).standard_normal(clean.shape)

loss = js.L2Loss(t, data)
js.check_gradient(prob, js.Tsit5(), loss, wrt="p", rtol=1e-8, atol=1e-8)
res = js.fit(prob, js.Tsit5(), loss, p0=np.array([1.0, 1.5, 2.0, 1.5]), bounds=(0.1, 10.0),
             rtol=1e-8, atol=1e-8, progress=False)
print(res)
print("recovered", res.p, "true", p_true, "rel. error",
      np.linalg.norm(res.p - p_true) / np.linalg.norm(p_true))
