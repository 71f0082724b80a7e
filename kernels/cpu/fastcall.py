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


def _kind(x):
    if isinstance(x, np.ndarray):
        return (x.dtype.num, x.ndim, x.flags.c_contiguous, x.flags.writeable)
    if isinstance(x, tuple):
        return tuple(_kind(y) for y in x)
    if isinstance(x, (bool, np.bool_)):
        return "b"
    if isinstance(x, (int, np.integer)):
        return "i"
    if isinstance(x, (float, np.floating)):
        return "f"
    return (type(x).__name__, str(getattr(x, "_sig", None)))


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
