"""Dense linear algebra and Jacobians for the stiff integrators (CPU, Numba).

- :func:`lu_factor` / :func:`lu_solve`: LU with partial pivoting, in place, written
  here (no LAPACK round trip: the systems of stiff ODEs solved by dense LU are small,
  and a hand-written loop keeps the integration loop free of Python-level calls).
- :func:`build_w`: the Newton / Rosenbrock matrix ``W = a I - c J``.
- :func:`jacobian`: ``df/du`` from the user's ``jac`` cfunc, else exact complex step of
  the complex twin of ``f`` (``fc(du, u, p, t)`` with complex ``u`` and ``p``), one
  evaluation per column or, with a column colouring of the sparsity pattern, one per
  colour; plus the (constant) matrix of the linear part.
- :func:`linear_matrix`: the dense matrix of a linear part ``lin`` (grid operator, CSR,
  dense or diagonal cfunc) by applying it to unit vectors; exact.

The Jacobian data travel packed as
``jd = (jac, hasjac, fc, pc, cptr, ccols, colptr, rowidx, hascolor, fjac_on, autonomous)``:
``cptr/ccols`` list the columns of each colour (CSR-like), ``colptr/rowidx`` the
sparsity pattern by columns (CSC), ``fjac_on`` whether ``f``'s Jacobian enters the
Newton matrix (False for the explicit part of an IMEX method and for ``zero_f``),
``autonomous`` whether ``df/dt = 0`` may be assumed (else forward difference).

References
----------
Golub, Van Loan, *Matrix Computations* (4th ed.), 3.4 (partial pivoting);
Squire, Trapp, *Using complex variables to estimate derivatives of real functions*,
SIAM Rev. 40 (1998); Curtis, Powell, Reid, *On the estimation of sparse Jacobian
matrices*, IMA J. Appl. Math. 13 (1974) (column colouring).
"""
import numpy as np
from numba import cfunc, njit, types

from .alloc import empty1, zeros1
from .cfuncptr import as_pointer

__all__ = ["lu_factor", "lu_solve", "build_w", "jacobian", "linear_matrix", "jacobian_zero",
           "no_jac", "no_fc", "no_vjp", "CS_STEP"]

#: complex-step size: the derivative is exact to rounding for any small step
CS_STEP = 1e-30


@as_pointer
@cfunc(types.void(types.float64[:, ::1], types.float64[::1], types.float64[::1], types.float64),
       cache=True)
def no_jac(J, u, p, t):
    """Placeholder for a missing user Jacobian (never called)."""
    return


@as_pointer
@cfunc(types.void(types.float64[::1], types.float64[::1], types.float64[::1],
                  types.float64[::1], types.float64[::1], types.float64), cache=True)
def no_vjp(out_u, out_p, lam, u, p, t):
    """Placeholder for a missing user ``vjp`` (never called)."""
    return


@as_pointer
@cfunc(types.void(types.complex128[::1], types.complex128[::1], types.complex128[::1],
                  types.float64), cache=True)
def no_fc(du, u, p, t):
    """Placeholder complex twin of ``f`` (``du = 0``): used when ``f`` contributes no Jacobian."""
    for i in range(du.size):
        du[i] = 0.0


@njit(cache=True)
def lu_factor(W, piv):
    """In-place LU of ``W`` with partial pivoting; ``piv[k]`` the row swapped with ``k``.
    Returns False when a pivot is exactly zero (singular)."""
    n = W.shape[0]
    for k in range(n):
        m = k
        big = abs(W[k, k])
        for i in range(k + 1, n):
            a = abs(W[i, k])
            if a > big:
                big = a
                m = i
        piv[k] = m
        if big == 0.0 or not np.isfinite(big):
            return False
        if m != k:
            for j in range(n):
                tmp = W[k, j]
                W[k, j] = W[m, j]
                W[m, j] = tmp
        inv = 1.0 / W[k, k]
        for i in range(k + 1, n):
            W[i, k] *= inv
        for i in range(k + 1, n):
            lik = W[i, k]
            if lik != 0.0:
                for j in range(k + 1, n):
                    W[i, j] -= lik * W[k, j]
    return True


