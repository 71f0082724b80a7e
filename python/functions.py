"""User functions: compile them with Numba, wrap them with their derivatives.

Right-hand sides are written in place, Julia style: ``f(du, u, p, t)`` writes ``du``.
Compiled code receives 1-D C-contiguous float64 arrays (a grid state is passed
flattened) and a float64 time.  A function that is not jitted is compiled with
``numba.njit`` on the way in; one Numba cannot compile raises
:class:`jitsolve.errors.CompileError` naming it.
"""
import inspect
import time
import warnings

import numpy as np

from .errors import CompileError, InvalidProblemError
from .log import get_logger

__all__ = ["ODEFunction", "compile_user_function", "compile_cfunc", "compile_batch_cfunc",
           "is_numba_function", "probe_user_function", "SIGNATURES", "PROBE_MAX_N"]


def _numba():
    """``numba``, imported after :mod:`jitsolve.kernels.cpu`: that package answers
    Numba's BLAS probe, which otherwise imports all of ``scipy.linalg`` (about 0.45 s)
    on the first compile in a process -- a user function is often the first."""
    from .kernels import cpu  # noqa: F401
    import numba
    return numba


def is_numba_function(f):
    """True for a Numba CPU dispatcher (``@njit``)."""
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:  # pragma: no cover - numba is a hard dependency
        return False
    return isinstance(f, CPUDispatcher)


def _describe(f):
    name = getattr(f, "__name__", None) or getattr(getattr(f, "py_func", None), "__name__", None)
    return name or repr(f)


def _check_arity(f, argname, nargs):
    if not callable(f):
        raise InvalidProblemError(f"{argname}: expected a function, got {type(f).__name__}")
    py = f.py_func if is_numba_function(f) else f
    try:
        params = inspect.signature(py).parameters
    except (TypeError, ValueError):
        params = None  # builtins without a signature: let Numba decide
    if params is not None:
        positional = [p for p in params.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) != nargs and not any(p.kind == p.VAR_POSITIONAL for p in params.values()):
            form = _ARG_FORMS.get(argname.split(".")[-1], _FORMS.get(nargs))
            raise InvalidProblemError(
                f"{argname}: {_describe(f)} takes {len(positional)} arguments; expected {nargs}"
                + (f" (e.g. {argname}({form}))" if form else ""))


#: the argument list a user function of each arity takes, for _check_arity's message
_FORMS = {3: "u, t, p", 4: "du, u, p, t", 6: "out_u, out_p, lam, u, p, t"}
#: the derivative functions' arguments (API.md)
_ARG_FORMS = {"jac": "J, u, p, t", "paramjac": "Jp, u, p, t", "g": "gu, u, p, t"}


def compile_user_function(f, argname, signature, *, nargs=4):
    """Return a Numba dispatcher for ``f`` compiled for ``signature``.

    Parameters
    ----------
    f : callable
        A Python function or a ``numba.njit`` dispatcher.
    argname : str
        The argument's name in the caller, for messages ("f", "g", "jac").
    signature : str or numba signature
        E.g. ``"void(float64[::1], float64[::1], float64[::1], float64)"``.
    nargs : int
        Expected number of positional parameters (checked before compiling).
    """
    numba = _numba()

    key = (id(f), str(signature))
    hit = _NJIT_CACHE.get(key)
    if hit is not None and hit[0] is f:
        return hit[1]
    _check_arity(f, argname, nargs)
    disp = f if is_numba_function(f) else numba.njit(cache=False, error_model="numpy")(f)
    try:
        disp.compile(signature)
    except Exception as exc:  # numba raises TypingError, UnsupportedError, LoweringError...
        first = str(exc).strip().splitlines()
        detail = first[0] if first else type(exc).__name__
        hint = ""
        sig = str(signature)
        if "complex128" in sig:
            # the complex twin, for complex-step derivatives
            hint = ("; derivatives by complex step need it to compile for complex states "
                    "(no comparisons of u, no math.* functions: use numpy); or give the "
                    "derivatives (ODEFunction's jac, paramjac, vjp)")
        elif sig.startswith("void(float64[::1]"):
            # states of any shape reach the user's functions flattened (C order)
            hint = ("; the arrays are 1-D: a state of shape (m, k) is passed flattened, "
                    "entry [i, j] at [i * k + j]")
        raise CompileError(
            f"{argname}: Numba could not compile {_describe(f)} for {signature} "
            f"({detail}){hint}") from exc
    # one dispatcher per function and signature: building the same problem again (remake,
    # a new SDEProblem in a loop) must not recompile (about 0.1 s each time)
    _NJIT_CACHE[key] = (f, disp)
    return disp


