"""Right-hand sides and exact Jacobians of the adjoint and forward-sensitivity systems
of an ODE, for the stiff methods' continuous sensitivities (CPU, Numba).

Called from the per-user-function cfuncs of :mod:`jitsolve.adjoint.continuous_stiff`
(which documents the systems and the layout of ``P``, the flat parameter vector carrying
the sizes, the user's ``p``, the forward solve's dense output, the linear part and the
tangent directions).  The four entries (:func:`adjoint_rhs`, :func:`adjoint_jac`,
:func:`sensitivity_rhs`, :func:`sensitivity_jac`) take the user's functions as
first-class values of the fixed signatures, so they compile and disk-cache once for every
user function; their helpers are ``cache=False`` (compiled with each entry: the rule of
tests/test_kernel_cache.py).

- ``J = df/du + L`` and ``J_p = df/dp``: the user's ``jac``/``paramjac`` when given,
  else, with the user's ``vjp``, row ``i`` of both from ``vjp(e_i)`` (n calls), else
  exact complex step of ``f``'s complex twin, one evaluation per column.  The adjoint
  right-hand side's products ``(J + L)^T lam``, ``J_p^T lam`` are one call of the
  user's ``vjp`` when given.
- Second derivatives (the ``u``-columns of the backsolve and tangent rows): central
  differences of the exact Jacobians, step ``eps^(1/3) max(|u_j|, 1)``.

References
----------
Cao, Li, Petzold, Serban, SIAM J. Sci. Comput. 24 (2003) (adjoint and forward
sensitivity systems); Squire, Trapp, SIAM Rev. 40 (1998) (complex step); Hairer, Wanner,
*Solving ODEs II* (1996), IV.7 (Rosenbrock methods need the exact Jacobian).
"""
import numpy as np
from numba import njit

from .stiffjac import CS_STEP, jacobian, linear_matrix

__all__ = ["HEADER", "adjoint_rhs", "adjoint_jac", "sensitivity_rhs", "sensitivity_jac",
           "linear_dense"]

#: entries of ``P``'s header: n, np, npg, mode, nsteps, sd, deg, haslin, hasf, ndir,
#: ncolours (0: no column colouring), nnz of the sparsity pattern
HEADER = 12
_HDR = HEADER


@njit(cache=False)
def _offsets(P):
    n, npar, N, sd, deg = int(P[0]), int(P[1]), int(P[4]), int(P[5]), int(P[6])
    o_p = _HDR
    o_st = o_p + npar
    o_sh = o_st + N
    o_du = o_sh + N
    o_dk = o_du + N * n
    o_bth = o_dk + N * sd * n
    o_L = o_bth + sd * deg
    o_c = o_L + n * n
    return o_p, o_st, o_sh, o_du, o_dk, o_bth, o_L, o_c


@njit(cache=False)
def _dp_offset(P):
    n = int(P[0])
    o_p, o_st, o_sh, o_du, o_dk, o_bth, o_L, o_c = _offsets(P)
    return o_L + ((n * n + n) if P[7] != 0.0 else 0)


@njit(cache=False)
def _colouring(P):
    """The column colouring packed after the tangent directions: ``(cptr, ccols, colptr,
    rowidx)`` as in :func:`.stiffjac.jacobian`."""
    n, npg, ndir, ncol, nnz = int(P[0]), int(P[2]), int(P[9]), int(P[10]), int(P[11])
    o = _dp_offset(P) + ndir * npg
    cptr = np.empty(ncol + 1, np.int64)
    ccols = np.empty(n, np.int64)
    colptr = np.empty(n + 1, np.int64)
    rowidx = np.empty(nnz, np.int64)
    for k in range(ncol + 1):
        cptr[k] = int(P[o + k])
    o += ncol + 1
    for k in range(n):
        ccols[k] = int(P[o + k])
    o += n
    for k in range(n + 1):
        colptr[k] = int(P[o + k])
    o += n + 1
    for k in range(nnz):
        rowidx[k] = int(P[o + k])
    return cptr, ccols, colptr, rowidx


