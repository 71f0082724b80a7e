"""Euler-Maruyama ensembles in lockstep: fixed dyadic steps, many paths per thread.

The general SDE loop (:mod:`jitsolve.kernels.cpu.sde`) integrates one path per thread and
walks its Brownian tree one query per step: one scalar Box-Muller pair per two steps.
For the commonest ensemble -- Euler-Maruyama, a fixed step dt = (t1 - t0) / 2^M, save
times on the step grid, diagonal or scalar noise -- the tree's values at every grid point
are known in advance, so a thread takes a batch of up to ``LANES`` paths and fills their
Brownian values top-down, level by level, with the normals of each tree node drawn for
all the batch's paths in one SIMD loop (:func:`~jitsolve.kernels.cpu.philox.normal_pairs_lanes`).
The coarse levels (down to blocks of 2^BLOCK_LEVELS steps) are filled once per batch,
the fine levels block by block, so memory stays small for long paths.

Drift and diffusion: per path through the first-class cfuncs ``f``, ``gv`` (about 8 ns
a call: the boundary, not the user's arithmetic, dominates a small SDE), or, for large
ensembles, through batch cfuncs ``fb``, ``gb`` that loop over the batch's states with the
user's function compiled in (``jitsolve.functions.compile_batch_cfunc``): one call per
step per batch, then one SIMD loop per state component for the EM update.

Every value is computed with the keys and the arithmetic of ``tree_query`` and of the
general loop's EM step, so a path here is bit-for-bit the path the general loop computes
(tested): same seed, same trajectory keys, same states.

References: Kloeden & Platen, *Numerical Solution of SDEs* (1992), sec. 9.1 (EM);
Lévy's construction of Brownian motion by midpoint bridges (e.g. Glasserman, *Monte
Carlo Methods in Financial Engineering*, 2003, sec. 3.1); Salmon et al., SC11 (2011)
(counter-based Philox).
"""
import numpy as np
from numba import njit, prange

from .borrow import borrow
from .philox import normal_pairs_lanes
from .sde import UNSTABLE, moments_add_path, moments_merge

__all__ = ["LANES", "BLOCK_LEVELS", "MAX_LEVELS", "em_lockstep_paths", "em_lockstep_moments"]

#: paths integrated together by one thread (64 lanes: 20-35% slower per path-step, the
#: per-call set-up of the normals loop and of the batch functions paid 4x as often)
LANES = 256
#: fine levels filled per block (a block is 2^BLOCK_LEVELS steps)
BLOCK_LEVELS = 6
#: longest grid the lockstep kernels take (2^MAX_LEVELS steps)
MAX_LEVELS = 24
STREAM_MID = 0          # the plain tree's stream (kernels.cpu.sde.STREAM_MID)
DIAGONAL, SCALAR = 0, 1


@njit(cache=False)
def _node_normals(seed, tr0, node, comp, za, zb):
    """Normals of tree node ``node`` for every lane into ``za`` (and its sibling's into
    ``zb``): siblings 2k, 2k+1 share the pair keyed k (even takes z0, odd z1)."""
    if node & 1:
        normal_pairs_lanes(seed, tr0, node >> 1, comp, STREAM_MID, zb, za)
    else:
        normal_pairs_lanes(seed, tr0, node >> 1, comp, STREAM_MID, za, zb)


@njit(cache=False)
def _fill_levels(seed, tr0, comp, B, d0, nlev, first, za, zb):
    """Midpoint bridges of the dyadic tree below one interval: ``B`` (2^nlev + 1, L) holds
    B at both ends (rows 0 and 2^nlev); its interval is node ``first`` at depth ``d0``.
    Fills the rows in between, level by level, exactly as ``tree_query`` would."""
    S = 1 << nlev
    L = za.size
    for lv in range(nlev):
        d = d0 + lv
        half = S >> (lv + 1)
        sd = 0.5 * np.sqrt(2.0 ** (-d))
        base = first << lv                     # heap index of the level's first node
        cnt = 1 << lv
        q = 0
        while q < cnt:
            node = base + q
            lo = q * 2 * half
            if lv == 0 or (node & 1):
                # a lone node (its sibling lies outside this interval)
                _node_normals(seed, tr0, node, comp, za, zb)
                for l in range(L):
                    B[lo + half, l] = 0.5 * (B[lo, l] + B[lo + 2 * half, l]) + sd * za[l]
                q += 1
                continue
            _node_normals(seed, tr0, node, comp, za, zb)   # za: node, zb: node + 1
            lo2 = lo + 2 * half
            for l in range(L):
                B[lo + half, l] = 0.5 * (B[lo, l] + B[lo2, l]) + sd * za[l]
                B[lo2 + half, l] = 0.5 * (B[lo2, l] + B[lo2 + 2 * half, l]) + sd * zb[l]
            q += 2


