"""Gradients of SDE solves: ``js.gradient(SDEProblem, js.EM(), loss, wrt=("p", "u0"),
sensealg=js.DiscreteAdjoint(checkpoints=...), dt=..., seed=...)``.

The discrete adjoint is the exact pathwise derivative of the discrete solution that
``solve`` computed for that ``seed`` (the Brownian path is held fixed): the forward
solve runs, then the compiled reverse sweep of
:mod:`jitsolve.kernels.cpu.sde_adjoint` regenerates each step's Brownian increment from
the same virtual Brownian tree (bit-identical to the forward's, never stored) and
applies VJPs of ``f`` and ``g``: the drift's own derivatives first when ``f`` is a
``js.ODEFunction`` with ``vjp`` (both products in one call), else ``jac`` (dense, small
systems) and ``paramjac``, as in the ODE adjoints; the rest by complex step (``g`` and
the Milstein term always; ``g``'s column-coloured by its pattern when given as
``js.ODEFunction(g, jac_sparsity=...)``, dense otherwise).  ``checkpoints="all"`` keeps
every state; an integer ``C`` keeps ``C`` states and recomputes with the binomial (Revolve)
schedule, recorded first and then run in one compiled call (``C`` states in memory,
counting ``u0``); ``store=js.HDF5Store(path)`` keeps them on disk (the schedule
is then driven from Python, one compiled call per step).  The gradient is bit-for-bit
independent of the checkpointing choice.

Covered: ``EM`` (Itô), ``EulerHeun`` (Stratonovich; predictor recomputed, both stages
reversed), ``Milstein`` (Itô or Stratonovich) when the problem supplies its Milstein
term ``ggprime`` (``js.SDEProblem(..., ggprime=...)``), and ``SRA1`` (additive noise
only: multiplicative ``g`` is refused, as by ``solve``) and ``SRIW1``
(Itô) with fixed or adaptive steps (their stages reversed like an explicit RK step; the
iterated integrals ``I_(1)``, ``I_(1,1)``, ``I_(1,0)``, ``I_(1,1,1)`` are formed again from
``dW`` and ``I_(1,0)`` regenerated from the Lévy-area tree, never stored); diagonal or
scalar noise; ``EM``, ``EulerHeun`` and ``SRA1`` also with general noise (``g(G, u, p,
t)`` writes the n x m matrix G; the term ``G(u) dW`` is differentiated by one complex step
of ``g``'s matrix twin per state and per parameter component, dense: no ``jac_sparsity``
for G).  ``f`` and, for diagonal or scalar noise, ``g`` given as ``js.ODEFunction`` with
their own ``vjp`` (or ``jac``/``paramjac``) are differentiated by those first.  With fixed steps
``dt`` the loss's times must lie on the step grid
``t0 + k dt`` (or be ``t1``).  ``f`` and ``g`` must compile for complex128 states and
parameters (complex step; e.g. no ``abs``, ``max``) unless their own derivatives give
every product the adjoint needs (``vjp``, or ``jac`` and, wrt ``p``, ``paramjac``);
``ggprime`` and a general-noise ``g`` always.

Adaptive steps (``adaptive=True``, the default for SRA1 and SRIW1): the forward runs with
the loss's times as save times, so its steps are clamped to land on them (exactly what
``solve(..., saveat=t_data)`` computes, rejected trials included: the Brownian tree
answers a rejected sub-step from the same path), and the accepted step endpoints
``t0 = t_0 < t_1 < ... < t_N = t1`` are recorded.  They are held fixed in the reverse
pass: the gradient is the exact derivative of the discrete solution *for that step
sequence*; the step-size controller (error estimate, accept/reject decisions, the next
step size) is not differentiated.  Where a small change of ``p`` or ``u0`` leaves the
controller's choices unchanged this is the derivative of the adaptive solve itself;
elsewhere the adaptive solve is only piecewise smooth in ``p`` (a step that flips
between accepted and rejected, or a proposal that rounds onto another dyadic time,
jumps) and the fixed-sequence gradient is the one of the piece it lies on.  The
endpoints cost ``N + 1`` floats on top of the checkpoints; every choice of
``checkpoints`` gives the same bits.

Milstein without ``ggprime`` raises ``UnsupportedAlgorithmError``: the forward then
forms ``g' g`` by complex step of ``g``, and the exact derivative of that term needs
second derivatives of ``g``.  A second complex-step direction does not give them
exactly (both directions share one imaginary unit, ``i * i = -1``: the mixed term
lands in the real part as ``-eps1 eps2 d2g``, lost against ``g``; the exact tools,
multicomplex or hyper-dual numbers, would need ``g`` compiled for a number type Numba
has no arrays of), and differences of first derivatives are not exact.  With
``ggprime`` the term is a user function of ``(u, p, t)`` that the forward evaluates
(through its complex twin) and the adjoint differentiates by complex step: exact.

Ensembles (:func:`sde_ensemble_gradient`): trajectory ``i`` is differentiated on its
own path (``seed``, path index ``i``), the one the ensemble solve gives it; every method
in one compiled kernel across threads (:mod:`jitsolve.kernels.cpu.sde_ensemble_adjoint`).

Not yet: general noise with Milstein (no ``ggprime`` form for it) and SRIW1 (whose
forward takes diagonal or scalar noise only).  ``js.FiniteDifference()`` differentiates
the whole solve with the same seed (any method; with adaptive steps the steps then move
with the perturbation).

References
----------
Griewank, Walther, *Evaluating Derivatives*, 2nd ed., SIAM (2008) (reverse mode;
binomial checkpointing, ch. 12); Kloeden, Platen, *Numerical Solution of Stochastic
Differential Equations*, Springer (1992), sec. 9.1, 10.3, 11.1 (EM, Milstein, Heun);
Rößler, *Runge-Kutta methods for the strong approximation of solutions of stochastic
differential equations*, SIAM J. Numer. Anal. 48(3) (2010) 922-952 (SRI, SRA);
Rackauckas, Nie, *Adaptive methods for stochastic differential equations via natural
embeddings and rejection sampling with memory*, DCDS-B 22(7) (2017) 2731-2761 (the
adaptive SRI/SRA step control); Alexe, Sandu, *On the discrete adjoints of adaptive
time stepping algorithms*, J. Comput. Appl. Math. 233 (2009) 1005-1020 (holding the
accepted steps fixed).
"""
import functools

