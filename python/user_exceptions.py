"""Exceptions raised by the user's functions inside compiled loops, reported once.

Integration loops call the user's functions as Numba cfuncs, and a cfunc cannot hand an
exception back to its caller: Numba reports it through :data:`sys.unraisablehook`
("Exception ignored in: '<numba.core.cpu.CPUContext>'") and the loop goes on with whatever
the function left in its output, so a raising function would otherwise give a wrong
result next to one printed traceback per call (thousands per solve).
:class:`WatchUserExceptions` installs, on first use, a hook that counts those reports
while a public call (``solve``, ``gradient``) runs, instead of printing them; when the
outermost such call ends, :class:`jitsolve.errors.UserFunctionError` is raised with the
first exception chained.  Reports outside such a call, and every other unraisable
exception, go to the hook that was installed before.  The count is process-wide (calls
running at the same time in several Python threads share it).
"""
import sys
import threading

from .errors import UserFunctionError

__all__ = ["WatchUserExceptions"]

_lock = threading.Lock()
_state = {"depth": 0, "count": 0, "first": None, "previous": None}


def _from_compiled_code(unraisable):
    """Whether an unraisable report comes from a Numba-compiled function (Numba passes
    the name of its target context, e.g. ``'<numba.core.cpu.CPUContext>'``)."""
    obj = unraisable.object
    return isinstance(obj, str) and obj.startswith("<numba.")


def _hook(unraisable):
    if _state["depth"] > 0 and _from_compiled_code(unraisable):
        with _lock:
            _state["count"] += 1
            if _state["first"] is None:
                exc = unraisable.exc_value
                _state["first"] = exc if exc is not None else unraisable.exc_type()
        return
    (_state["previous"] or sys.__unraisablehook__)(unraisable)


def _install():
    if sys.unraisablehook is not _hook:
        _state["previous"] = sys.unraisablehook
        sys.unraisablehook = _hook


class WatchUserExceptions:
    """Context manager around a public call that runs compiled loops over user functions.

    Parameters
    ----------
    what : str
        The call's name for the message (``"solve"``, ``"gradient"``).
    """
    __slots__ = ("what",)

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        _install()
        with _lock:
            if _state["depth"] == 0:
                _state["count"] = 0
                _state["first"] = None
            _state["depth"] += 1
        return self

    def __exit__(self, exc_type, exc, tb):
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] > 0:
                return False
            count, first = _state["count"], _state["first"]
            _state["count"] = 0
            _state["first"] = None
        if count and exc_type is None:
            raise UserFunctionError(
                f"{self.what}: a user function raised {type(first).__name__}({first}) inside the "
                f"compiled loop ({count} time{'s' if count > 1 else ''}); the loop cannot stop "
                f"there, so its results are not valid (the first exception is chained)") from first
        return False