#: compile_user_function's dispatchers by (id(f), signature); the entry holds f itself, so
#: an id is never reused while its entry lives
_NJIT_CACHE = {}


F_SIGNATURE = "void(float64[::1], float64[::1], float64[::1], float64)"
# complex twin for complex-step derivatives: complex state *and* parameters, so that
# both J_u and J_p columns come from one kind of evaluation
F_SIGNATURE_COMPLEX = "void(complex128[::1], complex128[::1], complex128[::1], float64)"

#: fixed signatures of every user function that crosses into compiled loops
SIGNATURES = {
    "f": F_SIGNATURE,
    "f_complex": F_SIGNATURE_COMPLEX,
    "jac": "void(float64[:, ::1], float64[::1], float64[::1], float64)",
    "paramjac": "void(float64[:, ::1], float64[::1], float64[::1], float64)",
    "vjp": ("void(float64[::1], float64[::1], float64[::1], float64[::1], "
            "float64[::1], float64)"),
    # callbacks: condition(u, t, p) -> float, affect(u, t, p) modifies u in place
    "condition": "float64(float64[::1], float64, float64[::1])",
    "affect": "void(float64[::1], float64, float64[::1])",
    # SDE diffusion for noise="general": g(G, u, p, t) writes the n x nbrownian matrix
    "g_general": "void(float64[:, ::1], float64[::1], float64[::1], float64)",
    # its complex twin, for the general-noise discrete adjoint's complex steps
    "g_general_complex": "void(complex128[:, ::1], complex128[::1], complex128[::1], float64)",
    # a batch of states: f_batch(DU, U, P, t, i0, nl) writes f(DU[l], U[l], P[i0 + l], t)
    # for l < nl (P[0] for every l when P has one row); see compile_batch_cfunc
    "f_batch": ("void(float64[:, ::1], float64[:, ::1], float64[:, ::1], float64, int64, "
                "int64)"),
    # a batch of states at their own times, on the lanes listed, one state per *column*:
    # f_batch_t(DU, U, P, T, idx, nl) writes f(DU[:, l], U[:, l], P[:, l], T[l]) for
    # l = idx[k], k < nl (idx ascending; P[:, 0] for every lane when P has one column); the
    # adaptive lockstep ODE ensembles (kernels.cpu.erk_lockstep).  Columns, so that the
    # loop over the lanes vectorises through the user's function (see _batch_t_of)
    "f_batch_t": ("void(float64[:, ::1], float64[:, ::1], float64[:, ::1], float64[::1], "
                  "int64[::1], int64)"),
}

_log = get_logger("compile")
_CFUNC_CACHE = {}


def compile_cfunc(f, argname, kind, *, nargs=4):
    """Compile ``f`` as a Numba ``cfunc`` with the fixed signature ``SIGNATURES[kind]``.

    Compiled integration loops take user functions as values of these few signatures
    (C function pointers: the cfunc is returned marked by
    :func:`jitsolve.kernels.cpu.cfuncptr.as_pointer`), so each loop is compiled and
    disk-cached once for every user function (see DESIGN.md, "The user-function
    boundary").  The cfunc is disk-cached
    too where Numba can (a function defined in a file); a function Numba cannot
    compile raises :class:`CompileError` naming it.  A function jitted with
    ``numba.njit(parallel=True)`` keeps its threads (its ``prange`` loops run in
    parallel): the way to make a right-hand side on a large grid cheap; one jitted with
    ``fastmath`` keeps it.  (Numba's disk cache keys a cfunc on the Python function and
    the signature, not on these options: jit one Python function one way only.)
    """
    key = (id(f), kind)
    hit = _CFUNC_CACHE.get(key)
    if hit is not None and hit[0] is f:
        return hit[1]
    numba = _numba()
    from .kernels.cpu.cfuncptr import as_pointer
    sig = SIGNATURES[kind]
    _check_arity(f, argname, nargs)
    py = f.py_func if is_numba_function(f) else f
    # NumPy's floating-point rule (1/0 = inf, no exception): a cfunc cannot raise into
    # the loop that calls it, and an inf or NaN is what the integrators can report
    opts = {"error_model": "numpy"}
    if is_numba_function(f) and f.targetoptions.get("parallel"):
        opts["parallel"] = True
    if is_numba_function(f) and f.targetoptions.get("fastmath"):
        # the user's own licence to reassociate (a vectorised reduction, say) is kept
        opts["fastmath"] = f.targetoptions["fastmath"]
    t0 = time.perf_counter()
    try:
        cf = as_pointer(numba.cfunc(sig, cache=True, **opts)(py))
        how = "compiled or loaded from the disk cache"
    except Exception:
        # not cacheable (interactive, closure) or not compilable: the njit path below
        # raises CompileError naming the function when Numba cannot compile it
        compile_user_function(f, argname, sig, nargs=nargs)
        cf = as_pointer(numba.cfunc(sig, **opts)(py))
        how = "compiled (not cacheable: define it in a file to cache it)"
    _log.debug("%s %r as %s: %s in %.3f s", argname, getattr(py, "__name__", py), kind, how,
               time.perf_counter() - t0)
    _CFUNC_CACHE[key] = (f, cf)
    return cf


