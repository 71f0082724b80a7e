"""Gradients of stiff ODE solves: discrete adjoints of the Rosenbrock, ImplicitEuler and
ESDIRK methods, including KenCarp4's IMEX form.

``stiff_discrete_adjoint(prob, alg, loss, wrt, sensealg, solve_kw)`` runs the forward
stiff solve (stops at the loss's times, every accepted step recorded) and the compiled
reverse sweep of :mod:`jitsolve.adjoint.stiff`: the exact derivative of the computed
discrete solution, linear and Newton solves differentiated by the implicit function
theorem (transposed solves with the same matrix).  With adaptive steps the accepted step
sizes are recorded and held fixed in the reverse pass (their dependence on ``u0``/``p``
through the error controller is not differentiated).

- Rosenbrock23, Rodas5P: the forward pass's own step kernels, reversed.
- ImplicitEuler, Kvaerno5, KenCarp4 on an ``ODEProblem`` (and ImplicitEuler/Kvaerno5 on a
  ``SplitODEProblem``, both parts implicit): stages re-solved to rounding, ``mu_i =
  (I - h gamma J(Z_i))^{-T} J(Z_i)^T Fbar_i``.
- KenCarp4 on a ``SplitODEProblem`` (IMEX: ``f`` explicit through the ERK tableau, the
  linear part ``L`` implicit through the ESDIRK tableau of the ARK4(3)6L[2]SA pair):
  ``mu_i = (I - h gamma L)^{-T} (J_f(Z_i)^T FEbar_i + L^T FIbar_i)``; ``f``'s products by
  complex step (column-coloured by ``jac_sparsity``), ``L^T`` the exact transpose of the
  grid operator or matrix.
- Grid problems above ``dense_max`` (the Newton-Krylov path of ImplicitEuler, KenCarp4
  and Kvaerno5, :func:`krylov_discrete_adjoint`): the forward pass keeps the stage
  states, the transposed stage systems go to GMRES (:mod:`jitsolve.adjoint.newton_krylov`);
  any ``checkpoints`` (the steps re-solved from snapshots), ``store`` too.

Ensembles (``stiff_ensemble_gradient``): rows of ``u0s``/``ps`` with ``js.L2Loss`` and
``checkpoints="all"`` run in one compiled kernel, a trajectory per thread
(:mod:`jitsolve.kernels.cpu.stiff_ensemble_adjoint`), each row bit for bit its single
gradient; KenCarp4's IMEX form, ``prob_func`` and the other cases take one
``js.gradient`` per trajectory.

Checkpointing: ``DiscreteAdjoint(checkpoints="all" | C [, store])``; the (E)SDIRK and IMEX
states are recomputed from ``u0`` in every mode, so all modes give the same bits.
``js.gradient`` routes ``StiffAlgorithm`` instances here.

References
----------
Kennedy, Carpenter, *Additive Runge-Kutta schemes for convection-diffusion-reaction
equations*, Appl. Numer. Math. 44 (2003) 139-181; Hairer, Wanner, *Solving ODEs II*
(1996), IV.6-8; Zhang, Sandu, *FATODE*, SIAM J. Sci. Comput. 36 (2014); Griewank,
Walther, *Evaluating Derivatives* (2008), ch. 12.
"""
import numpy as np

from .errors import InvalidProblemError, UnsupportedAlgorithmError
from .gradient import SolveFailedError

__all__ = ["stiff_discrete_adjoint", "krylov_discrete_adjoint", "stiff_ensemble_gradient",
           "ensemble_in_kernel"]


