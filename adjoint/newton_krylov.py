"""Discrete adjoint of the Newton-Krylov (E)SDIRK path (large grid problems).

The forward pass (:func:`jitsolve.solvers.ode.esdirk.solve_sdirk_krylov` with
``record=True``) keeps every accepted step's stage states ``Z_i``.  A step of the method
(implicit tableau ``A``, explicit tableau ``E`` for KenCarp4's IMEX pair, weights ``b``)

    Z_i = u_n + h sum_{j<i} (E_ij fE(Z_j) + A_ij fI(Z_j)) + h A_ii fI(Z_i),
    u_{n+1} = u_n + h sum_i b_i (fE(Z_i) + fI(Z_i)),

is differentiated with the stage equations taken as solved exactly (implicit function
theorem), its accepted step sizes held fixed.  With ``lam`` the adjoint of ``u_{n+1}``,
from the last stage down::

    wE_i = h b_i lam + h sum_{k>i} E_ki nu_k,    wI_i = h b_i lam + h sum_{k>i} A_ki nu_k,
    (I - h A_ii J_I(Z_i))^T nu_i = J_E(Z_i)^T wE_i + J_I(Z_i)^T wI_i,
    lam_n = lam + sum_i nu_i,

and the parameters collect ``J_{E,theta}^T wE_i + J_{I,theta}^T (wI_i + h A_ii nu_i)``.
The transposed stage systems go to GMRES, matrix-free, preconditioned by the forward
pass's multigrid cycle of ``I - h A_ii L`` where the grid operator ``L`` is symmetric.
The result is the gradient of the exactly-solved method: it differs from the derivative
of the computed solution by about the Newton tolerance (``rtol / 100`` in the step's
norm), as the stages differ from the exact ones.

References
----------
Hairer, Wanner, *Solving ODEs II* (1996), IV.6; Zhang, Sandu, *FATODE: a library for
forward, adjoint, and tangent linear integration of ODEs*, SIAM J. Sci. Comput. 36 (2014)
(discrete adjoints of SDIRK methods); Kennedy, Carpenter, Appl. Numer. Math. 44 (2003);
Saad, Schultz, *GMRES*, SIAM J. Sci. Stat. Comput. 7 (1986).
"""
import numpy as np

from ..solvers.linear import gmres
from ..solvers.linear.common import SUCCESS, lincomb
from ..solvers.ode.esdirk import last_preconditioner

__all__ = ["sdirk_krylov_adjoint", "sdirk_krylov_adjoint_checkpointed", "adjoint_rtol",
           "LIN_RTOL", "LIN_MAXITER"]

#: relative tolerance of the transposed stage solves by default; callers match it to
#: the forward pass's Newton tolerance (:func:`adjoint_rtol`)
LIN_RTOL = 1e-10


def adjoint_rtol(rtol):
    """The transposed stage solves' relative tolerance for a forward solve at ``rtol``
    (a number or per component): ``rtol / 100`` (the forward pass's Newton tolerance,
    the stages' own accuracy), within ``[1e-12, 1e-6]``, as SciMLSensitivity's adjoints
    default to the forward solve's tolerances."""
    return float(min(1e-6, max(1e-12, 1e-2 * float(np.min(rtol)))))

#: GMRES iterations allowed for one transposed stage solve
LIN_MAXITER = 1000


class _StepAdjoint:
    """One step's reverse (the module docstring's recursion) with its work arrays and the
    last stage preconditioner; ``info``: GMRES iterations and the first failure."""

    def __init__(self, tab, n, jtv_I, jtv_E, grad_I, grad_E, precond, lin_rtol,
                 lin_maxiter):
        _, _, self.AI, _, self.C, _, self.B, _, _, self.AE, _, _, _ = tab
        s = self.B.size
        self.nu = np.zeros((s, n))
        self.a = np.empty(n)
        self.tmp = np.empty(n)
        self.jtv_I, self.jtv_E, self.grad_I, self.grad_E = jtv_I, jtv_E, grad_I, grad_E
        self.pc_for = last_preconditioner(precond)
        self.lin_rtol, self.lin_maxiter = lin_rtol, lin_maxiter
        self.info = dict(iters=0, failed=None)

    def __call__(self, k, t, h, Z, lam):
        """``lam_n`` from ``lam_{n+1}`` over step ``k`` (start ``t``, size ``h``, stage
        states ``Z``); None when a transposed stage solve failed (``info["failed"]``)."""
        AI, AE, B, C, nu, a, tmp = self.AI, self.AE, self.B, self.C, self.nu, self.a, self.tmp
        jtv_I = self.jtv_I
        for i in range(B.size - 1, -1, -1):
            ti = t + C[i] * h
            z = Z[i]
            wI = h * B[i] * lam + h * lincomb(AI[i + 1:, i], nu[i + 1:])
            jtv_I(z, ti, wI, a)
            if self.jtv_E is not None:
                wE = h * B[i] * lam + h * lincomb(AE[i + 1:, i], nu[i + 1:])
                self.jtv_E(z, ti, wE, tmp)
                a += tmp
                if self.grad_E is not None:
                    self.grad_E(z, ti, wE)
            if AI[i, i] == 0.0:
                nu[i] = a
            else:
                hg = h * AI[i, i]

                def matvec(x, out, z=z, ti=ti, hg=hg):
                    jtv_I(z, ti, x, out)
                    out *= -hg
                    out += x
                    return out

                res = gmres(matvec, a, rtol=self.lin_rtol, maxiter=self.lin_maxiter,
                            precond=self.pc_for(hg))
                self.info["iters"] += int(res.iters)
                if res.status != SUCCESS:
                    self.info["failed"] = (f"the transposed stage system of step {k} "
                                           f"(t = {t:.6g}, stage {i}) ended GMRES with "
                                           f"{res.status} after {res.iters} iterations")
                    return None
                nu[i] = res.x
                wI = wI + hg * nu[i]
            if self.grad_I is not None:
                self.grad_I(z, ti, wI)
        return lam + nu.sum(axis=0)


