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
