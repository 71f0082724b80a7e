"""Exceptions raised by jitsolve.

Every error a user can cause derives from :class:`JitsolveError`; messages name the
argument at fault and say what was expected.  Numerical failures are *not* exceptions:
they come back as a solution whose ``retcode`` says what happened (see
:class:`jitsolve.ReturnCode`).

Examples
--------
>>> import numpy as np, jitsolve as js
>>> try:
...     js.LinearProblem(np.eye(2), np.array([1.0, np.nan]))
... except js.errors.InvalidProblemError as e:
...     print(e)
b: contains NaN or Inf (1 of 2 entries are not finite)
"""

__all__ = [
    "JitsolveError",
    "InvalidProblemError",
    "CompileError",
    "BackendUnavailableError",
    "UnsupportedAlgorithmError",
    "FileFormatError",
    "UserFunctionError",
    "SolveFailedError",
]


class JitsolveError(Exception):
    """Base class of every exception raised by jitsolve."""


class InvalidProblemError(JitsolveError, ValueError):
    """Bad input: a shape, dtype, non-finite value, span, tolerance or option.

    The message starts with the argument's name (``"u0: ..."``, ``"tspan: ..."``).
    """


class CompileError(JitsolveError, TypeError):
    """A user function could not be compiled by Numba; the message names the function."""


class BackendUnavailableError(JitsolveError, RuntimeError):
    """The requested backend ("cuda", "mpi") is not available on this machine."""


class UnsupportedAlgorithmError(JitsolveError, TypeError):
    """No solver is registered for this (problem type, algorithm type) pair."""


class FileFormatError(JitsolveError, OSError):
    """A file is not HDF5, or is HDF5 but was not written by jitsolve, or is corrupt."""


class UserFunctionError(JitsolveError, RuntimeError):
    """A user function raised an exception while a compiled loop was calling it.

    A compiled loop cannot stop at such an exception, so the call that ran it (``solve``,
    ``gradient``) raises this when it ends, with the first exception chained and the
    number raised in the message; its results would not be valid.  Division by zero and
    other floating-point failures do not raise inside jitsolve's compilations of user
    functions (NumPy's rule: they give ``inf`` or NaN, which the integrators report
    through the solution's ``retcode``).  A linear solve's user preconditioner, LinearOperator
    ``A`` and ``callback`` run in Python: their exception stops the solve at once with this
    error (chained).
    """


class SolveFailedError(JitsolveError, RuntimeError):
    """A solve inside ``gradient`` (or ``fit``) did not succeed, so no trustworthy
    gradient exists; the message carries the return code (and the residual, the time
    reached or the failing trajectory).  A plain ``solve`` never raises it: its failures
    come back in the solution's ``retcode``.  Also importable as
    ``jitsolve.gradient.SolveFailedError``."""
