"""Gradients of a loss of a whole ensemble (``js.EnsembleLoss``, ``js.MomentLoss``: an
ensemble's sample mean and variance against data, or any statistic of its trajectories).

Such a loss couples the trajectories, but each trajectory's parameters and initial state
act on ``J`` only through its own saved states, so the gradient is still one adjoint per
trajectory, seeded with ``dJ/du_i`` (the loss's ``grad``, which needs every trajectory's
states).  Two passes:

1. the ensemble's forward solve at the loss's times (``js.solve(eprob, alg, saveat=
   t_data, trajectories=N, ...)``, the states every ensemble gradient reproduces: each SDE
   trajectory on its own path of ``seed``), giving ``J`` and the seeds ``s_i``;
2. the ensemble gradient of the per-trajectory ``L2Loss`` with data ``d_i = u_i - s_i``,
   whose seed ``u_i - d_i`` is ``s_i``: every method and ``sensealg`` of the ensemble
   gradients, in one compiled kernel where they have one.  The seeds carry the rounding of
   ``u_i - s_i`` (at most one unit in the last place of ``u_i``).

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
                               f"{sol.retcodes[i]}; its moments are not defined")
    us = np.asarray(sol.u, dtype=np.float64)
    if hasattr(loss, "shape") and us.shape[1:] != loss.shape:
        raise InvalidProblemError(
            f"mean: the loss's moments have shape {loss.shape}, but each trajectory saves "
            f"states of shape {us.shape[1:]} at the loss's times")
    value = loss.value(us)
    seeds = loss.grad(us)
    surrogate = L2Loss(loss.t_data, us - seeds)
    _, grads = _ensemble_gradient(eprob, alg, surrogate, wrt, sensealg, dict(kw, trajectories=N))
    return value, grads