def stiff_discrete_adjoint(prob, alg, loss, wrt, sensealg, solve_kw):
    """``(value, grads)`` of ``loss`` on the solution of ``prob`` by the stiff ``alg``.

    ``wrt``: names among ``"p"``, ``"u0"``, ``"kappa"`` (the coefficient field of a
    ``js.Diffusion`` right-hand side or linear part; not through KenCarp4's IMEX form);
    ``sensealg``: ``js.DiscreteAdjoint`` (any
    checkpointing) or None; ``solve_kw``: ``solve``'s options (``adaptive``, ``dt``,
    ``rtol``, ``atol``, ``tstops``, ``maxiters``, ``dtmin``).
    """
    from .adjoint.stiff import esdirk_adjoint, rosenbrock_adjoint
    from .kernels.cpu.rhs import zero_f
    from .ode import ode_options
    from .ode_stiff import (KenCarp4, Rodas5P, Rosenbrock23, StiffAlgorithm, _jacobian_tuple,
                            newton_krylov)
    from .problems import SplitODEProblem
    from .rhs import problem_rhs
    from .sensitivity import (DiscreteAdjoint, _gradient_options, _grads_out, _vjp_for,
                              loss_on_loop_steps)
    from .solvers.ode.rosenbrock import solve_stiff, stiff_tableau

    wrt = (wrt,) if isinstance(wrt, str) else tuple(wrt if wrt is not None else ("p",))
    if not isinstance(alg, StiffAlgorithm):
        raise UnsupportedAlgorithmError(f"alg: expected a stiff algorithm, got {type(alg).__name__}")
    rosen = isinstance(alg, (Rosenbrock23, Rodas5P))
    if sensealg is None:
        sensealg = DiscreteAdjoint()
    if not isinstance(sensealg, DiscreteAdjoint):
        raise UnsupportedAlgorithmError(
            f"sensealg: stiff algorithms support DiscreteAdjoint (or FiniteDifference); got "
            f"{type(sensealg).__name__}")
    for name in wrt:
        if name not in ("p", "u0", "kappa"):
            raise UnsupportedAlgorithmError(f"wrt: the stiff adjoint differentiates 'p', 'u0' "
                                            f"and 'kappa', not {name!r}")
    if solve_kw.get("callback") is not None:
        raise UnsupportedAlgorithmError("callback: gradients through callbacks are not supported")
    if newton_krylov(prob, alg):
        return krylov_discrete_adjoint(prob, alg, loss, wrt, sensealg, solve_kw)
    split = isinstance(prob, SplitODEProblem)
    imex = split and isinstance(alg, KenCarp4)     # f explicit, L implicit (as solve runs it)
    if imex and "kappa" in wrt:
        raise UnsupportedAlgorithmError(
            "wrt: 'kappa' through KenCarp4's IMEX form (implicit grid operator) is not "
            "supported yet; use Kvaerno5 or Rodas5P on the SplitODEProblem (both parts "
            "implicit), or an explicit method")
    t_data, o = _gradient_options(prob, loss, solve_kw)
    t0, t1 = prob.tspan
    all_states = sensealg.checkpoints == "all"
    o["saveat"] = None if all_states else t_data[t_data != t0]
    oo = ode_options(prob, alg, o)
    rhs = problem_rhs(prob)
    n = prob.u0.size
    jd = _jacobian_tuple(rhs, alg, imex, n)
    u0 = np.ascontiguousarray(prob.u0.ravel(), dtype=np.float64)
    if not imex:
        _check_vjp_against_complex_step(rhs.fun, u0, rhs.p, float(t0))
    raw = solve_stiff(alg.method, rhs.f, rhs.p, u0, t0, t1, lin=rhs.lin, plin=rhs.plin, jd=jd,
                      imex=imex, rtol=oo["rtol"], atol=oo["atol"], adaptive=oo["adaptive"],
                      dt=oo["dt"], dtmin=oo["dtmin"], maxiters=oo["maxiters"],
                      tstops=oo["tstops"], saveat=oo["saveat"], dense=False)
    if raw["retcode"] != "Success":
        raise SolveFailedError(f"gradient: the forward solve ended with ReturnCode.{raw['retcode']} "
                               f"at t = {raw['t_end']:.6g}")
    st, sh = raw["steps_t"], raw["steps_h"]
    val, g, save_after, g_initial_row = loss_on_loop_steps(prob, loss, t_data, raw, all_states)
    krhs = (rhs.f, rhs.p, rhs.lin if rhs.lin is not None else zero_f,
            rhs.plin if rhs.plin is not None else np.zeros(0), rhs.lin is not None, np.empty(n))
    vj, np_grad = _vjp_for(prob, rhs, wrt)
    nk = n if "kappa" in wrt else 0
    g_init = None if g_initial_row is None else g[g_initial_row]
    if not rosen:
        # ImplicitEuler / ESDIRK (and KenCarp4's IMEX pair): implicit function theorem at
        # stages re-solved to rounding
        lam, pbar, kbar, nre, ok = esdirk_adjoint(
            krhs, jd, vj, stiff_tableau(alg.method, imex), st, sh, u0=u0, gsave=g,
            save_after=save_after, g_initial=g_init, checkpoints=sensealg.checkpoints,
            store=sensealg.store, np_grad=np_grad, nk=nk)
        if not ok:
            raise SolveFailedError("gradient: a stage re-solved for the adjoint did not "
                                   "converge (Newton with the step-start Jacobian)")
        return val, _grads_out(prob, wrt, lam, pbar, kbar)
    # non-autonomous + adaptive: df/dt's increment of the forward pass is not recorded;
    # recompute the states with the accepted steps' increment (see adjoint/stiff.py)
    recompute = (not alg.autonomous) and oo["adaptive"]
    lam, pbar, kbar, nre = rosenbrock_adjoint(
        krhs, jd, vj, stiff_tableau(alg.method), st, sh,
        states=np.ascontiguousarray(raw["u"]) if all_states else None, u0=u0, gsave=g,
        save_after=save_after, g_initial=g_init, checkpoints=sensealg.checkpoints,
        store=sensealg.store, np_grad=np_grad, recompute=recompute, nk=nk)
    return val, _grads_out(prob, wrt, lam, pbar, kbar)