@njit(cache=False)
def _forward_state(u, t, P):
    """``u = u(t)`` from the forward solve's dense output packed in ``P``."""
    n, N, sd, deg = int(P[0]), int(P[4]), int(P[5]), int(P[6])
    o_p, o_st, o_sh, o_du, o_dk, o_bth, o_L, o_c = _offsets(P)
    fwd = P[o_sh] > 0.0
    lo, hi = 0, N - 1
    while lo < hi:                       # the last step starting at or before t
        mid = (lo + hi + 1) // 2
        tm = P[o_st + mid]
        if (tm <= t) if fwd else (tm >= t):
            lo = mid
        else:
            hi = mid - 1
    h = P[o_sh + lo]
    theta = (t - P[o_st + lo]) / h
    for i in range(n):
        u[i] = P[o_du + lo * n + i]
    for j in range(sd):
        w = 0.0
        th = theta
        for m in range(deg):
            w += P[o_bth + j * deg + m] * th
            th *= theta
        w *= h
        base = o_dk + (lo * sd + j) * n
        for i in range(n):
            u[i] += w * P[base + i]


@njit(cache=False)
def _user_p(P):
    """A copy of the user's ``p`` out of ``P`` (the user's functions may write it)."""
    npar = int(P[1])
    o_p = _HDR
    p = np.empty(npar)
    for k in range(npar):
        p[k] = P[o_p + k]
    return p


@njit(cache=False)
def _jacobians(fc, jf, pj, vj, hasjac, haspj, hasvjp, u, t, P, J, Jp):
    """``J = df/du + L`` (n x n) and ``Jp = df/dp`` (n x npg) at ``(u, t)``: from the
    user's ``jac`` / ``paramjac``, else rows of the user's ``vjp`` (``J^T e_i`` and
    ``J_p^T e_i``), else complex steps of ``fc``."""
    n, npar, npg = int(P[0]), int(P[1]), int(P[2])
    haslin, hasf = P[7] != 0.0, P[8] != 0.0
    o_p, o_st, o_sh, o_du, o_dk, o_bth, o_L, o_c = _offsets(P)
    p = _user_p(P)
    for i in range(n):
        for j in range(n):
            J[i, j] = 0.0
        for j in range(npg):
            Jp[i, j] = 0.0
    if hasf:
        rows_u = hasvjp and not hasjac
        rows_p = hasvjp and not haspj and npg > 0
        # complex work arrays only where a complex step is taken (empty otherwise)
        cs_u = not rows_u and not hasjac
        cs_p = npg > 0 and not rows_p and not haspj
        m = n if cs_u or cs_p else 0
        uc = np.empty(m, np.complex128)
        duc = np.empty(m, np.complex128)
        pc = np.empty(npar if cs_u or cs_p else 0, np.complex128)
        for k in range(pc.size):
            pc[k] = p[k]
        if rows_u or rows_p:
            e = np.zeros(n)
            ou = np.empty(n)
            op = np.empty(npar)
            for i in range(n):
                e[i] = 1.0
                for j in range(n):      # cleared: a vjp may accumulate into its outputs
                    ou[j] = 0.0
                for j in range(npar):
                    op[j] = 0.0
                vj(ou, op, e, u, p, t)
                e[i] = 0.0
                if rows_u:
                    for j in range(n):
                        J[i, j] = ou[j]
                if rows_p:
                    for j in range(npg):
                        Jp[i, j] = op[j]
        if not rows_u:
            cptr, ccols, colptr, rowidx = _colouring(P)
            jacobian(jf, hasjac, fc, pc, cptr, ccols, colptr, rowidx, P[10] != 0.0, p, u, t,
                     J, False, J, uc, duc)
        for i in range(m):
            uc[i] = u[i]
        if npg > 0 and not rows_p:
            if haspj:
                full = np.zeros((n, npar))
                pj(full, u, p, t)
                for i in range(n):
                    for j in range(npg):
                        Jp[i, j] = full[i, j]
            else:
                for j in range(npg):
                    pc[j] = complex(p[j], CS_STEP)
                    fc(duc, uc, pc, t)
                    pc[j] = p[j]
                    for i in range(n):
                        Jp[i, j] = duc[i].imag / CS_STEP
    if haslin:
        for i in range(n):
            for j in range(n):
                J[i, j] += P[o_L + i * n + j]


