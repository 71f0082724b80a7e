"""Checks shared by the multigrid tests."""
import numpy as np
import pytest


def assert_symmetric_positive(M, x, y, rel=1e-11, positive=True):
    """The preconditioner ``M(r, out)`` is symmetric on ``x, y`` (``<M x, y> = <x, M y>`` to
    ``rel``) and, with ``positive``, positive on both (``<x, M x> > 0``)."""
    Mx, My = M(x, np.empty_like(x)), M(y, np.empty_like(y))
    assert np.dot(Mx, y) == pytest.approx(np.dot(x, My), rel=rel)
    if positive:
        assert np.dot(x, Mx) > 0 and np.dot(y, My) > 0


def energy_contraction(A, M, iters=12, seed=0):
    """The stand-alone cycle ``u <- u + M(b - A u)`` (here ``b = 0``, so ``u`` is the
    error) on a random start: the last step's energy-norm factor ``||u_k||_A /
    ||u_{k-1}||_A`` after ``iters`` steps, the asymptotic contraction of ``I - M A``."""
    mv = A.as_linear_operator()
    n = A.grid.size
    u = np.random.default_rng(seed).standard_normal(n)
    e = []
    for _ in range(iters):
        au = mv @ u
        e.append(np.sqrt(u @ au))
        u = u + M(-au, np.empty(n))
    return e[-1] / e[-2]


def preconditioned_extremes(M, S, tol=1e-8):
    """The smallest and largest eigenvalues of ``B A`` (``B`` the cycle ``M``, ``A`` the
    sparse symmetric positive definite matrix ``S``), by Lanczos on the generalised problem
    ``(A B A) x = lam A x`` (ARPACK, ``A^{-1}`` by a sparse LU): a few dozen cycles instead
    of the ``N`` that assemble ``B`` densely."""
    import scipy.sparse.linalg as sla

    S = S.tocsc()
    n = S.shape[0]
    lu = sla.splu(S)
    K = sla.LinearOperator((n, n), matvec=lambda x: S @ M(S @ np.ravel(x), np.empty(n)),
                           dtype=float)
    Sinv = sla.LinearOperator((n, n), matvec=lambda x: lu.solve(np.ravel(x)), dtype=float)
    v0 = np.random.default_rng(0).standard_normal(n)
    lo, hi = (sla.eigsh(K, k=1, M=S, Minv=Sinv, which=w, v0=v0, tol=tol,
                        return_eigenvectors=False)[0] for w in ("SA", "LA"))
    return lo, hi
