"""Grid operators as right-hand-side cfuncs (see :mod:`.rhs`).

The operator travels packed in the parameter vector ``p``: a header of ``GRID_HEADER``
numbers ``[kind, n0, n1, n2, c0, c1, c2, per0, per1, per2, sgn(3x2), scale, hasb,
central]``, then by kind ``kappa`` (Diffusion, n values) or ``v0, v1, v2`` (Advection,
3 n), then the boundary term ``b`` (n) when ``hasb``; ``f(u) = scale * (A u + b)``.
One cached cfunc per operator kind (:func:`grid_cfuncs`) thus serves every grid,
coefficient field and boundary condition.
"""
import numpy as np
from numba import cfunc, njit
from numba.np.ufunc.parallel import _launch_threads

from .cfuncptr import as_pointer
from .rhs import KVJP_SIG, RHS_SIG
from .stencil import (advection_apply, advection_transpose, diffusion_apply,
                      diffusion_param_vjp, laplacian_apply)

# cached cfuncs that call parallel kernels need the threading layer up before they load
_launch_threads()

__all__ = ["grid_cfuncs", "is_packed_stencil", "grid_param_vjp", "grid_kappa_vjp_cfunc",
           "GRID_HEADER", "GRID_LAPLACIAN", "GRID_DIFFUSION", "GRID_ADVECTION"]

GRID_HEADER = 19
GRID_LAPLACIAN, GRID_DIFFUSION, GRID_ADVECTION = 0, 1, 2


@njit(cache=False)
def _grid_header(p):
    n0 = int(p[1])
    n1 = int(p[2])
    n2 = int(p[3])
    c = p[4:7].copy()
    per = np.empty(3, np.int64)
    for a in range(3):
        per[a] = int(p[7 + a])
    sgn = p[10:16].copy().reshape((3, 2))
    return n0, n1, n2, c, per, sgn, p[16], p[17] != 0.0, p[18] != 0.0


@njit(cache=False)
def _finish(du, p, off, n, scale, hasb, transpose):
    """``du = scale * (du + b)`` (forward, with a boundary term) or ``du *= scale``."""
    if hasb and not transpose:
        b = p[off:off + n]
        for i in range(n):
            du[i] = scale * (du[i] + b[i])
    elif scale != 1.0:
        for i in range(n):
            du[i] *= scale


@njit(cache=False)
def _apply_laplacian(du, u, p, transpose):
    n0, n1, n2, c, per, sgn, scale, hasb, central = _grid_header(p)
    n = n0 * n1 * n2
    laplacian_apply(u.reshape((n0, n1, n2)), du.reshape((n0, n1, n2)), c, per, sgn)
    _finish(du, p, GRID_HEADER, n, scale, hasb, transpose)


@njit(cache=False)
def _apply_diffusion(du, u, p, transpose):
    n0, n1, n2, c, per, sgn, scale, hasb, central = _grid_header(p)
    n = n0 * n1 * n2
    off = GRID_HEADER
    diffusion_apply(u.reshape((n0, n1, n2)), p[off:off + n].reshape((n0, n1, n2)),
                    du.reshape((n0, n1, n2)), c, per, sgn)
    _finish(du, p, off + n, n, scale, hasb, transpose)


@njit(cache=False)
def _apply_advection(du, u, p, transpose):
    n0, n1, n2, c, per, sgn, scale, hasb, central = _grid_header(p)
    n = n0 * n1 * n2
    off = GRID_HEADER
    v0 = p[off:off + n].reshape((n0, n1, n2))
    v1 = p[off + n:off + 2 * n].reshape((n0, n1, n2))
    v2 = p[off + 2 * n:off + 3 * n].reshape((n0, n1, n2))
    u3 = u.reshape((n0, n1, n2))
    o3 = du.reshape((n0, n1, n2))
    if transpose:
        advection_transpose(u3, v0, v1, v2, o3, c, per, sgn, central)
    else:
        advection_apply(u3, v0, v1, v2, o3, c, per, sgn, central)
    _finish(du, p, off + 3 * n, n, scale, hasb, transpose)


