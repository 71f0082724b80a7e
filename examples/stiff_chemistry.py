"""Robertson's stiff chemical kinetics to t = 1e5 with Rodas5P, checked against the
conserved total concentration, and the gradient of the final concentrations with respect
to the three rate constants through the discrete adjoint of the Rosenbrock method.

    python examples/stiff_chemistry.py
"""
import numpy as np

import jitsolve as js


def robertson(du, u, p, t):
    du[0] = -p[0] * u[0] + p[1] * u[1] * u[2]
    du[1] = p[0] * u[0] - p[1] * u[1] * u[2] - p[2] * u[1] * u[1]
    du[2] = p[2] * u[1] * u[1]


p = np.array([0.04, 1e4, 3e7])
prob = js.ODEProblem(robertson, np.array([1.0, 0.0, 0.0]), (0.0, 1e5), p)
sol = js.solve(prob, js.Rodas5P(), rtol=1e-6, atol=1e-10)
print(sol.retcode, sol.stats, "final", sol.u[-1], "mass defect", abs(sol.u[-1].sum() - 1))
assert abs(sol.u[-1].sum() - 1) < 1e-8 and sol.stats.naccept < 300

t = np.array([1.0, 10.0, 100.0])
loss = js.L2Loss(t, np.zeros((3, 3)), weights=np.array([1.0, 1e4, 1.0]))
val, g = js.gradient(js.remake(prob, tspan=(0.0, 100.0)), js.Rodas5P(), loss, wrt="p",
                     rtol=1e-8, atol=1e-12)
print("loss", val, "d loss / d rates", g["p"])
