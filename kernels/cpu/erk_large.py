"""Explicit Runge-Kutta loops and their discrete adjoints for large states (CPU, Numba).

For states of at least ``PARALLEL_N`` entries (grids) the cost of a step is the passes
over the state, not the loop's bookkeeping, so these kernels trade the general loop of
:mod:`.erk` (step control, events, dense output) for fewer, fused, threaded passes:

* a stage's linear part (``lin(u)``, a grid operator) is added to its slope inside the
  next stage combination, not in a pass of its own; the finiteness check is folded into
  the final combination; states are written straight into the save buffer (no copies);
* a Laplacian or Diffusion operator as the linear part of a split problem (``fuse_lin``)
  is not a pass at all: the stage combinations evaluate its stencil row by row
  (:mod:`.erk_large_stencil`; a stage costs the user's ``f`` and one pass, not three);
* a pure linear problem (no ``f``, ``hasf`` False) writes ``lin`` into the slope directly;
* the reverse step evaluates only the slopes that later stage states need (an ``s``-stage
  method needs ``s - 1``; forward Euler none), and the VJP of an ``f`` with a diagonal
  Jacobian (a reaction term; ``diag``: the pattern of ``ODEFunction(jac_sparsity=...)``
  is the identity) is one evaluation of its complex twin and two threaded passes.

Every element sees the same floating-point operations in the same order as in the
general kernels (:func:`.erk.rk_step`, :func:`.erk_adjoint.erk_stages`), so the fixed-step
forward loop here and :func:`.erk.erk_solve` give the same states bit for bit.  The
reverse sweep agrees with :func:`.erk_adjoint.erk_reverse` to rounding (bit for bit
except where a diagonal VJP's last stage takes the linear part's transpose of ``lam``
rather than of ``h b_s lam``); it is bit-for-bit the same for every checkpointing
schedule, and parameter gradients are reduced over fixed blocks (independent of the
thread count).

The right-hand side and VJP-source tuples are those of :mod:`.rhs` and
:mod:`.erk_adjoint`; the user's functions may be parallel themselves (cfuncs compiled
from ``@njit(parallel=True)`` functions), which is what makes a large reaction term cheap.
"""
import numpy as np
from numba import njit, prange
from numba.extending import overload

from .erk import LAND_RTOL, PARALLEL_N, RC_INITIAL, RC_MAXITERS, RC_SUCCESS, RC_UNSTABLE
from .erk_adjoint import kappa_vjp, user_mode, vjp_apply
from .erk_large_stencil import combine_stencil

__all__ = ["PARALLEL_N", "erk_fixed", "count_fixed_steps", "erk_advance_large",
           "erk_reverse_large", "erk_schedule_large", "erk_step_adjoint_large", "stage_combine"]

#: entries per block of a reproducible parallel sum
BLOCK = 4096
#: the largest finite float64: ``not (abs(v) <= BIG)`` is true for Inf and NaN
BIG = 1.7976931348623157e308
#: entries per chunk of a threaded pass (a few rows of it stay in the L1 cache)
CHUNK = 2048


# ---------------------------------------------------------------------- threaded passes
# Passes walk the state in chunks of CHUNK entries (one chunk per parallel iteration)
# and, inside a chunk, one row at a time over slices: every inner loop is then a plain
# loop over 0..m that vectorises (an inner loop over the stages, or indices from a
# computed offset, did not: measured 3-7x slower), branches sit outside the inner loops,
# and every entry still sees the general kernels' operations in their order (the sum
# over the rows j = 0, 1, ... starting from 0.0).  Helpers are cache=False: they are
# compiled into each cached entry point (tests/test_kernel_cache.py says why).

