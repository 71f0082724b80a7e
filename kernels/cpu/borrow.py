"""Borrowed array references for hot loops: views without reference counting.

Every Numba array carries a pointer to its memory-info block, and every copy of an array
variable (a function argument, the members of an inlined helper's argument list, a row
view ``ks[i]``) increments and later decrements that block's count with an atomic
instruction.  Numba's reference-count pruning removes such pairs only within simple
control flow; inside an integration loop, where the inlined stage helpers hold loops and
branches, the pairs stay: measured 47 pairs per Tsit5 step of a 3-variable system, about a
quarter of the step's time (``perf``: ``NRT_incref`` and ``NRT_decref`` the two hottest
symbols of a Lorenz-63 solve).

:func:`borrow` returns the same array (same data, shape and strides) with a null
memory-info pointer, as a C array (``numba.carray``) has: every reference-count operation on
it, and on every view taken from it, is a null test that LLVM folds away.  The borrowed
array does not keep the memory alive, so:

- borrow an argument (or a member of an argument tuple): the caller owns it for the call;
- borrow a local allocation only while the owning variable stays live: use it again after
  the loop (return it, or pass it to :func:`keep_alive`), because Numba releases a
  variable right after its last use;
- never return or store a borrowed array.

References
----------
Numba documentation, *Notes on Numba Runtime* (NRT reference counting) and
*Notes on the reference count pruning pass*.
"""
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["borrow", "keep_alive"]


@intrinsic
def borrow(typingctx, arr):
    """``arr`` with a null memory-info (and parent) pointer: no reference counting."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        out = context.make_array(arr)(context, builder, value=args[0])
        out.meminfo = cgutils.get_null_value(out.meminfo.type)
        out.parent = cgutils.get_null_value(out.parent.type)
        return out._getvalue()

    return arr(arr), codegen


@intrinsic
def keep_alive(typingctx, arr):
    """A use of ``arr`` that compiles to nothing: keeps the owning variable (and its
    memory) live up to this point, for arrays :func:`borrow` has lent out."""
    def codegen(context, builder, signature, args):
        return context.get_dummy_value()

    return types.none(arr), codegen
