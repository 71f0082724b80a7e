"""Stiff methods in one compiled loop: Rosenbrock (Rosenbrock23, Rodas5P) here, the
(E)SDIRK methods in :mod:`.esdirk`; both run :func:`jitsolve.kernels.cpu.stiff.stiff_solve`,
compiled once per step family (the tableau tuple's type names it: :func:`stiff_tableau`).

This module turns a tableau module into the kernel's stiff tableau tuple, packs the
Jacobian data (user ``jac`` cfunc, or the complex twin of ``f`` for exact complex-step
columns, grouped by a column colouring of ``jac_sparsity``) and returns a raw result
dict like :func:`.explicit.solve_erk`.

References
----------
Hairer, Wanner, *Solving ODEs II* (1996), IV.7; Curtis, Powell, Reid (1974) for the
column colouring.
"""
import numpy as np

from ...kernels.cpu.fastcall import call
from ...kernels.cpu.rhs import zero_f
from ...kernels.cpu.stiff import stiff_ensemble, stiff_solve
from ...kernels.cpu.stiffjac import no_fc, no_jac
from .explicit import RETCODES as _ERK_RETCODES
from .explicit import _controller, make_stops, tableau

__all__ = ["RETCODES", "stiff_tableau", "color_columns", "jacobian_data", "solve_stiff",
           "solve_stiff_ensemble",
           "ROSENBROCK"]

#: kernel return code -> ReturnCode name (the explicit codes + ConvergenceFailure)
RETCODES = tuple(_ERK_RETCODES) + ("ConvergenceFailure",)

ROSENBROCK = ("rosenbrock23", "rodas5p")

_TABS = {}


def _z2(s):
    return np.zeros((s, s))


def stiff_tableau(name, imex=False):
    """``(kind, GAMMA, A, Cm, C, D, B, BERR, BTH, AE, q, E32, imex)`` for the kernel.

    The family is in the tuple's type as well as in ``kind``: ``E32`` is a float for
    Rosenbrock23 and None otherwise, ``AE`` (the explicit IMEX tableau) an array for the
    (E)SDIRK methods and None for the Rosenbrock ones.  The compiled loop and the adjoint
    kernels therefore compile one step family per signature (a cold first solve compiles
    only its own method's step; :func:`jitsolve.kernels.cpu.stiff.stiff_solve`)."""
    key = (name, bool(imex))
    if key in _TABS:
        return _TABS[key]
    f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)   # noqa: E731
    if name == "rosenbrock23":
        T = tableau(name)
        tab = (0, float(T.D), _z2(3), _z2(3), np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3),
               f64(T.BTHETA), None, 3.0, float(T.E32), False)
    elif name == "rodas5p":
        T = tableau(name)
        H = T.H
        # u(theta) = u0 + theta (u1-u0) + theta(1-theta)(K0 + theta K1 + theta^2 K2) with
        # u1 - u0 = sum B_i k_i, K_r = sum H[r, i] k_i; kd = k / h  ->  weights of theta^1..4
        BTH = np.stack([T.B + H[0], H[1] - H[0], H[2] - H[1], -H[2]], axis=1)
        tab = (1, float(T.GAMMA), f64(T.A), f64(T.Cmat), f64(T.C), f64(T.D), f64(T.B),
               f64(T.BERR), f64(BTH), None, 5.0, None, False)
    elif name == "implicit_euler":
        tab = (3, 1.0, np.ones((1, 1)), _z2(1), np.ones(1), np.zeros(1), np.ones(1), np.zeros(1),
               np.ones((1, 1)), _z2(1), 2.0, None, bool(imex))
    else:
        T = tableau(name)
        s = int(T.STAGES)
        AI = f64(getattr(T, "AI", getattr(T, "A", None)))
        AE = f64(getattr(T, "AE", np.zeros((s, s))))
        if hasattr(T, "BTHETA"):
            BTH = f64(T.BTHETA)
        else:
            # cubic Hermite on (u0, f0, u1, f1): stage 0 is f(u0), the last stage f(u1)
            B = np.asarray(T.B, dtype=np.float64)
            e0 = np.eye(s)[0]
            el = np.eye(s)[s - 1]
            BTH = np.stack([e0, 3 * B - 2 * e0 - el, -2 * B + e0 + el], axis=1)
        q = float(min(T.ORDER, T.EMBEDDED_ORDER) + 1)
        tab = (2, float(T.GAMMA), AI, _z2(s), f64(T.C), np.zeros(s), f64(T.B), f64(T.BERR),
               f64(BTH), AE, q, None, bool(imex))
    _TABS[key] = tab
    return tab


