"""Per-trajectory discrete adjoints of SDE ensembles in one compiled kernel (CPU, Numba):
one trajectory per thread (``prange``), each on its own Brownian path.

Trajectory ``i`` runs on path ``i`` of ``seed`` (the path ``js.solve(ensemble, seed=...)``
gives it) with its own row of ``u0s``/``ps``: the forward storing every state with the
single-trajectory kernels' arithmetic (:mod:`jitsolve.kernels.cpu.sde_adjoint`'s
``_*_advance``; adaptive SRA1/SRIW1 record their accepted steps per thread with
:func:`~jitsolve.kernels.cpu.sde_adjoint.sde_record_steps`), the L2 loss
``0.5 sum_j w (u(t_j) - d_j)^2`` on its own data block, then the reverse sweep
(``_*_reverse``) with its own work arrays and complex parameter copies
(:func:`jitsolve.kernels.cpu.erk_adjoint.thread_vj`).  Every row is bit for bit the
single-trajectory adjoint of that trajectory (``sde_discrete_adjoint(..., trajectory=i)``).

Arguments common to every kernel: ``u0s`` (N, n), ``ps`` (N, np); ``geo``, ``ip`` as
in :mod:`~jitsolve.kernels.cpu.sde_adjoint` (``ip[0]`` the fixed grid's step count);
``rows``: the loss times as grid indices (float, increasing) for fixed steps;
``data``/``weights`` (1 or N, m, n); outputs ``values`` (N,), ``g_u0`` (N, n), ``g_p``
(N, np_grad), ``retcodes`` (N,): ``NOT_FINITE`` when the path's final state or loss is not finite
(its gradient NaN), else the forward's return code (adaptive steps: ``MAXITERS``,
``DTLESSTHANMIN``...).

References
----------
Giles, Glasserman, *Smoking adjoints* (2006) (pathwise adjoints); Griewank, Walther,
*Evaluating Derivatives*, 2nd ed., SIAM (2008); Kloeden, Platen (1992); Rößler, SIAM J.
Numer. Anal. 48(3) (2010) 922-952 (SRA, SRI).
"""
import numpy as np
from numba import njit, prange

from .erk_adjoint import l2_at_steps, thread_vj
from .sde import FULL, GENERAL, MAXITERS, UNSTABLE
from .sde_adjoint import (_advance, _heun_advance, _heun_gk, _heun_reverse,
                          _milstein_advance, _milstein_reverse, _noise_work, _reverse,
                          _sra_advance, _sra_gk, _sra_reverse, _sri_advance,
                          _sri_reverse, _vj, em_tree, sde_record_steps, sra_tree)

__all__ = ["em_ensemble_gradient", "heun_ensemble_gradient", "milstein_ensemble_gradient",
           "sra_ensemble_gradient", "sri_ensemble_gradient"]

#: the return code of a path whose final state or loss is not finite
NOT_FINITE = UNSTABLE

# uncached twin of the recording loop for the ensemble kernel (its arguments there are not
# the Python-level call's; the loops take pointers, so the cached kernel would also do)
_record_inner = njit(cache=False)(sde_record_steps.py_func)

# The kernels below pass ``i0 = np.int64(0)`` and ``store = np.bool_(True)`` to the
# single-trajectory loops, not the constants: Numba types a constant passed between
# compiled functions as a literal and compiles the callee again for it, beside the
# compile that the single-trajectory kernels' run-time values get (RESULTS.md, fortieth
# session).


@njit(cache=False)
def _traj_start(i, u0s, ps):
    """Trajectory ``i``'s path index and its own copies of ``u0`` and ``p``."""
    return np.uint64(i), u0s[i].copy(), ps[i].copy()


