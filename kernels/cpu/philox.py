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

The transform's logarithm, sine and cosine are written here as polynomials (exactly
rounded IEEE operations only: +, *, /, sqrt; no libm call, no fused multiply-add), so a
normal is the same bits in a scalar loop, in a SIMD loop over lanes (the batched kernels
vectorise it: about 3 ns per normal and core on AVX-512, against 12 ns through libm) and
on any backend that rounds the same operations the same way.  ``log`` reduces to a
mantissa m in [sqrt(1/2), sqrt(2)) and evaluates fdlibm's minimax polynomial in
s = (m - 1)/(m + 1) (|s| < 0.172, seven terms, ``e_log.c``); sine and cosine take the
angle 2 pi u2 exactly apart into a quadrant from the integer bits of u2 and a remainder
|x| <= pi/4, then fdlibm's minimax kernels (``k_sin.c``, ``k_cos.c``: six terms each).
All three agree with the correctly rounded values to 1-2 ulp (tested against libm).

References
----------
J. K. Salmon, M. A. Moraes, R. O. Dror, D. E. Shaw, "Parallel random numbers: as easy
as 1, 2, 3", SC11 (2011); known-answer vectors from Random123's ``kat_vectors``.
G. E. P. Box, M. E. Muller, Ann. Math. Statist. 29 (1958) 610-611.
J.-M. Muller, *Elementary Functions: Algorithms and Implementation*, 3rd ed., Birkhäuser
(2016), ch. 11 (range reduction of log and of the trigonometric functions).
Sun Microsystems, fdlibm 5.3 (1993): ``e_log.c`` (Lg1..Lg7), ``k_sin.c`` (S1..S6),
``k_cos.c`` (C1..C6), the minimax coefficients used here.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["philox4x32_10", "normal_pair", "normal", "philox4x32", "normals", "log_unit",
           "sincos_quarter", "normal_pairs_lanes", "unit_functions"]

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
_TWO50 = np.int64(1) << 50
_S51 = np.int64(51)
_LN2_HI = 6.93147180369123816490e-01     # ln 2 = _LN2_HI + _LN2_LO (fdlibm's split)
_LN2_LO = 1.90821492927058770002e-10
_SQRT2 = math.sqrt(2.0)
_HALFPI = math.pi / 2.0
_MANT = np.int64(0x000FFFFFFFFFFFFF)
_ONE_BITS = np.int64(0x3FF0000000000000)
_S52 = np.int64(52)
_S63 = np.int64(63)
# fdlibm's minimax coefficients: log(m) = 2s + s R(s^2) (e_log.c, |s| < 0.1716),
# sin x = x + x^3 S(x^2), cos x = 1 - x^2/2 + x^4 C(x^2) (k_sin.c, k_cos.c, |x| <= pi/4)
_LG1, _LG2, _LG3 = 6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01
_LG4, _LG5, _LG6 = 2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_KS1, _KS2, _KS3 = -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04
_KS4, _KS5, _KS6 = 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10
_KC1, _KC2, _KC3 = 4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05
_KC4, _KC5, _KC6 = -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11


@intrinsic
def _f2i(typingctx, x):
    """The bits of a float64 as an int64."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))
    return types.int64(types.float64), codegen


@intrinsic
def _i2f(typingctx, x):
    """An int64's bits as a float64."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))
    return types.float64(types.int64), codegen


@njit(cache=False, inline="always")
def _horner6(z, c1, c2, c3, c4, c5, c6):
    """c1 + c2 z + ... + c6 z^5 in Horner's order (no fused multiply-add)."""
    r = c6
    r = c5 + z * r
    r = c4 + z * r
    r = c3 + z * r
    r = c2 + z * r
    return c1 + z * r


@njit(cache=False, inline="always", error_model="numpy")
def log_unit(x):
    """Natural logarithm of a positive normal float64 (polynomial, about 1 ulp)."""
    b = _f2i(x)
    e = (b >> _S52) - 1023
    m = _i2f((b & _MANT) | _ONE_BITS)            # x = m 2^e, m in [1, 2)
    big = m > _SQRT2
    m = 0.5 * m if big else m
    e = e + 1 if big else e
    s = (m - 1.0) / (m + 1.0)                      # log m = 2 atanh s
    z = s * s
    r = _LG1 + z * _horner6(z, _LG2, _LG3, _LG4, _LG5, _LG6, _LG7)
    lm = 2.0 * s + s * (z * r)
    fe = float(np.int32(e))
    return fe * _LN2_HI + (lm + fe * _LN2_LO)


