"""(E)SDIRK methods: KenCarp4 (IMEX or fully implicit), Kvaerno5, ImplicitEuler.

Two drivers:

- :func:`solve_esdirk`: the compiled loop (:func:`jitsolve.kernels.cpu.stiff.stiff_solve`,
  dense Newton matrix and LU) through :func:`.rosenbrock.solve_stiff`.
- :func:`solve_sdirk_krylov`: Newton-Krylov for large problems whose stiff part is a grid
  operator: Python steps, the stage systems ``(I - h GAMMA J) d = r`` go to the Krylov
  solvers of :mod:`jitsolve.solvers.linear` (GMRES) with ``J`` given as a matrix-free
  product, right-preconditioned when the caller gives a preconditioner for ``I - h GAMMA
  J`` (a multigrid cycle of the shifted grid operator: the GMRES iterations then stop
  growing with the stiffness ``h GAMMA / dx^2``).  Same step control (PI, Hairer's
  defaults), same raw dict out.

References
----------
Hairer, Wanner, *Solving ODEs II* (1996), IV.6, IV.8; Kennedy, Carpenter, Appl. Numer.
Math. 44 (2003); Kværnø, BIT 44 (2004); Knoll, Keyes, *Jacobian-free Newton-Krylov
methods*, J. Comput. Phys. 193 (2004).
"""
import numpy as np

from ...kernels.cpu.erk import LAND_RTOL
from ...kernels.cpu.stepcontrol import accepted_step
from ..linear import gmres
from ..linear.common import lincomb
from .explicit import make_stops
from .rosenbrock import RETCODES, solve_stiff, stiff_tableau

__all__ = ["solve_esdirk", "solve_sdirk_krylov", "last_preconditioner", "ESDIRK"]

ESDIRK = ("kencarp4", "kvaerno5", "implicit_euler")

MAXNEWTON = 10
KAPPA = 0.01


def solve_esdirk(name, f, p, u0, t0, t1, **kw):
    """The compiled (E)SDIRK loop; arguments as :func:`.rosenbrock.solve_stiff`."""
    if name not in ESDIRK:
        raise ValueError(f"{name!r} is not an (E)SDIRK method ({', '.join(ESDIRK)})")
    return solve_stiff(name, f, p, u0, t0, t1, **kw)


def _wnorm(x, u, atol, rtol):
    return float(np.sqrt(np.mean((x / (atol + rtol * np.abs(u))) ** 2))) if x.size else 0.0


def last_preconditioner(precond):
    """``hg -> M`` keeping the last ``precond(hg)`` (always None without ``precond``): the
    stage systems ask for the same ``hg`` step after step, and the old cycle is dropped
    before a new one is set up (its levels go back to the work pool first).  A function
    it returned is returned as it is."""
    if precond is None:
        return lambda hg: None
    if getattr(precond, "keeps_last", False):
        return precond
    box = [None, None]              # (hg, M) of the last preconditioner asked for

    def pc_for(hg):
        if box[0] != hg:
            box[:] = [None, None]
            box[:] = [hg, precond(hg)]
        return box[1]
    pc_for.keeps_last = True
    return pc_for


