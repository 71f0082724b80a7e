"""The compiled integration loop of the stiff methods (Rosenbrock and (E)SDIRK), CPU.

Same conventions as :func:`jitsolve.kernels.cpu.erk.erk_solve` (``rhs``, ``ctrl``,
``stops``, ``save``, ``cb`` tuples, the return tuple, return codes, events located on
the method's interpolant then the step redone to land on them; ``cb`` may also be None,
no callbacks: the event code is then not compiled) plus:

``jd``
    Jacobian data (:mod:`.stiffjac`): ``(jac, hasjac, fc, pc, cptr, ccols, colptr,
    rowidx, hascolor, fjac_on, autonomous)``.
``tab = (kind, GAMMA, A, Cm, C, D, B, BERR, BTH, AE, q, E32, imex)``
    ``kind`` 0 Rosenbrock23, 1 Rodas-type Rosenbrock, 2 ESDIRK, 3 ImplicitEuler;
    ``A`` the Rosenbrock ``a_ij`` or the implicit ESDIRK tableau, ``AE`` the explicit
    IMEX tableau; ``BTH`` dense-output weights over the rows of ``kd`` (see the steps).
    Fields a family does not use are None where that tells the families apart
    (:func:`jitsolve.kernels.cpu.rosenbrock.stiff_family`), so each family is its own
    compiled signature of the loop: a cold first solve compiles one step kernel, not
    all three (cold Rodas5P 22 -> 14-16 s: perf/RESULTS.md, fifth session).

Return code 6 is ConvergenceFailure (Newton failed with the step at ``dtmin``, or
``W`` singular there).  ``stats = [nf, njac, nsolve, naccept, nreject]`` (``nf``
counts complex evaluations for Jacobians too; ``nsolve`` counts LU solves).
"""
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from .alloc import empty1, empty1_complex, empty2, full1, zeros1, zeros1_int, zeros2
from .erk import (LAND_RTOL, _grow, _grow_rows, apply_affect, cond_value, dense_eval,
                  event_landing, event_search, land_past_root, put_row, put_rows,
                  put_trajectory, root_state)
from .esdirk import NEWTON_OK, SINGULAR, _eval_parts, sdirk_step
from .rhs import eval_rhs
from .rosenbrock import KIND_RODAS, KIND_ROS23, ros23_step, rodas_step, stiff_family
from .stepcontrol import accepted_step, error_norm, initial_dt, pi_factor, reject_factor
from .stiffjac import jacobian, jacobian_zero, linear_matrix

__all__ = ["stiff_solve", "stiff_ensemble", "RC_CONVFAIL"]

RC_SUCCESS, RC_TERMINATED, RC_MAXITERS, RC_DTMIN, RC_UNSTABLE, RC_INITIAL = 0, 1, 2, 3, 4, 5
RC_CONVFAIL = 6
# ESDIRK: recompute the Jacobian after a step whose Newton contraction exceeded this
THETA_REFRESH = 0.1


# where each step kernel's arguments sit in _attempt's argument list
_ROS_ARGS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13, 14, 15, 16, 18, 20, 21, 22, 23, 24)
_SDIRK_ARGS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 23, 25,
               26, 27, 28, 29, 30)
_ATTEMPT_RET = types.Tuple((types.int64, types.int64, types.int64, types.float64))