@njit(cache=False)
def _traj_loss(i, grid, states, nst, rows, data, weights, values, u, g_u0, g_p, retcodes, rc):
    """The loss of trajectory ``i`` on its stored states (``states[:nst]`` at the points
    ``grid``; :func:`jitsolve.kernels.cpu.erk_adjoint.l2_at_steps`) into ``values[i]``.
    Returns ``(ok, gsave, save_after, lam0, lam, pbar)``: ``ok`` False when the trajectory
    failed (forward return code ``rc``, or a final state ``u`` or loss that is not
    finite: its gradient rows become NaN and ``retcodes[i]`` is set), and the reverse
    sweep's loss terms and fresh adjoints."""
    n = states.shape[1]
    d = data[0] if data.shape[0] == 1 else data[i]
    w = weights[0] if weights.shape[0] == 1 else weights[i]
    gsave = np.zeros((rows.size, n))
    save_after = -np.ones(max(nst - 1, 1), np.int64)
    lam0 = np.zeros(n)
    values[i] = l2_at_steps(grid, states, nst, rows, d, w, gsave, save_after, lam0)
    ok = rc == 0 and np.isfinite(values[i]) and np.isfinite(u).all()
    if not ok:
        retcodes[i] = rc if rc != 0 else NOT_FINITE
        g_u0[i, :] = np.nan
        g_p[i, :] = np.nan
    return ok, gsave, save_after, lam0, np.zeros(n), np.zeros(g_p.shape[1])


@njit(cache=False)
def _traj_out(i, lam, lam0, pbar, g_u0, g_p, retcodes):
    for k in range(lam.size):
        g_u0[i, k] = lam[k] + lam0[k]
    for k in range(pbar.size):
        g_p[i, k] = pbar[k]
    retcodes[i] = 0


@njit(parallel=True, cache=True)
def em_ensemble_gradient(f, gv, gm, fc, gc, gcm, vjf_r, uf, vjg_r, u0s, ps, geo, ip, seed,
                         rows, data, weights, values, g_u0, g_p, retcodes):
    """Euler-Maruyama, fixed steps, any noise (``gm``/``gcm``: the matrix g of general
    noise and its complex twin, :func:`~jitsolve.kernels.cpu.sde_adjoint.em_reverse`)."""
    N, n = u0s.shape
    nsteps = ip[0]
    m = ip[3]
    general = ip[2] == GENERAL
    grid = np.arange(nsteps + 1).astype(np.float64)
    # the VJP sources, made once (an empty user-slot tuple cannot enter the parallel
    # region); each thread copies their work arrays (thread_vj)
    vjf0 = _vj(fc, vjf_r, f, uf[0])
    vjg0 = _vj(gc, vjg_r, f, uf[1])
    # run-time values, not literals (the note after _record_inner)
    i0 = np.int64(0)
    store = np.bool_(True)
    for i in prange(N):
        traj, u, p = _traj_start(i, u0s, ps)
        tf, ti = em_tree(m, seed, traj)
        states = np.empty((nsteps + 1, n))
        rw = np.zeros((6, n))
        bw = np.zeros((3, m))
        _advance(f, gv, gm, p, u, geo, ip, seed, traj, tf, ti, i0, nsteps, states, store,
                 rw[0], rw[1], np.zeros((n, m) if general else (1, 1)), bw[0], bw[1],
                 bw[2])
        states[nsteps, :] = u
        ok, gsave, save_after, lam0, lam, pbar = _traj_loss(
            i, grid, states, nsteps + 1, rows, data, weights, values, u, g_u0, g_p, retcodes, 0)
        if not ok:
            continue
        _reverse(thread_vj(vjf0), thread_vj(vjg0), gcm,
                 p, states, geo, ip, seed, traj, tf, ti, i0, nsteps, gsave, save_after, lam,
                 pbar, rw, np.zeros((2, n), np.complex128), bw,
                 _noise_work(n, m, p.size, general))
        _traj_out(i, lam, lam0, pbar, g_u0, g_p, retcodes)


