"""Complex powers with integral exponents by repeated multiplication, as NumPy does.

Numba lowers ``z ** b`` for complex ``z`` through ``numba_cpow`` (``exp(b log z)``) for
every ``b`` but ``2``.  For a negative real base that is wrong where jitsolve needs it
most: the complex step ``z = x + i h`` (``h`` ~ 1e-30) has ``arg z = pi - h/|x|``, and
``exp(3 log z)`` rounds ``sin(3 arg z)`` to about ``1e-16``, not ``-3h/|x|``: the
derivative of ``u**3`` at ``u = -1`` came out ~3.7e14 instead of 3, and a stiff solve of
``du = -u**3`` from ``u0 = -1`` returned ``Success`` with a wrong answer.

Installing this module (importing :mod:`jitsolve.kernels.cpu` does) makes Numba lower a
complex power whose exponent is real and integral with ``|n| < 100`` as binary
exponentiation (``1/z**|n|`` for ``n < 0``), exactly NumPy's ``npy_cpow``; every other
exponent still goes through ``numba_cpow``.  The change is process-wide and only moves
Numba's results onto NumPy's: ``z ** 3`` in any function compiled afterwards equals
``numpy.power(z, 3)``.  Functions already in Numba's disk cache keep their old code
until their source changes.

References
----------
NumPy, ``npy_cpow`` in ``numpy/_core/src/npymath/npy_math_complex.c.src`` (binary
exponentiation for integral exponents below 100); Knuth, *TAOCP* vol. 2, sec. 4.6.3
(evaluation of powers); Squire, Trapp, SIAM Rev. 40 (1998) (complex-step derivatives).
"""
import operator

from numba.core import types
from numba.core.imputils import lower_builtin
from numba.core.typing import signature
from numba.cpython import numbers

#: Numba's own lowering, kept for the exponents handled by ``numba_cpow``
_libm_complex_power = getattr(numbers, "_jitsolve_libm_complex_power", numbers.complex_power_impl)


def _integral_exponent(br, bi):
    """True when ``br + i bi`` is a real integer ``n`` with ``|n| < 100`` (NumPy's range)."""
    return bi == 0.0 and br > -100.0 and br < 100.0 and br == float(int(br))


def _binary_power(z, br):
    """``z ** n`` for the integer ``n = br``, ``|n| < 100``, by repeated squaring."""
    n = int(br)
    m = -n if n < 0 else n
    acc = z * 0.0 + 1.0
    p = z
    while m > 0:
        if m & 1:
            acc = acc * p
        m >>= 1
        if m > 0:
            p = p * p
    if n < 0:
        return 1.0 / acc
    return acc


def complex_power_exact(context, builder, sig, args):
    """Lower ``a ** b`` (both complex): binary exponentiation for an integral ``b``."""
    ca, cb = args
    ty = sig.args[0]
    fty = ty.underlying_float
    b = context.make_helper(builder, ty, value=cb)
    is_int = context.compile_internal(builder, _integral_exponent,
                                      signature(types.boolean, fty, fty), (b.real, b.imag))
    out = builder.alloca(context.get_value_type(ty))
    with builder.if_else(is_int) as (then, otherwise):
        with then:
            res = context.compile_internal(builder, _binary_power, signature(ty, ty, fty),
                                           (ca, b.real))
            builder.store(res, out)
        with otherwise:
            builder.store(_libm_complex_power(context, builder, sig, args), out)
    return builder.load(out)


def install():
    """Register :func:`complex_power_exact` for ``**``, ``**=`` and ``pow`` on complex
    numbers, and for ``numpy.power`` (whose lowering calls ``complex_power_impl`` of
    ``numba.np.math.numbers``, a second copy of ``numba.cpython.numbers``)."""
    if getattr(numbers, "_jitsolve_libm_complex_power", None) is not None:
        return
    numbers._jitsolve_libm_complex_power = _libm_complex_power
    numbers.complex_power_impl = complex_power_exact
    try:
        from numba.np.math import numbers as np_numbers
    except ImportError:  # pragma: no cover - older Numba: numpy.power uses the module above
        np_numbers = None
    if np_numbers is not None:
        np_numbers.complex_power_impl = complex_power_exact
    for op in (operator.pow, operator.ipow, pow):
        # a later registration of the same formal signature replaces the earlier one
        lower_builtin(op, types.Complex, types.Complex)(complex_power_exact)
