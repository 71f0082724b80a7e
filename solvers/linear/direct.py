"""Direct solves: SciPy sparse LU (SuperLU) or dense LU (LAPACK).

Cost: sparse LU of a 2D grid matrix is about ``O(n^1.5)`` time and ``O(n log n)`` memory;
3D grids fill in much more.  Ordering: minimum degree on ``A + A^T`` for a matrix whose
sparsity pattern is symmetric (every discretised PDE operator here), COLAMD otherwise
(SciPy's default).  Measured on grid operators (2026-12-05), against COLAMD: 1.8-2.2x
less fill and 1.2-2.6x faster factorisations (2-D Laplacian 500^2 1.61 -> 1.14 s,
Diffusion 400^2 0.80 -> 0.62 s, advection-diffusion 300^2 0.43 -> 0.34 s, 3-D
Laplacian 40^3 24.6 -> 9.4 s), the same residuals.  Success is
judged on the true residual, as for the Krylov solvers; a singular matrix (or a system
the factorisation cannot solve to ``rtol``) returns ``Failure`` with its ``x``.
"""
import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ...kernels.cpu import blas
from .common import FAILURE, SUCCESS, KrylovResult, target

__all__ = ["direct_solve", "factorize", "structurally_symmetric"]


def structurally_symmetric(A):
    """Whether the sparse matrix ``A`` has a symmetric sparsity pattern."""
    P = sp.csr_matrix(A, copy=True)
    P.eliminate_zeros()
    P.data = np.ones_like(P.data, dtype=np.int8)
    return (P != P.T).nnz == 0


def factorize(A):
    """A solver ``rhs -> x`` for ``A`` (scipy.sparse or ndarray); raises on a singular
    matrix.  Sparse: SuperLU, ordered by minimum degree on ``A + A^T`` when the pattern
    is symmetric, by COLAMD otherwise (see the module docstring).  A singular matrix
    that meets an exactly zero pivot in the first order is factorised again in COLAMD's
    (whose last pivot of, e.g., a periodic Laplacian is rounding noise: a consistent
    right-hand side is then still solved, as before the ordering changed)."""
    if sp.issparse(A):
        A = sp.csc_matrix(A)
        if structurally_symmetric(A):
            try:
                return spla.splu(A, permc_spec="MMD_AT_PLUS_A").solve
            except RuntimeError:
                pass
        return spla.splu(A, permc_spec="COLAMD").solve
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