def _check_vjp_against_complex_step(fun, u, p, t, rtol=1e-6):
    """Refuse an ``f`` whose own ``vjp`` (without ``jac``) disagrees with the complex
    step of ``f``: the dense path's stage matrices ``I - h gamma J`` take ``J`` from the
    complex step while the products take the ``vjp``, so an ``f`` that is not
    complex-analytic (``abs``, ``max``: their complex step is wrong) gave gradients off by
    a few percent (5.5e-2 with ImplicitEuler) with no error.  One dot-product test at
    ``(u0, p, t0)``: ``w^T (J^T v)`` from the ``vjp`` against ``v^T (J w)`` from one
    complex evaluation of ``f``."""
    if fun is None or fun.vjp is None or fun.jac is not None:
        return
    n = u.size
    rng = np.random.default_rng(0)
    v, w = rng.standard_normal(n), rng.standard_normal(n)
    out_u, out_p = np.zeros(n), np.zeros(p.size)
    vjp = getattr(fun.vjp, "py_func", fun.vjp)
    vjp(out_u, out_p, v, u.copy(), p.copy(), t)
    du = np.empty(n, np.complex128)
    try:
        fcx = fun.compiled("f", complex_state=True)
    except Exception:       # f does not compile for complex: the Jacobian's own error
        return
    fcx(du, u + 1e-30j * w, p.astype(np.complex128), t)
    a, b = float(w @ out_u), float(v @ (du.imag / 1e-30))
    if not abs(a - b) <= rtol * (abs(a) + abs(b)) + 1e-300:
        raise InvalidProblemError(
            f"f: its vjp and the complex step of f disagree at u0 (w^T J^T v = {a:.6g} "
            f"against v^T J w = {b:.6g}): is f not complex-analytic (abs, max, ...)? The "
            f"stiff methods' dense path builds I - h gamma J from the complex step; give "
            f"the exact J too: ODEFunction(f, jac=..., vjp=...)")