@njit(parallel=True, cache=False)
def stage_combine(out, u, ks, coef, nst, h, last, tmp, pending, store):
    """``out = u + h * sum_{j < nst} coef[j] * ks[j]`` where, when ``pending``, the slope
    ``ks[last]`` is first completed with its linear part ``tmp`` (and written back when
    ``store``: a later stage needs it).  Returns the number of non-finite entries of ``out``."""
    n = u.size
    nch = (n + CHUNK - 1) // CHUNK
    bad = 0
    for c in prange(nch):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        m = hi - lo
        o = out[lo:hi]
        if nst == 0:
            for i in range(m):
                o[i] = 0.0
        for j in range(nst):
            a = coef[j]
            kj = ks[j, lo:hi]
            if pending and j == last:
                tt = tmp[lo:hi]
                if store:
                    for i in range(m):
                        kj[i] = kj[i] + tt[i]
                if j == 0:
                    if store:
                        for i in range(m):
                            o[i] = 0.0 + a * kj[i]
                    else:
                        for i in range(m):
                            o[i] = 0.0 + a * (kj[i] + tt[i])
                else:
                    if store:
                        for i in range(m):
                            o[i] += a * kj[i]
                    else:
                        for i in range(m):
                            o[i] += a * (kj[i] + tt[i])
            elif j == 0:
                for i in range(m):
                    o[i] = 0.0 + a * kj[i]
            else:
                for i in range(m):
                    o[i] += a * kj[i]
        uu = u[lo:hi]
        nb = 0
        for i in range(m):
            v = uu[i] + h * o[i]
            o[i] = v
            nb += 0 if abs(v) <= BIG else 1
        bad += nb
    return bad


@njit(parallel=True, cache=False)
def _finish_slope(ks, k, tmp, dst):
    """``ks[k] += tmp``; with ``dst >= 0`` also ``ks[dst] = ks[k]`` (FSAL)."""
    n = tmp.size
    for i in prange(n):
        v = ks[k, i] + tmp[i]
        ks[k, i] = v
        if dst >= 0:
            ks[dst, i] = v


@njit(parallel=True, cache=False)
def _copy_row(dst, k, src, j):
    for i in prange(src.shape[1]):
        dst[k, i] = src[j, i]


@njit(parallel=True, cache=False)
def _copy(dst, src):
    for i in prange(src.size):
        dst[i] = src[i]


@njit(parallel=True, cache=False)
def _add(dst, src):
    for i in prange(src.size):
        dst[i] += src[i]


@njit(parallel=True, cache=False)
def _adjoint_slope(kb, lam, bi, Ybar, A, i, su, h, probe, cu, Y, eps, want_kb):
    """``kb = h * (b_i lam + sum_{i < j < su} a_ji Ybar_j)`` (the general sweep's order)
    when ``want_kb``; with ``probe`` also ``cu = Y + i eps`` (the complex-step input of a
    diagonal VJP)."""
    n = lam.size
    nch = (n + CHUNK - 1) // CHUNK
    for c in prange(nch):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        m = hi - lo
        if want_kb:
            k = kb[lo:hi]
            lm = lam[lo:hi]
            for x in range(m):
                k[x] = bi * lm[x]
            for j in range(i + 1, su):
                a = A[j, i]
                if a != 0.0:
                    yb = Ybar[j, lo:hi]
                    for x in range(m):
                        k[x] += a * yb[x]
            for x in range(m):
                k[x] *= h
        if probe:
            cc = cu[lo:hi]
            yy = Y[lo:hi]
            for x in range(m):
                cc[x] = complex(yy[x], eps)


@njit(parallel=True, cache=False)
def _lam_update(lam, Ybar, j0, su):
    """``lam += Ybar[j]`` for ``j0 <= j < su``, in that order."""
    n = lam.size
    nch = (n + CHUNK - 1) // CHUNK
    for c in prange(nch):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        m = hi - lo
        lm = lam[lo:hi]
        for j in range(j0, su):
            yb = Ybar[j, lo:hi]
            for x in range(m):
                lm[x] += yb[x]


@njit(parallel=True, cache=False)
def _complex_copy(cu, Y):
    for x in prange(Y.size):
        cu[x] = Y[x]


