"""BLAS-1 kernels with reproducible reductions (CPU, Numba).

Reductions split the vector into fixed blocks of ``BLOCK`` entries, sum each block with
four interleaved accumulators in a fixed order (in parallel across blocks) and then add
the block sums in order.  The result is therefore the same bit for bit whatever the
number of threads or their schedule.  Real inputs of any precision accumulate in
float64; complex ones in complex128.  ``dot`` conjugates its first argument.

References
----------
Lawson, Hanson, Kincaid, Krogh, "Basic Linear Algebra Subprograms for Fortran usage",
ACM TOMS 5 (1979); Demmel & Nguyen, "Fast reproducible floating-point summation",
ARITH 21 (2013) (why the order of a parallel sum must be fixed).
"""
import numpy as np
from numba import njit, prange

__all__ = ["BLOCK", "dot", "nrm2", "sumsq", "copy_sumsq", "norm_of_sumsq", "fill", "axpy", "xpay",
           "cg_update"]

#: entries per reduction block; fixed so results never depend on the thread count
BLOCK = 4096


@njit(inline="always", cache=True)
def _nblocks(n):
    return (n + BLOCK - 1) // BLOCK


@njit(cache=True)
def _block_dot(x, y, lo, hi):
    s0 = np.conj(x[lo]) * y[lo] * 0.0
    s1 = s0
    s2 = s0
    s3 = s0
    i = lo
    while i + 3 < hi:
        s0 += np.conj(x[i]) * y[i]
        s1 += np.conj(x[i + 1]) * y[i + 1]
        s2 += np.conj(x[i + 2]) * y[i + 2]
        s3 += np.conj(x[i + 3]) * y[i + 3]
        i += 4
    while i < hi:
        s0 += np.conj(x[i]) * y[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


@njit(parallel=True, cache=True)
def _dot_real(x, y):
    n = x.size
    nb = _nblocks(n)
    part = np.zeros(nb, dtype=np.float64)
    for b in prange(nb):
        lo = b * BLOCK
        part[b] = _block_dot(x, y, lo, min(n, lo + BLOCK))
    total = 0.0
    for b in range(nb):
        total += part[b]
    return total


@njit(parallel=True, cache=True)
def _dot_complex(x, y):
    n = x.size
    nb = _nblocks(n)
    part = np.zeros(nb, dtype=np.complex128)
    for b in prange(nb):
        lo = b * BLOCK
        part[b] = _block_dot(x, y, lo, min(n, lo + BLOCK))
    total = 0.0j
    for b in range(nb):
        total += part[b]
    return total


def dot(x, y):
    """``sum(conj(x) * y)`` over 1-D arrays, reproducibly blocked."""
    if x.size == 0:
        return 0.0
    if np.iscomplexobj(x) or np.iscomplexobj(y):
        return _dot_complex(x, y)
    return _dot_real(x, y)


@njit(cache=True)
def _block_sumsq(x, lo, hi):
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    i = lo
    while i + 3 < hi:
        s0 += abs(x[i]) ** 2
        s1 += abs(x[i + 1]) ** 2
        s2 += abs(x[i + 2]) ** 2
        s3 += abs(x[i + 3]) ** 2
        i += 4
    while i < hi:
        s0 += abs(x[i]) ** 2
        i += 1
    return (s0 + s1) + (s2 + s3)


@njit(parallel=True, cache=True)
def sumsq(x):
    """``sum(|x|^2)`` in float64, reproducibly blocked."""
    n = x.size
    nb = _nblocks(n)
    part = np.zeros(nb)
    for b in prange(nb):
        lo = b * BLOCK
        part[b] = _block_sumsq(x, lo, min(n, lo + BLOCK))
    total = 0.0
    for b in range(nb):
        total += part[b]
    return total


@njit(parallel=True, cache=True)
def copy_sumsq(src, dst):
    """``dst[:] = src`` and return ``sum(|dst|^2)`` in one pass: each block is summed
    right after it is copied (from cache), in the order of :func:`sumsq` (the same bits).

    The sum is finite only if every entry is (a NaN or an infinity makes it NaN or
    infinite), so it doubles as a finiteness check; an infinite sum of finite entries
    (beyond about 1e154) needs a second look."""
    n = dst.size
    nb = _nblocks(n)
    part = np.zeros(nb)
    for b in prange(nb):
        lo = b * BLOCK
        hi = min(n, lo + BLOCK)
        for i in range(lo, hi):
            dst[i] = src[i]
        part[b] = _block_sumsq(dst, lo, hi)
    total = 0.0
    for b in range(nb):
        total += part[b]
    return total


@njit(parallel=True, cache=True)
def fill(x, v):
    """``x[:] = v`` on all threads (a large vector: NumPy's fill runs on one)."""
    for i in prange(x.size):
        x[i] = v


@njit(parallel=True, cache=True)
def _amax(x):
    n = x.size
    nb = _nblocks(n)
    part = np.zeros(nb)
    for b in prange(nb):
        m = 0.0
        for i in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
            a = abs(x[i])
            if a > m or a != a:
                m = a
        part[b] = m
    m = 0.0
    for b in range(nb):
        if part[b] > m or part[b] != part[b]:
            m = part[b]
    return m


@njit(parallel=True, cache=True)
def _scaled_sumsq(x, scale):
    n = x.size
    nb = _nblocks(n)
    part = np.zeros(nb)
    for b in prange(nb):
        s = 0.0
        for i in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
            s += abs(x[i] / scale) ** 2
        part[b] = s
    total = 0.0
    for b in range(nb):
        total += part[b]
    return total


def nrm2(x):
    """Euclidean norm without spurious overflow or underflow.

    One blocked pass of ``sum(|x|^2)``; only if that overflows or underflows (entries
    beyond about 1e154 or below 1e-154) a second, scaled pass is made.
    """
    if x.size == 0:
        return 0.0
    return norm_of_sumsq(x, sumsq(x))


def norm_of_sumsq(x, s):
    """``||x||`` from ``s = sumsq(x)`` (:func:`sumsq` or :func:`copy_sumsq`): ``sqrt(s)``,
    or the scaled passes of :func:`nrm2` where ``s`` overflowed or underflowed."""
    if np.isfinite(s) and s > 1e-280:
        return float(np.sqrt(s))
    if x.size == 0:
        return 0.0
    m = _amax(x)
    if m == 0.0 or not np.isfinite(m):
        return float(m)
    return float(m * np.sqrt(_scaled_sumsq(x, m)))


@njit(parallel=True, cache=True)
def axpy(a, x, y):
    """``y <- a x + y`` in place."""
    for i in prange(y.size):
        y[i] += a * x[i]


@njit(parallel=True, cache=True)
def xpay(x, a, y):
    """``y <- x + a y`` in place (the CG direction update ``p <- z + beta p``)."""
    for i in prange(y.size):
        y[i] = x[i] + a * y[i]


@njit(inline="always", cache=True)
def _cg_step(alpha, p, ap, x, r, i):
    x[i] += alpha * p[i]
    ri = r[i] - alpha * ap[i]
    r[i] = ri
    return abs(ri) ** 2


@njit(parallel=True, cache=True)
def _cg_update(alpha, p, ap, x, r):
    n = x.size
    nb = _nblocks(n)
    part = np.zeros(nb)
    for b in prange(nb):
        lo = b * BLOCK
        hi = min(n, lo + BLOCK)
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        i = lo
        while i + 3 < hi:   # four accumulators, as in sumsq: the adds overlap
            s0 += _cg_step(alpha, p, ap, x, r, i)
            s1 += _cg_step(alpha, p, ap, x, r, i + 1)
            s2 += _cg_step(alpha, p, ap, x, r, i + 2)
            s3 += _cg_step(alpha, p, ap, x, r, i + 3)
            i += 4
        while i < hi:
            s0 += _cg_step(alpha, p, ap, x, r, i)
            i += 1
        part[b] = (s0 + s1) + (s2 + s3)
    total = 0.0
    for b in range(nb):
        total += part[b]
    return total


def cg_update(alpha, p, ap, x, r):
    """Fused CG step: ``x += alpha p``, ``r -= alpha A p`` and return ``r^H r``, in one pass.

    Reads ``p, Ap, x, r`` once and writes ``x, r`` once (6 vectors of traffic instead of
    the 9 of two axpys and a dot).  The reduction is blocked like :func:`sumsq`.
    """
    if x.size == 0:
        return 0.0
    return _cg_update(alpha, p, ap, x, r)