import numpy as np

from .errors import InvalidProblemError, UnsupportedAlgorithmError
from .gradient import SolveFailedError, register_gradient
from .problems import SDEProblem

__all__ = []

#: VJP-source tuples by (complex twin, n, len(p), np_grad, sparsity); the tuple's complex
#: parameter work array is refilled from p on every use, so sharing it is safe
_VJ_CACHE = {}


def _grid_rows(sch, t_data, t0, t1):
    """Grid index of every loss time (0 .. N); they must be grid points."""
    ks = np.empty(t_data.size, dtype=np.int64)
    for j, t in enumerate(t_data):
        if abs(t - t1) <= 1e-14 * max(1.0, abs(t1)):
            ks[j] = sch.N
            continue
        x = (t - t0) / sch.span_tree
        k = int(np.rint(x / sch.xstep))
        if k > sch.N or abs(x - k * sch.xstep) > 1e-9 * sch.xstep:
            raise InvalidProblemError(
                f"t_data: the SDE adjoint needs observation times on the step grid t0 + k*dt "
                f"(or t1); {t!r} is not one")
        ks[j] = min(k, sch.N)
    if np.any(np.diff(ks) <= 0):
        raise InvalidProblemError("t_data: two observation times fall on the same grid point")
    return ks


def _record_steps(mod, funcs, u0, p, kw, t_data, store, trajectory=0):
    """Adaptive forward with the steps clamped to the loss times ``t_data`` (as
    ``solve(..., saveat=t_data)`` takes them), recording the accepted step endpoints.

    Returns ``(sch, xg, states, saved, rc, t_fail)``: the schedule, the normalised
    endpoints ``xg`` (``N + 1``), the state at each endpoint when ``store`` (else None),
    the states at ``t_data``, the kernel's return code and the time it stopped at."""
    from .kernels.cpu import sde as KS
    from .kernels.cpu import sde_adjoint as K
    from .solvers.sde.driver import _pack, schedule
    from .solvers.tolerance import tolerance_array
    f, gv, gm, _gc = funcs
    n = u0.size
    sch = schedule(kw["tspan"], kw["dt"], True, t_data)
    tab, fpar, ipar = _pack(mod, sch, kw["noise"], kw["m"], True, kw["atol"], kw["rtol"],
                            kw["dtmin"], kw["maxiters"], False, kw["strat"], kw["has_cs"], False)
    tab = np.ascontiguousarray(tab, dtype=np.float64)
    atol, rtol = tolerance_array(kw["atol"], n), tolerance_array(kw["rtol"], n)
    maxiters = int(kw["maxiters"])
    cap = min(maxiters, 1 << 14) + 1
    nsave = sch.xs.size
    while True:
        xg = np.empty(cap)
        states = np.empty((cap if store else 1, n))
        out_t = np.empty(nsave)
        out_u = np.empty((nsave, n))
        st = np.zeros(6, dtype=np.int64)
        K.sde_record_steps(f, gv, gm, tab, u0, p, atol, rtol, sch.xs, fpar, ipar,
                           np.uint64(kw["seed"]), np.uint64(trajectory), xg, states, bool(store),
                           out_t, out_u, st)
        if st[1] == KS.FULL and cap < maxiters + 1:
            cap = min(2 * cap, maxiters + 1)
            continue
        break
    N = int(st[4])
    rc = int(st[1]) if st[1] != KS.FULL else KS.MAXITERS
    t_fail = sch.t0 + (sch.t1 - sch.t0) * xg[N]
    xg = xg[:N + 1].copy()
    return sch, xg, (states[:N + 1] if store else None), out_u, rc, t_fail


