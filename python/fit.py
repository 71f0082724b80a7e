"""``js.fit``: gradient-based parameter estimation on top of ``scipy.optimize``.

Every objective evaluation is one ``js.gradient`` call (forward solve + adjoint), plus
an optional regulariser.  The history (loss, gradient norm, time per iteration) is kept,
printed with ``progress=True`` and written to an HDF5 log with ``log=path``.
"""
import time

import numpy as np

from .errors import InvalidProblemError
from .log import get_logger

__all__ = ["fit", "FitResult", "Tikhonov", "TotalVariation"]

_log = get_logger("fit")


class Tikhonov:
    """``0.5 * alpha * ||x - x_ref||^2`` (``x_ref`` default 0).

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
        if not alpha >= 0:
            raise InvalidProblemError(f"alpha: expected a number >= 0, got {alpha!r}")
        self.alpha, self.x_ref = float(alpha), x_ref

    def __call__(self, x):
        d = x - (0.0 if self.x_ref is None else self.x_ref)
        return 0.5 * self.alpha * float(np.sum(d * d)), self.alpha * d


class TotalVariation:
    """Smoothed total variation ``alpha * sum sqrt(|grad x|^2 + eps^2)`` of a field
    (forward differences along every axis of ``x``'s shape).

    References
    ----------
    Rudin, Osher, Fatemi, *Nonlinear total variation based noise removal*, Physica D 60
    (1992).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> val, grad = js.TotalVariation(1.0, eps=1e-6)(np.array([0.0, 0.0, 1.0, 1.0]))
    >>> round(val, 4), np.round(grad, 3)                 # one unit jump
    (1.0, array([ 0., -1.,  1.,  0.]))

    Cost
    ----
    Per evaluation: NumPy passes over ``x``: per axis one forward difference, its
    square and a few passes for the gradient (a roll and a mask), plus a square root;
    about ``10 ndim`` passes and ``ndim + 3`` temporary arrays of ``x``'s shape.
    """

    def __init__(self, alpha, eps=1e-3):
        if not alpha >= 0:
            raise InvalidProblemError(f"alpha: expected a number >= 0, got {alpha!r}")
        self.alpha, self.eps = float(alpha), float(eps)

    def __call__(self, x):
        sq = np.full(x.shape, self.eps ** 2)
        diffs = []
        for ax in range(x.ndim):
            d = np.diff(x, axis=ax, append=np.take(x, [-1], axis=ax))   # Neumann: last diff 0
            diffs.append(d)
            sq = sq + d * d
        r = np.sqrt(sq)
        val = self.alpha * float(np.sum(r))
        g = np.zeros_like(x)
        for ax, d in enumerate(diffs):
            q = d / r
            # d/dx of d_i = x_{i+1} - x_i (the last is constant)
            qi = q.copy()
            idx = [slice(None)] * x.ndim
            idx[ax] = -1
            qi[tuple(idx)] = 0.0
            g -= qi
            g += np.roll(qi, 1, axis=ax) * (np.arange(x.shape[ax]) > 0).reshape(
                [-1 if a == ax else 1 for a in range(x.ndim)])
        return val, self.alpha * g


class FitResult:
    """Outcome of :func:`fit`: ``p`` (the estimate, shaped like ``p0``), ``loss``,
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
    if wrt in ("p", "u0", "b"):
        return remake(prob, **{wrt: x})
    if wrt == "kappa":
        return kappa_of(prob)[1](x)
    raise InvalidProblemError(f"wrt: expected 'p', 'u0', 'b' or 'kappa', got {wrt!r}")


def fit(prob, alg, loss, p0, *, wrt="p", method="L-BFGS-B", bounds=None, regularizer=None,
        maxiter=100, progress=True, callback=None, log=None, sensealg=None, gtol=1e-8,
        **solve_kw):
    """Minimise ``loss(solve(prob(x))) + regularizer(x)`` over ``x`` (``p``, ``u0``, ``b``
    or ``kappa``), with gradients from :func:`jitsolve.gradient`.

    Parameters
    ----------
    prob, alg, loss : as for ``js.gradient``
    p0 : array
        Starting point (shape of the quantity named by ``wrt``).
    method : str
        A gradient-based ``scipy.optimize.minimize`` method ("L-BFGS-B", "BFGS", "CG", ...).
    bounds : (lo, hi) or sequence of pairs, optional
    regularizer : js.Tikhonov or js.TotalVariation or callable ``x -> (value, grad)``
    maxiter : int
    progress : bool
        Print iteration, loss, gradient norm and time.
    callback : callable, optional
        ``callback(x, loss)`` after every iteration.
    log : path, optional
        HDF5 file with the iterates, losses and gradient norms.

    Returns
    -------
    FitResult

    References
    ----------
    Nocedal, Wright, *Numerical Optimization* (2006), ch. 7 (L-BFGS); Byrd, Lu, Nocedal,
    Zhu, *A limited memory algorithm for bound constrained optimization* (1995).

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
    10 pairs of vectors of ``x``'s size; ``log`` keeps every iterate in memory.
    """
    import scipy.optimize as so

    from .gradient import gradient
    x0 = np.array(p0, dtype=np.float64)
    if not np.isfinite(x0).all():
        raise InvalidProblemError("p0: contains NaN or Inf")
    shape = x0.shape
    if bounds is not None and len(bounds) == 2 and np.ndim(bounds[0]) == 0:
        bounds = [tuple(bounds)] * x0.size
    hist, gnorms, times, iterates = [], [], [], []
    last = {}
    t_start = time.perf_counter()

    def fun(xf):
        x = xf.reshape(shape)
        val, grads = gradient(_with(prob, wrt, x), alg, loss, wrt=(wrt,), sensealg=sensealg,
                              **solve_kw)
        g = np.asarray(grads[wrt], dtype=np.float64).reshape(shape)
        if regularizer is not None:
            rv, rg = regularizer(x)
            val += rv
            g = g + rg
        last.update(val=val, gnorm=float(np.linalg.norm(g)))
        return val, g.ravel()

    def record(xf):
        hist.append(last["val"])
        gnorms.append(last["gnorm"])
        times.append(time.perf_counter() - t_start)
        iterates.append(xf.copy())
        _log.info("fit iter %d: loss %.6e, |grad| %.3e, %.2f s", len(hist) - 1, hist[-1],
                  gnorms[-1], times[-1])
        if progress:
            print(f"  iter {len(hist) - 1:4d}  loss {hist[-1]:.6e}  |grad| {gnorms[-1]:.3e}  "
                  f"{times[-1]:7.2f} s", flush=True)
        if callback is not None:
            callback(xf.reshape(shape), last["val"])

    fun(x0.ravel())
    record(x0.ravel())
    res = so.minimize(fun, x0.ravel(), jac=True, method=method, bounds=bounds,
                      callback=lambda xf: record(xf), options=dict(maxiter=maxiter, gtol=gtol))
    if log is not None:
        import h5py
        with h5py.File(log, "w") as f:
            f.attrs["format"] = "jitsolve-fit"
            f.attrs["wrt"] = wrt
            f.create_dataset("iterates", data=np.array(iterates).reshape((-1,) + shape))
            f.create_dataset("loss", data=np.array(hist))
            f.create_dataset("grad_norm", data=np.array(gnorms))
            f.create_dataset("time", data=np.array(times))
        _log.info("fit: wrote %d iterates to %s", len(iterates), log)
    _log.info("fit wrt %s: %s after %d iterations, loss %.6e", wrt, res.message, res.nit, res.fun)
    return FitResult(p=res.x.reshape(shape), loss=float(res.fun), history=np.array(hist),
                     grad_norm=np.array(gnorms), times=np.array(times), success=bool(res.success),
                     message=str(res.message), nit=int(res.nit), nfev=int(res.nfev))
