"""A bouncing ball: a continuous callback locates each impact on the dense output and
the step is redone to land on it exactly; 1,000 balls with different restitution
coefficients then run as one ensemble (one trajectory per thread).

    python examples/bouncing_ball.py
"""
import numpy as np

import jitsolve as js


def fall(du, u, p, t):
    du[0] = u[1]
    du[1] = -9.81


def ground(u, t, p):
    return u[0]


def bounce(u, t, p):
    u[1] = -p[0] * u[1]


prob = js.ODEProblem(fall, np.array([10.0, 0.0]), (0.0, 10.0), p=np.array([0.9]))
sol = js.solve(prob, js.Tsit5(), callback=js.ContinuousCallback(ground, bounce))
print("impacts at", [round(float(t), 6) for t, _ in sol.events])

# (with e < 0.75 the bounces accumulate before t = 10, Zeno-style: the ball would come
#  to rest, which needs a DiscreteCallback that stops it; here every ball keeps bouncing)
ens = js.EnsembleProblem(prob, ps=np.linspace(0.8, 0.95, 1000)[:, None])
es = js.solve(ens, js.Tsit5(), saveat=np.linspace(0, 10, 11),
              callback=js.ContinuousCallback(ground, bounce))
assert es.u[:, :, 0].min() > -1e-9
print("height at t = 10 for e = 0.8, 0.875, 0.95:", es.u[[0, 500, 999], -1, 0])
