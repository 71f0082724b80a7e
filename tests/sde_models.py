"""Shared by the SDE tests (one definition, one compile of each per test process):
geometric Brownian motion (multiplicative noise), the drift of an Ornstein-Uhlenbeck
process, and a predator-prey drift with parameters ``p[0..2]`` and noise terms scaled by
``p[3]`` (the adjoint tests), in the in-place form ``f(du, u, p, t)``."""
import numpy as np


def gbm_f(du, u, p, t):
    du[0] = p[0] * u[0]


def gbm_g(gu, u, p, t):
    gu[0] = p[1] * u[0]


def ou_f(du, u, p, t):
    du[0] = -p[0] * u[0]


def nl_f(du, u, p, t):
    du[0] = p[0] * u[0] - p[1] * u[0] * u[1]
    du[1] = -p[2] * u[1] + p[1] * u[0] * u[1]


def nl_g(gu, u, p, t):            # diagonal noise, nonlinear and coupled in u
    gu[0] = p[3] * np.sin(u[0]) * u[1]
    gu[1] = p[3] * u[1] / (1.0 + u[0] * u[0])


def sc_g(gu, u, p, t):            # scalar noise (one Brownian motion)
    gu[0] = p[3] * u[0] * u[1]
    gu[1] = p[3] * np.cos(u[0]) + 0.1 * t


def add_g(gu, u, p, t):           # additive noise (SRA1's class)
    gu[0] = p[3] * (1.0 + t)
    gu[1] = 0.5 * p[3]


def nl_ggp(out, u, p, t):         # the Milstein term of nl_g: g_i dg_i/du_i
    g0 = p[3] * np.sin(u[0]) * u[1]
    g1 = p[3] * u[1] / (1.0 + u[0] * u[0])
    out[0] = g0 * p[3] * np.cos(u[0]) * u[1]
    out[1] = g1 * p[3] / (1.0 + u[0] * u[0])


def sc_ggp(out, u, p, t):         # the Milstein term of sc_g: (dg/du) g
    g0 = p[3] * u[0] * u[1]
    g1 = p[3] * np.cos(u[0]) + 0.1 * t
    out[0] = p[3] * u[1] * g0 + p[3] * u[0] * g1
    out[1] = -p[3] * np.sin(u[0]) * g0