@njit(parallel=True, cache=False)
def _diag_vjp(out, cd, v, eps, work, haslin, accumulate):
    """``out = imag(cd) / eps * v (+ work)``, a diagonal Jacobian's transpose product
    (``cd`` the complex twin at ``Y + i eps``), or with ``accumulate`` ``out += ...``."""
    n = v.size
    nch = (n + CHUNK - 1) // CHUNK
    for c in prange(nch):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        m = hi - lo
        o = out[lo:hi]
        cc = cd[lo:hi]
        vv = v[lo:hi]
        w = work[lo:hi]
        if haslin and accumulate:
            for x in range(m):
                o[x] += cc[x].imag / eps * vv[x] + w[x]
        elif haslin:
            for x in range(m):
                o[x] = cc[x].imag / eps * vv[x] + w[x]
        elif accumulate:
            for x in range(m):
                o[x] += cc[x].imag / eps * vv[x]
        else:
            for x in range(m):
                o[x] = cc[x].imag / eps * vv[x]


@njit(parallel=True, cache=False)
def _diag_vjp_direct(out, cd, lam, bi, h, eps, work, haslin, accumulate):
    """:func:`_diag_vjp` of ``v = (b_i lam) h`` formed on the fly, with ``work`` the
    linear part's transpose applied to ``lam`` itself (scaled here by ``b_i h``); with
    ``accumulate`` the output is ``lam`` itself (``out`` is not read)."""
    n = lam.size
    nch = (n + CHUNK - 1) // CHUNK
    hb = bi * h
    for c in prange(nch):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        m = hi - lo
        cc = cd[lo:hi]
        lm = lam[lo:hi]
        w = work[lo:hi]
        # in place on lam through one slice: two views of one array defeat vectorisation
        if haslin and accumulate:
            for x in range(m):
                v = lm[x]
                lm[x] = v + (cc[x].imag / eps * ((bi * v) * h) + hb * w[x])
        elif accumulate:
            for x in range(m):
                v = lm[x]
                lm[x] = v + cc[x].imag / eps * ((bi * v) * h)
        elif haslin:
            o = out[lo:hi]
            for x in range(m):
                o[x] = cc[x].imag / eps * ((bi * lm[x]) * h) + hb * w[x]
        else:
            o = out[lo:hi]
            for x in range(m):
                o[x] = cc[x].imag / eps * ((bi * lm[x]) * h)


@njit(parallel=True, cache=False)
def _user_vjp_finish(out, lam, work, hb, direct, haslin, first):
    """After the user's ``vjp`` wrote ``out = J^T v`` and the linear part's transpose
    ``work = L^T v``: with ``direct`` (``v = lam``, the last stage's slope adjoint
    ``hb lam = h b_s lam`` not formed; ``b_s`` may be 0, as Vern7's) ``out = hb (out +
    work)``, else ``out += work``; with ``first`` (stage 0, reversed last) the result is
    added to ``lam`` instead."""
    n = lam.size
    nch = (n + CHUNK - 1) // CHUNK
    for c in prange(nch):
        lo = c * CHUNK
        hi = min(n, lo + CHUNK)
        m = hi - lo
        o = out[lo:hi]
        w = work[lo:hi]
        lm = lam[lo:hi]
        if direct:
            if haslin and first:
                for x in range(m):
                    lm[x] = lm[x] + hb * (o[x] + w[x])
            elif first:
                for x in range(m):
                    lm[x] = lm[x] + hb * o[x]
            elif haslin:
                for x in range(m):
                    o[x] = hb * (o[x] + w[x])
            else:
                for x in range(m):
                    o[x] = hb * o[x]
        elif haslin and first:
            for x in range(m):
                lm[x] += o[x] + w[x]
        elif first:
            for x in range(m):
                lm[x] += o[x]
        elif haslin:
            for x in range(m):
                o[x] += w[x]


def _user_vjp_stage(vj, out, v, Y, p, t, pbar, np_grad, scale):
    """``out = J(Y)^T v`` and ``pbar[:np_grad] += scale J_p(Y)^T v`` by the user's
    ``vjp`` (the source's slots 15-21; nothing for a source without them)."""


