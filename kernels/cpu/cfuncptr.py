"""User functions handed to the compiled loops as plain C function pointers.

The loops take every function (the user's ``f``, its complex twin, ``jac``, ``vjp``, the
grid operators' cfuncs ...) as an argument, so each loop compiles once per signature and
not once per function.  Numba's own first-class function type (a ``CFunc`` passed as an
argument) does that, but at a price:

- every call site carries a fallback that, should the address be null, takes the GIL
  and asks Python for it (code that every loop compiles, ~20 sites in the stiff loop);
- unboxing one such argument calls two Python functions (~1.5-4 us per function per
  call of a compiled kernel: more than a short solve's whole loop);
- a disk-cached function compiled while a cached callee that takes first-class
  functions was loaded from the cache is stored broken (tests/test_kernel_cache.py), so
  the loops' function-taking helpers cannot be cached.

:func:`as_pointer` marks a ``CFunc`` so that Numba types it as :class:`CFuncPointer`, an
external function pointer of the cfunc's signature: unboxed by reading one attribute,
called directly through the address (the same C entry point the first-class type
calls), no Python in the compiled code.  The loops' source does not change: ``f(du, u,
p, t)`` types and lowers either way.
"""
from numba import types
from numba.core.ccallback import CFunc
from numba.core.datamodel.models import ExternalFuncPointerModel
from numba.extending import NativeValue, register_model, typeof_impl, unbox

__all__ = ["CFuncPointer", "PointerCFunc", "as_pointer"]


def _address(cf):
    """The C entry point of the cfunc ``cf`` (the type's ``get_pointer``; module level,
    so the type pickles by reference into Numba's cache index)."""
    return cf._wrapper_address


class CFuncPointer(types.ExternalFunctionPointer):
    """Numba type of a :class:`PointerCFunc`: a C function pointer of signature ``sig``."""

    def __init__(self, sig):
        super().__init__(sig, get_pointer=_address)
        self.name = f"cfuncptr({sig})"


register_model(CFuncPointer)(ExternalFuncPointerModel)


class PointerCFunc(CFunc):
    """A Numba ``CFunc`` that compiled code takes as a :class:`CFuncPointer`."""


_TYPES = {}


@typeof_impl.register(PointerCFunc)
def _typeof_pointer_cfunc(val, c):
    # one type object per signature: building one (its typing template) costs ~50 us
    sig = val._sig
    ty = _TYPES.get(sig)
    if ty is None:
        ty = _TYPES[sig] = CFuncPointer(sig)
    return ty


@unbox(CFuncPointer)
def _unbox_pointer_cfunc(typ, obj, c):
    ptrty = c.context.get_function_pointer_type(typ)
    addr = c.pyapi.object_getattr_string(obj, "_wrapper_address")
    ptr = c.pyapi.long_as_voidptr(addr)
    c.pyapi.decref(addr)
    return NativeValue(c.builder.bitcast(ptr, ptrty), is_error=c.pyapi.c_api_error())


def as_pointer(cf):
    """``cf`` (a Numba ``CFunc``, compiled) marked as a :class:`PointerCFunc`, in place;
    returned for chaining.  Anything else is returned unchanged."""
    if type(cf) is CFunc:
        cf.__class__ = PointerCFunc
    return cf
