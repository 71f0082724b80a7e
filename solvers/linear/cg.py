"""Conjugate gradients, plain and preconditioned (Hermitian positive definite systems).

Method: Hestenes & Stiefel (1952); preconditioned form as in Saad, *Iterative Methods
for Sparse Linear Systems*, 2nd ed. (2003), Alg. 9.1.  One iteration costs one matvec,
one preconditioner application, and (unpreconditioned) 13 vector passes: ``p^H A p``
(2 reads), the fused update ``x += a p, r -= a Ap, r^H r`` (4 reads, 2 writes,
:func:`jitsolve.kernels.cpu.blas.cg_update`) and ``p = r + b p`` (2 reads, 1 write),
plus the matvec's read and write.

Safety: ``p^H A p <= 0`` (or not finite) or ``r^H z <= 0`` means the matrix or the
preconditioner is not positive definite; the solve stops with ``Breakdown`` and the last
iterate.  The recursively updated residual is replaced by the true ``b - A x`` every
``recompute`` iterations and whenever it meets the tolerance, so convergence is only
declared on the true residual: an indefinite or nonsymmetric matrix never comes back as
``Success`` with a wrong answer.
"""
import math

import numpy as np

from ...kernels.cpu import blas, krylov
from .common import (BREAKDOWN, MAXITERS, SUCCESS, KrylovResult, Monitor, check,
                     finite, start, target, true_residual)

__all__ = ["cg"]


def cg(matvec, b, x0=None, *, precond=None, rtol=1e-8, atol=0.0, maxiter=None,
       callback=None, progress=None, recompute=50):
    """Solve ``A x = b`` by (preconditioned) conjugate gradients.

    Parameters
    ----------
    matvec : callable ``(x, out) -> out``
        ``out = A x`` on flat arrays of ``b``'s dtype; ``A`` Hermitian positive definite.
    b : 1-D array (float32/float64/complex64/complex128)
    precond : callable ``(r, out) -> out``, optional
        A fixed Hermitian positive definite preconditioner ``z = M^{-1} r``.
    recompute : int
        Replace the recursive residual by the true one every ``recompute`` iterations.

    Returns
    -------
    KrylovResult
    """
    dtype = b.dtype
    n = b.size
    if dtype.kind == "f":           # vectorised real kernels (same reduction order)
        dot, update = krylov.dot_real, krylov.cg_update_real
    else:
        dot, update = blas.dot, blas.cg_update
    maxiter = 10 * n if maxiter is None else maxiter
    mon = Monitor(callback, progress, "CG")
    tol, _ = target(b, rtol, atol)
    x, r = start(matvec, b, x0, dtype)
    ap = np.empty(n, dtype=dtype)
    rnorm = blas.nrm2(r)
    mon.history.append(rnorm)
    if rnorm <= tol:
        return KrylovResult(x, SUCCESS, 0, rnorm, mon.array())
    if precond is not None:
        z = np.empty(n, dtype=dtype)
        precond(r, z)
        rz = dot(r, z).real
    else:
        z = r
        rz = rnorm * rnorm
    status = MAXITERS
    it = 0
    if not (rz > 0.0 and math.isfinite(rz)):
        status = BREAKDOWN
        p = None
    else:
        p = z.copy()
    while p is not None and it < maxiter:
        matvec(p, ap)
        pap = dot(p, ap).real
        if not (pap > 0.0 and math.isfinite(pap)):
            status = BREAKDOWN
            break
        alpha = rz / pap
        rr = update(alpha, p, ap, x, r)
        it += 1
        rnorm = math.sqrt(rr)
        rnorm, stop, recomputed = check(it, rnorm, tol, recompute, matvec, b, x, r, ap, mon)
        if recomputed:
            rr = rnorm * rnorm
        if stop is not None:
            status = stop
            break
        if precond is not None:
            precond(r, z)
            rz_new = dot(r, z).real
            if not (rz_new > 0.0 and finite(rz_new)):
                status = BREAKDOWN
                break
        else:
            rz_new = rr
        beta = rz_new / rz
        rz = rz_new
        blas.xpay(z, beta, p)
    if status != SUCCESS:
        rnorm = true_residual(matvec, b, x, r, ap)
    return KrylovResult(x, status, it, rnorm, mon.array())
