"""Preconditioners: callables ``M(r, out) -> out`` with ``out ~ A^{-1} r``."""
from .chebyshev import chebyshev, lanczos_bounds
from .jacobi import jacobi
from .multigrid import GeometricMultigrid

__all__ = ["jacobi", "chebyshev", "lanczos_bounds", "GeometricMultigrid", "make_amg"]


def make_amg(A, dtype, **kw):
    """pyamg smoothed aggregation / Ruge-Stuben preconditioner (pyamg imported on call)."""
    from .amg import amg as _amg
    return _amg(A, dtype, **kw)