@njit(parallel=True, cache=True)
def heun_ensemble_gradient(f, gv, gm, fc, gc, gcm, vjf_r, uf, vjg_r, u0s, ps, geo, ip, seed, rows,
                           data, weights, values, g_u0, g_p, retcodes):
    """Euler-Heun (Stratonovich), fixed steps, any noise (``gm``/``gcm`` as for EM;
    :func:`~jitsolve.kernels.cpu.sde_adjoint.heun_reverse`)."""
    N, n = u0s.shape
    nsteps = ip[0]
    m = ip[3]
    general = ip[2] == GENERAL
    grid = np.arange(nsteps + 1).astype(np.float64)
    vjf0 = _vj(fc, vjf_r, f, uf[0])
    vjg0 = _vj(gc, vjg_r, f, uf[1])
    # run-time values, not literals (the note after _record_inner)
    i0 = np.int64(0)
    store = np.bool_(True)
    for i in prange(N):
        traj, u, p = _traj_start(i, u0s, ps)
        tf, ti = em_tree(m, seed, traj)
        states = np.empty((nsteps + 1, n))
        rw = np.zeros((10, n))
        gk = _heun_gk(n, m, general)
        bw = np.zeros((3, m))
        _heun_advance(f, gv, gm, p, u, geo, ip, seed, traj, tf, ti, i0, nsteps, states, store, rw,
                      gk, bw[0], bw[1], bw[2])
        states[nsteps, :] = u
        ok, gsave, save_after, lam0, lam, pbar = _traj_loss(
            i, grid, states, nsteps + 1, rows, data, weights, values, u, g_u0, g_p, retcodes, 0)
        if not ok:
            continue
        _heun_reverse(f, gv, gm, thread_vj(vjf0),
                      thread_vj(vjg0), gcm, p, states, geo, ip, seed, traj, tf,
                      ti, i0, nsteps, gsave, save_after, lam, pbar, rw,
                      np.zeros((2, n), np.complex128), gk, _noise_work(n, m, p.size, general),
                      bw[0], bw[1], bw[2])
        _traj_out(i, lam, lam0, pbar, g_u0, g_p, retcodes)


@njit(parallel=True, cache=True)
def milstein_ensemble_gradient(f, gv, fc, gc, phic, vjf_r, uf, vjg_r, vjd_r, u0s, ps, geo, ip,
                               seed, rows, data, weights, values, g_u0, g_p, retcodes):
    """Milstein with the user's term ``ggprime`` (complex twin ``phic``), fixed steps
    (:func:`~jitsolve.kernels.cpu.sde_adjoint.milstein_reverse`)."""
    N, n = u0s.shape
    nsteps = ip[0]
    m = ip[3]
    grid = np.arange(nsteps + 1).astype(np.float64)
    vjf0 = _vj(fc, vjf_r, f, uf[0])
    vjg0 = _vj(gc, vjg_r, f, uf[1])
    vjd0 = _vj(phic, vjd_r, f, ())
    # run-time values, not literals (the note after _record_inner)
    i0 = np.int64(0)
    store = np.bool_(True)
    for i in prange(N):
        traj, u, p = _traj_start(i, u0s, ps)
        tf, ti = em_tree(m, seed, traj)
        states = np.empty((nsteps + 1, n))
        rw = np.zeros((8, n))
        cw = np.zeros((2, n), np.complex128)
        bw = np.zeros((3, m))
        _milstein_advance(f, gv, phic, p, u, geo, ip, seed, traj, tf, ti, i0, nsteps, states,
                          store, rw, cw, np.zeros(p.size, np.complex128), bw[0], bw[1], bw[2])
        states[nsteps, :] = u
        ok, gsave, save_after, lam0, lam, pbar = _traj_loss(
            i, grid, states, nsteps + 1, rows, data, weights, values, u, g_u0, g_p, retcodes, 0)
        if not ok:
            continue
        _milstein_reverse(thread_vj(vjf0), thread_vj(vjg0),
                          thread_vj(vjd0), p, states, geo, ip, seed, traj, tf,
                          ti, i0, nsteps, gsave, save_after, lam, pbar, rw, cw, bw[0], bw[1],
                          bw[2])
        _traj_out(i, lam, lam0, pbar, g_u0, g_p, retcodes)


