"""Losses for gradients and fits: ``js.L2Loss``, custom ``js.Loss(value, grad)`` and,
for ensembles, losses of all trajectories at once: ``js.EnsembleLoss(value, grad)`` and
``js.MomentLoss`` (the trajectories' mean and variance against data).

A loss sees the saved states of a solve: for a ``LinearProblem`` the solution ``u``
(the shape of ``b``); for time-dependent problems the states saved at the loss's times;
an ``EnsembleLoss`` sees every trajectory's saved states at once, ``(N, m, *u0.shape)``.
"""
import copy
import numbers

import numpy as np

from .errors import InvalidProblemError
from .validate import as_state_array, check_finite

__all__ = ["Loss", "L2Loss", "EnsembleLoss", "MomentLoss"]


def _times(t_data):
    t = np.atleast_1d(np.asarray(t_data, dtype=np.float64))
    if t.ndim != 1:
        raise InvalidProblemError(f"t_data: expected a 1-D array of times, got shape {t.shape}")
    check_finite(t, "t_data")
    return t


def observe_at_saveat(prob, loss, solve_kw):
    """``(loss, solve_kw)`` with ``saveat`` moved into the loss's observation times.

    ``gradient``, ``fit`` and ``check_gradient`` save at the loss's times unless
    ``saveat`` is given (API.md): a loss without ``t_data`` observes at ``saveat``; one
    with ``t_data`` accepts only the same times.  ``saveat`` leaves ``solve_kw``.
    """
    saveat = solve_kw.get("saveat")
    tspan = getattr(getattr(prob, "prob", prob), "tspan", None)   # an ensemble's base problem
    if saveat is None or tspan is None or not isinstance(loss, Loss):
        return loss, solve_kw
    from .ode import saveat_times
    if np.ndim(saveat) == 0:
        step = float(saveat)
        if not (np.isfinite(step) and step > 0):
            raise InvalidProblemError(f"saveat: an interval must be a positive number, got {saveat!r}")
    t = _times(saveat_times(tspan, saveat))
    kw = {k: v for k, v in solve_kw.items() if k != "saveat"}
    if loss.t_data is None:
        timed = copy.copy(loss)
        timed.t_data = t
        return timed, kw
    if loss.t_data.shape == t.shape and np.array_equal(loss.t_data, t):
        return loss, kw
    raise InvalidProblemError(
        f"saveat: the loss observes at its own t_data ({loss.t_data.size} times); saveat "
        f"({t.size} times) differs -- give the times once (saveat= or the loss's t_data)")