def color_columns(pattern):
    """Greedy column colouring of a sparsity pattern (columns sharing a row get different
    colours).  Returns ``(cptr, ccols, colptr, rowidx)`` int64 arrays: the columns of each
    colour (CSR-like) and the pattern by columns (CSC)."""
    import scipy.sparse as sp
    S = sp.csc_matrix(pattern, dtype=np.float64)
    S.data[:] = 1.0
    S.sort_indices()
    n = S.shape[1]
    G = (S.T @ S).tocsr()                  # column conflict graph
    color = -np.ones(n, np.int64)
    for j in range(n):
        nb = G.indices[G.indptr[j]:G.indptr[j + 1]]
        used = set(color[nb][color[nb] >= 0].tolist())
        c = 0
        while c in used:
            c += 1
        color[j] = c
    ncol = int(color.max()) + 1 if n else 0
    order = np.argsort(color, kind="stable")
    cptr = np.concatenate([[0], np.cumsum(np.bincount(color, minlength=ncol))]).astype(np.int64)
    return (cptr, order.astype(np.int64), S.indptr.astype(np.int64),
            S.indices.astype(np.int64))


def jacobian_data(n, p, jac=None, fc=None, sparsity=None, fjac_on=True, autonomous=False):
    """The kernel's ``jd`` tuple: user ``jac`` cfunc, else the complex twin ``fc`` of ``f``
    (complex-step columns, coloured when ``sparsity`` is given)."""
    pc = np.ascontiguousarray(p, dtype=np.complex128)
    e = np.zeros(1, np.int64)
    if sparsity is not None and jac is None and fjac_on:
        if sparsity.shape != (n, n):
            raise ValueError(f"jac_sparsity: shape {sparsity.shape}, state has {n} components")
        cptr, ccols, colptr, rowidx = color_columns(sparsity)
        hascolor = True
    else:
        cptr, ccols, colptr, rowidx = e, e, e, e
        hascolor = False
    return (jac if jac is not None else no_jac, jac is not None,
            fc if fc is not None else no_fc, pc, cptr, ccols, colptr, rowidx, hascolor,
            bool(fjac_on), bool(autonomous))


def _loop_arguments(name, f, p, n, t0, t1, lin, plin, jd, imex, rtol, atol, adaptive, dt,
                    dtmin, dtmax, maxiters, tstops, savet, land_on_saveat=True):
    """The stiff loop's ``tab, rhs, jd, stops, ctrl`` (shared by the single solve and the
    ensemble kernel, so that an ensemble's trajectory is its single solve bit for bit).
    ``land_on_saveat``: the saved times are stops (the gradients' forward solves, which
    differentiate steps ending there); else the steps land on ``tstops`` and ``t1`` only
    and the loop saves from the interpolant inside steps."""
    tab = stiff_tableau(name, imex)
    haslin = lin is not None
    if imex and not haslin:
        raise ValueError("imex: needs a linear part")
    rhs = (f, p, lin if haslin else zero_f,
           np.ascontiguousarray(plin if plin is not None else np.zeros(0), dtype=np.float64),
           haslin, np.empty(n))
    if jd is None:
        jd = jacobian_data(n, p, fjac_on=False)
    stops = make_stops(float(t0), float(t1), tstops, savet if land_on_saveat else None)
    ctrl = _controller((None,) * 8 + (tab[10],), rtol, atol, adaptive, dt, dtmin, dtmax,
                       maxiters, n)
    # (its tolerance arrays are fresh writable copies: a read-only broadcast view would be
    # a second compiled specialisation)
    return tab, rhs, jd, stops, ctrl