def _step_rows(xg, xs):
    """Index of every save time among the recorded endpoints (the forward clamps its
    steps to the save times, so each is an endpoint exactly)."""
    ks = np.minimum(np.searchsorted(xg, xs), xg.size - 1)
    if not np.array_equal(xg[ks], xs):
        raise SolveFailedError("gradient: a loss time is not a step endpoint of the adaptive "
                               "forward (internal error)")
    if np.any(np.diff(ks) <= 0):
        raise InvalidProblemError("t_data: two observation times fall on the same step endpoint")
    return ks


@functools.lru_cache(maxsize=16)
def _record_schedule(N, C):
    """The binomial (Revolve) schedule of ``N`` steps with ``C`` snapshots
    (:func:`jitsolve.adjoint.checkpoint.record_schedule`) as an action table for
    :func:`jitsolve.kernels.cpu.sde_adjoint.em_checkpointed`: snapshots form a stack (a
    restore frees those above), so a snapshot's slot is its stack position.  Returns
    ``(actions (k, 3) int64, nslots, nrecompute)``; cached (a fit calls it again and
    again with the same ``N`` and ``C``, and recording costs milliseconds)."""
    from .adjoint.checkpoint import record_schedule
    from .kernels.cpu import sde_adjoint as K
    ops, nre = record_schedule(N, C)
    acts, stack, most = [], [], 0
    for op, a, b in ops.tolist():
        if op == 0:                                 # advance a..b
            if b > a:
                acts.append((K.ADVANCE, a, b))
        elif op == 1:                               # reverse step a
            acts.append((K.REVERSE, a, 0))
        elif op == 2:                               # snapshot before step a
            stack.append(a)
            most = max(most, len(stack))
            acts.append((K.TAKE, len(stack) - 1, 0))
        else:                                       # restore the snapshot before step a
            while stack[-1] != a:
                stack.pop()
            acts.append((K.RESTORE, len(stack) - 1, 0))
    actions = np.array(acts, dtype=np.int64).reshape(-1, 3)
    actions.setflags(write=False)
    return actions, most, nre


def _noise_matrix_twin(prob):
    """The complex twin of a general-noise ``g`` (its matrix form), or a placeholder of
    that signature (``prob=None``)."""
    from .functions import compile_cfunc
    if prob is None:
        return compile_cfunc(_no_matrix_twin, "g", "g_general_complex")
    try:
        return compile_cfunc(prob._g_raw, "g", "g_general_complex")
    except Exception as e:
        raise UnsupportedAlgorithmError(
            "g: the SDE adjoint differentiates g by complex step, so g must also compile for "
            f"complex128 states and parameters (avoid abs, min, max, comparisons): {e}") from None


def _no_matrix_twin(G, u, p, t):  # pragma: no cover - a placeholder, never called
    G[0, 0] = 0.0