@overload(_user_vjp_stage, jit_options={"cache": False})
def _user_vjp_stage_impl(vj, out, v, Y, p, t, pbar, np_grad, scale):
    if len(vj.types) <= 15:
        return lambda vj, out, v, Y, p, t, pbar, np_grad, scale: None

    def impl(vj, out, v, Y, p, t, pbar, np_grad, scale):
        uvjp = vj[16]
        pbuf = vj[19]
        for j in range(pbuf.size):      # cleared: a vjp may accumulate into its outputs
            pbuf[j] = 0.0
        for k in range(out.size):
            out[k] = 0.0
        uvjp(out, pbuf, v, Y, p, t)
        for j in range(np_grad):
            pbar[j] += scale * pbuf[j]
    return impl


@njit(parallel=True, cache=False)
def _kappa_acc(out_k, work, bweight, v):
    for x in prange(v.size):
        out_k[x] += work[x] + bweight[x] * v[x]


@njit(parallel=True, cache=False)
def _imag_dot(cd, v, eps):
    """``sum_i imag(cd_i) / eps * v_i`` over fixed blocks, added in block order."""
    n = v.size
    nb = (n + BLOCK - 1) // BLOCK
    part = np.zeros(nb)
    for b in prange(nb):
        lo = b * BLOCK
        hi = min(n, lo + BLOCK)
        acc = 0.0
        for i in range(lo, hi):
            acc += cd[i].imag / eps * v[i]
        part[b] = acc
    total = 0.0
    for b in range(nb):
        total += part[b]
    return total


# ---------------------------------------------------------------------- forward
@njit(cache=False)
def _slope(f, p, lin, plin, haslin, hasf, tmp, k, Y, t):
    """``k = f(Y, t)``, and ``tmp = lin(Y, t)`` left for the next combination to add
    (returns True then); a pure linear part is written into ``k`` directly."""
    if hasf:
        f(k, Y, p, t)
        if haslin:
            lin(tmp, Y, plin, t)
            return True
        return False
    lin(k, Y, plin, t)
    return False


@njit(cache=False)
def _step(f, p, lin, plin, haslin, hasf, tmp, tab, u, t, h, ks, unew, ytmp, ytmp2, k0_valid,
          want_fsal, fuse_lin):
    """One step from ``(t, u)`` into ``unew``, as :func:`.erk.rk_step`; returns
    ``(number of f calls, number of non-finite entries of unew)``.  The last
    (FSAL) slope is evaluated only when ``want_fsal`` (the next step starts from it).
    With ``fuse_lin`` (the linear part is a packed Laplacian or Diffusion operator, and
    there is an ``f``) each stage combination evaluates the linear part of the slope it
    completes itself (:func:`.erk_large_stencil.combine_stencil`: one pass fewer per
    stage, the same bits); the stage states then alternate between ``ytmp`` and
    ``ytmp2`` (needed from three stages on; it may be ``ytmp`` otherwise)."""
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    s = B.size
    nf = 0
    pending = False
    last = s - 1 if fsal else s
    defer = fuse_lin and haslin and hasf
    # deferred: the last slope evaluated lacks its linear part, at the state Y
    deferred = False
    Y = u
    if not k0_valid:
        if defer:
            f(ks[0], u, p, t)
            deferred = True
        else:
            pending = _slope(f, p, lin, plin, haslin, hasf, tmp, ks[0], u, t)
        nf += 1
    for i in range(1, last):
        yo = ytmp2 if i % 2 == 0 else ytmp
        if deferred:
            combine_stencil(yo, u, ks, A[i], i, h, Y, plin, tmp, np.bool_(True))
        else:
            stage_combine(yo, u, ks, A[i], i, h, i - 1, tmp, pending, np.bool_(True))
        if defer:
            f(ks[i], yo, p, t + C[i] * h)
            deferred = True
        else:
            pending = _slope(f, p, lin, plin, haslin, hasf, tmp, ks[i], yo, t + C[i] * h)
        Y = yo
        nf += 1
    # the last slope completed on the fly only: no later stage reads it
    if deferred:
        bad = combine_stencil(unew, u, ks, B, last, h, Y, plin, tmp, np.bool_(False))
    else:
        bad = stage_combine(unew, u, ks, B, last, h, last - 1, tmp, pending, np.bool_(False))
    if fsal and want_fsal:
        if _slope(f, p, lin, plin, haslin, hasf, tmp, ks[s - 1], unew, t + h):
            _finish_slope(ks, s - 1, tmp, 0)
        else:
            _copy_row(ks, 0, ks, s - 1)
        nf += 1
    return nf, bad


