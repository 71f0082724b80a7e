"""Shared pieces of the Krylov solvers: result type, tolerances, true residuals."""
import math
from collections import namedtuple

import numpy as np

from ...kernels.cpu import blas
from .. import workspace

__all__ = ["lincomb", "project", "KrylovResult", "SUCCESS", "MAXITERS", "BREAKDOWN", "TERMINATED", "FAILURE",
           "CONVERGENCE_FAILURE", "STALL_GAP", "STALL_RISE", "STALL_CHECKS", "STALL_ITERS",
           "target", "tolerance", "true_residual", "check", "start", "start_norm", "Monitor"]

SUCCESS = "Success"
MAXITERS = "MaxIters"
BREAKDOWN = "Breakdown"
TERMINATED = "Terminated"
FAILURE = "Failure"
CONVERGENCE_FAILURE = "ConvergenceFailure"

#: The attainable accuracy.  A solve stops with ``ConvergenceFailure``, its best iterate
#: restored, at ``STALL_CHECKS`` true-residual evaluations (every ``recompute``
#: iterations, and whenever the recursive residual meets the tolerance) since the true
#: residual last fell by 10 % at which it was more than ``STALL_GAP`` times the recursive
#: one (the recursion runs on into rounding error) or more than ``STALL_RISE`` times the
#: best (the iterates drift away); or, once the true residual is below ``sqrt(eps)``
#: times the initial one (the precision's, float32 or float64), when it has not fallen
#: by 10 % for ``max(STALL_ITERS, k)`` iterations since it last did (at iteration ``k``);
#: the same once the true residual has been found ``STALL_GAP`` times above the recursive
#: one at least once (rounding broke the recursion: float32 at a condition of 2e10).
#: Without it, a tolerance below what the precision allows ran to ``maxiter`` = 10 n
#: iterations, hours: rtol 1e-8 for CG + Multigrid on a 1-D Poisson problem of 10^6
#: cells in float64 (the residual bottoms out at 2e-8 after 7 iterations, then grew to
#: 1e51 by iteration 20,000), or on a 256^2 one in float32 (it hovers at 4e-6 from
#: iteration 10 on).  (A plateau far above the precision's floor is slow convergence,
#: not a stall: plain CG on a 1-D Poisson problem of 4,096 cells sits at a relative
#: residual of 0.5 for thousands of iterations, then converges.)
STALL_GAP = 10.0
STALL_RISE = 10.0
STALL_CHECKS = 5
STALL_ITERS = 200

#: x: solution; status: ReturnCode name; iters: iterations; resnorm: true ||b - A x||;
#: history: residual norm after every iteration (index 0: initial residual)
KrylovResult = namedtuple("KrylovResult", "x status iters resnorm history")


def lincomb(c, X):
    """``sum_i c_i X[i]`` for a few rows ``X`` (Krylov bases, stage slopes).

    NumPy's ``c @ X`` would call the multithreaded OpenBLAS, whose threads then
    busy-wait on the cores that the next Numba parallel kernel needs: on two cores a
    Newton-Krylov KenCarp4 solve of a 128^2 grid took 2.2 s instead of 0.45 s (every
    parallel kernel after a BLAS call waited ~0.7 ms).  ``einsum`` runs its own loops on
    the calling thread.
    """
    return np.einsum("i,ij->j", c, X)


def project(X, w):
    """``X^H w`` (the rows' inner products with ``w``) without OpenBLAS (see
    :func:`lincomb`)."""
    return np.einsum("ij,j->i", X.conj() if np.iscomplexobj(X) else X, w)


def target(b, rtol, atol):
    """``max(rtol ||b||, atol)`` and ``||b||``."""
    bnorm = blas.nrm2(b)
    return tolerance(bnorm, rtol, atol), bnorm


def tolerance(bnorm, rtol, atol):
    """The residual norm a solve must reach: ``max(rtol ||b||, atol)``."""
    return max(rtol * bnorm, atol)


def true_residual(matvec, b, x, r, tmp):
    """``r = b - A x`` (using ``tmp`` for ``A x``); returns ``||r||``."""
    matvec(x, tmp)
    np.subtract(b, tmp, out=r)
    return blas.nrm2(r)


def check(it, rnorm, tol, recompute, matvec, b, x, r, tmp, mon, residual=None):
    """The end-of-iteration test shared by the Krylov loops.

    The recursive residual norm ``rnorm`` is replaced by the true one when it meets the
    tolerance, every ``recompute`` iterations, or when it is not finite; success is
    declared on the true residual only.  Returns ``(rnorm, status, recomputed)`` with
    ``status`` None to go on, else SUCCESS, BREAKDOWN (non-finite), CONVERGENCE_FAILURE
    (the true residual stalled at the attainable accuracy: :meth:`Monitor.stalled`) or
    TERMINATED (the monitor's callback asked to stop).  ``residual``, when given, is a
    callable ``(x, r) -> ||b - A x||`` (writing ``r``) used in place of
    :func:`true_residual` (a fused kernel: the grid CG's).
    """
    recomputed = False
    if rnorm <= tol or it % recompute == 0 or not math.isfinite(rnorm):
        rec = rnorm
        rnorm = (true_residual(matvec, b, x, r, tmp) if residual is None
                 else residual(x, r))
        recomputed = True
        if rnorm <= tol:
            mon(it, x, rnorm)               # the callback sees the last iterate too
            return rnorm, SUCCESS, recomputed
        if mon.stalled(it, x, rec, rnorm):
            mon.restore_best(x)             # the loop takes the residual of x afresh
            mon.history.append(rnorm)
            return rnorm, CONVERGENCE_FAILURE, recomputed
    if not math.isfinite(rnorm):
        return rnorm, BREAKDOWN, recomputed
    if mon(it, x, rnorm):
        return rnorm, TERMINATED, recomputed
    return rnorm, None, recomputed


