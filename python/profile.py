"""``js.profile()``: a per-kernel table of everything run inside, the way PETSc's ``-log_view`` reports.

>>> import numpy as np, jitsolve as js
>>> g = js.Grid((64, 64)); L = js.Laplacian(g); u = np.ones(g.shape)
>>> with js.profile(bandwidth=10.0) as prof:
...     for _ in range(10):
...         _ = L.apply(u)
>>> prof.events["Laplacian.apply"]["calls"]
10

How it works: on entering, the public entry points that run kernels are replaced by timing
wrappers — the grid operators' ``apply`` (``A.T.apply`` included) and ``param_vjp``, every
implementation registered with ``js.solve`` (one event per problem type and algorithm) and
every ``js.gradient`` implementation (one event per problem, algorithm and sensealg) — and
the originals are put back on exit.  With profiling off nothing is wrapped, so there is no
overhead at all; on, each call costs two ``perf_counter`` reads and a dict update (about a
microsecond).

Times are *self* times: a call's time minus the time of profiled calls made inside it (a
``js.gradient`` event does not include the ``js.solve`` it runs), so the column sums to the
profiled total; ``inclusive`` keeps the whole.  A first call includes Numba compilation or
the cache load.  Calls from every thread are recorded, each thread with its own call
stack (one thread's solves are not children of another's), so with threads running at
once the self times can add up to more than the wall time.

Bytes are the bytes that must move, from the array sizes: a stencil reads each input field
once and writes its output once, write-allocate not counted (for float64 ``u``:
``Laplacian.apply`` ``2*8*n``, ``Diffusion.apply`` ``3*8*n``, ``Diffusion.param_vjp``
``4*8*n``, ``Advection.apply`` and ``Advection.T.apply`` ``(2+d)*8*n``,
``Advection.param_vjp`` ``(2+2d)*8*n``, ``Identity.apply`` ``2*8*n``; ``u`` and ``out``
count at their own item size -- 4 for float32, 16 for complex128 -- the coefficient
fields at 8).  A composite operator's event counts only its own pass, its terms being
events of their own: ``c*A`` ``2*8*n`` (``out *= c``), ``A + B`` ``3*8*n`` (``out += B
u``), a shifted ``sigma I + c A`` ``3*8*n`` (one fused pass), ``5*8*n`` when ``sigma !=
1``.  For an ODE/SDE solve the figure is the lower bound ``nf * 2 * 8 * n`` (every
right-hand-side evaluation reads the state and writes its derivative); solves and
gradients with no such count show no bytes.  ``GB/s`` is bytes over self time (10^9
bytes per second) and ``roofline`` that over this machine's triad bandwidth (STREAM's
count, ``3 x 8`` bytes per element, measured once per process when the block ends,
unless given, on arrays each at least 4x the last-level cache).
The first call of an event carries Numba's compilation or cache load: its self time is
shown in its own column (``1st``), and when an event has more calls the rates leave the
first one out.

FLOPs, where meaningful, are the floating-point operations of the discrete formula per
cell, counted once (a face coefficient shared by two cells counts once): ``Laplacian``
``5d - 1`` (per axis ``(u[i-1] + u[i+1] - 2 u[i]) / h^2``, then the axis sum),
``Diffusion`` ``11d - 1`` (per axis a harmonic face mean ``2 k k' / (k + k')``, two fluxes
and their difference), ``Advection`` ``4d - 1``, their transposes the same, ``param_vjp``
``13d`` (Diffusion; the harmonic mean's two partial derivatives times the flux products)
and ``4d`` (Advection), ``Identity`` none; ``c*A`` and ``A + B`` count their terms'
FLOPs and one more per cell for their own pass (two for a shifted ``sigma I + c A``,
three when ``sigma != 1``); an ODE solve whose right-hand side is a grid operator counts
``nf`` applies plus the stage combinations (``2 n`` per evaluation).  An event's FLOPs
are *inclusive*, as in PETSc's ``-log_view``: they take in the work of the profiled calls
made inside it (the ``Laplacian.apply`` inside ``(-L).apply`` is counted in both
events), so ``GFLOP/s`` is FLOPs over the *inclusive* time (for a call with no profiled
calls inside, its self time) -- never a term's FLOPs over the combination pass's self
time.  Bytes and ``GB/s`` are the self figures.  The stencils are memory bound, so
``GFLOP/s`` sits far below the machine's peak by design -- the ``roofline`` column is
the figure of merit, ``GFLOP/s`` says how much arithmetic the bytes carried.
"""
import json
import threading
import time

