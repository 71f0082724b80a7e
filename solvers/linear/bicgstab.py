"""BiCGSTAB with right preconditioning (general nonsingular, possibly nonsymmetric systems).

Method: van der Vorst, SIAM J. Sci. Stat. Comput. 13 (1992); Saad (2003), Alg. 7.7,
preconditioned on the right so that the monitored residual is the true one of the
original system.  One iteration costs two matvecs, two preconditioner applications,
four inner products and about eight vector updates.

Breakdown: ``rho = <r0, r> = 0`` (or ``<r0, v> = 0``) or ``omega = 0`` stops with
``Breakdown`` and the last iterate.  Convergence is declared on the true residual.
"""
import math

import numpy as np

from ...kernels.cpu import blas
from .. import workspace
from .common import (BREAKDOWN, MAXITERS, SUCCESS, TERMINATED, KrylovResult, Monitor,
                     check, start_norm, true_residual)

__all__ = ["bicgstab"]


def bicgstab(matvec, b, x0=None, *, precond=None, rtol=1e-8, atol=0.0, maxiter=None,
             callback=None, progress=None, recompute=50):
    """Solve ``A x = b`` by right-preconditioned BiCGSTAB; see the module docstring."""
    dtype = b.dtype
    n = b.size
    maxiter = 10 * n if maxiter is None else maxiter
    x, r, rnorm, tol = start_norm(matvec, b, x0, dtype, rtol, atol)
    tmp, r0, p, v, ph, sh, t = (workspace.take(n, dtype) for _ in range(7))
    try:
        return _bicgstab_loop(matvec, b, x, r, rnorm, tmp, r0, p, v, ph, sh, t, precond, tol,
                              maxiter, Monitor(callback, progress, "BiCGSTAB"), recompute)
    finally:
        workspace.give(r, tmp, r0, p, v, ph, sh, t)


def _bicgstab_loop(matvec, b, x, r, rnorm, tmp, r0, p, v, ph, sh, t, precond, tol, maxiter,
                   mon, recompute):
    """The loop of :func:`bicgstab` on its work vectors (from the workspace, uninitialised;
    ``rnorm = ||r||``)."""
    mon.history.append(rnorm)
    if rnorm <= tol:
        return KrylovResult(x, SUCCESS, 0, rnorm, mon.array())
    np.copyto(r0, r)
    p.fill(0)
    v.fill(0)
    rho = alpha = omega = 1.0
    tiny = np.finfo(r.dtype).tiny
    status = MAXITERS
    it = 0
    while it < maxiter:
        rho_new = blas.dot(r0, r)
        if abs(rho_new) <= tiny * rnorm or not math.isfinite(abs(rho_new)):
            status = BREAKDOWN
            break
        beta = (rho_new / rho) * (alpha / omega)
        rho = rho_new
        # p = r + beta (p - omega v)
        blas.axpy(-omega, v, p)
        blas.xpay(r, beta, p)
        if precond is not None:
            precond(p, ph)
        else:
            ph[:] = p
        matvec(ph, v)
        r0v = blas.dot(r0, v)
        if abs(r0v) == 0.0 or not math.isfinite(abs(r0v)):
            status = BREAKDOWN
            break
        alpha = rho / r0v
        blas.axpy(-alpha, v, r)              # r is now s
        it += 1
        snorm = blas.nrm2(r)
        if snorm <= tol:
            blas.axpy(alpha, ph, x)
            rnorm = true_residual(matvec, b, x, r, tmp)
            if rnorm <= tol:
                mon(it, x, rnorm)
                status = SUCCESS
                break
            if mon(it, x, rnorm):           # one history entry per iteration
                status = TERMINATED
                break
            continue
        if precond is not None:
            precond(r, sh)
        else:
            sh[:] = r
        matvec(sh, t)
        tt = blas.dot(t, t).real
        omega = blas.dot(t, r) / tt if tt > 0 else 0.0
        blas.axpy(alpha, ph, x)
        blas.axpy(omega, sh, x)
        blas.axpy(-omega, t, r)
        rnorm = blas.nrm2(r)
        rnorm, stop, _ = check(it, rnorm, tol, recompute, matvec, b, x, r, tmp, mon)
        if stop is not None:
            status = stop
            break
        if omega == 0.0:
            status = BREAKDOWN
            break
    if status != SUCCESS:
        rnorm = true_residual(matvec, b, x, r, tmp)
    return KrylovResult(x, status, it, rnorm, mon.array())