def krylov_discrete_adjoint(prob, alg, loss, wrt, sensealg, solve_kw):
    """``(value, grads)`` through the Newton-Krylov path (a grid problem above
    ``alg.dense_max``): the forward solve keeps every step's stage states, the reverse
    sweep of :func:`jitsolve.adjoint.newton_krylov.sdirk_krylov_adjoint` solves the
    transposed stage systems by GMRES (the stages' multigrid cycle where the grid
    operator is symmetric).  ``J^T v``: the grid operator's exact transpose, ``f``'s by
    its own ``vjp``/``jac`` or the complex step coloured by ``jac_sparsity`` (as the
    other adjoints); ``kappa`` by the ``param_vjp`` of the operator's one ``js.Diffusion``
    term (through sums and scalings: ``0.1 * D + V`` too; its boundary term included).
    The transposed solves stop at ``rtol / 100`` (:func:`~jitsolve.adjoint.newton_krylov.
    adjoint_rtol`).  ``checkpoints="all"``: memory ``s x n`` floats a step (``s``
    stages); ``checkpoints=C``: ``C`` states, the binomial schedule's recomputed steps
    and one more re-solve of each step for its stages (gradients within the Newton
    tolerance of the store-all ones); with ``store=js.HDF5Store(path)`` the ``C``
    snapshots live on disk (the same gradient, bit for bit)."""
    from .adjoint.newton_krylov import (adjoint_rtol, sdirk_krylov_adjoint,
                                        sdirk_krylov_adjoint_checkpointed)
    from .adjoint.vjp import covers_products, make_vjp_source, user_derivatives
    from .kernels.cpu.erk_adjoint import vjp_apply
    from .kernels.cpu.fastcall import call
    from .kernels.cpu.rhs import zero_f_complex
    from .ode import ode_options
    from .ode_stiff import KenCarp4, check_krylov, grid_krylov_stepper
    from .problems import SplitODEProblem
    from .rhs import probed_parameters
    from .sensitivity import _gradient_options, _grads_out, loss_on_loop_steps
    from .grid.operators import ScaledOperator, SumOperator
    from .solvers.ode.rosenbrock import stiff_tableau

    def _kappa_terms(o, c=1.0):
        # [(c, D), ...]: the terms with a kappa field (js.Diffusion) and their scales
        # through sums and scalings (0.1 * D - V gives [(0.1, D)]; V's field is velocity)
        if isinstance(o, ScaledOperator):
            return _kappa_terms(o.op, c * o.c)
        if isinstance(o, SumOperator):
            return _kappa_terms(o.a, c) + _kappa_terms(o.b, c)
        return [(c, o)] if getattr(o, "param_name", None) == "kappa" else []

    check_krylov(prob, alg)
    n = prob.u0.size
    all_states = sensealg.checkpoints == "all"
    split = isinstance(prob, SplitODEProblem)
    op = prob.L if split else prob.f
    fn = prob.f if split else None
    imex = split and isinstance(alg, KenCarp4)
    if "p" in wrt and fn is None:
        raise InvalidProblemError("wrt: this problem has no parameters p (a pure grid operator)")
    kterms = _kappa_terms(op) if "kappa" in wrt else None
    if kterms is not None and len(kterms) != 1:
        raise InvalidProblemError(
            f"wrt: 'kappa' needs a grid operator with exactly one js.Diffusion term "
            f"(through sums and scalings, e.g. 0.1 * D + V); this one has {len(kterms)}")
    p = probed_parameters(prob)
    t_data, o = _gradient_options(prob, loss, solve_kw)
    t0, t1 = prob.tspan
    # every step's stages kept, or only the loss's states (the steps re-solved later)
    o["saveat"] = None if all_states else t_data[t_data != t0]
    oo = ode_options(prob, alg, o)
    shape = op.grid.shape
    opT = op.T
    pbar = np.zeros(p.size if "p" in wrt else 0)
    kbar = np.zeros(n) if "kappa" in wrt else None
    work, junk, dummy, pnone = np.empty(n), np.empty(n), np.zeros(n), np.zeros(0)
    cu, cd = np.empty(n, np.complex128), np.empty(n, np.complex128)
    fprod = pprod = None
    # f's products first: a missing jac_sparsity is refused before the forward solve
    if fn is not None:
        np_grad = pbar.size
        user = user_derivatives(fn, n, np_grad)
        fc = fn.cfunc("f_complex") if not covers_products(user, np_grad) else zero_f_complex
        vj_u = make_vjp_source(fc, p, True, n, sparsity=fn.jac_sparsity, np_grad=0,
                               user=user_derivatives(fn, n, 0))

        def f_prod(z, t, v, out):                   # out = J_f(z, t)^T v
            call(vjp_apply, vj_u, v, z, p, t, out, pnone, dummy, work, cu, cd)
        fprod = f_prod
        if np_grad:
            vj_p = make_vjp_source(fc, p, True, n, sparsity=fn.jac_sparsity,
                                   np_grad=np_grad, user=user)

            def p_prod(z, t, w):                    # pbar += J_p(z, t)^T w
                call(vjp_apply, vj_p, w, z, p, t, junk, pbar, dummy, work, cu, cd)
            pprod = p_prod

    stepper = grid_krylov_stepper(prob, alg)
    u0 = np.ascontiguousarray(prob.u0.ravel(), dtype=np.float64)
    raw = stepper(u0, t0, t1, oo, record=all_states)
    if raw["retcode"] != "Success":
        raise SolveFailedError(f"gradient: the forward solve ended with ReturnCode.{raw['retcode']} "
                               f"at t = {raw['t_end']:.6g}")
    st, sh = raw["steps_t"], raw["steps_h"]
    t_ends = np.append(st[1:], t1) if st.size else st
    val, g, save_after, g_row = loss_on_loop_steps(prob, loss, t_data, raw, all_states)

    def op_prod(z, t, v, out):                      # out = L^T v
        opT.apply(v.reshape(shape), out.reshape(shape))

    kwork = np.empty(shape)

    def kappa_prod(z, t, w):                        # kbar += (d(L z + b)/d kappa)^T w
        c, leaf = kterms[0]                         # the one Diffusion term, c * D(kappa)
        leaf.param_vjp(z.reshape(shape), w.reshape(shape), out=kwork)
        kbar[:] += c * kwork.ravel()

    tmp = np.empty(n)
    if fn is None or imex:
        jtv_I, jtv_E = op_prod, fprod
    else:
        def jtv_I(z, t, v, out):
            op_prod(z, t, v, out)
            fprod(z, t, v, tmp)
            out += tmp
        jtv_E = None
    grad_k = kappa_prod if kbar is not None else None
    grad_f = pprod if fn is not None and pbar.size else None
    if imex:
        grad_I, grad_E = grad_k, grad_f
    else:
        grad_E = None
        grad_I = (grad_k if grad_f is None else grad_f if grad_k is None
                  else (lambda z, t, w: (grad_k(z, t, w), grad_f(z, t, w))))
    common = dict(jtv_E=jtv_E, grad_I=grad_I, grad_E=grad_E,
                  precond=stepper.precond if op.symmetric else None,
                  lin_rtol=adjoint_rtol(oo["rtol"]))
    tab = stiff_tableau(alg.method, imex)
    g_init = None if g_row is None else g[g_row]
    if all_states:
        lam, info = sdirk_krylov_adjoint(tab, st, sh, raw["stages"], g, save_after, g_init,
                                         jtv_I, **common)
    else:
        # one step re-solved from its start with its recorded size (fixed step, landing
        # on the recorded end), its stages kept
        one = dict(oo, adaptive=False, saveat=None, tstops=None)

        def restep(k, u):
            r = stepper(u, float(st[k]), float(t_ends[k]), dict(one, dt=abs(float(sh[k]))),
                        record=True)
            if r["retcode"] != "Success" or r["stages"].shape[0] != 1:
                return None
            return r["u"][-1], r["stages"][0]
        lam, info = sdirk_krylov_adjoint_checkpointed(
            tab, st, sh, u0, restep, sensealg.checkpoints, g, save_after, g_init, jtv_I,
            store=sensealg.store, **common)
    if info["failed"] is not None:
        raise SolveFailedError(f"gradient: {info['failed']}")
    return val, _grads_out(prob, wrt, lam, pbar, kbar)


