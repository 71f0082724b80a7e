"""``js.fit``: gradient-based parameter estimation on top of ``scipy.optimize``.

Every objective evaluation is one ``js.gradient`` call (forward solve + adjoint), plus
an optional regulariser.  The history (loss, gradient norm, time per iteration) is kept,
printed with ``progress=True`` and written to an HDF5 log with ``log=path``.
"""
import time

import numpy as np

from .errors import InvalidProblemError, SolveFailedError
from .log import get_logger
from .losses import observe_at_saveat
from .problems import EnsembleProblem
from .sensitivity import ensemble_wrt
from .validate import (as_state_array, check_nonnegative_float, check_positive_float,
                       check_positive_int)

__all__ = ["fit", "FitResult", "Tikhonov", "TotalVariation"]

_log = get_logger("fit")


def _field(x):
    """A regularizer's argument as float64 (integers too); complex, boolean and other
    arrays are refused, naming ``x`` (casting would drop an imaginary part silently)."""
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InvalidProblemError(f"x: could not be converted to an array ({exc})") from None
    if a.dtype.kind not in "fiu":
        raise InvalidProblemError(f"x: expected a real array, got dtype {a.dtype}")
    return a.astype(np.float64, copy=False)


class Tikhonov:
    """``0.5 * alpha * ||x - x_ref||^2`` (``alpha >= 0``, a finite number; ``x_ref`` a
    number or an array of ``x``'s shape, default 0).  Called on ``x``, it returns
    ``(value, gradient)``, the gradient ``alpha * (x - x_ref)`` of ``x``'s shape.

    References
    ----------
    Tikhonov, Arsenin, *Solutions of Ill-Posed Problems* (1977).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> js.Tikhonov(0.5)(np.array([1.0, 2.0]))           # (value, gradient)
    (1.25, array([0.5, 1. ]))

    Cost
    ----
    Per evaluation: two passes over ``x`` (the difference and its square sum) and the
    gradient, one array of ``x``'s shape.
    """

    def __init__(self, alpha, x_ref=None):
        self.alpha = check_nonnegative_float(alpha, "alpha")
        self.x_ref = None if x_ref is None else \
            as_state_array(x_ref, "x_ref", dtypes=(np.float64, np.float32)).astype(np.float64)

    def __repr__(self):
        ref = "" if self.x_ref is None else f", x_ref=<array {self.x_ref.shape}>"
        return f"Tikhonov({self.alpha!r}{ref})"

    def _check_shape(self, shape):
        """Raise, naming ``x_ref``, unless it fits an ``x`` of ``shape``."""
        if self.x_ref is not None and self.x_ref.shape not in ((), tuple(shape)):
            raise InvalidProblemError(f"x_ref: expected the shape of x {tuple(shape)} (p0's), "
                                      f"got {self.x_ref.shape}")

    def __call__(self, x):
        x = _field(x)
        self._check_shape(x.shape)
        d = x - (0.0 if self.x_ref is None else self.x_ref)
        return 0.5 * self.alpha * float(np.sum(d * d)), self.alpha * d


def _tv_spacing(spacing):
    """``(h, periodic, grid_shape)`` from ``TotalVariation``'s ``spacing``: None (unit
    steps), a number, one number per axis, or a ``js.Grid`` (its spacing, its periodic
    axes and its shape)."""
    from .grid import Grid, Periodic
    if spacing is None:
        return None, None, None
    if isinstance(spacing, Grid):
        periodic = tuple(isinstance(lo, Periodic) and isinstance(hi, Periodic)
                         for lo, hi in spacing.bcs)
        return tuple(float(h) for h in spacing.spacing), periodic, spacing.shape
    if np.ndim(spacing) == 0:
        return check_positive_float(spacing, "spacing"), None, None
    try:
        items = [float(h) for h in np.asarray(spacing, dtype=np.float64).ravel()]
        ok = np.ndim(spacing) == 1 and len(items) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok or not all(np.isfinite(h) and h > 0 for h in items):
        raise InvalidProblemError(f"spacing: expected a number > 0, one number > 0 per axis "
                                  f"or a js.Grid, got {spacing!r}")
    return tuple(items), None, None


class TotalVariation:
    """Smoothed total variation of a field ``x``,
    ``alpha * V * sum_cells sqrt(|D x|^2 + eps^2)``, with ``D x`` the forward differences
    along every axis of ``x``'s shape, divided by the spacing ``h_k`` of that axis, and
    ``V`` the cell volume ``prod h_k`` (with ``spacing`` given, the value approximates
    ``alpha * integral sqrt(|grad x|^2 + eps^2)``, independent of the resolution).

    Parameters
    ----------
    alpha : float >= 0
    eps : float > 0, default 1e-3
        The smoothing (Acar, Vogel): it makes the value differentiable where ``D x = 0``
        (a flat field has value ``alpha * V * eps * x.size`` and gradient 0), in the units
        of ``|D x|``; below about ``eps`` a jump is penalised quadratically.
    spacing : None, float > 0, sequence of floats > 0, or js.Grid
        None (default): unit steps, ``V = 1`` (plain differences of neighbouring
        entries).  A number or one number per axis of ``x``: the steps ``h_k``.  A
        ``js.Grid``: its spacing, and an axis with ``js.Periodic`` conditions wraps
        around (its last cell differs with its first); ``x`` must then have the grid's
        shape (or its size, e.g. flattened).  Otherwise the last difference along each
        axis is 0 (a zero-flux, Neumann-like end).

    Called on ``x``, returns ``(value, gradient)``, the gradient of ``x``'s shape.

    References
    ----------
    Rudin, Osher, Fatemi, *Nonlinear total variation based noise removal*, Physica D 60
    (1992); Acar, Vogel, *Analysis of bounded variation penalty methods for ill-posed
    problems*, Inverse Problems 10 (1994).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> val, grad = js.TotalVariation(1.0, eps=1e-6)(np.array([0.0, 0.0, 1.0, 1.0]))
    >>> round(val, 4), np.round(grad, 3)                 # one unit jump
    (1.0, array([ 0., -1.,  1.,  0.]))
    >>> g = js.Grid((4,), extent=((0, 2),))             # h = 0.5: slope 2 over length 2
    >>> val, _ = js.TotalVariation(1.0, eps=1e-9, spacing=g)(np.arange(4.0))
    >>> round(val, 6)                                    # 3 of the 4 cells have a slope
    3.0

    Cost
    ----
    Per evaluation: NumPy passes over ``x``: per axis one forward difference and one
    ``hypot`` (no overflow or underflow for any ``eps``), and a few passes for the
    gradient; about ``8 ndim`` passes and ``ndim + 3`` temporary arrays of ``x``'s shape.
    """

    def __init__(self, alpha, eps=1e-3, spacing=None):
        self.alpha = check_nonnegative_float(alpha, "alpha")
        self.eps = check_positive_float(eps, "eps")      # eps = 0: 0/0 at flat regions
        self.spacing = spacing
        self._h, self._periodic, self._grid_shape = _tv_spacing(spacing)

    def __repr__(self):
        sp = "" if self.spacing is None else f", spacing={self.spacing!r}"
        return f"TotalVariation({self.alpha!r}, eps={self.eps!r}{sp})"

    def _check_shape(self, shape):
        """Raise, naming ``spacing``, unless it fits an ``x`` of ``shape``; returns the
        shape the differences are taken over."""
        shape = tuple(shape)
        if self._grid_shape is not None:
            if shape != self._grid_shape and int(np.prod(shape)) != int(np.prod(self._grid_shape)):
                raise InvalidProblemError(f"spacing: the grid has shape {self._grid_shape}, but "
                                          f"x has shape {shape}")
            return self._grid_shape
        if isinstance(self._h, tuple) and len(self._h) != len(shape):
            raise InvalidProblemError(f"spacing: {len(self._h)} step(s) given, but x has "
                                      f"{len(shape)} axes (shape {shape})")
        return shape

    def __call__(self, x):
        x = _field(x)
        shape = x.shape
        x = x.reshape(self._check_shape(shape))
        nd = x.ndim
        h = ((1.0,) * nd if self._h is None else
             self._h if isinstance(self._h, tuple) else (self._h,) * nd)
        periodic = self._periodic or (False,) * nd
        vol = float(np.prod(h))                          # the cell volume (1: unit steps)
        r = np.full(x.shape, self.eps)
        diffs = []
        for ax in range(nd):
            if periodic[ax]:
                d = np.roll(x, -1, axis=ax) - x
            else:                                       # the last difference is 0
                d = np.diff(x, axis=ax, append=np.take(x, [-1], axis=ax))
            d = d / h[ax]
            diffs.append(d)
            r = np.hypot(r, d)           # sqrt(eps^2 + sum d^2), never over/underflowing
        val = self.alpha * vol * float(np.sum(r))
        g = np.zeros_like(x)
        for ax, d in enumerate(diffs):
            q = d / r / h[ax]            # |q| <= 1 / h: r >= |d| and r >= eps > 0
            # d_i = (x_{i+1} - x_i) / h: -q_i at i, +q_i at i + 1 (wrapping if periodic)
            g -= q
            if periodic[ax]:
                g += np.roll(q, 1, axis=ax)
            else:
                lo = [slice(None)] * nd
                hi = [slice(None)] * nd
                lo[ax], hi[ax] = slice(1, None), slice(None, -1)
                g[tuple(lo)] += q[tuple(hi)]
        return val, (self.alpha * vol * g).reshape(shape)


