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

Grid operators: given ``grid`` (a :class:`GridStencil`: a Laplacian or Diffusion
operator as plain arrays), the float64 loop runs the fused
two-pass iteration of :func:`jitsolve.kernels.cpu.krylov.grid_cg_direction` and
:func:`~jitsolve.kernels.cpu.krylov.grid_cg_update`: ``p = r + beta p`` fused with the
stencil and ``p^T A p`` (reads ``r, p``, writes ``p, A p``), then ``r -= a A p`` and
``r^T r`` (reads ``A p, r``, writes ``r``), with ``x += a p`` deferred into the next
direction pass (which reads ``p`` anyway; reads and writes ``x``): 9 vector passes
instead of 13 (8 with ``A p`` recomputed, see :data:`STORE_AP`), two parallel regions
plus a small halo one instead of four; ``x`` is brought up to date (one ``axpy``) only
where it is looked at (a true residual, the callback, the end).  With a preconditioner
the direction pass forms ``p = z + beta p`` instead, and ``z = M r`` and ``r^T z`` follow
the update pass: 12 vector passes plus the preconditioner's, against 16 in the loop
above (10 where the preconditioner sums ``r^T z`` itself: ``js.Multigrid``'s
``apply_dot``, inside its last sweep).  The iterates are those of the loop above up to
the order of the reductions; tolerances, true residuals, breakdown, history and callback
are handled identically.

Around the loop (both loops): from a zero guess the copy ``r = b`` also gives ``||b||``
(:func:`~jitsolve.solvers.linear.common.start_norm`: one pass where three were); the
first direction is ``z``'s own vector (no copy; the two vectors trade roles); on a grid
the true residual ``b - A x`` and its norm are one pass
(:func:`~jitsolve.kernels.cpu.krylov.grid_residual`, three passes before).  At 128^3
these passes were ~10 % of a CG + multigrid solve.
Chronopoulos & Gear (1989) fuse further by changing the recurrences (one reduction per
iteration); that is deliberately not done here.
"""
import math
from collections import namedtuple

import numba
import numpy as np

from ...kernels.cpu import blas, krylov
from .. import workspace
from .common import (BREAKDOWN, MAXITERS, SUCCESS, KrylovResult, Monitor, check,
                     finite, start_norm, true_residual)

__all__ = ["cg", "GridStencil"]

#: A Laplacian (``kind = "laplacian"``, ``kappa`` None) or Diffusion (``"diffusion"``,
#: ``kappa`` the coefficient field) grid operator as the stencil kernels see it:
#: ``shape3`` the padded 3-D shape, ``c`` the scales with the operator's factor folded in,
#: ``per``/``sgn`` the boundary arrays (see :mod:`jitsolve.kernels.cpu.stencil`).
GridStencil = namedtuple("GridStencil", "kind shape3 c per sgn kappa")

#: whether the fused grid iteration stores ``A p`` (9 vector passes per iteration) or
#: recomputes it in the update pass (8 passes, but the stencil twice).  On the 2-core
#: development machine (working sets in L3, compute and load bound) storing measured
#: faster for both operators; recomputing only pays where memory bandwidth is the limit.
STORE_AP = {"laplacian": True, "diffusion": True}

#: whether the fused grid iteration defers ``x += alpha p`` to the next direction pass
#: (True) or does it in the update pass (False, one vector read more per iteration; kept
#: for A/B measurements: ``perf/bench_krylov.py``).  The same bits either way.
LAG_X = True


def cg(matvec, b, x0=None, *, precond=None, rtol=1e-8, atol=0.0, maxiter=None,
       callback=None, progress=None, recompute=50, grid=None):
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
    grid : GridStencil, optional
        ``matvec``'s operator as a grid stencil: with float64 vectors the fused grid
        iteration is used, preconditioned or not (same iterates up to reduction order).

    Returns
    -------
    KrylovResult
    """
    dtype = b.dtype
    n = b.size
    if grid is not None and dtype == np.float64 and n > 0:
        return _cg_grid(grid, matvec, b, x0, precond, rtol, atol, maxiter, callback, progress,
                        recompute)
    if dtype.kind == "f":           # vectorised real kernels (same reduction order)
        dot, update = krylov.dot_real, krylov.cg_update_real
    else:
        dot, update = blas.dot, blas.cg_update
    maxiter = 10 * n if maxiter is None else maxiter
    x, r, rnorm, tol = start_norm(matvec, b, x0, dtype, rtol, atol)
    ap = workspace.take(n, dtype)
    p = workspace.take(n, dtype)
    z = workspace.take(n, dtype) if precond is not None else None
    try:
        return _cg_loop(matvec, b, x, r, rnorm, ap, p, z, precond, dot, update, tol, maxiter,
                        Monitor(callback, progress, "CG"), recompute)
    finally:
        workspace.give(r, ap, p, z)


