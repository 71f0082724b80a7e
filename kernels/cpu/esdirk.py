"""(E)SDIRK steps with simplified Newton iterations (KenCarp4, Kvaerno5, ImplicitEuler)
for the compiled stiff loop :func:`jitsolve.kernels.cpu.stiff.stiff_solve` (``kind`` 2;
``kind`` 3 is ImplicitEuler, the one-stage SDIRK with its own error estimate).

Additive form (KenCarp4 as IMEX): ``u' = fE(u, t) + fI(u, t)``; with ``imex`` the
explicit part is the user's ``f`` and the implicit part the linear part ``lin`` of a
``SplitODEProblem``; without, ``fE = 0`` and ``fI = f + lin`` (fully implicit)::

    U_i = u0 + h sum_{j<i} (AE[i, j] fE_j + AI[i, j] fI_j) + h GAMMA fI(U_i)

Each implicit stage is solved by simplified Newton with ``W = I - h GAMMA J`` (``J`` the
Jacobian of ``fI``; its LU is kept while ``h`` and ``J`` are unchanged, and ``J`` is
kept across steps while Newton converges fast).  Convergence control after Hairer &
Wanner IV.8: ``theta_k = |dU_k| / |dU_{k-1}|``; stop when
``eta |dU_k| <= KAPPA`` with ``eta = theta / (1 - theta)`` (weighted RMS norm, where 1
is the local error tolerance); ``theta >= 1``, a non-finite iterate or ``MAXNEWTON``
iterations is a Newton failure: the loop rejects the step, refreshes an old Jacobian
and halves the step.  ``fI_i = (U_i - base_i) / (h GAMMA)`` (no extra evaluation).

References
----------
Hairer, Wanner, *Solving ODEs II* (1996), IV.6 and IV.8; Kennedy, Carpenter, Appl.
Numer. Math. 44 (2003) (ARK4(3)6L[2]SA); Kværnø, BIT 44 (2004).
"""
import numpy as np
from numba import njit

from .stepcontrol import rms_norm
from .stiffjac import build_w, lu_factor, lu_solve

__all__ = ["sdirk_step", "KIND_ESDIRK", "KIND_IMPLICIT_EULER", "MAXNEWTON", "KAPPA"]

KIND_ESDIRK, KIND_IMPLICIT_EULER = 2, 3
MAXNEWTON = 10
KAPPA = 0.01

# step status
NEWTON_OK, NEWTON_FAIL, SINGULAR = 0, 1, 2


@njit(inline="always", cache=False)
def _eval_parts(f, p, lin, plin, haslin, tmp, imex, fe, fi, z, t):
    """``fe = fE(z, t)``, ``fi = fI(z, t)``; returns the number of f evaluations."""
    if imex:
        f(fe, z, p, t)
        lin(fi, z, plin, t)
        return 1
    f(fi, z, p, t)
    if haslin:
        lin(tmp, z, plin, t)
        for i in range(fi.size):
            fi[i] += tmp[i]
    for i in range(fe.size):
        fe[i] = 0.0
    return 1


@njit(inline="always", cache=False)
def _eval_fi(f, p, lin, plin, haslin, tmp, imex, fi, z, t):
    if imex:
        lin(fi, z, plin, t)
        return 0
    f(fi, z, p, t)
    if haslin:
        lin(tmp, z, plin, t)
        for i in range(fi.size):
            fi[i] += tmp[i]
    return 1


@njit(cache=True)
def sdirk_step(f, p, lin, plin, haslin, tmp, tab, u, t, h, fe0, fi0, J, W, piv, whg, FE, FI, kd,
               unew, err, z, base, r, atol, rtol, eta):
    """One (E)SDIRK step.  ``whg[0]``: the ``h GAMMA`` of the current LU of ``W`` (NaN:
    none).  ``eta[0]`` carries Newton's contraction estimate between stages.  Returns
    ``(status, nf, nsolve, theta_max)`` with status 0 ok, 1 Newton failure, 2 singular W.
    On success ``kd[i] = fE_i + fI_i`` (dense output), ``err`` the error estimate."""
    kind = tab[0]
    GAMMA = tab[1]
    AI = tab[2]
    C = tab[4]
    B = tab[6]
    BERR = tab[7]
    AE = tab[9]
    imex = tab[12]
    n = u.size
    s = B.size
    nf = 0
    nsolve = 0
    thmax = 0.0
    hg = h * GAMMA
    if whg[0] != hg:
        build_w(W, J, 1.0, hg)
        if not lu_factor(W, piv):
            whg[0] = np.nan
            return SINGULAR, nf, nsolve, thmax
        whg[0] = hg
    for st in range(s):
        if AI[st, st] == 0.0:      # explicit first stage
            for i in range(n):
                FE[st, i] = fe0[i]
                FI[st, i] = fi0[i]
            continue
        ts = t + C[st] * h
        for i in range(n):
            acc = 0.0
            for j in range(st):
                acc += AE[st, j] * FE[j, i] + AI[st, j] * FI[j, i]
            base[i] = u[i] + h * acc
            z[i] = base[i] + hg * (FI[st - 1, i] if st > 0 else fi0[i])
        dn_prev = 1.0
        etak = 1.0
        converged = False
        for k in range(MAXNEWTON):
            nf += _eval_fi(f, p, lin, plin, haslin, tmp, imex, r, z, ts)
            for i in range(n):
                r[i] = base[i] + hg * r[i] - z[i]
            lu_solve(W, piv, r)
            nsolve += 1
            for i in range(n):
                z[i] += r[i]
            dn = rms_norm(r, u, atol, rtol)
            if not (dn < np.inf):
                return NEWTON_FAIL, nf, nsolve, np.inf
            if dn == 0.0:
                converged = True
                break
            if k == 0:
                etak = max(eta[0], 2.220446049250313e-16) ** 0.8
            else:
                theta = dn / dn_prev
                thmax = max(thmax, theta)
                if theta >= 1.0:
                    return NEWTON_FAIL, nf, nsolve, theta
                etak = theta / (1.0 - theta)
            if etak * dn <= KAPPA:
                converged = True
                break
            dn_prev = dn
        eta[0] = etak
        if not converged:
            return NEWTON_FAIL, nf, nsolve, max(thmax, 1.0)
        for i in range(n):
            FI[st, i] = (z[i] - base[i]) / hg
        if imex:
            f(FE[st], z, p, ts)
            nf += 1
        else:
            for i in range(n):
                FE[st, i] = 0.0
    for i in range(n):
        acc = 0.0
        e = 0.0
        for j in range(s):
            kj = FE[j, i] + FI[j, i]
            acc += B[j] * kj
            e += BERR[j] * kj
            kd[j, i] = kj
        unew[i] = u[i] + h * acc
        err[i] = h * e
    if kind == KIND_IMPLICIT_EULER:
        # err = W^{-1} (h/2) (f(u1) - f(u0)): the implicit Euler - trapezoid difference,
        # filtered by W so that stiff components do not dominate (Hairer-Wanner IV.8)
        for i in range(n):
            err[i] = 0.5 * h * (kd[0, i] - fe0[i] - fi0[i])
        lu_solve(W, piv, err)
        nsolve += 1
    return NEWTON_OK, nf, nsolve, thmax