@njit(cache=True)
def _grid_apply(du, u, p, transpose):
    """Any packed grid operator (called from Python; compiles every stencil kind)."""
    kind = int(p[0])
    if kind == GRID_LAPLACIAN:
        _apply_laplacian(du, u, p, transpose)
    elif kind == GRID_DIFFUSION:
        _apply_diffusion(du, u, p, transpose)
    else:
        _apply_advection(du, u, p, transpose)


# One cfunc per operator kind, compiled (or loaded from the disk cache) on first use --
# a ``@cfunc`` decorator compiles at import -- so a problem compiles, on a cold cache,
# only the stencil kernel it uses: the heat equation never compiles Diffusion/Advection.
def grid_apply_laplacian(du, u, p, t):
    """``du = scale * (L u + b)`` for a packed Laplacian (see the module docstring)."""
    _apply_laplacian(du, u, p, False)


def grid_apply_diffusion(du, u, p, t):
    """``du = scale * (D(kappa) u + b)`` for a packed Diffusion operator."""
    _apply_diffusion(du, u, p, False)


def grid_apply_advection(du, u, p, t):
    """``du = scale * (A(v) u + b)`` for a packed Advection operator."""
    _apply_advection(du, u, p, False)


def grid_transpose_laplacian(du, u, p, t):
    """``du = scale * L^T u`` (the boundary term drops out)."""
    _apply_laplacian(du, u, p, True)


def grid_transpose_diffusion(du, u, p, t):
    """``du = scale * D(kappa)^T u`` (the boundary term drops out)."""
    _apply_diffusion(du, u, p, True)


def grid_transpose_advection(du, u, p, t):
    """``du = scale * A(v)^T u`` (the boundary term drops out)."""
    _apply_advection(du, u, p, True)


_KINDS = {GRID_LAPLACIAN: (grid_apply_laplacian, grid_transpose_laplacian),
          GRID_DIFFUSION: (grid_apply_diffusion, grid_transpose_diffusion),
          GRID_ADVECTION: (grid_apply_advection, grid_transpose_advection)}
_CFUNCS = {}


def grid_cfuncs(plin):
    """``(apply, transpose)`` cfuncs for the packed operator ``plin`` (by its kind)."""
    kind = int(plin[0])
    hit = _CFUNCS.get(kind)
    if hit is None:
        hit = _CFUNCS[kind] = tuple(as_pointer(cfunc(RHS_SIG, cache=True)(f)) for f in _KINDS[kind])
    return hit


def is_packed_stencil(lin):
    """True when ``lin`` is the apply cfunc of :func:`grid_cfuncs` for a packed Laplacian or
    Diffusion operator (the symmetric stencils, which the large-state loops fold into their
    stage combinations: :mod:`.erk_large_stencil`)."""
    for kind in (GRID_LAPLACIAN, GRID_DIFFUSION):
        hit = _CFUNCS.get(kind)
        if hit is not None and lin is hit[0]:
            return True
    return False


@njit(cache=False)
def grid_param_vjp(out, u, lam, p):
    """``out = scale * d<lam, A(kappa) u + b(kappa)>/dkappa`` for a packed Diffusion operator."""
    n0, n1, n2, c, per, sgn, scale, hasb, central = _grid_header(p)
    n = n0 * n1 * n2
    shp = (n0, n1, n2)
    diffusion_param_vjp(u.reshape(shp), lam.reshape(shp),
                        p[GRID_HEADER:GRID_HEADER + n].reshape(shp), out.reshape(shp), c, per, sgn)
    if scale != 1.0:
        for i in range(n):
            out[i] *= scale


def grid_kappa_vjp(out, u, lam, p):
    """:func:`grid_param_vjp` as a ``KVJP_SIG`` cfunc body."""
    grid_param_vjp(out, u, lam, p)


def grid_kappa_vjp_cfunc():
    """The cfunc of :func:`grid_param_vjp`, compiled (or loaded) on first use.  The adjoint
    kernels call it through the VJP source tuple, so the Diffusion VJP kernel is compiled
    only by a gradient that asks for ``kappa`` (it was ~6 s of every cold adjoint compile)."""
    hit = _CFUNCS.get("kvjp")
    if hit is None:
        hit = _CFUNCS["kvjp"] = as_pointer(cfunc(KVJP_SIG, cache=True)(grid_kappa_vjp))
    return hit