def _krylov_refusal(prob, alg, who):
    """The message refusing a continuous adjoint or forward sensitivity of a
    Newton-Krylov solve (a grid problem with more than ``alg.dense_max`` unknowns): what
    works instead."""
    n = prob.u0.size
    return (f"{who} the dense path (at most dense_max={alg.dense_max} unknowns); this "
            f"grid problem has {n} and is solved by Newton-Krylov, whose only adjoint is "
            f"the discrete one. Use sensealg=js.DiscreteAdjoint() (checkpoints='all'), "
            f"js.FiniteDifference() (two solves per input: few inputs), or "
            f"{type(alg).__name__}(dense_max={n}) to take the dense path (a dense LU of "
            f"{n} x {n} per step)")


def _continuous_setup(prob, alg, loss, wrt, sensealg, solve_kw):
    """Checks and options shared by the continuous adjoints and forward sensitivities of
    the stiff methods: ``(t_data, oo, rhs, n, imex, user functions, (L, c, colouring))``
    (the dense linear part, its constant, the column colouring of ``jac_sparsity``)."""
    from .adjoint.continuous_stiff import linear_part_dense
    from .solvers.ode.rosenbrock import color_columns
    from .kernels.cpu.rhs import zero_f, zero_f_complex
    from .ode import ode_options
    from .ode_stiff import KenCarp4, newton_krylov
    from .problems import SplitODEProblem
    from .rhs import problem_rhs
    from .sensitivity import _gradient_options

    name = type(sensealg).__name__
    if "kappa" in wrt:
        raise UnsupportedAlgorithmError("wrt: use DiscreteAdjoint for coefficient fields")
    if solve_kw.get("callback") is not None:
        raise UnsupportedAlgorithmError("callback: gradients through callbacks are not supported")
    split = isinstance(prob, SplitODEProblem)
    n = prob.u0.size
    if newton_krylov(prob, alg):
        raise UnsupportedAlgorithmError(_krylov_refusal(
            prob, alg, f"sensealg: {name} with {type(alg).__name__} needs"))
    t_data, o = _gradient_options(prob, loss, solve_kw)
    oo = ode_options(prob, alg, o)
    rhs = problem_rhs(prob)
    fun = rhs.fun
    if "p" in wrt and fun is None:
        raise InvalidProblemError("wrt: this problem has no parameters p (a pure grid operator)")
    if fun is not None:
        # the complex twin only where no user derivative gives J (resp. J_p): f need not
        # compile for complex states when jac / vjp (and paramjac / vjp) are given
        needs_fc = (fun.jac is None and fun.vjp is None) or (
            "p" in wrt and rhs.p.size > 0 and fun.paramjac is None and fun.vjp is None)
        funcs = (fun.cfunc("f"), fun.cfunc("f_complex") if needs_fc else zero_f_complex,
                 fun.cfunc("jac") if fun.jac is not None else None,
                 fun.cfunc("paramjac") if fun.paramjac is not None else None,
                 fun.cfunc("vjp") if fun.vjp is not None else None)
    else:
        funcs = (zero_f, zero_f_complex, None, None, None)
    L = c = colouring = None
    if rhs.lin is not None:
        L, c = linear_part_dense(rhs.lin, rhs.plin, n, prob.tspan[0])
    sparsity = fun.jac_sparsity if fun is not None and fun.jac is None else None
    if sparsity is not None:
        if sparsity.shape != (n, n):
            raise InvalidProblemError(f"jac_sparsity: shape {sparsity.shape}, but the state has "
                                      f"{n} components")
        colouring = color_columns(sparsity)
    imex = split and isinstance(alg, KenCarp4)
    return t_data, oo, rhs, n, imex, funcs, (L, c, colouring)


