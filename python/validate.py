"""Input checks shared by problems, grids, operators and ``solve``.

Each check raises :class:`jitsolve.errors.InvalidProblemError` whose message starts
with the argument's name.  Nothing here is on a hot path: kernels trust their inputs.
"""
import math
import numbers

import numpy as np

from .errors import InvalidProblemError

__all__ = [
    "as_state_array",
    "as_param_array",
    "check_finite",
    "check_tspan",
    "check_tolerances",
    "check_positive_int",
    "check_positive_float",
    "check_nonnegative_float",
    "check_choice",
    "check_dtmin",
    "is_array_like",
]

#: float64 arrays of at least this many entries are copied and checked for NaN and Inf in
#: one threaded pass (:func:`~jitsolve.kernels.cpu.blas.copy_sumsq`): a 128^3 right-hand
#: side took 1.6 ms for ``np.isfinite`` and 2.4 ms for the copy after a solve
FUSED_COPY = 1 << 17

_FLOAT_KINDS = "f"
_COMPLEX_KINDS = "c"
_SUPPORTED = (np.float32, np.float64, np.complex64, np.complex128)


def is_array_like(x):
    """True for NumPy arrays, sequences of numbers and objects exposing ``__array__``."""
    return isinstance(x, (np.ndarray, list, tuple, numbers.Number)) or hasattr(x, "__array__")


def _as_array(x, name):
    try:
        a = np.asarray(x)
    except Exception as exc:  # ragged lists, objects numpy cannot convert
        raise InvalidProblemError(f"{name}: could not be converted to an array ({exc})") from None
    if a.dtype == object:
        raise InvalidProblemError(f"{name}: expected a numeric array, got an object array "
                                  f"(ragged or non-numeric entries)")
    return a


def check_finite(a, name):
    """Raise if ``a`` holds NaN or Inf, saying how many entries are bad."""
    a = np.asarray(a)
    if a.dtype.kind in "fc":
        finite = np.isfinite(a)
        if not finite.all():
            bad = int(a.size - np.count_nonzero(finite))
            raise InvalidProblemError(
                f"{name}: contains NaN or Inf ({bad} of {a.size} entries are not finite)")
    return a