def sdirk_krylov_adjoint(tab, steps_t, steps_h, stages, gsave, save_after, g_initial,
                         jtv_I, jtv_E=None, grad_I=None, grad_E=None, precond=None,
                         lin_rtol=LIN_RTOL, lin_maxiter=LIN_MAXITER):
    """Reverse sweep over the recorded steps of a Newton-Krylov (E)SDIRK solve.

    Parameters
    ----------
    tab : tuple
        :func:`jitsolve.solvers.ode.rosenbrock.stiff_tableau` of the forward method.
    steps_t, steps_h : (N,) arrays
        The accepted steps' starts and sizes.
    stages : (N, s, n) array
        Their stage states ``Z_i``.
    gsave : (m, n) array
        ``dL/du`` at the loss's times; ``save_after[k] = j`` when ``t_data[j]`` ends step
        ``k`` (else -1); ``g_initial``: the row at ``t0`` or None.
    jtv_I, jtv_E : callables ``(z, t, v, out)``
        ``out = J(z, t)^T v`` of the implicit part and (IMEX) of the explicit part.
    grad_I, grad_E : callables ``(z, t, w)``, optional
        Accumulate the parameters' products ``(d fI / d theta)^T w`` (``fE``) in place.
    precond : callable ``hg -> M``, optional
        A preconditioner ``M(r, out)`` for ``(I - hg J_I)^T``.

    Returns
    -------
    lam : (n,) array
        ``dL/du0``.
    info : dict
        ``iters`` (GMRES iterations in all), ``failed`` (None, or what did not converge).
    """
    N, _, n = stages.shape
    step = _StepAdjoint(tab, n, jtv_I, jtv_E, grad_I, grad_E, precond, lin_rtol, lin_maxiter)
    lam = np.zeros(n)
    for k in range(N - 1, -1, -1):
        if save_after[k] >= 0:
            lam += gsave[save_after[k]]
        new = step(k, float(steps_t[k]), float(steps_h[k]), stages[k], lam)
        if new is None:
            return lam, step.info
        lam = new
    if g_initial is not None:
        lam += g_initial
    return lam, step.info


def sdirk_krylov_adjoint_checkpointed(tab, steps_t, steps_h, u0, restep, checkpoints,
                                      gsave, save_after, g_initial, jtv_I, jtv_E=None,
                                      grad_I=None, grad_E=None, precond=None,
                                      lin_rtol=LIN_RTOL, lin_maxiter=LIN_MAXITER, store=None):
    """:func:`sdirk_krylov_adjoint` holding at most ``checkpoints`` states instead of
    every step's stages: the binomial schedule (:func:`.checkpoint.binomial_reverse`)
    recomputes states from snapshots, and each reversed step's stages are re-solved from
    its start by ``restep(k, u) -> (u_next, Z)`` (the forward method's step ``k`` with
    its recorded size; None when it fails).  The re-solved stages agree with the forward
    pass's to its Newton tolerance, so the gradient differs from the store-all one by
    about that much.  ``store``: a ``js.HDF5Store`` holding the snapshots on disk instead
    of in memory (closed, and removed unless kept, when the sweep ends or fails).
    Returns ``(lam, info)``; ``info`` also holds ``recomputed`` (steps recomputed by the
    schedule; the re-solve of each reversed step not counted)."""
    from .checkpoint import binomial_reverse
    from .discrete import MemoryStore
    N = steps_t.size
    n = u0.size
    step = _StepAdjoint(tab, n, jtv_I, jtv_E, grad_I, grad_E, precond, lin_rtol, lin_maxiter)
    snaps = store if store is not None else MemoryStore()
    cur, lam = [np.array(u0, dtype=np.float64)], [np.zeros(n)]

    class _Failed(Exception):
        pass

    def advance(i0, i1):
        for k in range(i0, i1):
            out = restep(k, cur[0])
            if out is None:
                step.info["failed"] = f"the forward step {k} failed when recomputed"
                raise _Failed
            cur[0] = out[0]

    def reverse_step(k):
        out = restep(k, cur[0])
        if out is None:
            step.info["failed"] = f"the forward step {k} failed when recomputed"
            raise _Failed
        if save_after[k] >= 0:
            lam[0] = lam[0] + gsave[save_after[k]]
        new = step(k, float(steps_t[k]), float(steps_h[k]), out[1], lam[0])
        if new is None:
            raise _Failed
        lam[0] = new

    def take(i):
        snaps.put(i, cur[0])

    def restore(i):
        snaps.drop_above(i)
        cur[0] = snaps.get(i).copy()

    try:
        step.info["recomputed"] = binomial_reverse(N, checkpoints, advance, reverse_step,
                                                   take, restore)
    except _Failed:
        return lam[0], step.info
    finally:
        snaps.close()
    if g_initial is not None:
        lam[0] = lam[0] + g_initial
    return lam[0], step.info
