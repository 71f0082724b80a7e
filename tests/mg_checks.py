"""Checks shared by the multigrid tests."""
import numpy as np
import pytest


def assert_symmetric_positive(M, x, y, rel=1e-11, positive=True):
    """The preconditioner ``M(r, out)`` is symmetric on ``x, y`` (``<M x, y> = <x, M y>`` to
    ``rel``) and, with ``positive``, positive on both (``<x, M x> > 0``)."""
    Mx, My = M(x, np.empty_like(x)), M(y, np.empty_like(y))
    assert np.dot(Mx, y) == pytest.approx(np.dot(x, My), rel=rel)
    if positive:
        assert np.dot(x, Mx) > 0 and np.dot(y, My) > 0


def energy_contraction(A, M, iters=12, seed=0):
    """The stand-alone cycle ``u <- u + M(b - A u)`` (here ``b = 0``, so ``u`` is the
    error) on a random start: the last step's energy-norm factor ``||u_k||_A /
    ||u_{k-1}||_A`` after ``iters`` steps, the asymptotic contraction of ``I - M A``."""
    mv = A.as_linear_operator()
    n = A.grid.size
    u = np.random.default_rng(seed).standard_normal(n)
    e = []
    for _ in range(iters):
        au = mv @ u
        e.append(np.sqrt(u @ au))
        u = u + M(-au, np.empty(n))
    return e[-1] / e[-2]
