"""Gradients of a loss of a whole ensemble (``js.EnsembleLoss``, ``js.MomentLoss``: an
ensemble's sample mean and variance against data, or any statistic of its trajectories).

Such a loss couples the trajectories, but each trajectory's parameters and initial state
act on ``J`` only through its own saved states, so the gradient is still one adjoint per
trajectory, seeded with ``dJ/du_i`` (the loss's ``grad``, which needs every trajectory's
states).  Two passes:

1. the ensemble's forward solve at the loss's times (``js.solve(eprob, alg, saveat=
   t_data, trajectories=N, ...)``, the states every ensemble gradient reproduces: each SDE
   trajectory on its own path of ``seed``), giving ``J`` and the seeds ``s_i``;
2. the ensemble gradient of a per-trajectory ``L2Loss`` whose seeds ``w (u_i - d_i)`` are
   ``s_i``: every method and ``sensealg`` of the ensemble gradients, in one compiled
   kernel where they have one.  The data sit one state-sized offset away, ``d = u -
   sign(s) max(1, |u|)``, and the weights are ``w = s / r`` with ``r = u - d`` formed
   exactly as every ensemble gradient forms it (``w * (u - d)``, IEEE operations in that
   order), so each seed is ``s`` to two roundings whatever the scale of ``u`` against
   ``s`` (``d = u - s`` would cost ``ulp(u) / |s|``, all of it near an optimum), and the
   weights are >= 0 as an ``L2Loss`` requires.

References
----------
Glasserman, *Monte Carlo Methods in Financial Engineering* (2003), sec. 7.2 (pathwise
derivatives with common random numbers); Griewank, Walther, *Evaluating Derivatives*
(2008), ch. 3 (the reverse mode is linear in its seeds).
"""
import numpy as np

from .errors import InvalidProblemError, SolveFailedError

__all__ = ["ensemble_loss_gradient"]


def ensemble_loss_gradient(eprob, alg, loss, wrt, sensealg, solve_kw):
    """``(J, grads)`` of an ``EnsembleLoss`` on the ensemble ``eprob``: ``grads`` as for any
    ensemble gradient, one row per trajectory (``"p"`` ``(N, np)``, ``"u0"`` ``(N,
    *u0.shape)``; for a ``p`` shared by the trajectories, the sum of the rows)."""
    from .losses import L2Loss
    from .sensitivity import _ensemble_gradient, ensemble_trajectories
    from .solve import solve
    kw = dict(solve_kw)
    N = ensemble_trajectories(eprob, wrt, kw)
    if loss.t_data is None:
        raise InvalidProblemError("t_data: an ensemble loss of a time-dependent ensemble needs "
                                  "its observation times (t_data, or saveat= to js.gradient)")
    sol = solve(eprob, alg, trajectories=N, saveat=loss.t_data, **kw)
    bad = np.flatnonzero(~np.asarray(sol.successful_mask))
    if bad.size:
        i = int(bad[0])
        raise SolveFailedError(f"gradient: trajectory {i} of the ensemble ended with "
                               f"{sol.retcodes[i]}; a loss of all the trajectories needs "
                               f"every one of them")
    us = np.asarray(sol.u, dtype=np.float64)
    if hasattr(loss, "shape") and us.shape[1:] != loss.shape:
        raise InvalidProblemError(
            f"mean: the loss's moments have shape {loss.shape}, but each trajectory saves "
            f"states of shape {us.shape[1:]} at the loss's times")
    value = loss.value(us)
    seeds = loss.grad(us)
    if not np.isfinite(seeds).all():
        raise InvalidProblemError("grad: the loss's gradient is not finite at the ensemble's "
                                  "states")
    data = us - np.where(seeds < 0, -1.0, 1.0) * np.maximum(1.0, np.abs(us))
    r = us - data                        # nonzero: |r| ~ max(1, |u|), the sign of s
    surrogate = L2Loss(loss.t_data, data, weights=seeds / r)
    _, grads = _ensemble_gradient(eprob, alg, surrogate, wrt, sensealg, dict(kw, trajectories=N))
    return value, grads