@intrinsic
def _attempt(typingctx, f, p, lin, plin, haslin, tmp, tab, u, t, h, f0, fe0, fi0, T, J, W, piv,
             whg, K, K2, kd, unew, ytmp, err, fsal, z, base, r, atol, rtol, eta):
    """One attempted step of the tableau's family: ``(status, nf, nsolve, theta_max)``.

    The family (:func:`jitsolve.kernels.cpu.rosenbrock.stiff_family`, from the tableau's
    type) picks the step kernel at typing time, so a signature of the loop holds one step
    kernel, not all three; the call to it is emitted in place (Numba's call of a compiled
    function: the step's disk-cached library linked in).  An overload here was one more
    compiled layer, a library of its own with the step kernel linked in and optimised
    again: ~0.5 s of each stiff family's cold compile (Numba's compile events)."""
    args = (f, p, lin, plin, haslin, tmp, tab, u, t, h, f0, fe0, fi0, T, J, W, piv, whg, K, K2,
            kd, unew, ytmp, err, fsal, z, base, r, atol, rtol, eta)
    fam = stiff_family(tab)
    rosen = fam in (KIND_ROS23, KIND_RODAS)
    disp, idx = ((ros23_step if fam == KIND_ROS23 else rodas_step, _ROS_ARGS) if rosen
                 else (sdirk_step, _SDIRK_ARGS))
    fnty = typingctx.resolve_value_type(disp)
    step_sig = fnty.get_call_type(typingctx, tuple(args[i] for i in idx), {})
    step_ret = step_sig.return_type

    def codegen(context, builder, sig, llargs):
        res = context.get_function(fnty, step_sig)(builder, [llargs[i] for i in idx])

        def member(k, ty):
            return context.cast(builder, builder.extract_value(res, k), step_ret[k], ty)

        if rosen:         # (ok, nf, nsolve) -> (0 or SINGULAR, nf, nsolve, 0.0)
            i64 = context.get_value_type(types.int64)
            parts = [builder.select(member(0, types.boolean), i64(0), i64(SINGULAR)),
                     member(1, types.int64), member(2, types.int64),
                     context.get_constant(types.float64, 0.0)]
        else:             # (status, nf, nsolve, theta_max) as it is
            parts = [member(k, ty) for k, ty in enumerate(_ATTEMPT_RET)]
        return context.make_tuple(builder, _ATTEMPT_RET, parts)

    return _ATTEMPT_RET(*args), codegen


