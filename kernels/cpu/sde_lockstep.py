"""Euler-Maruyama ensembles in lockstep: fixed steps, many paths per thread.

The general SDE loop (:mod:`jitsolve.kernels.cpu.sde`) integrates one path per thread and
walks its Brownian tree one query per step: one scalar Box-Muller pair per two steps.
For the commonest ensemble -- Euler-Maruyama, a fixed step, save times on the step grid,
diagonal or scalar noise -- the tree's values at every grid point
are known in advance, so a thread takes a batch of up to ``LANES`` paths and fills their
Brownian values top-down, level by level, with the normals of each tree node drawn for
all the batch's paths in one SIMD loop (:func:`~jitsolve.kernels.cpu.philox.normal_pairs_lanes`).
The coarse levels (down to blocks of 2^BLOCK_LEVELS steps) are filled once per batch,
the fine levels block by block, so memory stays small for long paths.

A fixed step dt that does not divide the span into 2^M steps (dt = 1e-3 over [0, 1]) reads
a tree spanning 2^M steps of dt (``solvers.sde.driver.schedule``), so its grid points are
nodes too and the same level-by-level fill applies; the grid stops after N < 2^M steps.
When dt does not divide the span at all, t1 falls inside the last step, off the nodes:
that one value comes from a walk of the tree shared by the batch's lanes
(:func:`_walk_query`, ``tree_query``'s walk with the lanes innermost).

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

__all__ = ["LANES", "BLOCK_LEVELS", "MAX_LEVELS", "em_lockstep_paths", "em_lockstep_moments",
           "walk_sample"]

#: paths integrated together by one thread (64 lanes: 20-35% slower per path-step, the
#: per-call set-up of the normals loop and of the batch functions paid 4x as often)
LANES = 256
#: fine levels filled per block (a block is 2^BLOCK_LEVELS steps)
BLOCK_LEVELS = 6
#: longest grid the lockstep kernels take (2^MAX_LEVELS steps)
MAX_LEVELS = 24
STREAM_MID = 0          # the plain tree's streams (kernels.cpu.sde.STREAM_MID, STREAM_LEAF)
STREAM_LEAF = 1
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


# Shared walk of the Brownian tree for off-node grids: per level d of the stack
#   wf[d] = (a, b), wi[d] = (node, mid known, sibling cache key + 1, cache parity),
#   Bs[d] = (B(a), B(b), B(mid), cached sibling normals), each (m, L);
# wi[-1, 0] is the current depth.
@njit(cache=False)
def _walk_work(m, maxdepth, L):
    D = maxdepth + 2
    return np.zeros((D, 2)), np.zeros((D + 1, 4), dtype=np.int64), np.zeros((D, 4, m, L))


@njit(cache=False)
def _walk_init(seed, tr0, m, wf, wi, Bs, za, zb):
    """Level 0 is [0, 1] with B(0) = 0 and B(1) the normal of node 0 (``tree_init``);
    node 1's normal (the root's midpoint) is node 0's sibling, kept in the level's cache."""
    L = za.size
    for d in range(wi.shape[0]):
        for q in range(4):
            wi[d, q] = 0
    for j in range(m):
        normal_pairs_lanes(seed, tr0, 0, j, STREAM_MID, za, zb)
        for l in range(L):
            Bs[0, 0, j, l] = 0.0
            Bs[0, 1, j, l] = za[l]
            Bs[0, 3, j, l] = zb[l]
    wf[0, 0] = 0.0
    wf[0, 1] = 1.0
    wi[0, 0] = 1
    wi[0, 2] = 1
    wi[0, 3] = 1


@njit(cache=False)
def _walk_query(x, maxdepth, seed, tr0, m, wf, wi, Bs, za, zb, out, row):
    """B(x) of every component and lane into ``out[:, row, :]`` (``out`` (m, rows, L)):
    ``tree_query``'s walk, keys and arithmetic with the lanes in the innermost loops, so
    each lane's value is bit for bit its path's ``tree_query(x, maxdepth, ...)``."""
    L = za.size
    top = wi.shape[0] - 1
    d = wi[top, 0]
    while d > 0 and not (wf[d, 0] <= x and x <= wf[d, 1]):
        d -= 1
    while True:
        a = wf[d, 0]
        b = wf[d, 1]
        if x == a or x == b:
            e = 0 if x == a else 1
            for j in range(m):
                for l in range(L):
                    out[j, row, l] = Bs[d, e, j, l]
            break
        if d >= maxdepth:
            # inside a leaf: a bridge sample keyed by the leaf (components 2c, 2c + 1 share
            # the pair keyed c)
            w = (x - a) / (b - a)
            sd = np.sqrt((x - a) * (b - x) / (b - a))
            for j in range(m):
                if (j & 1) == 0:
                    normal_pairs_lanes(seed, tr0, wi[d, 0], j >> 1, STREAM_LEAF, za, zb)
                if j & 1:
                    for l in range(L):
                        wa = Bs[d, 0, j, l]
                        out[j, row, l] = wa + w * (Bs[d, 1, j, l] - wa) + sd * zb[l]
                else:
                    for l in range(L):
                        wa = Bs[d, 0, j, l]
                        out[j, row, l] = wa + w * (Bs[d, 1, j, l] - wa) + sd * za[l]
            break
        if wi[d, 1] == 0:
            # the midpoint bridge of this node; siblings 2k, 2k + 1 share the pair keyed k
            node = wi[d, 0]
            key = node >> 1
            par = node & 1
            sd = 0.5 * np.sqrt(b - a)
            hit = wi[d, 2] == key + 1 and wi[d, 3] == par
            for j in range(m):
                if hit:
                    for l in range(L):
                        Bs[d, 2, j, l] = 0.5 * (Bs[d, 0, j, l] + Bs[d, 1, j, l]) + sd * Bs[d, 3, j, l]
                    continue
                if par:
                    normal_pairs_lanes(seed, tr0, key, j, STREAM_MID, zb, za)
                else:
                    normal_pairs_lanes(seed, tr0, key, j, STREAM_MID, za, zb)
                for l in range(L):
                    Bs[d, 2, j, l] = 0.5 * (Bs[d, 0, j, l] + Bs[d, 1, j, l]) + sd * za[l]
                    Bs[d, 3, j, l] = zb[l]
            if hit:
                wi[d, 2] = 0
            else:
                wi[d, 2] = key + 1
                wi[d, 3] = 1 - par
            wi[d, 1] = 1
        mid = 0.5 * (a + b)
        if x == mid:
            for j in range(m):
                for l in range(L):
                    out[j, row, l] = Bs[d, 2, j, l]
            break
        dn = d + 1
        left = x < mid
        wf[dn, 0] = a if left else mid
        wf[dn, 1] = mid if left else b
        wi[dn, 0] = 2 * wi[d, 0] + (0 if left else 1)
        wi[dn, 1] = 0
        ea = 0 if left else 2
        eb = 2 if left else 1
        for j in range(m):
            for l in range(L):
                Bs[dn, 0, j, l] = Bs[d, ea, j, l]
                Bs[dn, 1, j, l] = Bs[d, eb, j, l]
        d = dn
    wi[top, 0] = d


@njit(cache=True)
def walk_sample(xs, maxdepth, seed, traj0, m, L, out):
    """B at the increasing normalised times ``xs`` for the lanes (trajectories traj0 + l)
    into ``out`` (m, len(xs), L) through the shared walk (tests compare it with
    ``tree_sample``)."""
    wf, wi, Bs = _walk_work(m, maxdepth, L)
    za = np.empty(L)
    zb = np.empty(L)
    _walk_init(seed, traj0, m, wf, wi, Bs, za, zb)
    for k in range(xs.size):
        _walk_query(xs[k], maxdepth, seed, traj0, m, wf, wi, Bs, za, zb, out, k)


@njit(cache=False)
def _batch_work(m, mlog, walkdepth, n, L):
    """Work arrays of a batch of L lanes: Bc, Bf (Brownian values), U, F, G, Un (L, n),
    za, zb (L,), and the shared walk's wf, wi, Bs down to ``walkdepth`` (0: none)."""
    blev = min(BLOCK_LEVELS, mlog)
    wf, wi, Bs = _walk_work(m, walkdepth, L if walkdepth > 0 else 1)
    return (np.empty((m, (1 << (mlog - blev)) + 1, L)), np.empty((m, (1 << blev) + 1, L)),
            np.empty((L, n)), np.empty((L, n)), np.empty((L, n)),
            np.empty((L, n)), np.empty(L), np.empty(L), wf, wi, Bs)