def _cg_loop(matvec, b, x, r, rnorm, ap, p, z, precond, dot, update, tol, maxiter, mon,
             recompute):
    """The loop of :func:`cg` on its work vectors (``z`` None without a preconditioner;
    ``rnorm = ||r||``)."""
    mon.history.append(rnorm)
    if rnorm <= tol:
        return KrylovResult(x, SUCCESS, 0, rnorm, mon.array())
    if precond is not None:
        rz = _apply_rz(precond, r, z, dot)
    else:
        z = r
        rz = rnorm * rnorm
    status = MAXITERS
    it = 0
    if not (rz > 0.0 and math.isfinite(rz)):
        status = BREAKDOWN
        p = None
    elif precond is not None:
        p, z = z, p             # the first direction is z itself (its vector becomes p)
    else:
        np.copyto(p, z)
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
        rz_new = _next_rz(precond, r, z, dot, rr)
        if rz_new is None:
            status = BREAKDOWN
            break
        beta = rz_new / rz
        rz = rz_new
        blas.xpay(z, beta, p)
    if status != SUCCESS:
        rnorm = true_residual(matvec, b, x, r, ap)
    return KrylovResult(x, status, it, rnorm, mon.array())


def _next_rz(precond, r, z, dot, rr):
    """``r^H z`` after ``z = M r`` (``rr``, i.e. ``r^H r``, unpreconditioned); None when it
    is not positive and finite (the preconditioner is not positive definite)."""
    if precond is None:
        return rr
    rz = _apply_rz(precond, r, z, dot)
    return rz if (rz > 0.0 and finite(rz)) else None


def _apply_rz(precond, r, z, dot):
    """``z = M r`` and return ``Re(r^H z)``: from the preconditioner's own ``apply_dot``
    where it has one (the multigrid sums it inside its last sweep), else ``dot``."""
    fused = getattr(precond, "apply_dot", None)
    if fused is not None and r.dtype == np.float64:
        return fused(r, z)
    precond(r, z)
    return dot(r, z).real


def _cg_grid(grid, matvec, b, x0, precond, rtol, atol, maxiter, callback, progress, recompute):
    """(Preconditioned) CG for a grid operator: two fused passes per iteration.

    The loop of :func:`cg` with ``p = z + beta p`` moved to the start of the next
    iteration (inside :func:`~jitsolve.kernels.cpu.krylov.grid_cg_direction`, with
    ``z = r`` unpreconditioned), which is where CG first needs it, and ``x += alpha p``
    moved there too (it needs the old ``p``, which that pass reads).  With a
    preconditioner an iteration is the two passes, ``z = M r`` and ``r^T z`` (one, where
    the preconditioner has ``apply_dot``).
    """
    n = b.size
    maxiter = 10 * n if maxiter is None else maxiter
    x, r, rnorm, tol = start_norm(matvec, b, x0, np.float64, rtol, atol)
    ap = workspace.take(n)
    p = workspace.take(n)
    z = workspace.take(n) if precond is not None else None
    try:
        return _cg_grid_loop(grid, matvec, b, x, r, rnorm, ap, p, z, precond, tol, maxiter,
                             Monitor(callback, progress, "CG"), recompute)
    finally:
        workspace.give(r, ap, p, z)