def as_state_array(x, name, *, dtypes=_SUPPORTED, ndim=None, shape=None, copy=True,
                   allow_empty=False, finite=True):
    """Validate and convert a numeric array (a state, right-hand side, field).

    Integers become float64; booleans, strings and objects are refused; float32,
    float64, complex64 and complex128 keep their dtype when listed in ``dtypes``.
    """
    a = _as_array(x, name)
    kind = a.dtype.kind
    if kind in "iu":
        a = a.astype(np.float64)
    elif kind == "b" or kind not in _FLOAT_KINDS + _COMPLEX_KINDS:
        raise InvalidProblemError(
            f"{name}: expected a floating-point or complex array, got dtype {a.dtype}")
    if a.dtype.type not in dtypes:
        allowed = ", ".join(np.dtype(d).name for d in dtypes)
        raise InvalidProblemError(f"{name}: dtype {a.dtype} is not supported here (expected {allowed})")
    if ndim is not None and a.ndim not in np.atleast_1d(ndim):
        raise InvalidProblemError(f"{name}: expected {ndim} dimension(s), got shape {a.shape}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise InvalidProblemError(f"{name}: expected shape {tuple(shape)}, got {a.shape}")
    if a.size == 0 and not allow_empty:
        raise InvalidProblemError(f"{name}: is empty")
    if (finite and copy and a.dtype == np.float64 and a.size >= FUSED_COPY
            and a.flags.c_contiguous):
        # the copy and the check in one threaded pass: the sum of squares is finite only if
        # every entry is (the slow check runs only when it is not)
        from .kernels.cpu import blas       # (import jitsolve loads no compiler)
        out = np.empty(a.shape)
        if not math.isfinite(blas.copy_sumsq(a.reshape(-1), out.reshape(-1))):
            check_finite(a, name)
        return out
    if finite:
        check_finite(a, name)
    return np.array(a, copy=True, order="C") if copy else np.ascontiguousarray(a)


def as_param_array(p, name="p"):
    """Parameters: ``None`` -> empty float64 vector; a number or 1-D sequence -> float64 vector."""
    if p is None:
        return np.zeros(0, dtype=np.float64)
    a = as_state_array(p, name, dtypes=(np.float64, np.float32), allow_empty=True)
    if a.ndim > 1:
        raise InvalidProblemError(f"{name}: expected a number or a 1-D array, got shape {a.shape}")
    return np.ascontiguousarray(np.atleast_1d(a), dtype=np.float64)


def _as_real(x, name):
    if type(x) is float:                # the common case, checked on every solve
        if not math.isfinite(x):
            raise InvalidProblemError(f"{name}: must be finite, got {x}")
        return x
    if isinstance(x, bool) or not isinstance(x, (numbers.Real, np.floating, np.integer)):
        try:
            arr = np.asarray(x)
        except Exception:
            arr = None
        if arr is None or arr.ndim != 0 or arr.dtype.kind not in "fiu":
            raise InvalidProblemError(f"{name}: expected a real number, got {x!r}")
        x = arr.item()
    x = float(x)
    if not math.isfinite(x):
        raise InvalidProblemError(f"{name}: must be finite, got {x}")
    return x


def check_tspan(tspan, name="tspan"):
    """``(t0, t1)`` with finite, distinct ends; ``t1 < t0`` integrates backwards."""
    try:
        items = list(tspan)
    except TypeError:
        raise InvalidProblemError(f"{name}: expected a pair (t0, t1), got {tspan!r}") from None
    if len(items) != 2:
        raise InvalidProblemError(f"{name}: expected a pair (t0, t1), got {len(items)} values")
    t0 = _as_real(items[0], f"{name}[0]")
    t1 = _as_real(items[1], f"{name}[1]")
    if t0 == t1:
        raise InvalidProblemError(f"{name}: the span is empty (t0 == t1 == {t0})")
    return (t0, t1)


#: the smallest positive rtol float64 arithmetic can deliver
_TEN_EPS = 10 * float(np.finfo(np.float64).eps)


def _tolerance(x, name, n, shape):
    """One tolerance: a non-negative number, or (``n`` given) a per-component array, flat
    with ``n`` entries or of the state's ``shape``, as a flat float64 array (``n`` None:
    a linear solve's, one number)."""
    try:
        nd = 0 if type(x) is float else np.ndim(x)
    except (TypeError, ValueError) as exc:        # a ragged list
        raise InvalidProblemError(f"{name}: expected a number or an array of numbers, got "
                                  f"{x!r} ({exc})") from None
    if n is None and nd != 0:
        raise InvalidProblemError(f"{name}: a linear solve takes one number (a norm), not "
                                  f"per-component tolerances")
    if nd == 0:
        v = _as_real(x, name)
        if v < 0:
            raise InvalidProblemError(f"{name}: must be >= 0, got {v}")
        return v
    a = as_state_array(x, name, dtypes=(np.float64, np.float32))
    if a.size != n:
        raise InvalidProblemError(f"{name}: per-component tolerance needs {n} entries, got {a.size}")
    if shape is not None and a.ndim > 1 and a.shape != tuple(shape):
        raise InvalidProblemError(f"{name}: per-component tolerance of shape {a.shape} does "
                                  f"not match the state's {tuple(shape)}")
    if (a < 0).any():
        raise InvalidProblemError(f"{name}: entries must be >= 0")
    return np.ascontiguousarray(a.ravel(), dtype=np.float64)


def check_tolerances(rtol, atol, n=None, *, name_r="rtol", name_a="atol", shape=None):
    """``rtol`` and ``atol`` each a non-negative number or (``n`` given: an ODE or SDE
    state of ``n`` entries) a per-component array, flat with ``n`` entries or of the
    state's ``shape`` (as SciML's ``reltol``/``abstol`` and SciPy's ``atol``).  Each
    component needs a positive ``rtol`` or ``atol``; a positive ``rtol`` below 10 eps is
    refused (float64 cannot deliver it).  Returns each as a float or a flat float64
    array."""
    r = _tolerance(rtol, name_r, n, shape)
    a = _tolerance(atol, name_a, n, shape)
    if np.ndim(r) == 0 and np.ndim(a) == 0:
        if r == 0 and a == 0:
            raise InvalidProblemError(f"{name_r}, {name_a}: both are zero; at least one must be positive")
    elif np.ndim(r) == 0 and r == 0:
        if not (a > 0).all():
            raise InvalidProblemError(f"{name_a}: with rtol == 0 every entry must be positive")
    else:
        both = int(np.count_nonzero((np.asarray(r) == 0) & (np.asarray(a) == 0)))
        if both:
            raise InvalidProblemError(f"{name_r}, {name_a}: both are zero at {both} "
                                      f"component(s); each needs one of them positive")
    small = np.asarray(r)[(np.asarray(r) > 0) & (np.asarray(r) < _TEN_EPS)]
    if small.size:
        raise InvalidProblemError(
            f"{name_r}: {float(small.min())} is below what float64 arithmetic can deliver "
            f"(use >= 2.2e-15)")
    return r, a


def check_positive_int(x, name, *, allow_none=False, minimum=1):
    """An integer >= ``minimum`` (or None when allowed)."""
    if x is None and allow_none:
        return None
    if isinstance(x, bool) or not isinstance(x, (numbers.Integral, np.integer)):
        raise InvalidProblemError(f"{name}: expected an integer >= {minimum}, got {x!r}")
    if x < minimum:
        raise InvalidProblemError(f"{name}: expected an integer >= {minimum}, got {x}")
    return int(x)


def check_seed(seed):
    """A random seed: an integer >= 0 (bools refused), as a Python int."""
    if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer)) or seed < 0:
        raise InvalidProblemError(f"seed: expected a non-negative integer, got {seed!r}")
    return int(seed)