def _vjp_sources(prob, wrt, phic=None, general=False):
    """VJP sources of ``f``, ``g`` (and of the Milstein term's complex twin ``phic``
    when given); returns ``(vjf, vjg, vjd or None, np_grad)``.  With general noise ``g``
    is a matrix function, differentiated by its own kernel: ``vjg`` is then ``f``'s
    source again (a placeholder)."""
    from .adjoint.vjp import covers_products, make_vjp_source, user_derivatives
    from .functions import compile_cfunc
    from .kernels.cpu.rhs import zero_f_complex
    n = prob.u0.size
    p = np.ascontiguousarray(prob.p, dtype=np.float64)
    np_grad = p.size if "p" in wrt else 0
    if "p" in wrt and p.size == 0:
        raise InvalidProblemError("wrt: this problem has no parameters p")
    # the drift's and the noise's own vjp / jac / paramjac come first (the adjoint issue's
    # order of VJP sources); the Milstein term has none.  Where they give every product,
    # no complex step is taken: the function need not compile for complex numbers
    user = user_derivatives(prob.f, n, np_grad)
    user_g = None if general else user_derivatives(prob.g_function, n, np_grad)
    fc = (zero_f_complex if covers_products(user, np_grad) else prob.f.cfunc("f_complex"))
    if general:
        gc = fc
    elif covers_products(user_g, np_grad):
        gc = zero_f_complex
    else:
        try:
            gc = compile_cfunc(prob._g_raw, "g", "f_complex")
        except Exception as e:
            raise UnsupportedAlgorithmError(
                "g: the SDE adjoint differentiates g by complex step, so g must also compile "
                f"for complex128 states and parameters (avoid abs, min, max, comparisons), "
                f"unless g brings its own derivatives (js.ODEFunction(g, vjp=...)): {e}"
            ) from None
    sparsity = prob.f.jac_sparsity
    out = []
    srcs = ([(fc, sparsity, "f", user),
             (gc, None if general else prob.g_sparsity, "g", user_g)]
            + ([(phic, None, "g", None)] if phic is not None else []))
    for c, sps, name, us in srcs:
        key = (id(c), n, p.size, np_grad, id(sps), us)
        hit = _VJ_CACHE.get(key)
        if hit is None or hit[0] is not c or hit[1] is not sps:
            # the colouring is the costly part of a small gradient: build it once
            hit = (c, sps, make_vjp_source(c, p, True, n, sparsity=sps, np_grad=np_grad,
                                            argname=name, user=us))
            _VJ_CACHE[key] = hit
        out.append(hit[2])
    return out[0], out[1], (out[2] if phic is not None else None), np_grad


def _int_params(prob, N, maxdepth):
    """The adjoint kernels' ``ip = (N, maxdepth, noise, m, strat)``
    (:mod:`jitsolve.kernels.cpu.sde_adjoint`)."""
    return np.array([N, maxdepth, {"diagonal": 0, "scalar": 1, "general": 2}[prob.noise],
                     prob.nbrownian, int(prob.interpretation == "stratonovich")], dtype=np.int64)


def _forward_setup(prob, alg, loss, solve_kw):
    """``(t_data, mod, funcs, kw)``: the loss's times and the compiled forward's module,
    functions and options, after checking ``solve``'s options for a gradient (no
    ``saveat``: the loss's times are saved; no ``save_noise``: it is regenerated)."""
    from .sde import _prepare
    from .sensitivity import _loss_times
    from .solve import _DE_DEFAULTS, _check_de_options
    unknown = set(solve_kw) - set(_DE_DEFAULTS)
    if unknown:
        raise InvalidProblemError(f"{sorted(unknown)[0]}: not an option of solve for SDEProblem")
    o = dict(_DE_DEFAULTS, **solve_kw)
    if o.get("saveat") is not None:
        raise InvalidProblemError("saveat: gradient() saves at the loss's times; "
                                  "do not pass saveat")
    if o.get("save_noise"):
        raise InvalidProblemError("save_noise: not used by gradient(); the noise is regenerated")
    _check_de_options(prob, o)
    t_data = _loss_times(prob, loss)
    return (t_data,) + tuple(_prepare(prob, alg, o))