@njit(cache=False)
def _walkdepth(fpar, ipar):
    """Depth of the shared walk a batch needs: ``maxdepth`` when t1 is off the tree's
    nodes (dt does not divide the span), else none."""
    return ipar[7] if fpar[12] != ipar[6] * fpar[4] else 0


@njit(cache=False)
def _em_batch(f, gv, fb, gb, batched, u0s, ps, fpar, ipar, seed, tr0, i0, nl, kidx,
              save_every, ou, ow, st, Bc, Bf, U, F, G, Un, za, zb, wf, wi, Bs):
    """Integrate paths i0 .. i0 + nl - 1 (trajectory keys tr0 + l) in lockstep; saves
    into ou (nl, nsave, n), ow (nl, nsave, m) when saving noise, stats into st (nl, 6).
    ``batched``: drift and diffusion come from the batch functions ``fb``, ``gb`` (one
    call per step for all lanes), else from ``f``, ``gv`` per lane, into F, G (L, n).
    Work arrays (:func:`_batch_work`): Bc (m, 2^dc + 1, L), Bf (m, 2^blev + 1, L), U and
    Un (L, n), za, zb (L,) with L >= nl (lanes past nl are computed and discarded); wf,
    wi, Bs the shared tree walk to B(xend) when t1 is not a node of the tree."""
    n = U.shape[1]
    t0 = fpar[0]
    t1 = fpar[1]
    xstep = fpar[4]
    noise = ipar[1]
    m = ipar[2]
    N = ipar[6]
    save_noise = ipar[11]
    xend = fpar[12]
    maxdepth = ipar[7]
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
    for b in range((N + BS - 1) // BS):         # the grid may end before the tree (N < 2^mlog)
        for j in range(m):
            for l in range(L):
                Bf[j, 0, l] = Bc[j, b, l]
                Bf[j, BS, l] = Bc[j, b + 1, l]
            if blev > 0:
                _fill_levels(seed, tr0, j, Bf[j], dc, blev, (np.int64(1) << dc) + b, za, zb)
        for kk in range(min(BS, N - b * BS)):
            if k + 1 >= N and xend != N * xstep:
                # t1 off the nodes (dt does not divide the span): B(xend) by the walk
                _walk_init(seed, tr0, m, wf, wi, Bs, za, zb)
                _walk_query(xend, maxdepth, seed, tr0, m, wf, wi, Bs, za, zb, Bf, kk + 1)
            xt = xend if k + 1 >= N else (k + 1) * xstep
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
    walkdepth = _walkdepth(fpar, ipar)
    nb = (N + LANES - 1) // LANES
    for b0 in prange(nb):
        b = np.int64(b0)
        i0 = b * LANES
        nl = min(LANES, N - i0)
        Bc, Bf, U, F, G, Un, za, zb, wf, wi, Bs = _batch_work(m, mlog, walkdepth, n, LANES)
        _em_batch(f, gv, fb, gb, batched, u0s, ps, fpar, ipar, seed, traj0 + np.uint64(i0),
                  i0, nl, kidx, save_every, out_u[i0:i0 + nl], out_W[i0:i0 + nl],
                  stats[i0:i0 + nl], Bc, Bf, U, F, G, Un, za, zb, wf, wi, Bs)


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
    walkdepth = _walkdepth(fpar, ipar)
    nblk = (N + block - 1) // block
    bmean = np.zeros((nblk, nsave, n))
    bm2 = np.zeros((nblk, nsave, n))
    bcnt = np.zeros(nblk, dtype=np.int64)
    bwork = np.zeros((nblk, 4), dtype=np.int64)
    L = min(LANES, block)             # lanes past a block's paths would be computed in vain
    for b0 in prange(nblk):
        b = np.int64(b0)
        Bc, Bf, U, F, G, Un, za, zb, wf, wi, Bs = _batch_work(m, mlog, walkdepth, n, L)
        ou = np.empty((L, nsave, n))
        ow = np.empty((1, 1, 1))
        st = np.zeros((L, 6), dtype=np.int64)
        c = 0
        iend = min(N, (b + 1) * block)
        i0 = b * block
        while i0 < iend:
            nl = min(L, iend - i0)
            _em_batch(f, gv, fb, gb, batched, u0s, ps, fpar, ipar, seed,
                      traj0 + np.uint64(i0), i0, nl, kidx, False, ou, ow, st, Bc, Bf, U, F, G, Un, za, zb,
                      wf, wi, Bs)
            for l in range(nl):
                c = moments_add_path(b, c, st[l], ou[l], bmean, bm2, bwork)
            i0 += nl
        bcnt[b] = c
    moments_merge(bmean, bm2, bcnt, bwork, mean, var, counts)
