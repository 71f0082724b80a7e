"""Chebyshev polynomial preconditioning with Jacobi scaling.

``M^{-1} = p(D^{-1} A) D^{-1}`` where ``p`` is the degree-``k`` Chebyshev polynomial that
minimises ``max |1 - lambda p(lambda)|`` on ``[lmin, lmax]``, the spectrum of
``D^{-1} A``; it is a fixed polynomial in ``A``, so for SPD ``A`` it is SPD (provided
``lmax`` bounds the spectrum from above, which is why the Lanczos estimate is inflated
by 10 %; eigenvalues below ``lmin`` are still mapped into (0, 1]).  The bounds come
from a few Lanczos steps on the symmetrically scaled ``|D|^{-1/2} A |D|^{-1/2}``.

Cost of one application: ``k - 1`` matvecs and ``k`` fused vector updates; setup
``steps`` matvecs.

References: Saad (2003), sec. 12.3 (Chebyshev acceleration, Alg. 12.1); Adams,
Brezina, Hu, Tuminaro, "Parallel multigrid smoothing: polynomial versus Gauss-Seidel",
J. Comput. Phys. 188 (2003).
"""
import numpy as np
import scipy.linalg as sla

from ....kernels.cpu import blas

__all__ = ["chebyshev", "lanczos_bounds"]


def lanczos_bounds(matvec, diag, n, dtype, steps=20, seed=0):
    """Extreme Ritz values of ``D^{-1} A`` after ``steps`` Lanczos steps (``D = diag``)."""
    rng = np.random.default_rng(seed)
    sign = 1.0
    if diag is None:
        w = np.ones(n)
    else:
        d = np.asarray(diag).real.ravel()
        sign = -1.0 if np.all(d < 0) else 1.0
        w = np.abs(d)
    ws = 1.0 / np.sqrt(w)
    q = rng.standard_normal(n).astype(dtype)
    q /= blas.nrm2(q)
    qprev = np.zeros(n, dtype=dtype)
    tmp = np.empty(n, dtype=dtype)
    alphas, betas = [], []
    beta = 0.0
    for _ in range(min(steps, n)):
        matvec((ws * q).astype(dtype), tmp)
        v = sign * ws * tmp
        a = blas.dot(q, v.astype(dtype)).real
        v = v - a * q - beta * qprev
        alphas.append(a)
        beta = blas.nrm2(np.ascontiguousarray(v))
        if beta == 0 or not np.isfinite(beta):
            break
        betas.append(beta)
        qprev, q = q, (v / beta).astype(dtype)
    k = len(alphas)
    ev = sla.eigh_tridiagonal(np.array(alphas), np.array(betas[:k - 1]), eigvals_only=True)
    return float(ev[0]), float(ev[-1])


def chebyshev(matvec, diag, n, dtype, degree=4, bounds=None, steps=20, lmax_factor=1.1):
    """The preconditioner ``(r, out=None) -> out = p(D^{-1} A) D^{-1} r``; ``diag=None`` uses
    D = I.

    ``bounds=(lmin, lmax)`` skips the Lanczos estimate.
    """
    if bounds is None:
        lo, hi = lanczos_bounds(matvec, diag, n, dtype, steps)
        if lo < -1e-6 * abs(hi):
            # Ritz values lie inside the spectrum: a clearly negative one is a negative
            # eigenvalue (a singular matrix's zero may come out as -1e-17: clipped below)
            raise ValueError(f"Chebyshev: the estimated spectrum [{lo:.3g}, {hi:.3g}] of "
                             f"D^-1 A is not positive; the matrix is not definite")
        lo, hi = max(lo, hi * 1e-6), hi * lmax_factor
    else:
        lo, hi = bounds
    if not (hi > 0 and lo > 0):
        raise ValueError(f"Chebyshev: the estimated spectrum [{lo:.3g}, {hi:.3g}] of D^-1 A is not "
                         f"positive; the matrix is not definite")
    dinv = np.ones(n, dtype=dtype) if diag is None else (1.0 / np.asarray(diag).ravel()).astype(dtype)
    theta = 0.5 * (hi + lo)
    delta = 0.5 * (hi - lo)
    sigma = theta / delta
    res = np.empty(n, dtype=dtype)
    d = np.empty(n, dtype=dtype)
    tmp = np.empty(n, dtype=dtype)

    def M(r, out=None):
        # Saad, Alg. 12.1 from x = 0, D-preconditioned
        if out is None:
            out = np.empty(n, dtype=dtype)
        np.multiply(dinv, r, out=d)
        np.multiply(d, 1.0 / theta, out=d)
        out[:] = d
        if degree <= 1:
            return out
        res[:] = r
        rho = 1.0 / sigma
        for _ in range(degree - 1):
            matvec(d, tmp)
            np.subtract(res, tmp, out=res)
            rho_new = 1.0 / (2.0 * sigma - rho)
            np.multiply(d, rho_new * rho, out=d)
            np.multiply(dinv, res, out=tmp)
            blas.axpy(2.0 * rho_new / delta, tmp, d)
            rho = rho_new
            out += d
        return out
    M.bounds = (lo, hi)
    return M