def solve_stiff_ensemble(name, f, u0s, ps, t0, t1, savet, *, lin=None, plin=None, jd=None,
                         imex=False, rtol=1e-3, atol=1e-6, adaptive=True, dt=None, dtmin=0.0,
                         dtmax=np.inf, maxiters=100_000, tstops=None, callbacks=None,
                         land_on_saveat=True):
    """Trajectory ``i``: ``u0s[i]`` (N, n) with parameters ``ps[i]`` (N, np), solved by
    the stiff method ``name`` in one compiled kernel, one trajectory per thread
    (:func:`jitsolve.kernels.cpu.stiff.stiff_ensemble`), each exactly its own
    :func:`solve_stiff` with ``saveat=savet``.  ``jd`` and ``callbacks`` as
    :func:`solve_stiff` (the complex parameter copy and the callbacks' parameters are
    replaced per trajectory).

    Returns ``(u (N, nsave, n), retcodes (N,) of names, stats (N, 5))``.
    """
    # writable C arrays: a broadcast view of an empty parameter vector (no ``p``) is
    # already contiguous and would reach the kernel read-only, a type it is not compiled for
    u0s = np.require(u0s, np.float64, ("C", "W"))
    ps = np.require(ps, np.float64, ("C", "W"))
    N, n = u0s.shape
    savet = np.ascontiguousarray(savet, dtype=np.float64)
    tab, rhs, jd, stops, ctrl = _loop_arguments(name, f, ps[0] if N else np.zeros(0), n, t0, t1,
                                                lin, plin, jd, imex, rtol, atol, adaptive, dt,
                                                dtmin, dtmax, maxiters, tstops, savet,
                                                land_on_saveat)
    out = np.empty((N, savet.size, n))
    rcs = np.zeros(N, np.int64)
    stats = np.zeros((N, 5), np.int64)
    if N:
        call(stiff_ensemble, rhs, jd, u0s, ps, ps.astype(np.complex128), float(t0), tab, ctrl,
             stops, savet, callbacks, out, rcs, stats)
    return out, np.asarray(RETCODES)[rcs], stats


def solve_stiff(name, f, p, u0, t0, t1, *, lin=None, plin=None, jd=None, imex=False, rtol=1e-3,
                atol=1e-6, adaptive=True, dt=None, dtmin=0.0, dtmax=np.inf, maxiters=100_000,
                tstops=None, saveat=None, dense=False, callbacks=None, land_on_saveat=True):
    """Integrate ``du/dt = f(u, p, t) [+ lin(u, plin, t)]`` with the stiff method ``name``
    (``rosenbrock23``, ``rodas5p``, ``kencarp4``, ``kvaerno5``, ``implicit_euler``).
    ``land_on_saveat=False`` saves inside steps from the interpolant (``js.solve``);
    True makes the saved times stops (the gradients).

    ``jd`` is :func:`jacobian_data`'s tuple (default: ``f`` contributes no Jacobian);
    ``imex`` treats ``f`` explicitly and ``lin`` implicitly (ESDIRK methods with an
    explicit tableau).  Returns the raw dict of :func:`.explicit.solve_erk`.
    """
    u0 = np.ascontiguousarray(u0, dtype=np.float64).ravel()
    n = u0.size
    p = np.ascontiguousarray(p if p is not None else np.zeros(0), dtype=np.float64)
    every = saveat is None
    savet = np.zeros(0) if every else np.ascontiguousarray(saveat, dtype=np.float64)
    tab, rhs, jd, stops, ctrl = _loop_arguments(name, f, p, n, t0, t1, lin, plin, jd, imex,
                                                rtol, atol, adaptive, dt, dtmin, dtmax,
                                                maxiters, tstops, savet, land_on_saveat)
    cb = callbacks           # None: the loop compiles without its event code
    cap = 64 if every else savet.size + 1
    res = call(stiff_solve, rhs, jd, u0, float(t0), tab, ctrl, stops, (every, savet, bool(dense)),
               cb, cap)
    (ts, us, nsave, st, sh, nsteps, dus, dks, evt, evu, nev, stats, rc, t, u) = res
    return dict(t=ts[:nsave].copy(), u=us[:nsave].copy(), steps_t=st[:nsteps].copy(),
                steps_h=sh[:nsteps].copy(), dense_u=dus[:nsteps] if dense else None,
                dense_k=dks[:nsteps].reshape(nsteps, dks.shape[1] // n, n) if dense else None,
                event_t=evt[:nev].copy(),
                event_u=evu[:nev].copy(), stats=stats, retcode=RETCODES[rc], t_end=t,
                u_end=u, BTH=tab[8])