__all__ = ["profile", "Profile"]

_ACTIVE = []          # profiles currently recording (nested blocks record into all)
_SAVED = []           # (owner, attribute, original) while patched
_LOCK = threading.RLock()     # guards _ACTIVE/_SAVED and the events of the profiles
_LOCAL = threading.local()    # .stack: this thread's open profiled calls


def _now():
    return time.perf_counter()


class _Frame:
    __slots__ = ("t0", "child")

    def __init__(self):
        self.t0 = _now()
        self.child = 0.0


def _stack():
    """This thread's stack of open profiled calls (a call's children are the profiled
    calls made by the same thread: another thread's solves are not)."""
    try:
        return _LOCAL.stack
    except AttributeError:
        _LOCAL.stack = []
        return _LOCAL.stack


def _record(name, inclusive, self_time, nbytes, nflops=None):
    with _LOCK:
        _record_locked(name, inclusive, self_time, nbytes, nflops)


def _record_locked(name, inclusive, self_time, nbytes, nflops):
    for prof in _ACTIVE:
        ev = prof.events.get(name)
        if ev is None:
            ev = prof.events[name] = dict(calls=0, time=0.0, inclusive=0.0, bytes=None,
                                          first=self_time, first_bytes=nbytes, flops=None,
                                          first_flops=nflops, first_inclusive=inclusive)
        ev["calls"] += 1
        ev["time"] += self_time
        ev["inclusive"] += inclusive
        if nbytes is not None:
            ev["bytes"] = (ev["bytes"] or 0) + int(nbytes)
        if nflops is not None:
            ev["flops"] = (ev.get("flops") or 0) + int(nflops)


def _timed(name_fn, bytes_fn, fn, flops_fn=None):
    def wrapper(*args, **kwargs):
        stack = _stack()
        fr = _Frame()
        stack.append(fr)
        try:
            out = fn(*args, **kwargs)
        finally:
            stack.pop()
            incl = _now() - fr.t0
            if stack:
                stack[-1].child += incl
        # never let bookkeeping break a user's run; a count that fails is left out, the
        # event keeps its name
        try:
            name = name_fn(*args)
        except Exception:
            name = getattr(fn, "__name__", "?")
        try:
            nbytes = bytes_fn(out, *args) if bytes_fn is not None else None
        except Exception:
            nbytes = None
        try:
            nflops = flops_fn(out, *args) if flops_fn is not None else None
        except Exception:
            nflops = None
        _record(name, incl, incl - fr.child, nbytes, nflops)
        return out
    wrapper.__wrapped__ = fn
    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = getattr(fn, "__name__", "wrapper")
    return wrapper


# ------------------------------------------------------------------ byte counts
def _coeff_bytes(op):
    """Bytes per cell of a leaf stencil's coefficient fields (float64 whatever ``u`` is):
    Diffusion's ``kappa``, Advection's ``d`` velocity components."""
    from .grid.stencils import Advection, Diffusion
    if isinstance(op, Diffusion):
        return 8
    if isinstance(op, Advection):
        return 8 * op.grid.ndim
    return 0


def _item(u):
    return getattr(u, "itemsize", 8) or 8


def _leaf_apply_bytes(op, item):
    """Bytes per cell of one apply of a leaf operator: ``u`` read and ``out`` written
    (``item`` bytes each), plus its coefficient fields."""
    return 2 * item + _coeff_bytes(op)


def _combination_bytes(op, item):
    """Bytes per cell of a composite operator's own pass (its terms' applies are their
    own events): ``c * A`` scales ``out`` in place (read and write ``out``); ``A + B``
    adds ``B u`` into ``out`` (read ``out`` and ``B u``, write ``out``), or for a shifted
    operator ``sigma I + c A`` one fused pass ``out = u + (c / sigma) out`` (read ``u``
    and ``out``, write ``out``) and, when ``sigma != 1``, ``out *= sigma`` (two more)."""
    from .grid.operators import ScaledOperator
    if isinstance(op, ScaledOperator):
        return 2 * item
    sh = getattr(op, "_shifted", None)
    if sh is not None and sh[0] != 0.0:
        return (3 + (2 if sh[0] != 1.0 else 0)) * item
    return 3 * item


