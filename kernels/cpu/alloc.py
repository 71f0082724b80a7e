"""Array allocation emitted in place (Numba intrinsics), for the compiled loops.

``np.empty``/``np.zeros``/``np.full`` inside a compiled function make Numba compile a
NumPy implementation per process and signature (~0.05-0.13 s each), and small
disk-cached kernels wrapping them cost a compile of their own in a fresh cache (~0.1-0.2 s
each, ~1 s of a stiff loop's cold compile: Numba's compile events) and one more per
literal argument (``zeros1_int(5)`` and ``zeros1_int(n)`` were two).  These intrinsics
emit the allocation into the calling function directly (Numba's own ``_empty_nd_impl``:
the NRT-allocated, C-contiguous, aligned array ``np.empty`` makes, with its negative-size
and overflow checks), so nothing is compiled for them, and any integer type or literal
types the same.  ``zeros*`` clear the memory with ``memset``; ``full1`` stores in a loop.
"""
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic
from numba.np.arrayobj import _empty_nd_impl, _parse_shape, make_array

__all__ = ["empty1", "zeros1", "empty2", "zeros2", "zeros1_int", "empty1_complex", "full1",
           "empty_rows"]


def _check_sizes(fname, sizes):
    for s in sizes:
        if not isinstance(s, types.Integer):
            raise TypingError(f"{fname}: sizes must be integers, got {s}")


def _new(context, builder, arrtype, sizes, args, zero):
    """Allocate ``arrtype`` with the lowered integer ``args`` (typed ``sizes``) as shape."""
    shape = []
    for ty, val in zip(sizes, args):
        shape.extend(_parse_shape(context, builder, ty, val))   # intp, checked >= 0
    ary = _empty_nd_impl(context, builder, arrtype, shape)
    if zero:
        cgutils.memset(builder, ary.data, builder.mul(ary.itemsize, ary.nitems), 0)
    return ary


def _alloc_intrinsic(name, dtype, ndim, zero, doc):
    arrtype = types.Array(dtype, ndim, "C")

    def typer(typingctx, *sizes):
        _check_sizes(name, sizes)

        def codegen(context, builder, sig, args):
            return _new(context, builder, arrtype, sig.args, args, zero)._getvalue()

        return arrtype(*sizes), codegen

    # intrinsic needs an explicit argument list (it inspects the typer's signature)
    if ndim == 1:
        def f(typingctx, n):
            return typer(typingctx, n)
    else:
        def f(typingctx, m, n):
            return typer(typingctx, m, n)
    f.__name__ = name
    f.__qualname__ = name
    f.__doc__ = doc
    return intrinsic(f)


empty1 = _alloc_intrinsic("empty1", types.float64, 1, False, "``np.empty(n)`` (float64).")
zeros1 = _alloc_intrinsic("zeros1", types.float64, 1, True, "``np.zeros(n)`` (float64).")
empty2 = _alloc_intrinsic("empty2", types.float64, 2, False, "``np.empty((m, n))`` (float64).")
zeros2 = _alloc_intrinsic("zeros2", types.float64, 2, True, "``np.zeros((m, n))`` (float64).")
zeros1_int = _alloc_intrinsic("zeros1_int", types.int64, 1, True, "``np.zeros(n, np.int64)``.")
empty1_complex = _alloc_intrinsic("empty1_complex", types.complex128, 1, False,
                                  "``np.empty(n, np.complex128)``.")


@intrinsic
def full1(typingctx, n, v):
    """``np.full(n, v)`` (float64)."""
    _check_sizes("full1", (n,))
    if not isinstance(v, (types.Float, types.Integer)):
        raise TypingError(f"full1: fill value must be a real number, got {v}")
    arrtype = types.Array(types.float64, 1, "C")

    def codegen(context, builder, sig, args):
        ary = _new(context, builder, arrtype, sig.args[:1], args[:1], False)
        val = context.cast(builder, args[1], sig.args[1], types.float64)
        with cgutils.for_range(builder, ary.nitems) as loop:
            builder.store(val, cgutils.gep_inbounds(builder, ary.data, loop.index))
        return ary._getvalue()

    return arrtype(n, v), codegen


@intrinsic
def empty_rows(typingctx, a, m):
    """A new C-contiguous array like ``a`` (dtype and trailing dimensions) with ``m`` rows:
    ``np.empty((m,) + a.shape[1:], a.dtype)``."""
    if not isinstance(a, types.Array):
        raise TypingError(f"empty_rows: a must be an array, got {a}")
    _check_sizes("empty_rows", (m,))
    arrtype = types.Array(a.dtype, a.ndim, "C")

    def codegen(context, builder, sig, args):
        src = make_array(sig.args[0])(context, builder, args[0])
        shape = _parse_shape(context, builder, sig.args[1], args[1])
        shape += cgutils.unpack_tuple(builder, src.shape, count=sig.args[0].ndim)[1:]
        return _empty_nd_impl(context, builder, arrtype, shape)._getvalue()

    return arrtype(a, m), codegen