def _batch_of(fj):
    """A lane loop around the dispatcher ``fj`` (inlined by Numba into the loop); the
    caller's arrays borrowed (:mod:`jitsolve.kernels.cpu.borrow`), so the row views cost
    no reference counting."""
    from .kernels.cpu.borrow import borrow

    def f_batch(DU, U, P, t, i0, nl):
        DU, U, P = borrow(DU), borrow(U), borrow(P)
        one = P.shape[0] == 1
        for l in range(nl):
            fj(DU[l], U[l], P[0] if one else P[i0 + l], t)
    return f_batch


def _batch_t_of(fj):
    """The ``f_batch_t`` lane loop around the dispatcher ``fj``: one state per column, own
    time per lane, only the lanes listed in ``idx`` (ascending), taken as runs of
    consecutive lanes.  ``fj`` gets borrowed column views
    (:func:`jitsolve.kernels.cpu.borrow.column`) whose addresses the compiler can follow:
    inlined into the loop over a run, the user's arithmetic runs on SIMD vectors of lanes
    (Lorenz-63: 0.44 ns per lane against 1.65 ns for row views, one lane at a time)."""
    from .kernels.cpu.borrow import borrow, column

    def f_batch_t(DU, U, P, T, idx, nl):
        DU, U, P, T, idx = borrow(DU), borrow(U), borrow(P), borrow(T), borrow(idx)
        one = P.shape[1] == 1
        k = 0
        while k < nl:
            a = idx[k]
            if idx[nl - 1] - a == nl - 1 - k:
                b = a + nl - k              # the rest of the list is one run
                k = nl
            else:
                b = a + 1
                k += 1
                while k < nl and idx[k] == b:
                    b += 1
                    k += 1
            if one:
                p0 = column(P, 0)
                for l in range(a, b):
                    fj(column(DU, l), column(U, l), p0, T[l])
            else:
                for l in range(a, b):
                    fj(column(DU, l), column(U, l), column(P, l), T[l])
    return f_batch_t


def _no_batch(DU, U, P, t, i0, nl):  # pragma: no cover - the placeholder is never called
    pass


def _no_batch_t(DU, U, P, T, idx, nl):  # pragma: no cover - never called
    pass


_BATCH_KINDS = {"f_batch": (_batch_of, _no_batch, 6), "f_batch_t": (_batch_t_of, _no_batch_t, 6)}