# Disk-cached, and so are its step kernels, starting step and Jacobian: they take the
# user's functions as C function pointers (.cfuncptr), so the step-size and Jacobian
# helpers one stiff family (or the explicit loop) compiled are loaded by the next.  (With
# Numba's first-class function values a cached loop compiled while such a callee came
# from the cache was stored broken: a call through a NULL pointer on the next load,
# Numba 0.68; tests/test_kernel_cache.py keeps the rule and the sequence.)
@njit(cache=True)
def stiff_solve(rhs, jd, u0, t0, tab, ctrl, stops, save, cb, cap):
    """Integrate from ``(t0, u0)`` to ``stops[-1]`` with a stiff method; returns the tuple
    of :func:`jitsolve.kernels.cpu.erk.erk_solve`."""
    kind, GAMMA, A, Cm, C, D, B, BERR, BTH, AE, q, E32, imex = tab
    rtol, atol, adaptive, dt, dtmin, dtmax, maxiters, beta1, beta2, safety, qmin, qmax = ctrl
    every, savet, dense = save
    # cb is None without callbacks: every ``if cb is not None`` block below is then pruned
    # before typing (Numba's dead-branch pruning on an argument), so a solve without
    # callbacks compiles no event code (cold Rodas5P about 2 s less)
    f, p, lin, plin, haslin, tmp = rhs
    jac, hasjac, fc, pc, cptr, ccols, colptr, rowidx, hascolor, fjac_on, autonomous = jd
    n = u0.size
    s = B.size
    sd = BTH.shape[0]
    t1 = stops[-1]
    tdir = 1.0 if t1 >= t0 else -1.0
    rosen = kind <= KIND_RODAS

    u = u0.copy()
    unew = empty1(n)
    ytmp = empty1(n)
    err = empty1(n)
    f0 = empty1(n)
    fe0 = zeros1(n)
    fi0 = empty1(n)
    fsal = empty1(n)
    T = zeros1(n)
    z = empty1(n)
    base = empty1(n)
    r = empty1(n)
    K = zeros2(max(s, 3), n)
    K2 = zeros2(max(s, 3), n)
    kd = zeros2(max(sd, 2), n)
    J = zeros2(n, n)
    JL = zeros2(n, n)
    W = zeros2(n, n)
    piv = zeros1_int(n)
    whg = full1(1, np.nan)
    eta = full1(1, 1.0)
    uc = empty1_complex(n)
    duc = empty1_complex(n)
    stats = zeros1_int(5)

    cap = max(cap, 2)
    ts = empty1(cap)
    us = empty2(cap, n)
    nsave = 0
    steps_t = empty1(cap)
    steps_h = empty1(cap)
    nsteps = 0
    dcap = cap if dense else 0
    dus = empty2(dcap, n)
    dks = empty2(dcap, sd * n)       # a step's slopes as one flat row
    ev_t = empty1(4)
    ev_u = empty2(4, n)
    nev = 0

    t = t0
    isave = 0
    if every:
        ts[0] = t0
        put_row(us, 0, u)
        nsave = 1
    elif savet.size > 0 and savet[0] == t0:
        ts[0] = t0
        put_row(us, 0, u)
        nsave = 1
        isave = 1

    # the Jacobian of the linear part enters the Newton matrix exactly (constant)
    lin_in_jac = haslin
    if lin_in_jac:
        linear_matrix(lin, plin, n, t0, JL)
    jconst = (not fjac_on) or False   # J = JL only: never recomputed

    # f at the start: split into explicit / implicit parts for the IMEX kind
    stats[0] += _eval_parts(f, p, lin, plin, haslin, tmp, imex, fe0, fi0, u, t)
    bad0 = False
    for i in range(n):
        f0[i] = fe0[i] + fi0[i]
        if not np.isfinite(f0[i]):
            bad0 = True
    f0_valid = True
    rc = RC_SUCCESS
    istop = 0
    if bad0:
        rc = RC_INITIAL
        istop = stops.size     # skip the loop (an early return here segfaulted under Numba 0.68)

    while istop < stops.size and stops[istop] * tdir <= t0 * tdir:
        istop += 1
    if bad0:
        habs = 1.0
    elif adaptive:
        if dt > 0.0:
            habs = dt
        else:
            # not below dtmin (OrdinaryDiffEq's rule for the automatic first step)
            habs = max(initial_dt(rhs, u, f0, t, tdir, q - 1, atol, rtol, dtmax, unew, ytmp),
                       dtmin)
            stats[0] += 1
    else:
        habs = dt
    habs = min(habs, dtmax)
    err_prev = 1e-4
    after_reject = False
    nonfinite = False
    g_prev = 0.0
    if cb is not None:
        ccond, caffect, has_c, c_term, c_dir, has_caffect, dcond, daffect, has_d, cbp = cb
        if has_c:
            g_prev = cond_value(ccond, u, t, cbp)
    just_fired = False
    niter = 0
    jac_valid = False      # J computed (ever) and usable
    jac_fresh = False      # J computed at the current (t, u)
    T_valid = False

    while istop < stops.size:
        if niter >= maxiters:
            rc = RC_MAXITERS
            break
        niter += 1
        stop = stops[istop]
        dist = abs(stop - t)
        land = habs * (1.0 + LAND_RTOL) >= dist   # no sliver step (as erk_solve)
        hstep = dist if land else habs
        h = tdir * hstep

        if not f0_valid:
            stats[0] += _eval_parts(f, p, lin, plin, haslin, tmp, imex, fe0, fi0, u, t)
            for i in range(n):
                f0[i] = fe0[i] + fi0[i]
            f0_valid = True
        if not jac_valid or (rosen and not jac_fresh):
            if fjac_on:
                stats[0] += jacobian(jac, hasjac, fc, pc, cptr, ccols, colptr, rowidx, hascolor,
                                     p, u, t, JL, lin_in_jac, J, uc, duc)
            elif lin_in_jac:
                for i in range(n):
                    for j in range(n):
                        J[i, j] = JL[i, j]
            else:
                jacobian_zero(J)
            stats[1] += 1
            jac_valid = True
            jac_fresh = True
            whg[0] = np.nan
        if rosen and not T_valid:
            if not autonomous:
                dtt = 1.4901161193847656e-08 * max(abs(t), abs(h), 1e-3)
                eval_rhs(f, p, lin, plin, haslin, tmp, T, u, t + dtt)
                stats[0] += 1
                for i in range(n):
                    T[i] = (T[i] - f0[i]) / dtt
            T_valid = True

        status, nf, nsol, thmax = _attempt(f, p, lin, plin, haslin, tmp, tab, u, t, h, f0, fe0,
                                           fi0, T, J, W, piv, whg, K, K2, kd, unew, ytmp, err,
                                           fsal, z, base, r, atol, rtol, eta)
        stats[0] += nf
        stats[2] += nsol
        if status != NEWTON_OK:
            # Newton failure / singular W: refresh an old Jacobian, halve the step
            stats[4] += 1
            if not jac_fresh:
                jac_valid = False
            habs = 0.5 * hstep
            after_reject = True
            # not below dtmin, nor below rounding of t (with dtmin = 0 the halvings would
            # reach h = 0, and 1 / (h gamma) raised ZeroDivisionError out of solve)
            if habs < dtmin or not (habs > 2.220446049250313e-16 * abs(t)):
                rc = RC_CONVFAIL
                break
            continue

        if adaptive:
            errn = error_norm(err, u, unew, atol, rtol)
            if not (errn <= 1.0):
                stats[4] += 1
                nonfinite = not (errn < np.inf)
                habs = hstep * reject_factor(errn, beta1, safety, qmin)
                after_reject = True
                if habs < dtmin or not (habs > 2.220446049250313e-16 * abs(t)):
                    rc = RC_UNSTABLE if nonfinite else RC_DTMIN
                    break
                continue
            fac = pi_factor(errn, err_prev, beta1, beta2, safety, qmin,
                            1.0 if after_reject else qmax)
            err_prev = max(errn, 1e-4)
            after_reject = False
        else:
            finite = True
            for i in range(n):
                if not np.isfinite(unew[i]):
                    finite = False
                    break
            if not finite:
                rc = RC_UNSTABLE
                break
            fac = 1.0

        tnew = stop if land else t + h
        hit_stop = land

        # ---- continuous callback: locate the event, redo the step to land on it
        fired = False
        moved = False
        if cb is not None:
            ccond, caffect, has_c, c_term, c_dir, has_caffect, dcond, daffect, has_d, cbp = cb
            if has_c:
                g_new = cond_value(ccond, unew, tnew, cbp)
                found, theta = event_search(ccond, cbp, c_dir, u, t, h, kd, BTH, g_prev, g_new,
                                            just_fired, unew, ytmp)
                just_fired = False
                if found:
                    uroot = root_state(u, kd, BTH, theta, h)
                    h, tnew, hit_stop = event_landing(theta, t, h, tnew, hit_stop)
                    status, nf, nsol, thmax = _attempt(f, p, lin, plin, haslin, tmp, tab, u, t,
                                                       h, f0, fe0, fi0, T, J, W, piv, whg, K, K2,
                                                       kd, unew, ytmp, err, fsal, z, base, r,
                                                       atol, rtol, eta)
                    stats[0] += nf
                    stats[2] += nsol
                    if status != NEWTON_OK:
                        rc = RC_CONVFAIL
                        break
                    moved = land_past_root(ccond, cbp, unew, uroot, tnew)
                    fired = True
                else:
                    g_prev = g_new

        # ---- accept
        if dense:
            if nsteps >= dus.shape[0]:
                dus = _grow_rows(dus, nsteps + 1)
                dks = _grow_rows(dks, nsteps + 1)
            put_row(dus, nsteps, u)
            put_rows(dks, nsteps, kd, sd)
        if nsteps >= steps_t.size:
            steps_t = _grow(steps_t, nsteps + 1)
            steps_h = _grow(steps_h, nsteps + 1)
        steps_t[nsteps] = t
        steps_h[nsteps] = h
        nsteps += 1
        stats[3] += 1
        # saved times strictly inside the step, from its interpolant (SciML's saveat; the
        # steps land only on tstops).  Where the caller made the saved times stops (the
        # gradients: they differentiate steps that end there) none is inside a step.
        while (not every and isave < savet.size and (savet[isave] - t) * tdir > 0.0
               and (tnew - savet[isave]) * tdir > 0.0):
            if nsave >= ts.size:
                ts = _grow(ts, nsave + 1)
                us = _grow_rows(us, nsave + 1)
            dense_eval(ytmp, u, kd, BTH, (savet[isave] - t) / h, h)
            ts[nsave] = savet[isave]
            put_row(us, nsave, ytmp)
            nsave += 1
            isave += 1
        for i in range(n):
            u[i] = unew[i]
        t = tnew
        if hit_stop:
            istop += 1
        jac_fresh = False
        T_valid = False
        if kind == KIND_ROS23:
            for i in range(n):
                f0[i] = fsal[i]
                fi0[i] = fsal[i]
                fe0[i] = 0.0
        else:
            f0_valid = False
        if not rosen and not jconst and thmax > THETA_REFRESH:
            jac_valid = False

        if every:
            if nsave >= ts.size:
                ts = _grow(ts, nsave + 1)
                us = _grow_rows(us, nsave + 1)
            ts[nsave] = t
            for i in range(n):
                us[nsave, i] = u[i]
            nsave += 1
        elif isave < savet.size and t == savet[isave]:
            ts[nsave] = t
            put_row(us, nsave, u)
            nsave += 1
            isave += 1

        if cb is not None:
            ccond, caffect, has_c, c_term, c_dir, has_caffect, dcond, daffect, has_d, cbp = cb
            if fired:
                ev_t = _grow(ev_t, nev + 1)
                ev_u = _grow_rows(ev_u, nev + 1)
                ev_t[nev] = t
                put_row(ev_u, nev, u)
                nev += 1
                if moved:
                    f0_valid = False
                if has_caffect:
                    apply_affect(caffect, u, t, cbp)
                    f0_valid = False
                    if every:
                        ts = _grow(ts, nsave + 1)
                        us = _grow_rows(us, nsave + 1)
                        ts[nsave] = t
                        put_row(us, nsave, u)
                        nsave += 1
                g_prev = cond_value(ccond, u, t, cbp)
                just_fired = True
                if c_term:
                    rc = RC_TERMINATED
                    break
            if has_d and cond_value(dcond, u, t, cbp) != 0.0:
                ev_t = _grow(ev_t, nev + 1)
                ev_u = _grow_rows(ev_u, nev + 1)
                ev_t[nev] = t
                put_row(ev_u, nev, u)
                nev += 1
                apply_affect(daffect, u, t, cbp)
                f0_valid = False
                if every:
                    ts = _grow(ts, nsave + 1)
                    us = _grow_rows(us, nsave + 1)
                    ts[nsave] = t
                    put_row(us, nsave, u)
                    nsave += 1
                if has_c:
                    g_prev = cond_value(ccond, u, t, cbp)

        if adaptive:
            habs, small = accepted_step(hstep, fac, habs, land, hit_stop, dtmin, dtmax)
            if small and istop < stops.size:
                rc = RC_DTMIN     # the controller shrinks the steps below dtmin
                break
        else:
            habs = dt
    return (ts, us, nsave, steps_t, steps_h, nsteps, dus, dks, ev_t, ev_u, nev, stats, rc, t, u)


