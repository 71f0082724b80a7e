"""Adaptive explicit Runge-Kutta ensembles in lockstep: many trajectories per thread.

:func:`jitsolve.kernels.cpu.erk.erk_ensemble` integrates one trajectory per thread
through the general loop: every stage is a call of the user's ``f`` through a
first-class function (about 8 ns: its arrays are passed field by field) plus short
tableau loops over ``n`` entries.  For a small system (Lorenz-63: n = 3) that overhead,
not the arithmetic, is the step.  Here a thread takes a batch of ``L`` trajectories
(lanes) and steps them together: every lane keeps its own time, step size, error history,
next stop and save pointer and takes its own accept/reject decision, exactly as
:func:`~jitsolve.kernels.cpu.erk.erk_solve` would, while

- each stage is evaluated for all the active lanes with *one* call of a batch function
  ``fb`` (``SIGNATURES["f_batch_t"]`` of ``jitsolve.functions``: the user's ``f``
  compiled into a loop over the lanes listed, each at its own time, on column views
  whose addresses the compiler follows, so the user's arithmetic itself runs on SIMD
  vectors of lanes: the batch's states are then the columns of ``(n, L)`` arrays), or,
  where the batch form is not worth its compile or ``f`` has none, with one first-class
  call of ``f`` per lane (the states are then the rows of ``(L, n)`` arrays, which ``f``
  takes as they are: copying a column to a row and back around each call cost 30 %);
- the stage combinations, the new state and the error estimate are SIMD loops over all
  ``L * n`` entries of the batch (the step size replicated per entry);
- the step control is SIMD loops over the whole batch wherever it is the same for every
  lane: the step sizes and landings, the error norms (:func:`_lane_errors`), the PI
  controller's factors (libm-free and branch-free, :mod:`~jitsolve.kernels.cpu.fastpow`),
  acceptance, the new times, step sizes and states (a lane that is not stepping has
  ``h = 0``; a rejected lane's candidate is reset to its state before the batch-wide
  copy); only what differs from lane to lane (rejections, stops, saves, failures) is a
  scalar loop over the lanes concerned, through the general loop's helpers
  (:mod:`~jitsolve.kernels.cpu.stepcontrol`), and skipped after SIMD tests find none
  (the common pass: every lane accepts, none lands on a stop or a save).  (Lorenz
  ensemble, one thread, per trajectory-step: 62 -> 41 ns on 2026-12-02, sixth session;
  41 -> 30 ns with the columns and the skipped scans, twenty-third session: see
  perf/RESULTS.md.)

Lanes that finish or fail drop out of the lane list and wait (masked) until the batch is
done.  Every entry is computed with the general loop's arithmetic in the same order
(``acc = 0; acc += a_ij k_j; u + h acc``, no fused multiply-adds), so each trajectory's
saved states, statistics and return code are bit-for-bit those of ``erk_ensemble``
(tested): this is the same solver, vectorised across trajectories.

Supported: what ``erk_ensemble`` does without callbacks, ``tstops`` or a linear part
(the solvers layer falls back to ``erk_ensemble`` for those): any tableau of
:mod:`jitsolve.solvers.ode.tableaus` (first-same-as-last or not), adaptive or fixed
steps, forward or backward spans.  Saving as ``erk_solve``: a ``savet`` time that is a
step's end saves that state; those strictly inside a lane's accepted step (the caller did
not make them stops) are that lane's interpolant there, evaluated after the step with
its stages (:func:`_dense_saves`; Verner's extra stages only for the lanes whose step
holds saves, counted in their ``nf``).

References
----------
Hairer, Nørsett, Wanner, *Solving ODEs I* (1993), II.1 (explicit RK), II.4 (error norm,
step control, initial step), II.6 (dense output); Hairer, Wanner, *Solving ODEs II* (1996), IV.2 (PI control);
Tsitouras, Comput. Math. Appl. 62 (2011) (Tsit5).
"""
import numpy as np
from numba import njit, prange