def compile_batch_cfunc(f, argname, kind="f_batch"):
    """The batch form of an in-place right-hand side ``f(du, u, p, t)``: a cfunc of
    signature ``SIGNATURES["f_batch"]`` that evaluates ``f`` for ``nl`` states (rows of
    ``U``) in one call, with ``f`` compiled into the loop.

    Lockstep ensemble kernels call it once per step for a whole batch of paths instead of
    once per path: a first-class call costs about 8 ns (its array arguments are passed
    field by field), an inlined OU drift about 1 ns.  The price is a compile per user
    function and process (the wrapper closes over ``f``, which Numba cannot cache): about
    0.2-0.3 s ("f_batch"; 0.3-0.5 s for "f_batch_t", whose column views are a second
    specialisation of ``f``), paid only where the batch is large enough to win it back.
    ``f=None`` gives a placeholder of the same signature (disk-cached, never called).  ``kind``
    "f_batch_t" gives the form with a time per lane and a list of lanes
    (``SIGNATURES["f_batch_t"]``), for adaptive ensembles whose lanes step apart; it
    hands ``f`` strided column views, so a function Numba cannot compile for those (one
    that reshapes its arguments, or a dispatcher with fixed signatures that cannot be
    recompiled from Python) raises :class:`~jitsolve.errors.CompileError` (once per
    function and process: the failure is remembered), and the callers call ``f`` lane by
    lane instead.
    """
    wrap, placeholder, nargs = _BATCH_KINDS[kind]
    if f is None:
        return compile_cfunc(placeholder, argname, kind, nargs=nargs)
    key = (id(f), kind)
    hit = _CFUNC_CACHE.get(key)
    if hit is not None and hit[0] is f:
        if isinstance(hit[1], CompileError):
            raise hit[1]
        return hit[1]
    numba = _numba()
    from .kernels.cpu.cfuncptr import as_pointer
    t0 = time.perf_counter()
    fn = f
    if is_numba_function(f) and (f.targetoptions.get("error_model") != "numpy"
                                 or (kind == "f_batch_t" and not f._can_compile)):
        # the batch form follows NumPy's floating-point rule, as the per-lane cfunc does
        # (and the column form needs a dispatcher that compiles for strided views)
        fn = numba.njit(cache=False, error_model="numpy")(f.py_func)
    fj = compile_user_function(fn, argname, F_SIGNATURE)
    try:
        with warnings.catch_warnings():
            # e.g. np.dot on a column view: "faster on contiguous arrays" is ours to weigh
            warnings.simplefilter("ignore", numba.NumbaPerformanceWarning)
            cf = as_pointer(numba.cfunc(SIGNATURES[kind], error_model="numpy")(wrap(fj)))
    except Exception as exc:  # numba's TypingError, UnsupportedError, LoweringError...
        first = str(exc).strip().splitlines()
        err = CompileError(f"{argname}: Numba could not compile the {kind} form of "
                           f"{_describe(f)} ({first[0] if first else type(exc).__name__})")
        err.__cause__ = exc
        _CFUNC_CACHE[key] = (f, err)        # not tried again for this function
        raise err from exc
    _log.debug("%s %r as %s: compiled in %.3f s", argname, _describe(f), kind,
               time.perf_counter() - t0)
    _CFUNC_CACHE[key] = (f, cf)
    return cf


#: states with more entries are not probed (:func:`probe_user_function`: pure Python is slow)
PROBE_MAX_N = 4096
#: the (id(f), argname, shapes) keys :func:`probe_user_function` has probed; entries hold f
_PROBED = {}


class _Watched(np.ndarray):
    """An array (or a view of one) that notes its name in ``_probe[1]`` before an
    ``IndexError`` of its own indexing propagates: the probe's witness of which argument a
    user function indexed out of bounds."""

    def __array_finalize__(self, obj):
        self._probe = getattr(obj, "_probe", None)

    def _note(self):
        if self._probe is not None:
            self._probe[1].append(self._probe[0])

    def __getitem__(self, k):
        try:
            return super().__getitem__(k)
        except IndexError:
            self._note()
            raise

    def __setitem__(self, k, v):
        try:
            super().__setitem__(k, v)
        except IndexError:
            self._note()
            raise


def _probe_call(py, named, args_of):
    """``py(*args_of(arrays))`` on fresh copies of the ``named`` arrays (``(name, array)``
    pairs), watched (:class:`_Watched`, the names of those indexed out of bounds collected)
    or plain; returns ``(IndexError or None, names)``, other exceptions ignored."""
    def run(watch):
        hits = []
        arrs = []
        for name, a in named:
            c = np.array(a, copy=True)
            if watch:
                c = c.view(_Watched)
                c._probe = (name, hits)
            arrs.append(c)
        try:
            with np.errstate(all="ignore"):
                py(*args_of(arrs))
        except IndexError as exc:
            return exc, hits
        except Exception:   # Python mode is only a probe: Numba-only code may not run here
            return None, hits
        return None, hits
    exc, _ = run(False)
    if exc is None:
        return None, []
    exc2, hits = run(True)   # which array: only when needed (a subclass may not reach Numba)
    return exc, (hits if exc2 is not None else [])