@njit(cache=True)
def count_fixed_steps(t0, stops, dt, maxiters):
    """Number of steps :func:`erk_fixed` takes (the landing rule of :func:`.erk.erk_solve`),
    so that the caller can allocate the save buffer."""
    t1 = stops[-1]
    tdir = 1.0 if t1 >= t0 else -1.0
    t = t0
    istop = 0
    while istop < stops.size and stops[istop] * tdir <= t0 * tdir:
        istop += 1
    m = 0
    while istop < stops.size and m < maxiters:
        stop = stops[istop]
        dist = abs(stop - t)
        land = dt * (1.0 + LAND_RTOL) >= dist
        if land:
            t = stop
            istop += 1
        else:
            t = t + tdir * dt
        m += 1
    return m


@njit(cache=True)
def erk_fixed(rhs, hasf, u0, t0, tab, stops, dt, every, savet, maxiters, us, fuse_lin):
    """Fixed steps of size ``dt`` from ``(t0, u0)`` to ``stops[-1]`` (landing exactly on
    every stop), saving every state (``every``) or those at ``savet``; no callbacks, no
    dense output.  Same states and same return tuple as :func:`.erk.erk_solve`.

    ``hasf`` False means the problem is its linear part alone (``f`` is not called).
    ``us`` is the save buffer, allocated by the caller: ``(count_fixed_steps(...) + 1, n)``
    rows with ``every``, else ``(savet.size + 1, n)`` (NumPy backs a large buffer with
    huge pages, which makes storing every state of a grid about 2x cheaper here than
    the runtime's own allocation).  ``fuse_lin``: the linear part is a packed Laplacian or
    Diffusion operator (its stencil is folded into the stage combinations, see
    :func:`_step`)."""
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    f, p, lin, plin, haslin, tmp = rhs
    n = u0.size
    s = B.size
    t1 = stops[-1]
    tdir = 1.0 if t1 >= t0 else -1.0
    m = count_fixed_steps(t0, stops, dt, maxiters)
    stats = np.zeros(5, np.int64)
    ks = np.empty((s, n))
    ytmp = np.empty(n)
    # the second stage-state buffer of a fused loop with three stages or more
    ytmp2 = np.empty(n) if fuse_lin and s > 2 else ytmp
    steps_t = np.empty(max(m, 1))
    steps_h = np.empty(max(m, 1))
    ts = np.empty(us.shape[0])
    ub = np.empty((0, n)) if every else np.empty((2, n))
    dus = np.empty((0, n))
    dks = np.empty((0, BTH.shape[0] * n))
    ev_t = np.empty(0)
    ev_u = np.empty((0, n))
    nsave = 0
    nsteps = 0
    isave = 0
    t = t0
    if every:
        u = us[0]
        _copy(u, u0)
        ts[0] = t0
        nsave = 1
    else:
        u = ub[0]
        _copy(u, u0)
        if savet.size > 0 and savet[0] == t0:
            ts[0] = t0
            _copy_row(us, 0, ub, 0)
            nsave = 1
            isave = 1
    # the first slope, checked as the general loop checks it
    if _slope(f, p, lin, plin, haslin, hasf, tmp, ks[0], u, t):
        _finish_slope(ks, 0, tmp, -1)
    stats[0] += 1
    for i in range(n):
        if not np.isfinite(ks[0, i]):
            return (ts, us, nsave, steps_t, steps_h, nsteps, dus, dks, ev_t, ev_u, 0, stats,
                    RC_INITIAL, t, u.copy())
    k0_valid = True
    istop = 0
    while istop < stops.size and stops[istop] * tdir <= t0 * tdir:
        istop += 1
    rc = RC_SUCCESS
    cur = 0
    while istop < stops.size:
        if nsteps >= maxiters:
            rc = RC_MAXITERS
            break
        stop = stops[istop]
        dist = abs(stop - t)
        land = dt * (1.0 + LAND_RTOL) >= dist
        hstep = dist if land else dt
        h = tdir * hstep
        unew = us[nsave] if every else ub[1 - cur]
        nf, bad = _step(f, p, lin, plin, haslin, hasf, tmp, tab, u, t, h, ks, unew, ytmp,
                        ytmp2, k0_valid, np.bool_(True), fuse_lin)
        stats[0] += nf
        if bad != 0:
            rc = RC_UNSTABLE
            break
        k0_valid = fsal
        steps_t[nsteps] = t
        steps_h[nsteps] = h
        nsteps += 1
        stats[3] += 1
        t = stop if land else t + h
        if land:
            istop += 1
        u = unew
        if every:
            ts[nsave] = t
            nsave += 1
        else:
            cur = 1 - cur
            if isave < savet.size and t == savet[isave]:
                ts[nsave] = t
                _copy_row(us, nsave, ub, cur)
                nsave += 1
                isave += 1
    return (ts, us, nsave, steps_t, steps_h, nsteps, dus, dks, ev_t, ev_u, 0, stats, rc, t,
            u.copy())


