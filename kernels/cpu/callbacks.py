"""Placeholder callback functions for compiled loops run without callbacks.

Callbacks cross into compiled loops as first-class functions of two fixed signatures:
``condition(u, t, p) -> float64`` and ``affect(u, t, p)`` (modifies ``u`` in place).
"""
from numba import cfunc, types

__all__ = ["no_condition", "no_affect", "CONDITION_SIG", "AFFECT_SIG"]

CONDITION_SIG = types.float64(types.float64[::1], types.float64, types.float64[::1])
AFFECT_SIG = types.void(types.float64[::1], types.float64, types.float64[::1])


@cfunc(CONDITION_SIG, cache=True)
def no_condition(u, t, p):
    """Never fires (constant 1)."""
    return 1.0


@cfunc(AFFECT_SIG, cache=True)
def no_affect(u, t, p):
    """Leaves the state unchanged."""
    return