def solve_sdirk_krylov(name, fE, fI, jv, u0, t0, t1, *, imex=False, rtol=1e-3, atol=1e-6,
                       adaptive=True, dt=None, dtmin=0.0, dtmax=np.inf, maxiters=100_000,
                       tstops=None, saveat=None, lin_rtol=None, lin_maxiter=500,
                       jv_update=None, precond=None, dense=False, record=False):
    """Integrate ``u' = fE(u, t) + fI(u, t)`` with the SDIRK method ``name``, Newton-Krylov.

    Parameters
    ----------
    fE, fI : callables ``(du, u, t)``
        Explicit and implicit parts (``fE`` ignored unless ``imex``; without ``imex`` the
        whole right-hand side is ``fI``).
    jv : callable ``(v, out) -> out``
        ``out = J v`` for the Jacobian (or an approximation) of ``fI``.
    jv_update : callable ``(u, t)``, optional
        Called when the Jacobian is to be refreshed at ``(t, u)`` (e.g. a diagonal of
        ``f``'s Jacobian by complex step).
    lin_rtol : float
        Relative tolerance of the GMRES solves (default 1e-4: inexact Newton, the Newton
        iteration and its convergence test absorb the rest).
    precond : callable ``hg -> M``, optional
        A preconditioner ``M(r, out)`` for ``I - hg J`` (or None), asked for whenever
        ``hg = h GAMMA`` changes.
    adaptive : bool
        False: steps of ``dt`` (shorter only to land on a stop), no error estimate, as the
        compiled loop's fixed steps: a step whose Newton iteration fails is halved and
        retried, a non-finite step end is ``Unstable``.
    dense : bool
        Keep every accepted step's start state and stage derivatives (``dense_u``,
        ``dense_k``) for the method's interpolant (weights ``BTH``, as the compiled loop).
    record : bool
        Keep every accepted step's stage states ``Z_i`` (``stages``, shape ``(steps, s,
        n)``; ``Z_0`` is the step's start for the ESDIRK methods): what the discrete
        adjoint (:mod:`jitsolve.adjoint.newton_krylov`) linearises at.

    The Newton iteration stops when its estimated error is below ``KAPPA`` (0.01) in the
    ``rtol``/``atol`` norm, with fixed steps too (as OrdinaryDiffEq's nonlinear solvers):
    a fixed-step convergence study needs tight ``rtol``/``atol`` (Kvaerno5 at the default
    ``rtol=1e-3`` stalls near 1e-6), else the Newton error, not the method's, is measured.

    Returns the raw dict of :func:`.explicit.solve_erk` (no events), ``BTH`` and ``stages``.
    """
    tab = stiff_tableau(name, imex)
    kind, GAMMA, AI, _, C, _, B, BERR, _, AE, q, _, _ = tab
    s = B.size
    u = np.array(u0, dtype=np.float64).ravel()
    n = u.size
    rt = np.broadcast_to(np.asarray(rtol, dtype=np.float64), (n,))
    at = np.broadcast_to(np.asarray(atol, dtype=np.float64), (n,))
    lin_rtol = float(lin_rtol if lin_rtol is not None else 1e-4)
    every = saveat is None
    savet = np.zeros(0) if every else np.asarray(saveat, dtype=np.float64)
    t0, t1 = float(t0), float(t1)
    stops = make_stops(t0, t1, tstops, savet)
    tdir = 1.0 if t1 >= t0 else -1.0
    beta1, beta2, safety, qmin, qmax = 0.7 / q, 0.4 / q, 0.9, 0.2, 10.0
    stats = np.zeros(6, np.int64)   # nf njac nsolve naccept nreject nliniter
    ts, us, steps_t, steps_h = [], [], [], []
    isave = 0
    if every or (savet.size and savet[0] == t0):
        ts.append(t0)
        us.append(u.copy())
        isave = 0 if every else 1
    fe0 = np.zeros(n)
    fi0 = np.zeros(n)
    FE = np.zeros((s, n))
    FI = np.zeros((s, n))
    tmp = np.empty(n)

    def eval_fi(out, z, t):
        fI(out, z, t)
        stats[0] += 1

    def start(t):
        eval_fi(fi0, u, t)
        if imex:
            fE(fe0, u, t)
            stats[0] += 1
        else:
            fe0[:] = 0.0

    start(t0)
    dus, dks = ([], []) if dense else (None, None)
    zrec = [] if record else None
    Zs = np.empty((s, n)) if record else None
    bth = tab[8]
    if not np.all(np.isfinite(fe0 + fi0)):
        return _raw(ts, us, steps_t, steps_h, stats, 5, t0, u, n, dus, dks, bth, zrec)
    if dt:
        habs = float(dt)
    else:                                   # Hairer's starting step
        f0 = fe0 + fi0
        d0, d1 = _wnorm(u, u, at, rt), _wnorm(f0, u, at, rt)
        habs = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        habs = min(max(habs, dtmin), dtmax)       # not below dtmin, as the compiled loops
    err_prev, after_reject, rc, niter, istop = 1e-4, False, 0, 0, 0
    jac_fresh = False
    if jv_update is not None:
        jv_update(u, t0)
        stats[1] += 1
        jac_fresh = True
    t = t0
    hg_box = [0.0]
    eta = 1.0

    def wmat(x, out):
        jv(x, out)
        out *= -hg_box[0]
        out += x
        return out

    pc_for = last_preconditioner(precond)

    while istop < stops.size:
        if niter >= maxiters:
            rc = 2
            break
        niter += 1
        stop = stops[istop]
        dist = abs(stop - t)
        land = habs * (1.0 + LAND_RTOL) >= dist   # no sliver step (as erk_solve)
        hstep = dist if land else habs
        h = tdir * hstep
        hg = h * GAMMA
        hg_box[0] = hg
        ok = True
        thmax = 0.0
        for st in range(s):
            if AI[st, st] == 0.0:
                FE[st] = fe0
                FI[st] = fi0
                if record:
                    Zs[st] = u
                continue
            tst = t + C[st] * h
            base = u + h * (lincomb(AE[st, :st], FE[:st]) + lincomb(AI[st, :st], FI[:st]))
            z = base + hg * (FI[st - 1] if st > 0 else fi0)
            dn_prev, conv = 1.0, False
            for k in range(MAXNEWTON):
                eval_fi(tmp, z, tst)
                r = base + hg * tmp - z
                res = gmres(wmat, r, rtol=lin_rtol, maxiter=lin_maxiter, precond=pc_for(hg))
                stats[2] += 1
                stats[5] += res.iters
                d = res.x
                z = z + d
                dn = _wnorm(d, u, at, rt)
                if not np.isfinite(dn):
                    break
                if dn == 0.0:
                    conv = True
                    break
                if k == 0:
                    etak = max(eta, 2.2e-16) ** 0.8
                else:
                    theta = dn / dn_prev
                    thmax = max(thmax, theta)
                    if theta >= 1.0:
                        break
                    etak = theta / (1.0 - theta)
                eta = etak
                if etak * dn <= KAPPA:
                    conv = True
                    break
                dn_prev = dn
            if not conv:
                ok = False
                break
            FI[st] = (z - base) / hg
            if record:
                Zs[st] = z
            if imex:
                fE(FE[st], z, tst)
                stats[0] += 1
            else:
                FE[st] = 0.0
        if not ok:
            stats[4] += 1
            if jv_update is not None and not jac_fresh:
                jv_update(u, t)
                stats[1] += 1
                jac_fresh = True
            habs = 0.5 * hstep
            after_reject = True
            if habs < dtmin:
                rc = 6
                break
            continue
        Ksum = FE + FI
        unew = u + h * lincomb(B, Ksum)
        if adaptive:
            if kind == 3:
                e = 0.5 * h * (Ksum[0] - fe0 - fi0)
                res = gmres(wmat, e, rtol=lin_rtol, maxiter=lin_maxiter, precond=pc_for(hg))
                err = res.x
                stats[2] += 1
                stats[5] += res.iters
            else:
                err = h * lincomb(BERR, Ksum)
            sc = at + rt * np.maximum(np.abs(u), np.abs(unew))
            errn = float(np.sqrt(np.mean((err / sc) ** 2)))
        elif not np.all(np.isfinite(unew)):
            rc = 4
            break
        else:
            errn = 0.0                      # fixed steps: accepted as they are
        if not errn <= 1.0:
            stats[4] += 1
            fac = 0.2 if not np.isfinite(errn) else min(1.0, max(qmin, safety * errn ** -beta1))
            habs = hstep * fac
            after_reject = True
            if habs < dtmin:
                rc = 4 if not np.isfinite(errn) else 3
                break
            continue
        fac = qmax if errn == 0 else min(1.0 if after_reject else qmax,
                                         max(qmin, safety * errn ** -beta1 * err_prev ** beta2))
        err_prev = max(errn, 1e-4)
        after_reject = False
        steps_t.append(t)
        steps_h.append(h)
        stats[3] += 1
        if dense:
            dus.append(u)
            dks.append(Ksum.copy())
        if record:
            zrec.append(Zs.copy())
        u = unew
        t = stop if land else t + h
        if land:
            istop += 1
        if every:
            ts.append(t)
            us.append(u.copy())
        elif isave < savet.size and t == savet[isave]:
            ts.append(t)
            us.append(u.copy())
            isave += 1
        start(t)
        jac_fresh = False
        if jv_update is not None and thmax > 0.1:
            jv_update(u, t)
            stats[1] += 1
            jac_fresh = True
        if not adaptive:
            habs = float(dt)
            continue
        # the compiled loops' rule (Python mode: no compile for this loop)
        habs, small = accepted_step.py_func(hstep, fac, habs, land, land, dtmin, dtmax)
        if small and istop < stops.size:
            rc = 3
            break
    return _raw(ts, us, steps_t, steps_h, stats, rc, t, u, n, dus, dks, bth, zrec)


def _raw(ts, us, steps_t, steps_h, stats, rc, t, u, n, dus=None, dks=None, bth=None,
         zrec=None):
    m = len(steps_t)
    return dict(t=np.array(ts, dtype=np.float64), u=np.array(us).reshape(len(ts), n),
                steps_t=np.array(steps_t, dtype=np.float64),
                steps_h=np.array(steps_h, dtype=np.float64),
                dense_u=None if dus is None else np.array(dus).reshape(m, n),
                dense_k=None if dks is None else np.array(dks).reshape(m, bth.shape[0], n),
                event_t=np.zeros(0), event_u=np.zeros((0, n)), stats=stats,
                retcode=RETCODES[rc], t_end=t, u_end=u, BTH=bth,
                stages=None if zrec is None else np.array(zrec).reshape(m, bth.shape[0], n))
