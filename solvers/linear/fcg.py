"""Flexible conjugate gradients (Notay's FCG(m), truncated and restarted).

For preconditioners that change between applications or are not exactly linear: a
few multigrid cycles with a loose inner tolerance, an inner Krylov solve, or a trained
network ``r -> z``.  Each new direction is A-orthogonalised explicitly against the last
``truncate`` directions (classical Gram-Schmidt in the A-inner product) instead of
relying on the short recurrence of CG, and the step uses ``alpha = p^H r / p^H A p``.
With a fixed SPD preconditioner and ``truncate >= 1`` it reproduces PCG in exact
arithmetic.  ``restart`` (default: never) forgets all stored directions periodically.

Cost per iteration: one matvec, one preconditioner application, and ``truncate`` extra
dots and axpys; memory ``2 (truncate + 1)`` vectors.

Reference: Y. Notay, "Flexible conjugate gradients", SIAM J. Sci. Comput. 22 (2000)
1444-1460; Saad (2003), sec. 9.4.1.
"""
import math
from collections import deque

from ...kernels.cpu import blas, krylov
from .. import workspace
from .common import (BREAKDOWN, MAXITERS, SUCCESS, KrylovResult, Monitor, check,
                     start_norm, true_residual)

__all__ = ["fcg"]


def fcg(matvec, b, x0=None, *, precond=None, rtol=1e-8, atol=0.0, maxiter=None,
        callback=None, progress=None, truncate=1, restart=None, recompute=50):
    """Solve ``A x = b`` (A Hermitian positive definite) by flexible CG.

    ``precond(r, out) -> out`` may be nonlinear or vary between calls; it should be
    positive (``r^H M(r) > 0``).  See the module docstring.
    """
    dtype = b.dtype
    n = b.size
    if dtype.kind == "f":           # vectorised real kernels (same reduction order)
        dot, update = krylov.dot_real, krylov.cg_update_real
    else:
        dot, update = blas.dot, blas.cg_update
    maxiter = 10 * n if maxiter is None else maxiter
    x, r, rnorm, tol = start_norm(matvec, b, x0, dtype, rtol, atol)
    tmp, z = workspace.take(n, dtype), workspace.take(n, dtype)
    owned = []                  # the direction vectors the loop takes
    try:
        return _fcg_loop(matvec, b, x, r, rnorm, tmp, z, owned, precond, dot, update, tol,
                         maxiter, Monitor(callback, progress, "FlexibleCG"), truncate,
                         restart, recompute)
    finally:
        workspace.give(r, tmp, z)
        while owned:                # one at a time: a star-call's argument list would
            a = owned.pop()         # hold one more reference to each (give refuses it)
            workspace.give(a)
            del a


def _fcg_loop(matvec, b, x, r, rnorm, tmp, z, owned, precond, dot, update, tol, maxiter,
              mon, truncate, restart, recompute):
    """The loop of :func:`fcg` (``rnorm = ||r||``); the ``p``, ``A p`` vectors it takes
    from the workspace are appended to ``owned``."""
    n, dtype = r.size, r.dtype

    def vector():
        a = workspace.take(n, dtype)
        owned.append(a)
        return a

    mon.history.append(rnorm)
    if rnorm <= tol:
        return KrylovResult(x, SUCCESS, 0, rnorm, mon.array())
    stored = deque(maxlen=max(int(truncate), 0) or 1)
    keep = int(truncate) > 0
    spare = []
    status = MAXITERS
    it = 0
    while it < maxiter:
        if precond is not None:
            precond(r, z)
        else:
            z[:] = r
        p = spare.pop() if spare else vector()
        ap = spare.pop() if spare else vector()
        p[:] = z
        for pj, apj, dj in stored:
            blas.axpy(-(dot(apj, z) / dj), pj, p)
        matvec(p, ap)
        d = dot(p, ap).real
        if not (d > 0.0 and math.isfinite(d)):
            status = BREAKDOWN
            break
        alpha = dot(p, r) / d
        rr = update(alpha, p, ap, x, r)
        it += 1
        rnorm = math.sqrt(rr)
        rnorm, stop, _ = check(it, rnorm, tol, recompute, matvec, b, x, r, tmp, mon)
        if stop is not None:
            status = stop
            break
        if restart and it % restart == 0:
            for pj, apj, _ in stored:
                spare += [pj, apj]
            stored.clear()
        if keep:
            if len(stored) == stored.maxlen:
                old = stored[0]
                spare += [old[0], old[1]]
            stored.append((p, ap, d))
        else:
            spare += [p, ap]
    if status != SUCCESS:
        rnorm = true_residual(matvec, b, x, r, tmp)
    return KrylovResult(x, status, it, rnorm, mon.array())
