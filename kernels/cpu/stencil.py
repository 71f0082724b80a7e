"""Finite-volume stencil kernels on a cell-centred grid (CPU, Numba).

Every kernel works on a three-dimensional C-contiguous view ``(n0, n1, n2)`` of the
grid: a 1-D grid of ``n`` cells is viewed as ``(1, 1, n)`` and a 2-D grid as
``(1, n0, n1)``.  A padded axis has scale ``c[a] = 0``, so it contributes nothing.

Boundary conditions enter through two small arrays:

``per[a]``
    1 when axis ``a`` is periodic (the neighbour of the first cell is the last).
``sgn[a, side]``
    for a non-periodic side, the factor ``s`` of the ghost value ``u_ghost = s * u_i``
    of the *linear* part of the operator (Dirichlet -1, Neumann +1; first-order
    upwind Dirichlet inflow 0).  Non-zero boundary data are not seen here: they go
    to the operator's boundary term, so every kernel is linear in ``u``.

Parallel loops run over grid rows (``prange`` over ``n0 * n1``, in 3-D in the tile
order of :func:`_tiled_row` for the Laplacian, or over fixed chunks of rows: bands in
3-D, pairs in 2-D, where a row reuses the faces of the rows before it); each row is
written by one thread, so results do not depend on the schedule or the order.  The
contiguous axis has its end cells peeled so that the interior loop is branch-free and
vectorises.  ``laplacian_apply_stream`` writes its rows through buffers with streaming
stores (:mod:`~jitsolve.kernels.cpu.ntstore`), for outputs far larger than the cache.

The row helpers (those with loops) are compiled once per signature, disk-cached and put
in line by LLVM (:func:`~jitsolve.kernels.cpu.inlining.llvm_always_inline`), not spliced
into each caller by Numba's ``inline="always"``, whose copies Numba typed and
transformed again inside every parallel loop at every cold compile: a kernel's cold
compile 2-3.5x shorter, the same machine code's speed and the same bits (RESULTS.md,
thirty-ninth session).  They use ``error_model="numpy"``, the model Numba compiles
parallel loop bodies with: a division is a plain division, with no zero check that
would keep the loops from vectorising.

References
----------
LeVeque, *Finite Volume Methods for Hyperbolic Problems* (2002), ch. 4 (upwind and
central fluxes); Trottenberg, Oosterlee, Schüller, *Multigrid* (2001), sec. 5.7
(cell-centred discretisation with harmonic face coefficients).
"""
import numpy as np
from numba import njit, prange

from .inlining import llvm_always_inline
from .ntstore import stream_fence, stream_row

__all__ = [
    "laplacian_apply",
    "laplacian_apply_stream",
    "diffusion_apply",
    "diffusion_param_vjp",
    "advection_apply",
    "advection_transpose",
    "advection_param_vjp",
]


@njit(inline="always", cache=True)
def _lo(i, n, per, s):
    """Lower neighbour of index ``i``: (index, ghost sign, is-boundary-ghost)."""
    if i > 0:
        return i - 1, 1.0, False
    if per:
        return n - 1, 1.0, False
    return i, s, True


@njit(inline="always", cache=True)
def _hi(i, n, per, s):
    """Upper neighbour of index ``i``: (index, ghost sign, is-boundary-ghost)."""
    if i < n - 1:
        return i + 1, 1.0, False
    if per:
        return 0, 1.0, False
    return i, s, True


@njit(cache=True, error_model="numpy")
def _neighbours(r, n0, n1, per, sgn):
    """Row ``r = i0 * n1 + i1`` and its neighbouring rows along axes 0 and 1:
    ``(i0, i1, a0, s0, g0, b0, t0, h0, a1, s1, g1, b1, t1, h1)`` (see :func:`_lo`)."""
    llvm_always_inline()
    i0 = r // n1
    i1 = r - i0 * n1
    a0, s0, g0 = _lo(i0, n0, per[0], sgn[0, 0])
    b0, t0, h0 = _hi(i0, n0, per[0], sgn[0, 1])
    a1, s1, g1 = _lo(i1, n1, per[1], sgn[1, 0])
    b1, t1, h1 = _hi(i1, n1, per[1], sgn[1, 1])
    return i0, i1, a0, s0, g0, b0, t0, h0, a1, s1, g1, b1, t1, h1


@njit(inline="always", cache=True)
def _harm(a, b):
    """Harmonic mean of two positive face coefficients."""
    return 2.0 * a * b / (a + b)


@njit(inline="always", cache=True)
def _chunk(ch, nch, nrows):
    """Rows ``[lo, hi)`` of chunk ``ch``: contiguous, so a chunk walks rows in order."""
    return ch * nrows // nch, (ch + 1) * nrows // nch


def lap_tile(cpu):
    """Planes per tile of the 3-D Laplacian's row order (:func:`_tiled_row`) on the CPU
    that LLVM names ``cpu``: 1 (plane after plane) on AMD Zen (``znver*``), where tiles
    of 8 planes measured 1.3-1.6x the time of the plain order (256^3, 200^3, 128^3,
    512 x 256^2; fortieth session), else 8 (Intel Sapphire Rapids: 0.78-0.84 of the
    triad against 0.66-0.74 plain, thirty-seventh session; RESULTS.md)."""
    return 1 if cpu.startswith("znver") else 8


def _codegen_cpu():
    """The CPU name Numba compiles for (``NUMBA_CPU_NAME``, else the host's): the cache
    keys its entries on it, so a tile size derived from it matches the cached code."""
    from numba.core import config
    if config.CPU_NAME:
        return config.CPU_NAME
    import llvmlite.binding as ll
    return ll.get_host_cpu_name()


#: the Laplacian's 3-D row order (:func:`_tiled_row`): tiles of ``LAP_TILE`` planes x 1
#: row, chosen for this CPU (:func:`lap_tile`); a global, so compiled in as a constant
LAP_TILE = lap_tile(_codegen_cpu())