def start(matvec, b, x0, dtype):
    """Initial iterate and residual: ``x = x0`` (or zeros) and ``r = b - A x``, both from
    :mod:`~jitsolve.solvers.workspace` (``x`` lent: it leaves as the solution, and the
    pool takes its memory back once the caller drops it; a solver may give ``r`` back).

    ``b = 0`` starts from ``x = 0`` whatever ``x0`` is: that is the exact solution, and
    the target ``rtol ||b||`` (zero) would otherwise be out of reach, so every solver
    returns ``x = 0`` with ``Success`` after 0 iterations (as SciPy does).
    """
    n = b.size
    r = workspace.take(n, dtype)
    if x0 is None or not np.any(b):
        x = workspace.lend_zeros(n, dtype)
        r[:] = b
    else:
        x = workspace.lend(n, dtype)
        x[:] = np.asarray(x0).ravel()
        tmp = workspace.take(n, dtype)
        matvec(x, tmp)
        np.subtract(b, tmp, out=r)
        workspace.give(tmp)
    return x, r


def start_norm(matvec, b, x0, dtype, rtol, atol):
    """:func:`start`, the norm ``||r||`` and the :func:`tolerance`: ``(x, r, rnorm, tol)``.

    From a zero guess (a float64 vector of pool size) ``r = b`` is copied and its sum of
    squares taken in the same pass (:func:`~jitsolve.kernels.cpu.blas.copy_sumsq`, the
    bits of :func:`~jitsolve.kernels.cpu.blas.nrm2`), and ``||b|| = ||r||``: one pass
    over ``b`` where the target, the copy and the first residual norm took three.
    """
    n = b.size
    if (x0 is None and dtype == np.float64 and b.dtype == np.float64 and b.ndim == 1
            and n * 8 >= workspace.MIN_BYTES):
        x = workspace.lend_zeros(n, dtype)
        r = workspace.take(n, dtype)
        rnorm = blas.norm_of_sumsq(r, blas.copy_sumsq(b, r))
        return x, r, rnorm, tolerance(rnorm, rtol, atol)
    tol, _ = target(b, rtol, atol)
    x, r = start(matvec, b, x0, dtype)
    return x, r, blas.nrm2(r), tol


class Monitor:
    """Residual history, the user callback and an optional progress printer."""

    def __init__(self, callback=None, progress=None, name=""):
        self.history = []
        self.callback = callback
        self.progress = progress
        self.name = name
        self._best = math.inf       # the best true residual so far and its iterate
        self._best_x = None
        self._mark = math.inf       # the true residual when it last fell by 10 %, when
        self._mark_it = 0
        self._bad = 0               # evaluations since then that point to a stall
        self._gap = False           # the recursion was once found STALL_GAP off the truth

    def stalled(self, it, x, recursive, true):
        """Whether the solve has stalled at the true residual ``true`` of ``x`` (just
        evaluated at iteration ``it``, above the tolerance; see :data:`STALL_GAP`).  A
        new best is remembered (``x`` copied)."""
        if not (math.isfinite(true) and math.isfinite(recursive)):
            return False
        if true < self._best:
            self._best = true
            if self._best_x is None:
                self._best_x = np.empty_like(x)
            np.copyto(self._best_x, x)
        if true > STALL_GAP * recursive:
            self._gap = True
        if true < 0.9 * self._mark:
            self._mark, self._mark_it, self._bad = true, it, 0
            return False
        if true > STALL_GAP * recursive or true > STALL_RISE * self._best:
            self._bad += 1
        if self._bad >= STALL_CHECKS:
            return True
        # the plateau rule: near the precision's floor, or anywhere once rounding has
        # been seen to break the recursion (a float32 CG + Multigrid solve of condition
        # 2e10 met rtol 1e-5 on its recursive residual with the true one at 0.67 ||b||,
        # then crept 1e-5 a step for 30,720 iterations, 370 s)
        low = (self._gap or
               self._best <= math.sqrt(np.finfo(x.dtype).eps) * self.history[0])
        return low and it - self._mark_it >= max(STALL_ITERS, self._mark_it)

    def restore_best(self, x):
        """``x`` = the iterate of the best true residual seen (if any)."""
        if self._best_x is not None:
            np.copyto(x, self._best_x)

    def __call__(self, it, x, rnorm):
        """Record one iteration; True when the callback asks to stop."""
        self.history.append(float(rnorm))
        if self.progress:
            every = self.progress if isinstance(self.progress, int) and self.progress > 1 else 10
            if it % every == 0:
                print(f"{self.name} iter {it:6d}  ||r|| = {rnorm:.3e}", flush=True)
        if self.callback is not None:
            return bool(self.callback(it, x, rnorm))
        return False

    def array(self):
        return np.asarray(self.history, dtype=np.float64)


def finite(v):
    return math.isfinite(abs(v))