class FitResult:
    """Outcome of :func:`fit`: ``p`` (the estimate, shaped like ``p0``; a tuple of them
    for a joint fit, ``wrt=("p", "u0")``), ``loss``,
    ``history`` (loss per iteration, initial first), ``grad_norm``, ``times``,
    ``success``, ``message``, ``nit``, ``nfev``.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> prob = js.LinearProblem(np.diag([2.0, 4.0]), np.ones(2))
    >>> loss = js.L2Loss(None, np.array([1.0, 1.0]))     # find b with A^-1 b = (1, 1)
    >>> res = js.fit(prob, js.Direct(), loss, np.ones(2), wrt="b", progress=False)
    >>> res.success, np.round(res.p, 4), bool(res.history[0] > res.loss)
    (True, array([2., 4.]), True)
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return (f"FitResult(success={self.success}, loss={self.loss:.6g}, nit={self.nit}, "
                f"nfev={self.nfev}, message={self.message!r})")


def _with(prob, wrt, x):
    from .problems import kappa_of, remake
    if isinstance(prob, EnsembleProblem):
        return ensemble_wrt(prob, wrt)[1](x)
    if wrt in ("p", "u0", "b"):
        return remake(prob, **{wrt: x})
    if wrt == "kappa":
        return kappa_of(prob)[1](x)
    raise InvalidProblemError(f"wrt: expected 'p', 'u0', 'b' or 'kappa', got {wrt!r}")


#: scipy.optimize.minimize methods fit drives (value and gradient, ``maxiter``, ``gtol``
#: or none) -> whether they take bounds
_METHODS = {"L-BFGS-B": True, "BFGS": False, "CG": False, "SLSQP": True, "least_squares": True}


def _check_method(method, bounds):
    name = {m.lower(): m for m in _METHODS}.get(method.lower()) if isinstance(method, str) else None
    if name is None:
        raise InvalidProblemError(f"method: expected one of {list(_METHODS)}, got {method!r}")
    if bounds is not None and not _METHODS[name]:
        raise InvalidProblemError(f"bounds: method {name!r} ignores bounds; use "
                                  f"{[m for m, b in _METHODS.items() if b]}")
    return name


def _bound_side(v, shape, inf):
    """One side of the bounds as an array of ``shape`` (None entries: unbounded)."""
    if v is None:
        return np.full(shape, inf)
    try:
        a = np.array(v, dtype=object)
        a = np.where(np.equal(a, None), inf, a).astype(np.float64)
        return np.broadcast_to(a, shape)
    except (TypeError, ValueError):
        raise InvalidProblemError(f"bounds: expected (lo, hi) with numbers or arrays of p0's shape "
                                  f"{shape} (or p0.size pairs), got {v!r} for one side") from None


def _check_bounds(bounds, shape):
    """``bounds`` as a scipy.optimize.Bounds over the flattened ``x``: a pair ``(lo, hi)``
    of numbers or arrays of ``shape``, or ``size`` pairs (scipy's form)."""
    import scipy.optimize as so
    if bounds is None:
        return None
    if isinstance(bounds, so.Bounds):
        bounds = (bounds.lb, bounds.ub)
    try:
        items = list(bounds)
    except TypeError:
        raise InvalidProblemError(f"bounds: expected a pair (lo, hi), got {bounds!r}") from None
    size = int(np.prod(shape))
    if len(items) == size and all(isinstance(b, (tuple, list)) and len(b) == 2 for b in items):
        items = [[b[0] for b in items], [b[1] for b in items]]
        shape = (size,)
    elif len(items) != 2:
        raise InvalidProblemError(f"bounds: expected a pair (lo, hi) or {size} pairs, got "
                                  f"{len(items)} entries")
    lo, hi = _bound_side(items[0], shape, -np.inf), _bound_side(items[1], shape, np.inf)
    if np.isnan(lo).any() or np.isnan(hi).any():
        raise InvalidProblemError("bounds: contain NaN")
    bad = int(np.count_nonzero(lo > hi))
    if bad:
        raise InvalidProblemError(f"bounds: the lower bound exceeds the upper one at {bad} entries")
    return so.Bounds(lo.ravel(), hi.ravel())


def _open_log(log, wrt):
    """Create the HDF5 log now, so that a path that cannot be written fails before the fit."""
    import h5py
    try:
        with h5py.File(log, "w") as f:
            f.attrs["format"] = "jitsolve-fit"
            f.attrs["wrt"] = wrt
    except (OSError, TypeError, ValueError) as exc:
        raise InvalidProblemError(f"log: cannot write an HDF5 file at {log!r} ({exc})") from None


def _write_log(log, wrt, shape, iterates, hist, gnorms, times):
    """Write the fit's history; a failure now (disk full, file removed) is logged and
    warned about, never allowed to lose the result."""
    import warnings

    import h5py
    try:
        with h5py.File(log, "w") as f:
            f.attrs["format"] = "jitsolve-fit"
            f.attrs["wrt"] = wrt
            f.create_dataset("iterates", data=np.array(iterates).reshape((-1,) + shape))
            f.create_dataset("loss", data=np.array(hist))
            f.create_dataset("grad_norm", data=np.array(gnorms))
            f.create_dataset("time", data=np.array(times))
    except (OSError, TypeError, ValueError) as exc:
        _log.warning("fit: could not write the log %s (%s)", log, exc)
        warnings.warn(f"fit: could not write the log {log!r} ({exc}); the result is returned "
                      f"without it", RuntimeWarning, stacklevel=3)
        return
    _log.info("fit: wrote %d iterates to %s", len(iterates), log)


def _regularize(regularizer, x):
    out = regularizer(x)
    try:
        rv, rg = out
        rv, rg = float(rv), np.asarray(rg, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidProblemError(f"regularizer: must return (value, gradient), got {out!r}") from None
    if rg.shape != x.shape:
        raise InvalidProblemError(f"regularizer: the gradient has shape {rg.shape}, expected "
                                  f"{x.shape} (p0's)")
    return rv, rg


def _split(xf, shapes):
    """The flat vector of a joint fit as its blocks, shaped."""
    sizes = [int(np.prod(sh)) for sh in shapes]
    return [b.reshape(sh) for b, sh in zip(np.split(xf, np.cumsum(sizes)[:-1]), shapes)]


def _with_all(prob, names, xs):
    """``prob`` with each input of ``names`` replaced by its block of ``xs``."""
    for name, x in zip(names, xs):
        prob = _with(prob, name, x)
    return prob


def _blocks(wrt, p0):
    """``(names, starting points)``: one name and ``p0`` as given, or several names with a
    tuple of starting points, one each."""
    if isinstance(wrt, str):
        return [wrt], [p0]
    try:
        names = list(wrt)
    except TypeError:
        raise InvalidProblemError(f"wrt: expected a name or a tuple of names, got {wrt!r}") from None
    if not names or not all(isinstance(n, str) for n in names) or len(set(names)) < len(names):
        raise InvalidProblemError(f"wrt: expected distinct names ('p', 'u0', 'b', 'kappa'), "
                                  f"got {wrt!r}")
    if len(names) == 1:
        return names, [p0[0] if isinstance(p0, (tuple, list)) and len(p0) == 1 else p0]
    if not isinstance(p0, (tuple, list)) or len(p0) != len(names):
        raise InvalidProblemError(f"p0: fitting {tuple(names)} jointly takes a tuple of "
                                  f"{len(names)} starting arrays, one per name")
    return names, list(p0)


def _joint_bounds(bounds, names, shapes):
    """The bounds of a joint fit over the concatenated blocks: None, one ``(lo, hi)`` of
    numbers for every block, or one entry per block (each as for a single block, or
    None)."""
    import scipy.optimize as so
    if bounds is None:
        return None
    if isinstance(bounds, (tuple, list)) and any(isinstance(b, np.ndarray) and b.ndim > 0
                                                 for b in bounds):
        raise InvalidProblemError(f"bounds: for {tuple(names)} a pair of arrays (lo, hi) "
                                  f"is ambiguous (the blocks have shapes {list(shapes)}); "
                                  f"give one (lo, hi) of numbers for all, or one entry per "
                                  f"name (a tuple (lo, hi), a list of pairs, a "
                                  f"scipy.optimize.Bounds or None), not arrays, e.g. "
                                  f"bounds=((lo_p, hi_p), (lo_u0, hi_u0))")
    if (isinstance(bounds, (tuple, list)) and len(bounds) == 2
            and all(v is None or np.isscalar(v) for v in bounds)):
        per = [bounds] * len(names)
    elif isinstance(bounds, (tuple, list)) and len(bounds) == len(names):
        per = list(bounds)
    else:
        raise InvalidProblemError(f"bounds: for {tuple(names)} give one (lo, hi) of numbers for "
                                  f"all, or one entry per name")
    lo, hi = [], []
    for b, sh in zip(per, shapes):
        bb = _check_bounds(b, sh)
        n = int(np.prod(sh))
        lo.append(np.full(n, -np.inf) if bb is None else np.broadcast_to(bb.lb, (n,)))
        hi.append(np.full(n, np.inf) if bb is None else np.broadcast_to(bb.ub, (n,)))
    return so.Bounds(np.concatenate(lo), np.concatenate(hi))


def _check_options(options, method):
    """``options`` as a dict: scipy.optimize.minimize's ``options``, or keyword arguments
    of scipy.optimize.least_squares (those fit does not set itself)."""
    if options is None:
        return {}
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise InvalidProblemError(f"options: expected a dict of scipy options such as "
                                  f"{{'ftol': 1e-12}}, got {options!r}")
    if method == "least_squares":
        import inspect

        import scipy.optimize as so
        taken = {"fun", "x0", "jac", "bounds", "args", "kwargs", "callback"}
        allowed = [k for k in inspect.signature(so.least_squares).parameters
                   if k not in taken]
        bad = sorted(set(options) - set(allowed))
        if bad:
            raise InvalidProblemError(f"options: method 'least_squares' takes keyword "
                                      f"arguments of scipy.optimize.least_squares "
                                      f"{allowed}, got {bad}")
    return dict(options)


class _Stop(Exception):
    """Ends a fit early from inside scipy (the callback asked, or a trial point failed
    where the method cannot go on); ``args[0]`` is the FitResult's message."""


def _ask_callback(callback, x, val):
    """Call the user's callback; True or StopIteration ends the fit."""
    try:
        stop = callback(x, val)
    except StopIteration:
        raise _Stop("stopped by the callback (it raised StopIteration)") from None
    if isinstance(stop, (bool, np.bool_)) and stop:
        raise _Stop("stopped by the callback (it returned True)")


def _show(xf):
    """A trial point for a message (long vectors abbreviated)."""
    return np.array2string(np.asarray(xf), precision=6, threshold=8, separator=", ")


def _best(hist):
    """Index of the lowest finite loss in ``hist`` (the last entry if none is finite)."""
    finite = [i for i, v in enumerate(hist) if np.isfinite(v)]
    return min(finite, key=hist.__getitem__) if finite else len(hist) - 1


def _joint_regularizers(regularizer, names):
    """One regularizer (or None) per block: a tuple with one entry per name, or a single
    one applied to each block."""
    if isinstance(regularizer, (tuple, list)):
        if len(regularizer) != len(names):
            raise InvalidProblemError(f"regularizer: expected one per name of {tuple(names)} "
                                      f"(or None), got {len(regularizer)}")
        return list(regularizer)
    return [regularizer] * len(names)


def _fit_least_squares(prob, alg, loss, names, x0s, bounds, regs, maxiter, gtol, progress,
                       callback, log, sensealg, solve_kw, options):
    """``js.fit(..., method="least_squares")``: scipy's trust-region reflective
    least squares on ``sqrt(w) (u - d)`` (and ``sqrt(alpha) (x - x_ref)`` per Tikhonov
    regularizer), each evaluation one forward-sensitivity solve per trajectory giving the
    residuals and their Jacobian (cached for the ``jac`` call at the same ``x``).  An
    ensemble's residuals are its trajectories' stacked; a shared input's Jacobian
    columns gather every trajectory's rows, a per-trajectory one's are block-diagonal.
    Entries whose bounds are equal are held there (scipy only takes ``lo < hi``).  A
    failed trial point (``failed``) is answered with NaN residuals, which trf and dogbox
    reject, shrinking the trust region; ``st["x_acc"]`` is the point of the last Jacobian
    (trf's current point), from which a failed step under ``_STEP_FLOOR (1 + |x|)`` ends
    the fit."""
    import scipy.optimize as so

    from .local_sensitivity import Residuals
    if sensealg is not None:
        raise InvalidProblemError("sensealg: method 'least_squares' uses forward sensitivities "
                                  "for its Jacobian; pass sensealg=None")
    for r in regs:
        if r is not None and not isinstance(r, Tikhonov):
            raise InvalidProblemError("regularizer: method 'least_squares' takes js.Tikhonov "
                                      "(residuals sqrt(alpha) (x - x_ref)), not a general "
                                      "callable; use method='L-BFGS-B'")
    try:
        model = Residuals(prob, alg, loss, names, solve_kw)
    except InvalidProblemError as e:
        if str(e).startswith("prob:"):
            raise InvalidProblemError("method: 'least_squares' fits an ODEProblem or "
                                      "SplitODEProblem, or an ensemble of one with u0s/ps rows "
                                      f"(forward sensitivities); {str(e)[6:]}") from None
        raise
    shapes = [x.shape for x in x0s]
    joint = len(names) > 1
    x0 = np.concatenate([x.ravel() for x in x0s])
    hist, gnorms, times, iterates = [], [], [], []
    cache = {}
    st = dict(started=False, nfev=0, njev=0, nfail=0, fail=None, fail_since_jac=False,
              prev_fail=False, x_acc=x0, m=0)
    t_start = time.perf_counter()

    def split(xf):
        return _split(xf, shapes)

    def shaped(xf):
        return tuple(split(xf)) if joint else xf.reshape(shapes[0])

    def evaluate(xf):
        key = xf.tobytes()
        if key in cache:
            return cache[key]
        st["nfev"] += 1
        xs = split(xf)
        try:
            r, J = model.evaluate(_with_all(prob, names, xs))
        except (SolveFailedError, InvalidProblemError) as exc:
            if not st["started"]:
                raise
            return failed(xf, "the solve failed", f" ({type(exc).__name__}: {exc})")
        if not (np.all(np.isfinite(r)) and np.all(np.isfinite(J))):
            if not st["started"]:
                raise InvalidProblemError("loss: the residuals or their Jacobian are not "
                                          "finite at the starting point p0")
            return failed(xf, "the residuals or their Jacobian are not finite")
        r, J = [r], [J]
        col = 0
        for x, reg in zip(xs, regs):
            if reg is not None:
                a = np.sqrt(reg.alpha)
                ref = 0.0 if reg.x_ref is None else np.broadcast_to(reg.x_ref, x.shape)
                r.append(a * (x - ref).ravel())
                Jr = np.zeros((x.size, xf.size))
                Jr[:, col:col + x.size] = a * np.eye(x.size)
                J.append(Jr)
            col += x.size
        r, J = np.concatenate(r), np.concatenate(J)
        cache.clear()
        cache[key] = (r, J)
        st["started"], st["m"] = True, r.size
        record(xf, 0.5 * float(r @ r), float(np.linalg.norm(J.T @ r)))
        return r, J

    def failures():
        return (f"{st['nfail']} trial point(s) failed (the last: {st['fail']}); the trust "
                f"region was shrunk at each")

    def failed(xf, what, why=""):
        """A failed trial point: recorded (loss inf, |grad| nan), answered with NaN
        residuals, which trf and dogbox take as a rejected step (the trust region shrunk
        to a quarter of it), with no Jacobian asked there; "lm" (MINPACK), which has no
        such test, stops."""
        st["nfail"] += 1
        st["fail"] = f"{what} at a trial point p = {_show(xf)}{why}"
        st["fail_since_jac"] = True
        _log.info("fit (least_squares): trial point failed (%s)", st["fail"])
        record(xf, np.inf, np.nan)
        if kw["method"] == "lm":
            raise _Stop(f"stopped: {st['fail']}; method 'lm' cannot go on from it, p is the "
                        f"best point so far")
        x_acc = st["x_acc"]
        d = float(np.linalg.norm(xf - x_acc))
        floor = _STEP_FLOOR * (1.0 + float(np.linalg.norm(x_acc)))
        if d < floor:
            raise _Stop(f"stopped: {failures()}, and they close in on the best point (a "
                        f"step of {d:.2g} from it failed, under {floor:.2g}); p is the best "
                        f"point so far, next to where the residuals are not finite")
        return np.full(st["m"], np.nan), None

    def record(xf, val, gn):
        hist.append(val)
        gnorms.append(gn)
        times.append(time.perf_counter() - t_start)
        iterates.append(xf.copy())
        _log.info("fit (least_squares) evaluation %d: loss %.6e, |grad| %.3e", len(hist) - 1,
                  val, gn)
        if progress:
            print(f"  eval {len(hist) - 1:4d}  loss {val:.6e}  |grad| {gn:.3e}  "
                  f"{times[-1]:7.2f} s", flush=True)
        if callback is not None:
            _ask_callback(callback, shaped(xf), val)

    inf = np.full(x0.size, np.inf)
    lb = -inf if bounds is None else np.broadcast_to(bounds.lb, x0.shape)
    ub = inf if bounds is None else np.broadcast_to(bounds.ub, x0.shape)
    x0 = np.clip(x0, lb, ub)
    free = lb < ub                               # lo == hi: held at lo, not a variable

    def full(z):
        xf = x0.copy()
        xf[free] = z
        return xf

    def jac(z):
        st["njev"] += 1
        xf = full(z)
        J = evaluate(xf)[1]
        if J is None:                # not asked by trf or dogbox, which reject such points
            raise _Stop(f"stopped: scipy asked for the Jacobian at a failed trial point "
                        f"({st['fail']}); p is the best point so far")
        # trf's next steps start here; prev_fail: whether the step to it followed a failure
        st["x_acc"], st["prev_fail"], st["fail_since_jac"] = xf, st["fail_since_jac"], False
        return J[:, free]

    kw = dict(method="trf", x_scale="jac", gtol=gtol, max_nfev=maxiter)
    kw.update(options)
    try:
        if free.any():
            res = so.least_squares(lambda z: evaluate(full(z))[0], x0[free], jac=jac,
                                   bounds=(lb[free], ub[free]), **kw)
            xf, cost, success, message = full(res.x), float(res.cost), bool(res.success), \
                str(res.message)
            # the iteration that met ftol or xtol (its step accepted: the Jacobian asked
            # at the last point evaluated) had its trust region shrunk by a failed point:
            # the short step that met them came from the failures, not from a minimum
            last = (st["prev_fail"] if np.array_equal(iterates[-1], st["x_acc"]) else
                    st["fail_since_jac"])
            if success and int(res.status) != 1 and last:
                success = False
                message = (f"stopped: {failures()}, and they close in on the best point "
                           f"(scipy's {message.rstrip('.')} came in a step shrunk by one); "
                           f"p is the best point so far, next to where the residuals are "
                           f"not finite")
            elif st["nfail"]:
                message = message.rstrip(".") + "; " + failures()
        else:
            r, _ = evaluate(x0)
            xf, cost, success = x0, 0.5 * float(r @ r), True
            message = "every entry is fixed by the bounds (lo == hi): nothing to fit"
    except _Stop as stop:
        i = _best(hist)
        xf, cost, success, message = iterates[i], hist[i], False, stop.args[0]
    finally:
        if log is not None:
            _write_log(log, ",".join(names), x0.shape, iterates, hist, gnorms, times)
    _log.info("fit wrt %s (least_squares): %s after %d evaluations, loss %.6e", names,
              message, st["nfev"], cost)
    return FitResult(p=shaped(xf.copy()), loss=cost, history=np.array(hist),
                     grad_norm=np.array(gnorms), times=np.array(times),
                     success=success and bool(np.isfinite(cost)), message=message,
                     nit=st["njev"], nfev=st["nfev"])


#: methods that back off from a trial point reported as loss = inf (zero gradient) and go
#: on: measured (scipy 1.17) on a blow-up ODE and a kappa that turns negative; BFGS and
#: CG reached the minimum from all of 40 starts, SLSQP too with a tight ``ftol`` (its
#: default one stops early with or without failed points).  scipy's L-BFGS-B does not:
#: its line search takes an inf for convergence ("RELATIVE REDUCTION OF F") and reports
#: success at a point far from the minimum.  So L-BFGS-B never sees an inf
#: (``_lbfgsb``): a failed trial point is reported to its line search as a finite value
#: above the point the search started from, falling towards it (never accepted), so that
#: it backtracks and goes on with its memory, as Optim.jl's line searches do; a search
#: that gives up is followed by halving the step from the best iterate and restarting
#: L-BFGS-B there.  Measured on the blow-up ODE of tests/test_audit_fit.py: the minimum
#: from all 39 of 40 random starts whose own solve succeeds (13 before, when fit stopped
#: at the first failed point), with no restart; past a disc where the loss is +inf, put
#: on the way from 6 starts, in 31 of the 32 placements it met (BFGS: 23 of those 32;
#: restarting scipy at every failed point instead, about a third).
_BACKS_OFF = ("BFGS", "CG", "SLSQP")

#: L-BFGS-B's back-off after a line search that gave up at failed points: the most
#: halvings from the best iterate, the most restarts in one fit, and the shortest step
#: (relative to ``1 + |x|``) worth restarting with
_HALVINGS = 8
_MAX_RESTARTS = 20
_STEP_FLOOR = float(np.sqrt(np.finfo(np.float64).eps))


class _Retry(Exception):
    """A trial point failed (the solve, or a loss that is not finite) where L-BFGS-B asked
    for it; ``args[0]`` is the point, flattened."""


def _lbfgsb(ev, record, x0f, bounds, opts, hist, iterates, st):
    """``scipy.optimize.minimize(method="L-BFGS-B")`` from ``x0f`` (evaluated and recorded
    already), going on from failed trial points.  ``ev(x)`` returns (value, gradient) or
    raises ``_Retry``; ``record(x)`` takes an iterate into the history (and may raise
    ``_Stop``); ``st["nfev"] - 1`` is the evaluations so far.

    A failed trial point ``x`` of a line search that started at ``x_k`` (value ``f_k``,
    gradient ``g_k``, ``a = g_k . (x - x_k) < 0``) is reported as the value ``f_k - a`` and
    the gradient ``-g_k``: higher than ``f_k`` (the sufficient-decrease test refuses it)
    and rising along the search, so that the Moré-Thuente search interpolates a shorter
    step and L-BFGS-B keeps its memory.  When the search gives up (ABNORMAL_TERMINATION,
    after ``maxls`` tries) or a surrogate cannot be formed, the step from the best iterate
    ``x_b`` towards the last failed point is halved (``_HALVINGS`` times at most) until a
    point is lower (recorded as an iteration), and L-BFGS-B restarts from the best point in
    ``y = (x - x_start) / s``: its first step, steepest descent of length 1 in ``y``
    (``|g_y|`` when every entry has both bounds), is then about as long as the step that
    worked (or half the shortest one tried); ``gtol`` is scaled with ``s``.  The start's
    value and gradient are handed to scipy without a solve.  The budget (``maxiter``,
    ``maxfun``) is shared by all runs.  Ends (``success=False``) when a restart gets no
    lower than the best loss it started from, when the step that worked is shorter than
    ``_STEP_FLOOR (1 + |x_b|)``, or at a failure after ``_MAX_RESTARTS`` restarts.
    Returns ``(x, loss, success, message)``."""
    import scipy.optimize as so
    maxiter = int(opts["maxiter"])
    maxfun = int(opts.get("maxfun", 15000))
    gtol = float(opts.get("gtol", 1e-5))
    lb = ub = None
    free = np.ones(x0f.shape, dtype=bool)
    boxed = False
    if bounds is not None:
        lb = np.broadcast_to(np.asarray(bounds.lb, dtype=np.float64), x0f.shape)
        ub = np.broadcast_to(np.asarray(bounds.ub, dtype=np.float64), x0f.shape)
        free = lb < ub
        boxed = bool(np.all(np.isfinite(lb) & np.isfinite(ub)))
    # run: a restart's start (x, value, gradient; None in the first run), the base of
    # its line search, its last successful evaluation and its last failed point;
    # best_g: the gradient of the best iterate, keyed by its bytes
    run = dict(start=None, base=None, last=None, failed=None)
    best_g = [None, None]
    x_start, scale, restarts = x0f, None, 0

    def clip(x):
        return x if lb is None else np.clip(x, lb, ub)

    def failures():
        again = f", restarting {restarts} time(s) from the best point" if restarts else ""
        return (f"{st['nfail']} trial point(s) failed (the last: {st['fail']}); L-BFGS-B "
                f"backed off from them{again}")

    def stop(why):
        i = _best(hist)
        return iterates[i], hist[i], False, why

    def keep_if_best(x, val, g):
        if val <= hist[_best(hist)]:
            best_g[:] = [x.tobytes(), g]

    def evaluate(x):
        """``ev(x)``, a restart's start answered from what is known, a failed point
        answered with the surrogate."""
        start = run["start"]
        if start is not None and np.array_equal(start[0], x):
            val, g = start[1], start[2].copy()
        else:
            try:
                val, g = ev(x)
            except _Retry:
                run["failed"] = x.copy()
                base = run["base"]
                a = -np.inf if base is None else float(base[2] @ (x - base[0]))
                if not a < 0:
                    raise
                return base[1] - a, -base[2]
        run["last"] = (x.copy(), val, g)
        if run["base"] is None:                  # the run's first evaluation: its start
            run["base"] = run["last"]
            keep_if_best(x, val, g)
        return val, g

    def new_iterate(x):
        last = run["last"]
        ok = last is not None and last[0].tobytes() == x.tobytes()
        run["base"] = last if ok else None        # None: a failure there ends the run
        record(x)
        if ok:
            keep_if_best(x, last[1], last[2])

    while True:
        f_before = hist[_best(hist)]
        o = dict(opts, maxiter=maxiter - (len(hist) - 1), maxfun=maxfun - (st["nfev"] - 1))
        if o["maxiter"] <= 0:
            return stop(f"STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT; {failures()}")
        if o["maxfun"] <= 0:
            return stop(f"STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT; {failures()}")
        run.update(base=None, last=None, failed=None)
        nfail0 = st["nfail"]
        if scale is None:                        # the first run: in x itself
            def xmap(y):
                return y

            def fy(y):
                return evaluate(y)
            y0, ybounds = x0f, bounds
        else:
            o["gtol"] = gtol * scale             # |g_y| = s |g|: the same test on |g|

            def xmap(y, xs=x_start, sc=scale):
                return clip(xs + sc * y)

            def fy(y, sc=scale):
                val, g = evaluate(xmap(y))
                return val, sc * g
            y0 = np.zeros_like(x_start)
            ybounds = (None if lb is None else
                       so.Bounds((lb - x_start) / scale, (ub - x_start) / scale))
        try:
            res = so.minimize(fy, y0, jac=True, method="L-BFGS-B", bounds=ybounds,
                              callback=lambda y: new_iterate(xmap(y)), options=o)
            gave_up = (not res.success and int(res.status) == 2 and st["nfail"] > nfail0
                       and run["failed"] is not None)
        except _Retry as failed:
            run["failed"], gave_up = failed.args[0], True
        if not gave_up:
            xf, val, success = xmap(res.x), float(res.fun), bool(res.success)
            message = str(res.message)
            i = _best(hist)
            if not np.isfinite(val) or val > hist[i]:
                xf, val = iterates[i], hist[i]
                message = (message.rstrip(".") + "; scipy's result is not the best "
                           "iterate, p is the best iterate")
            if st["nfail"]:
                message = message.rstrip(".") + "; " + failures()
            return xf, val, success, message
        # back off: halve the step from the best iterate towards the failed point
        i = _best(hist)
        x_b, f_b = iterates[i], hist[i]
        d = run["failed"] - x_b
        length = float(np.linalg.norm(d))
        floor = _STEP_FLOOR * (1.0 + float(np.linalg.norm(x_b)))
        x_start, f_start, g_start = x_b, f_b, None
        step = length * 0.5 ** (_HALVINGS + 1)
        for k in range(1, _HALVINGS + 1):
            if st["nfev"] - 1 >= maxfun or length * 0.5 ** k < floor:
                break
            x = clip(x_b + d * 0.5 ** k)
            try:
                val, g = ev(x)
            except _Retry:
                continue
            if val < f_b:
                record(x)
                keep_if_best(x, val, g)
                x_start, f_start, g_start = x, val, g
                step = float(np.linalg.norm(x - x_b))
                break
        if st["nfev"] - 1 >= maxfun:
            return stop(f"STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT; {failures()}")
        if scale is not None and hist[_best(hist)] >= f_before:
            return stop(f"stopped: {failures()}, and the last restart got no lower; p is "
                        f"the best iterate so far")
        if step < floor:
            return stop(f"stopped: {failures()}, and they close in on the best point (the "
                        f"longest step from it that does not fail is under {floor:.2g}); "
                        f"p is the best iterate so far, next to where the loss is not "
                        f"finite")
        if restarts >= _MAX_RESTARTS:
            return stop(f"stopped: {failures()}, the most fit makes, and failed again; p "
                        f"is the best iterate so far")
        if g_start is None:                      # x_b's gradient: kept, or solved again
            if best_g[0] == x_b.tobytes():
                g_start = best_g[1]
            else:
                try:
                    f_start, g_start = ev(x_b)
                except _Retry:
                    return stop(f"stopped: {failures()}; the best point failed when "
                                f"evaluated again, p is the best iterate so far")
        restarts += 1
        g_start = np.array(g_start, dtype=np.float64)
        run["start"] = (x_start.copy(), float(f_start), g_start)
        gn = float(np.linalg.norm(g_start[free]))
        scale = float(np.sqrt(step / gn)) if boxed and gn > 0 else step
        _log.info("fit: L-BFGS-B restart %d from p = %s, first step about %.3g", restarts,
                  _show(x_start), step)


def fit(prob, alg, loss, p0, *, wrt="p", method="L-BFGS-B", bounds=None, regularizer=None,
        maxiter=100, progress=True, callback=None, log=None, sensealg=None, gtol=1e-8,
        options=None, **solve_kw):
    """Minimise ``loss(solve(prob(x))) + regularizer(x)`` over ``x`` (``p``, ``u0``, ``b``
    or ``kappa``), with gradients from :func:`jitsolve.gradient`.

    Parameters
    ----------
    prob, alg, loss : as for ``js.gradient``
        ``prob`` may be an ``EnsembleProblem`` (several experiments, e.g. one per initial
        state in ``u0s``, with an ``L2Loss`` holding each one's data, ``(N, m, ...)``):
        the loss is summed over the trajectories; ``wrt="p"`` fits one ``p`` shared by all
        of them when the ensemble has no ``ps`` (its gradient the sum of the
        per-trajectory gradients, computed in one kernel where ``js.gradient`` does), or
        each trajectory's own row of ``ps`` (``p0`` of shape ``(N, np)``) when it has;
        ``wrt="u0"`` likewise with ``u0s``.
    p0 : array, or a tuple of arrays
        Starting point (shape of the quantity named by ``wrt``); clipped to ``bounds``
        before the first evaluation.  A solve that fails there, or a loss or regularizer
        that is not finite there, raises.
    wrt : str or tuple of str
        What is fitted: ``"p"``, ``"u0"``, ``"b"``, ``"kappa"``, or several of them at
        once (``wrt=("p", "u0")``: parameters and initial state jointly); then ``p0`` is
        a tuple with one starting array per name, ``bounds`` one entry per name (each as
        for a single name, or None) or a single ``(lo, hi)`` of numbers for all (a pair
        of arrays is refused as ambiguous), ``regularizer`` one per name (or None) or a
        single one applied to each block, and ``res.p`` a tuple of the estimates in
        ``wrt``'s order.
    method : {"L-BFGS-B", "BFGS", "CG", "SLSQP", "least_squares"}
        The gradient-based ``scipy.optimize.minimize`` method, or ``"least_squares"``:
        a Gauss-Newton trust region (``scipy.optimize.least_squares``, ``trf``, bounds
        allowed) on the residuals ``sqrt(w) (u(t) - d)`` with their exact Jacobian from
        forward sensitivities (:func:`jitsolve.local_sensitivities`), for an ``L2Loss``
        of an ODE problem with few inputs: it converges in far fewer solves than the
        quasi-Newton methods on such problems.  Its regularizer may only be
        ``js.Tikhonov`` (appended as residuals); ``history``, ``callback`` and ``log``
        see every evaluation (a failed one as ``loss = inf``), ``nit`` counts the
        Jacobians.  With a stiff method the residuals come from the state solved
        together with its tangents (equal to ``js.solve``'s to the tolerance).
    bounds : (lo, hi), sequence of ``p0.size`` pairs or scipy.optimize.Bounds, optional
        ``(lo, hi)`` with ``lo`` and ``hi`` numbers or NumPy arrays of ``p0``'s shape
        (None: unbounded); or, as scipy takes them, a list of ``p0.size`` pairs, one
        ``(lo, hi)`` per entry of the flattened ``p0`` (so for a ``p0`` of two entries
        ``[[0, 0], [5, 5]]`` is two pairs, while ``(np.zeros(2), np.full(2, 5.0))`` is
        ``(lo, hi)``).  An entry with ``lo == hi`` is held there.  For "L-BFGS-B",
        "SLSQP" and "least_squares" only.
    regularizer : js.Tikhonov or js.TotalVariation or callable ``x -> (value, grad)``
    maxiter : int >= 1
        Most iterations; with ``method="least_squares"`` the most evaluations (scipy's
        ``max_nfev``).
    progress : bool
        Print iteration, loss, gradient norm and time.
    callback : callable, optional
        ``callback(x, loss)`` after every iteration (every evaluation with
        "least_squares").  Returning True or raising ``StopIteration`` stops the fit
        (Optimization.jl's convention): ``success`` is False, ``message`` says the
        callback stopped it, ``p`` is the best point so far and ``history`` what was done.
    log : path, optional
        HDF5 file with the iterates, losses and gradient norms; created (and so checked)
        before the first solve, overwriting a file that exists.  Written when the fit
        ends, however it ends (an exception included), with the iterations done; a write
        that fails then only warns.
    sensealg : optional
        As for ``js.gradient``.
    gtol : float > 0
        Gradient tolerance (not used by "SLSQP").
    options : dict, optional
        More settings for scipy, merged over those fit sets (``maxiter``, ``gtol``): for
        the ``minimize`` methods its ``options`` (e.g. ``{"ftol": 1e-14}`` for L-BFGS-B
        and SLSQP), for "least_squares" keyword arguments of
        ``scipy.optimize.least_squares`` (``ftol``, ``xtol``, ``gtol``, ...).
    **solve_kw
        Passed to every solve (``rtol``, ``atol``, ``saveat``, ...).

    Returns
    -------
    FitResult

    Notes
    -----
    A trial point chosen by the optimizer (after the starting point) where the solve
    fails (``SolveFailedError``, or an ``InvalidProblemError`` such as a ``kappa`` that is
    not positive) or where the loss, its gradient or the regularizer is not finite is a
    failed point: the optimizer backs off from it and goes on (as Optim.jl's line searches
    do), and ``message`` counts such points and names the last.  "BFGS", "CG" and "SLSQP"
    see it as ``loss = inf`` (SciML's convention).  "L-BFGS-B", whose line search would
    take an inf for convergence, sees a value above the point the search started from, so
    that the search backtracks and L-BFGS-B keeps its memory.  Where a line search gives
    up, fit halves the step from the best iterate towards the failed point (each try an
    evaluation, a lower point an iteration) and restarts L-BFGS-B from the best point,
    with a first step about as long as the step that worked; at most 20 restarts, which
    share ``maxiter`` and ``maxfun`` (``nit`` and ``nfev`` count every run).  It stops,
    with ``success=False`` and ``p`` the best iterate, when a restart gets no lower or the
    failed points close in on the best point (a loss falling towards where it is not
    finite, or such a region lying across the descent).  "least_squares" (``trf`` and
    ``dogbox``) takes a failed point as a rejected step: scipy, given NaN residuals there,
    shrinks the trust region to a quarter of that step and tries again, with no Jacobian
    asked at the failed point; ``history`` and the log keep it as ``loss = inf`` (its
    ``grad_norm`` NaN), the callback sees it, ``nfev`` counts it.  Measured on the blow-up
    ODE of tests/test_audit_fit.py: the true parameters from all 16 of 42 starts (46
    drawn, 4 failing themselves) whose first step blows up (each 1 failed point, 8 to 13
    evaluations), where fit used to stop; nothing changes where no point fails.  It stops
    (``success=False``, ``p`` the best point) when a failed step from the best point is
    shorter than ``sqrt(eps) (1 + |p|)``, or when scipy's ``ftol``/``xtol`` test is met
    in an iteration whose trust region a failed point shrank (a wall, not a minimum).
    ``options={"method": "lm"}`` (MINPACK, with no such test) stops at a failed point.
    A result whose loss is not finite is never a success.

    References
    ----------
    Nocedal, Wright, *Numerical Optimization* (2006), ch. 7 (L-BFGS) and ch. 10 (nonlinear
    least squares); Byrd, Lu, Nocedal, Zhu, *A limited memory algorithm for bound
    constrained optimization* (1995); Branch, Coleman, Li, *A subspace, interior, and
    conjugate gradient method for large-scale bound-constrained minimization problems*
    (1999) (scipy's ``trf``).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([1.0]))
    >>> loss = js.L2Loss(np.array([1.0]), np.array([[np.exp(-1.5)]]))   # data: p = 1.5
    >>> res = js.fit(prob, js.Tsit5(), loss, np.array([1.0]), progress=False,
    ...              rtol=1e-8, atol=1e-10)
    >>> res.success, np.round(res.p, 4)
    (True, array([1.5]))

    Cost
    ----
    Per evaluation of the objective: one ``js.gradient`` call (a forward solve and its
    adjoint, or the ``sensealg``'s cost) plus the regulariser; ``nfev + 1`` evaluations
    in all (the starting point is evaluated once more for the history).  L-BFGS-B keeps
    10 pairs of vectors of ``x``'s size; ``log`` keeps every iterate in memory.  With
    ``method="least_squares"``: per evaluation one forward-sensitivity solve (``k``
    tangent directions for ``k`` inputs) and a ``k``-column Jacobian of the residuals.
    """
    import scipy.optimize as so

    from .gradient import gradient
    names, p0s = _blocks(wrt, p0)
    joint = len(names) > 1
    x0s, shared = [], []
    if not joint:
        wrt = names[0]
    for name, q in zip(names, p0s):
        x0 = as_state_array(q, "p0", dtypes=(np.float64, np.float32)).astype(np.float64)
        if name not in ("p", "u0", "b", "kappa"):
            _with(prob, name, x0)                    # the error naming the choices
        sh = False
        if isinstance(prob, EnsembleProblem):
            base, _, sh = ensemble_wrt(prob, name)
            if x0.shape != np.shape(base):
                what = (f"one {name} shared by the trajectories" if sh else
                        "one row per trajectory")
                raise InvalidProblemError(f"p0: expected shape {np.shape(base)} ({what}), got "
                                          f"{x0.shape}" + (f" for {name}" if joint else ""))
            n = solve_kw.get("trajectories")
            if (not sh and isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                    and 0 < n < x0.shape[0]):
                # the rows past trajectories=n would not enter the loss: their gradient
                # is missing, not zero, and the fit would have nothing to move them by
                raise InvalidProblemError(
                    f"trajectories: {n}, but the ensemble's {name}s has {x0.shape[0]} rows "
                    f"(one per trajectory), and each row of p0 is fitted; fit an ensemble "
                    f"of the first {n} rows instead (js.remake(prob, {name}s=...[:{n}]))")
        x0s.append(x0)
        shared.append(sh)
    shapes = [x.shape for x in x0s]
    x0 = np.concatenate([x.ravel() for x in x0s]) if joint else x0s[0]
    shape = x0.shape
    method = _check_method(method, bounds)
    bounds = (_joint_bounds(bounds, names, shapes) if joint else _check_bounds(bounds, shape))
    maxiter = check_positive_int(maxiter, "maxiter")
    gtol = check_positive_float(gtol, "gtol")
    options = _check_options(options, method)
    regs = _joint_regularizers(regularizer, names) if joint else [regularizer]
    for r in regs:
        if r is not None and not callable(r):
            raise InvalidProblemError(f"regularizer: expected js.Tikhonov, js.TotalVariation or "
                                      f"a callable x -> (value, gradient), got {type(r).__name__}")
    for r, sh in zip(regs, shapes):
        if isinstance(r, (Tikhonov, TotalVariation)):
            r._check_shape(sh)         # an x_ref or a grid of another shape: before any solve
    if callback is not None and not callable(callback):
        from .ode import ContinuousCallback, DiscreteCallback
        if isinstance(callback, (ContinuousCallback, DiscreteCallback, list, tuple)):
            raise InvalidProblemError(
                f"callback: fit's callback is called after each iteration as callback(x, "
                f"loss); events belong to the problem: js.ODEProblem(..., callback=cb) or "
                f"js.remake(prob, callback=cb), got {type(callback).__name__}")
        raise InvalidProblemError(f"callback: expected a callable (x, loss), got {type(callback).__name__}")
    loss, solve_kw = observe_at_saveat(prob, loss, solve_kw)
    if log is not None:
        _open_log(log, ",".join(names))
    if method == "least_squares":
        return _fit_least_squares(prob, alg, loss, names, x0s, bounds, regs, maxiter, gtol,
                                  progress, callback, log, sensealg, solve_kw, options)
    opts = dict(maxiter=maxiter) if method == "SLSQP" else dict(maxiter=maxiter, gtol=gtol)
    opts.update(options)
    x0f = x0.ravel() if bounds is None else np.clip(x0.ravel(), bounds.lb, bounds.ub)
    hist, gnorms, times, iterates = [], [], [], []
    seen = {}                  # recent evaluations: x's bytes -> (value, gradient norm)
    st = dict(started=False, nfev=0, nfail=0, fail=None, last=None)
    t_start = time.perf_counter()

    def split(xf):
        return _split(xf, shapes)

    def shaped(xf):
        return tuple(split(xf)) if joint else xf.reshape(shape)

    def objective(xf):
        """Value and gradient, and (argument, what) when one of them is not finite."""
        xs = split(xf)
        pr = _with_all(prob, names, xs)
        val, grads = gradient(pr, alg, loss, wrt=tuple(names), sensealg=sensealg, **solve_kw)
        val = float(val)
        bad = None if np.isfinite(val) else ("loss", f"is not finite ({val})")
        gs = []
        for name, x, sh, reg in zip(names, xs, shared, regs):
            g = np.asarray(grads[name], dtype=np.float64)
            g = (g.sum(axis=0) if sh else g).reshape(x.shape)
            if bad is None and not np.all(np.isfinite(g)):
                bad = ("loss", "has a gradient that is not finite")
            if reg is not None:
                rv, rg = _regularize(reg, x)
                where = f" for {name!r}" if joint else ""
                if bad is None and not np.isfinite(rv):
                    bad = ("regularizer", f"gives a value that is not finite ({rv}){where}")
                if bad is None and not np.all(np.isfinite(rg)):
                    bad = ("regularizer", f"gives a gradient that is not finite{where}")
                val += rv
                g = g + rg
            gs.append(g.ravel())
        return val, (np.concatenate(gs) if joint else gs[0]), bad

    def failed(xf, what, why=""):
        st["nfail"] += 1
        st["fail"] = f"{what} at a trial point p = {_show(xf)}{why}"
        _log.info("fit: trial point failed (%s)", st["fail"])
        if method not in _BACKS_OFF:          # L-BFGS-B: _lbfgsb answers it
            raise _Retry(xf.copy())
        return np.inf, np.zeros_like(xf)

    def fun(xf):
        st["nfev"] += 1
        try:
            val, g, bad = objective(xf)
        except (SolveFailedError, InvalidProblemError) as exc:
            if not st["started"]:
                raise
            return failed(xf, "the solve failed", f" ({type(exc).__name__}: {exc})")
        if bad is not None:
            if not st["started"]:
                raise InvalidProblemError(f"{bad[0]}: {bad[1]} at the starting point p0 = "
                                          f"{_show(xf)}")
            return failed(xf, f"the {bad[0]} {bad[1]}")
        st["last"] = (val, float(np.linalg.norm(g)))
        seen[xf.tobytes()] = st["last"]
        if len(seen) > 64:
            del seen[next(iter(seen))]
        return val, g

    def record(xf):
        val, gn = seen.get(xf.tobytes(), st["last"])
        hist.append(val)
        gnorms.append(gn)
        times.append(time.perf_counter() - t_start)
        iterates.append(xf.copy())
        _log.info("fit iter %d: loss %.6e, |grad| %.3e, %.2f s", len(hist) - 1, hist[-1],
                  gnorms[-1], times[-1])
        if progress:
            print(f"  iter {len(hist) - 1:4d}  loss {hist[-1]:.6e}  |grad| {gnorms[-1]:.3e}  "
                  f"{times[-1]:7.2f} s", flush=True)
        if callback is not None:
            _ask_callback(callback, shaped(xf.copy()), val)

    try:
        fun(x0f)
        st["started"] = True
        record(x0f)
        if method == "L-BFGS-B":
            xf, val, success, message = _lbfgsb(fun, record, x0f, bounds, opts, hist,
                                                iterates, st)
            nit, nfev = len(hist) - 1, st["nfev"] - 1
        else:
            res = so.minimize(fun, x0f, jac=True, method=method, bounds=bounds,
                              callback=lambda xf: record(xf), options=opts)
            xf, val, success = res.x, float(res.fun), bool(res.success)
            message = str(res.message)
            nit, nfev = int(res.get("nit", len(hist) - 1)), int(res.get("nfev", st["nfev"]))
            if not np.isfinite(val):
                i = _best(hist)
                xf, val = iterates[i], hist[i]
                message = (message.rstrip(".") + "; the loss at scipy's result is not "
                           "finite, p is the best iterate")
            if st["nfail"]:
                message = (message.rstrip(".") + f"; {st['nfail']} trial point(s) failed "
                           f"and counted as loss = inf (the last: {st['fail']})")
    except _Stop as stop:
        i = _best(hist)
        xf, val, success, message = iterates[i], hist[i], False, stop.args[0]
        nit, nfev = len(hist) - 1, st["nfev"] - (method == "L-BFGS-B")
    finally:
        if log is not None:
            _write_log(log, ",".join(names), shape, iterates, hist, gnorms, times)
    _log.info("fit wrt %s: %s after %d iterations, loss %.6e", wrt, message, nit, val)
    return FitResult(p=shaped(np.array(xf, dtype=np.float64)), loss=val,
                     history=np.array(hist), grad_norm=np.array(gnorms),
                     times=np.array(times), success=success and bool(np.isfinite(val)),
                     message=message, nit=nit,
                     nfev=nfev)