@njit(cache=False)
def _record_path(f, gv, gm, tab, u0, p, fpar, ipar, atol, rtol, xs, seed, traj, cap0, capmax):
    """The adaptive forward of one trajectory, its accepted steps recorded with every
    state (``_record_steps`` of python/sde_gradient.py, in a thread: the buffers double
    while the kernel reports ``FULL``).  Returns ``(xg, states, N, rc)``."""
    n = u0.size
    nsave = xs.size
    cap = cap0
    while True:
        xg = np.empty(cap)
        states = np.empty((cap, n))
        out_t = np.empty(nsave)
        out_u = np.empty((nsave, n))
        st = np.zeros(6, np.int64)
        _record_inner(f, gv, gm, tab, u0, p, atol, rtol, xs, fpar, ipar, seed, traj, xg, states,
                      True, out_t, out_u, st)
        if st[1] == FULL and cap < capmax:
            cap = min(2 * cap, capmax)
            continue
        break
    N = st[4]
    rc = st[1] if st[1] != FULL else MAXITERS
    return xg, states, N, rc


@njit(cache=False)
def _order15_grid(adaptive, f, gv, gm, tab, u0, p, fpar, ipar, atol, rtol, xs, seed, traj,
                  cap0, capmax, nsteps):
    """``(xg, grid, states, N, rc, done)`` of one SRA1/SRIW1 trajectory: with
    ``adaptive`` its recorded steps (``done``: the states are already stored), else the
    fixed grid (an empty ``xg``; integer grid points) and room for its states."""
    n = u0.size
    if adaptive:
        xg, states, N, rc = _record_path(f, gv, gm, tab, u0, p, fpar, ipar, atol, rtol, xs, seed,
                                         traj, cap0, capmax)
        return xg[:N + 1].copy(), xg[:N + 1].copy(), states, N, rc, True
    return (np.zeros(0), np.arange(nsteps + 1).astype(np.float64), np.empty((nsteps + 1, n)),
            nsteps, 0, False)


@njit(parallel=True, cache=True)
def sra_ensemble_gradient(f, gv, gm, fc, gc, gcm, vjf_r, uf, vjg_r, tab, u0s, ps, geo, ip, seed,
                          rows, data, weights, adaptive, fpar, ipar, atol, rtol, xs, cap0, capmax,
                          values, g_u0, g_p, retcodes):
    """SRA1 (additive noise, any kind: ``gm``/``gcm`` as for EM), fixed steps or, with
    ``adaptive``, each trajectory's own accepted steps recorded in its thread
    (``fpar``/``ipar``/``atol``/``rtol``/``xs`` as
    :func:`~jitsolve.kernels.cpu.sde_adjoint.sde_record_steps` takes them, the loss times
    ``xs`` normalised as ``rows`` are then; buffers of ``cap0`` steps doubled up to
    ``capmax``) and held fixed in the reverse pass
    (:func:`~jitsolve.kernels.cpu.sde_adjoint.sra_reverse`)."""
    N, n = u0s.shape
    m = ip[3]
    s = tab.shape[0]
    general = ip[2] == GENERAL
    vjf0 = _vj(fc, vjf_r, f, uf[0])
    vjg0 = _vj(gc, vjg_r, f, uf[1])
    # run-time values, not literals (the note after _record_inner)
    i0 = np.int64(0)
    store = np.bool_(True)
    for i in prange(N):
        traj, u, p = _traj_start(i, u0s, ps)
        tf, ti = sra_tree(m, seed, traj)
        xg, grid, states, nsteps, rc, done = _order15_grid(adaptive, f, gv, gm, tab, u, p, fpar,
                                                           ipar, atol, rtol, xs, seed, traj, cap0,
                                                           capmax, ip[0])
        ipi = ip.copy()
        ipi[0] = nsteps
        H = np.zeros((s, n))
        F = np.zeros((s, n))
        G = np.zeros((s, n))
        gk = _sra_gk(s, n, m, general)
        bw = np.zeros((2, 2 * m))
        dw = np.zeros((2, m))
        if done:
            u[:] = states[nsteps]
        else:
            _sra_advance(f, gv, gm, tab, p, u, geo, ipi, xg, seed, traj, tf, ti, i0, nsteps,
                         states, store, H, F, G, gk, bw[0], bw[1], dw[0], dw[1])
            states[nsteps, :] = u
        ok, gsave, save_after, lam0, lam, pbar = _traj_loss(
            i, grid, states, nsteps + 1, rows, data, weights, values, u, g_u0, g_p, retcodes, rc)
        if not ok:
            continue
        _sra_reverse(f, gv, gm, thread_vj(vjf0),
                     thread_vj(vjg0), gcm, tab, p, states, geo, ipi, xg, seed,
                     traj, tf, ti, i0, nsteps, gsave, save_after, lam, pbar, H, F, G, gk,
                     np.zeros((s, n)), np.zeros((6, n)), np.zeros((2, n), np.complex128),
                     _noise_work(n, m, p.size, general), bw[0], bw[1], dw[0], dw[1])
        _traj_out(i, lam, lam0, pbar, g_u0, g_p, retcodes)