from .borrow import borrow, keep_alive
from .erk import (LAND_RTOL, RC_DTMIN, RC_INITIAL, RC_MAXITERS, RC_UNSTABLE, borrow_tab,
                  dense_weights)
from .stepcontrol import (accepted_step, initial_dt_finish, initial_dt_probe, pi_factor,
                          reject_factor, weighted_square)

__all__ = ["LANES", "erk_lockstep"]

#: trajectories integrated together by one thread
LANES = 64


@njit(inline="always", cache=False)
def _eval(f, fb, batched, DU, U, ps, PB, T, idx, i0, nl):
    """``f(U_l, p_l, T[l])`` into ``DU_l`` for the lanes ``l = idx[k]``, ``k < nl``: one
    call of the batch form ``fb`` on the columns (the batch's parameters ``PB`` one column
    per lane, or one column shared), or one first-class call of ``f`` per lane on the rows
    with its row of ``ps`` (the batch's layout follows ``batched``: see
    :func:`_lockstep_batch`)."""
    if batched:
        fb(DU, U, PB, T, idx, nl)
    else:
        one = ps.shape[0] == 1
        for k in range(nl):
            l = idx[k]
            f(DU[l], U[l], ps[0] if one else ps[i0 + l], T[l])


@njit(inline="always", cache=False)
def _e(i, l, si, sl):
    """Flat index of component ``i`` of lane ``l`` in a batch array (``si, sl``: ``L, 1``
    with the states in columns, ``1, n`` in rows)."""
    return i * si + l * sl


@njit(inline="always", cache=False)
def _terms(acc, kf, coef, j, w, first):
    """``acc += coef[j] kf[j] + ... + coef[j+w-1] kf[j+w-1]`` (``w <= 4``), added one term
    at a time in that order (``first``: ``acc`` starts at 0.0), in one pass over the
    entries: the general loop's sums with a quarter of the loads and stores of ``acc``."""
    m = acc.size
    c0 = coef[j]
    k0 = kf[j]
    if w == 1:
        if first:
            for k in range(m):
                acc[k] = 0.0 + c0 * k0[k]
        else:
            for k in range(m):
                acc[k] += c0 * k0[k]
        return
    c1 = coef[j + 1]
    k1 = kf[j + 1]
    if w == 2:
        if first:
            for k in range(m):
                acc[k] = (0.0 + c0 * k0[k]) + c1 * k1[k]
        else:
            for k in range(m):
                acc[k] = (acc[k] + c0 * k0[k]) + c1 * k1[k]
        return
    c2 = coef[j + 2]
    k2 = kf[j + 2]
    if w == 3:
        if first:
            for k in range(m):
                acc[k] = ((0.0 + c0 * k0[k]) + c1 * k1[k]) + c2 * k2[k]
        else:
            for k in range(m):
                acc[k] = ((acc[k] + c0 * k0[k]) + c1 * k1[k]) + c2 * k2[k]
        return
    c3 = coef[j + 3]
    k3 = kf[j + 3]
    if first:
        for k in range(m):
            acc[k] = (((0.0 + c0 * k0[k]) + c1 * k1[k]) + c2 * k2[k]) + c3 * k3[k]
    else:
        for k in range(m):
            acc[k] = (((acc[k] + c0 * k0[k]) + c1 * k1[k]) + c2 * k2[k]) + c3 * k3[k]


@njit(inline="always", cache=False)
def _lane_sum(acc, kf, coef, nst):
    """``acc = sum_{j < nst} coef[j] * kf[j]`` over all entries of the batch (flat), with
    the summation order of ``erk.combine_serial`` (``acc = 0; acc += coef[j] k_j``)."""
    if nst == 0:
        for k in range(acc.size):
            acc[k] = 0.0
    j = 0
    while j < nst:
        w = min(4, nst - j)
        _terms(acc, kf, coef, j, w, j == 0)
        j += w