def stiff_continuous_adjoint(prob, alg, loss, wrt, sensealg, solve_kw):
    """``(value, grads)`` by a continuous adjoint (``js.InterpolatingAdjoint``,
    ``js.QuadratureAdjoint``, ``js.BacksolveAdjoint``) with the stiff ``alg``: the forward
    solve keeps its dense output and the adjoint ODE is solved backwards by the same
    method (:mod:`jitsolve.adjoint.continuous_stiff`), at the solve's ``rtol``/``atol``.
    KenCarp4's IMEX form runs the adjoint with both parts implicit (its ESDIRK tableau).
    """
    from .adjoint.continuous_stiff import adjoint_system, pack, solve_adjoint
    from .ode_stiff import _jacobian_tuple
    from .sensitivity import _grads_out, _loss_and_final_times
    from .solvers.ode.rosenbrock import ROSENBROCK, solve_stiff

    name = type(sensealg).__name__
    t_data, oo, rhs, n, imex, funcs, (L, c, col) = _continuous_setup(prob, alg, loss, wrt, sensealg,
                                                                solve_kw)
    if not oo["adaptive"]:
        raise UnsupportedAlgorithmError(
            f"sensealg: {name} solves the adjoint ODE with adaptive steps at rtol/atol; "
            f"with adaptive=False use js.DiscreteAdjoint()")
    t0, t1 = prob.tspan
    mode = sensealg.mode
    u0 = np.ascontiguousarray(prob.u0.ravel(), dtype=np.float64)
    # saved: the loss's states and u(t1) only (backsolve keeps O(1) memory in the steps)
    save = _loss_and_final_times(t_data, t1)
    raw = solve_stiff(alg.method, rhs.f, rhs.p, u0, t0, t1, lin=rhs.lin, plin=rhs.plin,
                      jd=_jacobian_tuple(rhs, alg, imex, n), imex=imex, rtol=oo["rtol"],
                      atol=oo["atol"], dt=oo["dt"], dtmin=oo["dtmin"], maxiters=oo["maxiters"],
                      tstops=oo["tstops"], saveat=save, dense=mode != 1)
    if raw["retcode"] != "Success":
        raise SolveFailedError(f"gradient: the forward solve ended with ReturnCode.{raw['retcode']} "
                               f"at t = {raw['t_end']:.6g}")
    lookup = {float(t): k for k, t in enumerate(raw["t"])}
    saved = np.stack([raw["u"][lookup[float(t)]] for t in t_data])
    u_saved = saved.reshape((t_data.size,) + prob.u0.shape)
    val = loss.value(u_saved)
    g = np.ascontiguousarray(loss.grad(u_saved).reshape(t_data.size, n), dtype=np.float64)
    npg = rhs.p.size if "p" in wrt else 0
    system = adjoint_system(*funcs)
    hasf = rhs.fun is not None
    if mode == 1:
        e = np.zeros(0)
        P = pack(rhs.p, n, npg, mode, e, e, e, e, np.zeros((0, 0)), L, c, hasf, colouring=col)
    else:
        P = pack(rhs.p, n, npg, mode, raw["steps_t"], raw["steps_h"], raw["dense_u"],
                 raw["dense_k"], np.ascontiguousarray(raw["BTH"], dtype=np.float64), L, c, hasf,
                 colouring=col)
    off = n if mode == 1 else 0
    z_end = np.zeros(off + n + npg)
    if mode == 1:
        z_end[:n] = raw["u"][-1]
    order = np.argsort(-(t_data - t0) * (1 if t1 >= t0 else -1), kind="stable")
    jump = order[t_data[order] != t0]
    # the dense output is one polynomial per forward step: the backward steps stop at their
    # ends (see solve_adjoint; backsolve re-integrates the state and has none)
    stops = None if mode == 1 else raw["steps_t"]
    # QuadratureAdjoint leaves mu out of the error norm, but not with the ESDIRK methods:
    # their stage values are second order on a stiff adjoint, and the parameter integral
    # summed from them without control was 40-700x less accurate than the tolerance (the
    # stiff linear audit problem, KenCarp4/Kvaerno5); the backward steps stop at every
    # forward step end anyway, so controlling mu took as many steps (+-5 %)
    quad = mode == 2 and alg.method in ROSENBROCK
    z, _stats, rc, t_end = solve_adjoint(alg.method, system, P, z_end, t1, t0, t_data[jump],
                                         g[jump], n=n, off=off, quadrature=quad,
                                         rtol=float(np.min(oo["rtol"])),
                                         atol=float(np.min(oo["atol"])),
                                         maxiters=int(oo["maxiters"]), stops=stops)
    if rc != "Success":
        raise SolveFailedError(f"gradient: the adjoint solve of {name} with "
                               f"{type(alg).__name__} ended with ReturnCode.{rc} at "
                               f"t = {t_end:.6g}")
    lam = z[off:off + n].copy()
    for j in np.nonzero(t_data == t0)[0]:
        lam += g[j]
    return val, _grads_out(prob, wrt, lam, z[off + n:].copy(), None)


