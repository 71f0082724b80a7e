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
"""
import sys
import threading

import numpy as np

__all__ = ["take", "take_zeros", "give", "clear", "held_bytes", "MIN_BYTES", "MAX_BYTES"]

#: arrays smaller than this are allocated as usual and never kept
MIN_BYTES = 1 << 20
#: the most bytes kept between solves
MAX_BYTES = 512 << 20

# references to an array inside give() when only the caller's variable holds it: that
# variable, give's argument tuple, the loop variable and getrefcount's own argument
_OWNED = 4

_lock = threading.Lock()
_free = []          # arrays given back, oldest first


def take(n, dtype=np.float64):
    """A 1-D C-contiguous array of ``n`` entries of ``dtype``, uninitialised: one given
    back earlier where there is one of that size and type, else ``np.empty``."""
    dtype = np.dtype(dtype)
    n = int(n)
    if n * dtype.itemsize >= MIN_BYTES:
        with _lock:
            for i in range(len(_free) - 1, -1, -1):
                a = _free[i]
                if a.size == n and a.dtype == dtype:
                    del _free[i]
                    return a
    return np.empty(n, dtype=dtype)


def take_zeros(n, dtype=np.float64):
    """:func:`take`, filled with zeros."""
    a = take(n, dtype)
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
        held = sum(b.nbytes for b in _free)
        while held > MAX_BYTES:
            held -= _free.pop(0).nbytes


def clear():
    """Drop every kept array (their memory goes back to the allocator)."""
    with _lock:
        _free.clear()


def held_bytes():
    """Bytes kept now."""
    with _lock:
        return sum(a.nbytes for a in _free)
