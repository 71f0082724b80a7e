"""Array allocation through small disk-cached kernels.

Numba compiles its ``np.empty``/``np.zeros``/``np.full`` implementations once per process
and signature, ~0.05-0.13 s each: some 0.8 s of every cold compile of a stiff or explicit
loop went to them (Numba's compile events), although the loops' cached entry points never
need them again.  The loops allocate through these helpers instead: the first compile of
each is kept in the disk cache with the allocation code inside, and a loop compiled in a
later process loads it (with its bitcode, so LLVM still inlines it: the same code).  They
take no functions, so caching them is safe (tests/test_kernel_cache.py).
"""
import numpy as np
from numba import njit

__all__ = ["empty1", "zeros1", "empty2", "zeros2", "zeros1_int", "empty1_complex", "full1"]


@njit(cache=True)
def empty1(n):
    """``np.empty(n)`` (float64)."""
    return np.empty(n)


@njit(cache=True)
def zeros1(n):
    """``np.zeros(n)`` (float64)."""
    return np.zeros(n)


@njit(cache=True)
def empty2(m, n):
    """``np.empty((m, n))`` (float64)."""
    return np.empty((m, n))


@njit(cache=True)
def zeros2(m, n):
    """``np.zeros((m, n))`` (float64)."""
    return np.zeros((m, n))


@njit(cache=True)
def zeros1_int(n):
    """``np.zeros(n, np.int64)``."""
    return np.zeros(n, np.int64)


@njit(cache=True)
def empty1_complex(n):
    """``np.empty(n, np.complex128)``."""
    return np.empty(n, np.complex128)


@njit(cache=True)
def full1(n, v):
    """``np.full(n, v)`` (float64 ``v``)."""
    return np.full(n, v)
