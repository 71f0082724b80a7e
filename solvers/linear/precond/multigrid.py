"""Geometric multigrid for cell-centred grid operators (``scale * L`` or ``scale * D(kappa)``).

The hierarchy coarsens ``n -> n/2`` along the grid axes whose coupling ``1/h^2`` is at
least ``SEMI_COARSENING`` (one half) of the strongest, by agglomerating ``2^d`` cells
(cell-centred coarsening keeps the boundary faces of the fine grid; on square cells
every axis, on stretched ones the short axes alone until the cells are square), as long
as the level is larger than ``coarse_size`` cells (:func:`coarsening_plan`).  An odd
axis that is not periodic coarsens to ``(n - 1) / 2`` cells: the extra last fine cell is
interpolated from the last coarse cell and its ghost, and on a Dirichlet side each
level's ghost sign puts the boundary where the finest grid has it
(:func:`level_ghost_signs`), so the coarse problems keep the domain and 1025^2 takes
the iterations of 1024^2.
Coarse operators are rediscretised: spacing doubles (``c_a -> c_a / 4``),
boundary conditions are kept, and a coefficient field is restricted by the geometric mean
of the ``2^d`` children (the effective conductivity of a two-phase checkerboard;
arithmetic or harmonic means are available).  Or Galerkin (``coarse="galerkin"``):
``A_{l+1} = R A_l P`` with the cycle's own transfers, assembled once (CSR; up to 25
and 125 points per row in 2-D and 3-D) and smoothed by Gauss-Seidel, forward before and
backward after the coarse correction: lexicographic on small levels, multicolour on
large ones (rows stored by colour, a colour a threaded pass;
:mod:`~jitsolve.kernels.cpu.galerkin`).  The Galerkin operators see
through coefficient jumps that a rediscretised coarse grid averages away (a 32^3
checkerboard of 8^3 blocks, 1 : 1000: 40 CG iterations against 198), at the price of
their setup and storage; with linear transfers a rediscretised coarse correction
overshoots across a jump (largest eigenvalue of ``B A`` about ratio / 35), and a W-cycle,
which iterates it, turns indefinite.  ``coarse="auto"`` (the default) takes Galerkin
levels where ``kappa`` jumps between neighbours on the second coarse level
(:data:`JUMP_RATIO`, :data:`JUMP_LEVEL`: interfaces, blocks, wide channels) or where a
rediscretised first or second coarse level misstates the fine conductances between its
cells along a line or over a region (:func:`conductance_ratio`, :data:`MISMATCH_RATIO`,
:data:`MISMATCH_CELLS`: channels and barriers one or two cells wide, checkerboards of
single cells or 2 x 2 blocks -- what averaging ``kappa`` over 4^d cells hides; a
channel of 1e4 one cell wide at 128^2: 10 CG iterations instead of 112), rediscretised
levels otherwise.
``smoother="jacobi"`` replaces Gauss-Seidel by damped Jacobi (``omega = 2d / (2d + 1)``
by default), the smoother of choice where the sweeps must be data-parallel.  Transfers
are cell-centred linear interpolation and its transpose (full weighting); the default
smoothing is red-black Gauss-Seidel, red->black before the coarse correction and
black->red after, so the V- and W-cycles are symmetric and, for an SPD operator,
positive definite -- a valid CG preconditioner -- with Galerkin levels always, with
rediscretised ones for the V-cycle (measured to 1 : 1000 jumps) and for the W-cycle
while the coarse correction does not overshoot (no strong jumps).
``smoother="srbgs"`` sweeps red->black->red both before and after (its own adjoint: the
cycle stays symmetric); ``smoother="auto"`` (the default) takes it for a Laplacian on a
3-D grid (:func:`auto_smoother`: 7 CG iterations instead of 10, 0.82-0.94x the time)
and for a Diffusion operator in 2-D and 3-D (0.88-0.96x), ``"rbgs"`` otherwise.  The
finest level's coarse correction is over-corrected, ``u += w P e_c`` with ``w`` =
:data:`OVERCORRECTION` (1.15 in 2-D, 1.2 in 3-D; V-cycles on rediscretised levels; a
scalar on one term of the cycle, so it stays symmetric and positive definite): 8 CG
iterations instead of 9 for 2-D Poisson.  The coarsest level
is factorised: dense LU (the pseudo-inverse when it is singular, e.g. pure Neumann) up
to ``DENSE_COARSEST`` cells, a sparse LU above (SuperLU; a singular operator
with one cell pinned and the mean removed), for a coarsest level left large by an odd
periodic axis (up to ``MAX_COARSEST`` cells) or by ``coarse_size`` (PETSc's PCMG, too,
ends in a direct coarse solve).

Cost of one V(1,1)-cycle on a 2D grid: four passes over the finest level (two fused
red-black sweeps, each both colours in one pass; the residual formed inside the
restriction; prolongation; the same in 3D, where the restriction goes plane by plane)
times 4/3 for the coarse levels (8/7 in 3D).  ``Diffusion`` levels smooth from face
weights and a diagonal formed once per level (``diffusion_faces``: no harmonic means in the
sweeps; rows vectorise), the residual from ``kappa`` (the stencil kernel, plus one
pass).  Measured (1 thread, 1024^2) the stride-2 smoother loops are compute-bound at
about one apply per colour, so a cycle costs about 14 applies, not 5-6.  Levels of at
most ``_SERIAL_CELLS`` cells run serial kernels.

References: Trottenberg, Oosterlee, Schüller, *Multigrid* (2001), ch. 2, 4 and sec. 5.7
(sec. 2.7.2 and A.3.4 for Galerkin coarse operators; 2.1 and 4.1 for Jacobi smoothing);
Briggs, Henson, McCormick, *A Multigrid Tutorial*, 2nd ed. (2000); Wesseling (1992) ch. 5;
Blaheta, J. Comput. Appl. Math. 24 (1988) (over-correction of the coarse correction).
"""
import numba
import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ....kernels.cpu import blas as B
from ....kernels.cpu import galerkin as GK
from ....kernels.cpu import krylov as KR
from ....kernels.cpu import multigrid as K
from ....kernels.cpu import stencil as S
from ... import workspace

__all__ = ["GeometricMultigrid", "assemble", "assemble_diagonal", "prolongation_matrix",
           "coarsening_plan", "coarsening_refusal", "MAX_COARSEST",
           "DENSE_COARSEST", "SEMI_COARSENING", "restrict_coefficient", "level_ghost_signs",
           "JUMP_RATIO", "JUMP_LEVEL", "jump_ratio", "MISMATCH_RATIO", "MISMATCH_CELLS",
           "MISMATCH_LEVELS", "conductance_ratio"]