@njit(cache=False)
def _batch_work(m, mlog, n, L):
    """Work arrays of a batch of L lanes: Bc, Bf (Brownian values), U, F, G, Un (L, n),
    za, zb (L,)."""
    blev = min(BLOCK_LEVELS, mlog)
    return (np.empty((m, (1 << (mlog - blev)) + 1, L)), np.empty((m, (1 << blev) + 1, L)),
            np.empty((L, n)), np.empty((L, n)), np.empty((L, n)),
            np.empty((L, n)), np.empty(L), np.empty(L))


@njit(cache=False)
def _em_batch(f, gv, fb, gb, batched, u0s, ps, fpar, ipar, seed, tr0, i0, nl, kidx,
              save_every, ou, ow, st, Bc, Bf, U, F, G, Un, za, zb):
    """Integrate paths i0 .. i0 + nl - 1 (trajectory keys tr0 + l) in lockstep; saves
    into ou (nl, nsave, n), ow (nl, nsave, m) when saving noise, stats into st (nl, 6).
    ``batched``: drift and diffusion come from the batch functions ``fb``, ``gb`` (one
    call per step for all lanes), else from ``f``, ``gv`` per lane, into F, G (L, n).
    Work arrays: Bc (m, 2^dc + 1, L), Bf (m, 2^blev + 1, L), U and Un
    (L, n), za, zb (L,) with L >= nl (lanes past nl are computed and discarded)."""
    n = U.shape[1]
    t0 = fpar[0]
    t1 = fpar[1]
    xstep = fpar[4]
    noise = ipar[1]
    m = ipar[2]
    N = ipar[6]
    save_noise = ipar[11]
    mlog = ipar[12]
    blev = min(BLOCK_LEVELS, mlog)
    dc = mlog - blev
    NB = 1 << dc
    BS = 1 << blev
    span = t1 - t0
    sqT = np.sqrt(abs(span))
    nsave = kidx.size
    L = za.size
    # coarse levels: B(0) = 0, B(1) from node 0, then depths 0 .. dc-1
    for j in range(m):
        normal_pairs_lanes(seed, tr0, 0, j, STREAM_MID, za, zb)
        for l in range(L):
            Bc[j, 0, l] = 0.0
            Bc[j, NB, l] = za[l]
        if dc > 0:
            _fill_levels(seed, tr0, j, Bc[j], 0, dc, 1, za, zb)
    for l in range(nl):
        iu = i0 + l if u0s.shape[0] > 1 else 0
        for i in range(n):
            U[l, i] = u0s[iu, i]
        for q in range(6):
            st[l, q] = 0
    ks = 0
    alive = np.ones(nl, dtype=np.bool_)
    nalive = nl
    # saves at k = 0
    while ks < nsave and (ks == 0 if save_every else kidx[ks] <= 0):
        for l in range(nl):
            for i in range(n):
                ou[l, ks, i] = U[l, i]
            if save_noise:
                for j in range(m):
                    ow[l, ks, j] = 0.0
            st[l, 0] += 1
        ks += 1
    Fb, Gb, Ub, psb = borrow(F), borrow(G), borrow(U), borrow(ps)   # arguments: owned by the caller
    Uflat = U.reshape(U.size)                # (L, n) C-contiguous: lane l's state at l * n
    Unflat = Un.reshape(Un.size)
    jn = 1 if noise == DIAGONAL else 0       # Brownian component of state i: i * jn
    x = 0.0
    k = 0
    for b in range(NB):
        for j in range(m):
            for l in range(L):
                Bf[j, 0, l] = Bc[j, b, l]
                Bf[j, BS, l] = Bc[j, b + 1, l]
            if blev > 0:
                _fill_levels(seed, tr0, j, Bf[j], dc, blev, (np.int64(1) << dc) + b, za, zb)
        for kk in range(BS):
            xt = 1.0 if k + 1 >= N else (k + 1) * xstep
            t = t0 + span * x
            hs = span * (xt - x)
            if batched:
                # dead lanes hold their last finite state: evaluated, never used
                fb(F, U, ps, t, i0, nl)
                gb(G, U, ps, t, i0, nl)
            else:
                # borrowed rows: no reference counting per lane and call
                for l in range(nl):
                    if alive[l]:
                        p = psb[i0 + l if psb.shape[0] > 1 else 0]
                        f(Fb[l], Ub[l], p, t)
                        gv(Gb[l], Ub[l], p, t)
            # the EM update of every lane (one SIMD loop per component), then acceptance
            bad = 0
            for i in range(n):
                ji = i * jn
                for l in range(nl):
                    v = U[l, i] + hs * F[l, i] + G[l, i] * (sqT * (Bf[ji, kk + 1, l]
                                                                    - Bf[ji, kk, l]))
                    Un[l, i] = v
                    bad += 0 if v - v == 0.0 else 1  # v - v: 0, or NaN when v is not finite
            if nalive == nl and bad == 0:
                # one flat copy (a loop over lanes with an inner loop over n = 1 component
                # was a quarter of the EM ensemble's time, 2026-12-02)
                for q in range(nl * n):
                    Uflat[q] = Unflat[q]
            else:
                for l in range(nl):
                    if not alive[l]:
                        continue
                    finite = True
                    for i in range(n):
                        finite = finite and np.isfinite(Un[l, i])
                    if not finite:
                        alive[l] = False
                        nalive -= 1
                        st[l, 1] = UNSTABLE
                        st[l, 2] = k + 1             # nf, ng: this step was attempted
                        st[l, 3] = k + 1
                        st[l, 4] = k                 # naccept
                        continue
                    for i in range(n):
                        U[l, i] = Un[l, i]
            x = xt
            k += 1
            while ks < nsave and (ks == k if save_every else kidx[ks] <= k):
                for l in range(nl):
                    if not alive[l]:
                        continue
                    for i in range(n):
                        ou[l, ks, i] = U[l, i]
                    if save_noise:
                        for j in range(m):
                            ow[l, ks, j] = sqT * Bf[j, kk + 1, l]
                    st[l, 0] += 1
                ks += 1
    for l in range(nl):
        if alive[l]:
            st[l, 2] = N
            st[l, 3] = N
            st[l, 4] = N