@njit(cache=False)
def _products(fc, jf, pj, vj, hasjac, haspj, hasvjp, u, lam, t, P, ou, op):
    """``ou = (J + L)^T lam``, ``op = J_p^T lam`` at ``(u, t)``: one call of the user's
    ``vjp`` when given (the adjoints' first source), else from the Jacobians."""
    n, npg = int(P[0]), int(P[2])
    if hasvjp and P[8] != 0.0:
        npar = int(P[1])
        o_p, o_st, o_sh, o_du, o_dk, o_bth, o_L, o_c = _offsets(P)
        p = _user_p(P)
        lc = np.empty(n)
        for i in range(n):
            lc[i] = lam[i]
        opf = np.zeros(npar)
        for j in range(n):
            ou[j] = 0.0
        vj(ou, opf, lc, u, p, t)
        for j in range(npg):
            op[j] = opf[j]
        if P[7] != 0.0:
            for j in range(n):
                acc = ou[j]
                for i in range(n):
                    acc += P[o_L + i * n + j] * lc[i]
                ou[j] = acc
        return
    J = np.empty((n, n))
    Jp = np.empty((n, max(npg, 1)))
    _jacobians(fc, jf, pj, vj, hasjac, haspj, hasvjp, u, t, P, J, Jp)
    for j in range(n):
        acc = 0.0
        for i in range(n):
            acc += J[i, j] * lam[i]
        ou[j] = acc
    for j in range(npg):
        acc = 0.0
        for i in range(n):
            acc += Jp[i, j] * lam[i]
        op[j] = acc


@njit(cache=False)
def _state_rhs(fr, u, t, P, dz):
    """``dz[:n] = f(u, p, t) + L u + c``."""
    n = int(P[0])
    haslin, hasf = P[7] != 0.0, P[8] != 0.0
    o_p, o_st, o_sh, o_du, o_dk, o_bth, o_L, o_c = _offsets(P)
    du = np.zeros(n)
    if hasf:
        fr(du, u, _user_p(P), t)
    if haslin:
        for i in range(n):
            acc = P[o_c + i]
            for j in range(n):
                acc += P[o_L + i * n + j] * u[j]
            du[i] += acc
    for i in range(n):
        dz[i] = du[i]


@njit(cache=False)
def _tangent_products(J, Jp, z, P, out):
    """``out[k] = J S_k + Jp dp_k`` for the directions ``S_k = z[n (k+1) : n (k+2)]``."""
    n, npg, ndir = int(P[0]), int(P[2]), int(P[9])
    o_dp = _dp_offset(P)
    for k in range(ndir):
        base = n * (k + 1)
        for i in range(n):
            acc = 0.0
            for j in range(n):
                acc += J[i, j] * z[base + j]
            for j in range(npg):
                acc += Jp[i, j] * P[o_dp + k * npg + j]
            out[k, i] = acc


@njit(cache=True)
def sensitivity_rhs(fr, fc, jf, pj, vj, hasjac, haspj, hasvjp, dz, z, P, t):
    n, npg, ndir = int(P[0]), int(P[2]), int(P[9])
    u = z[:n].copy()
    _state_rhs(fr, u, t, P, dz)
    J = np.empty((n, n))
    Jp = np.empty((n, max(npg, 1)))
    _jacobians(fc, jf, pj, vj, hasjac, haspj, hasvjp, u, t, P, J, Jp)
    out = np.empty((ndir, n))
    _tangent_products(J, Jp, z, P, out)
    for k in range(ndir):
        for i in range(n):
            dz[n * (k + 1) + i] = out[k, i]


