"""Direct solves: SciPy sparse LU (SuperLU) or dense LU (LAPACK).

Cost: sparse LU of a 2D grid matrix is about ``O(n^1.5)`` time and ``O(n log n)`` memory
(nested-dissection ordering, COLAMD here); 3D grids fill in much more.  Success is
judged on the true residual, as for the Krylov solvers; a singular matrix (or a system
the factorisation cannot solve to ``rtol``) returns ``Failure`` with its ``x``.
"""
import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ...kernels.cpu import blas
from .common import FAILURE, SUCCESS, KrylovResult, target

__all__ = ["direct_solve", "factorize"]


def factorize(A):
    """A solver ``rhs -> x`` for ``A`` (scipy.sparse or ndarray); raises on a singular matrix."""
    if sp.issparse(A):
        lu = spla.splu(sp.csc_matrix(A))
        return lu.solve
    lu = sla.lu_factor(np.asarray(A), check_finite=False)
    if np.any(np.diag(lu[0]) == 0):
        raise np.linalg.LinAlgError("singular matrix")
    return lambda rhs: sla.lu_solve(lu, rhs, check_finite=False)


def direct_solve(A, b, *, rtol=1e-8, atol=0.0):
    """Solve ``A x = b`` directly.  ``Success`` when the true residual meets
    ``max(rtol ||b||, atol)`` (as for the Krylov solvers), else ``Failure``: a singular
    or inconsistent system, a non-finite result, or a tolerance below what the
    factorisation reaches in this dtype.  ``x`` is kept (NaN where the factorisation
    itself failed)."""
    dtype = np.result_type(A.dtype, b.dtype)
    try:
        solve = factorize(A.astype(dtype) if A.dtype != dtype else A)
        x = np.asarray(solve(b.astype(dtype)), dtype=dtype).ravel()
    except (RuntimeError, np.linalg.LinAlgError, ValueError):
        x = np.full(b.size, np.nan, dtype=dtype)
    resnorm = blas.nrm2(np.ascontiguousarray(b - A @ x))
    tol, bnorm = target(b, rtol, atol)
    ok = bool(np.isfinite(resnorm) and resnorm <= tol)
    return KrylovResult(x, SUCCESS if ok else FAILURE, 1, resnorm, np.array([bnorm, resnorm]))