def _adjoint_method(prob, alg):
    """The discrete adjoint's family for ``alg`` (``"em"``, ``"heun"``, ``"milstein"``,
    ``"sra"``, ``"sri"``), after refusing what it does not cover, by name."""
    from .sde import EM, SRA1, SRIW1, EulerHeun, Milstein
    kinds = ((EM, "em"), (EulerHeun, "heun"), (Milstein, "milstein"), (SRA1, "sra"),
             (SRIW1, "sri"))
    method = next((name for cls, name in kinds if isinstance(alg, cls)), None)
    if method is None:
        raise UnsupportedAlgorithmError(
            f"alg: the SDE discrete adjoint covers EM, EulerHeun, Milstein, SRA1 and SRIW1 "
            f"in this build; {type(alg).__name__} is not supported yet (use "
            f"js.FiniteDifference())")
    if prob.noise == "general" and method not in ("em", "heun", "sra"):
        raise UnsupportedAlgorithmError(
            f"noise: the SDE discrete adjoint covers general noise with EM, EulerHeun and "
            f"SRA1; {type(alg).__name__} needs diagonal or scalar noise (or use "
            f"js.FiniteDifference())")
    if method == "milstein" and prob.ggprime is None:
        raise UnsupportedAlgorithmError(
            "ggprime: the Milstein discrete adjoint needs the Milstein term as a function; "
            "without it the forward forms g'g by complex step of g and its exact derivative "
            "would need second derivatives of g.  Pass the derivative: js.SDEProblem(f, g, "
            "..., ggprime=ggp) with ggp(out, u, p, t) writing out_i = g_i dg_i/du_i (diagonal "
            "noise) or out = (dg/du) g (scalar noise), compilable for complex128 (or use "
            "js.FiniteDifference())")
    return method