def probe_user_function(f, argname, u, p, t, *, out_shape=None):
    """Call the pure-Python version of the user function ``f`` once, on copies of
    ``(u, p, t)``, to find indexing out of bounds, which compiled code does not check
    (Numba reads garbage or writes over memory: a solve with ``p`` too short for ``f``
    would return ``Success``).

    ``out_shape`` None: ``f(u, t, p)`` (callbacks); else ``f(out, u, p, t)`` with a zero
    ``out`` of that shape (right-hand sides, SDE diffusions).  ``f.py_func`` is called for
    a Numba dispatcher.  Only an ``IndexError`` counts: it raises
    :class:`InvalidProblemError` naming ``p`` (or ``f`` for the state or output arrays
    ``u``/``du``); any other exception is ignored (Numba-only code may not run in Python).
    Skipped for states of more than ``PROBE_MAX_N`` entries; each (function, shapes) pair
    is probed once per process, so repeated solves (fits, ensembles) pay a dict lookup.
    """
    u = np.asarray(u).ravel()
    p = np.asarray(p)
    if u.size > PROBE_MAX_N:
        return
    key = (id(f), argname, p.shape, u.shape, out_shape)
    hit = _PROBED.get(key)
    if hit is not None and hit is f:
        return
    py = f.py_func if is_numba_function(f) else f
    t = float(t)
    if out_shape is None:
        exc, hits = _probe_call(py, (("u", u), ("p", p)), lambda a: (a[0], t, a[1]))
    else:
        named = (("du", np.zeros(out_shape, u.dtype)), ("u", u), ("p", p))
        exc, hits = _probe_call(py, named, lambda a: (a[0], a[1], a[2], t))
    if exc is not None:
        what = f"{type(exc).__name__}: {exc}"
        if not hits:    # not one of the arrays passed (or not found again): say what we know
            raise InvalidProblemError(
                f"p: {argname} ({_describe(f)}) raised {what} when called once in Python mode "
                f"with p of {p.size} entries and u0 of {u.size} (an index out of bounds, which "
                f"compiled code does not check)") from exc
        if "p" in hits:
            raise InvalidProblemError(
                f"p: {argname} ({_describe(f)}) indexes p out of bounds (p has {p.size} "
                f"entries): {what}") from exc
        if hits[0] == "du" and out_shape is not None and len(out_shape) == 2:
            # a general-noise diffusion's output is the n x nbrownian matrix, not du
            raise InvalidProblemError(
                f"{argname}: {_describe(f)} indexes its output matrix out of bounds (shape "
                f"{tuple(out_shape)}: {out_shape[0]} states x nbrownian = {out_shape[1]} "
                f"Brownian motions): {what}") from exc
        raise InvalidProblemError(
            f"{argname}: {_describe(f)} indexes {hits[0]} out of bounds (u0 has {u.size} "
            f"entries): {what}") from exc
    _PROBED[key] = f


