"""The large-state explicit loop's stage combinations with a grid stencil folded in.

When the linear part of ``du/dt = f(u) + lin(u)`` is a packed grid Laplacian or
Diffusion operator (:mod:`.rhs_grid`: ``lin(u) = scale (A u + b)``), a stage
combination whose last slope is ``pending`` (:func:`.erk_large.stage_combine`) need not
wait for a threaded pass of the operator: :func:`combine_stencil` evaluates the stencil
row by row (:func:`.stencil.lap_apply_row` / :func:`.stencil.diff_apply_row`, into a
row buffer that stays in the L1 cache) and completes the slope in the same pass
(writing it back for the later stages when ``store``; the stage states then alternate
between two buffers, since the stencil reads the neighbours of the previous stage's
state).  Every entry sees the operations of the two unfused passes in their order (the
stencil through the same row kernel, the scaling of :func:`.rhs_grid._finish`), so the
states do not change by a bit.

Measured (a Laplacian, 256^2, two threads, 2026-12-05): the operator's pass and the
combination 30 us a step, fused 21-23 us (forward Euler: the whole step 38 -> 30 us);
forward solves 0.80x (Euler), 0.84x (RK4), 0.87x (Tsit5) of the unfused time, store-all
gradients 0.91-0.95x (perf/RESULTS.md).  The same fusion in the reverse sweep (the
transpose inside the diagonal VJP's product pass, into a second ``lam`` buffer)
measured no faster (28.9 against 13.6 + 14.2 us), nor did forming the next reversed
step's complex-step probe in that pass (31.0 against 32.3 us) or in the transpose's
pass (46 against 41 us): those passes are bound by the bytes of the complex arrays and
the work per entry, not by their number; none is used.
"""
from numba import njit, prange

from .rhs_grid import GRID_DIFFUSION, GRID_HEADER, _grid_header
from .stencil import _chunk, _neighbours, diff_apply_row, lap_apply_row

__all__ = ["combine_stencil"]

#: the largest finite float64: ``not (abs(v) <= BIG)`` is true for Inf and NaN
BIG = 1.7976931348623157e308
#: entries per chunk of rows (one parallel iteration), as :data:`.erk_large.CHUNK`
CHUNK = 2048


@njit(inline="always", cache=False)
def _nchunks(n, nrows):
    return min(nrows, max(1, (n + CHUNK - 1) // CHUNK))


@njit(inline="always", cache=False)
def _stencil_into(t, Y3, K3, diffusion, r, n0, n1, n2, c, per, sgn):
    """``t = (A Y)`` on row ``r`` of the grid ``Y3`` (the kernels' row order): the
    Laplacian, or with ``diffusion`` the Diffusion operator of the coefficients ``K3``."""
    i0, i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = _neighbours(r, n0, n1, per, sgn)
    if diffusion:
        diff_apply_row(Y3[i0, i1], K3[i0, i1], Y3[a0, i1], Y3[b0, i1], K3[a0, i1], K3[b0, i1],
                       Y3[i0, a1], Y3[i0, b1], K3[i0, a1], K3[i0, b1], t, n2, s0, t0, s1, t1,
                       per, sgn, c)
    else:
        lap_apply_row(Y3[i0, i1], Y3[a0, i1], Y3[b0, i1], Y3[i0, a1], Y3[i0, b1], t, n2,
                      s0, t0, s1, t1, per, sgn, c)


@njit(parallel=True, cache=False)
def combine_stencil(out, u, ks, coef, nst, h, Y, plin, buf, store):
    """``out = u + h (sum_{j < nst-1} coef[j] ks[j] + coef[nst-1] (ks[nst-1] + lin(Y)))``.

    ``lin`` is the packed Laplacian or Diffusion operator ``plin`` (``scale (A Y + b)``),
    evaluated row by row
    into ``buf`` (``n`` entries; one row of it per chunk); ``out`` must not be ``Y``.
    With ``store`` the completed slope is written back into ``ks[nst-1]`` (a later stage
    reads it).  Returns the number of non-finite entries of ``out`` (as
    :func:`.erk_large.stage_combine`)."""
    n0, n1, n2, c, per, sgn, scale, hasb, _central = _grid_header(plin)
    n = u.size
    nrows = n0 * n1
    nch = _nchunks(n, nrows)
    last = nst - 1
    a = coef[last]
    Y3 = Y.reshape((n0, n1, n2))
    # the packed data: header, the coefficients (Diffusion), the boundary term
    diffusion = int(plin[0]) == GRID_DIFFUSION
    K3 = plin[GRID_HEADER:GRID_HEADER + n].reshape((n0, n1, n2)) if diffusion else Y3
    boff = GRID_HEADER + n if diffusion else GRID_HEADER
    bad = 0
    for ch in prange(nch):
        r0, r1 = _chunk(ch, nch, nrows)
        t = buf[ch * n2:(ch + 1) * n2]
        nb = 0
        for r in range(r0, r1):
            _stencil_into(t, Y3, K3, diffusion, r, n0, n1, n2, c, per, sgn)
            lo = r * n2
            if hasb:
                b = plin[boff + lo:boff + lo + n2]
                for x in range(n2):
                    t[x] = scale * (t[x] + b[x])
            elif scale != 1.0:
                for x in range(n2):
                    t[x] *= scale
            o = out[lo:lo + n2]
            uu = u[lo:lo + n2]
            k = ks[last, lo:lo + n2]
            if store:
                for x in range(n2):
                    k[x] = k[x] + t[x]
            if last > 0:
                k0 = ks[0, lo:lo + n2]
                a0 = coef[0]
                for x in range(n2):
                    o[x] = 0.0 + a0 * k0[x]
                for j in range(1, last):
                    aj = coef[j]
                    kj = ks[j, lo:lo + n2]
                    for x in range(n2):
                        o[x] += aj * kj[x]
            # the last term, in the unfused pass's order (the completed slope when stored)
            if last == 0 and store:
                for x in range(n2):
                    v = uu[x] + h * (0.0 + a * k[x])
                    o[x] = v
                    nb += 0 if abs(v) <= BIG else 1
            elif last == 0:
                for x in range(n2):
                    v = uu[x] + h * (0.0 + a * (k[x] + t[x]))
                    o[x] = v
                    nb += 0 if abs(v) <= BIG else 1
            elif store:
                for x in range(n2):
                    v = uu[x] + h * (o[x] + a * k[x])
                    o[x] = v
                    nb += 0 if abs(v) <= BIG else 1
            else:
                for x in range(n2):
                    v = uu[x] + h * (o[x] + a * (k[x] + t[x]))
                    o[x] = v
                    nb += 0 if abs(v) <= BIG else 1
        bad += nb
    return bad
