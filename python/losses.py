"""Losses for gradients and fits: ``js.L2Loss`` and custom ``js.Loss(value, grad)``.

A loss sees the saved states of a solve: for a ``LinearProblem`` the solution ``u``
(the shape of ``b``); for time-dependent problems the states saved at the loss's times.
"""
import copy

import numpy as np

from .errors import InvalidProblemError
from .validate import as_state_array, check_finite

__all__ = ["Loss", "L2Loss"]


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
        return float(self._value(u))

    def grad(self, u):
        """dJ/du at ``u``, an array of ``u``'s shape."""
        g = np.asarray(self._grad(u), dtype=np.float64)
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
                w = np.ascontiguousarray(np.broadcast_to(w, self.data.shape))
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