@njit(cache=True)
def sensitivity_jac(fc, jf, pj, vj, hasjac, haspj, hasvjp, Jz, z, P, t):
    n, npg, ndir = int(P[0]), int(P[2]), int(P[9])
    nz = Jz.shape[0]
    for i in range(nz):
        for j in range(nz):
            Jz[i, j] = 0.0
    u = z[:n].copy()
    J = np.empty((n, n))
    Jp = np.empty((n, max(npg, 1)))
    _jacobians(fc, jf, pj, vj, hasjac, haspj, hasvjp, u, t, P, J, Jp)
    for b in range(ndir + 1):
        for i in range(n):
            for j in range(n):
                Jz[b * n + i, b * n + j] = J[i, j]
    # d/du of J S_k + Jp dp_k: central differences of the exact Jacobians
    o1 = np.empty((ndir, n))
    o2 = np.empty((ndir, n))
    up = u.copy()
    for j in range(n):
        d = 6.0554544523933395e-06 * max(abs(u[j]), 1.0)     # eps^(1/3)
        up[j] = u[j] + d
        _jacobians(fc, jf, pj, vj, hasjac, haspj, hasvjp, up, t, P, J, Jp)
        _tangent_products(J, Jp, z, P, o1)
        up[j] = u[j] - d
        _jacobians(fc, jf, pj, vj, hasjac, haspj, hasvjp, up, t, P, J, Jp)
        _tangent_products(J, Jp, z, P, o2)
        up[j] = u[j]
        for k in range(ndir):
            for i in range(n):
                Jz[n * (k + 1) + i, j] = (o1[k, i] - o2[k, i]) / (2.0 * d)


@njit(cache=True)
def adjoint_rhs(fr, fc, jf, pj, vj, hasjac, haspj, hasvjp, dz, z, P, t):
    n, npg, mode = int(P[0]), int(P[2]), int(P[3])
    u = np.empty(n)
    if mode == 1:
        for i in range(n):
            u[i] = z[i]
        _state_rhs(fr, u, t, P, dz)
        off = n
    else:
        _forward_state(u, t, P)
        off = 0
    lam = z[off:off + n]
    ou = np.empty(n)
    op = np.empty(max(npg, 1))
    _products(fc, jf, pj, vj, hasjac, haspj, hasvjp, u, lam, t, P, ou, op)
    for i in range(n):
        dz[off + i] = -ou[i]
    for j in range(npg):
        dz[off + n + j] = -op[j]


@njit(cache=True)
def adjoint_jac(fc, jf, pj, vj, hasjac, haspj, hasvjp, Jz, z, P, t):
    n, npg, mode = int(P[0]), int(P[2]), int(P[3])
    nz = Jz.shape[0]
    for i in range(nz):
        for j in range(nz):
            Jz[i, j] = 0.0
    u = np.empty(n)
    off = n if mode == 1 else 0
    if mode == 1:
        for i in range(n):
            u[i] = z[i]
    else:
        _forward_state(u, t, P)
    J = np.empty((n, n))
    Jp = np.empty((n, max(npg, 1)))
    _jacobians(fc, jf, pj, vj, hasjac, haspj, hasvjp, u, t, P, J, Jp)
    for i in range(n):
        for j in range(n):
            Jz[off + i, off + j] = -J[j, i]
        for j in range(npg):
            Jz[off + n + j, off + i] = -Jp[i, j]
    if mode == 1:
        for i in range(n):
            for j in range(n):
                Jz[i, j] = J[i, j]
        # d/du of (J^T lam, J_p^T lam): central differences of the exact products
        lam = z[n:2 * n]
        up = u.copy()
        ou1 = np.empty(n)
        ou2 = np.empty(n)
        op1 = np.empty(max(npg, 1))
        op2 = np.empty(max(npg, 1))
        for j in range(n):
            d = 6.0554544523933395e-06 * max(abs(u[j]), 1.0)     # eps^(1/3)
            up[j] = u[j] + d
            _products(fc, jf, pj, vj, hasjac, haspj, hasvjp, up, lam, t, P, ou1, op1)
            up[j] = u[j] - d
            _products(fc, jf, pj, vj, hasjac, haspj, hasvjp, up, lam, t, P, ou2, op2)
            up[j] = u[j]
            for i in range(n):
                Jz[n + i, j] = -(ou1[i] - ou2[i]) / (2.0 * d)
            for k in range(npg):
                Jz[2 * n + k, j] = -(op1[k] - op2[k]) / (2.0 * d)


@njit(cache=True)
def linear_dense(lin, plin, n, t, L, c):
    """``lin(u) = L u + c``: ``L`` by :func:`.stiffjac.linear_matrix`, ``c = lin(0)``."""
    linear_matrix(lin, plin, n, t, L)
    lin(c, np.zeros(n), plin, t)