def probe_derivatives(fun, u, p, t, *, name=None):
    """:func:`probe_user_function` for an ``ODEFunction``'s ``jac`` (``J`` n x n),
    ``paramjac`` (``Jp`` n x np) and ``vjp`` (``out_u`` n, ``out_p`` np): compiled code
    does not check their indices either (a ``jac`` written for three states on a
    two-state problem corrupted memory: ``free(): invalid pointer``).  An IndexError
    raises :class:`InvalidProblemError` naming the function and the array.

    ``name``: the problem's argument that holds ``fun`` when it is not the drift ``f``
    (an SDE's diffusion ``"g"``); the messages then name ``g.jac``, ``g.vjp``, ...
    (``None``, the default: ``jac``, ``paramjac``, ``vjp``, as for ``f``)."""
    u = np.asarray(u, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64)
    if u.size > PROBE_MAX_N:
        return
    n, t = u.size, float(t)
    cases = []
    if fun.jac is not None:
        cases.append(("jac", fun.jac, (("J", np.zeros((n, n))), ("u", u), ("p", p)),
                      lambda a: (a[0], a[1], a[2], t)))
    if fun.paramjac is not None:
        cases.append(("paramjac", fun.paramjac,
                      (("Jp", np.zeros((n, p.size))), ("u", u), ("p", p)),
                      lambda a: (a[0], a[1], a[2], t)))
    if fun.vjp is not None:
        cases.append(("vjp", fun.vjp, (("out_u", np.zeros(n)), ("out_p", np.zeros(p.size)),
                                       ("lam", np.ones(n)), ("u", u), ("p", p)),
                      lambda a: (a[0], a[1], a[2], a[3], a[4], t)))
    for argname, f, named, args_of in cases:
        if name is not None:
            argname = f"{name}.{argname}"
        key = (id(f), argname, p.shape, u.shape, "derivative")
        if _PROBED.get(key) is f:
            continue
        py = f.py_func if is_numba_function(f) else f
        exc, hits = _probe_call(py, named, args_of)
        if exc is not None:
            shapes = ", ".join(f"{k} {np.shape(a)}" for k, a in named[:-1])
            where = f"indexes {hits[0]} out of bounds" if hits else "raised an IndexError"
            raise InvalidProblemError(
                f"{argname}: {_describe(f)} {where} when called once in Python mode "
                f"({shapes}; p {p.shape}): {type(exc).__name__}: {exc}") from exc
        _PROBED[key] = f


