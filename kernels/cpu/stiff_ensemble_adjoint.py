"""Per-trajectory gradients of a stiff ensemble in one compiled kernel, CPU.

One trajectory per thread (``prange``): the forward stiff solve saving every step
(:func:`jitsolve.kernels.cpu.stiff.stiff_solve`), the L2 loss on the steps that land on
the loss times, and the discrete adjoint sweep of the trajectory's family -- the
Rosenbrock reverse (:mod:`.rosenbrock_adjoint`) or the (E)SDIRK reverse by the implicit
function theorem at each stage (:mod:`.esdirk_adjoint`) -- exactly the computation of
``js.gradient`` on that trajectory alone with ``DiscreteAdjoint(checkpoints="all")``, so
each row of the result equals the single gradient bit for bit.  The accepted steps of
each trajectory's own adaptive forward pass are held fixed in its reverse pass.

References
----------
Sandu, Daescu, Carmichael, Atmos. Environ. 37 (2003) (discrete Rosenbrock adjoints);
Zhang, Sandu, *FATODE*, SIAM J. Sci. Comput. 36 (2014); Griewank, Walther, *Evaluating
Derivatives* (2008), ch. 12.
"""
import numpy as np
from numba import njit, prange
from numba.extending import overload

from .erk_adjoint import l2_at_steps, thread_vj
from .esdirk_adjoint import sd_advance, sd_reverse, sd_work
from .rosenbrock import FAMILY_SDIRK, stiff_family
from .rosenbrock_adjoint import ros_advance, ros_reverse, ros_work
from .stiff import stiff_solve_inner

__all__ = ["stiff_ensemble_gradient", "RC_STAGE_FAILED"]

#: return code of a trajectory whose re-solved (E)SDIRK stage did not converge in the
#: reverse pass (the forward pass succeeded)
RC_STAGE_FAILED = -1


def reverse_trajectory(rhs, jd, vj, tab, u0, states, steps_t, steps_h, nsteps, gsave,
                       save_after, lam, pbar, recompute):
    """The family's reverse sweep over ``nsteps`` recorded steps (``states``: every state
    of the forward pass); returns False if a re-solved stage did not converge."""
    raise NotImplementedError("compiled code only")


@overload(reverse_trajectory, jit_options={"cache": False})
def _reverse_trajectory_family(rhs, jd, vj, tab, u0, states, steps_t, steps_h, nsteps, gsave,
                               save_after, lam, pbar, recompute):
    if stiff_family(tab) == FAMILY_SDIRK:
        # the states are recomputed with every stage solved to rounding (as
        # jitsolve.adjoint.stiff.esdirk_adjoint does in every checkpointing mode)
        def impl(rhs, jd, vj, tab, u0, states, steps_t, steps_h, nsteps, gsave, save_after,
                 lam, pbar, recompute):
            n = u0.size
            wk = sd_work(n, tab[6].size, pbar.size, 0)
            st = np.empty((nsteps + 1, n))
            cur = u0.copy()
            ok = sd_advance(rhs, jd, tab, cur, steps_t, steps_h, np.int64(0), nsteps, st,
                            np.bool_(True), wk)
            for x in range(n):
                st[nsteps, x] = cur[x]
            sd_reverse(rhs, jd, vj, tab, st, steps_t, steps_h, np.int64(0), nsteps, gsave,
                       save_after, lam, pbar, wk)
            return ok
        return impl

    def impl(rhs, jd, vj, tab, u0, states, steps_t, steps_h, nsteps, gsave, save_after, lam,
             pbar, recompute):
        n = u0.size
        wk = ros_work(n, tab[6].size, pbar.size, 0)
        if recompute:
            # non-autonomous with adaptive steps: the states again with the accepted
            # steps' df/dt increment (jitsolve.adjoint.stiff.rosenbrock_adjoint)
            st = np.empty((nsteps + 1, n))
            cur = u0.copy()
            ros_advance(rhs, jd, tab, cur, steps_t, steps_h, np.int64(0), nsteps, st,
                        np.bool_(True), wk)
            for x in range(n):
                st[nsteps, x] = cur[x]
            ros_reverse(rhs, jd, vj, tab, st, steps_t, steps_h, np.int64(0), nsteps, gsave,
                        save_after, lam, pbar, wk)
        else:
            ros_reverse(rhs, jd, vj, tab, states, steps_t, steps_h, np.int64(0), nsteps, gsave,
                        save_after, lam, pbar, wk)
        return True
    return impl


