"""Jacobi (diagonal) preconditioning: ``z = D^{-1} r``.  Cost: one pass (2 reads, 1 write)."""
import numpy as np
from numba import njit, prange

__all__ = ["jacobi"]


@njit(parallel=True, cache=True)
def _scale(inv, r, out):
    for i in prange(r.size):
        out[i] = inv[i] * r[i]


def jacobi(diag, dtype):
    """The preconditioner ``(r, out=None) -> out = r / diag``; raises ValueError on a zero
    diagonal."""
    d = np.asarray(diag).ravel()
    if not np.all(np.isfinite(d)) or np.any(d == 0):
        raise ValueError("the diagonal has zero or non-finite entries")
    inv = np.ascontiguousarray(1.0 / d, dtype=np.result_type(dtype, d.dtype))
    if np.dtype(dtype).kind == "f":
        inv = inv.real.astype(dtype) if np.iscomplexobj(inv) else inv.astype(dtype)

    def M(r, out=None):
        if out is None:
            out = np.empty(np.shape(r), np.result_type(inv.dtype, np.asarray(r).dtype))
        _scale(inv, r, out)
        return out
    M.inverse_diagonal = inv
    return M