def _apply_bytes(out, self, u, *a, **k):
    from .grid.operators import ScaledOperator, SumOperator, TransposedOperator
    n = self.grid.size
    item = _item(out)
    if isinstance(self, TransposedOperator):
        return _leaf_apply_bytes(self.op, item) * n
    if isinstance(self, (ScaledOperator, SumOperator)):
        return _combination_bytes(self, item) * n
    return _leaf_apply_bytes(self, item) * n


def _vjp_bytes(out, self, u, lam, *a, **k):
    # u and lam are float64 (param_vjp differentiates real fields), and so is the gradient
    from .grid.stencils import Advection
    n = self.grid.size
    if isinstance(self, Advection):
        return (2 + 2 * self.grid.ndim) * 8 * n
    return 4 * 8 * n


# ------------------------------------------------------------------ FLOP counts
def _op_flops_per_cell(op):
    """FLOPs per cell of one apply of ``op``, its terms included (see the module
    docstring)."""
    from .grid.operators import ScaledOperator, SumOperator, TransposedOperator
    from .grid.stencils import Advection, Diffusion, Identity, Laplacian
    if isinstance(op, TransposedOperator):
        return _op_flops_per_cell(op.op)
    if isinstance(op, ScaledOperator):
        return _op_flops_per_cell(op.op) + 1
    if isinstance(op, SumOperator):
        sh = getattr(op, "_shifted", None)
        if sh is not None and sh[0] != 0.0:
            return _op_flops_per_cell(sh[2]) + _combination_flops(op)
        return _op_flops_per_cell(op.a) + _op_flops_per_cell(op.b) + 1
    d = op.grid.ndim
    if isinstance(op, Diffusion):
        return 11 * d - 1
    if isinstance(op, Advection):
        return 4 * d - 1
    if isinstance(op, Laplacian):
        return 5 * d - 1
    if isinstance(op, Identity):
        return 0
    raise TypeError(type(op).__name__)


def _combination_flops(op):
    """FLOPs per cell of a composite operator's own pass (as
    :func:`_combination_bytes`)."""
    from .grid.operators import ScaledOperator
    if isinstance(op, ScaledOperator):
        return 1
    sh = getattr(op, "_shifted", None)
    if sh is not None and sh[0] != 0.0:
        return 2 + (1 if sh[0] != 1.0 else 0)
    return 1


def _apply_flops(out, self, u, *a, **k):
    """FLOPs of the whole call, its terms' applies included (as PETSc counts an event's
    flops): rated over the call's inclusive time."""
    return _op_flops_per_cell(self) * self.grid.size


def _vjp_flops(out, self, u, lam, *a, **k):
    from .grid.stencils import Advection
    d = self.grid.ndim
    return (4 * d if isinstance(self, Advection) else 13 * d) * self.grid.size


def _solve_flops(sol, prob, alg, *a, **k):
    from .grid.operators import GridOperator
    import numpy as np
    op = getattr(prob, "f", None)
    st = getattr(sol, "stats", None)
    nf = getattr(st, "nf", None)
    if not isinstance(op, GridOperator) or nf is None or isinstance(st, np.ndarray):
        return None
    return int(nf) * (_op_flops_per_cell(op) + 2) * op.grid.size


def _apply_name(self, *a, **k):
    from .grid.operators import TransposedOperator
    if isinstance(self, TransposedOperator):
        return f"{type(self.op).__name__}.T.apply"
    return f"{type(self).__name__}.apply"


def _vjp_name(self, *a, **k):
    return f"{type(self).__name__}.param_vjp"


def _solve_name(prob, alg, *a, **k):
    return f"solve {type(prob).__name__}/{type(alg).__name__}"


def _solve_bytes(sol, prob, alg, *a, **k):
    import numpy as np
    st = getattr(sol, "stats", None)
    nf = getattr(st, "nf", None)
    u0 = getattr(prob, "u0", None)
    if nf is None or u0 is None or isinstance(st, np.ndarray):
        return None
    return int(nf) * 2 * _item(np.asarray(u0)) * int(np.size(u0))


def _gradient_name(prob, alg, loss=None, wrt=None, sensealg=None, *a, **k):
    s = "" if sensealg is None else f"/{type(sensealg).__name__}"
    return f"gradient {type(prob).__name__}/{type(alg).__name__}{s}"


