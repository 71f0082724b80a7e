"""Call a compiled kernel without Numba's per-call argument typing.

Numba types every argument of a dispatcher call in Python; for tuples holding
first-class functions (every integration loop's arguments) that costs ~0.5 ms per call,
more than a whole short solve.  :func:`call` keys the argument *kinds* cheaply (dtype,
rank, layout and writeability of arrays; kinds of scalars; signatures of cfuncs) and,
after the first (normally dispatched) call, goes straight to the compiled entry point.
"""
import numpy as np

__all__ = ["call"]

_ENTRY = {}


#: kinds of first-class function values, by id (with the object, so an id is never reused
#: while its entry lives): formatting a cfunc's signature costs ~10 us
_FN_KINDS = {}


# the flags that enter Numba's array type: layout (C, F or any) and mutability, alignment
_ARRAY_FLAGS = (0x0001      # NPY_ARRAY_C_CONTIGUOUS
                | 0x0002    # NPY_ARRAY_F_CONTIGUOUS
                | 0x0100    # NPY_ARRAY_ALIGNED
                | 0x0400)   # NPY_ARRAY_WRITEABLE
_SCALAR_KINDS = {float: "f", bool: "b", int: "i", type(None): "n"}


def _kind_other(x):
    """Kind of an argument that is neither an array, a tuple nor a Python scalar."""
    hit = _FN_KINDS.get(id(x))
    if hit is not None and hit[0] is x:
        return hit[1]
    if isinstance(x, (bool, np.bool_)):
        return "b"
    if isinstance(x, (int, np.integer)):
        return "i"
    if isinstance(x, (float, np.floating)):
        return "f"
    k = (type(x).__name__, str(getattr(x, "_sig", None)))
    if len(_FN_KINDS) > 4096:
        _FN_KINDS.clear()
    _FN_KINDS[id(x)] = (x, k)
    return k


def _kind(args):
    """The kinds of a tuple of arguments (nested tuples recursively): one flat loop,
    since it runs on every call (~50 values for a gradient's reverse sweep)."""
    out = []
    for x in args:
        t = type(x)
        if t is np.ndarray:
            out.append((x.dtype.num, x.ndim, x.flags.num & _ARRAY_FLAGS))
        elif t is tuple:
            out.append(_kind(x))
        else:
            k = _SCALAR_KINDS.get(t)
            out.append(k if k is not None else _kind_other(x))
    return tuple(out)


def call(dispatcher, *args):
    """``dispatcher(*args)``, through the compiled entry point once it is known."""
    key = (id(dispatcher), _kind(args))
    ep = _ENTRY.get(key)
    if ep is not None:
        return ep(*args)
    out = dispatcher(*args)
    sig = tuple(dispatcher.typeof_pyval(a) for a in args)
    cres = dispatcher.overloads.get(sig)
    if cres is not None:
        _ENTRY[key] = cres.entry_point
    return out