@njit(cache=False, inline="always", error_model="numpy")
def sincos_quarter(y4, j):
    """cos and sin of (pi/2) y4 for y4 in [0, 4], given j = round(y4) (an int64)."""
    x = (y4 - float(np.int32(j))) * _HALFPI     # |x| <= pi/4
    z = x * x
    sn = x + x * (z * _horner6(z, _KS1, _KS2, _KS3, _KS4, _KS5, _KS6))
    cs = 1.0 + z * (-0.5 + z * _horner6(z, _KC1, _KC2, _KC3, _KC4, _KC5, _KC6))
    jj = j & 3                                   # rotate by j quarter turns (selects only)
    swap = (jj & 1) == 1
    c0 = sn if swap else cs
    s0 = cs if swap else sn
    # the signs by the sign bit (the same bits as multiplying by -1.0 or 1.0)
    nc = (((jj + 1) >> 1) & 1) << _S63
    ns = ((jj >> 1) & 1) << _S63
    return _i2f(_f2i(c0) ^ nc), _i2f(_f2i(s0) ^ ns)


@njit(cache=False, inline="always", error_model="numpy")
def _box_muller(x0, x1, x2, x3):
    """Two standard normals from four 32-bit words (uint64 holding 32-bit values)."""
    # 53-bit uniforms strictly inside (0, 1); u2 as its 53-bit integer k2
    u1 = (float(np.int64(x0 >> _S5)) * _TWO26 + float(np.int64(x1 >> _S6)) + 0.5) * _INV53
    k2 = (np.int64(x2 >> _S5) << np.int64(26)) | np.int64(x3 >> _S6)
    j = (k2 + _TWO50) >> _S51                    # round(4 u2), 0..4
    y4 = (float(k2) + 0.5) * (4.0 * _INV53)      # 4 u2
    r = np.sqrt(-2.0 * log_unit(u1))
    c, s = sincos_quarter(y4, j)
    return r * c, r * s


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


_philox_inline = njit(cache=False, inline="always")(philox4x32_10.py_func)


def unit_functions(x):
    """``(log_unit(x), cos 2 pi x, sin 2 pi x)`` for an array x in (0, 1), for tests."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty((3, x.size))
    _unit_functions(x, out)
    return out


@njit(cache=True, error_model="numpy")
def _unit_functions(x, out):
    for i in range(x.size):
        out[0, i] = log_unit(x[i])
        y4 = 4.0 * x[i]
        j = np.int64(np.floor(y4 + 0.5))
        c, s = sincos_quarter(y4, j)
        out[1, i] = c
        out[2, i] = s


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
    return _box_muller(x0, x1, x2, x3)


@njit(cache=False, error_model="numpy")
def normal_pairs_lanes(seed, traj0, n, block, stream, z0, z1):
    """``normal_pair(seed, traj0 + l, n, block, stream)`` for the lanes l = 0..L-1 into
    ``z0[l], z1[l]``: one SIMD loop (the same bits as the scalar function)."""
    s = np.uint64(seed)
    k0 = s & _MASK
    k1 = s >> _S32
    nn = np.uint64(n)
    c0 = nn & _MASK
    c1 = nn >> _S32
    w2 = (np.uint64(block) & np.uint64(0xFFFFFF)) | (np.uint64(stream) << _S24)
    t0 = np.uint64(traj0)
    # lanes l and l + h in one iteration: two independent dependency chains per vector
    # (LLVM interleaves nothing here by itself; 3.2 -> 3.0 ns per normal on AVX-512)
    h = z0.size // 2
    for l in range(h):
        x0, x1, x2, x3 = _philox_inline(c0, c1, w2, (t0 + np.uint64(l)) & _MASK, k0, k1)
        y0, y1, y2, y3 = _philox_inline(c0, c1, w2, (t0 + np.uint64(l + h)) & _MASK, k0, k1)
        a, b = _box_muller(x0, x1, x2, x3)
        c, d = _box_muller(y0, y1, y2, y3)
        z0[l] = a
        z1[l] = b
        z0[l + h] = c
        z1[l + h] = d
    for l in range(2 * h, z0.size):
        x0, x1, x2, x3 = _philox_inline(c0, c1, w2, (t0 + np.uint64(l)) & _MASK, k0, k1)
        a, b = _box_muller(x0, x1, x2, x3)
        z0[l] = a
        z1[l] = b


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