@njit(inline="always", cache=False)
def _combine_lanes(out, u, kf, coef, nst, hr, acc):
    """``out = u + hr * sum_{j < nst} coef[j] * kf[j]`` over all entries of the batch, as
    ``erk.combine_serial`` per lane (``hr`` holds each lane's step on each of its entries)."""
    _lane_sum(acc, kf, coef, nst)
    for k in range(u.size):
        out[k] = u[k] + hr[k] * acc[k]


@njit(inline="always", cache=False)
def _keep_lane(UNf, Uf, Kf, last, fsal, l, n, si, sl):
    """A lane that does not accept its step keeps its state and first slope through the
    batch-wide copies ``U = UN`` (and ``K[0] = K[last]``) that accept the others (flat
    views, entries :func:`_e`)."""
    for i in range(n):
        e = _e(i, l, si, sl)
        UNf[e] = Uf[e]
        if fsal:
            Kf[last, e] = Kf[0, e]


@njit(cache=False, error_model="numpy")
def _lane_errors(ERR, W2, HR, ACC, U, UN, ATOL, RTOL, L, n, cols):
    """``ERR[l]`` = the error norm of lane ``l`` (:func:`~.stepcontrol.error_norm_at` of the
    estimate ``HR * ACC`` against ``U``, ``UN``), for every lane of the batch, as SIMD loops:
    the weighted squares over all ``L * n`` entries (``ATOL``, ``RTOL`` replicated per lane,
    like ``HR``; written into ``W2``), then each lane's sum in component order (entry
    ``i * L + l`` with the states in columns, ``l * n + i`` in rows) and its square root.
    The same arithmetic in the same order as ``error_norm_at``: the same bits.
    (2026-12-02: the per-lane scalar norm was a fifth of the lockstep kernel's time.)"""
    m = L * n
    for k in range(m):
        sc = ATOL[k] + RTOL[k] * max(abs(U[k]), abs(UN[k]))
        W2[k] = weighted_square(HR[k] * ACC[k], sc)
    for l in range(L):
        ERR[l] = 0.0
    if cols:
        for i in range(n):
            for l in range(L):
                ERR[l] += W2[i * L + l]
    else:
        for i in range(n):
            for l in range(L):
                ERR[l] += W2[l * n + i]
    dn = max(n, 1)
    for l in range(L):
        ERR[l] = np.sqrt(ERR[l] / dn)


@njit(cache=False)
def _dense_saves(f, fb, batched, ps, PB, tab, savet, tdir, i0, n, Y, K, Kf, Uf, Yf, HR, ACC, T,
                 H, TN, TS, W, idense, nden, ISAVE, SAVEV, NSAVE, NF, out, si, sl):
    """The saves strictly inside the accepted step of each lane ``idense[k]``, ``k < nden``
    (``Uf`` still the state before the step, ``K`` its stages): the method's interpolant
    ``u + h sum_i b_i(theta) k_i`` with ``erk.dense_eval``'s arithmetic (Hairer, Nørsett,
    Wanner I, II.6).  The extra stages of an interpolant that needs them (Verner) are
    computed for these lanes only, vectorised over the batch as the step's stages are, and
    counted in their ``nf``, as ``erk_solve`` does on a step that holds saves."""
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    s = B.size
    sd = BTH.shape[0]
    nsv = savet.size
    for r in range(CX.size):
        _combine_lanes(Yf, Uf, Kf, AX[r], s + r, HR, ACC)
        cr = CX[r]
        for k in range(nden):
            l = idense[k]
            TS[l] = T[l] + cr * H[l]
        _eval(f, fb, batched, K[s + r], Y, ps, PB, TS, idense, i0, nden)
    for k in range(nden):
        l = idense[k]
        NF[l] += CX.size
        t = T[l]
        h = H[l]
        tnew = TN[l]
        while ISAVE[l] < nsv and (tnew - savet[ISAVE[l]]) * tdir > 0.0:
            dense_weights(W, BTH, (savet[ISAVE[l]] - t) / h)
            row = NSAVE[l]
            for i in range(n):
                acc = 0.0
                for j in range(sd):
                    acc += W[j] * Kf[j, _e(i, l, si, sl)]
                out[i0 + l, row, i] = Uf[_e(i, l, si, sl)] + h * acc
            NSAVE[l] += 1
            ISAVE[l] += 1
        SAVEV[l] = savet[ISAVE[l]] if ISAVE[l] < nsv else np.nan


