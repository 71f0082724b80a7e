"""Direct solves: SciPy sparse LU (SuperLU) or dense LU (LAPACK).

Cost: sparse LU of a 2D grid matrix is about ``O(n^1.5)`` time and ``O(n log n)`` memory
(nested-dissection ordering, COLAMD here); 3D grids fill in much more.  The true
residual is reported; a singular matrix returns ``Failure``.
"""
import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ...kernels.cpu import blas
from .common import FAILURE, SUCCESS, KrylovResult

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
    ``max(rtol ||b||, atol)`` or the backward error is at the rounding level of the
    dtype; ``Failure`` when the matrix is singular or the result is not finite."""
    dtype = np.result_type(A.dtype, b.dtype)
    try:
        solve = factorize(A.astype(dtype) if A.dtype != dtype else A)
        x = np.asarray(solve(b.astype(dtype)), dtype=dtype).ravel()
    except (RuntimeError, np.linalg.LinAlgError, ValueError):
        x = np.full(b.size, np.nan, dtype=dtype)
    r = b - A @ x
    resnorm = blas.nrm2(np.ascontiguousarray(r))
    tol = max(rtol * blas.nrm2(b), atol)
    # a backward-stable factorisation is accepted at its own precision: the normwise
    # backward error ||r|| / (||A|| ||x|| + ||b||) is at the rounding level
    anorm = abs(A).sum(axis=1).max() if A.shape[0] else 0.0
    scale = float(anorm) * float(np.abs(x).max(initial=0.0)) * np.sqrt(b.size) + blas.nrm2(b)
    eps = np.finfo(dtype).eps
    ok = bool(np.isfinite(resnorm) and (resnorm <= tol or resnorm <= 1e3 * eps * scale))
    return KrylovResult(x, SUCCESS if ok else FAILURE, 1, resnorm,
                        np.array([blas.nrm2(b), resnorm]))