def restrict_coefficient(k, act, mode="geometric"):
    """Coarse coefficient field: mean of the ``2^d`` children (``act``: coarsened axes)."""
    f = [2 if a else 1 for a in act]
    # an odd coarsened axis: its extra last cell is left out of the means
    k = k[tuple(slice(0, n - n % 2) if a else slice(None) for n, a in zip(k.shape, act))]
    n0, n1, n2 = k.shape
    blocks = k.reshape(n0 // f[0], f[0], n1 // f[1], f[1], n2 // f[2], f[2])
    if mode == "arithmetic":
        out = blocks.mean(axis=(1, 3, 5))
    elif mode == "harmonic":
        out = 1.0 / (1.0 / blocks).mean(axis=(1, 3, 5))
    elif mode == "geometric":
        out = np.exp(np.log(blocks).mean(axis=(1, 3, 5)))
    else:
        raise ValueError(f"coarse_kappa: expected 'geometric', 'arithmetic' or 'harmonic', got {mode!r}")
    return np.ascontiguousarray(out)


#: ``coarse="auto"`` takes Galerkin coarse operators when ``kappa`` jumps by more than
#: this factor between two neighbouring cells (:func:`jump_ratio`), by cycle.  Measured on
#: checkerboards of blocks (2-D 64^2 to 1024^2, 3-D 16^3 to 128^3, blocks of 4 to 64
#: cells): a rediscretised hierarchy's coarse correction overshoots (the largest
#: eigenvalue of ``B A`` about ratio / 35 with V(1,1) cycles: 3.5 at 100, 25-31 at 1,000),
#: CG iterations grow with the ratio (18, 32, 66, 300, 1,200 at 10, 30, 100, 10^3, 10^4
#: against Galerkin's 13, 19, 29, 47, 61), and a W-cycle, which iterates that correction
#: on every level, is indefinite from about 100 (CG breaks down at once).  Galerkin levels
#: cost more per cycle and at setup, so the V-cycle switches where their time catches up
#: (2-D about 0.8x at 1,000, 2.6x at 100; 3-D 0.9x at 1,000, 5x at 30).
JUMP_RATIO = {"V": 300.0, "W": 30.0}

#: the level whose restricted coefficient :data:`JUMP_RATIO` is compared with, by cycle:
#: for V-cycles the second coarse level (``kappa`` averaged over 4^d cells), so that jumps
#: that persist on the coarse grids -- interfaces, blocks, channels, inclusions -- count
#: and cell-scale noise, which the averaging homogenises and which V-cycles handle
#: (``exp(N(0, 1))`` per cell: 19 iterations, neighbour ratio ~700 on the grid, 4 there),
#: does not; for W-cycles the grid itself (they break down on noise too: ``exp(N(0, 2))``)
JUMP_LEVEL = {"V": 2, "W": 0}


#: ``overcorrection=None``: the factor by which the finest level's coarse-grid correction
#: is scaled (``u += w P e_c``), by the grid's dimension, for V-cycles on rediscretised
#: levels.  With the cell-centred transfers that correction undershoots: for the 2-D
#: Laplacian (64^2, V(1,1)) the eigenvalues of ``B A`` lie in [0.63, 1.00], in [0.71,
#: 1.07] with ``w = 1.15`` (condition number 1.58 -> 1.51), and CG's residual falls 0.093
#: instead of 0.119 an iteration (0.140 against 0.155 in 3-D with ``w = 1.2``; measured
#: the same on Diffusion, shifted, stretched, periodic and odd grids and for every
#: smoother).  Only the finest level: a factor on every level compounds on the smooth
#: modes (1.15 on all: 12 iterations instead of 9).  Not for 1-D grids (their rate gets
#: worse), Galerkin levels (``R A P`` is the energy-optimal correction: any factor
#: slows them), W-cycles (no gain), or hierarchies that halve an odd axis with a Neumann
#: side (its coarse levels place that side approximately: 1025^2 all-Neumann 10 -> 11
#: iterations, 101^3 14 -> 16, where the even grids stay at 9 and 10).
OVERCORRECTION = {1: 1.0, 2: 1.15, 3: 1.2}


#: ``coarse="auto"``'s second test (:func:`conductance_ratio`): a cell of a rediscretised
#: coarse level is *mismatched* when the conductance of its faces there and that of the
#: fine faces between the blocks they join differ by more than this factor, either way.
#: Chosen from CG iterations to rtol 1e-8 (rediscretised against Galerkin levels; 2-D
#: 64^2 to 512^2 and 3-D 16^3 and 32^3, Dirichlet, Neumann and periodic sides): a
#: channel one cell wide of contrast ``r`` reads about ``sqrt(r) / 2`` (1e4: 49, 112 CG
#: iterations against 10 at 128^2; 1e6: 499, 383 against 10), a barrier of 1e-4 one cell
#: wide 34 (38 against 15), a checkerboard of cells ``(1 + r) / (2 sqrt(r))`` the other
#: way (1e6: 500, 84 against 10; 1e4: 50, 58 against 10).  Below it, kept rediscretised:
#: noise ``exp(N(0, 2))`` per cell (16-68 on a few cells from 64^2 to 1024^2; 31
#: against 24 at 128^2, Galerkin levels costing about 2.2x an iteration and 12-19
#: rediscretised iterations of setup), smooth fields and ``exp(N(0, 1))`` (at most 2.3),
#: and contrasts of 1e3: channels (15; 54 against 10 at 128^2, about even in time at
#: 512^2 with the setup counted) and checkerboards of cells (15.8; 36 against 10).  A
#: lower factor would take the checkerboard of 2 x 2 blocks of 1e3 too, 15.8 on the
#: second level, where Galerkin levels are slower (79 against 62 at 128^2).
MISMATCH_RATIO = 32.0

#: ... and Galerkin levels are taken when, on one of the first :data:`MISMATCH_LEVELS`
#: coarse levels, at least this fraction of its linear size ``N^(1/d)`` (``N`` cells on
#: ``d`` axes of more than one cell; at least 2 cells) is mismatched, counting a cell only
#: with a mismatched face neighbour: a channel or barrier across a quarter of the domain
#: or more, a mismatched region; not a short bar (1 x 8 fine cells of 1e4 at 128^2: 15
#: iterations against Galerkin's 12) nor isolated cells of noise (``exp(N(0, 2))`` at
#: 1024^2: 20 cells above 32, 8 of them paired, against a limit of 128; ``exp(N(0,
#: 2.5))`` there has 142 and takes Galerkin levels)
MISMATCH_CELLS = 0.25

#: the coarse levels :data:`MISMATCH_RATIO` is checked on: the first (channels one cell
#: wide, checkerboards of cells) and the second (two cells wide on a block boundary,
#: checkerboards of 2 x 2 blocks: resolved by the first level, averaged by the second).
#: The 2 x 2 (x 2) checkerboards from 1e4 read 50 and more there and take Galerkin levels:
#: in 3-D 59-141 CG iterations where rediscretised ones take 94 to over 3,000 (32^3,
#: every side), in 2-D with Dirichlet sides 550 against 2,600 at 1e6 (128^2), but with
#: Neumann or periodic sides more than rediscretised ones (99 against 33 at 64^2, 1e4):
#: neither coarse operator represents the islands, each a near-null mode of its own
MISMATCH_LEVELS = 2


def conductance_ratio(wf, cf, wc, cc, act, shape_c):
    """Per cell of a rediscretised coarse level (``shape_c``): the sum over its faces of
    the mean conductivity of the fine faces between the two blocks the face joins,
    divided by the sum of its faces' conductivities on the coarse level (1 where a cell
    has no face).

    ``wf``, ``wc``: the face weights of
    :func:`~jitsolve.kernels.cpu.multigrid.diffusion_faces` on the fine and the coarse
    level, as ``(3,) + shape`` arrays (``c_a harm(k_i, k_j)``; 0 at a non-periodic
    boundary); ``cf``, ``cc``: the levels' scales ``1 / h_a^2``
    (conductivities are ``w / c``: 1 for ``kappa = 1`` on both); ``act``: the axes
    halved from the fine to the coarse level.

    This is the energy comparison of the coarse operator ``A_c`` with the Galerkin
    ``R A P`` on random coarse vectors, in expectation: for independent entries ``v``,
    the expected energy of ``v`` across a coarse face is proportional to its conductance,
    and that of ``P v`` across the fine faces between the two blocks to theirs (all with
    one weight: linear interpolation puts half the coarse difference on each such fine
    face, up to its spread along the interface); the faces inside a block are left out
    (the interpolant's energy there is not the coarse operator's to represent: inside an
    island of high ``kappa`` it is large, and ``R A P`` too stiff).  Computed exactly, not
    sampled: no seed, and about one pass over the fine faces.  A channel of high ``kappa``
    one cell wide reads ``sqrt(r) / 2`` along it (``r / 2`` on the fine faces, the
    geometric mean ``sqrt(r)`` of a coarse cell half in it); a checkerboard of single
    cells ``2 sqrt(r) / (1 + r)`` (harmonic face means ``2 r / (1 + r)`` on the fine
    level, a uniform ``sqrt(r)`` on the coarse one); an isolated cell and smooth fields
    about 1.
    References: Trottenberg, Oosterlee, Schüller, *Multigrid* (2001), sec. 2.7.2
    (Galerkin coarse operators); Briggs, Henson, McCormick, *A Multigrid Tutorial*, 2nd
    ed. (2000), ch. 5 (``R A P``: the coarse correction that is optimal in energy);
    Alcouffe, Brandt, Dendy, Painter, SIAM J. Sci. Stat. Comput. 2 (1981) (strongly
    discontinuous coefficients)."""
    num = np.zeros(shape_c)
    den = np.zeros(shape_c)
    for a in range(3):
        m = shape_c[a]
        if cf[a] == 0.0 or m < 2:
            continue
        g = wf[a]
        if act[a]:                  # the faces between blocks: lower cell 2I + 1
            g = g[_axis_slice(a, slice(1, 2 * m, 2))]
        pairs = 0
        for b in range(3):          # the 2 fine faces per coarse face along axis b
            if b != a and act[b]:
                g = g[_axis_slice(b, slice(0, 2 * shape_c[b] - 1, 2))] + \
                    g[_axis_slice(b, slice(1, 2 * shape_c[b], 2))]
                pairs += 1
        if pairs:
            g *= 0.5 ** pairs / cf[a]
        else:
            g = g / cf[a]
        w = wc[a] / cc[a]
        # the coarse level's faces only: the last one along a non-periodic axis is its
        # boundary (on an odd fine axis a fine face to the extra cell is left there)
        last = _axis_slice(a, m - 1)
        g[last] = np.where(w[last] > 0.0, g[last], 0.0)
        # face I | I + 1 (stored at I) counts for both cells; the wrap-around one at the
        # last cell for the first
        lo, hi = _axis_slice(a, slice(0, m - 1)), _axis_slice(a, slice(1, m))
        num += g
        num[hi] += g[lo]
        num[_axis_slice(a, 0)] += g[last]
        den += w
        den[hi] += w[lo]
        den[_axis_slice(a, 0)] += w[last]
    out = np.ones(shape_c)
    np.divide(num, den, out=out, where=den > 0.0)
    return out


def _axis_slice(a, sl):
    """The index ``sl`` along axis ``a`` of a 3-D array, everything along the others."""
    return tuple(sl if b == a else slice(None) for b in range(3))


def _level_faces(k, c, per, sgn):
    """The face weights and diagonal of ``D(k)`` on a level
    (:func:`~jitsolve.kernels.cpu.multigrid.diffusion_faces`)."""
    n = int(k.size)
    out = (np.empty((3, n + k.shape[2])), np.empty(n))
    K.diffusion_faces(k, c, per, sgn, *out)
    return out


def _connected(bad):
    """The number of ``True`` cells of ``bad`` with a ``True`` face neighbour (a channel, a
    barrier, a region count; isolated cells -- noise -- do not)."""
    pair = np.zeros_like(bad)
    for a in range(bad.ndim):
        if bad.shape[a] < 2:
            continue
        lo = tuple(slice(0, -1) if b == a else slice(None) for b in range(bad.ndim))
        hi = tuple(slice(1, None) if b == a else slice(None) for b in range(bad.ndim))
        both = bad[lo] & bad[hi]
        pair[lo] |= both
        pair[hi] |= both
    return int(np.count_nonzero(pair))


def jump_ratio(kappa, per=(0, 0, 0)):
    """The largest ratio ``max(k_i / k_j, k_j / k_i)`` between face neighbours of a
    coefficient field (a padded 3-D array; the wrap-around faces of periodic axes
    included); 1 for a field of one cell."""
    k = np.asarray(kappa, dtype=np.float64)
    r = 1.0
    for a in range(k.ndim):
        if k.shape[a] < 2:
            continue
        def part(sl):
            return tuple(sl if b == a else slice(None) for b in range(k.ndim))
        q = k[part(slice(0, -1))] / k[part(slice(1, None))]
        r = max(r, float(q.max()), 1.0 / float(q.min()))
        if per[a]:                  # the wrap-around faces
            q = k[part(slice(0, 1))] / k[part(slice(-1, None))]
            r = max(r, float(q.max()), 1.0 / float(q.min()))
    return r


def _face_terms(shape, c, per, sgn, kappa):
    """Per face direction (axis, side) of ``L`` / ``D(kappa)`` on a padded 3-D shape:
    ``(idx, nb, w, inner, dg)`` -- cell and neighbour indices, face weights, the faces
    with a real neighbour, and the direction's share of the diagonal (``-w``, or the
    ghost's ``w (s - 1)`` at a non-periodic boundary)."""
    n = int(np.prod(shape))
    idx = np.arange(n).reshape(shape)
    k = np.ones(shape) if kappa is None else kappa
    for a in range(3):
        if c[a] == 0.0:
            continue
        for side, shift in ((0, 1), (1, -1)):
            nb = np.roll(idx, shift, axis=a)
            kn = np.roll(k, shift, axis=a)
            w = np.full(shape, c[a]) if kappa is None else c[a] * 2 * k * kn / (k + kn)
            ghost = np.zeros(shape, dtype=bool)
            if not per[a]:
                sl = [slice(None)] * 3
                sl[a] = 0 if side == 0 else shape[a] - 1
                ghost[tuple(sl)] = True
            yield idx, nb, w, ~ghost, np.where(ghost, c[a] * k * (sgn[a, side] - 1.0), -w)


def assemble(shape, c, per, sgn, scale, kappa=None):
    """CSR matrix of ``scale * L`` (``kappa=None``) or ``scale * D(kappa)`` on a padded 3-D
    shape: one threaded pass (:func:`~jitsolve.kernels.cpu.galerkin.assemble_csr`), or
    NumPy's face-by-face assembly where a periodic axis of one or two cells makes a cell
    its own or a twice-counted neighbour (the same values)."""
    shape = tuple(int(s) for s in shape)
    if any(p and ci != 0.0 and m <= 2 for p, ci, m in zip(per, c, shape)):
        return assemble_faces(shape, c, per, sgn, scale, kappa)
    per = np.ascontiguousarray(per, dtype=np.int64)
    c = np.ascontiguousarray(c, dtype=np.float64)
    # a row: the diagonal and each real neighbour
    length = np.ones(shape, dtype=np.int64)
    for a in range(3):
        if c[a] == 0.0:
            continue
        real = np.full(shape[a], 2, dtype=np.int64)
        if not per[a]:
            real[0] -= 1
            real[-1] -= 1
        length += real.reshape([-1 if b == a else 1 for b in range(3)])
    indptr = np.zeros(length.size + 1, dtype=np.int64)
    np.cumsum(length.ravel(), out=indptr[1:])
    nnz = int(indptr[-1])
    idx_type = np.int32 if nnz < 2**31 else np.int64
    indices = np.empty(nnz, dtype=idx_type)
    data = np.empty(nnz)
    k = (np.ones(shape) if kappa is None
         else np.ascontiguousarray(kappa, dtype=np.float64).reshape(shape))
    GK.assemble_csr(k, c, per, np.ascontiguousarray(sgn, dtype=np.float64), float(scale),
                    indptr, indices, data)
    n = length.size
    m = sp.csr_matrix((data, indices, indptr.astype(idx_type)), shape=(n, n))
    if np.any(per[c != 0.0]):
        m.has_sorted_indices = False
        m.sort_indices()
    return m


def assemble_faces(shape, c, per, sgn, scale, kappa=None):
    """:func:`assemble` face direction by face direction in NumPy (any shape)."""
    n = int(np.prod(shape))
    rows, cols, vals = [], [], []
    diag = np.zeros(shape)
    for idx, nb, w, inner, dg in _face_terms(shape, c, per, sgn, kappa):
        diag += dg
        rows.append(idx[inner])
        cols.append(nb[inner])
        vals.append(w[inner])
    idx = np.arange(n)
    rows.append(idx)
    cols.append(idx)
    vals.append(diag.ravel())
    m = sp.coo_matrix((np.concatenate(vals) * scale, (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n, n)).tocsr()
    m.sum_duplicates()
    return m


def assemble_diagonal(shape, c, per, sgn, scale, kappa=None):
    """The diagonal of :func:`assemble`'s matrix, without assembling it (shape ``shape``;
    a periodic axis of one or two cells makes a cell its own neighbour)."""
    diag = np.zeros(shape)
    for idx, nb, w, inner, dg in _face_terms(shape, c, per, sgn, kappa):
        diag += dg + np.where(inner & (nb == idx), w, 0.0)
    return diag * scale


#: whether a rediscretised Laplacian level forms its residual inside the restriction
#: (:func:`~jitsolve.kernels.cpu.multigrid.restrict_residual_laplacian`) or in a pass of
#: its own (kept for A/B measurements; the same bits either way)
FUSED_RESTRICTION = True

#: whether a 3-D level restricts plane by plane (:func:`~jitsolve.kernels.cpu.multigrid.
#: restrict_planes`, the residual of a rediscretised Laplacian formed inside) or with
#: :func:`~jitsolve.kernels.cpu.multigrid.restrict_fw` after a residual pass (kept for A/B
#: measurements; equal to rounding)
PLANE_RESTRICTION = True

# levels with at most this many cells run the serial compilations of the kernels: a
# parallel region costs more than the work on them (and on a shared machine a parallel
# region can wait for a descheduled thread)
_SERIAL_CELLS = 1 << 15

# the sweeps' ``rowdot`` when no row dots are wanted
_NO_DOTS = np.empty(0)


# a Galerkin level with more stored entries than this is smoothed and its residual formed
# by the threaded multicolour kernels (its rows stored by colour), whatever its cell
# count: a 3-D Galerkin row has up to 125 entries
_SERIAL_NNZ = 1 << 18


#: the coarsest level is factorised densely (LU; the pseudo-inverse when it is singular)
#: at or below this many cells, and by a sparse LU above: a dense solve costs n^2 per
#: cycle (0.05 ms at 256 cells, 0.85 ms at 1,024, 19 ms at 4,096), SuperLU's 0.009,
#: 0.032 and 0.14 ms (2-D Laplacians, one call, measured 2026-12-05).  Not above 64:
#: LAPACK's dense LU of 192 cells and more runs on OpenBLAS's threads, which then spin
#: for ~0.1 s on the cores the multigrid's Numba threads need -- a CG + Multigrid solve
#: at 1024^2 right after such a setup took 136-147 ms instead of 50-53 (SuperLU's
#: factorisation leaves no threads behind)
DENSE_COARSEST = 64

#: the most cells the coarsest level may have (beyond ``coarse_size``), by the number of
#: grid axes: its sparse factor fills as ~n log n in 2-D and ~n^(4/3) in 3-D
#: (measured: 2-D 125^2 27 ms to factor and 0.6 ms a solve, 250^2 0.2 s and 4.5 ms;
#: 3-D 25^3 0.3 s and 4.6 ms, 32^3 1.8 s and 15 ms, 50^3 35 s and 113 ms)
MAX_COARSEST = {1: 1 << 22, 2: 1 << 18, 3: 1 << 15}


#: an axis is coarsened when its coupling ``c_a`` (``1 / h_a^2``) is at least this
#: fraction of the strongest: on a grid of stretched cells the strongly coupled axes are
#: coarsened alone (semi-coarsening) until the couplings agree to this ratio, then all
SEMI_COARSENING = 0.5


def coarsening_plan(shape, c, coarse_size, per=(0, 0, 0)):
    """The hierarchy's levels as ``(shape, act)`` pairs, ``act[a] = 1`` for the axes
    halved from that level to the next (``c``: the couplings ``1 / h_a^2``, 0 for padded
    axes; ``per``: the periodic axes).  An axis is halved when its coupling is at least
    ``SEMI_COARSENING`` times the strongest (the coupling then falls by 4), while every
    periodic axis has an even number of cells (a level is smoothed, and an odd periodic
    axis has no red-black ordering: the cycle would lose its symmetry) and the level has
    more than ``coarse_size`` cells; an odd axis that is not periodic (at least 3 cells)
    goes to ``(n - 1) / 2``.  The coarsest level's ``act`` names the axes that would have
    been halved next.

    Semi-coarsening: point smoothers damp the oscillations only along strongly coupled
    axes, so those alone are coarsened until the cells are square (Trottenberg et al.,
    *Multigrid*, sec. 5.1; hypre's PFMG coarsens the same way)."""
    cur = tuple(int(s) for s in shape)
    cc = np.abs(np.asarray(c, dtype=np.float64))
    plan = []
    while True:
        act = np.zeros(3, dtype=np.int64)
        if cc.max() > 0.0:
            act = ((cc != 0.0) & (cc >= SEMI_COARSENING * cc.max())).astype(np.int64)
        plan.append((cur, act))
        can = (act.any() and all((s >= 2 and s % 2 == 0) or (not p and s >= 3)
                                 for s, a, p in zip(cur, act, per) if a)
               and all(s % 2 == 0 for s, p, ci in zip(cur, per, cc) if p and ci != 0.0))
        if int(np.prod(cur)) <= coarse_size or not can:
            return plan
        cur = tuple(s // 2 if a else s for s, a in zip(cur, act))
        cc = np.where(act == 1, cc / 4.0, cc)


def coarsening_refusal(shape, c, coarse_size, per=(0, 0, 0)):
    """Why the hierarchy of ``shape`` (padded to three axes; ``c`` the couplings, 0 on
    padded axes; ``per`` the periodic axes) is refused, or None: its coarsest level
    (:func:`coarsening_plan`) keeps more than ``max(coarse_size, MAX_COARSEST[d])`` cells
    (``d`` grid axes), too many for the sparse factorisation there.  Shapes and axis
    numbers are given without the leading padded axes (a 2-D grid's one)."""
    plan = coarsening_plan(shape, c, coarse_size, per)
    shapes = [shp for shp, _ in plan]
    cur, act = plan[-1]
    live = [1 if ci != 0.0 else 0 for ci in c]
    d = max(1, sum(live))
    limit = max(coarse_size, MAX_COARSEST[d])
    if int(np.prod(cur)) <= limit:
        return None
    pad = 0
    while pad < len(live) - 1 and not live[pad]:
        pad += 1
    odd = [a - pad for a, n in enumerate(cur) if n % 2 and per[a] and live[a]]
    return (f"the grid of {shapes[0][pad:]} cells coarsens only to {cur[pad:]} "
            f"({int(np.prod(cur))} cells after {len(shapes) - 1} halvings: an odd number of "
            f"cells along periodic axis {', '.join(map(str, odd))}), too many for the "
            f"coarsest level's sparse factorisation (at most {MAX_COARSEST[d]} cells on a "
            f"{d}-D grid, or coarse_size); use periodic cell counts of the form m 2^k with "
            f"a smaller m, or js.AMG()")


def level_ghost_signs(sgn, per, n0, m, H):
    """Ghost signs of a level of ``m`` cells of ``H`` fine cells each (per axis) below a
    finest level of ``n0`` cells.

    An odd axis coarsens to ``(n - 1) / 2`` cells, so the level ends short of the
    domain's far end; a Dirichlet side there moves its ghost so that the linear
    extrapolation from the last cell vanishes at the true boundary: ``d`` beyond the last
    cell's centre, ``s = 1 - H / d`` (-1 when ``d = H / 2``, the fine grid's case; 0 when
    ``d = H``: the ghost is the boundary).  Neumann and periodic sides are unchanged."""
    out = np.array(sgn, dtype=np.float64)
    for a in range(3):
        if per[a] or out[a, 1] >= 0.0 or m[a] * H[a] == n0[a]:
            continue
        d = n0[a] - (m[a] - 0.5) * H[a]           # last centre to the boundary, d > H / 2
        out[a, 1] = 1.0 - H[a] / d
    return out


def _coloured(A):
    """``A`` with its rows grouped by a greedy colouring of its graph
    (:func:`~jitsolve.kernels.cpu.galerkin.greedy_colouring`; within a colour in
    increasing order), and ``(dinv, order, cptr)``: row ``t`` of the returned matrix is
    row ``order[t]`` of ``A``, ``dinv[t]`` its inverse diagonal, colour ``c`` the rows
    ``cptr[c]:cptr[c + 1]``.  The colour's rows are contiguous in memory, so a sweep of
    :func:`~jitsolve.kernels.cpu.galerkin.csr_gauss_seidel_colours` streams them."""
    colour, nc = GK.greedy_colouring(A.indptr, A.indices)
    order = np.argsort(colour, kind="stable").astype(np.int64)
    cptr = np.zeros(nc + 1, dtype=np.int64)
    np.cumsum(np.bincount(colour, minlength=nc), out=cptr[1:])
    dinv = 1.0 / A.diagonal()[order]
    Ac = A[order]
    Ac.sort_indices()
    return Ac, (dinv, order, cptr)


def _pinv_constants(A):
    """``A^+`` of a dense symmetric matrix whose null space is the constants:
    ``Q (A + a 1 1^T / n)^{-1} Q`` with ``Q = I - 1 1^T / n`` (``a`` the mean diagonal
    magnitude), exact whatever the spectrum.  (``numpy.linalg.pinv``'s cut-off, 1e-15 of
    the largest singular value, kept the rounding-level eigenvalue of a Galerkin level --
    5e-13 against 425 on a Neumann / periodic grid with stretched cells -- and inverted it:
    a preconditioner with entries of 1e10 and negative eigenvalues.)"""
    n = A.shape[0]
    a = float(np.abs(np.diag(A)).mean()) or 1.0
    inv = np.linalg.inv(A + a / n)
    Q = np.eye(n) - 1.0 / n
    out = Q @ inv @ Q
    return 0.5 * (out + out.T)


class _Level:
    __slots__ = ("shape", "c", "cs", "ck", "kappa", "u", "f", "r", "act", "serial", "A",
                 "wdinv", "faces", "sgn", "colours", "u_own", "f_own")

    def __init__(self):
        self.u_own = self.f_own = None


def prolongation_matrix(shape_coarse, act, per, sgn, shape_fine=None):
    """``P`` of :func:`~jitsolve.kernels.cpu.multigrid.prolong_add` as a CSR matrix
    (fine cells by coarse cells, C order): the Kronecker product of its one-axis taps
    (``shape_fine``: by default twice the coarse cells along the coarsened axes), formed
    in one threaded pass (:func:`~jitsolve.kernels.cpu.galerkin.prolongation_csr`; a tap
    pair that names one coarse cell twice merged first, zero weights dropped)."""
    if shape_fine is None:
        shape_fine = [2 * m if a else m for m, a in zip(shape_coarse, act)]
    cols, wts = [], []
    for a in range(3):
        I, wI, N, wN = K.interpolation_taps(int(shape_coarse[a]), int(shape_fine[a]),
                                            int(act[a]), int(per[a]),
                                            float(sgn[a, 0]), float(sgn[a, 1]))
        same = I == N
        wI = np.where(same, wI + wN, wI)
        wN = np.where(same, 0.0, wN)
        if np.all(wN == 0.0):       # an axis not coarsened: one tap
            cols.append(I[:, None])
            wts.append(wI[:, None])
        else:                       # the lower coarse index first: sorted rows
            lo = N < I
            cols.append(np.stack([np.where(lo, N, I), np.where(lo, I, N)], axis=1))
            wts.append(np.stack([np.where(lo, wN, wI), np.where(lo, wI, wN)], axis=1))
    m1, m2 = int(shape_coarse[1]), int(shape_coarse[2])
    nf = int(np.prod(shape_fine))
    nc = int(np.prod(shape_coarse))
    if any(ci.min() < 0 or ci.max() >= m for ci, m in zip(cols, shape_coarse)):
        raise ValueError(f"prolongation_matrix: taps outside the {tuple(shape_coarse)} coarse "
                         f"cells (shape_fine={tuple(shape_fine)}, act={tuple(act)})")
    # every combination of one tap per axis; the taps of one axis name distinct cells, in
    # increasing order, so a row's columns are distinct and sorted
    taps = int(np.prod([ci.shape[1] for ci in cols]))
    idx_type = np.int32 if max(nf * taps, nc) < 2**31 else np.int64
    indices = np.empty(nf * taps, dtype=idx_type)
    data = np.empty(nf * taps)
    GK.prolongation_csr(*(np.ascontiguousarray(x) for pair in zip(cols, wts) for x in pair),
                        m1, m2, indices, data)
    P = sp.csr_matrix((data, indices, np.arange(0, taps * nf + 1, taps, dtype=idx_type)),
                      shape=(nf, nc))
    P.eliminate_zeros()
    P.has_sorted_indices = True     # by construction (taps ascending along every axis)
    return P


def _axis_factors(shape_coarse, shape_fine, act, per, sgn):
    """``P`` of :func:`prolongation_matrix` as a product of one-axis interpolations,
    ``P = F_0 F_1 F_2`` over the coarsened axes: ``F_a`` interpolates along axis ``a``
    alone, from coarse cells along axes ``<= a`` and fine ones after, so that
    ``R A P = F_2^T F_1^T F_0^T A F_0 F_1 F_2 / 2^d`` widens the stencil an axis at a
    time (each factor has two entries a row)."""
    out = []
    for a in range(3):
        if not act[a]:
            continue
        sc = [shape_coarse[b] if b <= a else shape_fine[b] for b in range(3)]
        sf = [shape_coarse[b] if b < a else shape_fine[b] for b in range(3)]
        one = np.zeros(3, dtype=np.int64)
        one[a] = 1
        out.append(prolongation_matrix(sc, one, per, sgn, sf))
    return out


def auto_smoother(shape, c, kappa):
    """The smoother of ``smoother="auto"``: ``"srbgs"`` for a ``Diffusion`` operator on a
    grid with at least two axes of more than one cell and for a Laplacian (shifted or
    not) on a grid with three, ``"rbgs"`` otherwise.

    Measured (Intel Sapphire Rapids host, 2 threads, CG to rtol 1e-8, paired runs): on
    the 3-D Laplacian the symmetric sweep takes 7 CG iterations instead of 10 (two-grid
    contraction with the 1.2 over-correction about halved) for half a sweep more a
    level: 0.86-0.90x the time from 32^3 to 256 x 128^2, 0.82-0.94x with a shift (``I -
    dt L``), 0.87-0.91x for W-cycles and Neumann sides.  In 2-D it saves one iteration
    of eight (1.00-1.03x the time with the vector sweeps of the thirty-fifth session).
    On ``Diffusion`` it saves two or three iterations of eleven to thirteen, which with
    the vector sweeps pays: 0.88-0.93x from 1024^2 to 2048^2 and 64^3 to 128^3, 0.90x on
    a 512^2 checkerboard of 1 : 1000 jumps (39 against 47 iterations), 0.96x on a 64^3
    one, 0.93-0.95x with a shift; 1.02x on a 32^3 checkerboard (before the vector
    sweeps: 0.98-1.05x, so ``"rbgs"`` was kept)."""
    live = sum(1 for n, ci in zip(shape, c) if n > 1 and ci != 0.0)
    return "srbgs" if live == 3 or (kappa is not None and live >= 2) else "rbgs"


class GeometricMultigrid:
    """Multigrid preconditioner ``(r, out) -> out`` for ``scale * L`` or ``scale * D(kappa)``.

    Parameters
    ----------
    shape : tuple of 3 ints
        Padded 3-D shape of the grid (a 2-D grid is ``(1, n0, n1)``).
    c : array (3,)
        ``1/h_a^2`` per padded axis (0 on padded axes).
    per, sgn : arrays (3,), (3, 2)
        Periodic flags and ghost signs, as for the stencil kernels.
    scale : float
        Overall factor of the operator (e.g. -1 for ``-L``).
    kappa : array of ``shape``, optional
        Coefficient field (``D(kappa)``); None for the Laplacian.
    cycle : {"V", "W"}
    presmooth, postsmooth : int
        Red-black Gauss-Seidel sweeps before and after the coarse correction.
    coarse_size : int
        Stop coarsening at or below this many cells.
    coarse_kappa : {"geometric", "arithmetic", "harmonic"}
    coarse : {"auto", "rediscretised", "galerkin"}
        Coarse operators rediscretised on the coarse grid, or ``R A P``; ``"auto"``:
        ``R A P`` when :func:`jump_ratio` of the coefficient on level
        ``JUMP_LEVEL[cycle]`` exceeds ``JUMP_RATIO[cycle]``, or else when on one of the
        first ``MISMATCH_LEVELS`` coarse levels at least ``MISMATCH_CELLS N^(1/d)``
        neighbouring cells (``N`` cells on ``d`` axes) have face conductances that differ
        from the fine ones between their blocks by more than ``MISMATCH_RATIO``
        (:func:`conductance_ratio`: the energies of ``A_c`` and ``R A P`` on random
        vectors, in expectation).  ``self.jump`` is that ratio (read on the grid itself
        when ``"galerkin"`` is asked for: no coefficient is restricted then; 1 for the
        Laplacian); ``self.mismatch`` the largest conductance factor, either way, and
        ``self.mismatched`` the mismatched cells and their limit per level checked
        (1 and ``()`` where the second test did not run).
    smoother : {"auto", "rbgs", "srbgs", "jacobi"}
        Red-black Gauss-Seidel, symmetric red-black Gauss-Seidel (red-black-red before
        and after; on Galerkin levels, for both, lexicographic Gauss-Seidel, multicolour
        on levels of more than ``_SERIAL_NNZ`` entries) or damped Jacobi; ``"auto"``:
        :func:`auto_smoother`.
    omega : float, optional
        Jacobi damping; ``2d / (2d + 1)`` for ``d`` coarsened axes by default.
    dtype : working dtype of the vectors.
    shift : float
        ``sigma`` of the operator ``sigma * I + scale * A`` on every level (implicit time
        steps, ``I - dt L``): kept unscaled on the coarse levels (a mass term in the
        finite-difference scaling), added to the smoother's diagonal and to the
        residual.
    overcorrection : float in (0, 2), optional
        Factor of the finest level's coarse-grid correction (the cycle stays symmetric
        and positive definite for any positive factor); ``None``:
        ``OVERCORRECTION[d]`` for V-cycles on rediscretised levels, 1 otherwise.
    """

    def __init__(self, shape, c, per, sgn, scale, kappa=None, *, cycle="V", presmooth=1,
                 postsmooth=1, coarse_size=64, coarse_kappa="geometric", coarse="auto",
                 smoother="auto", omega=None, dtype=np.float64, shift=0.0, overcorrection=None):
        if cycle not in ("V", "W"):
            raise ValueError(f"cycle: expected 'V' or 'W', got {cycle!r}")
        if coarse not in ("auto", "rediscretised", "galerkin"):
            raise ValueError(f"coarse: expected 'auto', 'rediscretised' or 'galerkin', "
                             f"got {coarse!r}")
        if smoother not in ("auto", "rbgs", "srbgs", "jacobi"):
            raise ValueError(f"smoother: expected 'auto', 'rbgs', 'srbgs' or 'jacobi', "
                             f"got {smoother!r}")
        if smoother == "auto":
            smoother = auto_smoother(shape, c, kappa)
        self.smoother = smoother
        self.omega = None
        self.gamma = 1 if cycle == "V" else 2
        self.pre, self.post = int(presmooth), int(postsmooth)
        self.scale = float(scale)
        self.shift = float(shift)
        self.dtype = np.dtype(dtype)
        self.per = np.ascontiguousarray(per, dtype=np.int64)
        self.sgn = np.ascontiguousarray(sgn, dtype=np.float64)
        # the grid's axes (``live``); ``lev.act``: the axes halved below level ``lev``
        self.live = np.array([1 if ci != 0.0 else 0 for ci in c], dtype=np.int64)
        shape = tuple(int(s) for s in shape)
        c = np.asarray(c, dtype=np.float64).copy()
        k = None if kappa is None else np.ascontiguousarray(kappa, dtype=np.float64).reshape(shape)
        self.levels = []
        self._work = []             # the level vectors' memory, from the workspace
        self._rowdot = None         # the finest level's row dots (apply_dot)
        refusal = coarsening_refusal(shape, c, coarse_size, self.per)
        if refusal is not None:
            raise ValueError(refusal)
        top_shape = shape
        plan = coarsening_plan(shape, c, coarse_size, self.per)
        # the coefficient on the first levels (restricted once, kept for the levels)
        ks = [k]
        if k is not None and coarse != "galerkin":
            for _, act in plan[:max(JUMP_LEVEL["V"], MISMATCH_LEVELS)]:
                if len(ks) < len(plan):
                    ks.append(restrict_coefficient(ks[-1], act, coarse_kappa))
        self.jump = 1.0 if k is None else jump_ratio(ks[min(JUMP_LEVEL[cycle], len(ks) - 1)],
                                                     self.per)
        self.mismatch, self.mismatched = 1.0, ()
        faces = {}                  # D(kappa) face weights by level, formed by the check
        if coarse == "auto":
            if k is None or self.jump > JUMP_RATIO[cycle]:
                coarse = "galerkin" if k is not None else "rediscretised"
            else:
                coarse = self._check_mismatch(plan, ks, c, top_shape, faces)
        self.galerkin = coarse == "galerkin"
        H = np.ones(3, dtype=np.int64)      # a level's spacing, in finest cells
        for i, (shape, act) in enumerate(plan):
            if i > 0:
                up = self.levels[-1].act
                H = H << up
                c = np.where(up == 1, c / 4.0, c)
                if k is not None and not self.galerkin:
                    k = ks[i] if i < len(ks) else restrict_coefficient(k, up, coarse_kappa)
            lev = _Level()
            lev.shape, lev.c, lev.kappa, lev.act = shape, c, k, act
            lev.sgn = level_ghost_signs(self.sgn, self.per, top_shape, shape, H)
            lev.cs = c * self.scale
            # the Laplacian kernels' scales, with the shift of the diagonal as a fourth entry
            lev.ck = c if self.shift == 0.0 else np.append(c, self.shift / self.scale)
            # the finest level works in the caller's r and out where they fit (__call__):
            # its own two vectors are taken on first need only
            lev.u, lev.f = (None, None) if i == 0 else (self._vector(shape) for _ in range(2))
            lev.r = None            # the residual array, taken when a level first needs it
            lev.serial = int(np.prod(shape)) <= _SERIAL_CELLS
            lev.A = lev.wdinv = lev.faces = lev.colours = None
            self.levels.append(lev)
        if self.galerkin and len(self.levels) > 1:
            top = self.levels[0]
            A = self._assemble(top)
            for up, lev in zip(self.levels, self.levels[1:]):
                w = 1.0 / (1 << int(up.act.sum()))   # R = P^T / 2^d (restrict_fw)
                if up is top and int(up.act.sum()) == 3:
                    # the 7-point operator of a 3-D grid: an axis at a time (2.1x faster
                    # at 128^3; on wider stencils and in 2-D the one product is as fast)
                    for Q in _axis_factors(lev.shape, up.shape, up.act, self.per, lev.sgn):
                        A = Q.T.tocsr() @ (A @ Q)
                    A = A * w
                else:
                    # P^T (A P): 2.5x faster than (P^T A) P through SciPy (128^3)
                    P = prolongation_matrix(lev.shape, up.act, self.per, lev.sgn, up.shape)
                    A = (P.T.tocsr() @ (A @ P)) * w
                A.sum_duplicates()
                lev.A = A
            if smoother != "jacobi":    # large levels: rows stored by colour, threaded
                for lev in self.levels[1:-1]:
                    if lev.A.nnz > _SERIAL_NNZ:
                        lev.serial = False
                        lev.A, lev.colours = _coloured(lev.A)
        if smoother != "jacobi":    # D(kappa) levels: face weights and diagonal, once
            for i, lev in enumerate(self.levels[:-1]):
                if lev.kappa is not None and lev.A is None:
                    # (those of the first levels formed already by _check_mismatch)
                    lev.faces = (faces.pop(i, None)
                                 or _level_faces(lev.kappa, lev.c, self.per, lev.sgn))
                    lev.faces[1][:] += self.shift / self.scale     # the shift's diagonal
        if smoother == "jacobi":
            d = int(self.live.sum())
            om = 2.0 * d / (2.0 * d + 1.0) if omega is None else float(omega)
            if not 0.0 < om < 2.0:
                raise ValueError(f"omega: expected a damping in (0, 2), got {omega!r}")
            self.omega = om
            for lev in self.levels[:-1]:
                d = (lev.A.diagonal().reshape(lev.shape) if lev.A is not None else
                     assemble_diagonal(lev.shape, lev.c, self.per, lev.sgn, self.scale,
                                       lev.kappa) + self.shift)
                lev.wdinv = om / d
        if overcorrection is None:
            w = 1.0
            odd_neumann = any(act[a] and shp[a] % 2 == 1 and self.sgn[a].max() > 0.0
                              for shp, act in plan[:-1] for a in range(3))
            if self.gamma == 1 and not self.galerkin and not odd_neumann:
                w = OVERCORRECTION[int(self.live.sum())]
        else:
            w = float(overcorrection)
            if not 0.0 < w < 2.0:
                raise ValueError(f"overcorrection: expected a factor in (0, 2), got "
                                 f"{overcorrection!r}")
        self.overcorrection = w
        self._factor_coarsest()

    def _check_mismatch(self, plan, ks, c, top_shape, faces):
        """``coarse="auto"`` below :data:`JUMP_RATIO`: ``"galerkin"`` when on one of the
        first :data:`MISMATCH_LEVELS` coarse levels at least ``MISMATCH_CELLS N^(1/d)``
        cells (and 2) have face conductances that differ from the fine ones between their
        blocks by more than :data:`MISMATCH_RATIO` (:func:`conductance_ratio`), else
        ``"rediscretised"``.  Sets ``self.mismatch`` (the largest such factor, either way)
        and ``self.mismatched`` (per level checked: mismatched cells and the limit), and
        leaves the levels' face weights and diagonals in ``faces`` (by level) for the
        smoother (no extra cost: the hierarchy forms them anyway).  The comparison itself
        is NumPy on the fine faces and the coarse cells (one thread): measured 0.8, 1.2,
        8.6 and 40 ms at 256^2, 512^2, 1024^2 and 2048^2, 1.3 and 16 ms at 64^3 and
        128^3, 10-17 % of a rediscretised setup on one thread, under a third of a
        V-cycle."""
        H = np.ones(3, dtype=np.int64)
        geo = []
        for i in range(min(len(ks), MISMATCH_LEVELS + 1)):
            shape, act = plan[i]
            if i > 0:               # as the levels are built in __init__
                up = plan[i - 1][1]
                H = H << up
                c = np.where(up == 1, c / 4.0, c)
            sgn = level_ghost_signs(self.sgn, self.per, top_shape, shape, H)
            faces[i] = _level_faces(ks[i], c, self.per, sgn)
            geo.append((shape, act, c))
        worst, counts, galerkin = 1.0, [], False
        for i in range(1, len(geo)):
            (sf, act, cf), (sc, _, cc) = geo[i - 1], geo[i]
            nf, nc = int(np.prod(sf)), int(np.prod(sc))
            wf = faces[i - 1][0][:, :nf].reshape((3,) + tuple(sf))
            wc = faces[i][0][:, :nc].reshape((3,) + tuple(sc))
            q = conductance_ratio(wf, cf, wc, cc, act, sc)
            bad = _connected((q > MISMATCH_RATIO) | (q < 1.0 / MISMATCH_RATIO))
            d = max(1, sum(1 for m in sc if m > 1))
            limit = max(2, int(np.ceil(MISMATCH_CELLS * nc ** (1.0 / d) - 1e-9)))
            worst = max(worst, float(q.max()), 1.0 / max(float(q.min()), 1e-300))
            counts.append((bad, limit))
            if bad >= limit:
                galerkin = True
                break
        self.mismatch, self.mismatched = worst, tuple(counts)
        return "galerkin" if galerkin else "rediscretised"

    def _factor_coarsest(self):
        """Factorise the coarsest level: dense (LU, or the pseudo-inverse when the
        operator is singular) up to :data:`DENSE_COARSEST` cells, solved in
        ``K.coarse_solve`` (no LAPACK call inside the cycle); sparse above (SuperLU,
        minimum-degree ordering on ``A + A^T``, diagonal pivots: the operator is definite).
        A singular operator (no Dirichlet side: its null space the constants) has its last
        cell pinned in the sparse factor; :meth:`_coarse` then returns the minimum-norm
        solution, ``A^+ b``, as the pseudo-inverse (:func:`_pinv_constants`) does."""
        last = self.levels[-1]
        A = last.A if last.A is not None else self._assemble(last)
        self.coarse_n = n = A.shape[0]
        live = self.live == 1
        self._singular = (self.shift == 0.0
                          and not np.any((self.sgn[live] < 0) & (self.per[live, None] == 0)))
        none = np.empty((0, 0))
        self._lu, self._piv, self._pinv, self._splu = none, np.empty(0, np.int32), none, None
        if n > DENSE_COARSEST:
            As = A[:-1, :-1] if self._singular else A
            self._splu = spla.splu(sp.csc_matrix(As), permc_spec="MMD_AT_PLUS_A",
                                   diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        elif self._singular:
            self._pinv = _pinv_constants(A.toarray())
        else:
            lu, piv = sla.lu_factor(A.toarray())
            self._lu, self._piv = np.ascontiguousarray(lu), np.ascontiguousarray(piv, np.int32)

    def _assemble(self, lev):
        """The CSR matrix of a level's operator, ``shift * I + scale * A_l``."""
        A = assemble(lev.shape, lev.c, self.per, lev.sgn, self.scale, lev.kappa)
        if self.shift != 0.0:
            A = (A + self.shift * sp.identity(A.shape[0], format="csr")).tocsr()
        return A

    @property
    def nlevels(self):
        return len(self.levels)

    def __repr__(self):
        return (f"GeometricMultigrid(levels={[l.shape for l in self.levels]}, "
                f"gamma={self.gamma}, pre={self.pre}, post={self.post}, "
                f"coarse={'galerkin' if self.galerkin else 'rediscretised'}, "
                f"jump={self.jump:.3g}, "
                f"smoother={self.smoother!r}, overcorrection={self.overcorrection:g}"
                + (f", shift={self.shift!r})" if self.shift != 0.0 else ")"))

    # -------------------------------------------------------------- kernels on a level
    def _smooth(self, lev, first, order, rowdot=_NO_DOTS):
        """One smoothing step on ``lev``; with a non-empty ``rowdot`` (the finest level's
        last step) a red-black sweep also forms ``f_row . u_row`` of every row into it:
        returns whether it did."""
        if self.smoother == "jacobi":
            # u += omega D^-1 (f - A u); from a zero guess u = omega D^-1 f
            if first:
                np.multiply(lev.wdinv, lev.f, out=lev.u)
            else:
                self._residual(lev)
                lev.u += lev.wdinv * lev.r
            return False
        if lev.A is not None:       # Galerkin level: forward sweep before, backward after
            if first:
                lev.u[...] = 0.0
            A = lev.A
            if lev.colours is None:     # a serial level: lexicographic
                K.csr_gauss_seidel(A.indptr, A.indices, A.data, lev.u.reshape(-1),
                                   lev.f.reshape(-1), order[0] == 0)
            else:                       # multicolour, the rows stored by colour
                dinv, rows, cptr = lev.colours
                GK.csr_gauss_seidel_colours(A.indptr, A.indices, A.data, dinv,
                                            lev.u.reshape(-1), lev.f.reshape(-1), rows, cptr,
                                            order[0] == 0)
            return False
        per, sgn, s = self.per, lev.sgn, self.scale
        if self.smoother == "srbgs":
            order = (0, 1, 0)       # red, black, red: its own adjoint, before and after
        # every colour in one pass (row-wise lag; exactly the half-sweeps); for D(kappa)
        # from the level's face weights
        if lev.kappa is None:
            sweep = K.gs_sweep_laplacian_serial if lev.serial else K.gs_sweep_laplacian
            sweep(lev.u, lev.f, lev.ck, per, sgn, s, order[0], first, len(order), rowdot)
        else:
            sweep = K.gs_sweep_diffusion_serial if lev.serial else K.gs_sweep_diffusion
            sweep(lev.u, lev.f, *lev.faces, lev.c, per, sgn, s, order[0], first, len(order),
                  rowdot)
        return rowdot.size > 0

    def _residual(self, lev):
        # r = f - scale * A u: the grid's own stencil kernel (linear in its scale array),
        # then one fused pass
        if lev.r is None:
            lev.r = self._vector(lev.shape)
        if lev.A is not None:
            A, u, f, r = lev.A, lev.u.reshape(-1), lev.f.reshape(-1), lev.r.reshape(-1)
            if lev.colours is not None:     # rows stored by colour
                GK.csr_residual_rows(A.indptr, A.indices, A.data, u, f, r, lev.colours[1])
            elif lev.serial:
                GK.csr_residual_serial(A.indptr, A.indices, A.data, u, f, r)
            else:                           # a large level with the Jacobi smoother
                np.subtract(f, A @ u, out=r)
            return
        if lev.kappa is None:       # (the shift in the kernel's scales)
            res = K.residual_laplacian_serial if lev.serial else K.residual_laplacian_fast
            res(lev.u, lev.f, lev.r, lev.ck, self.per, lev.sgn, self.scale)
            return
        S.diffusion_apply(lev.u, lev.kappa, lev.r, lev.cs, self.per, lev.sgn)
        K.rsub(lev.f.reshape(-1), lev.r.reshape(-1))
        if self.shift != 0.0:       # the mass term: r -= shift * u
            B.axpy(-self.shift, lev.u.reshape(-1), lev.r.reshape(-1))

    def _restrict_residual(self, lev, nxt):
        """``nxt.f = R (lev.f - A lev.u)``: on a rediscretised 2-D (or 1-D) Laplacian level
        in one pass (the residual rows formed in row buffers, no residual array); on a
        rediscretised 3-D Laplacian level in one pass too, separably plane by plane
        (:func:`~jitsolve.kernels.cpu.multigrid.restrict_planes`: every residual row formed
        once); otherwise the residual pass and then the restriction (plane by plane on a
        3-D level).  (The 2-D row-ring kernel used in 3-D forms every fine row twice, for
        the two coarse planes over it: 1.05-1.13x slower than the two passes at 64^3 and
        128^3; on a 1-D grid, one row, it shares nothing and its row buffers cost: 6-11 ms
        against 1.7 ms for the two passes at 2^20 cells.)"""
        planes = (lev.shape[0] > 1 and not lev.serial and PLANE_RESTRICTION
                  and nxt.shape[0] >= numba.get_num_threads())
        if lev.kappa is None and lev.A is None and FUSED_RESTRICTION:
            if planes:
                K.restrict_planes(lev.u, lev.f, nxt.f, lev.ck, self.per, lev.sgn, nxt.sgn,
                                  self.scale, lev.act, numba.get_num_threads(), True)
                return
            if lev.shape[0] == 1 and lev.shape[1] > 1:
                if lev.serial:
                    fn, nch = K.restrict_residual_laplacian_serial, 1
                else:
                    fn, nch = K.restrict_residual_laplacian, 2 * numba.get_num_threads()
                fn(lev.u, lev.f, nxt.f, lev.ck, self.per, lev.sgn, nxt.sgn, self.scale, lev.act,
                   nch)
                return
        self._residual(lev)
        if planes:
            K.restrict_planes(lev.r, lev.r, nxt.f, lev.ck, self.per, lev.sgn, nxt.sgn, 0.0,
                              lev.act, numba.get_num_threads(), False)
            return
        (K.restrict_fw_serial if lev.serial else K.restrict_fw)(lev.r, nxt.f, lev.act, self.per,
                                                                 nxt.sgn)

    def _coarse(self, f):
        """``A_coarse^{-1} f`` (or ``A^+ f``) for a float64 vector ``f``, in place."""
        if self._splu is None:
            K.coarse_solve(self._lu, self._piv, self._pinv, f, f)
        elif self._singular:        # A^+ f: f projected on the range, pinned, mean removed
            f -= f.mean()
            f[:-1] = self._splu.solve(f[:-1])
            f[-1] = 0.0
            f -= f.mean()
        else:
            f[:] = self._splu.solve(f)
        return f

    def _coarse_solve(self, lev):
        f = lev.f.ravel()
        if np.iscomplexobj(f):
            x = (self._coarse(f.real.astype(np.float64))
                 + 1j * self._coarse(f.imag.astype(np.float64)))
        else:
            x = self._coarse(f.astype(np.float64))
        lev.u.ravel()[:] = x

    def _vector(self, shape):
        """A zeroed level vector of ``shape`` from :mod:`~jitsolve.solvers.workspace`."""
        a = workspace.take_zeros(int(np.prod(shape)), self.dtype)
        self._work.append(a)
        return a.reshape(shape)

    def __del__(self):
        # give the level vectors back to the workspace (their views dropped first; at
        # interpreter exit the module may be gone: then nothing to do)
        try:
            work, self._work = self._work, []
            for lev in self.levels:
                lev.u = lev.f = lev.r = lev.u_own = lev.f_own = None
            while work:
                a = work.pop()
                workspace.give(a)
                del a
        except Exception:
            pass

    def _cycle(self, l, zero, rowdot=_NO_DOTS):
        """One cycle on level ``l`` (``zero``: from a zero guess); on the finest level a
        ``rowdot`` goes to the last smoothing step (:meth:`_smooth`): whether it was
        filled."""
        lev = self.levels[l]
        if l == len(self.levels) - 1:
            self._coarse_solve(lev)
            return False
        first = zero
        for _ in range(self.pre):
            self._smooth(lev, first, (0, 1))
            first = False
        if first:
            lev.u[...] = 0.0
        nxt = self.levels[l + 1]
        for g in range(self.gamma):
            self._restrict_residual(lev, nxt)
            self._cycle(l + 1, True)
            (K.prolong_add_serial if nxt.serial and lev.serial else K.prolong_add)(
                nxt.u, lev.u, lev.act, self.per, nxt.sgn, self.overcorrection if l == 0 else 1.0)
            if g + 1 < self.gamma:   # W-cycle: smooth between the two coarse visits
                for _ in range(self.post):
                    self._smooth(lev, False, (1, 0))
                for _ in range(self.pre):
                    self._smooth(lev, False, (0, 1))
        done = False
        for i in range(self.post):
            done = self._smooth(lev, False, (1, 0), rowdot if i == self.post - 1 else _NO_DOTS)
        return done

    def __call__(self, r, out=None):
        """``out = B r`` for one cycle from a zero initial guess (``out=None``: a new
        array of ``r``'s shape)."""
        return self._apply(r, out, False)[0]

    def apply_dot(self, r, out):
        """``out = B r`` as :meth:`__call__`, and ``r^T out`` (a float64 ``r``): summed row
        by row inside the finest level's last red-black sweep where there is one (each
        row's product while the row is in cache; the rows' sums added in order, so the
        value does not depend on threads), else by
        :func:`~jitsolve.kernels.cpu.krylov.dot_real` after the cycle.  A preconditioned
        CG takes ``r^T z`` from here (one pass over ``r`` and ``z`` fewer per iteration)."""
        out, done = self._apply(r, out, self.dtype == np.float64)
        if done:
            return K.row_dots_total(self._rowdot)
        return KR.dot_real(np.ravel(r), np.ravel(out))

    def _apply(self, r, out, dots):
        if out is None:
            out = np.empty(np.shape(r), self.dtype)
        top = self.levels[0]
        shape = top.shape
        n = int(np.prod(shape))
        # work on the caller's arrays where they fit (no copy in, no copy out); the level's
        # own vectors are taken the first time they do not
        if (isinstance(r, np.ndarray) and r.dtype == self.dtype and r.flags.c_contiguous
                and r.size == n):
            top.f = r.reshape(shape)
        else:
            if top.f_own is None:
                top.f_own = self._vector(shape)
            top.f = top.f_own
            top.f.ravel()[:] = r
        direct = (isinstance(out, np.ndarray) and out.dtype == self.dtype and out.flags.c_contiguous
                  and out.size == n and not np.may_share_memory(out, top.f))
        if direct:
            top.u = out.reshape(shape)
        else:
            if top.u_own is None:
                top.u_own = self._vector(shape)
            top.u = top.u_own
        rowdot = _NO_DOTS
        if dots:
            if self._rowdot is None:
                self._rowdot = np.empty(int(np.prod(shape[:-1])))
            rowdot = self._rowdot
        try:
            done = self._cycle(0, True, rowdot)
            if not direct:
                out[:] = top.u.ravel()
        finally:
            top.f = top.u = None    # no reference to the caller's arrays is kept
        return out, done