# ------------------------------------------------------------------ patching
def _patch():
    import importlib
    gradient_mod = importlib.import_module("jitsolve.gradient")   # the names are shadowed
    solve_mod = importlib.import_module("jitsolve.solve")         # by functions in jitsolve
    from .grid import operators as ops
    from .grid import stencils
    saved = []

    def put(owner, attr, new):
        saved.append((owner, attr, owner.__dict__[attr] if isinstance(owner, type) else owner[attr]))
        if isinstance(owner, type):
            setattr(owner, attr, new)
        else:
            owner[attr] = new

    for cls in (ops.GridOperator, ops.TransposedOperator, ops.ScaledOperator, ops.SumOperator):
        if "apply" in cls.__dict__:
            put(cls, "apply", _timed(_apply_name, _apply_bytes, cls.__dict__["apply"],
                                     _apply_flops))
    for cls in (stencils.Diffusion, stencils.Advection):
        if "param_vjp" in cls.__dict__:
            put(cls, "param_vjp", _timed(_vjp_name, _vjp_bytes, cls.__dict__["param_vjp"],
                                         _vjp_flops))
    reg = solve_mod._REGISTRY
    for key in list(reg):
        put(reg, key, _timed(_solve_name, _solve_bytes, reg[key], _solve_flops))
    greg = gradient_mod._GRADIENTS
    for key in list(greg):
        put(greg, key, _timed(_gradient_name, None, greg[key]))
    # solvers registered lazily (ODE/SDE modules import on first use) are wrapped too
    return saved


def _unpatch(saved):
    for owner, attr, orig in reversed(saved):
        if isinstance(owner, type):
            setattr(owner, attr, orig)
        else:
            owner[attr] = orig


class Profile:
    """Per-kernel timings of a block of code; see :func:`profile`.

    Attributes
    ----------
    events : dict name -> {"calls", "time" (self, s), "inclusive" (s), "bytes" (self, or
        None), "flops" (inclusive, or None), "first" / "first_inclusive" / "first_bytes" /
        "first_flops" (the first call's)}
    wall : float
        Wall time of the block (s); a profile used in several ``with`` blocks adds them
        up (as ``cProfile`` does over ``enable``/``disable``), and entering a profile
        that is already recording (the same object nested in itself) neither restarts
        its clock nor counts a call twice.
    bandwidth : float or None
        Triad GB/s that ``roofline`` is relative to.
    """

    def __init__(self, bandwidth=None):
        self.events = {}
        self.wall = 0.0
        self.bandwidth = bandwidth
        self._measure = bandwidth is None
        self._saved = None
        self._depth = 0

    # context manager -------------------------------------------------------
    def __enter__(self):
        _load_solvers()
        with _LOCK:
            self._depth = getattr(self, "_depth", 0) + 1
            if self._depth > 1:        # already recording: one clock, one count per call
                return self
            if not _ACTIVE:
                _SAVED[:] = _patch()
            _ACTIVE.append(self)
            self._t0 = _now()
        return self

    def __exit__(self, *exc):
        with _LOCK:
            self._depth -= 1
            if self._depth > 0:
                return False
            self.wall += _now() - self._t0
            _ACTIVE.remove(self)
            if not _ACTIVE:
                _unpatch(_SAVED)
                _SAVED[:] = []
        if self._measure:
            try:
                from .bench import triad_bandwidth
                self.bandwidth = triad_bandwidth(repeat=3)
            except Exception:   # pragma: no cover - numba missing
                self.bandwidth = None
        return False

    # results ----------------------------------------------------------------
    @property
    def rows(self):
        """One dict per event, sorted by self time (largest first)."""
        out = []
        for name, ev in self.events.items():
            # the first call carries the compile / cache load: rates use the others when any
            # bytes are self figures (over self time), FLOPs inclusive (over inclusive time)
            t, b, fl = ev["time"], ev["bytes"], ev.get("flops")
            ti = ev.get("inclusive", t)
            if ev["calls"] > 1:
                t = t - ev["first"]
                ti = ti - ev.get("first_inclusive", ev["first"])
                if b and ev.get("first_bytes") is not None:
                    b = b - ev["first_bytes"]
                if fl and ev.get("first_flops") is not None:
                    fl = fl - ev["first_flops"]
            gbs = b / t / 1e9 if b and t > 0 else None
            gflops = fl / ti / 1e9 if fl and ti > 0 else None
            frac = gbs / self.bandwidth if gbs is not None and self.bandwidth else None
            out.append(dict(name=name, calls=ev["calls"], time=ev["time"], inclusive=ev["inclusive"],
                            first=ev["first"], bytes=ev["bytes"], gbs=gbs, roofline=frac,
                            flops=ev.get("flops"), gflops=gflops,
                            percent=100.0 * ev["time"] / self.wall if self.wall > 0 else None))
        out.sort(key=lambda r: -r["time"])
        return out

    def as_dict(self):
        return dict(format="jitsolve-profile", wall=self.wall, bandwidth_gbs=self.bandwidth,
                    events={k: dict(v) for k, v in self.events.items()}, rows=self.rows)

    def to_json(self, indent=1):
        """The table as strict JSON (``Profile.from_json`` reads it back; a non-finite
        number is written as ``null``, never as a bare ``NaN``)."""
        from .bench import _jsonable
        return json.dumps(_jsonable(self.as_dict()), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text):
        d = json.loads(text)
        p = cls(bandwidth=d.get("bandwidth_gbs"))
        p._measure = False
        p.wall = d["wall"]
        p.events = {k: dict(v) for k, v in d["events"].items()}
        return p

    def table(self):
        bw = f"{self.bandwidth:.1f} GB/s" if self.bandwidth else "not measured"
        lines = [f"jitsolve profile: {self.wall:.3f} s wall, roofline = triad {bw}",
                 f"{'event':52s} {'calls':>7s} {'time (s)':>10s} {'%':>6s} {'incl (s)':>10s} {'1st (s)':>9s} "
                 f"{'bytes':>10s} {'GB/s':>8s} {'roofline':>8s} {'GFLOP/s':>8s}"]
        for r in self.rows:
            pct = f"{r['percent']:6.1f}" if r["percent"] is not None else f"{'-':>6s}"
            b = _si(r["bytes"]) if r["bytes"] else "-"
            g = f"{r['gbs']:8.2f}" if r["gbs"] is not None else f"{'-':>8s}"
            f = f"{r['roofline']:8.3f}" if r["roofline"] is not None else f"{'-':>8s}"
            fl = f"{r['gflops']:8.2f}" if r["gflops"] is not None else f"{'-':>8s}"
            lines.append(f"{r['name'][:52]:52s} {r['calls']:7d} {r['time']:10.4f} {pct} "
                         f"{r['inclusive']:10.4f} {r['first']:9.4f} {b:>10s} {g} {f} {fl}")
        tot = sum(r["time"] for r in self.rows)
        lines.append(f"{'(profiled total; the rest is Python outside kernels)':52s} {'':7s} {tot:10.4f}")
        return "\n".join(lines)

    __str__ = table

    def __repr__(self):
        return f"<jitsolve Profile: {len(self.events)} events, {self.wall:.3f} s>"