class ODEFunction:
    """A right-hand side ``f(du, u, p, t)`` with optional derivatives.

    Parameters
    ----------
    f : callable
        ``f(du, u, p, t)`` writes ``du/dt`` into ``du``.
    jac : callable, optional
        ``jac(J, u, p, t)`` writes the n x n Jacobian ``df/du``.
    vjp : callable, optional
        ``vjp(out_u, out_p, lam, u, p, t)`` writes ``J_u^T lam`` and ``J_p^T lam``.
    paramjac : callable, optional
        ``paramjac(Jp, u, p, t)`` writes the n x np matrix ``df/dp``.
    jac_sparsity : scipy.sparse matrix, optional
        Sparsity pattern of ``df/du``, used to colour complex-step Jacobians.

    The derivative functions' output arrays are cleared before each call, so writing only
    the nonzero entries, or accumulating (``out_p[0] += ...``), is right.  Without them,
    derivatives come from complex steps of ``f``: ``f`` must be complex-analytic in
    ``u`` and ``p`` as written, and ``abs(u)``, ``u.real`` or a branch on ``u`` compile
    for complex states but drop the derivative's imaginary part (silently wrong
    Jacobians and gradients: ``js.check_gradient`` shows them; write ``np.sqrt(u*u)``
    or give ``jac``/``vjp``).

    jitsolve compiles the functions with NumPy's floating-point rule: a division by zero
    gives ``inf`` or NaN (which the integrators turn into a rejected step or a failed
    ``retcode``), not an exception.  A function that raises (``raise ValueError``, or one
    already compiled by ``numba.njit`` with Python's rule) makes ``solve`` and
    ``gradient`` raise :class:`jitsolve.errors.UserFunctionError` when they end.

    The adjoints (``js.gradient``) take ``J^T v`` and ``J_p^T v`` from the user's
    ``vjp`` first, else from ``jac`` (dense, for at most
    :data:`jitsolve.adjoint.vjp.USER_JAC_MAX` unknowns and no ``jac_sparsity``) and
    ``paramjac``, and the rest from the complex step below; the stiff integrators'
    Newton and Rosenbrock solves take ``jac``.  For a :class:`SplitODEProblem` these
    are the derivatives of ``f`` alone (the linear part has its own transpose).

    Where no derivative is given, integrators and adjoints use complex-step
    differentiation of ``f`` (exact to rounding), so ``f`` should also compile for
    complex128 states.  Integer powers (``u**3``, ``u**-2``) are exact there: jitsolve
    makes Numba evaluate a complex power with an integral exponent by multiplication, as
    NumPy does (:mod:`jitsolve.kernels.cpu.complexpow`).  Other exponents go through
    ``exp(b log u)``, as in real arithmetic defined only for ``u > 0``.

    Examples
    --------
    >>> import jitsolve as js
    >>> def lotka(du, u, p, t):
    ...     du[0] = p[0]*u[0] - p[1]*u[0]*u[1]
    ...     du[1] = -p[2]*u[1] + p[3]*u[0]*u[1]
    >>> F = js.ODEFunction(lotka)
    >>> import numpy as np
    >>> p = np.array([1.5, 1.0, 3.0, 1.0])
    >>> prob = js.ODEProblem(F, np.array([1.0, 1.0]), (0.0, 1.0), p)
    >>> sol = js.solve(prob, js.Rodas5P())      # Jacobian by complex step of lotka
    >>> sol.retcode, sol.stats.njac > 0
    (<ReturnCode.Success: 'Success'>, True)

    References
    ----------
    Squire, Trapp, *Using complex variables to estimate derivatives of real functions*,
    SIAM Rev. 40 (1998); Curtis, Powell, Reid, *On the estimation of sparse Jacobian
    matrices*, IMA J. Appl. Math. 13 (1974) (column colouring).
    """

    def __init__(self, f, *, jac=None, vjp=None, paramjac=None, jac_sparsity=None):
        if isinstance(f, ODEFunction):
            raise InvalidProblemError("f: is already an ODEFunction")
        if not callable(f):
            raise InvalidProblemError(f"f: expected a function, got {type(f).__name__}")
        for name, g in (("jac", jac), ("vjp", vjp), ("paramjac", paramjac)):
            if g is not None and not callable(g):
                raise InvalidProblemError(f"{name}: expected a function, got {type(g).__name__}")
        if jac_sparsity is not None:
            import scipy.sparse as sp
            if not (sp.issparse(jac_sparsity) or getattr(jac_sparsity, "ndim", 0) == 2):
                raise InvalidProblemError("jac_sparsity: expected a scipy.sparse matrix or a 2-D array")
            jac_sparsity = sp.csr_matrix(jac_sparsity)
            if jac_sparsity.shape[0] != jac_sparsity.shape[1]:
                raise InvalidProblemError(f"jac_sparsity: must be square, got shape {jac_sparsity.shape}")
        self.f = f
        self.jac = jac
        self.vjp = vjp
        self.paramjac = paramjac
        self.jac_sparsity = jac_sparsity
        self._compiled = {}

    @property
    def name(self):
        return _describe(self.f)

    def compiled(self, kind="f", complex_state=False):
        """The Numba dispatcher of ``f`` (or of ``jac``/``vjp``/``paramjac``), compiled on first use."""
        key = (kind, complex_state)
        if key not in self._compiled:
            if kind == "f":
                sig = F_SIGNATURE_COMPLEX if complex_state else F_SIGNATURE
                self._compiled[key] = compile_user_function(self.f, "f", sig)
            elif kind == "jac":
                sig = "void(float64[:, ::1], float64[::1], float64[::1], float64)"
                self._compiled[key] = compile_user_function(self.jac, "jac", sig)
            elif kind == "paramjac":
                sig = "void(float64[:, ::1], float64[::1], float64[::1], float64)"
                self._compiled[key] = compile_user_function(self.paramjac, "paramjac", sig)
            elif kind in ("f_cfunc", "f_complex_cfunc", "jac_cfunc", "vjp_cfunc",
                          "paramjac_cfunc"):
                base = kind[:-6]
                fn = self.f if base.startswith("f") else getattr(self, base)
                self._compiled[key] = compile_cfunc(fn, base.split("_")[0], base,
                                                    nargs=6 if base == "vjp" else 4)
            elif kind == "vjp":
                sig = ("void(float64[::1], float64[::1], float64[::1], float64[::1], "
                       "float64[::1], float64)")
                self._compiled[key] = compile_user_function(self.vjp, "vjp", sig, nargs=6)
            else:
                raise ValueError(kind)
        return self._compiled[key]

    def cfunc(self, kind="f"):
        """The first-class (cfunc) form of ``f`` (kind "f"), its complex twin ("f_complex"),
        or of ``jac``/``vjp``/``paramjac``, compiled on first use."""
        return self.compiled(kind + "_cfunc")

    def __call__(self, du, u, p, t):
        return self.compiled("f")(du, u, p, t)

    def __repr__(self):
        extras = [k for k in ("jac", "vjp", "paramjac", "jac_sparsity") if getattr(self, k) is not None]
        return f"ODEFunction({self.name}" + (", " + ", ".join(extras) if extras else "") + ")"