@njit(parallel=True, cache=True)
def em_lockstep_paths(f, gv, fb, gb, batched, u0s, ps, fpar, ipar, seed, traj0, kidx,
                      save_every, out_u, out_W, stats):
    """EM paths 0..N-1 (trajectory keys traj0 + i) in batches of LANES, one batch per
    thread; saves at the grid indices ``kidx`` (every step when ``save_every``) into
    ``out_u`` (N, nsave, n) and ``out_W`` (N, nsave, m) or (N, 1, 1); ``stats`` (N, 6)
    as the general loop writes them.  ``f``, ``gv``: per-path cfuncs; ``fb``, ``gb``:
    batch cfuncs (``SIGNATURES["f_batch"]``), used when ``batched``."""
    N = out_u.shape[0]
    n = out_u.shape[2]
    m = ipar[2]
    mlog = ipar[12]
    nb = (N + LANES - 1) // LANES
    for b0 in prange(nb):
        b = np.int64(b0)
        i0 = b * LANES
        nl = min(LANES, N - i0)
        Bc, Bf, U, F, G, Un, za, zb = _batch_work(m, mlog, n, LANES)
        _em_batch(f, gv, fb, gb, batched, u0s, ps, fpar, ipar, seed, traj0 + np.uint64(i0),
                  i0, nl, kidx, save_every, out_u[i0:i0 + nl], out_W[i0:i0 + nl],
                  stats[i0:i0 + nl], Bc, Bf, U, F, G, Un, za, zb)


@njit(parallel=True, cache=True)
def em_lockstep_moments(f, gv, fb, gb, batched, u0s, ps, fpar, ipar, seed, traj0, kidx, N,
                        block, mean, var, counts):
    """Streaming mean and (unbiased) variance at the grid indices ``kidx`` over N EM
    paths, without storing paths: the contract of ``kernels.cpu.sde.ensemble_moments``
    (blocks of ``block`` paths, Welford in path order within a block, blocks merged in
    index order, failed paths left out; counts = [used, failed, nf, naccept, nreject]),
    with each block's paths integrated LANES at a time."""
    nsave = mean.shape[0]
    n = mean.shape[1]
    m = ipar[2]
    mlog = ipar[12]
    nblk = (N + block - 1) // block
    bmean = np.zeros((nblk, nsave, n))
    bm2 = np.zeros((nblk, nsave, n))
    bcnt = np.zeros(nblk, dtype=np.int64)
    bwork = np.zeros((nblk, 4), dtype=np.int64)
    L = min(LANES, block)             # lanes past a block's paths would be computed in vain
    for b0 in prange(nblk):
        b = np.int64(b0)
        Bc, Bf, U, F, G, Un, za, zb = _batch_work(m, mlog, n, L)
        ou = np.empty((L, nsave, n))
        ow = np.empty((1, 1, 1))
        st = np.zeros((L, 6), dtype=np.int64)
        c = 0
        iend = min(N, (b + 1) * block)
        i0 = b * block
        while i0 < iend:
            nl = min(L, iend - i0)
            _em_batch(f, gv, fb, gb, batched, u0s, ps, fpar, ipar, seed,
                      traj0 + np.uint64(i0), i0, nl, kidx, False, ou, ow, st, Bc, Bf, U, F, G, Un, za, zb)
            for l in range(nl):
                c = moments_add_path(b, c, st[l], ou[l], bmean, bm2, bwork)
            i0 += nl
        bcnt[b] = c
    moments_merge(bmean, bm2, bcnt, bwork, mean, var, counts)