def stiff_forward_sensitivity(prob, alg, loss, wrt, sensealg, solve_kw):
    """``(value, grads)`` by forward (tangent-linear) sensitivities with the stiff
    ``alg``: the state and one tangent ``S_k' = (J + L) S_k + J_p dp_k`` per input entry
    (``np`` for ``p``, ``n`` for ``u0``) solved together by the same method, with one
    error control (:func:`jitsolve.adjoint.continuous_stiff.sensitivity_system`).
    Accurate to the solve's tolerance (the explicit methods' ForwardSensitivity is the
    exact derivative of their discrete solution instead).  KenCarp4's IMEX form runs the
    augmented system with both parts implicit.
    """
    from .adjoint.continuous_stiff import pack, sensitivity_system
    from .sensitivity import tangent_directions, tangent_gradient
    from .solvers.ode.rosenbrock import jacobian_data, solve_stiff

    t_data, oo, rhs, n, _imex, funcs, (L, c, col) = _continuous_setup(prob, alg, loss, wrt,
                                                                 sensealg, solve_kw)
    npar = rhs.p.size
    npg = npar if "p" in wrt else 0
    S0, dp, names = tangent_directions(wrt, n, npar, npg)
    ndir = S0.shape[0]
    if n * (1 + ndir) > alg.dense_max:
        raise UnsupportedAlgorithmError(
            f"sensealg: ForwardSensitivity with {type(alg).__name__} solves the state and its "
            f"{ndir} tangents as one system of {n * (1 + ndir)} unknowns with a dense "
            f"Jacobian (more than dense_max={alg.dense_max}); use js.InterpolatingAdjoint() "
            f"or js.DiscreteAdjoint(), whose cost does not grow with the number of inputs")
    e = np.zeros(0)
    P = pack(rhs.p, n, npg, 3, e, e, e, e, np.zeros((0, 0)), L, c, rhs.fun is not None, dp=dp,
             colouring=col)
    z0 = np.concatenate([prob.u0.ravel().astype(np.float64), S0.ravel()])
    nz = z0.size
    f_sens, j_sens = sensitivity_system(*funcs)
    raw = solve_stiff(alg.method, f_sens, P, z0, prob.tspan[0], prob.tspan[1],
                      jd=jacobian_data(nz, P, jac=j_sens, autonomous=False),
                      rtol=float(np.min(oo["rtol"])), atol=float(np.min(oo["atol"])),
                      adaptive=oo["adaptive"], dt=oo["dt"], dtmin=oo["dtmin"],
                      maxiters=oo["maxiters"], tstops=oo["tstops"], saveat=t_data)
    if raw["retcode"] != "Success":
        raise SolveFailedError(f"gradient: the forward sensitivity solve with "
                               f"{type(alg).__name__} ended with ReturnCode.{raw['retcode']} "
                               f"at t = {raw['t_end']:.6g}")
    m = t_data.size
    zs = raw["u"]
    u_saved = zs[:, :n].reshape((m,) + prob.u0.shape)
    val = loss.value(u_saved)
    g = np.ascontiguousarray(loss.grad(u_saved).reshape(m, n), dtype=np.float64)
    return val, tangent_gradient(prob, g, zs[:, n:].reshape(m, ndir, n), names)