# The loop compiled again for the ensemble kernel, uncached (the rule above: a cached caller
# of a loop taking first-class functions must compile that loop with itself)
stiff_solve_inner = njit(cache=False)(stiff_solve.py_func)


def trajectory_callbacks(cb, p):
    """``cb`` with the trajectory's parameters ``p`` as its last member (None stays None:
    the loop then compiles no event code)."""
    raise NotImplementedError("compiled code only")


@overload(trajectory_callbacks, jit_options={"cache": False})
def _trajectory_callbacks_impl(cb, p):
    if cb is None or isinstance(cb, types.NoneType):
        return lambda cb, p: None
    return lambda cb, p: (cb[0], cb[1], cb[2], cb[3], cb[4], cb[5], cb[6], cb[7], cb[8], p)


@njit(parallel=True, cache=True)
def stiff_ensemble(rhs, jd, u0s, ps, pcs, t0, tab, ctrl, stops, savet, cb, out, retcodes,
                   stats):
    """Trajectory ``i`` of ``u0s`` (N, n) with parameters ``ps[i]`` (and their complex
    copies ``pcs[i]`` for complex-step Jacobians), one per thread, each with its own
    adaptive steps and Jacobians: exactly :func:`stiff_solve` of that trajectory, saved
    at the common times ``savet`` into ``out[i]`` (N, nsave, n; NaN after a failure).
    ``rhs``/``jd`` give the shared parts (``f``, the linear part, the Jacobian source);
    their ``p``/``pc`` members are replaced per trajectory, and so is the callbacks'
    ``p`` when ``cb`` is a callback tuple (None: no event code).  ``stats`` (N, 5),
    ``retcodes`` (N,)."""
    f, p, lin, plin, haslin, tmp = rhs
    jac, hasjac, fc, pc, cptr, ccols, colptr, rowidx, hascolor, fjac_on, autonomous = jd
    N = u0s.shape[0]
    n = u0s.shape[1]
    nsv = savet.size
    for i in prange(N):
        rhsi = (f, ps[i], lin, plin, haslin, empty1(n))
        jdi = (jac, hasjac, fc, pcs[i], cptr, ccols, colptr, rowidx, hascolor, fjac_on,
               autonomous)
        # run-time flags, not literals: one compile of the loop shared with
        # stiff_ensemble_gradient's (RESULTS.md, fortieth session)
        res = stiff_solve_inner(rhsi, jdi, u0s[i], t0, tab, ctrl, stops,
                                (np.bool_(False), savet, np.bool_(False)),
                                trajectory_callbacks(cb, ps[i]), nsv + 1)
        put_trajectory(out, i, res[1], res[2])
        retcodes[i] = res[12]
        # put_row: ``stats[i] = res[11]`` would compile NumPy's shape-mismatch message
        # (~1.8 s of a cold compile)
        put_row(stats, i, res[11])