class Loss:
    """A custom loss from two functions: ``value(u_saved) -> float`` and
    ``grad(u_saved) -> array`` of ``u_saved``'s shape (the gradient dJ/du).

    For a time-dependent problem the loss sees the states saved at ``t_data`` (given
    here, or by ``saveat=`` to ``js.gradient`` / ``js.fit`` / ``js.check_gradient``):
    ``u_saved`` has shape ``(len(t_data), *u0.shape)``.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> loss = js.Loss(lambda u: 0.5 * np.sum(u**2), lambda u: u)
    >>> loss.value(np.array([1.0, 2.0]))
    2.5
    """

    #: times at which the loss looks at the solution (None: a steady/linear solve)
    t_data = None

    def __init__(self, value, grad, t_data=None):
        if not callable(value):
            raise InvalidProblemError(f"value: expected a function u -> float, got {type(value).__name__}")
        if not callable(grad):
            raise InvalidProblemError(f"grad: expected a function u -> array, got {type(grad).__name__}")
        self._value = value
        self._grad = grad
        if t_data is not None:
            self.t_data = _times(t_data)

    def value(self, u):
        """The loss at the saved states ``u``."""
        v = self._value(u)
        real = isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
        if not (real or (isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "fiu")):
            raise InvalidProblemError(
                f"value: the loss must return a real number, got {type(v).__name__}"
                + (f" of shape {np.shape(v)}" if np.ndim(v) else ""))
        return float(v)

    def grad(self, u):
        """dJ/du at ``u``, an array of ``u``'s shape."""
        g = np.asarray(self._grad(u))
        if g.dtype.kind == "c":                  # casting would drop the imaginary part
            raise InvalidProblemError(f"grad: the loss gradient must be real, got dtype "
                                      f"{g.dtype}")
        try:
            g = np.asarray(g, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidProblemError(f"grad: the loss gradient must be an array of numbers, "
                                      f"got {type(g).__name__} of dtype {g.dtype}") from None
        if g.shape != np.shape(u):
            raise InvalidProblemError(f"grad: the loss gradient has shape {g.shape}, expected {np.shape(u)}")
        return g

    def __call__(self, u):
        return self.value(u)


class L2Loss(Loss):
    """Weighted least squares ``0.5 * sum w (u - d)^2`` over the observed entries.

    Parameters
    ----------
    t_data : array of times, or None
        The times of the observations; ``None`` for a steady or linear problem, where
        the loss acts on the solution ``u`` itself.
    data : array
        Observations, the shape of the saved states (for a ``LinearProblem``: the shape
        of ``u``, e.g. the grid's shape).  For an ``EnsembleProblem`` either one set
        shared by every trajectory, ``(m, *u0.shape)``, or one per trajectory,
        ``(N, m, *u0.shape)`` (several experiments, each with its own initial state or
        parameters and its own measurements).
    weights : array, optional
        Weights of the shape of ``data`` (or broadcastable to it); a 0/1 mask selects
        the observed entries (for example interior sensors).  Default all ones.

    ``value(u) = 0.5 * sum(w * (u - data)**2)``, ``grad(u) = w * (u - data)``.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> mask = np.zeros((8, 8)); mask[2:6, 2:6] = 1.0
    >>> loss = js.L2Loss(None, np.zeros((8, 8)), weights=mask)
    >>> loss.value(np.ones((8, 8)))
    8.0
    """

    def __init__(self, t_data, data, weights=None):
        self.t_data = None if t_data is None else _times(t_data)
        self.data = as_state_array(data, "data", dtypes=(np.float64, np.float32)).astype(np.float64)
        if weights is None:
            self.weights = None
        else:
            w = as_state_array(weights, "weights", dtypes=(np.float64, np.float32)).astype(np.float64)
            try:
                # a writable copy: a read-only view is another type to the kernels
                w = np.array(np.broadcast_to(w, self.data.shape), order="C")
            except ValueError:
                raise InvalidProblemError(
                    f"weights: shape {w.shape} does not match data {self.data.shape}") from None
            if (w < 0).any():
                raise InvalidProblemError("weights: must be >= 0")
            self.weights = w
        super().__init__(self._l2value, self._l2grad)
        m = None if self.t_data is None else self.t_data.size
        if (m is not None and self.data.ndim >= 2 and self.data.shape[0] != m
                and not (self.data.ndim >= 3 and self.data.shape[1] == m)):
            raise InvalidProblemError(f"data: {m} observation times but data of shape "
                                      f"{self.data.shape} (one row per time, or (trajectories, "
                                      f"{m}, ...) for an ensemble's data per trajectory)")
        if m is not None and self.data.size % m:
            raise InvalidProblemError(f"data: {m} observation times but {self.data.size} "
                                      f"values (shape {self.data.shape}), not a whole number "
                                      f"of states per time")

    def trajectory(self, i, shape):
        """The loss of trajectory ``i`` of an ensemble whose saved states have ``shape``
        (``(m, *u0.shape)``): itself when the data are shared, else an ``L2Loss`` on block
        ``i`` of per-trajectory data."""
        size = int(np.prod(shape))
        if self.data.size == size:
            return self
        d = self.data.reshape((-1,) + tuple(shape))
        w = None if self.weights is None else self.weights.reshape(d.shape)[i]
        return L2Loss(self.t_data, d[i], weights=w)

    def _diff(self, u):
        u = np.asarray(u)
        if u.shape != self.data.shape:
            if u.size == self.data.size:
                u = u.reshape(self.data.shape)
            elif self.data.ndim >= 3 and self.data.shape[1:] == u.shape:
                raise InvalidProblemError(
                    f"data: shape {self.data.shape} holds {self.data.shape[0]} trajectories' "
                    f"observations (for an EnsembleProblem); this solve saves states of shape "
                    f"{u.shape}")
            else:
                raise InvalidProblemError(f"u: the loss expects states of shape {self.data.shape}, got {u.shape}")
        return u - self.data

    def _l2value(self, u):
        d = self._diff(u)
        w = 1.0 if self.weights is None else self.weights
        return 0.5 * float(np.sum(w * d * d))

    def _l2grad(self, u):
        d = self._diff(u)
        g = d if self.weights is None else self.weights * d
        return g.reshape(np.shape(u))

    def __repr__(self):
        return f"L2Loss(t_data={self.t_data!r}, data=array{self.data.shape})"


class EnsembleLoss(Loss):
    """A custom loss of a whole ensemble: ``value(us) -> float`` and ``grad(us) -> array``
    on the saved states of every trajectory at once, ``us`` of shape ``(N, m,
    *u0.shape)`` (where ``js.Loss`` sees one trajectory's).  For statistics that couple
    the trajectories: moments (``js.MomentLoss`` is one), covariances between components,
    quantiles through a smooth surrogate, a distribution distance between sample sets.

    ``js.gradient`` / ``js.fit`` / ``js.check_gradient`` of an ``EnsembleProblem`` with
    such a loss solve the ensemble once at ``t_data`` for ``us``, then run every
    trajectory's adjoint seeded with its block ``grad(us)[i]`` (one compiled kernel
    where the ensemble gradients have one).  The gradient is that of ``value`` exactly
    when ``grad`` is its derivative: ``js.check_gradient`` tests it.

    Parameters
    ----------
    value, grad : callables on ``us`` (N, m, *u0.shape)
    t_data : array of times, or None (the times of ``saveat=``)

    References
    ----------
    Glasserman, *Monte Carlo Methods in Financial Engineering* (2003), sec. 7.2 (pathwise
    derivatives of functions of many paths).

    Cost
    ----
    Per ``js.gradient`` call: one forward solve of the ensemble at ``t_data``, ``value``
    and ``grad`` once, then the ensemble gradient of an ``L2Loss`` carrying the seeds
    (its forward and the adjoints): one forward solve more than an ``L2Loss``.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def cov(us):                    # covariance of components 0 and 1 at each time
    ...     d = us - us.mean(axis=0)
    ...     return (d[..., 0] * d[..., 1]).sum(axis=0) / (us.shape[0] - 1)
    >>> def value(us):
    ...     return 0.5 * float(np.sum((cov(us) - 0.1) ** 2))
    >>> def grad(us):
    ...     d = us - us.mean(axis=0)
    ...     r = (cov(us) - 0.1) / (us.shape[0] - 1)
    ...     return np.stack([r * d[..., 1], r * d[..., 0]], axis=-1)
    >>> loss = js.EnsembleLoss(value, grad, t_data=[1.0])
    >>> us = np.array([[[0.0, 0.0]], [[1.0, 1.0]]])   # two trajectories, one time
    >>> round(loss.value(us), 12), loss.grad(us)[:, 0, :].tolist()
    (0.08, [[-0.2, -0.2], [0.2, 0.2]])
    """


class MomentLoss(EnsembleLoss):
    """The moments of an ensemble's trajectories against data: weighted least squares of
    the sample mean and the sample variance at the loss's times,

    ``J = 0.5 sum wm (mean - M)^2 + 0.5 sum wv (var - V)^2`` with, over the ``N``
    trajectories ``u_i`` saved at ``t_data``, ``mean = (1/N) sum_i u_i`` and
    ``var = 1/(N - ddof) sum_i (u_i - mean)^2`` (per time and component).

    The usual way to fit an SDE (or an ODE with uncertain inputs) to statistics rather
    than to one path: ``js.gradient`` / ``js.fit`` of an ``EnsembleProblem`` with this
    loss differentiate through every trajectory (pathwise, each SDE trajectory on its
    own Brownian path of ``seed``: common random numbers, so ``J`` is a smooth function
    of the parameters for a fixed ``seed``).

    Parameters
    ----------
    t_data : array of times, or None
        The observation times (None: the times of ``saveat=`` given to ``js.gradient``).
    mean, var : arrays of shape ``(m, *u0.shape)``, optional
        The target mean and variance at the ``m`` times; at least one of them.
    mean_weights, var_weights : arrays broadcastable to that shape, optional
        Non-negative weights (a 0/1 mask selects observed components); default ones.
    ddof : int, 0 or 1
        The variance's divisor is ``N - ddof`` (1: the unbiased sample variance).

    ``value(us)`` and ``grad(us)`` act on the ensemble's saved states ``us`` of shape
    ``(N, m, *u0.shape)``; ``grad`` is ``dJ/du_i = wm (mean - M) / N
    + 2 wv (var - V) (u_i - mean) / (N - ddof)`` (exact: ``sum_i (u_i - mean) = 0``).

    References
    ----------
    Rackauckas et al., *Universal differential equations for scientific machine
    learning* (2020), and the DiffEqFlux.jl tutorial on SDE parameter estimation by
    moment matching; Glasserman, *Monte Carlo Methods in Financial Engineering* (2003),
    ch. 7 (pathwise derivatives with common random numbers).

    Cost
    ----
    Per ``js.gradient`` call: one forward solve of the ensemble at ``t_data`` (the
    moments and the seeds ``dJ/du_i``), then the ensemble gradient of an ``L2Loss`` with
    those seeds (its own forward and the adjoints: in one compiled kernel where the
    ensemble gradients have one), so one forward solve more than an ``L2Loss``; memory
    ``N * m * n`` numbers for the saved states.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> loss = js.MomentLoss([1.0], mean=[[0.5]], var=[[0.25]])
    >>> us = np.array([[[0.0]], [[1.0]]])            # two trajectories, one time
    >>> loss.value(us), loss.grad(us)[:, 0, 0]       # mean 0.5, var 0.5
    (0.03125, array([-0.25,  0.25]))
    """

    def __init__(self, t_data, mean=None, var=None, mean_weights=None, var_weights=None,
                 ddof=1):
        self.t_data = None if t_data is None else _times(t_data)
        if mean is None and var is None:
            raise InvalidProblemError("mean, var: give at least one of the target moments")
        if isinstance(ddof, bool) or ddof not in (0, 1):
            raise InvalidProblemError(f"ddof: expected 0 or 1, got {ddof!r}")
        self.ddof = int(ddof)
        self.mean = self._target(mean, "mean")
        self.var = self._target(var, "var")
        if self.var is not None and (self.var < 0).any():
            raise InvalidProblemError("var: a variance must be >= 0")
        if (self.mean is not None and self.var is not None
                and self.mean.shape != self.var.shape):
            raise InvalidProblemError(f"var: shape {self.var.shape} differs from mean's "
                                      f"{self.mean.shape}")
        self.mean_weights = self._weights(mean_weights, self.mean, "mean_weights")
        self.var_weights = self._weights(var_weights, self.var, "var_weights")
        super().__init__(self._moment_value, self._moment_grad)

    def _target(self, x, name):
        if x is None:
            return None
        a = as_state_array(x, name, dtypes=(np.float64, np.float32)).astype(np.float64)
        if a.ndim < 2:
            raise InvalidProblemError(f"{name}: expected shape (m, *u0.shape), one row per "
                                      f"observation time, got {a.shape}")
        if self.t_data is not None and a.shape[0] != self.t_data.size:
            raise InvalidProblemError(f"{name}: {self.t_data.size} observation times but "
                                      f"{a.shape[0]} rows (shape {a.shape})")
        return a

    @staticmethod
    def _weights(w, target, name):
        if w is None:
            return None
        if target is None:
            raise InvalidProblemError(f"{name}: given without its target moment")
        a = as_state_array(w, name, dtypes=(np.float64, np.float32)).astype(np.float64)
        try:
            a = np.array(np.broadcast_to(a, target.shape), order="C")    # as above
        except ValueError:
            raise InvalidProblemError(f"{name}: shape {a.shape} does not match "
                                      f"{target.shape}") from None
        if (a < 0).any():
            raise InvalidProblemError(f"{name}: must be >= 0")
        return a

    @property
    def shape(self):
        """The shape of one trajectory's saved states, ``(m, *u0.shape)``."""
        return (self.mean if self.mean is not None else self.var).shape

    def _stack(self, us):
        us = np.asarray(us, dtype=np.float64)
        shape = self.shape
        if us.ndim < 1 or us.shape[1:] != shape:
            # (N, nt, *u0.shape) for (nt, n) states: the same times, each state flattened
            if (us.ndim >= 2 and us.shape[1] == shape[0]
                    and us.size == us.shape[0] * int(np.prod(shape))):
                us = us.reshape((us.shape[0],) + shape)
            else:
                raise InvalidProblemError(
                    f"u: a MomentLoss expects the ensemble's saved states, (N, "
                    f"{', '.join(map(str, shape))}), got {us.shape}")
        N = us.shape[0]
        if self.var is not None and N - self.ddof < 1:
            raise InvalidProblemError(f"trajectories: a variance with ddof={self.ddof} needs "
                                      f"at least {self.ddof + 1} trajectories, got {N}")
        if N < 1:
            raise InvalidProblemError("trajectories: a MomentLoss needs at least one")
        return us

    def moments(self, us):
        """``(mean, var)`` of the saved states ``us`` (N, m, ...) over the trajectories
        (``var`` None when the loss has no variance target)."""
        us = self._stack(us)
        mean = us.mean(axis=0)
        var = (None if self.var is None else
               np.sum((us - mean) ** 2, axis=0) / (us.shape[0] - self.ddof))
        return mean, var

    def _moment_value(self, us):
        mean, var = self.moments(us)
        J = 0.0
        if self.mean is not None:
            r = mean - self.mean
            J += 0.5 * float(np.sum(r * r if self.mean_weights is None
                                    else self.mean_weights * r * r))
        if self.var is not None:
            r = var - self.var
            J += 0.5 * float(np.sum(r * r if self.var_weights is None
                                    else self.var_weights * r * r))
        return J

    def _moment_grad(self, us):
        us = self._stack(us)
        N = us.shape[0]
        mean, var = self.moments(us)
        g = np.zeros_like(us)
        if self.mean is not None:
            r = mean - self.mean
            g += (r if self.mean_weights is None else self.mean_weights * r) / N
        if self.var is not None:
            r = var - self.var
            c = 2.0 * (r if self.var_weights is None else self.var_weights * r) / (N - self.ddof)
            g += c * (us - mean)
        return g

    def __repr__(self):
        what = [k for k in ("mean", "var") if getattr(self, k) is not None]
        return (f"MomentLoss(t_data={self.t_data!r}, {'+'.join(what)}, shape={self.shape}, "
                f"ddof={self.ddof})")