@njit(cache=True, error_model="numpy")
def _tiled_row(q, n0, n1, tp):
    """The flat row index ``i0 * n1 + i1`` of the ``q``-th row in tile order: the planes
    in blocks of ``tp``, and within a block row ``i1`` of each plane in turn before row
    ``i1 + 1``.  Each row is written by one thread whatever the order, so the values are
    the same bit for bit; the order sets which rows of ``u`` are in cache when a row
    needs its neighbours and how many sequential streams a thread reads.  On 2-D grids
    (``n0 = 1``) it is the identity.  Measured on Intel Sapphire Rapids (RESULTS.md,
    thirty-seventh session): the 3-D Laplacian apply (two arrays) runs 0.78-0.84 of the
    triad in tiles of 8 planes x 1 row against 0.66-0.74 plane after plane on ten grids
    out of cache (some ten sequential plane streams a thread, the neighbouring planes'
    rows still in L1), the same in cache.  The Advection kernels (five to eight arrays)
    keep the plain order: more streams cost them 10-30 %, and bands of 32 rows through
    all planes gained 10 % at 256^3 but lost 10 % on 256^2 x 250 and 200^3.
    """
    llvm_always_inline()
    tp = min(tp, n0)
    i0 = (q // (tp * n1)) * tp
    m = min(tp, n0 - i0)
    loc = q - i0 * n1
    i1 = loc // m
    return (i0 + loc - i1 * m) * n1 + i1


# --------------------------------------------------------------------------- Laplacian
@njit(cache=True, error_model="numpy")
def _lap_ends(ur, um0, up0, um1, up1, o, n2, s0, t0, s1, t1, per2, sl, sh, c0, c1, c2):
    """The two end cells of a row (the contiguous axis's boundary or wrap-around)."""
    llvm_always_inline()
    for j in (0, n2 - 1):
        a2, s2, _g = _lo(j, n2, per2, sl)
        b2, t2, _h = _hi(j, n2, per2, sh)
        x = ur[j]
        o[j] = (c0 * (s0 * um0[j] + t0 * up0[j] - 2.0 * x)
                + c1 * (s1 * um1[j] + t1 * up1[j] - 2.0 * x)
                + c2 * (s2 * ur[a2] + t2 * ur[b2] - 2.0 * x))


@njit(cache=True, error_model="numpy")
def _lap_row(ur, um0, up0, um1, up1, o, n2, s0, t0, s1, t1, per2, sl, sh, c0, c1, c2, use0):
    llvm_always_inline()
    for j in range(1, n2 - 1):
        x = ur[j]
        acc = c2 * (ur[j - 1] + ur[j + 1] - 2.0 * x) + c1 * (s1 * um1[j] + t1 * up1[j] - 2.0 * x)
        if use0:
            acc += c0 * (s0 * um0[j] + t0 * up0[j] - 2.0 * x)
        o[j] = acc
    _lap_ends(ur, um0, up0, um1, up1, o, n2, s0, t0, s1, t1, per2, sl, sh, c0, c1, c2)


@njit(cache=True, error_model="numpy")
def _lap_pair_2d(ua, ub, um1, up1, oa, ob, n2, s1, t1, c1, c2):
    """Interiors of two neighbouring rows ``a = i1``, ``b = i1 + 1`` of a 2-D grid
    (``c0 = 0``), each row the other's neighbour: :func:`_lap_row`'s expressions with
    the neighbour's sign ``1.0``, so the same bits.  Four rows read for two written
    instead of six."""
    llvm_always_inline()
    for j in range(1, n2 - 1):
        x = ua[j]
        y = ub[j]
        oa[j] = c2 * (ua[j - 1] + ua[j + 1] - 2.0 * x) + c1 * (s1 * um1[j] + 1.0 * y - 2.0 * x)
        ob[j] = c2 * (ub[j - 1] + ub[j + 1] - 2.0 * y) + c1 * (1.0 * x + t1 * up1[j] - 2.0 * y)


@njit(cache=True, error_model="numpy")
def lap_apply_row(ur, um0, up0, um1, up1, o, n2, s0, t0, s1, t1, per, sgn, c):
    """One row ``o = (L u)[i0, i1]`` from the row ``ur`` and its four neighbouring rows
    (``um0, up0`` along axis 0, ``um1, up1`` along axis 1, ghost signs ``s*, t*`` as
    returned by :func:`_neighbours`).  Shared by :func:`laplacian_apply` and the fused
    Krylov kernels, so both give the same bits."""
    llvm_always_inline()
    if c[0] != 0.0:
        _lap_row(ur, um0, up0, um1, up1, o, n2, s0, t0, s1, t1, per[2], sgn[2, 0], sgn[2, 1],
                 c[0], c[1], c[2], True)
    else:
        _lap_row(ur, um0, up0, um1, up1, o, n2, s0, t0, s1, t1, per[2], sgn[2, 0], sgn[2, 1],
                 c[0], c[1], c[2], False)


@njit(inline="always", cache=True)
def _lap_pairs_pay(n0, n1, n2, c0):
    """Whether :func:`laplacian_apply` takes the rows in pairs: on 2-D grids, except in
    cache with rows of a multiple of 512 entries (4 KiB in float64), where the pairs'
    six streams share L1 sets: 1.10-1.22x the time of single rows at 512^2 and
    1.01-1.05x at 1024^2 (one and two threads), against 0.89-0.95 at 384^2 and 724^2
    and 0.84-0.96 at 2048^2 and 4096^2."""
    if n0 != 1 or c0 != 0.0 or n1 < 2:
        return False
    return n2 % 512 != 0 or n1 * n2 > (1 << 20)


@njit(parallel=True, cache=True)
def laplacian_apply(u, out, c, per, sgn):
    """``out = L u`` for the constant-coefficient Laplacian (symmetric: it is its own transpose).

    ``(L u)_i = sum_a c_a (u_{i-e_a} - 2 u_i + u_{i+e_a})`` with ghost values ``s u_i``
    at non-periodic boundaries; ``c_a = 1/h_a^2``.  On 2-D grids the rows are taken in
    pairs (:func:`_lap_pair_2d`, where :func:`_lap_pairs_pay`); in 3-D the pairs' ten
    streams measured slower than single rows (1.4-1.8x at 256^3), and the rows are
    taken in tiles of :data:`LAP_TILE` planes x 1 row (:func:`_tiled_row`; 8 planes,
    or plane after plane on AMD Zen: :func:`lap_tile`).
    """
    n0, n1, n2 = u.shape
    if _lap_pairs_pay(n0, n1, n2, c[0]):
        for q in prange((n1 + 1) // 2):
            i1 = 2 * q
            _lap_pair_rows(u, i1, out[0, i1], out[0, min(i1 + 1, n1 - 1)], n0, n1, n2, c, per,
                           sgn)
        return
    for q in prange(n0 * n1):
        r = _tiled_row(q, n0, n1, LAP_TILE)
        _lap_one_row(u, r, out[r // n1, r % n1], n0, n1, n2, c, per, sgn)


@njit(cache=True, error_model="numpy")
def _lap_one_row(u, r, o, n0, n1, n2, c, per, sgn):
    """Row ``r`` (flat row index) of :func:`laplacian_apply` into ``o``."""
    llvm_always_inline()
    i0, i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = _neighbours(r, n0, n1, per, sgn)
    lap_apply_row(u[i0, i1], u[a0, i1], u[b0, i1], u[i0, a1], u[i0, b1], o, n2,
                  s0, t0, s1, t1, per, sgn, c)


@njit(cache=True, error_model="numpy")
def _lap_pair_rows(u, i1, oa, ob, n0, n1, n2, c, per, sgn):
    """Rows ``i1`` and ``i1 + 1`` of :func:`laplacian_apply` on a 2-D grid into ``oa``,
    ``ob`` (:func:`_lap_pair_2d` and the end cells); row ``i1`` alone when it is the last
    (``ob`` untouched).  Returns whether the pair was formed."""
    llvm_always_inline()
    _i0, _i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = _neighbours(i1, n0, n1, per, sgn)
    if i1 + 1 == n1:
        lap_apply_row(u[0, i1], u[a0, i1], u[b0, i1], u[0, a1], u[0, b1], oa, n2,
                      s0, t0, s1, t1, per, sgn, c)
        return False
    _j0, _j1, _a0, _s0, _, _b0, _t0, _, _a1, _s1, _, b1b, t1b, _ = \
        _neighbours(i1 + 1, n0, n1, per, sgn)
    ua = u[0, i1]
    ub = u[0, i1 + 1]
    _lap_pair_2d(ua, ub, u[0, a1], u[0, b1b], oa, ob, n2, s1, t1b, c[1], c[2])
    _lap_ends(ua, u[a0, i1], u[b0, i1], u[0, a1], ub, oa, n2, s0, t0, s1, t1,
              per[2], sgn[2, 0], sgn[2, 1], c[0], c[1], c[2])
    _lap_ends(ub, u[a0, i1 + 1], u[b0, i1 + 1], ua, u[0, b1b], ob, n2, s0, t0,
              _s1, t1b, per[2], sgn[2, 0], sgn[2, 1], c[0], c[1], c[2])
    return True


#: chunks of rows of the streaming kernels (each holds its row buffers)
STREAM_CHUNKS = 64


@njit(parallel=True, cache=True)
def laplacian_apply_stream(u, out, c, per, sgn):
    """:func:`laplacian_apply` with ``out`` (float64, C-contiguous) written by streaming
    stores (:mod:`~jitsolve.kernels.cpu.ntstore`): every row formed in a buffer by the
    same expressions (rows in pairs on 2-D grids), then streamed.  The same bits; for
    outputs far larger than the cache, which would otherwise be read before they are
    written (write-allocate)."""
    n0, n1, n2 = u.shape
    of = out.reshape(out.size)
    pairs = _lap_pairs_pay(n0, n1, n2, c[0])
    nrows = (n1 + 1) // 2 if pairs else n0 * n1
    nch = min(nrows, STREAM_CHUNKS)
    for ch in prange(nch):
        lo, hi = _chunk(ch, nch, nrows)
        oa = np.empty(n2)
        ob = np.empty(n2)
        for q in range(lo, hi):
            if not pairs:
                _lap_one_row(u, q, oa, n0, n1, n2, c, per, sgn)
                stream_row(of, q * n2, oa, n2)
                continue
            i1 = 2 * q
            if _lap_pair_rows(u, i1, oa, ob, n0, n1, n2, c, per, sgn):
                stream_row(of, (i1 + 1) * n2, ob, n2)
            stream_row(of, i1 * n2, oa, n2)
        stream_fence()


# --------------------------------------------------------------------------- Diffusion
# Harmonic face means cost a division each.  ``_harm`` is symmetric bit for bit (``2 a``
# is exact), so both cells of a face see the same value and the matrix stays exactly
# symmetric; it also lets a face be evaluated once for both its cells.  `diff_apply_row`
# evaluates every cell's faces; `diff_apply_row_shared3` / `2` take the lower faces' flux
# terms from buffers left by the rows before (the bands of `_diffusion_apply_bands` in
# 3-D: three divisions a cell instead of six; the fused CG direction pass, rows in order;
# the flux form, each face's term formed once and negated for its other cell, keeps the
# bits and cut the 3-D apply to 0.95-0.97x the time at 256^3, thirty-eighth session), and
# `_diffusion_apply_pairs` shares them in 2-D (two instead of 3.5).  On AMD Zen 4
# the divisions hid under the memory traffic of a 4096^2 apply (face buffers, written in
# a row pass and read back from L2, measured 40 % slower there); on Intel Sapphire Rapids
# they bound the apply in cache and in 3-D: 0.64-0.79x the time from 64^3 to 256^3,
# 0.69-0.84x from 256^2 to 2048^2 (RESULTS.md, thirty-third session).  2-D grids above
# `DIFF_SHARED_2D` cells (one row buffer, the carried flux terms) divide once for a
# cell's two faces along the contiguous axis (`_diff_pair_2d_flux`): the one kernel whose
# face values are not `_harm`'s bit for bit (0.92-0.94x the time at 4096^2, thirty-seventh
# session; with its faces along axis 1 carried in flux form 0.89-0.94x again,
# thirty-eighth session).

@njit(cache=True, error_model="numpy")
def _diff_ends(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1, t1,
               per2, sl, sh, c0, c1, c2):
    """The two end cells of a row (the contiguous axis's boundary or wrap-around)."""
    llvm_always_inline()
    for j in (0, n2 - 1):
        a2, s2, _g = _lo(j, n2, per2, sl)
        b2, t2, _h = _hi(j, n2, per2, sh)
        x = ur[j]
        kx = kr[j]
        o[j] = (c0 * (_harm(kx, km0[j]) * (s0 * um0[j] - x) + _harm(kx, kp0[j]) * (t0 * up0[j] - x))
                + c1 * (_harm(kx, km1[j]) * (s1 * um1[j] - x) + _harm(kx, kp1[j]) * (t1 * up1[j] - x))
                + c2 * (_harm(kx, kr[a2]) * (s2 * ur[a2] - x) + _harm(kx, kr[b2]) * (t2 * ur[b2] - x)))


@njit(cache=True, error_model="numpy")
def _diff_row(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1, t1,
              per2, sl, sh, c0, c1, c2, use0):
    llvm_always_inline()
    for j in range(1, n2 - 1):
        x = ur[j]
        kx = kr[j]
        acc = (c2 * (_harm(kx, kr[j - 1]) * (ur[j - 1] - x) + _harm(kx, kr[j + 1]) * (ur[j + 1] - x))
               + c1 * (_harm(kx, km1[j]) * (s1 * um1[j] - x) + _harm(kx, kp1[j]) * (t1 * up1[j] - x)))
        if use0:
            acc += c0 * (_harm(kx, km0[j]) * (s0 * um0[j] - x) + _harm(kx, kp0[j]) * (t0 * up0[j] - x))
        o[j] = acc
    _diff_ends(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1, t1,
               per2, sl, sh, c0, c1, c2)


@njit(cache=True, error_model="numpy")
def _fluxes_x(ur, kr, fx, n2):
    """A row's fluxes along the contiguous axis into ``fx``: ``fx[j] = k_f (u_{j+1} - u_j)``
    for the face between ``j`` and ``j + 1``.  Cell ``j``'s two terms along the axis are
    ``fx[j]`` and ``-fx[j - 1]``, the values :func:`_diff_row` forms (a difference and a
    product change only sign when their operands swap), so the sums keep their bits."""
    llvm_always_inline()
    for j in range(n2 - 1):
        fx[j] = _harm(kr[j], kr[j + 1]) * (ur[j + 1] - ur[j])


@njit(cache=True, error_model="numpy")
def _term_buffer(u, k, i0, i1, shape):
    """A buffer of flux terms in the type of the apply's arithmetic (complex for a
    complex ``u``, float64 for a float32 one: a narrower buffer would round the terms);
    the fill value only types it, every entry is written before it is read."""
    llvm_always_inline()
    return np.full(shape, _harm(k[i0, i1, 0], k[i0, i1, 0]) * u[i0, i1, 0])


@njit(cache=True, error_model="numpy")
def _fresh_lower(ur, kr, um, km, s, lo, n2):
    """A row's lower terms along axis 0 or 1 evaluated afresh, negated, into ``lo`` (as
    the row before would have left them: its upper terms, ``-`` the lower ones)."""
    llvm_always_inline()
    for j in range(1, n2 - 1):
        lo[j] = -(_harm(kr[j], km[j]) * (s * um[j] - ur[j]))


@njit(cache=True, error_model="numpy")
def diff_apply_row_shared3(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1,
                           t1, per2, sl, sh, c0, c1, c2, hx, hy, hz, fresh_y, fresh_z):
    """:func:`diff_apply_row`'s values (bit for bit) in flux form, each interior face's
    harmonic mean and flux evaluated once, on a grid with an axis-0 term (``c0 != 0``):
    the fluxes along the contiguous axis into ``hx``; the upper terms along axis 1 and
    axis 0 left in ``hy`` and ``hz`` for the row after along that axis (which takes them
    as its lower terms, negated; evaluated here instead when ``fresh_y`` / ``fresh_z``).
    (One helper per case: a branch between the two loops in one helper ran the 256^3
    apply 1.15x slower.)"""
    llvm_always_inline()
    _fluxes_x(ur, kr, hx, n2)
    if fresh_y:
        _fresh_lower(ur, kr, um1, km1, s1, hy, n2)
    if fresh_z:
        _fresh_lower(ur, kr, um0, km0, s0, hz, n2)
    _diff_row_shared3(ur, kr, up0, up1, kp0, kp1, o, n2, t0, t1, c0, c1, c2, hx, hy, hz)
    _diff_ends(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1, t1,
               per2, sl, sh, c0, c1, c2)


@njit(cache=True, error_model="numpy")
def diff_apply_row_shared2(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1,
                           t1, per2, sl, sh, c0, c1, c2, hx, hy, fresh_y):
    """:func:`diff_apply_row_shared3` on a grid without an axis-0 term (``c0 == 0``)."""
    llvm_always_inline()
    _fluxes_x(ur, kr, hx, n2)
    if fresh_y:
        _fresh_lower(ur, kr, um1, km1, s1, hy, n2)
    _diff_row_shared2(ur, kr, up1, kp1, o, n2, t1, c1, c2, hx, hy)
    _diff_ends(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1, t1,
               per2, sl, sh, c0, c1, c2)


@njit(cache=True, error_model="numpy")
def _diff_row_shared3(ur, kr, up0, up1, kp0, kp1, o, n2, t0, t1, c0, c1, c2, hx, hy, hz):
    llvm_always_inline()
    for j in range(1, n2 - 1):
        x = ur[j]
        kx = kr[j]
        dy = _harm(kx, kp1[j]) * (t1 * up1[j] - x)
        dz = _harm(kx, kp0[j]) * (t0 * up0[j] - x)
        # _diff_row's sums in its order: a + b == b - (-a) bit for bit
        acc = c2 * (hx[j] - hx[j - 1]) + c1 * (dy - hy[j])
        acc += c0 * (dz - hz[j])
        o[j] = acc
        hy[j] = dy
        hz[j] = dz


@njit(cache=True, error_model="numpy")
def _diff_row_shared2(ur, kr, up1, kp1, o, n2, t1, c1, c2, hx, hy):
    llvm_always_inline()
    for j in range(1, n2 - 1):
        x = ur[j]
        dy = _harm(kr[j], kp1[j]) * (t1 * up1[j] - x)
        o[j] = c2 * (hx[j] - hx[j - 1]) + c1 * (dy - hy[j])
        hy[j] = dy


@njit(cache=True, error_model="numpy")
def _diff_pair_2d(ua, ub, ka, kb, um1, up1, km1, kp1, oa, ob, n2, s1, t1, c1, c2):
    """Interiors of two neighbouring rows ``a = i1``, ``b = i1 + 1`` of a 2-D grid
    (``c0 = 0``): :func:`_diff_row`'s expressions with the neighbour's sign ``1.0``,
    so the same bits; the harmonic mean of the face between the two rows is evaluated
    once for both (:func:`_harm` is symmetric bit for bit)."""
    llvm_always_inline()
    for j in range(1, n2 - 1):
        x = ua[j]
        y = ub[j]
        kx = ka[j]
        ky = kb[j]
        h = _harm(kx, ky)
        oa[j] = (c2 * (_harm(kx, ka[j - 1]) * (ua[j - 1] - x) + _harm(kx, ka[j + 1]) * (ua[j + 1] - x))
                 + c1 * (_harm(kx, km1[j]) * (s1 * um1[j] - x) + h * (1.0 * y - x)))
        ob[j] = (c2 * (_harm(ky, kb[j - 1]) * (ub[j - 1] - y) + _harm(ky, kb[j + 1]) * (ub[j + 1] - y))
                 + c1 * (h * (1.0 * x - y) + _harm(ky, kp1[j]) * (t1 * up1[j] - y)))


#: the range of the product of a cell's two sums along the contiguous axis,
#: ``(k_i + k_{i-1}) (k_i + k_{i+1})``, in which :func:`_diff_pair_2d_flux` divides once
#: for both faces; a row pair with a product outside it is formed again face by face
RECIP_LO = 1e-290
RECIP_HI = 1e290


@njit(cache=True, error_model="numpy")
def _diff_pair_2d_flux(ua, ub, ka, kb, up1, kp1, oa, ob, n2, t1, c1, c2, ylo):
    """Interiors of two neighbouring rows ``a = i1``, ``b = i1 + 1`` of a 2-D grid, each
    cell's two faces along the contiguous axis from one division: ``2 k_i / ((k_i +
    k_l)(k_i + k_r))`` times ``k_l (k_i + k_r)`` and ``k_r (k_i + k_l)`` (each such face is
    formed by both its cells, each with its own product, so the two values agree to
    rounding, not bit for bit).  The faces along axis 1 in flux form (as
    :func:`diff_apply_row_shared3`): the face between ``a`` and ``b`` once for both, row
    ``a``'s lower terms from ``ylo`` (negated: as the pair before left them, or afresh
    from :func:`_fresh_lower`), row ``b``'s upper terms left there for the pair after;
    those are :func:`_harm`'s bit for bit.  Returns how many cells had a product outside
    ``[RECIP_LO, RECIP_HI]`` (where it could overflow or lose precision): the caller forms
    such a pair again with :func:`_diff_pair_2d` (``ylo`` is right either way)."""
    llvm_always_inline()
    bad = 0
    for j in range(1, n2 - 1):
        x = ua[j]
        y = ub[j]
        kx = ka[j]
        ky = kb[j]
        al = kx + ka[j - 1]
        ar = kx + ka[j + 1]
        pa = al * ar
        ta = 2.0 * kx / pa
        bl = ky + kb[j - 1]
        br = ky + kb[j + 1]
        pb = bl * br
        tb = 2.0 * ky / pb
        bad += (pa < RECIP_LO) + (pa > RECIP_HI) + (pb < RECIP_LO) + (pb > RECIP_HI)
        dab = _harm(kx, ky) * (y - x)
        dbp = _harm(ky, kp1[j]) * (t1 * up1[j] - y)
        oa[j] = (c2 * (ta * ka[j - 1] * ar * (ua[j - 1] - x) + ta * ka[j + 1] * al * (ua[j + 1] - x))
                 + c1 * (dab - ylo[j]))
        ob[j] = (c2 * (tb * kb[j - 1] * br * (ub[j - 1] - y) + tb * kb[j + 1] * bl * (ub[j + 1] - y))
                 + c1 * (dbp - dab))
        ylo[j] = dbp
    return bad


@njit(cache=True, error_model="numpy")
def diff_apply_row(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1, t1,
                   per, sgn, c):
    """One row ``o = (D(k) u)[i0, i1]`` from the rows of ``u`` and ``k`` at the cell and its
    four neighbouring rows (``*m0, *p0`` along axis 0, ``*m1, *p1`` along axis 1; ghost
    signs as returned by :func:`_neighbours`).  Shared by :func:`diffusion_apply` and
    the fused Krylov kernels, so both give the same bits."""
    llvm_always_inline()
    if c[0] != 0.0:
        _diff_row(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1, t1,
                  per[2], sgn[2, 0], sgn[2, 1], c[0], c[1], c[2], True)
    else:
        _diff_row(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1, o, n2, s0, t0, s1, t1,
                  per[2], sgn[2, 0], sgn[2, 1], c[0], c[1], c[2], False)


@njit(parallel=True, cache=True)
def diffusion_apply(u, k, out, c, per, sgn):
    """``out = D(k) u`` for ``div(k grad u)`` with harmonic face averages of ``k``.

    ``(D u)_i = sum_faces c_a k_f (s u_nb - u_i)``, ``k_f = 2 k_i k_nb / (k_i + k_nb)``;
    at a non-periodic boundary the ghost cell has ``k_nb = k_i`` and value ``s u_i``.
    The matrix is symmetric, so this kernel is also the transpose.  2-D grids of at most
    :data:`DIFF_SHARED_2D` cells: :func:`_diffusion_apply_pairs` (rows in pairs, every
    face evaluated once); larger ones :func:`_diffusion_apply_cells_2d` (rows in pairs,
    each cell's faces along the contiguous axis, the others once); 3-D grids
    :func:`_diffusion_apply_bands` (every face once).  The same values bit for bit
    whichever runs, except on the large 2-D grids: there a cell's two faces along the
    contiguous axis come from one division (:func:`_diff_pair_2d_flux`), equal to the
    others' to rounding.
    """
    n0, n1, n2 = u.shape
    if n0 == 1 and c[0] == 0.0:
        if n1 * n2 <= DIFF_SHARED_2D:
            _diffusion_apply_pairs(u, k, out, c, per, sgn)
        else:
            _diffusion_apply_cells_2d(u, k, out, c, per, sgn)
    elif c[0] != 0.0 and DIFF_SHARED_3D:
        _diffusion_apply_bands(u, k, out, c, per, sgn)
    else:       # each cell's own faces (or no axis-0 term on several planes)
        for r in prange(n0 * n1):
            i0, i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = \
                _neighbours(r, n0, n1, per, sgn)
            diff_apply_row(u[i0, i1], k[i0, i1], u[a0, i1], u[b0, i1], k[a0, i1], k[b0, i1],
                           u[i0, a1], u[i0, b1], k[i0, a1], k[i0, b1], out[i0, i1], n2,
                           s0, t0, s1, t1, per, sgn, c)


#: row pairs in a chunk of :func:`_diffusion_apply_cells_2d` (the face terms between two
#: pairs are carried from one to the next inside a chunk, evaluated afresh at its start)
DIFF_CELLS_CHUNK = 32


@njit(parallel=True, cache=True)
def _diffusion_apply_cells_2d(u, k, out, c, per, sgn):
    """:func:`diffusion_apply` on a 2-D grid, rows in pairs, the two faces of a cell along
    the contiguous axis from one division and the faces along axis 1 in flux form, each
    evaluated once (:func:`_diff_pair_2d_flux`, float64 coefficients; a pair with
    coefficients beyond the one-division range, and float32 coefficients, by
    :func:`_diff_pair_2d`, the harmonic means one by one).  The pairs go in chunks of
    :data:`DIFF_CELLS_CHUNK`, the terms of the face between two pairs carried from one to
    the next.  Rows in pairs: 0.83-0.98 of the time of single rows from 256^2 to 4096^2
    (A/B medians, two threads, AMD Zen 4); one division for two faces: 15.9-16.3 against
    17.4-18.1 ms at 4096^2 (Intel Sapphire Rapids, thirty-seventh session); the faces
    along axis 1 carried: 0.89-0.94x the time again (thirty-eighth session; RESULTS.md)."""
    n0, n1, n2 = u.shape
    npairs = n1 // 2
    P = DIFF_CELLS_CHUNK
    nch = (npairs + P - 1) // P
    for ch in prange(nch + (n1 % 2)):
        if ch == nch:           # an odd last row on its own
            i1 = n1 - 1
            _i0, _i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = \
                _neighbours(i1, n0, n1, per, sgn)
            diff_apply_row(u[0, i1], k[0, i1], u[a0, i1], u[b0, i1], k[a0, i1], k[b0, i1],
                           u[0, a1], u[0, b1], k[0, a1], k[0, b1], out[0, i1], n2,
                           s0, t0, s1, t1, per, sgn, c)
            continue
        q0 = ch * P
        ylo = _term_buffer(u, k, 0, 2 * q0, n2)     # the carried terms along axis 1
        for q in range(q0, min(npairs, q0 + P)):
            i1 = 2 * q
            j1 = i1 + 1
            _i0, _i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = \
                _neighbours(i1, n0, n1, per, sgn)
            _j0, _j1, _a0, _s0, _, _b0, _t0, _, _a1, _s1, _, b1b, t1b, _ = \
                _neighbours(j1, n0, n1, per, sgn)
            ua = u[0, i1]
            ub = u[0, j1]
            ka = k[0, i1]
            kb = k[0, j1]
            if q == q0 or i1 == 0:
                _fresh_lower(ua, ka, u[0, a1], k[0, a1], s1, ylo, n2)
            if (_diff_pair_2d_flux(ua, ub, ka, kb, u[0, b1b], k[0, b1b], out[0, i1],
                                   out[0, j1], n2, t1b, c[1], c[2], ylo) > 0
                    or k.itemsize != 8):
                _diff_pair_2d(ua, ub, ka, kb, u[0, a1], u[0, b1b], k[0, a1], k[0, b1b],
                              out[0, i1], out[0, j1], n2, s1, t1b, c[1], c[2])
            _diff_ends(ua, ka, u[a0, i1], u[b0, i1], k[a0, i1], k[b0, i1], u[0, a1], ub,
                       k[0, a1], kb, out[0, i1], n2, s0, t0, s1, t1,
                       per[2], sgn[2, 0], sgn[2, 1], c[0], c[1], c[2])
            _diff_ends(ub, kb, u[a0, j1], u[b0, j1], k[a0, j1], k[b0, j1], ua, u[0, b1b],
                       ka, k[0, b1b], out[0, j1], n2, s0, t0, _s1, t1b,
                       per[2], sgn[2, 0], sgn[2, 1], c[0], c[1], c[2])


#: pairs of rows per chunk of :func:`_diffusion_apply_pairs` (at most; the faces
#: between two chunks are evaluated by both)
DIFF_PAIRS_CHUNK = 64

#: the most cells of a 2-D grid that :func:`diffusion_apply` gives to
#: :func:`_diffusion_apply_pairs`; larger grids take the per-cell pairs (their arrays do
#: not stay in cache, the apply is bound by the memory streams, and the face buffers'
#: extra streams cost 1.04-1.10x at 4096^2, against 0.68-0.84x at 256^2 .. 2048^2)
DIFF_SHARED_2D = 1 << 22


@njit(cache=True, error_model="numpy")
def _diff_pair_2d_shared(ua, ub, ka, kb, up1, kp1, oa, ob, n2, t1, c1, c2, fxa, fxb, ylo):
    """Interiors of two neighbouring rows ``a = i1``, ``b = i1 + 1`` of a 2-D grid in flux
    form, every face's harmonic mean evaluated once: the fluxes along the contiguous axis
    into ``fxa`` / ``fxb`` (:func:`_fluxes_x`), the face between ``a`` and ``b`` once for
    both, row ``a``'s lower terms from ``ylo`` (negated: as the pair before left them, or
    afresh from :func:`_fresh_lower`), row ``b``'s upper terms left there for the pair
    after.  :func:`_diff_pair_2d`'s sums bit for bit (``a + b == b - (-a)``)."""
    llvm_always_inline()
    _fluxes_x(ua, ka, fxa, n2)
    _fluxes_x(ub, kb, fxb, n2)
    for j in range(1, n2 - 1):
        x = ua[j]
        y = ub[j]
        dab = _harm(ka[j], kb[j]) * (1.0 * y - x)
        dbp = _harm(kb[j], kp1[j]) * (t1 * up1[j] - y)
        oa[j] = c2 * (fxa[j] - fxa[j - 1]) + c1 * (dab - ylo[j])
        ob[j] = c2 * (fxb[j] - fxb[j - 1]) + c1 * (dbp - dab)
        ylo[j] = dbp


@njit(parallel=True, cache=True)
def _diffusion_apply_pairs(u, k, out, c, per, sgn):
    """:func:`diffusion_apply` on a 2-D grid: rows in pairs, every face's harmonic mean and
    flux term evaluated once (two divisions a cell instead of 3.5), in flux form
    (:func:`_diff_pair_2d_shared`).

    The face above a pair is the face below the next pair of the chunk (its term carried
    in a row buffer, evaluated afresh at a chunk's start).  The buffers take the type of
    the apply's arithmetic (:func:`_term_buffer`).  :func:`_harm` is symmetric bit for
    bit and a sum keeps its bits when a term is subtracted negated, so the values are
    :func:`diff_apply_row`'s.  Why: the divisions bound the apply on cores that divide
    slowly (Intel Sapphire Rapids: see RESULTS.md); the flux form does fewer
    multiplications and loads a cell (0.82-0.94x the time of the harmonic means looked
    up, 256^2 and 512^2, two threads, AMD Zen 4, fortieth session).
    """
    n0, n1, n2 = u.shape
    c1 = c[1]
    c2 = c[2]
    npairs = (n1 + 1) // 2
    nch = max(1, (npairs + DIFF_PAIRS_CHUNK - 1) // DIFF_PAIRS_CHUNK)
    for ch in prange(nch):
        q_lo = ch * npairs // nch
        q_hi = (ch + 1) * npairs // nch
        fxa = _term_buffer(u, k, 0, 0, n2)      # fluxes along axis 2 of row a, of row b
        fxb = _term_buffer(u, k, 0, 0, n2)
        ylo = _term_buffer(u, k, 0, 0, n2)      # the terms of the faces below row a
        for q in range(q_lo, q_hi):
            i1 = 2 * q
            _i0, _i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = \
                _neighbours(i1, n0, n1, per, sgn)
            if i1 + 1 == n1:
                diff_apply_row(u[0, i1], k[0, i1], u[a0, i1], u[b0, i1], k[a0, i1], k[b0, i1],
                               u[0, a1], u[0, b1], k[0, a1], k[0, b1], out[0, i1], n2,
                               s0, t0, s1, t1, per, sgn, c)
                continue
            _j0, _j1, _a0, _s0, _, _b0, _t0, _, _a1, _s1, _, b1b, t1b, _ = \
                _neighbours(i1 + 1, n0, n1, per, sgn)
            j1 = i1 + 1
            ua = u[0, i1]
            ub = u[0, j1]
            ka = k[0, i1]
            kb = k[0, j1]
            um1 = u[0, a1]
            up1 = u[0, b1b]
            km1 = k[0, a1]
            kp1 = k[0, b1b]
            oa = out[0, i1]
            ob = out[0, j1]
            if q == q_lo or i1 == 0:
                _fresh_lower(ua, ka, um1, km1, s1, ylo, n2)
            _diff_pair_2d_shared(ua, ub, ka, kb, up1, kp1, oa, ob, n2, t1b, c1, c2, fxa, fxb,
                                 ylo)
            _diff_ends(ua, ka, u[a0, i1], u[b0, i1], k[a0, i1], k[b0, i1], um1, ub,
                       km1, kb, oa, n2, s0, t0, s1, t1,
                       per[2], sgn[2, 0], sgn[2, 1], c[0], c[1], c[2])
            _diff_ends(ub, kb, u[a0, j1], u[b0, j1], k[a0, j1], k[b0, j1], ua, up1,
                       ka, kp1, ob, n2, s0, t0, _s1, t1b,
                       per[2], sgn[2, 0], sgn[2, 1], c[0], c[1], c[2])


#: whether :func:`diffusion_apply` shares the faces on 3-D grids (the bands below) or
#: lets every cell evaluate its own (A/B switch; the same bits either way)
DIFF_SHARED_3D = True

#: rows along axis 1 in a band of :func:`_diffusion_apply_bands`: the band's three planes
#: of ``u`` and ``k`` and its face buffer stay in L2 (256^3: 22.6-23.1 ms against
#: 27.1-27.3 with whole planes; bands of 16 to 64 rows within 5 %, of 8 rows 1.1x; at
#: 128^3 bands and whole planes alike)
DIFF_BAND = 32


@njit(inline="always", cache=True)
def _band_layout(n0, n1):
    """``(B, nb, nsplit)``: rows per band along axis 1 (:data:`DIFF_BAND`), the number of
    bands, and the splits of axis 0 (some 8 chunks at least)."""
    B = min(DIFF_BAND, n1)
    nb = (n1 + B - 1) // B
    return B, nb, max(1, min(n0, (8 + nb - 1) // nb))


@njit(inline="always", cache=True)
def _band_chunk(ch, B, nb, nsplit, n0, n1):
    """Chunk ``ch``'s rows ``[b_lo, b_hi)`` along axis 1 and planes ``[p_lo, p_hi)``."""
    b_lo = (ch % nb) * B
    sp = ch // nb
    return b_lo, min(n1, b_lo + B), sp * n0 // nsplit, (sp + 1) * n0 // nsplit


@njit(parallel=True, cache=True)
def _diffusion_apply_bands(u, k, out, c, per, sgn):
    """:func:`diffusion_apply` on a 3-D grid (``c[0] != 0``) with every face's harmonic
    mean evaluated once, not once from each side: three divisions a cell instead of six.

    The rows are taken in bands of :data:`DIFF_BAND` rows along axis 1, plane after
    plane along axis 0; a row takes its fluxes along the contiguous axis from a row
    buffer, and its lower flux terms along axes 1 and 0 from the row before it in the
    band and from the same row of the plane before, where this chunk formed them (else
    afresh: a chunk's first plane, a band's first row, boundaries, periodic wrap).
    :func:`_harm` is symmetric bit for bit and a face's term only changes sign between
    its two cells, so the values are :func:`diff_apply_row`'s.  Why: the divisions
    bound the per-cell apply (see the note above :func:`diffusion_apply`).
    """
    n0, n1, n2 = u.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    per2 = per[2]
    sl = sgn[2, 0]
    sh = sgn[2, 1]
    B, nb, nsplit = _band_layout(n0, n1)
    for ch in prange(nb * nsplit):
        b_lo, b_hi, p_lo, p_hi = _band_chunk(ch, B, nb, nsplit, n0, n1)
        hx = _term_buffer(u, k, p_lo, b_lo, n2)         # fluxes along axis 2: j, j + 1
        hy = _term_buffer(u, k, p_lo, b_lo, n2)         # the row's lower terms, axis 1
        hz = _term_buffer(u, k, p_lo, b_lo, (B, n2))    # the band's lower terms, axis 0
        for i0 in range(p_lo, p_hi):
            for i1 in range(b_lo, b_hi):
                _i0, _i1, a0, s0, _g0, b0, t0, _h0, a1, s1, _g1, b1, t1, _h1 = \
                    _neighbours(i0 * n1 + i1, n0, n1, per, sgn)
                ur = u[i0, i1]
                kr = k[i0, i1]
                um0 = u[a0, i1]
                up0 = u[b0, i1]
                km0 = k[a0, i1]
                kp0 = k[b0, i1]
                um1 = u[i0, a1]
                up1 = u[i0, b1]
                km1 = k[i0, a1]
                kp1 = k[i0, b1]
                diff_apply_row_shared3(ur, kr, um0, up0, km0, kp0, um1, up1, km1, kp1,
                                       out[i0, i1], n2, s0, t0, s1, t1, per2, sl, sh, c0, c1,
                                       c2, hx, hy, hz[i1 - b_lo], i1 == b_lo or i1 == 0,
                                       i0 == p_lo or i0 == 0)


@njit(inline="always", cache=True)
def _dface(kx, kn, x, xn, lx, ln, s, ghost):
    """Contribution of one face to ``d/dk_i <lam, D(k) u>`` (linear part)."""
    if ghost:
        # the ghost cell shares k_i: k_f = k_i, d k_f / d k_i = 1
        return (s * x - x) * lx
    t = kx + kn
    return 2.0 * kn * kn / (t * t) * (xn - x) * (lx - ln)


@njit(cache=True, error_model="numpy")
def _dvjp_row(ur, lr, kr, um0, up0, lm0, lp0, km0, kp0, um1, up1, lm1, lp1, km1, kp1, o, n2,
              gd, per2, sl, sh, c0, c1, c2, use0):
    llvm_always_inline()
    s0, t0, g0, h0, s1, t1, g1, h1 = gd
    for j in range(1, n2 - 1):
        x = ur[j]
        lx = lr[j]
        kx = kr[j]
        acc = (c2 * (_dface(kx, kr[j - 1], x, ur[j - 1], lx, lr[j - 1], 1.0, False)
                     + _dface(kx, kr[j + 1], x, ur[j + 1], lx, lr[j + 1], 1.0, False))
               + c1 * (_dface(kx, km1[j], x, um1[j], lx, lm1[j], s1, g1)
                       + _dface(kx, kp1[j], x, up1[j], lx, lp1[j], t1, h1)))
        if use0:
            acc += c0 * (_dface(kx, km0[j], x, um0[j], lx, lm0[j], s0, g0)
                         + _dface(kx, kp0[j], x, up0[j], lx, lp0[j], t0, h0))
        o[j] = acc
    _dvjp_ends(ur, lr, kr, um0, up0, lm0, lp0, km0, kp0, um1, up1, lm1, lp1, km1, kp1, o, n2,
               gd, per2, sl, sh, c0, c1, c2)


@njit(cache=True, error_model="numpy")
def _dvjp_ends(ur, lr, kr, um0, up0, lm0, lp0, km0, kp0, um1, up1, lm1, lp1, km1, kp1, o, n2,
               gd, per2, sl, sh, c0, c1, c2):
    """The two end cells of a row of :func:`diffusion_param_vjp`."""
    llvm_always_inline()
    s0, t0, g0, h0, s1, t1, g1, h1 = gd
    for j in (0, n2 - 1):
        a2, s2, g2 = _lo(j, n2, per2, sl)
        b2, t2, h2 = _hi(j, n2, per2, sh)
        x = ur[j]
        lx = lr[j]
        kx = kr[j]
        o[j] = (c0 * (_dface(kx, km0[j], x, um0[j], lx, lm0[j], s0, g0)
                      + _dface(kx, kp0[j], x, up0[j], lx, lp0[j], t0, h0))
                + c1 * (_dface(kx, km1[j], x, um1[j], lx, lm1[j], s1, g1)
                        + _dface(kx, kp1[j], x, up1[j], lx, lp1[j], t1, h1))
                + c2 * (_dface(kx, kr[a2], x, ur[a2], lx, lr[a2], s2, g2)
                        + _dface(kx, kr[b2], x, ur[b2], lx, lr[b2], t2, h2)))


@njit(parallel=True, cache=True)
def diffusion_param_vjp(u, lam, k, out, c, per, sgn):
    """``out = (d (D(k) u) / d k)^T lam``: the coefficient-field gradient of ``<lam, D(k) u>``.

    Each interior face between cells ``i`` and ``m`` contributes
    ``c_a dk_f/dk_i (u_m - u_i)(lam_i - lam_m)`` to cell ``i``, with
    ``dk_f/dk_i = 2 k_m^2 / (k_i + k_m)^2``; a boundary ghost face contributes
    ``c_a (s - 1) u_i lam_i``.  3-D grids (:data:`VJP_SHARED_3D`):
    :func:`_diffusion_vjp_bands`, each face's quotient once for both cells (0.81x the
    time at 64^3 and 128^3, 0.90x at 256^3 on Intel Sapphire Rapids; not bit for bit
    the per-cell rows).  Otherwise one pass per row, each cell evaluating its own faces;
    single rows in 2-D too: the pairs of :func:`diffusion_apply` (four rows of ``u``,
    ``lam`` and ``k`` read for two written) measured 1.01-1.16x slower on AMD Zen 4,
    256^2 to 4096^2.
    """
    n0, n1, n2 = u.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    if c0 != 0.0 and VJP_SHARED_3D:
        _diffusion_vjp_bands(u, lam, k, out, c, per, sgn)
        return
    for r in prange(n0 * n1):
        i0, i1, a0, s0, g0, b0, t0, h0, a1, s1, g1, b1, t1, h1 = \
            _neighbours(r, n0, n1, per, sgn)
        gd = (s0, t0, g0, h0, s1, t1, g1, h1)
        if c0 != 0.0:
            _dvjp_row(u[i0, i1], lam[i0, i1], k[i0, i1], u[a0, i1], u[b0, i1], lam[a0, i1],
                      lam[b0, i1], k[a0, i1], k[b0, i1], u[i0, a1], u[i0, b1], lam[i0, a1],
                      lam[i0, b1], k[i0, a1], k[i0, b1], out[i0, i1], n2, gd, per[2],
                      sgn[2, 0], sgn[2, 1], c0, c1, c2, True)
        else:
            _dvjp_row(u[i0, i1], lam[i0, i1], k[i0, i1], u[a0, i1], u[b0, i1], lam[a0, i1],
                      lam[b0, i1], k[a0, i1], k[b0, i1], u[i0, a1], u[i0, b1], lam[i0, a1],
                      lam[i0, b1], k[i0, a1], k[i0, b1], out[i0, i1], n2, gd, per[2],
                      sgn[2, 0], sgn[2, 1], c0, c1, c2, False)


#: whether :func:`diffusion_param_vjp` evaluates each face's quotient once on 3-D grids
VJP_SHARED_3D = True


@njit(inline="always", cache=True)
def _gface(ka, kb, ua, ub, la, lb):
    """The shared factor of an interior face between cells ``a`` and ``b``:
    ``(u_b - u_a)(lam_a - lam_b) / (k_a + k_b)^2``; the face adds ``2 k_b^2`` times it to
    cell ``a``'s gradient and ``2 k_a^2`` times it to cell ``b``'s (:func:`_dface`)."""
    t = ka + kb
    return (ub - ua) * (la - lb) / (t * t)


@njit(parallel=True, cache=True)
def _diffusion_vjp_bands(u, lam, k, out, c, per, sgn):
    """:func:`diffusion_param_vjp` on a 3-D grid with one division per face instead of
    one per face and side: each face's :func:`_gface` is evaluated once and given to both
    cells (the bands and carried lower faces of :func:`_diffusion_apply_bands`; boundary
    ghost faces as :func:`_dface`).  Same values as the per-cell kernel to rounding (the
    quotient is formed once, so not bit for bit).  The carried buffers along axes 1 and 0
    hold the lower cell's term ``2 k_a^2 g`` for the cell above, not ``g``: the same
    product in the same order, so the same bits, and the rows no longer read the lower
    rows of ``k`` (0.93-0.96x the time at 200^3-256^3, 0.84-0.95 on other grids, AMD
    Zen 4, forty-second session)."""
    n0, n1, n2 = u.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    per2 = per[2]
    sl = sgn[2, 0]
    sh = sgn[2, 1]
    B, nb, nsplit = _band_layout(n0, n1)
    for ch in prange(nb * nsplit):
        b_lo, b_hi, p_lo, p_hi = _band_chunk(ch, B, nb, nsplit, n0, n1)
        gx = np.empty(n2, out.dtype)    # gx[j]: the face between j, j + 1
        gy = np.empty(n2, out.dtype)    # the row's lower faces along axis 1
        gz = np.empty((B, n2), out.dtype)   # the band's lower faces along axis 0
        for i0 in range(p_lo, p_hi):
            for i1 in range(b_lo, b_hi):
                _i0, _i1, a0, s0, g0, b0, t0, h0, a1, s1, g1, b1, t1, h1 = \
                    _neighbours(i0 * n1 + i1, n0, n1, per, sgn)
                ur = u[i0, i1]
                lr = lam[i0, i1]
                kr = k[i0, i1]
                um0 = u[a0, i1]
                up0 = u[b0, i1]
                lm0 = lam[a0, i1]
                lp0 = lam[b0, i1]
                km0 = k[a0, i1]
                kp0 = k[b0, i1]
                um1 = u[i0, a1]
                up1 = u[i0, b1]
                lm1 = lam[i0, a1]
                lp1 = lam[i0, b1]
                km1 = k[i0, a1]
                kp1 = k[i0, b1]
                o = out[i0, i1]
                gzr = gz[i1 - b_lo]
                for j in range(n2 - 1):
                    gx[j] = _gface(kr[j], kr[j + 1], ur[j], ur[j + 1], lr[j], lr[j + 1])
                if (i1 == b_lo or i1 == 0) and not g1:
                    for j in range(1, n2 - 1):
                        gy[j] = 2.0 * km1[j] * km1[j] * _gface(km1[j], kr[j], um1[j], ur[j],
                                                               lm1[j], lr[j])
                if (i0 == p_lo or i0 == 0) and not g0:
                    for j in range(1, n2 - 1):
                        gzr[j] = 2.0 * km0[j] * km0[j] * _gface(km0[j], kr[j], um0[j], ur[j],
                                                                lm0[j], lr[j])
                for j in range(1, n2 - 1):
                    x = ur[j]
                    lx = lr[j]
                    kx = kr[j]
                    fy = 0.0 if h1 else _gface(kx, kp1[j], x, up1[j], lx, lp1[j])
                    fz = 0.0 if h0 else _gface(kx, kp0[j], x, up0[j], lx, lp0[j])
                    ylo = (s1 * x - x) * lx if g1 else gy[j]
                    yhi = (t1 * x - x) * lx if h1 else 2.0 * kp1[j] * kp1[j] * fy
                    zlo = (s0 * x - x) * lx if g0 else gzr[j]
                    zhi = (t0 * x - x) * lx if h0 else 2.0 * kp0[j] * kp0[j] * fz
                    o[j] = (c2 * (2.0 * kr[j - 1] * kr[j - 1] * gx[j - 1]
                                  + 2.0 * kr[j + 1] * kr[j + 1] * gx[j])
                            + c1 * (ylo + yhi)) + c0 * (zlo + zhi)
                    gy[j] = 2.0 * kx * kx * fy     # the upper cell's term, formed here
                    gzr[j] = 2.0 * kx * kx * fz
                _dvjp_ends(ur, lr, kr, um0, up0, lm0, lp0, km0, kp0, um1, up1, lm1, lp1, km1,
                           kp1, o, n2, (s0, t0, g0, h0, s1, t1, g1, h1), per2, sl, sh,
                           c0, c1, c2)


# --------------------------------------------------------------------------- Advection
# Flux through a face with normal velocity v between a lower value uL and an upper uR:
#   upwind  F = max(v, 0) uL + min(v, 0) uR         central  F = v (uL + uR) / 2
# and (A u)_i = sum_a c_a (F_{i-1/2} - F_{i+1/2}), i.e. A u ~ -div(v u), c_a = 1/h_a.

@njit(inline="always", cache=True)
def _wl(v, central):
    """Weight of the lower value in the face flux."""
    if central:
        return 0.5 * v
    return v if v > 0.0 else 0.0


@njit(inline="always", cache=True)
def _wr(v, central):
    """Weight of the upper value in the face flux."""
    if central:
        return 0.5 * v
    return v if v < 0.0 else 0.0


@njit(inline="always", cache=True)
def _dwl(v, central):
    if central:
        return 0.5
    return 1.0 if v > 0.0 else 0.0


@njit(inline="always", cache=True)
def _dwr(v, central):
    if central:
        return 0.5
    return 1.0 if v < 0.0 else 0.0


@njit(inline="always", cache=True)
def _adv_cell(x, vx, um, vm, sm, up, vp, sp, central):
    """``F_lo - F_hi`` for one cell along one axis (ghost values already signed).

    Upwind takes the face velocity times the upwind value, ``F = v u_L`` (``v > 0``) or
    ``v u_R``: the same value as ``max(v, 0) u_L + min(v, 0) u_R`` (one of its products
    is zero) with one product instead of two, and a non-finite value downwind of a face
    is not multiplied by its zero weight, as in the assembled matrix (``to_csr``).
    """
    fl = 0.5 * (vx + vm)
    fh = 0.5 * (vx + vp)
    if central:
        return (_wl(fl, central) * sm * um + _wr(fl, central) * x
                - _wl(fh, central) * x - _wr(fh, central) * sp * up)
    return fl * (sm * um if fl > 0.0 else x) - fh * (x if fh > 0.0 else sp * up)


@njit(cache=True, error_model="numpy")
def _adv_row(ur, um0, up0, um1, up1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, s0, t0, s1, t1,
             per2, sl, sh, c0, c1, c2, use0, central):
    llvm_always_inline()
    for j in (0, n2 - 1):
        a2, s2, _b = _lo(j, n2, per2, sl)
        b2, t2, _b = _hi(j, n2, per2, sh)
        x = ur[j]
        o[j] = (c0 * _adv_cell(x, vr0[j], um0[j], vm0[j], s0, up0[j], vp0[j], t0, central)
                + c1 * _adv_cell(x, vr1[j], um1[j], vm1[j], s1, up1[j], vp1[j], t1, central)
                + c2 * _adv_cell(x, vr2[j], ur[a2], vr2[a2], s2, ur[b2], vr2[b2], t2, central))
    for j in range(1, n2 - 1):
        x = ur[j]
        acc = c1 * _adv_cell(x, vr1[j], um1[j], vm1[j], s1, up1[j], vp1[j], t1, central)
        if use0:   # same order of sums as the edge cells: (c0 term + c1 term) + c2 term
            acc = c0 * _adv_cell(x, vr0[j], um0[j], vm0[j], s0, up0[j], vp0[j], t0, central) + acc
        o[j] = acc + c2 * _adv_cell(x, vr2[j], ur[j - 1], vr2[j - 1], 1.0, ur[j + 1], vr2[j + 1],
                                    1.0, central)


@njit(parallel=True, cache=True)
def advection_apply(u, v0, v1, v2, out, c, per, sgn, central):
    """``out = A(v) u``, the flux-form discretisation of ``-div(v u)``.

    ``v0, v1, v2`` are the velocity components along the three (padded) axes at cell
    centres; face velocities are the mean of the two cells.  ``central`` selects the
    central flux, otherwise first-order upwind.  A padded axis (``c_a = 0``) may be
    given any array of the grid's shape; its terms are skipped in the interior loop
    (each of the four (padded axis, scheme) cases is its own branch-free loop).
    """
    n0, n1, n2 = u.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    use0 = c0 != 0.0
    for r in prange(n0 * n1):
        i0, i1, a0, s0, _, b0, t0, _, a1, s1, _, b1, t1, _ = \
            _neighbours(r, n0, n1, per, sgn)
        ur = u[i0, i1]
        um0 = u[a0, i1]
        up0 = u[b0, i1]
        um1 = u[i0, a1]
        up1 = u[i0, b1]
        vr0 = v0[i0, i1]
        vm0 = v0[a0, i1]
        vp0 = v0[b0, i1]
        vr1 = v1[i0, i1]
        vm1 = v1[i0, a1]
        vp1 = v1[i0, b1]
        vr2 = v2[i0, i1]
        o = out[i0, i1]
        if use0:
            if central:
                _adv_row(ur, um0, up0, um1, up1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, s0, t0,
                         s1, t1, per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, True, True)
            else:
                _adv_row(ur, um0, up0, um1, up1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, s0, t0,
                         s1, t1, per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, True, False)
        elif central:
            _adv_row(ur, um0, up0, um1, up1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, s0, t0,
                     s1, t1, per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, False, True)
        else:
            _adv_row(ur, um0, up0, um1, up1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, s0, t0,
                     s1, t1, per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, False, False)


@njit(inline="always", cache=True)
def _advT_cell(lx, vx, lm, vm, sm, gm, lp, vp, sp, gp, central):
    """Transpose contribution of the two faces of one cell along one axis."""
    fl = 0.5 * (vx + vm)
    fh = 0.5 * (vx + vp)
    if gm:
        lo = (_wl(fl, central) * sm + _wr(fl, central)) * lx
    else:
        lo = _wr(fl, central) * (lx - lm)
    if gp:
        hi = -(_wl(fh, central) + _wr(fh, central) * sp) * lx
    else:
        hi = _wl(fh, central) * (lp - lx)
    return lo + hi


@njit(cache=True, error_model="numpy")
def _advT_row(lr, lm0, lp0, lm1, lp1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, gd, per2, sl,
              sh, c0, c1, c2, use0, central):
    llvm_always_inline()
    s0, t0, g0, h0, s1, t1, g1, h1 = gd
    for j in (0, n2 - 1):
        a2, s2, g2 = _lo(j, n2, per2, sl)
        b2, t2, h2 = _hi(j, n2, per2, sh)
        x = lr[j]
        o[j] = (c0 * _advT_cell(x, vr0[j], lm0[j], vm0[j], s0, g0, lp0[j], vp0[j], t0, h0, central)
                + c1 * _advT_cell(x, vr1[j], lm1[j], vm1[j], s1, g1, lp1[j], vp1[j], t1, h1, central)
                + c2 * _advT_cell(x, vr2[j], lr[a2], vr2[a2], s2, g2, lr[b2], vr2[b2], t2, h2, central))
    for j in range(1, n2 - 1):
        x = lr[j]
        acc = c1 * _advT_cell(x, vr1[j], lm1[j], vm1[j], s1, g1, lp1[j], vp1[j], t1, h1, central)
        if use0:   # same order of sums as the edge cells
            acc = c0 * _advT_cell(x, vr0[j], lm0[j], vm0[j], s0, g0, lp0[j], vp0[j], t0, h0,
                                  central) + acc
        o[j] = acc + c2 * _advT_cell(x, vr2[j], lr[j - 1], vr2[j - 1], 1.0, False,
                                     lr[j + 1], vr2[j + 1], 1.0, False, central)


@njit(parallel=True, cache=True)
def advection_transpose(lam, v0, v1, v2, out, c, per, sgn, central):
    """``out = A(v)^T lam``: the exact transpose of :func:`advection_apply`, matrix-free.

    An interior face with flux ``F = wL uL + wR uR`` adds ``c wL (lam_R - lam_L)`` to the
    lower cell and ``c wR (lam_R - lam_L)`` to the upper one; a boundary ghost face adds
    its diagonal term.  Loops specialised as in :func:`advection_apply`.
    """
    n0, n1, n2 = lam.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    use0 = c0 != 0.0
    for r in prange(n0 * n1):
        i0, i1, a0, s0, g0, b0, t0, h0, a1, s1, g1, b1, t1, h1 = \
            _neighbours(r, n0, n1, per, sgn)
        gd = (s0, t0, g0, h0, s1, t1, g1, h1)
        lr = lam[i0, i1]
        lm0 = lam[a0, i1]
        lp0 = lam[b0, i1]
        lm1 = lam[i0, a1]
        lp1 = lam[i0, b1]
        vr0 = v0[i0, i1]
        vm0 = v0[a0, i1]
        vp0 = v0[b0, i1]
        vr1 = v1[i0, i1]
        vm1 = v1[i0, a1]
        vp1 = v1[i0, b1]
        vr2 = v2[i0, i1]
        o = out[i0, i1]
        if use0:
            if central:
                _advT_row(lr, lm0, lp0, lm1, lp1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, gd,
                          per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, True, True)
            else:
                _advT_row(lr, lm0, lp0, lm1, lp1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, gd,
                          per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, True, False)
        elif central:
            _advT_row(lr, lm0, lp0, lm1, lp1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, gd,
                      per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, False, True)
        else:
            _advT_row(lr, lm0, lp0, lm1, lp1, vr0, vm0, vp0, vr1, vm1, vp1, vr2, o, n2, gd,
                      per[2], sgn[2, 0], sgn[2, 1], c0, c1, c2, False, False)


@njit(inline="always", cache=True)
def _dflux(v, a, b, central):
    """``dF/dv`` of the face flux with lower value ``a`` and upper value ``b``: the value
    ``[v > 0] a + [v < 0] b`` (upwind) taken by a selection, one product fewer."""
    if central:
        return _dwl(v, central) * a + _dwr(v, central) * b
    return a if v > 0.0 else (b if v < 0.0 else 0.0)


@njit(inline="always", cache=True)
def _advV_lo(x, lx, vx, um, lm, vm, sm, gm, central):
    """The lower face's term of ``d/dv_i <lam, A(v) u>`` along one axis."""
    fl = 0.5 * (vx + vm)
    if gm:   # ghost face: v_f = v_i, only this cell's equation sees it
        return _dflux(fl, sm * x, x, central) * lx
    # interior face shared with the lower cell: d v_f / d v_i = 1/2
    return 0.5 * _dflux(fl, um, x, central) * (lx - lm)


@njit(inline="always", cache=True)
def _advV_hi(x, lx, vx, up, lp, vp, sp, gp, central):
    """The upper face's term of ``d/dv_i <lam, A(v) u>`` along one axis."""
    fh = 0.5 * (vx + vp)
    if gp:
        return -_dflux(fh, x, sp * x, central) * lx
    return 0.5 * _dflux(fh, x, up, central) * (lp - lx)


@njit(inline="always", cache=True)
def _advV_cell(x, lx, vx, um, lm, vm, sm, gm, up, lp, vp, sp, gp, central):
    """``d/dv_i <lam, A(v) u>`` from the two faces of one cell along one axis."""
    return (_advV_lo(x, lx, vx, um, lm, vm, sm, gm, central)
            + _advV_hi(x, lx, vx, up, lp, vp, sp, gp, central))


@njit(cache=True, error_model="numpy")
def _advV_row(ur, um0, up0, um1, up1, lr, lm0, lp0, lm1, lp1, vr0, vm0, vp0, vr1, vm1, vp1, vr2,
              o0, o1, o2, n2, gd, per2, sl, sh, c0, c1, c2, w0, w1, central, fb, carried,
              keep):
    """One row of :func:`advection_param_vjp` (``o0``, ``o1`` written when ``w0``, ``w1``).

    ``fb`` holds the axis-1 upper-face terms of the row before (``carried``: it is the
    row below this one, joined by an interior face), and receives this row's (``keep``
    or ``carried``)."""
    llvm_always_inline()
    s0, t0, e0, f0, s1, t1, e1, f1 = gd
    a20, s20, e20 = _lo(0, n2, per2, sl)
    b20, t20, f20 = _hi(0, n2, per2, sh)
    a21, s21, e21 = _lo(n2 - 1, n2, per2, sl)
    b21, t21, f21 = _hi(n2 - 1, n2, per2, sh)
    for j in (0, n2 - 1):
        x = ur[j]
        lx = lr[j]
        if w0:
            o0[j] = c0 * _advV_cell(x, lx, vr0[j], um0[j], lm0[j], vm0[j], s0, e0,
                                    up0[j], lp0[j], vp0[j], t0, f0, central)
        if w1:
            o1[j] = c1 * _advV_cell(x, lx, vr1[j], um1[j], lm1[j], vm1[j], s1, e1,
                                    up1[j], lp1[j], vp1[j], t1, f1, central)
    q0 = c2 * _advV_cell(ur[0], lr[0], vr2[0], ur[a20], lr[a20], vr2[a20], s20, e20,
                         ur[b20], lr[b20], vr2[b20], t20, f20, central)
    q1 = c2 * _advV_cell(ur[n2 - 1], lr[n2 - 1], vr2[n2 - 1], ur[a21], lr[a21], vr2[a21], s21,
                         e21, ur[b21], lr[b21], vr2[b21], t21, f21, central)
    # one pass per component: each loop is branch-free and vectorises (rows re-read from
    # cache).  Along the row each interior face's term is formed once, into o2[j] for the
    # face between cells j and j + 1 (cell j + 1's lower term, which is cell j's upper
    # one), then summed in place from the top: the same ``lo + hi`` as a cell's own two
    # faces, bit for bit, at half the face work.
    for j in range(n2 - 1):
        o2[j] = _advV_lo(ur[j + 1], lr[j + 1], vr2[j + 1], ur[j], lr[j], vr2[j], 1.0, False,
                         central)
    for j in range(n2 - 2, 0, -1):
        o2[j] = c2 * (o2[j - 1] + o2[j])
    o2[0] = q0
    o2[n2 - 1] = q1
    if w1:
        if carried:   # the lower face's term is the row below's upper one, bit for bit
            for j in range(1, n2 - 1):
                hi = _advV_hi(ur[j], lr[j], vr1[j], up1[j], lp1[j], vp1[j], t1, f1, central)
                o1[j] = c1 * (fb[j] + hi)
                fb[j] = hi
        else:
            for j in range(1, n2 - 1):
                lo = _advV_lo(ur[j], lr[j], vr1[j], um1[j], lm1[j], vm1[j], s1, e1, central)
                hi = _advV_hi(ur[j], lr[j], vr1[j], up1[j], lp1[j], vp1[j], t1, f1, central)
                o1[j] = c1 * (lo + hi)
                if keep:
                    fb[j] = hi
    if w0:
        for j in range(1, n2 - 1):
            o0[j] = c0 * _advV_cell(ur[j], lr[j], vr0[j], um0[j], lm0[j], vm0[j], s0, e0,
                                    up0[j], lp0[j], vp0[j], t0, f0, central)


#: chunks of rows of the velocity VJP (a chunk walks its rows in order)
VJP_CHUNKS = 64


@njit(parallel=True, cache=True)
def advection_param_vjp(u, lam, v0, v1, v2, g0, g1, g2, nact, c, per, sgn, central):
    """Velocity gradient of ``<lam, A(v) u>``, one output field per active axis.

    ``g0, g1, g2`` receive the components along the padded axes; only the last
    ``nact`` axes are written (for a 2-D grid ``g0`` is never touched and may be any
    array).  The upwind weights are differentiated as ``d max(v, 0)/dv = [v > 0]``.
    Each interior face's term is formed once for both its cells along the contiguous
    axis, and on 2-D grids also along the other (the rows of a chunk in order, the
    terms of a row's upper faces kept for the next): the same bits as a cell's own two
    faces, 0.87-0.92x the time at 2048^2-4096^2 (1.00 at 1024^2); on 3-D grids the
    carried rows measured 1.01-1.13x and are not used (RESULTS.md, forty-first session).
    """
    n0, n1, n2 = u.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    w0 = nact >= 3
    w1 = nact >= 2
    nrows = n0 * n1
    if w0:
        none = np.empty(0)
        # literal flags on purpose: a specialisation of the row helper without the
        # carried path (with run-time flags the 3-D VJP measured 1.01-1.05x)
        for r in prange(nrows):
            i0, i1, a0, s0, e0, b0, t0, f0, a1, s1, e1, b1, t1, f1 = \
                _neighbours(r, n0, n1, per, sgn)
            _advV_row(u[i0, i1], u[a0, i1], u[b0, i1], u[i0, a1], u[i0, b1],
                      lam[i0, i1], lam[a0, i1], lam[b0, i1], lam[i0, a1], lam[i0, b1],
                      v0[i0, i1], v0[a0, i1], v0[b0, i1], v1[i0, i1], v1[i0, a1], v1[i0, b1],
                      v2[i0, i1], g0[i0, i1], g1[i0, i1], g2[i0, i1], n2,
                      (s0, t0, e0, f0, s1, t1, e1, f1), per[2], sgn[2, 0], sgn[2, 1], c0, c1,
                      c2, w0, w1, central, none, False, False)
        return
    # 2-D and 1-D grids: each axis-1 face's term formed once, for both its rows
    nch = min(nrows, VJP_CHUNKS)
    for ch in prange(nch):
        rlo, rhi = _chunk(ch, nch, nrows)
        fb = np.empty(n2)
        for r in range(rlo, rhi):
            i0, i1, a0, s0, e0, b0, t0, f0, a1, s1, e1, b1, t1, f1 = \
                _neighbours(r, n0, n1, per, sgn)
            carried = r > rlo and i1 > 0   # the row before is the row below
            _advV_row(u[i0, i1], u[a0, i1], u[b0, i1], u[i0, a1], u[i0, b1],
                      lam[i0, i1], lam[a0, i1], lam[b0, i1], lam[i0, a1], lam[i0, b1],
                      v0[i0, i1], v0[a0, i1], v0[b0, i1], v1[i0, i1], v1[i0, a1], v1[i0, b1],
                      v2[i0, i1], g0[i0, i1], g1[i0, i1], g2[i0, i1], n2,
                      (s0, t0, e0, f0, s1, t1, e1, f1), per[2], sgn[2, 0], sgn[2, 1], c0, c1,
                      c2, w0, w1, central, fb, carried, np.bool_(True))