# ---------------------------------------------------------------------- reverse
@njit(cache=False)
def _stage_states(f, p, lin, plin, haslin, hasf, tmp, tab, u, t, h, Ys, ks, nk, fuse_lin):
    """Stage states ``Ys[i]`` (``i >= 1``; ``Y_0`` is ``u``) and slopes ``ks[i]`` for
    ``i < nk``; every stage state up to the step's ``su`` needs ``nk = su - 1``.  With
    ``fuse_lin`` the combinations complete the slopes' linear parts (as :func:`_step`)."""
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    pending = False
    defer = fuse_lin and haslin and hasf
    for i in range(nk):
        Y = u if i == 0 else Ys[i]
        if defer:
            f(ks[i], Y, p, t + C[i] * h)
            combine_stencil(Ys[i + 1], u, ks, A[i + 1], i + 1, h, Y, plin, tmp, np.bool_(True))
        else:
            pending = _slope(f, p, lin, plin, haslin, hasf, tmp, ks[i], Y, t + C[i] * h)
            stage_combine(Ys[i + 1], u, ks, A[i + 1], i + 1, h, i, tmp, pending, np.bool_(True))


@njit(cache=False)
def erk_step_adjoint_large(rhs, vj, diag, tab, u, t, h, lam, pbar, kbar_acc, Ys, ks, Ybar, kb,
                           work, cu, cd, fuse_lin):
    """:func:`.erk_adjoint.erk_step_adjoint` in threaded passes.

    With a diagonal Jacobian of ``f`` (``diag``) a stage costs one pass forming its
    slope adjoint and the complex-step input, the complex twin of ``f``, the transpose
    of the linear part, and one pass for the product (which, for the first stage,
    reversed last, also updates ``lam``); the last stage (forward Euler's only one)
    skips forming its slope adjoint ``h b_s lam``: the transpose acts on ``lam`` and is
    scaled in the product pass (the same derivative, rounded differently from the
    general sweep).  An ``f`` with another pattern goes through the serial
    :func:`.erk_adjoint.vjp_apply`.  ``fuse_lin``: the stage states are recomputed as the
    forward loop computed them (:func:`_step`)."""
    f, p, lin, plin, haslin, tmp = rhs
    (fc, pc, has_f, colour, pat_ptr, pat_idx, ncolour, np_grad, eps,
     linT, plinT, haslinT, kappa_grad, bweight) = vj[:14]
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    su = B.size - 1 if fsal else B.size
    if has_f or kappa_grad:
        _stage_states(f, p, lin, plin, haslin, has_f, tmp, tab, u, t, h, Ys, ks, su - 1,
                      fuse_lin)
    # the user's own derivatives (ODEFunction(vjp=...)) come before the complex step
    umode = user_mode(vj)
    fast_diag = diag and umode == 0
    probe = has_f and fast_diag
    lam_done = False
    for i in range(su - 1, -1, -1):
        Y = u if i == 0 else Ys[i]
        ti = t + C[i] * h
        if has_f and umode & 1:
            # the user's vjp: one call, the linear part's transpose, one threaded pass;
            # the last stage's slope adjoint h b_s lam is not formed (the products are
            # linear in it: scaled in the pass)
            last = i == su - 1 and not kappa_grad
            if not last:
                _adjoint_slope(kb, lam, B[i], Ybar, A, i, su, h, False, cu, Y, eps, True)
            v = lam if last else kb
            hb = B[i] * h if last else 1.0
            _user_vjp_stage(vj, Ybar[i], v, Y, p, ti, pbar, np_grad, hb)
            if haslinT:
                linT(work, v, plinT, ti)
            if i == 0:
                # lam += Ybar_0 + Ybar_1 + ... (the diagonal path's order)
                _user_vjp_finish(Ybar[0], lam, work, hb, last, haslinT, True)
                if su > 1:
                    _lam_update(lam, Ybar, 1, su)
                lam_done = True
            else:
                _user_vjp_finish(Ybar[i], lam, work, hb, last, haslinT, False)
            if haslinT and kappa_grad:
                kappa_vjp(vj, work, Y, kb, plinT)
                _kappa_acc(kbar_acc, work, bweight, kb)
            continue
        # the last stage's slope adjoint is h b_s lam: not formed, the linear part's
        # transpose acts on lam (and is scaled in the product pass)
        direct = i == su - 1 and probe and np_grad == 0 and not kappa_grad
        _adjoint_slope(kb, lam, B[i], Ybar, A, i, su, h, probe, cu, Y, eps, not direct)
        if has_f and not fast_diag:
            vjp_apply(vj, kb, Y, p, ti, Ybar[i], pbar, kbar_acc, work, cu, cd)
            continue
        if has_f:
            for j in range(pc.size):
                pc[j] = p[j]
            fc(cd, cu, pc, ti)
            if haslinT:
                linT(work, lam if direct else kb, plinT, ti)
            out = lam if i == 0 else Ybar[i]
            if direct:
                _diag_vjp_direct(out, cd, lam, B[i], h, eps, work, haslinT, i == 0)
            else:
                _diag_vjp(out, cd, kb, eps, work, haslinT, i == 0)
            if i == 0:
                # lam += Ybar_0 + Ybar_1 + ... with Ybar_0 formed on the fly
                if su > 1:
                    _lam_update(lam, Ybar, 1, su)
                lam_done = True
            if np_grad > 0:
                _complex_copy(cu, Y)
                for j in range(np_grad):
                    pc[j] = complex(p[j], eps)
                    fc(cd, cu, pc, ti)
                    pbar[j] += _imag_dot(cd, kb, eps)
                    pc[j] = p[j]
        elif haslinT:
            linT(Ybar[i], kb, plinT, ti)
        if haslinT and kappa_grad:
            kappa_vjp(vj, work, Y, kb, plinT)
            _kappa_acc(kbar_acc, work, bweight, kb)
    if not lam_done:
        _lam_update(lam, Ybar, 0, su)