def sde_discrete_adjoint(prob, alg, loss, wrt, sensealg, solve_kw, trajectory=0):
    """Value, gradients and info ``{"nsteps", "nrecompute"}`` (and, with adaptive steps,
    ``"xsteps"``: the recorded normalised step endpoints ``(t_k - t0)/(t1 - t0)``, held
    fixed in the reverse pass) of the EM / EulerHeun / Milstein / SRA1 / SRIW1 discrete
    adjoint, on the path with index ``trajectory`` of ``seed`` (0 for a single solve;
    trajectory ``i`` of an ensemble's solve is path ``i``)."""
    from .adjoint.checkpoint import binomial_reverse
    from .kernels.cpu import sde_adjoint as K
    from .solvers.sde.driver import geometry, schedule, solve_path
    method = _adjoint_method(prob, alg)
    sra, sri, heun, mil = (method == k for k in ("sra", "sri", "heun", "milstein"))
    general = prob.noise == "general"
    t_data, mod, funcs, kw = _forward_setup(prob, alg, loss, solve_kw)
    t0, t1 = kw["tspan"]
    all_states = sensealg.checkpoints == "all"
    phic = funcs[3] if mil else None        # complex twin of ggprime (kw["has_cs"] == 2)
    vjf, vjg, vjd, np_grad = _vjp_sources(prob, wrt, phic, general)
    gcm = _noise_matrix_twin(prob if general else None)
    u0 = np.ascontiguousarray(prob.u0, dtype=np.float64).ravel()
    p = np.ascontiguousarray(prob.p, dtype=np.float64)
    n = u0.size
    if kw["adaptive"]:
        # steps clamped to the loss times, accepted endpoints recorded (held fixed)
        sch, xg, u, saved, rc, tfail = _record_steps(mod, funcs, u0, p, kw, t_data, all_states,
                                                     trajectory)
    else:
        sch = schedule((t0, t1), kw["dt"], False, None)
        ks = _grid_rows(sch, t_data, t0, t1)
        xg = np.empty(0)                   # the fixed grid x_k = k xstep
        N = sch.N
        t, u, _W, rc, _st = solve_path(mod, funcs, u0, p, saveat=None if all_states else t_data,
                                       save_noise=False, trajectory=trajectory, **kw)
        tfail = t[-1] if t.size else t0
        saved = u[ks] if all_states and rc == 0 else u
    if rc != 0:
        from .sde import _RC
        hint = ""
        if rc == K.MAXITERS and not kw["adaptive"]:
            # where the fixed steps stopped (a forward saving at t_data only saved nothing)
            tfail = t0 + sch.span_tree * kw["maxiters"] * sch.xstep
            hint = f"; the fixed step needs {sch.N} steps: raise maxiters"
        raise SolveFailedError(f"gradient: the forward SDE solve ended with {_RC[rc].value} at "
                               f"t = {tfail:.6g}{hint}")
    if kw["adaptive"]:
        ks = _step_rows(xg, sch.xs)
        N = xg.size - 1
    shape = (t_data.size,) + prob.u0.shape
    u_saved = saved.reshape(shape)
    val = loss.value(u_saved)
    g = np.ascontiguousarray(loss.grad(u_saved).reshape(t_data.size, n), dtype=np.float64)
    save_after = -np.ones(N, dtype=np.int64)
    g_initial = np.zeros(n)
    for j, k in enumerate(ks):
        if k == 0:
            g_initial += g[j]
        else:
            save_after[k - 1] = j
    geo = geometry(sch)
    ip = _int_params(prob, N, sch.maxdepth)
    seed = np.uint64(kw["seed"])
    traj = np.uint64(trajectory)
    f, gv = funcs[0], funcs[1]
    lam = np.zeros(n)
    pbar = np.zeros(np_grad)
    nre = 0
    fc, vjf_r, gc, vjg_r, uf = K.split_sources(vjf, vjg)
    if heun:
        tf, ti = K.em_tree(int(ip[3]), seed, traj)
        gm = funcs[2]

        def adv(cur, i0, i1, buf):
            K.heun_advance(f, gv, gm, p, cur, geo, ip, seed, traj, tf, ti, i0, i1, buf, False)

        def rev(states, i0, i1):
            K.heun_reverse(f, gv, gm, fc, gc, gcm, vjf_r, uf, vjg_r, p, states, geo, ip, seed,
                           traj, tf, ti, i0, i1, g, save_after, lam, pbar)

        def checkpointed(actions, nslots):
            K.heun_checkpointed(f, gv, gm, fc, gc, gcm, vjf_r, uf, vjg_r, p, u0, geo, ip, seed,
                                traj, actions, nslots, g, save_after, lam, pbar)
    elif mil:
        tf, ti = K.em_tree(int(ip[3]), seed, traj)
        _, vjd_r, _ = K.split_vjp_source(vjd)

        def adv(cur, i0, i1, buf):
            K.milstein_advance(f, gv, phic, p, cur, geo, ip, seed, traj, tf, ti, i0, i1, buf,
                               False)

        def rev(states, i0, i1):
            K.milstein_reverse(f, fc, gc, phic, vjf_r, uf, vjg_r, vjd_r, p, states, geo, ip,
                               seed, traj, tf, ti, i0, i1, g, save_after, lam, pbar)

        def checkpointed(actions, nslots):
            K.milstein_checkpointed(f, gv, fc, gc, phic, vjf_r, uf, vjg_r, vjd_r, p, u0, geo,
                                    ip, seed, traj, actions, nslots, g, save_after, lam, pbar)
    elif sra or sri:
        tab = np.ascontiguousarray(mod.TABLEAU, dtype=np.float64)
        tf, ti = K.sra_tree(int(ip[3]), seed, traj)        # the Lévy-area tree
        # SRA also takes the matrix g of general noise and its complex twin
        gfs, gms = ((f, gv), (fc, gc)) if sri else ((f, gv, funcs[2]), (fc, gc, gcm))
        k_adv, k_rev, k_ck = ((K.sri_advance, K.sri_reverse, K.sri_checkpointed) if sri else
                              (K.sra_advance, K.sra_reverse, K.sra_checkpointed))

        def adv(cur, i0, i1, buf):
            k_adv(*gfs, tab, p, cur, geo, ip, xg, seed, traj, tf, ti, i0, i1, buf, False)

        def rev(states, i0, i1):
            k_rev(*gfs, *gms, vjf_r, uf, vjg_r, tab, p, states, geo, ip, xg, seed, traj, tf,
                  ti, i0, i1, g, save_after, lam, pbar)

        def checkpointed(actions, nslots):
            k_ck(*gfs, *gms, vjf_r, uf, vjg_r, tab, p, u0, geo, ip, xg, seed, traj,
                 actions, nslots, g, save_after, lam, pbar)
    else:
        tf, ti = K.em_tree(int(ip[3]), seed, traj)

        gm = funcs[2]

        def adv(cur, i0, i1, buf):
            K.em_advance(f, gv, gm, p, cur, geo, ip, seed, traj, tf, ti, i0, i1, buf, False)

        def rev(states, i0, i1):
            K.em_reverse(f, fc, gc, gcm, vjf_r, uf, vjg_r, p, states, geo, ip, seed, traj, tf,
                         ti, i0, i1, g, save_after, lam, pbar)

        def checkpointed(actions, nslots):
            K.em_checkpointed(f, gv, gm, fc, gc, gcm, vjf_r, uf, vjg_r, p, u0, geo, ip, seed,
                              traj, actions, nslots, g, save_after, lam, pbar)
    if all_states:
        rev(np.ascontiguousarray(u), 0, N)
    elif sensealg.store is None:
        actions, nslots, nre = _record_schedule(N, int(sensealg.checkpoints))
        checkpointed(actions, nslots)
    else:
        # snapshots on disk: the schedule is driven from Python, one compiled call per step
        snaps = sensealg.store
        cur = u0.copy()
        buf = np.zeros((1, n))

        def advance(i0, i1):
            if i1 > i0:
                adv(cur, i0, i1, buf)

        def reverse_step(i):
            buf[0] = cur
            rev(buf, i, i + 1)

        def take(i):
            snaps.put(i, cur)

        def restore(i):
            snaps.drop_above(i)
            cur[:] = snaps.get(i)

        try:
            nre = binomial_reverse(N, int(sensealg.checkpoints), advance, reverse_step, take,
                                   restore)
        finally:
            snaps.close()
    lam += g_initial
    out = {}
    for name in wrt:
        if name == "u0":
            out["u0"] = lam.reshape(prob.u0.shape)
        elif name == "p":
            out["p"] = pbar
    info = dict(nsteps=N, nrecompute=nre)
    if kw["adaptive"]:
        info["xsteps"] = xg
    return val, out, info


