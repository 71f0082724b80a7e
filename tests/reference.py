"""Slow, obvious NumPy references for the stencil operators (ghost-cell padding).

Written independently of the kernels and of the face tables: each evaluates the full
affine operator (boundary data included) on a grid padded by one ghost layer.
"""
import numpy as np

import jitsolve as js


def _pad(field, grid, ghost):
    """Pad ``field`` by one cell per side; ``ghost(cond, axis, side, edge) -> values``."""
    out = field
    for axis, (lo, hi) in enumerate(grid.bcs):
        parts = []
        for side, cond in ((0, lo), (1, hi)):
            if isinstance(cond, js.Periodic):
                idx = -1 if side == 0 else 0
            else:
                idx = 0 if side == 0 else -1
            edge = np.take(out, [idx], axis=axis)
            parts.append(edge if isinstance(cond, js.Periodic) else ghost(cond, axis, side, edge))
        out = np.concatenate([parts[0], out, parts[1]], axis=axis)
    return out


def _face_data(cond, grid, axis, side, edge_shape):
    """Boundary values of one side, shaped like the (partly padded) edge slab."""
    v = cond.value
    if isinstance(v, float):
        return np.full(edge_shape, v)
    # padded-frame array: axes before `axis` are already padded in the slab
    sl = tuple(slice(None) if b < axis else
               (slice(0, 1) if side == 0 else slice(-1, None)) if b == axis else slice(1, -1)
               for b in range(grid.ndim))
    return v[sl]


def padded_u(u, grid, dirichlet="ghost"):
    """``u`` with ghost cells: Dirichlet ``2 g - u`` (or ``g`` when dirichlet="value"),
    Neumann ``u + h q``, periodic wrap."""
    def ghost(cond, axis, side, edge):
        g = _face_data(cond, grid, axis, side, edge.shape)
        if isinstance(cond, js.Dirichlet):
            return g.copy() if dirichlet == "value" else 2 * g - edge
        return edge + grid.spacing[axis] * g
    return _pad(u, grid, ghost)


def padded_coeff(k, grid):
    """A cell coefficient padded by copying the edge (periodic: wrapping)."""
    return _pad(k, grid, lambda cond, axis, side, edge: edge.copy())


def _shift(a, axis, off):
    sl = [slice(1, -1)] * a.ndim
    sl[axis] = slice(1 + off, a.shape[axis] - 1 + off)
    return a[tuple(sl)]


def laplacian(u, grid):
    up = padded_u(u, grid)
    out = np.zeros(grid.shape)
    for a, h in enumerate(grid.spacing):
        out += (_shift(up, a, -1) - 2 * _shift(up, a, 0) + _shift(up, a, 1)) / h ** 2
    return out


def diffusion(u, kappa, grid):
    up = padded_u(u, grid)
    kp = padded_coeff(kappa, grid)
    out = np.zeros(grid.shape)
    for a, h in enumerate(grid.spacing):
        k0 = _shift(kp, a, 0)
        for off in (-1, 1):
            kn = _shift(kp, a, off)
            kf = 2 * k0 * kn / (k0 + kn)
            out += kf * (_shift(up, a, off) - _shift(up, a, 0)) / h ** 2
    return out


def advection(u, velocity, grid, scheme):
    up = padded_u(u, grid, dirichlet="value" if scheme == "upwind" else "ghost")
    out = np.zeros(grid.shape)
    for a, h in enumerate(grid.spacing):
        vp = padded_coeff(velocity[a], grid)
        v0 = _shift(vp, a, 0)
        u0 = _shift(up, a, 0)
        flux = []
        for off in (-1, 1):
            vf = 0.5 * (v0 + _shift(vp, a, off))
            un = _shift(up, a, off)
            uL, uR = (un, u0) if off == -1 else (u0, un)
            if scheme == "upwind":
                flux.append(np.maximum(vf, 0) * uL + np.minimum(vf, 0) * uR)
            else:
                flux.append(vf * (uL + uR) / 2)
        out += (flux[0] - flux[1]) / h
    return out