@njit(parallel=True, cache=True)
def stiff_ensemble_gradient(rhs, jd, u0s, ps, pcs, t0, tab, ctrl, stops, vjt, t_data, data,
                            weights, recompute, values, g_u0, g_p, retcodes):
    """Per-trajectory value and gradients of ``0.5 sum_j w (u(t_j) - d_j)^2`` for a stiff
    ensemble, one trajectory per thread: forward solve storing every step (``stops``
    hold the loss times), then the family's reverse sweep, both inside the same
    ``prange`` iteration.

    ``rhs``/``jd``: the shared parts of the loop's tuples; their ``p``/``pc`` become
    ``ps[k]``/``pcs[k]`` per trajectory.  ``vjt`` a VJP-source tuple (its work arrays
    copied per thread); ``data``/``weights`` (N or 1, m, n); ``recompute``: redo the
    Rosenbrock states with the accepted steps' ``df/dt`` increment.  Outputs ``values``
    (N,), ``g_u0`` (N, n), ``g_p`` (N, np_grad), ``retcodes`` (N,: the forward loop's
    code, or :data:`RC_STAGE_FAILED`); a failed trajectory's outputs are NaN.
    """
    f, p, lin, plin, haslin, tmp = rhs
    jac, hasjac, fc, pc, cptr, ccols, colptr, rowidx, hascolor, fjac_on, autonomous = jd
    N = u0s.shape[0]
    n = u0s.shape[1]
    m = t_data.size
    npg = g_p.shape[1]
    empty = np.zeros(0)
    for k in prange(N):
        rhsk = (f, ps[k], lin, plin, haslin, np.empty(n))
        jdk = (jac, hasjac, fc, pcs[k], cptr, ccols, colptr, rowidx, hascolor, fjac_on,
               autonomous)
        # run-time flags and capacity, not literals (as stiff_ensemble's call)
        res = stiff_solve_inner(rhsk, jdk, u0s[k], t0, tab, ctrl, stops,
                                (np.bool_(True), empty, np.bool_(False)), None, np.int64(64))
        us = res[1]
        nsteps = res[5]
        rc = res[12]
        ok = rc == 0
        if ok:
            dk = data[k] if data.shape[0] > 1 else data[0]
            wk = weights[k] if weights.shape[0] > 1 else weights[0]
            gsave = np.zeros((m, n))
            save_after = -np.ones(max(nsteps, 1), np.int64)
            lam0 = np.zeros(n)
            values[k] = l2_at_steps(res[0], us, res[2], t_data, dk, wk, gsave, save_after, lam0)
            vj = thread_vj(vjt)
            lam = np.zeros(n)
            pbar = np.zeros(npg)
            ok = reverse_trajectory(rhsk, jdk, vj, tab, u0s[k], us, res[3], res[4], nsteps,
                                    gsave, save_after, lam, pbar, recompute)
            if not ok:
                rc = RC_STAGE_FAILED
            for x in range(n):
                g_u0[k, x] = lam[x] + lam0[x]
            for j in range(npg):
                g_p[k, j] = pbar[j]
        retcodes[k] = rc
        if not ok:
            values[k] = np.nan
            for x in range(n):
                g_u0[k, x] = np.nan
            for j in range(npg):
                g_p[k, j] = np.nan