@register_gradient(SDEProblem)
def _sde_gradient(prob, alg, loss, wrt, sensealg, **solve_kw):
    from .sensitivity import DiscreteAdjoint, FiniteDifference, _finite_difference, _wrt_tuple
    wrt = _wrt_tuple(wrt)
    for name in wrt:
        if name not in ("p", "u0"):
            raise InvalidProblemError(f"wrt: cannot differentiate an SDE solve with respect to "
                                      f"{name!r} (choose from 'p', 'u0')")
    if sensealg is None:
        sensealg = DiscreteAdjoint()
    if isinstance(sensealg, FiniteDifference):
        return _finite_difference(prob, alg, loss, wrt, sensealg.step, solve_kw)
    if isinstance(sensealg, DiscreteAdjoint):
        val, out, _info = sde_discrete_adjoint(prob, alg, loss, wrt, sensealg, solve_kw)
        return val, out
    raise UnsupportedAlgorithmError(
        f"sensealg: {type(sensealg).__name__} is not implemented for SDEs; use "
        f"js.DiscreteAdjoint() or js.FiniteDifference()")


def sde_ensemble_gradient(eprob, alg, loss, wrt, sensealg, solve_kw):
    """Per-trajectory pathwise gradients of an SDE ensemble: row ``i`` is the discrete
    adjoint of trajectory ``i`` on its own Brownian path (``seed``, path ``i``: the path
    ``js.solve(eprob, alg, seed=...)`` gives it), for its own problem (row ``i`` of
    ``u0s``/``ps``, or ``prob_func(prob, i)``) and its own block of an ``L2Loss``'s
    per-trajectory data; the value is the sum.  With ``u0s``/``ps``, an ``L2Loss`` and
    every state kept (``checkpoints="all"``, the default) every method runs in one
    compiled kernel, a trajectory per thread (adaptive SRA1/SRIW1 record each
    trajectory's own steps in its thread;
    :mod:`jitsolve.kernels.cpu.sde_ensemble_adjoint`); anything else takes one compiled
    forward and reverse sweep per trajectory, called from Python, with the same bits.
    ``js.FiniteDifference`` is refused: its solves would not see the trajectories'
    paths."""
    from .losses import L2Loss
    from .sensitivity import DiscreteAdjoint, _ensemble_gradient_loop
    if sensealg is None:
        sensealg = DiscreteAdjoint()
    if not isinstance(sensealg, DiscreteAdjoint):
        raise UnsupportedAlgorithmError(
            f"sensealg: SDE ensembles are differentiated by js.DiscreteAdjoint (each "
            f"trajectory on its own path), not {type(sensealg).__name__}")
    if (eprob.prob_func is None and isinstance(loss, L2Loss) and sensealg.checkpoints == "all"
            and sensealg.store is None):
        return _ensemble_in_kernel(eprob, alg, loss, wrt, dict(solve_kw))

    def one(pi, li, i):
        val, out, _info = sde_discrete_adjoint(pi, alg, li, wrt, sensealg, dict(solve_kw),
                                               trajectory=i)
        return val, out
    return _ensemble_gradient_loop(eprob, alg, loss, wrt, sensealg, solve_kw, one=one,
                                   kinds=(SDEProblem,))


