"""Forward (tangent-linear) sensitivities of explicit Runge-Kutta steps (CPU, Numba).

The derivative of the discrete solution along given directions of ``(u0, p)``,
propagated through the recorded steps together with the state: for each direction
``d``, ``dY_i = dU + h sum_j a_ij dk_j``, ``dk_i = J(Y_i) dY_i + J_p(Y_i) dp``,
``dU' = dU + h sum_i b_i dk_i``.  ``J dY + J_p dp`` is one complex-step evaluation of
the user's ``f`` at ``(Y + i eps dY, p + i eps dp)`` (exact to rounding); a linear
part contributes ``L dY``.  Cost: one extra complex evaluation per stage and direction,
so forward sensitivities suit few parameters (Hairer, Nørsett, Wanner I, I.14; the
discrete forward mode of Griewank, Walther, *Evaluating Derivatives*, ch. 3).

With the user's own derivatives (``uj``: ``ODEFunction(jac=...)``, and ``paramjac``
when parameters are differentiated) ``J(Y_i)`` and ``J_p(Y_i)`` are evaluated once per
stage and every direction takes the products ``J dY + J_p dp`` from them: no complex
evaluation, and ``f`` need not compile for complex numbers.

Saves strictly inside a step (``dsave``, as in :mod:`.erk_adjoint`) are the tangents of
the step's interpolant, ``dU + h sum_j b_j(theta) dk_j``, over the stages it uses (FSAL
and extra stages included; Hairer, Nørsett, Wanner I, II.6).
"""
import numpy as np
from numba import njit

from .erk import combine, dense_weights
from .erk_adjoint import stage_coefficients
from .rhs import eval_rhs

__all__ = ["erk_tangent"]


@njit(cache=True)
def erk_tangent(rhs, fc, has_f, tab, u0, steps_t, steps_h, save_after, dsave, du0, dp, out, eps,
                uj):
    """Propagate the directions ``du0[d], dp[d]`` (ndir rows) along the recorded steps;
    ``out[j, d]`` receives the tangent of the state after step ``i`` when
    ``save_after[i] = j``, and that of the interpolant at the saves ``dsave`` inside
    steps (``(dptr, dtheta, drow)``, see :mod:`.erk_adjoint`).  ``uj`` None: ``J dY +
    J_p dp`` by the complex step of ``fc``; else ``(jac, pjac, haspj, Jbuf, Jpbuf)``, the
    user's Jacobian cfuncs (``pjac`` called only when ``haspj``) and ``n x n``, ``n x
    np`` buffers.  Returns the final state."""
    f, p, lin, plin, haslin, tmp = rhs
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    dptr, dtheta, drow = dsave
    n = u0.size
    s = B.size
    su = s - 1 if fsal else s
    sd = BTH.shape[0]
    ns = max(s + CX.size, sd)
    nd = du0.shape[0]
    u = u0.copy()
    ks = np.zeros((ns, n))
    Ys = np.zeros((ns, n))
    w = np.zeros(sd)
    dU = du0.copy()
    dks = np.zeros((nd, ns, n))
    dY = np.zeros(n)
    cu = np.zeros(n, np.complex128)
    cd = np.zeros(n, np.complex128)
    pc = np.zeros(p.size, np.complex128)
    work = np.zeros(n)
    for it in range(steps_t.size):
        t = steps_t[it]
        h = steps_h[it]
        saves = dptr.size > it + 1 and dptr[it + 1] > dptr[it]
        for i in range(max(su, sd) if saves else su):
            a, c = stage_coefficients(tab, i)
            combine(Ys[i], u, ks, a, i, h)
            ti = t + c * h
            eval_rhs(f, p, lin, plin, haslin, tmp, ks[i], Ys[i], ti)
            if uj is not None and has_f:
                ujac, upjac, haspj, Jb, Jpb = uj
                for x in range(Jb.shape[0]):        # cleared: the user's jac may
                    for k in range(Jb.shape[1]):    # write only the nonzeros
                        Jb[x, k] = 0.0
                ujac(Jb, Ys[i], p, ti)
                if haspj:
                    for x in range(Jpb.shape[0]):
                        for k in range(Jpb.shape[1]):
                            Jpb[x, k] = 0.0
                    upjac(Jpb, Ys[i], p, ti)
            for d in range(nd):
                combine(dY, dU[d], dks[d], a, i, h)
                if uj is not None and has_f:
                    ujac, upjac, haspj, Jb, Jpb = uj
                    for x in range(n):
                        acc = 0.0
                        for k in range(n):
                            acc += Jb[x, k] * dY[k]
                        if haspj:
                            for j in range(p.size):
                                acc += Jpb[x, j] * dp[d, j]
                        dks[d, i, x] = acc
                elif has_f:
                    for x in range(n):
                        cu[x] = complex(Ys[i, x], eps * dY[x])
                    for j in range(p.size):
                        pc[j] = complex(p[j], eps * dp[d, j])
                    fc(cd, cu, pc, ti)
                    for x in range(n):
                        dks[d, i, x] = cd[x].imag / eps
                else:
                    for x in range(n):
                        dks[d, i, x] = 0.0
                if haslin:
                    lin(work, dY, plin, ti)
                    for x in range(n):
                        dks[d, i, x] += work[x]
        if saves:
            for k in range(dptr[it], dptr[it + 1]):
                dense_weights(w, BTH, dtheta[k])
                for d in range(nd):
                    combine(dY, dU[d], dks[d], w, sd, h)
                    out[drow[k], d] = dY
        combine(Ys[0], u, ks, B, su, h)
        u[:] = Ys[0]
        for d in range(nd):
            combine(dY, dU[d], dks[d], B, su, h)
            dU[d] = dY
        j = save_after[it]
        if j >= 0:
            for d in range(nd):
                out[j, d] = dU[d]
    return u
