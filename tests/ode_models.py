"""Shared by the ODE tests: the Lotka-Volterra right-hand side in the in-place form
``f(du, u, p, t)`` (prey ``u[0]``, predators ``u[1]``; ``p = (alpha, beta, gamma,
delta)``), one Python function so that a test run compiles it once; its Jacobians
``lotka_jac`` (``df/du``) and ``lotka_paramjac`` (``df/dp``) for the tests of the user's
own derivatives."""
from numba import njit


def lotka(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[3] * u[0] * u[1]


@njit
def lotka_jac(J, u, p, t):
    J[0, 0] = p[0] - p[1] * u[1]
    J[0, 1] = -p[1] * u[0]
    J[1, 0] = p[3] * u[1]
    J[1, 1] = -p[2] + p[3] * u[0]


@njit
def lotka_paramjac(Jp, u, p, t):
    Jp[0, 0] = u[0]
    Jp[0, 1] = -u[0] * u[1]
    Jp[0, 2] = 0.0
    Jp[0, 3] = 0.0
    Jp[1, 0] = 0.0
    Jp[1, 1] = 0.0
    Jp[1, 2] = -u[1]
    Jp[1, 3] = u[0] * u[1]


def linear_mix(du, u, p, t):
    """``du = P u`` with ``P = p`` reshaped (n x n): a linear "nonlinear part" for the
    dot-product tests of the ETDRK4 adjoint."""
    n = u.size
    for i in range(n):
        acc = 0.0
        for j in range(n):
            acc += p[i * n + j] * u[j]
        du[i] = acc


def ball(du, u, p, t):
    """A falling ball: height ``u[0]``, velocity ``u[1]`` (the bouncing-ball tests; each
    test file has its own ``bounce`` with its coefficient of restitution)."""
    du[0] = u[1]
    du[1] = -9.81


def ground(u, t, p):
    """The ball's event condition: the height."""
    return u[0]