def _cg_grid_loop(grid, matvec, b, x, r, rnorm, ap, p, z, precond, tol, maxiter, mon,
                  recompute):
    """The loop of :func:`_cg_grid` on its work vectors (``z`` None without a
    preconditioner; ``rnorm = ||r||``)."""
    shape3 = tuple(grid.shape3)
    n0, n1, n2 = shape3
    kind = krylov.DIFFUSION if grid.kind == "diffusion" else krylov.LAPLACIAN
    store = STORE_AP[grid.kind]
    units, sr, groups = krylov.grid_cg_units(shape3)
    nch = min(numba.get_num_threads(), units)       # any count gives the same bits
    part = np.empty(groups)
    k3 = x.reshape(shape3) if grid.kappa is None else grid.kappa    # (any array: Laplacian)
    c, per, sgn = grid.c, grid.per, grid.sgn
    b3 = b.reshape(shape3)

    def residual(x, r):
        """The true residual ``r = b - A x`` and its norm, in one fused pass."""
        s = krylov.grid_residual(b3, x.reshape(shape3), r.reshape(shape3), kind, k3, c, per,
                                 sgn, nch, part)
        return blas.norm_of_sumsq(r, s)

    mon.history.append(rnorm)
    if rnorm <= tol:
        return KrylovResult(x, SUCCESS, 0, rnorm, mon.array())
    if precond is not None:
        rz = _apply_rz(precond, r, z, krylov.dot_real)
        # the first direction is z itself: z's vector becomes p (the direction pass with
        # beta = 0 keeps its values: the bits of a copy), p's vector the next z
        p, z = z, p
    else:
        z = r
        rz = rnorm * rnorm
        np.copyto(p, z)         # with beta = 0 the first direction pass keeps p = z
    status = MAXITERS
    it = 0
    if not (rz > 0.0 and math.isfinite(rz)):
        return KrylovResult(x, BREAKDOWN, 0, residual(x, r), mon.array())
    beta = 0.0
    halo = np.empty((nch, 2, sr, n2))
    x3, r3, p3, ap3, z3 = (v.reshape(shape3) for v in (x, r, p, ap, z))
    d3 = p3 if precond is not None else z3      # the direction pass's source: z, then z3
    # x += alpha p lags one pass: the next direction pass does it (it reads p anyway),
    # unless x is looked at first (true residual, callback, exit): then blas.axpy, the
    # same expression (the same bits either way)
    lag = False
    eager = not LAG_X
    alpha = 0.0
    while it < maxiter:
        pap = krylov.grid_cg_direction(beta, d3, p3, kind, k3, ap3, store, c, per, sgn, halo,
                                       part, x3, alpha, lag)
        d3 = z3
        lag = False
        if not (pap > 0.0 and math.isfinite(pap)):
            status = BREAKDOWN
            break
        alpha = rz / pap
        rr = krylov.grid_cg_update(alpha, p3, kind, k3, ap3, store, x3, r3, c, per, sgn, nch,
                                   part, eager)
        it += 1
        rnorm = math.sqrt(rr)
        if not eager:
            if (mon.callback is not None or rnorm <= tol or it % recompute == 0
                    or not math.isfinite(rnorm)):
                blas.axpy(alpha, p, x)      # check() reads x: bring it up to date
            else:
                lag = True
        rnorm, stop, recomputed = check(it, rnorm, tol, recompute, matvec, b, x, r, ap, mon,
                                        residual)
        if recomputed:
            rr = rnorm * rnorm
        if stop is not None:
            status = stop
            break
        rz_new = _next_rz(precond, r, z, krylov.dot_real, rr)
        if rz_new is None:
            status = BREAKDOWN
            break
        beta = rz_new / rz
        rz = rz_new
    if lag:                         # stopped before the next direction pass: x is due
        blas.axpy(alpha, p, x)
    if status != SUCCESS:
        rnorm = residual(x, r)
    return KrylovResult(x, status, it, rnorm, mon.array())
