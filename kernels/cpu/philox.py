"""Philox4x32-10 counter-based random numbers and standard normals (Box-Muller).

A counter-based generator is a keyed bijection of a counter: the random numbers are a
pure function of (seed, trajectory, counter, component), so any one of them can be
regenerated in O(1) time and memory, in any order, on any backend, in a reverse pass.
This is what makes SDE noise reproducible without storing it.

Layout used by jitsolve (all words uint32):

* key     = (seed & 0xffffffff, seed >> 32)
* counter = (n & 0xffffffff, n >> 32, (component // 2) | (stream << 24), trajectory)

where ``n`` is a 64-bit counter (a step index or a node of a Brownian tree) and
``stream`` (0..255) separates independent uses of the same counter.  One Philox call
gives four 32-bit words: two 53-bit uniforms in (0, 1), turned into the two normals of
one Box-Muller pair, ``comp`` even taking the cosine and odd the sine branch.

References
----------
J. K. Salmon, M. A. Moraes, R. O. Dror, D. E. Shaw, "Parallel random numbers: as easy
as 1, 2, 3", SC11 (2011); known-answer vectors from Random123's ``kat_vectors``.
G. E. P. Box, M. E. Muller, Ann. Math. Statist. 29 (1958) 610-611.
"""
import numpy as np
from numba import njit

__all__ = ["philox4x32_10", "normal_pair", "normal", "philox4x32", "normals"]

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S24 = np.uint64(24)
_S5 = np.uint64(5)
_S6 = np.uint64(6)
_TWO26 = 67108864.0
_INV53 = 1.0 / 9007199254740992.0
_TWOPI = 2.0 * np.pi


@njit(cache=True)
def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Ten Philox rounds on the counter (c0..c3) with key (k0, k1): uint64 words that
    hold 32-bit values in, four 32-bit values (as uint64) out."""
    c0 = np.uint64(c0) & _MASK
    c1 = np.uint64(c1) & _MASK
    c2 = np.uint64(c2) & _MASK
    c3 = np.uint64(c3) & _MASK
    k0 = np.uint64(k0) & _MASK
    k1 = np.uint64(k1) & _MASK
    for _ in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        n0 = (p1 >> _S32) ^ c1 ^ k0
        n2 = (p0 >> _S32) ^ c3 ^ k1
        c1 = p1 & _MASK
        c3 = p0 & _MASK
        c0 = n0
        c2 = n2
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return c0, c1, c2, c3


@njit(cache=False)
def normal_pair(seed, traj, n, block, stream):
    """Two independent standard normals, a pure function of the arguments.

    ``seed`` (< 2**64), ``traj`` (< 2**32), ``n`` (64-bit counter), ``block`` (< 2**24,
    the component pair) and ``stream`` (< 256)."""
    s = np.uint64(seed)
    nn = np.uint64(n)
    w2 = (np.uint64(block) & np.uint64(0xFFFFFF)) | (np.uint64(stream) << _S24)
    x0, x1, x2, x3 = philox4x32_10(nn & _MASK, nn >> _S32, w2, np.uint64(traj),
                                   s & _MASK, s >> _S32)
    # 53-bit uniforms strictly inside (0, 1)
    # (signed conversions: the values fit in 27 and 26 bits, and int64 -> float64 is a
    # single instruction where uint64 -> float64 is not)
    u1 = (float(np.int64(x0 >> _S5)) * _TWO26 + float(np.int64(x1 >> _S6)) + 0.5) * _INV53
    u2 = (float(np.int64(x2 >> _S5)) * _TWO26 + float(np.int64(x3 >> _S6)) + 0.5) * _INV53
    r = np.sqrt(-2.0 * np.log(u1))
    a = _TWOPI * u2
    return r * np.cos(a), r * np.sin(a)


@njit(cache=True)
def normal(seed, traj, n, comp, stream):
    """The standard normal of component ``comp`` at counter ``n`` (see module docstring)."""
    z0, z1 = normal_pair(seed, traj, n, comp >> 1, stream)
    if comp & 1:
        return z1
    return z0


def philox4x32(ctr, key):
    """Philox4x32-10 of a 4-word counter and 2-word key (Python ints), as 4 ints."""
    out = philox4x32_10(np.uint64(ctr[0]), np.uint64(ctr[1]), np.uint64(ctr[2]),
                        np.uint64(ctr[3]), np.uint64(key[0]), np.uint64(key[1]))
    return tuple(int(x) for x in out)


@njit(cache=True)
def _normals(seed, traj, ns, comp, stream, out):
    for i in range(ns.size):
        out[i] = normal(seed, traj, ns[i], comp, stream)


def normals(seed, traj, counters, comp=0, stream=0):
    """Standard normals for an array of counters (one component), for tests and tools."""
    ns = np.ascontiguousarray(counters, dtype=np.int64)
    out = np.empty(ns.size, dtype=np.float64)
    _normals(np.uint64(seed), np.uint64(traj), ns, np.int64(comp), np.int64(stream), out)
    return out