@njit(cache=True)
def erk_reverse_large(rhs, vj, diag, tab, states, steps_t, steps_h, i0, i1, gsave, save_after,
                      lam, pbar, kbar, fuse_lin):
    """:func:`.erk_adjoint.erk_reverse` for large states (same arguments, ``diag``: the
    Jacobian of ``f`` is declared diagonal, and ``fuse_lin`` as :func:`erk_fixed`)."""
    n = lam.size
    s = tab[2].size
    Ys = np.empty((s, n))
    ks = np.empty((s, n))
    Ybar = np.empty((s, n))
    kb = np.empty(n)
    work = np.empty(n)
    nc = n if vj[2] else 0
    cu = np.empty(nc, np.complex128)
    cd = np.empty(nc, np.complex128)
    for i in range(i1 - 1, i0 - 1, -1):
        g = save_after[i]
        if g >= 0:
            _add(lam, gsave[g])
        erk_step_adjoint_large(rhs, vj, diag, tab, states[i - i0], steps_t[i], steps_h[i], lam,
                               pbar, kbar, Ys, ks, Ybar, kb, work, cu, cd, fuse_lin)


@njit(cache=True)
def erk_advance_large(rhs, hasf, tab, u, steps_t, steps_h, i0, i1, ks, Ys, fuse_lin):
    """Redo the recorded steps ``i0 .. i1-1`` from ``u`` in place (the forward loop's
    arithmetic, ``fuse_lin`` as there: :func:`erk_fixed` and this give the same states bit
    for bit).  The states alternate between ``u`` and ``Ys[0]`` (one copy at the end, if
    any); ``Ys[1]`` and ``Ys[2]`` hold the stage states."""
    f, p, lin, plin, haslin, tmp = rhs
    a = u
    b = Ys[0]
    # Ys has max(s, 2) rows: a third for the alternating stage states from three stages
    y2 = Ys[2] if Ys.shape[0] > 2 else Ys[1]
    flip = False
    for i in range(i0, i1):
        _step(f, p, lin, plin, haslin, hasf, tmp, tab, a, steps_t[i], steps_h[i], ks, b, Ys[1],
              y2, np.bool_(False), np.bool_(False), fuse_lin)
        a, b = b, a
        flip = not flip
    if flip:
        _copy(u, a)


