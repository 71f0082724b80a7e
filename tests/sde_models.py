"""Shared by the SDE tests: geometric Brownian motion (multiplicative noise) and the
drift of an Ornstein-Uhlenbeck process, in the in-place form ``f(du, u, p, t)``."""


def gbm_f(du, u, p, t):
    du[0] = p[0] * u[0]


def gbm_g(gu, u, p, t):
    gu[0] = p[1] * u[0]


def ou_f(du, u, p, t):
    du[0] = -p[0] * u[0]