def ensemble_in_kernel(eprob, alg, loss, wrt, sensealg):
    """Whether :func:`stiff_ensemble_gradient` covers this stiff ensemble gradient."""
    from .losses import L2Loss
    from .ode_stiff import KenCarp4, newton_krylov
    from .problems import SplitODEProblem
    from .sensitivity import DiscreteAdjoint
    prob = eprob.prob
    split = isinstance(prob, SplitODEProblem)
    return (eprob.prob_func is None and isinstance(loss, L2Loss)
            and (sensealg is None or (isinstance(sensealg, DiscreteAdjoint)
                                      and sensealg.checkpoints == "all"))
            and not (split and isinstance(alg, KenCarp4))
            and not newton_krylov(prob, alg)
            and set(wrt) <= {"p", "u0"})


def stiff_ensemble_gradient(eprob, alg, loss, wrt, solve_kw):
    """Per-trajectory gradients of a stiff ensemble (rows of ``u0s``/``ps``, ``js.L2Loss``,
    ``DiscreteAdjoint(checkpoints="all")``) in one compiled kernel, a trajectory per
    thread (:func:`jitsolve.kernels.cpu.stiff_ensemble_adjoint.stiff_ensemble_gradient`):
    trajectory ``i``'s forward pass and reverse sweep are those of :func:`
    stiff_discrete_adjoint` on its own problem, so ``grads[name][i]`` equals its single
    gradient bit for bit (the value is summed in another order: equal to rounding).

    Returns ``(value, {"p": (N, np), "u0": (N, *u0.shape)})``; raises
    :class:`~jitsolve.gradient.SolveFailedError` naming the first failed trajectory."""
    from .kernels.cpu.fastcall import call
    from .kernels.cpu.stiff_ensemble_adjoint import RC_STAGE_FAILED
    from .kernels.cpu.stiff_ensemble_adjoint import stiff_ensemble_gradient as kernel
    from .ode import ode_options
    from .ode_stiff import _jacobian_tuple
    from .rhs import problem_rhs
    from .sensitivity import (_gradient_options, _vjp_for, ensemble_grads_out,
                              ensemble_loss_arrays, ensemble_trajectories)
    from .solvers.ode.rosenbrock import RETCODES, _loop_arguments
    prob = eprob.prob
    N = ensemble_trajectories(eprob, wrt, solve_kw)
    if solve_kw.get("callback") is not None:
        raise UnsupportedAlgorithmError("callback: gradients through callbacks are not supported")
    t_data, o = _gradient_options(prob, loss, solve_kw)
    o["saveat"] = None
    oo = ode_options(prob, alg, o)
    rhs = problem_rhs(prob)
    n = prob.u0.size
    d, w, u0s, ps = ensemble_loss_arrays(eprob, loss, rhs, N, t_data.size)
    jd = _jacobian_tuple(rhs, alg, False, n)
    t0, t1 = prob.tspan
    tab, krhs, jd, stops, ctrl = _loop_arguments(
        alg.method, rhs.f, ps[0] if N else rhs.p, n, t0, t1, rhs.lin, rhs.plin, jd, False,
        oo["rtol"], oo["atol"], oo["adaptive"], oo["dt"], oo["dtmin"], np.inf, oo["maxiters"],
        oo["tstops"], np.zeros(0))
    vj, np_grad = _vjp_for(prob, rhs, wrt)
    values = np.zeros(N)
    g_u0 = np.zeros((N, n))
    g_p = np.zeros((N, np_grad))
    rcs = np.zeros(N, np.int64)
    if N:
        call(kernel, krhs, jd, u0s, ps, ps.astype(np.complex128), float(t0), tab, ctrl, stops,
             vj, np.ascontiguousarray(t_data, dtype=np.float64), d, w,
             (not alg.autonomous) and bool(oo["adaptive"]), values, g_u0, g_p, rcs)
    if (rcs != 0).any():
        bad = int(np.argmax(rcs != 0))
        why = ("a stage re-solved for the adjoint did not converge" if rcs[bad] == RC_STAGE_FAILED
               else f"the forward solve ended with ReturnCode.{RETCODES[rcs[bad]]}")
        raise SolveFailedError(f"gradient: trajectory {bad} of the ensemble: {why}; its "
                               f"gradient is NaN")
    return float(values.sum()), ensemble_grads_out(prob, wrt, g_u0, g_p)