def _si(n):
    for unit, s in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= s:
            return f"{n / s:.2f}{unit}"
    return str(n)


def _load_solvers():
    """Import the modules that register solve/gradient implementations, so all get wrapped."""
    import importlib
    for m in ("linear", "ode", "ode_stiff", "sde", "sensitivity", "sde_gradient",
              "stiff_gradient"):
        try:
            importlib.import_module(f"jitsolve.{m}")
        except Exception:   # pragma: no cover - a module not in this build
            pass


def profile(bandwidth=None):
    """Profile everything run inside a ``with`` block, kernel by kernel.

    Parameters
    ----------
    bandwidth : float, optional
        Memory bandwidth (GB/s) for the ``roofline`` column; by default the triad is
        measured once per process when the block ends (about a second, not counted in
        the block's time).

    Returns
    -------
    Profile
        ``print(prof)`` prints the table (calls, self time, % of wall, inclusive time,
        bytes moved, GB/s, fraction of the triad bandwidth, GFLOP/s where meaningful)
        sorted by time;
        ``prof.rows``, ``prof.events``, ``prof.to_json()``.

    References
    ----------
    Williams, Waterman, Patterson, *Roofline: an insightful visual performance model for
    multicore architectures*, Commun. ACM 52 (2009); McCalpin, STREAM (1995) (triad).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> prob = js.LinearProblem(np.diag([1.0, 2.0]), np.ones(2))
    >>> with js.profile(bandwidth=10.0) as prof:     # bandwidth given: no triad run
    ...     sol = js.solve(prob, js.CG())
    >>> [(r["name"], r["calls"]) for r in prof.rows][:1]
    [('solve LinearProblem/CG', 1)]

    Cost
    ----
    Nothing when not profiling (no wrapper is installed); when on, about a microsecond
    per call of a profiled kernel or solve, plus the triad bandwidth measurement (about
    a second, once per process) when ``bandwidth`` is not given.
    """
    return Profile(bandwidth=bandwidth)