@njit(parallel=True, cache=True)
def sri_ensemble_gradient(f, gv, gm, fc, gc, vjf_r, uf, vjg_r, tab, u0s, ps, geo, ip, seed, rows,
                          data, weights, adaptive, fpar, ipar, atol, rtol, xs, cap0, capmax,
                          values, g_u0, g_p, retcodes):
    """SRIW1 (Itô, diagonal or scalar noise), fixed or recorded adaptive steps as
    :func:`sra_ensemble_gradient` (:func:`~jitsolve.kernels.cpu.sde_adjoint.sri_reverse`)."""
    N, n = u0s.shape
    m = ip[3]
    s = tab.shape[0]
    vjf0 = _vj(fc, vjf_r, f, uf[0])
    vjg0 = _vj(gc, vjg_r, f, uf[1])
    # run-time values, not literals (the note after _record_inner)
    i0 = np.int64(0)
    store = np.bool_(True)
    for i in prange(N):
        traj, u, p = _traj_start(i, u0s, ps)
        tf, ti = sra_tree(m, seed, traj)
        xg, grid, states, nsteps, rc, done = _order15_grid(adaptive, f, gv, gm, tab, u, p, fpar,
                                                           ipar, atol, rtol, xs, seed, traj, cap0,
                                                           capmax, ip[0])
        ipi = ip.copy()
        ipi[0] = nsteps
        wk = np.zeros((4 * s + 2, n))
        chi = np.zeros((3, m))
        ue = np.zeros((2, n))
        bw = np.zeros((2, 2 * m))
        dw = np.zeros((2, m))
        if done:
            u[:] = states[nsteps]
        else:
            _sri_advance(f, gv, tab, p, u, geo, ipi, xg, seed, traj, tf, ti, i0, nsteps, states,
                         store, wk, chi, ue[0], ue[1], bw[0], bw[1], dw[0], dw[1])
            states[nsteps, :] = u
        ok, gsave, save_after, lam0, lam, pbar = _traj_loss(
            i, grid, states, nsteps + 1, rows, data, weights, values, u, g_u0, g_p, retcodes, rc)
        if not ok:
            continue
        _sri_reverse(f, gv, thread_vj(vjf0), thread_vj(vjg0),
                     tab, p, states, geo, ipi, xg, seed, traj, tf, ti, i0, nsteps, gsave,
                     save_after, lam, pbar, wk, chi, ue[0], ue[1], np.zeros((2 * s, n)),
                     np.zeros((6, n)), np.zeros((2, n), np.complex128), bw[0], bw[1], dw[0],
                     dw[1])
        _traj_out(i, lam, lam0, pbar, g_u0, g_p, retcodes)
