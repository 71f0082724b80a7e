"""Work vectors reused from one solve to the next.

A fresh large array costs its first touch: on this project's VMs a fresh 8 MB vector
took 5-10 ms to write for the first time (page faults; the hypervisor backs the guest's
pages lazily) against 0.4-0.6 ms for a stencil apply on it once warm, and glibc hands
large allocations back to the system when they are freed, so every solve paid that again
for each of its work vectors (CG + multigrid at 1024^2: eight of them, about a third of
the solve).  The solvers take their internal vectors here and give them back when they
return; PETSc keeps a KSP's work vectors between solves for the same reason.

Only arrays of at least :data:`MIN_BYTES` are kept, at most :data:`MAX_BYTES` in all
(oldest dropped first); :func:`clear` drops them.  Thread-safe.  An array must be given
back only when nothing else refers to it: the solvers give back their internal vectors,
never a solution.

A solution leaves the solve, so its memory would be fresh in every solve (a 16 MiB
vector's first touch took 25-30 ms on the thirty-fifth session's VM, a fifth of a 128^3
CG + multigrid solve).  :func:`lend` hands out a *view* of a pool array instead and
remembers the array (at most :data:`MAX_LENT` of them); once nothing but the pool refers
to it any more (the caller dropped the solution and every view of it), the next
:func:`take` that finds no free array of its size takes it back.  The reference count
tells, as in :func:`give`, so a solution still referred to anywhere is never reused.
"""
import sys
import threading

import numpy as np

from ..kernels.cpu import blas

__all__ = ["take", "take_zeros", "give", "lend", "lend_zeros", "clear", "held_bytes", "MIN_BYTES",
           "MAX_BYTES", "MAX_LENT"]

#: arrays smaller than this are allocated as usual and never kept
MIN_BYTES = 1 << 20
#: the most bytes kept between solves
MAX_BYTES = 512 << 20

# references to an array inside give() when only the caller's variable holds it: that
# variable, give's argument tuple, the loop variable and getrefcount's own argument
_OWNED = 4

#: the most lent arrays remembered (older ones are forgotten: they stay the caller's)
MAX_LENT = 32
# references to a lent array inside _reclaim when only the pool holds it: the _lent list,
# the loop variable and getrefcount's own argument
_LENT_OWNED = 3

_lock = threading.Lock()
_free = []          # arrays given back, oldest first
_lent = []          # arrays whose views left as solutions, oldest first


def take(n, dtype=np.float64):
    """A 1-D C-contiguous array of ``n`` entries of ``dtype``, uninitialised: one given
    back (or lent and no longer referred to) earlier where there is one of that size and
    type, else ``np.empty``."""
    dtype = np.dtype(dtype)
    n = int(n)
    if n * dtype.itemsize >= MIN_BYTES:
        with _lock:
            a = _pop_free(n, dtype)
            if a is None and _reclaim():
                a = _pop_free(n, dtype)
            if a is not None:
                return a
    return np.empty(n, dtype=dtype)


def _pop_free(n, dtype):
    for i in range(len(_free) - 1, -1, -1):
        a = _free[i]
        if a.size == n and a.dtype == dtype:
            del _free[i]
            return a
    return None


def _reclaim():
    """Move the lent arrays nothing else refers to any more to the free list (lock held);
    whether any moved."""
    moved = False
    for i in range(len(_lent) - 1, -1, -1):
        a = _lent[i]
        if sys.getrefcount(a) <= _LENT_OWNED:
            del _lent[i]
            _free.append(a)
            moved = True
        del a
    if moved:
        _cap()
    return moved


def _cap():
    held = sum(b.nbytes for b in _free)
    while held > MAX_BYTES:
        held -= _free.pop(0).nbytes


def lend(n, dtype=np.float64):
    """:func:`take` for an array that leaves the caller (a solution): a view of a pool
    array, which the pool takes back once nothing else refers to it.  Arrays below
    :data:`MIN_BYTES` are plain ``np.empty`` arrays."""
    a = take(n, dtype)
    if a.nbytes < MIN_BYTES:
        return a
    v = a[:]
    with _lock:
        _lent.append(a)
        if len(_lent) > MAX_LENT:
            _lent.pop(0)
    return v


def lend_zeros(n, dtype=np.float64):
    """:func:`lend`, filled with zeros."""
    return _zero(lend(n, dtype))


def take_zeros(n, dtype=np.float64):
    """:func:`take`, filled with zeros."""
    return _zero(take(n, dtype))


def _zero(a):
    """``a`` filled with zeros: a pool-sized float64 array on all threads (NumPy's fill
    runs on one: 0.57 against 0.32 ms for 16 MiB on two cores)."""
    if a.dtype == np.float64 and a.nbytes >= MIN_BYTES:
        blas.fill(a, 0.0)
    else:
        a.fill(0)
    return a


def give(*arrays):
    """Give back arrays from :func:`take` (1-D, owning their memory; others are ignored).

    The caller must hold the last reference to each, in one variable, and pass them as
    plain arguments (``give(*lst)`` holds one more reference through its argument list):
    an array that anything else still refers to (a view of it included) is not kept, so a
    reference the caller overlooked costs only the reuse."""
    with _lock:
        for a in arrays:
            if (a is None or not isinstance(a, np.ndarray) or a.ndim != 1 or a.base is not None
                    or a.nbytes < MIN_BYTES or a.nbytes > MAX_BYTES
                    or sys.getrefcount(a) > _OWNED or any(a is b for b in _free)):
                continue
            _free.append(a)
        _cap()


def clear():
    """Drop every kept array (their memory goes back to the allocator) and forget the
    lent ones."""
    with _lock:
        _free.clear()
        _lent.clear()


def held_bytes():
    """Bytes kept now."""
    with _lock:
        return sum(a.nbytes for a in _free)