@njit(cache=True)
def lu_solve(W, piv, b):
    """Solve ``W x = b`` in place (``b`` becomes ``x``) with the factors of :func:`lu_factor`."""
    n = W.shape[0]
    for k in range(n):
        m = piv[k]
        if m != k:
            tmp = b[k]
            b[k] = b[m]
            b[m] = tmp
    for i in range(n):
        acc = b[i]
        for j in range(i):
            acc -= W[i, j] * b[j]
        b[i] = acc
    for i in range(n - 1, -1, -1):
        acc = b[i]
        for j in range(i + 1, n):
            acc -= W[i, j] * b[j]
        b[i] = acc / W[i, i]


# cached although only compiled code calls it: plain arrays, no functions, so a loop
# compiled in a later process loads it (tests/test_kernel_cache.py, PLAIN_CACHED_CALLEES)
@njit(cache=True)
def build_w(W, J, a, c):
    """``W = a I - c J``."""
    n = J.shape[0]
    for i in range(n):
        for j in range(n):
            W[i, j] = -c * J[i, j]
        W[i, i] += a


@njit(cache=True)
def linear_matrix(lin, plin, n, t, L):
    """Dense matrix of the linear part: ``L[:, j] = lin(e_j) - lin(0)`` (the constant
    term of an affine grid operator cancels).  ``n + 1`` applications."""
    e = zeros1(n)
    c0 = empty1(n)
    col = empty1(n)
    lin(c0, e, plin, t)
    for j in range(n):
        e[j] = 1.0
        lin(col, e, plin, t)
        e[j] = 0.0
        for i in range(n):
            L[i, j] = col[i] - c0[i]


@njit(cache=True)
def jacobian(jac, hasjac, fc, pc, cptr, ccols, colptr, rowidx, hascolor, p, u, t, JL, haslin,
             J, uc, duc):
    """``J = df/du (u, t) + JL`` (``JL`` added when ``haslin``).  Returns the number of
    (complex) evaluations of ``f``.  ``uc, duc`` complex work arrays of size n."""
    n = u.size
    nf = 0
    if hasjac:
        # cleared first: ``JL`` is added into ``J`` below, and a jac that writes only
        # the nonzeros kept the previous call's sum (L piled up, a SplitODEProblem's
        # Rosenbrock steps failed)
        for i in range(n):
            for j in range(n):
                J[i, j] = 0.0
        jac(J, u, p, t)
    else:
        for i in range(n):
            uc[i] = u[i]
        if hascolor:
            for i in range(n):
                for j in range(n):
                    J[i, j] = 0.0
            ncol = cptr.size - 1
            for c in range(ncol):
                for k in range(cptr[c], cptr[c + 1]):
                    uc[ccols[k]] = complex(u[ccols[k]], CS_STEP)
                fc(duc, uc, pc, t)
                nf += 1
                for k in range(cptr[c], cptr[c + 1]):
                    j = ccols[k]
                    uc[j] = u[j]
                    for r in range(colptr[j], colptr[j + 1]):
                        i = rowidx[r]
                        J[i, j] = duc[i].imag / CS_STEP
        else:
            for j in range(n):
                uc[j] = complex(u[j], CS_STEP)
                fc(duc, uc, pc, t)
                nf += 1
                uc[j] = u[j]
                for i in range(n):
                    J[i, j] = duc[i].imag / CS_STEP
    if haslin:
        for i in range(n):
            for j in range(n):
                J[i, j] += JL[i, j]
    return nf


# cached although only compiled code calls it: plain arrays, no functions, so a loop
# compiled in a later process loads it (tests/test_kernel_cache.py, PLAIN_CACHED_CALLEES)
@njit(cache=True)
def jacobian_zero(J):
    """``J = 0``."""
    n = J.shape[0]
    for i in range(n):
        for j in range(n):
            J[i, j] = 0.0