@njit(cache=False)
def _lockstep_batch(f, fb, batched, u0s, ps, t0, tab, ctrl, stops, savet, i0, nl, L, out,
                    retcodes, stats):
    """Trajectories ``i0 .. i0 + nl - 1`` (``nl <= L``) in lockstep; results into ``out``,
    ``retcodes`` and ``stats`` at rows ``i0 + l`` (as ``erk_ensemble`` writes them)."""
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab
    rtol, atol, adaptive, dt, dtmin, dtmax, maxiters, beta1, beta2, safety, qmin, qmax = ctrl
    n = u0s.shape[1]
    s = B.size
    ns = s + CX.size             # the step's stages, then the interpolant's extra ones
    sd = BTH.shape[0]
    last = s - 1 if fsal else s
    m = L * n
    nsv = savet.size
    nstop = stops.size
    t1 = stops[-1]
    tdir = 1.0 if t1 >= t0 else -1.0

    # with the batch form of f, one state per column (entry i * L + l): fb runs the user's
    # arithmetic on SIMD vectors of lanes (functions._batch_t_of); with calls of f per
    # lane, one state per row (entry l * n + i), which f takes as it is
    cols = batched
    si, sl = (L, 1) if cols else (1, n)
    U = np.zeros((n, L)) if cols else np.zeros((L, n))
    UN = np.zeros((n, L)) if cols else np.zeros((L, n))
    Y = np.zeros((n, L)) if cols else np.zeros((L, n))
    E = np.zeros((n, L)) if cols else np.zeros((L, n))
    K = np.zeros((ns, n, L)) if cols else np.zeros((ns, L, n))
    # the batch's parameters, one column per lane (one column when shared)
    one = ps.shape[0] == 1
    npar = ps.shape[1]
    PB = np.zeros((npar, 1 if one else L))
    urow = np.zeros(n)      # contiguous copies of one lane's state (initial step)
    durow = np.zeros(n)
    krow = np.zeros(n)
    erow = np.zeros(n)
    HR = np.zeros(m)
    ACC = np.zeros(m)
    T = np.zeros(L)
    TS = np.zeros(L)
    H = np.zeros(L)
    HSTEP = np.zeros(L)
    HABS = np.zeros(L)
    EPREV = np.full(L, 1e-4)
    D1 = np.zeros(L)
    LAND = np.zeros(L, np.bool_)
    AREJ = np.zeros(L, np.bool_)
    K0V = np.ones(L, np.bool_)
    ACT = np.zeros(L, np.bool_)
    ISTOP = np.zeros(L, np.int64)
    ISAVE = np.zeros(L, np.int64)
    NSAVE = np.zeros(L, np.int64)
    NITER = np.zeros(L, np.int64)
    NF = np.zeros(L, np.int64)
    NACC = np.zeros(L, np.int64)
    NREJ = np.zeros(L, np.int64)
    RC = np.zeros(L, np.int64)
    TN = np.zeros(L)
    STOPV = np.zeros(L)         # stops[ISTOP[l]] while lane l steps (no gather past the end)
    SAVEV = np.full(L, np.nan)  # savet[ISAVE[l]], NaN past the last save (compares false)
    ACCM = np.zeros(L, np.bool_)
    SMALL = np.zeros(L, np.bool_)   # accepted, and the controller's next step is below dtmin
    FAC = np.zeros(L)
    ERR = np.ones(L)
    W = np.zeros(sd)
    ATOLF = np.empty(m)
    RTOLF = np.empty(m)
    idx = np.zeros(L, np.int64)
    idx0 = np.zeros(L, np.int64)
    iacc = np.zeros(L, np.int64)
    idense = np.zeros(L, np.int64)
    # the loop works on borrowed references (.borrow: no reference counting per use in the
    # inlined lane helpers); ``owners`` keeps the allocations live to the end
    owners = (U, UN, Y, E, K, PB, urow, durow, krow, erow, HR, ACC, T, TS, H, HSTEP, HABS,
              EPREV, D1, LAND, AREJ, K0V, ACT, ISTOP, ISAVE, NSAVE, NITER, NF, NACC, NREJ, RC,
              TN, FAC, ERR, W, idx, idx0, iacc, idense, ATOLF, RTOLF, STOPV, SAVEV, ACCM, SMALL)
    U, UN, Y, E, K, HR, ACC = (borrow(U), borrow(UN), borrow(Y), borrow(E), borrow(K),
                               borrow(HR), borrow(ACC))
    PB, urow, durow = borrow(PB), borrow(urow), borrow(durow)
    krow, erow = borrow(krow), borrow(erow)
    T, TS, H, HSTEP, HABS, EPREV, D1 = (borrow(T), borrow(TS), borrow(H), borrow(HSTEP),
                                        borrow(HABS), borrow(EPREV), borrow(D1))
    LAND, AREJ, K0V, ACT, ACCM = borrow(LAND), borrow(AREJ), borrow(K0V), borrow(ACT), borrow(ACCM)
    SMALL = borrow(SMALL)
    ISTOP, ISAVE, NSAVE, NITER, NF, NACC, NREJ, RC = (
        borrow(ISTOP), borrow(ISAVE), borrow(NSAVE), borrow(NITER), borrow(NF), borrow(NACC),
        borrow(NREJ), borrow(RC))
    TN, FAC, ERR, W, STOPV = borrow(TN), borrow(FAC), borrow(ERR), borrow(W), borrow(STOPV)
    SAVEV = borrow(SAVEV)
    idx, idx0, iacc, idense = borrow(idx), borrow(idx0), borrow(iacc), borrow(idense)
    Uf = U.reshape(m)
    UNf = UN.reshape(m)
    Yf = Y.reshape(m)
    Ef = E.reshape(m)
    Kf = K.reshape((ns, m))
    u0s, ps, stops, savet = borrow(u0s), borrow(ps), borrow(stops), borrow(savet)
    out, retcodes, stats = borrow(out), borrow(retcodes), borrow(stats)
    rtol, atol = borrow(rtol), borrow(atol)
    ATOLF, RTOLF = borrow(ATOLF), borrow(RTOLF)
    for i in range(n):
        for l in range(L):
            ATOLF[_e(i, l, si, sl)] = atol[i]
            RTOLF[_e(i, l, si, sl)] = rtol[i]
    for j in range(npar):
        if one:
            PB[j, 0] = ps[0, j]
        else:
            for l in range(nl):
                PB[j, l] = ps[i0 + l, j]
    tab = borrow_tab(tab)
    C, A, B, BERR, fsal, BTH, CX, AX, q = tab

    # ---- start (erk_solve before its loop): save at t0, f(u0), initial step
    save0 = nsv > 0 and savet[0] == t0
    for l in range(nl):
        for i in range(n):
            Uf[_e(i, l, si, sl)] = u0s[i0 + l, i]
        T[l] = t0
        if save0:
            for i in range(n):
                out[i0 + l, 0, i] = u0s[i0 + l, i]
            NSAVE[l] = 1
            ISAVE[l] = 1
        SAVEV[l] = savet[ISAVE[l]] if ISAVE[l] < nsv else np.nan
        idx[l] = l
    _eval(f, fb, batched, K[0], U, ps, PB, T, idx, i0, nl)
    na = 0
    for l in range(nl):
        NF[l] = 1
        finite = True
        for i in range(n):
            if not np.isfinite(Kf[0, _e(i, l, si, sl)]):
                finite = False
                break
        if finite:
            ACT[l] = True
            idx[na] = l
            na += 1
        else:
            RC[l] = RC_INITIAL
    istop0 = 0
    while istop0 < nstop and stops[istop0] * tdir <= t0 * tdir:
        istop0 += 1
    if adaptive and not dt > 0.0:
        # (on contiguous copies of each lane's state)
        for k in range(na):
            l = idx[k]
            for i in range(n):
                urow[i] = Uf[_e(i, l, si, sl)]
                krow[i] = Kf[0, _e(i, l, si, sl)]
            h0, d1 = initial_dt_probe(urow, krow, tdir, atol, rtol, dtmax, durow)
            for i in range(n):
                Yf[_e(i, l, si, sl)] = durow[i]
            HABS[l] = h0
            D1[l] = d1
            TS[l] = T[l] + tdir * h0
        _eval(f, fb, batched, E, Y, ps, PB, TS, idx, i0, na)
        for k in range(na):
            l = idx[k]
            for i in range(n):
                urow[i] = Uf[_e(i, l, si, sl)]
                krow[i] = Kf[0, _e(i, l, si, sl)]
                erow[i] = Ef[_e(i, l, si, sl)]
            HABS[l] = max(initial_dt_finish(urow, krow, erow, HABS[l], D1[l], q - 1, atol,
                                            rtol, dtmax, durow), dtmin)   # as erk_solve
            NF[l] += 1
    for k in range(na):
        l = idx[k]
        if not adaptive or dt > 0.0:
            HABS[l] = dt
        HABS[l] = min(HABS[l], dtmax)
        ISTOP[l] = istop0
        if istop0 >= nstop:
            ACT[l] = False
        else:
            STOPV[l] = stops[istop0]
    # ---- the stepping loop: one step attempt of every active lane per pass
    # ``clean``: no lane has stopped or lost its first slope since the lists were built
    clean = False
    while True:
        # lane setup; the list of active lanes is compacted in place (a SIMD pass instead
        # when nothing changed and no lane reaches maxiters: the common pass)
        full = False
        for l in range(L):
            full |= ACT[l] and NITER[l] >= maxiters
        if clean and not full:
            for l in range(L):
                NITER[l] += 1 if ACT[l] else 0
            nact = na
            n0 = 0
        else:
            nact = 0
            n0 = 0
            for k in range(na):
                l = idx[k]
                if not ACT[l]:
                    continue
                if NITER[l] >= maxiters:
                    RC[l] = RC_MAXITERS
                    ACT[l] = False
                    continue
                NITER[l] += 1
                idx[nact] = l
                nact += 1
                if not K0V[l]:
                    idx0[n0] = l
                    n0 += 1
            na = nact
            clean = n0 == 0
        if nact == 0:
            break
        # every lane's step in SIMD loops (a lane that is not stepping gets h = 0)
        for l in range(L):
            dist = abs(STOPV[l] - T[l])
            land = HABS[l] * (1.0 + LAND_RTOL) >= dist   # no sliver steps (as erk_solve)
            hstep = dist if land else HABS[l]
            hstep = hstep if ACT[l] else 0.0
            HSTEP[l] = hstep
            H[l] = tdir * hstep
            LAND[l] = land
        if cols:
            for i in range(n):
                for l in range(L):
                    HR[i * L + l] = H[l]
        else:
            for l in range(L):
                for i in range(n):
                    HR[l * n + i] = H[l]
        # ---- one RK step of every active lane (erk.rk_step, vectorised over the lanes)
        if n0 > 0:
            _eval(f, fb, batched, K[0], U, ps, PB, T, idx0, i0, n0)
        for i in range(1, last):
            _combine_lanes(Yf, Uf, Kf, A[i], i, HR, ACC)
            ci = C[i]
            for l in range(L):
                TS[l] = T[l] + ci * H[l]
            _eval(f, fb, batched, K[i], Y, ps, PB, TS, idx, i0, nact)
        _combine_lanes(UNf, Uf, Kf, B, last, HR, ACC)
        if fsal:
            for l in range(L):
                TS[l] = T[l] + H[l]
            _eval(f, fb, batched, K[s - 1], UN, ps, PB, TS, idx, i0, nact)
        if adaptive:
            # error estimate h * sum_j BERR[j] k_j (the general loop's order)
            _lane_sum(ACC, Kf, BERR, s)
        nfs = (last - 1) + (1 if fsal else 0)
        # ---- step control per lane (erk_solve's accept/reject)
        if adaptive:
            # every lane's error norm in SIMD loops (E holds the weighted squares)
            _lane_errors(ERR, Ef, HR, ACC, Uf, UNf, ATOLF, RTOLF, L, n, cols)
            # the PI factors of all lanes in one SIMD loop (the controller is branch-free);
            # only the lanes that accept below use theirs: erk_solve's values, bit for bit
            for l in range(L):
                FAC[l] = pi_factor(ERR[l], EPREV[l], beta1, beta2, safety, qmin,
                                   1.0 if AREJ[l] else qmax)
        # what every stepping lane does, accepted or not, in SIMD loops over the batch: its
        # count of f evaluations, the end of its step, and (adaptive) acceptance with the
        # controller's memory of an accepted step
        for l in range(L):
            a = ACT[l]
            NF[l] += (nfs if K0V[l] else nfs + 1) if a else 0
            K0V[l] = K0V[l] or a
            TN[l] = STOPV[l] if LAND[l] else T[l] + H[l]
            if adaptive:
                ok = a and ERR[l] <= 1.0
                EPREV[l] = max(ERR[l], 1e-4) if ok else EPREV[l]
                AREJ[l] = AREJ[l] and not ok
                ACCM[l] = ok
            else:
                ACCM[l] = a
        # rejections (rare), the lists of accepted lanes and of lanes with saves inside; a
        # SIMD test first: with every stepping lane accepted and no save inside a step (the
        # common pass), the accepted lanes are the active ones
        nrej = 0
        inside = False
        for l in range(L):
            nrej += 1 if ACT[l] and not ACCM[l] else 0
            inside |= ACCM[l] and (TN[l] - SAVEV[l]) * tdir > 0.0
        allacc = adaptive and nrej == 0 and not inside
        nacc = 0
        nden = 0
        for k in range(0 if allacc else nact):
            l = idx[k]
            if adaptive:
                if not ACCM[l]:
                    _keep_lane(UNf, Uf, Kf, s - 1, fsal, l, n, si, sl)
                    err = ERR[l]
                    NREJ[l] += 1
                    nonfinite = not (err < np.inf)
                    HABS[l] = HSTEP[l] * reject_factor(err, beta1, safety, qmin)
                    AREJ[l] = True
                    if HABS[l] < dtmin:
                        RC[l] = RC_UNSTABLE if nonfinite else RC_DTMIN
                        ACT[l] = False
                        clean = False
                    continue
            else:
                finite = True
                for i in range(n):
                    if not np.isfinite(UNf[_e(i, l, si, sl)]):
                        finite = False
                        break
                if not finite:
                    RC[l] = RC_UNSTABLE
                    ACT[l] = False
                    clean = False
                    ACCM[l] = False
                    _keep_lane(UNf, Uf, Kf, s - 1, fsal, l, n, si, sl)
                    continue
            iacc[nacc] = l
            nacc += 1
            # save times strictly inside the step (not stops): the interpolant's lanes
            if ISAVE[l] < nsv and (TN[l] - savet[ISAVE[l]]) * tdir > 0.0:
                idense[nden] = l
                nden += 1
        # ---- saves inside accepted steps from the interpolant (erk_solve's dense saves)
        if nden > 0:
            _dense_saves(f, fb, batched, ps, PB, tab, savet, tdir, i0, n, Y, K, Kf, Uf, Yf,
                         HR, ACC, T, H, TN, TS, W, idense, nden, ISAVE, SAVEV, NSAVE, NF, out,
                         si, sl)
        # ---- accept: advance the lanes (times, counts, next steps: SIMD over the batch),
        # then states, stops and saves at step ends lane by lane
        for l in range(L):
            ok = ACCM[l]
            NACC[l] += 1 if ok else 0
            T[l] = TN[l] if ok else T[l]
            small = False
            if adaptive:
                habs, small = accepted_step(HSTEP[l], FAC[l], HABS[l], LAND[l], LAND[l], dtmin,
                                            dtmax)
            else:
                habs = dt
            HABS[l] = habs if ok else HABS[l]
            SMALL[l] = ok and small
        # the new states (and first-same-as-last slopes) of the whole batch in SIMD copies:
        # a rejected lane's UN (and last slope) was reset to its U (first slope) above, and
        # a lane that is not stepping has UN = U + 0 * (its last slopes), never read again
        for k in range(m):
            Uf[k] = UNf[k]
        if fsal:
            K0f = Kf[0]
            Klf = Kf[s - 1]
            for k in range(m):
                K0f[k] = Klf[k]
        # stops, saves at step ends and the end of a lane, lane by lane where a SIMD test
        # finds any (or the method must evaluate its next first slope)
        event = not fsal
        for l in range(L):
            event |= ACCM[l] and (LAND[l] or SMALL[l] or T[l] == SAVEV[l])
        if not event:
            continue
        lanes = idx if allacc else iacc
        for k in range(nact if allacc else nacc):
            l = lanes[k]
            if LAND[l]:
                ISTOP[l] += 1
                if ISTOP[l] < nstop:
                    STOPV[l] = stops[ISTOP[l]]
                else:
                    ACT[l] = False
                    clean = False
            if SMALL[l] and ACT[l]:
                RC[l] = RC_DTMIN      # erk_solve's stop on a proposal below dtmin
                ACT[l] = False
                clean = False
            if not fsal:
                K0V[l] = False
                clean = False
            if ISAVE[l] < nsv and T[l] == savet[ISAVE[l]]:
                for i in range(n):
                    out[i0 + l, NSAVE[l], i] = Uf[_e(i, l, si, sl)]
                NSAVE[l] += 1
                ISAVE[l] += 1
                SAVEV[l] = savet[ISAVE[l]] if ISAVE[l] < nsv else np.nan
    for l in range(nl):
        for j in range(NSAVE[l], nsv):
            for i in range(n):
                out[i0 + l, j, i] = np.nan
        retcodes[i0 + l] = RC[l]
        stats[i0 + l, 0] = NF[l]
        stats[i0 + l, 1] = 0
        stats[i0 + l, 2] = 0
        stats[i0 + l, 3] = NACC[l]
        stats[i0 + l, 4] = NREJ[l]
    keep_alive(owners)


@njit(parallel=True, cache=True)
def erk_lockstep(f, fb, batched, u0s, ps, t0, tab, ctrl, stops, savet, lanes, out, retcodes,
                 stats):
    """Trajectory ``i`` of ``u0s`` (N, n) with parameters ``ps[i]`` (``ps`` with one row:
    shared), saved at the common times ``savet`` into ``out[i]`` (N, nsave, n); the
    arguments and results of :func:`jitsolve.kernels.cpu.erk.erk_ensemble` without
    callbacks or linear part (``stops`` must not be empty).  Batches of ``lanes``
    trajectories, one batch per thread at a time, in lockstep; ``f`` the right-hand side
    as a first-class function, ``fb`` its batch form (``SIGNATURES["f_batch_t"]``), used
    when ``batched``.  ``stats`` (N, 5), ``retcodes`` (N,)."""
    N = u0s.shape[0]
    nb = (N + lanes - 1) // lanes
    for b0 in prange(nb):
        b = np.int64(b0)
        i0 = b * lanes
        nl = min(lanes, N - i0)
        _lockstep_batch(f, fb, batched, u0s, ps, t0, tab, ctrl, stops, savet, i0, nl, lanes,
                        out, retcodes, stats)