def _ensemble_in_kernel(eprob, alg, loss, wrt, solve_kw):
    """:func:`sde_ensemble_gradient` in one compiled kernel
    (:mod:`jitsolve.kernels.cpu.sde_ensemble_adjoint`)."""
    from .kernels.cpu import sde_adjoint as K
    from .kernels.cpu import sde as KS
    from .kernels.cpu import sde_ensemble_adjoint as KE
    from .sensitivity import ensemble_grads_out, ensemble_loss_arrays, ensemble_trajectories
    from .solvers.sde.driver import _pack, geometry, schedule
    from .solvers.tolerance import tolerance_array
    prob = eprob.prob
    method = _adjoint_method(prob, alg)
    N = ensemble_trajectories(eprob, wrt, solve_kw)
    t_data, mod, funcs, kw = _forward_setup(prob, alg, loss, solve_kw)
    t0, t1 = kw["tspan"]
    adaptive = bool(kw["adaptive"])
    sch = schedule((t0, t1), kw["dt"], adaptive, t_data if adaptive else None)
    if not adaptive and sch.N > kw["maxiters"]:
        # the forward solve of every trajectory stops there (js.solve: MaxIters)
        raise SolveFailedError(f"gradient: the forward SDE solves end with MaxIters; the fixed "
                               f"step needs {sch.N} steps: raise maxiters")
    rows = sch.xs if adaptive else _grid_rows(sch, t_data, t0, t1).astype(np.float64)
    general = prob.noise == "general"
    phic = funcs[3] if method == "milstein" else None
    vjf, vjg, vjd, np_grad = _vjp_sources(prob, wrt, phic, general)
    d, w, u0s, ps = ensemble_loss_arrays(eprob, loss, prob, N, t_data.size)
    ip = _int_params(prob, sch.N, sch.maxdepth)
    fc, vjf_r, gc, vjg_r, uf = K.split_sources(vjf, vjg)
    n = prob.u0.size
    values = np.zeros(N)
    g_u0 = np.zeros((N, n))
    g_p = np.zeros((N, np_grad))
    rcs = np.zeros(N, np.int64)
    f, gv = funcs[0], funcs[1]
    seed = np.uint64(kw["seed"])
    geo = geometry(sch)
    out = (values, g_u0, g_p, rcs)
    if method in ("em", "heun"):
        kern = KE.em_ensemble_gradient if method == "em" else KE.heun_ensemble_gradient
        kern(f, gv, funcs[2], fc, gc, _noise_matrix_twin(prob if general else None), vjf_r, uf,
             vjg_r, u0s, ps, geo, ip, seed, rows, d, w, *out)
    elif method == "milstein":
        _, vjd_r, _ = K.split_vjp_source(vjd)
        KE.milstein_ensemble_gradient(f, gv, fc, gc, phic, vjf_r, uf, vjg_r, vjd_r, u0s, ps, geo,
                                      ip, seed, rows, d, w, *out)
    else:
        tab, fpar, ipar = _pack(mod, sch, kw["noise"], kw["m"], True, kw["atol"], kw["rtol"],
                                kw["dtmin"], kw["maxiters"], False, kw["strat"], kw["has_cs"],
                                False)
        tab = np.ascontiguousarray(tab, dtype=np.float64)
        maxiters = int(kw["maxiters"])
        # SRA also takes the complex twin of the matrix g of general noise
        kern, gcs = ((KE.sri_ensemble_gradient, (fc, gc)) if method == "sri" else
                     (KE.sra_ensemble_gradient, (fc, gc, _noise_matrix_twin(
                         prob if general else None))))
        kern(f, gv, funcs[2], *gcs, vjf_r, uf, vjg_r, tab, u0s, ps, geo, ip, seed, rows, d, w,
             adaptive, fpar, ipar, tolerance_array(kw["atol"], n),
             tolerance_array(kw["rtol"], n), sch.xs,
             min(maxiters, 1 << 14) + 1, maxiters + 1, *out)
    bad = np.flatnonzero(rcs != 0)
    if bad.size:
        i = int(bad[0])
        why = {KE.NOT_FINITE: "its path is not finite", KS.MAXITERS: "maxiters reached",
               KS.DTLESSTHANMIN: "dt < dtmin"}.get(int(rcs[i]), f"return code {int(rcs[i])}")
        raise SolveFailedError(f"gradient: trajectory {i} of the ensemble failed ({why}); its "
                               f"gradient is NaN")
    return float(values.sum()), ensemble_grads_out(prob, wrt, g_u0, g_p)
