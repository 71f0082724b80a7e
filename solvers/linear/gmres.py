"""Restarted GMRES(m) with right preconditioning.

Method: Saad & Schultz, SIAM J. Sci. Stat. Comput. 7 (1986); Saad (2003), Alg. 6.9 and
9.5.  The Arnoldi basis is orthogonalised by classical Gram-Schmidt applied twice
(CGS2: as stable as modified Gram-Schmidt, but two matrix-vector products with the
basis per step instead of ``j`` dots), and the least-squares problem is updated with
Givens rotations, so the residual norm is known at every step without forming ``x``.
At every restart the true residual ``b - A x`` is recomputed; convergence is declared
on it, and a stall there (the attainable accuracy: :data:`.common.STALL_GAP`) ends the
solve with ``ConvergenceFailure`` and the best restart iterate.  Cost per iteration: one
matvec, one preconditioner application and ``O(j n)`` for the orthogonalisation; memory
``m + 1`` vectors.
"""
import math

import numpy as np
from scipy.linalg import solve_triangular

from ...kernels.cpu import blas
from .. import workspace
from .common import (BREAKDOWN, CONVERGENCE_FAILURE, MAXITERS, SUCCESS, TERMINATED, KrylovResult,
                     Monitor, lincomb, project, start_norm, true_residual)

__all__ = ["gmres"]


def _givens(a, b):
    """``c`` (real), ``s`` with ``[[c, s], [-conj(s), c]] @ [a, b] = [rho, 0]``."""
    if b == 0:
        return 1.0, 0.0 * b
    if a == 0:
        return 0.0, 1.0 + 0.0 * b
    na = abs(a)
    rho = math.hypot(na, abs(b))
    return na / rho, (a / na) * np.conj(b) / rho


def gmres(matvec, b, x0=None, *, precond=None, restart=30, rtol=1e-8, atol=0.0, maxiter=None,
          callback=None, progress=None):
    """Solve ``A x = b`` by GMRES(``restart``); see the module docstring."""
    dtype = b.dtype
    n = b.size
    m = max(1, min(int(restart), n))
    maxiter = 10 * n if maxiter is None else maxiter
    x, r, rnorm, tol = start_norm(matvec, b, x0, dtype, rtol, atol)
    tmp, w, z = (workspace.take(n, dtype) for _ in range(3))
    basis = workspace.take((m + 1) * n, dtype)
    try:
        return _gmres_loop(matvec, b, x, r, rnorm, tmp, w, z, basis.reshape(m + 1, n), precond,
                           m, tol, maxiter, Monitor(callback, progress, "GMRES"))
    finally:
        workspace.give(r, tmp, w, z, basis)


def _gmres_loop(matvec, b, x, r, rnorm, tmp, w, z, V, precond, m, tol, maxiter, mon):
    """The restarted loop of :func:`gmres` on its work vectors (``V`` the Krylov basis;
    ``rnorm = ||r||``)."""
    dtype = r.dtype
    beta = rnorm
    mon.history.append(beta)
    if beta <= tol:
        return KrylovResult(x, SUCCESS, 0, beta, mon.array())
    status = MAXITERS
    it = 0
    stop = False
    est = beta
    while not stop:
        H = np.zeros((m + 1, m), dtype=np.result_type(dtype, np.float64))
        g = np.zeros(m + 1, dtype=H.dtype)
        cs = np.zeros(m)
        sn = np.zeros(m, dtype=H.dtype)
        np.multiply(r, 1.0 / beta, out=V[0])
        g[0] = beta
        k = 0
        for j in range(m):
            if precond is not None:
                precond(V[j], z)
                matvec(z, w)
            else:
                matvec(V[j], w)
            Vj = V[:j + 1]
            # classical Gram-Schmidt, twice; no OpenBLAS (common.lincomb)
            h = project(Vj, w)
            w -= lincomb(h.astype(dtype), Vj)
            h2 = project(Vj, w)
            w -= lincomb(h2.astype(dtype), Vj)
            h = (h + h2).astype(H.dtype)
            hn = blas.nrm2(w)
            H[:j + 1, j] = h
            H[j + 1, j] = hn
            for i in range(j):
                a, c = H[i, j], H[i + 1, j]
                H[i, j] = cs[i] * a + sn[i] * c
                H[i + 1, j] = -np.conj(sn[i]) * a + cs[i] * c
            cs[j], sn[j] = _givens(H[j, j], H[j + 1, j])
            H[j, j] = cs[j] * H[j, j] + sn[j] * H[j + 1, j]
            H[j + 1, j] = 0.0
            g[j + 1] = -np.conj(sn[j]) * g[j]
            g[j] = cs[j] * g[j]
            it += 1
            k = j + 1
            est = abs(g[j + 1])
            if not math.isfinite(est):
                stop = True
                break
            if mon(it, None, est):
                status = TERMINATED
                stop = True
                break
            if est <= tol or hn == 0.0 or it >= maxiter:
                break
            np.multiply(w, 1.0 / hn, out=V[j + 1])
        diag = np.abs(np.diag(H[:k, :k]))
        if k > 0 and np.all(diag > 0) and np.all(np.isfinite(H[:k, :k])):
            y = solve_triangular(H[:k, :k], g[:k])
            upd = lincomb(y.astype(dtype), V[:k]).astype(dtype)
            if precond is not None:
                precond(upd, z)
                upd = z
            x += upd
        elif k > 0 and np.all(np.isfinite(H[:k, :k])):
            # a singular Hessenberg matrix (the Krylov space hit A's null space, e.g.
            # A = 0): the least-squares estimate (zero) is not a residual; PETSc's
            # KSP_DIVERGED_BREAKDOWN
            beta = true_residual(matvec, b, x, r, tmp)
            mon.history[-1] = beta
            status = BREAKDOWN
            break
        beta = true_residual(matvec, b, x, r, tmp)
        if beta <= tol:
            status = SUCCESS
            mon.history[-1] = beta
            break
        if stop or it >= maxiter or not math.isfinite(beta) or k == 0:
            break
        if mon.stalled(it, x, est, beta):
            mon.restore_best(x)
            beta = true_residual(matvec, b, x, r, tmp)
            status = CONVERGENCE_FAILURE
            break
    return KrylovResult(x, status, it, beta, mon.array())
