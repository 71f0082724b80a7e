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

:func:`column` is the same kind of view of one column of a C-contiguous 2-D array, built
so that the compiler sees its element address as ``data + l * itemsize + i * ncols *
itemsize``: a loop over ``l`` that passes ``column(A, l)`` to an inlined function reads and
writes consecutive memory, and vectorises.  (Numba's own ``A[:, l]`` takes the column
offset from the array's run-time strides: the same loop compiles to gathers.)

References
----------
Numba documentation, *Notes on Numba Runtime* (NRT reference counting) and
*Notes on the reference count pruning pass*.
"""
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["borrow", "column", "keep_alive"]


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


@intrinsic
def column(typingctx, arr, l):
    """The column ``arr[:, l]`` of a C-contiguous 2-D array as a borrowed 1-D view (no
    memory-info pointer, as :func:`borrow`), its offset and stride computed from the shape
    and the item size, not the run-time strides: loops over ``l`` vectorise (see the module
    docstring).  No bounds check, as Numba's indexing."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and arr.layout == "C"
            and isinstance(l, types.Integer)):
        return None
    view = types.Array(arr.dtype, 1, "A", readonly=not arr.mutable)

    def codegen(context, builder, signature, args):
        a = context.make_array(arr)(context, builder, value=args[0])
        out = context.make_array(view)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(
            context.get_data_type(arr.dtype)))
        nrows, ncols = cgutils.unpack_tuple(builder, a.shape, 2)
        col = context.cast(builder, args[1], signature.args[1], types.intp)
        data = builder.bitcast(cgutils.pointer_add(builder, a.data, builder.mul(col, itemsize)),
                               a.data.type)
        stride = builder.mul(ncols, itemsize)
        context.populate_array(out, data=data, shape=cgutils.pack_array(builder, [nrows]),
                               strides=cgutils.pack_array(builder, [stride]),
                               itemsize=itemsize, meminfo=None, parent=None)
        return out._getvalue()

    return view(arr, l), codegen
