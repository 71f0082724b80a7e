"""Fused Krylov kernels (CPU, Numba): the CG update and ``p^T A p`` for real vectors.

Same reproducible reduction order as :mod:`jitsolve.kernels.cpu.blas` (fixed blocks of
``BLOCK`` entries summed in order, so results do not depend on the thread count), but
indexed with unsigned integers so that Numba drops its negative-index wraparound checks
and LLVM vectorises the block loops.  Real float32/float64 only; complex vectors use
the ``blas`` kernels.
"""
import numpy as np
from numba import njit, prange

from .blas import BLOCK

__all__ = ["cg_update_real", "dot_real"]


@njit(parallel=True, cache=True)
def cg_update_real(alpha, p, ap, x, r):
    """``x += alpha p``, ``r -= alpha Ap`` and return ``r^T r`` (float64), in one pass."""
    n = x.size
    nb = (n + BLOCK - 1) // BLOCK
    part = np.zeros(nb)
    for b in prange(nb):
        lo = np.uint64(b * BLOCK)
        hi = np.uint64(min(n, (b + 1) * BLOCK))
        s0 = 0.0
        s1 = 0.0
        i = lo
        while i + np.uint64(1) < hi:
            x[i] += alpha * p[i]
            r0 = r[i] - alpha * ap[i]
            r[i] = r0
            i1 = i + np.uint64(1)
            x[i1] += alpha * p[i1]
            r1 = r[i1] - alpha * ap[i1]
            r[i1] = r1
            s0 += np.float64(r0) * np.float64(r0)
            s1 += np.float64(r1) * np.float64(r1)
            i += np.uint64(2)
        if i < hi:
            x[i] += alpha * p[i]
            r0 = r[i] - alpha * ap[i]
            r[i] = r0
            s0 += np.float64(r0) * np.float64(r0)
        part[b] = s0 + s1
    total = 0.0
    for b in range(nb):
        total += part[b]
    return total


@njit(parallel=True, cache=True)
def dot_real(x, y):
    """``x^T y`` in float64 for real vectors, reproducibly blocked."""
    n = x.size
    nb = (n + BLOCK - 1) // BLOCK
    part = np.zeros(nb)
    for b in prange(nb):
        lo = np.uint64(b * BLOCK)
        hi = np.uint64(min(n, (b + 1) * BLOCK))
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        i = lo
        while i + np.uint64(3) < hi:
            s0 += np.float64(x[i]) * np.float64(y[i])
            s1 += np.float64(x[i + np.uint64(1)]) * np.float64(y[i + np.uint64(1)])
            s2 += np.float64(x[i + np.uint64(2)]) * np.float64(y[i + np.uint64(2)])
            s3 += np.float64(x[i + np.uint64(3)]) * np.float64(y[i + np.uint64(3)])
            i += np.uint64(4)
        while i < hi:
            s0 += np.float64(x[i]) * np.float64(y[i])
            i += np.uint64(1)
        part[b] = (s0 + s1) + (s2 + s3)
    total = 0.0
    for b in range(nb):
        total += part[b]
    return total