@njit(cache=True)
def erk_schedule_large(rhs, vj, diag, tab, u0, steps_t, steps_h, ops, C, gsave, save_after, lam,
                       pbar, kbar, fuse_lin):
    """:func:`.erk_adjoint.erk_schedule` for large states (same arguments, ``diag``, and
    ``fuse_lin`` as :func:`erk_fixed`)."""
    n = u0.size
    s = tab[2].size
    snaps = np.empty((C + 2, n))
    keys = np.empty(C + 2, np.int64)
    top = -1
    cur = np.empty((1, n))
    _copy(cur[0], u0)
    ks = np.empty((s, n))
    Ys = np.empty((max(s, 2), n))
    Ybar = np.empty((s, n))
    kb = np.empty(n)
    work = np.empty(n)
    # complex work only where f has a VJP to take
    nc = n if vj[2] else 0
    cu = np.empty(nc, np.complex128)
    cd = np.empty(nc, np.complex128)
    hasf = vj[2]
    for q in range(ops.shape[0]):
        op = ops[q, 0]
        a = ops[q, 1]
        if op == 0:
            erk_advance_large(rhs, hasf, tab, cur[0], steps_t, steps_h, a, ops[q, 2], ks,
                              Ys, fuse_lin)
        elif op == 1:
            g = save_after[a]
            if g >= 0:
                _add(lam, gsave[g])
            erk_step_adjoint_large(rhs, vj, diag, tab, cur[0], steps_t[a], steps_h[a], lam, pbar,
                                   kbar, Ys, ks, Ybar, kb, work, cu, cd, fuse_lin)
        elif op == 2:
            top += 1
            keys[top] = a
            _copy_row(snaps, top, cur, 0)
        else:
            while top > 0 and keys[top] > a:
                top -= 1
            _copy_row(cur, 0, snaps, top)