def check_trajectories(N, nrows):
    """An ensemble's number of trajectories: ``N`` (an integer >= 1), else the ``nrows``
    rows of its ``u0s``/``ps``; more than those rows is refused (``solve``, ``gradient``
    and the local sensitivities say the same thing)."""
    N = check_positive_int(N, "trajectories") if N is not None else nrows
    if N is None:
        raise InvalidProblemError("trajectories: required when the ensemble has no u0s/ps")
    if nrows is not None and N > nrows:
        raise InvalidProblemError(f"trajectories: {N} requested but u0s/ps hold {nrows}")
    return N


def check_positive_float(x, name, *, allow_none=False):
    """A finite number > 0 (or None when allowed)."""
    if x is None and allow_none:
        return None
    v = _as_real(x, name)
    if v <= 0:
        raise InvalidProblemError(f"{name}: must be > 0, got {v}")
    return v


def check_dt(dt, tspan):
    """The step ``dt`` as a magnitude (or None): a finite number > 0, or < 0 where
    ``tspan`` runs backward (``t1 < t0``), as SciML's signed ``dt``; a negative ``dt`` on
    a forward span is refused, naming the direction, and so is a step below the spacing
    of floats near the span's ends (it would leave ``t`` where it is)."""
    if dt is None:
        return None
    v = _as_real(dt, "dt")
    if v < 0 and tspan is not None and float(tspan[1]) < float(tspan[0]):
        v = -v
    if v < 0:
        raise InvalidProblemError(f"dt: {v} is negative but tspan runs forward "
                                  f"({tspan[0]} to {tspan[1]}); pass a positive dt")
    if v == 0:
        raise InvalidProblemError(f"dt: must be nonzero, got {v}")
    if tspan is not None:
        tm = max(abs(float(tspan[0])), abs(float(tspan[1])))
        if tm + v == tm:
            # steps that leave t where it is: a fixed-step solve repeats one state until
            # maxiters, an adaptive one saves duplicate times
            raise InvalidProblemError(f"dt: {v:g} does not move t (floats near t = {tm:g} "
                                      f"are {np.spacing(tm):.3g} apart)")
    return v


def check_nonnegative_float(x, name):
    """A finite number >= 0."""
    v = _as_real(x, name)
    if v < 0:
        raise InvalidProblemError(f"{name}: must be >= 0, got {v}")
    return v


def check_choice(x, name, choices):
    """One of a fixed set of strings."""
    if not isinstance(x, str) or x not in choices:
        raise InvalidProblemError(f"{name}: expected one of {sorted(choices)}, got {x!r}")
    return x


def check_dtmin(dtmin, tspan, dt=None, adaptive=False):
    """``dtmin`` (None: the solver's default) against the span and, for an adaptive solve,
    against its starting step ``dt``: an adaptive solve stops with ``DtLessThanMin`` when
    its controller proposes a step below ``dtmin``, so a ``dtmin`` longer than the span
    or than the first step could only fail."""
    if dtmin is None:
        return
    span = abs(tspan[1] - tspan[0])
    if dtmin > span:
        raise InvalidProblemError(f"dtmin: {dtmin} is longer than the span |t1 - t0| = {span}")
    if adaptive and dt is not None and dt < dtmin:
        raise InvalidProblemError(f"dtmin: {dtmin} is larger than the starting step dt = {dt} of "
                                  f"an adaptive solve (pass dt >= dtmin, or adaptive=False)")
