"""Shared by the ensemble tests: solve an ensemble through one of the explicit driver's
paths, and compare float arrays bit for bit.

``mode``: ``"general"`` (one trajectory per thread, the general loop), ``"percall"``
(lockstep, the user's ``f`` called per lane) or ``"batched"`` (lockstep, one batch call
per stage); the thresholds are patched so that even tiny ensembles take the path.
"""
import numpy as np

import jitsolve as js
from jitsolve.solvers.ode import explicit as E


def solve_mode(monkeypatch, mode, eprob, alg, N, **kw):
    """``js.solve(eprob, alg, trajectories=N, **kw)`` forced through path ``mode``."""
    with monkeypatch.context() as m:
        if mode == "general":
            m.setattr(E, "LOCKSTEP_MIN", 1 << 62)
        else:
            m.setattr(E, "LOCKSTEP_MIN", 1)
            m.setattr(E, "BATCH_MIN_TRAJ", 1 if mode == "batched" else 1 << 62)
        return js.solve(eprob, alg, trajectories=N, **kw)


def bits(a):
    """The float64 bit patterns of ``a`` (NaNs compare equal when their bits do)."""
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64)
