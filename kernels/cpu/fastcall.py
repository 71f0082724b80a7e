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


def _kind(x):
    t = type(x)
    if t is np.ndarray:
        fl = x.flags
        return (x.dtype.num, x.ndim, fl.c_contiguous, fl.writeable)
    if t is tuple:
        return tuple([_kind(y) for y in x])
    if t is float:
        return "f"
    if t is bool:
        return "b"
    if t is int:
        return "i"
    if isinstance(x, (bool, np.bool_)):
        return "b"
    if isinstance(x, (int, np.integer)):
        return "i"
    if isinstance(x, (float, np.floating)):
        return "f"
    hit = _FN_KINDS.get(id(x))
    if hit is not None and hit[0] is x:
        return hit[1]
    k = (type(x).__name__, str(getattr(x, "_sig", None)))
    if len(_FN_KINDS) > 4096:
        _FN_KINDS.clear()
    _FN_KINDS[id(x)] = (x, k)
    return k


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
