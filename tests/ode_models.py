"""Shared by the ODE tests: the Lotka-Volterra right-hand side in the in-place form
``f(du, u, p, t)`` (prey ``u[0]``, predators ``u[1]``; ``p = (alpha, beta, gamma,
delta)``), one Python function so that a test run compiles it once."""


def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]
