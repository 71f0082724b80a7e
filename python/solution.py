"""Solution objects: what a solve computed, how it ended (``retcode``) and what it cost.

A failed solve keeps everything computed up to the failure; ``sol.successful`` tells
whether to trust it.  Every solution writes and reads HDF5 (``sol.to_hdf5(path)``,
``js.load(path)``).
"""
import operator
from dataclasses import asdict, dataclass

import numpy as np

from .errors import InvalidProblemError
from .retcodes import ReturnCode

__all__ = ["SolverStats", "ODESolution", "SDESolution", "LinearSolution", "EnsembleSolution",
           "EnsembleSummary"]


@dataclass
class SolverStats:
    """Work counters of a solve: right-hand-side and Jacobian evaluations, linear solves,
    accepted and rejected steps, and the iterations of iterative linear solves
    (``nliniter``: GMRES iterations of the Newton-Krylov path, each one product with the
    operator, as PETSc's ``TSGetKSPIterations``; 0 where the systems are solved by LU).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> js.solve(prob, js.Euler(), dt=0.25).stats
    SolverStats(nf=4, njac=0, nsolve=0, naccept=4, nreject=0, nliniter=0)
    >>> js.SolverStats(nf=3).asdict()["nf"]
    3
    """

    nf: int = 0
    njac: int = 0
    nsolve: int = 0
    naccept: int = 0
    nreject: int = 0
    nliniter: int = 0

    def asdict(self):
        return asdict(self)


def _retcode(rc):
    if isinstance(rc, ReturnCode):
        return rc
    return ReturnCode(rc)


# Ensembles keep one small integer per trajectory (an index into _CODES), not N enum
# members: building and scanning 10,000 members cost 5-15 ms per solve, a fifth of a
# 10,000-path Euler-Maruyama ensemble.
_CODES = tuple(ReturnCode)
_SUCCESSFUL = np.array([rc.successful for rc in _CODES])
_NAMES_S32 = np.array([rc.value for rc in _CODES], dtype="S32")
_INDEX = {}
for _i, _rc in enumerate(_CODES):
    _INDEX[_rc] = _INDEX[_rc.value] = _INDEX[_rc.value.encode()] = _i
del _i, _rc


def _code_index(r):
    try:
        return _INDEX[r]
    except (KeyError, TypeError):
        return _INDEX[ReturnCode(r)]            # ValueError for an unknown name


def _code_indices(retcodes):
    """Indices into ``_CODES`` of a sequence of ReturnCode members or names; an array of
    names (str or bytes) is compared against each code's name (a few vector passes)."""
    if isinstance(retcodes, np.ndarray) and retcodes.dtype.kind in "US":
        a = retcodes.ravel()
        out = np.full(a.size, -1, dtype=np.int8)
        for i, rc in enumerate(_CODES):
            out[a == (rc.value if a.dtype.kind == "U" else rc.value.encode())] = i
        if (out < 0).any():
            x = a[int(np.argmax(out < 0))]
            ReturnCode(x.decode() if isinstance(x, bytes) else str(x))   # the ValueError
        return out
    return np.array([_code_index(r) for r in retcodes], dtype=np.int8).reshape(-1)


# ----------------------------------------------------------------- reading files back
# A solution's ``_from_hdf5`` checks each field it reads against the others; a missing or
# inconsistent one raises CorruptField, which jitsolve.load reports as a FileFormatError
# naming the file and the field.  ``save_solution`` runs the same checks before it writes,
# so every file it writes loads.

_NUMERIC = "biufc"
_DENSE = ("dense_t", "dense_h", "dense_u", "dense_k", "dense_BTH")


class CorruptField(ValueError):
    """A field (dataset or attribute) of a solution file is missing or inconsistent with
    the others; ``field`` names it."""

    def __init__(self, field, msg):
        super().__init__(f"field {field!r} {msg}")
        self.field = field


def _field(arrays, name, *, ndim=None, min_ndim=0, kinds=_NUMERIC, what="numbers"):
    """Dataset ``name`` as an array, its dtype kind and number of dimensions checked."""
    if name not in arrays:
        raise CorruptField(name, "is missing")
    a = np.asarray(arrays[name])
    if a.dtype.kind not in kinds:
        raise CorruptField(name, f"holds {a.dtype} values, not {what}")
    if (ndim is not None and a.ndim != ndim) or a.ndim < min_ndim:
        want = ndim if ndim is not None else f"at least {min_ndim}"
        raise CorruptField(name, f"has shape {a.shape}, expected {want} dimensions")
    return a


def _count(attrs, name, default=None):
    """Attribute ``name`` as a count (an integer >= 0)."""
    if name not in attrs:
        if default is not None:
            return default
        raise CorruptField(name, "is missing")
    v = attrs[name]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0:
        raise CorruptField(name, f"is {v!r}, expected a count (an integer >= 0)")
    return int(v)


def _real(attrs, name):
    v = attrs.get(name)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                               np.floating)):
        raise CorruptField(name, "is missing" if v is None
                           else f"is {v!r}, expected a number")
    return float(v)


def _text(attrs, name, default=""):
    v = attrs.get(name, default)
    if not isinstance(v, str):
        raise CorruptField(name, f"is {v!r}, expected a string")
    return v


def _retcode_attr(attrs):
    v = attrs.get("retcode")
    try:
        return ReturnCode(v)
    except ValueError:
        raise CorruptField("retcode", "is missing" if v is None
                           else f"is {v!r}, not a return code") from None


def _stats_checked(attrs):
    """The :class:`SolverStats` of the ``stats_*`` attributes (unknown ones ignored), or
    None when there are none."""
    names = SolverStats().asdict()
    if not any(k.startswith("stats_") and k[6:] in names for k in attrs):
        return None
    return SolverStats(**{k: _count(attrs, "stats_" + k, default=0) for k in names})


def _method_bth_shape(alg):
    """The shape of the dense-output weights of the built-in method named ``alg``, or None
    when ``alg`` names none (a user tableau: nothing to check against)."""
    try:
        from . import ode, ode_stiff
        cls = getattr(ode, alg, None) or getattr(ode_stiff, alg, None)
        if not isinstance(cls, type):
            return None
        if issubclass(cls, ode.ExplicitRK) and cls.tableau and cls.dense:
            return np.shape(cls()._tab().BTHETA)
        if issubclass(cls, ode_stiff.StiffAlgorithm) and cls.method and cls.dense:
            from .solvers.ode.rosenbrock import stiff_tableau
            return np.shape(stiff_tableau(cls.method)[8])
    except Exception:        # a lookup that fails only skips this check
        return None
    return None


def _query_times(t):
    """``sol(t)``'s ``t`` as a float64 array: real and finite, else an
    :class:`InvalidProblemError` naming ``t``."""
    try:
        a = np.asarray(t)
    except Exception as exc:         # ragged nested lists and the like
        raise InvalidProblemError(f"t: expected a real time or an array of real times "
                                  f"({exc})") from None
    if a.dtype.kind not in "iuf":
        what = (type(t).__name__ if a.dtype.kind == "O" else "text" if a.dtype.kind in "US"
                else f"{a.dtype} values")
        raise InvalidProblemError(f"t: expected a real time or an array of real times, "
                                  f"got {what}")
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        i = int(np.argmax(~np.isfinite(a.ravel())))
        raise InvalidProblemError(f"t: contains NaN or Inf ({a.ravel()[i]} at flat index "
                                  f"{i}); times must be finite")
    return a


class DenseInterpolant:
    """``sol(t)`` from each step's start ``steps_t``, size ``steps_h``, state ``us`` and
    stages ``ks``, and the method's dense-output weights ``BTH`` (stages x degree);
    written to HDF5 with its solution (``_arrays``).

    References
    ----------
    Hairer, Nørsett, Wanner, *Solving ODEs I* (1993), II.6 (dense output).
    """

    def __init__(self, steps_t, steps_h, us, ks, BTH, shape):
        self.t0s, self.hs, self.us, self.ks, self.BTH, self.shape = steps_t, steps_h, us, ks, BTH, shape

    @classmethod
    def checked(cls, steps_t, steps_h, us, ks, BTH, shape, alg=""):
        """The interpolant of arrays read from a file, their shapes checked against each
        other, the state's and (``alg`` a built-in method) the method's weights: a
        :class:`CorruptField` (a ``ValueError``) naming the field.  A truncated table
        would otherwise fail only at the first ``sol(t)``, with NumPy's broadcast error,
        or (fewer weight columns) silently interpolate with a lower-degree polynomial."""
        n = int(np.prod(shape))
        if np.ndim(BTH) != 2 or 0 in np.shape(BTH):
            raise CorruptField("dense_BTH", f"has shape {np.shape(BTH)}, expected (stages, "
                               f"degree) with both >= 1")
        want_bth = _method_bth_shape(alg)
        if want_bth is not None and np.shape(BTH) != want_bth:
            raise CorruptField("dense_BTH", f"has shape {np.shape(BTH)}, but the dense "
                               f"output of {alg} (field 'alg') has {want_bth}")
        m = np.shape(steps_t)[0] if np.ndim(steps_t) == 1 else -1
        sd = np.shape(BTH)[0]
        for name, a, want in (("dense_t", steps_t, (m,)), ("dense_h", steps_h, (m,)),
                              ("dense_u", us, (m, n)), ("dense_k", ks, (m, sd, n))):
            if np.shape(a) != want:
                raise CorruptField(name, f"has shape {np.shape(a)}, expected {want} "
                                   f"(dense_t {np.shape(steps_t)}, dense_BTH "
                                   f"{np.shape(BTH)}, {n} entries a state)")
        return cls(steps_t, steps_h, us, ks, BTH, shape)

    def __call__(self, tq):
        tq = np.asarray(tq, dtype=np.float64)
        flat = tq.ravel()
        fwd = self.hs[0] > 0 if self.hs.size else True
        key = self.t0s if fwd else -self.t0s
        q = flat if fwd else -flat
        idx = np.clip(np.searchsorted(key, q, side="right") - 1, 0, self.t0s.size - 1)
        h = self.hs[idx]
        theta = (flat - self.t0s[idx]) / h
        sd, d = self.BTH.shape
        pw = theta[:, None] ** np.arange(1, d + 1)[None, :]          # (m, d)
        # sums in a fixed order, entry by entry (no BLAS: its order, and so the last
        # bit, would depend on how many times are asked for at once)
        w = np.zeros((flat.size, sd))
        for j in range(d):
            w += pw[:, j:j + 1] * self.BTH[:, j]
        ks = self.ks[idx]
        acc = np.zeros(ks.shape[:1] + ks.shape[2:], dtype=np.result_type(ks, w))
        for s in range(sd):
            acc += w[:, s:s + 1] * ks[:, s]
        out = self.us[idx] + h[:, None] * acc
        return out.reshape(tq.shape + self.shape)

    def _arrays(self):
        return {"dense_t": self.t0s, "dense_h": self.hs, "dense_u": self.us,
                "dense_k": self.ks, "dense_BTH": self.BTH}


def _stats_attrs(stats):
    """``stats`` as the ``stats_*`` attributes of an HDF5 file."""
    return {f"stats_{k}": int(v) for k, v in stats.asdict().items()}


class AbstractSolution:
    """Common behaviour: ``retcode``, ``successful``, ``to_hdf5``."""

    retcode = ReturnCode.Success

    @property
    def successful(self):
        """True when the solve ended with ``Success`` or ``Terminated``."""
        return self.retcode.successful

    def to_hdf5(self, path):
        """Write every field to an HDF5 file (see :func:`jitsolve.load`).

        Every field is checked before anything is written, and the file is written under
        a temporary name in ``path``'s folder and then moved onto ``path``: a refused or
        interrupted write leaves a file already at ``path`` as it was.

        Raises
        ------
        jitsolve.errors.InvalidProblemError
            ``sol:`` a field that cannot be written (not numbers, an interpolant that is
            not the method's, shapes that would not load back); ``path:`` not a path, its
            folder missing, a folder, or the file cannot be created or replaced.
        """
        from .io import save_solution
        save_solution(self, path)

    # subclasses: _arrays() -> dict of ndarrays, _attrs() -> dict of scalars/strings
    def _arrays(self):
        raise NotImplementedError

    def _attrs(self):
        return {"retcode": self.retcode.value}


class ODESolution(AbstractSolution):
    """Trajectory of an ODE solve.

    Attributes
    ----------
    t : ndarray (nt,)
    u : ndarray (nt, *u0.shape)
    retcode : ReturnCode
    stats : SolverStats
    events : list of (t, u)
        States at located events (callbacks).
    alg : str
        The algorithm that produced it.

    ``sol(t)`` interpolates with the method's own interpolant when the integrator
    supplied one (every step saved: ``saveat=None``), otherwise linearly between saved
    points (as DifferentialEquations.jl does with ``dense=false``, its default with
    ``saveat``); ``sol.dense`` says which.  At a saved time it returns the saved state
    exactly; outside the saved span it raises (no extrapolation).  ``len(sol)`` is the
    number of saved times; the state at the ``i``-th is ``sol.u[i]``.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> sol = js.solve(prob, js.Tsit5(), rtol=1e-8, atol=1e-10)
    >>> sol.successful, float(sol.t[0]), float(sol.t[-1]), sol.u.shape == (sol.t.size, 1)
    (True, 0.0, 1.0, True)
    >>> round(float(sol(0.5)[0]), 6)                          # exp(-1), interpolated
    0.367879
    """

    #: the datasets ``to_hdf5`` writes (others in a file are ignored by ``js.load``)
    _HDF5_FIELDS = ("t", "u", "event_t", "event_u", "steps_t", "steps_h") + _DENSE

    def __init__(self, t, u, retcode=ReturnCode.Success, stats=None, *, events=None, alg="",
                 interp=None):
        self.t = np.asarray(t, dtype=np.float64)
        self.u = np.asarray(u)
        if self.t.ndim != 1:
            raise InvalidProblemError(f"t: expected a 1-D array of saved times, got shape "
                                      f"{self.t.shape}")
        if self.u.shape[:1] != self.t.shape:
            raise InvalidProblemError(f"u: expected shape ({self.t.size}, *state shape) "
                                      f"for the {self.t.size} saved times, got "
                                      f"{self.u.shape}")
        self.retcode = _retcode(retcode)
        self.stats = stats if stats is not None else SolverStats()
        self.events = list(events or [])
        self.alg = str(alg)
        self._interp = interp
        self._pin()

    def _pin(self):
        """Copies of the saved states that the interpolant does not give bit for bit: the
        last one (the end of the last step, theta = 1) and the first of two states saved
        at one time (before an event's change; the step after it starts from the second).
        ``sol(t)`` at those times returns them, whatever later happens to ``sol.u``."""
        self._pinned_idx = np.zeros(0, dtype=np.intp)
        self._pinned_u = None
        if self._interp is None or self.t.size == 0:
            return
        idx = np.flatnonzero(self.t[1:] == self.t[:-1])
        self._pinned_idx = np.append(idx, self.t.size - 1).astype(np.intp)
        n = int(np.prod(self.u.shape[1:], dtype=np.int64))
        self._pinned_u = self.u.reshape(self.t.size, n)[self._pinned_idx].copy()

    @property
    def dense(self):
        """True when ``sol(t)`` uses the method's own interpolant (``saveat=None`` and a
        method with dense output), False when it interpolates linearly between saved
        states."""
        return self._interp is not None

    def __len__(self):
        """The number of saved times (``sol.t.size``)."""
        return self.t.size

    def __call__(self, t, continuity="left"):
        """The state at time(s) ``t``, interpolated (SciML's ``sol(t)``).

        With the method's interpolant when the solution has one (``sol.dense``: every
        step saved, ``saveat=None``), else linearly between the saved states, as
        DifferentialEquations.jl does with ``dense=false``: a solve with ``saveat``, a
        method without dense output (Euler, ETDRK4, the SDE methods), or a trajectory of
        an ensemble.

        Parameters
        ----------
        t : float or array_like of float
            Times inside the saved span ``[min(sol.t), max(sol.t)]``, either direction.
        continuity : {"left", "right"}
            At a time saved twice (an event whose ``affect`` changed the state, or a
            ``DiscreteCallback``): the state before the change (``"left"``, the default,
            as in DifferentialEquations.jl) or after it (``"right"``).

        Returns
        -------
        ndarray
            Shape ``np.shape(t) + u0.shape``: the state's shape for a scalar ``t``,
            ``(len(t), *u0.shape)`` for a vector.  At a saved time, the saved state
            exactly.  The dense interpolant keeps its own copies of the states:
            changing ``sol.u`` afterwards does not change it, but it does change the
            linear interpolation of a solution without one.

        Raises
        ------
        jitsolve.errors.InvalidProblemError
            ``t:`` not real numbers, NaN or Inf, or outside the saved span (no
            extrapolation: a solve that ended early ends its span at its last state);
            ``continuity:`` neither ``"left"`` nor ``"right"``.
        """
        tq = _query_times(t)
        if continuity not in ("left", "right"):
            raise InvalidProblemError(f"continuity: expected 'left' or 'right', got "
                                      f"{continuity!r}")
        nt = self.t.size
        if nt == 0:
            raise InvalidProblemError("t: the solution holds no saved states")
        lo, hi = min(self.t[0], self.t[-1]), max(self.t[0], self.t[-1])
        flat = tq.ravel()
        bad = (flat < lo) | (flat > hi)
        if bad.any():
            x = float(flat[int(np.argmax(bad))])
            end = ("" if self.retcode is ReturnCode.Success else
                   f"; the solve ended with {self.retcode.value} at t = {self.t[-1]}")
            raise InvalidProblemError(f"t: {x!r} is outside the solution's span [{lo}, "
                                      f"{hi}] (no extrapolation){end}")
        fwd = not self.t[-1] < self.t[0]
        key = self.t if fwd else -self.t
        q = flat if fwd else -flat
        order = None
        if np.any(key[1:] < key[:-1]):          # built by hand, unsorted: sort it
            order = np.argsort(key, kind="stable")
            key = key[order]
        first = np.searchsorted(key, q, side="left")
        exact = key[np.minimum(first, nt - 1)] == q
        row = first if continuity == "left" else np.searchsorted(key, q, side="right") - 1
        if order is not None:
            row = order[np.minimum(row, nt - 1)]
        n = int(np.prod(self.u.shape[1:], dtype=np.int64))
        us = self.u.reshape(nt, n)
        if self._interp is not None:
            out = np.array(self._interp(flat).reshape(flat.size, n))
            if exact.any():
                # step starts are exact already (theta = 0); the pinned states are not
                where = np.searchsorted(self._pinned_idx, row[exact])
                hit = where < self._pinned_idx.size
                hit[hit] = self._pinned_idx[where[hit]] == row[exact][hit]
                e = np.flatnonzero(exact)[hit]
                out[e] = self._pinned_u[where[hit]]
            return out.reshape(tq.shape + self.u.shape[1:])
        uo = us if order is None else us[order]
        if nt == 1:
            out = np.repeat(uo[:1], flat.size, axis=0)
        else:
            j = np.clip(first, 1, nt - 1)
            with np.errstate(invalid="ignore", divide="ignore"):   # exact ones: below
                w = ((q - key[j - 1]) / (key[j] - key[j - 1]))[:, None]
            out = uo[j - 1] + w * (uo[j] - uo[j - 1])
        if exact.any():
            out[exact] = us[row[exact]]
        return out.reshape(tq.shape + self.u.shape[1:])

    def _arrays(self):
        out = {"t": self.t, "u": self.u}
        if self.events:
            out["event_t"] = np.array([e[0] for e in self.events], dtype=np.float64)
            out["event_u"] = np.stack([np.asarray(e[1]) for e in self.events])
        for k in ("steps_t", "steps_h"):
            if getattr(self, k, None) is not None:
                out[k] = getattr(self, k)
        if isinstance(self._interp, DenseInterpolant):   # sol(t) the same after js.load
            out.update(self._interp._arrays())
        elif self._interp is not None:
            raise InvalidProblemError("sol: its interpolant cannot be written to HDF5")
        return out

    def _attrs(self):
        a = super()._attrs()
        a["alg"] = self.alg
        a.update(_stats_attrs(self.stats))
        return a

    @classmethod
    def _from_hdf5(cls, arrays, attrs):
        """The solution of a file's datasets and attributes, each checked against the
        others (:class:`CorruptField` naming the first that is missing or wrong)."""
        t = _field(arrays, "t", ndim=1, kinds="iuf", what="real numbers")
        u = _field(arrays, "u", min_ndim=1)
        if u.shape[0] != t.size:
            raise CorruptField("u", f"has {u.shape[0]} states for the {t.size} times of "
                               f"field 't'")
        alg = _text(attrs, "alg")
        events = []
        if "event_t" in arrays or "event_u" in arrays:
            et = _field(arrays, "event_t", ndim=1, kinds="iuf", what="real numbers")
            eu = _field(arrays, "event_u", min_ndim=1)
            if eu.shape != (et.size,) + u.shape[1:]:
                raise CorruptField("event_u", f"has shape {eu.shape}, expected "
                                   f"{(et.size,) + u.shape[1:]} ({et.size} times in field "
                                   f"'event_t', states of shape {u.shape[1:]})")
            events = list(zip(et, eu))
        kw = {}
        if "W" in cls._HDF5_FIELDS and "W" in arrays:
            W = _field(arrays, "W", ndim=2, kinds="iuf", what="real numbers")
            if W.shape[0] != t.size:
                raise CorruptField("W", f"has shape {W.shape}, expected ({t.size}, "
                                   f"nbrownian) for the {t.size} times of field 't'")
            kw["W"] = W
        present = [k for k in _DENSE if k in arrays]
        if present:
            missing = [k for k in _DENSE if k not in arrays]
            if missing:
                raise CorruptField(missing[0], f"is missing; the method's interpolant "
                                   f"needs it with {', '.join(present)}")
            d = {k: _field(arrays, k, kinds="iuf" if k in ("dense_t", "dense_h") else
                           _NUMERIC) for k in _DENSE}
            kw["interp"] = DenseInterpolant.checked(
                d["dense_t"], d["dense_h"], d["dense_u"], d["dense_k"], d["dense_BTH"],
                u.shape[1:], alg)
        steps = {k: _field(arrays, k, ndim=1, kinds="iuf", what="real numbers")
                 for k in ("steps_t", "steps_h") if k in arrays}
        if len(steps) == 2 and steps["steps_t"].size != steps["steps_h"].size:
            raise CorruptField("steps_h", f"has {steps['steps_h'].size} entries for the "
                               f"{steps['steps_t'].size} of field 'steps_t'")
        sol = cls(t, u, _retcode_attr(attrs), _stats_checked(attrs), events=events, alg=alg,
                  **kw)
        for k, v in steps.items():
            setattr(sol, k, v)
        return sol

    def __repr__(self):
        return (f"{type(self).__name__}(retcode={self.retcode}, nt={self.t.size}, "
                f"u.shape={self.u.shape}, alg={self.alg!r})")


class SDESolution(ODESolution):
    """Trajectory of an SDE solve; ``W`` (nt, nbrownian) is the Brownian path at ``t``
    when solved with ``save_noise=True`` (else None).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def drift(du, u, p, t):
    ...     du[0] = 0.0
    >>> def noise(gu, u, p, t):
    ...     gu[0] = 1.0
    >>> prob = js.SDEProblem(drift, noise, np.zeros(1), (0.0, 1.0))
    >>> sol = js.solve(prob, js.EM(), dt=0.25, seed=3, save_noise=True)
    >>> sol.retcode, sol.W.shape, bool(np.allclose(sol.u, sol.W))   # u = W exactly
    (<ReturnCode.Success: 'Success'>, (5, 1), True)
    """

    _HDF5_FIELDS = ODESolution._HDF5_FIELDS + ("W",)

    def __init__(self, t, u, retcode=ReturnCode.Success, stats=None, *, W=None, events=None,
                 alg="", interp=None):
        super().__init__(t, u, retcode, stats, events=events, alg=alg, interp=interp)
        self.W = None if W is None else np.asarray(W, dtype=np.float64)

    def _arrays(self):
        out = super()._arrays()
        if self.W is not None:
            out["W"] = self.W
        return out


class LinearSolution(AbstractSolution):
    """Result of a linear solve.

    Attributes
    ----------
    u : ndarray
        The solution (shape of ``b``).
    retcode : ReturnCode
    iters : int
    resnorm : float
        The true residual norm ``||b - A u||``, recomputed at the end.  A solve that breaks
        down or stalls returns its best iterate, never one worse than the starting guess;
        ``MaxIters`` keeps the last iterate.
    history : ndarray
        Residual norm per iteration (the recursively updated one between recomputations);
        entry 0 the initial residual, one entry per iteration after it.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> sol = js.solve(js.LinearProblem(np.diag([1.0, 2.0]), np.ones(2)), js.CG())
    >>> sol.u, sol.iters, sol.resnorm < 1e-12, sol.history.size
    (array([1. , 0.5]), 2, True, 3)
    """

    _HDF5_FIELDS = ("u", "history")

    def __init__(self, u, retcode=ReturnCode.Success, iters=0, resnorm=np.nan, history=None,
                 *, alg=""):
        self.u = np.asarray(u)
        self.retcode = _retcode(retcode)
        self.iters = int(iters)
        self.resnorm = float(resnorm)
        self.history = np.asarray(history if history is not None else [], dtype=np.float64)
        self.alg = str(alg)

    def _arrays(self):
        return {"u": self.u, "history": self.history}

    def _attrs(self):
        a = super()._attrs()
        a.update(iters=self.iters, resnorm=self.resnorm, alg=self.alg)
        return a

    @classmethod
    def _from_hdf5(cls, arrays, attrs):
        """The solution of a file's datasets and attributes, each checked
        (:class:`CorruptField` naming the first that is missing or wrong)."""
        return cls(_field(arrays, "u"), _retcode_attr(attrs), _count(attrs, "iters"),
                   _real(attrs, "resnorm"),
                   _field(arrays, "history", ndim=1, kinds="iuf", what="real numbers"),
                   alg=_text(attrs, "alg"))

    def __repr__(self):
        return (f"LinearSolution(retcode={self.retcode}, iters={self.iters}, "
                f"resnorm={self.resnorm:.3e}, alg={self.alg!r})")


class EnsembleSolution(AbstractSolution):
    """Many trajectories: ``u`` (N, nt, *u0.shape), common ``t``, one retcode each.

    ``t`` is ``saveat``'s times, or without ``saveat`` only ``tspan``'s two ends (the
    trajectories take different steps): ``esol[i](t)`` interpolates linearly between
    them, so pass ``saveat`` with the times you will ask for.

    ``retcode`` is ``Success`` when every trajectory succeeded, else the first failure's
    code; ``retcodes`` lists them all, ``successful_mask`` marks the successful ones
    (``sol.u[sol.successful_mask]``).  ``retcodes`` may be given as ReturnCode members,
    their names, or an array of names.  ``stats``: the work, per trajectory (an (N, 6)
    array of the ``SolverStats`` fields, ODE ensembles; fewer columns are padded with
    zeros) or summed (a ``SolverStats``, SDE ensembles), or None; ``W`` (N, nt,
    nbrownian): the Brownian paths of an SDE ensemble solved with ``save_noise=True``,
    else None.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    >>> esol = js.solve(js.EnsembleProblem(prob, u0s=np.array([[1.0], [2.0]])), js.Tsit5(),
    ...                 trajectories=2, saveat=np.array([0.0, 1.0]))
    >>> len(esol), esol.retcode, np.round(esol.u[:, -1, 0] / esol.u[:, 0, 0], 3)
    (2, <ReturnCode.Success: 'Success'>, array([0.135, 0.135]))
    """

    _HDF5_FIELDS = ("t", "u", "retcodes", "stats", "W")

    def __init__(self, t, u, retcodes, *, alg="", stats=None, W=None):
        self.t = np.asarray(t, dtype=np.float64)
        self.u = np.asarray(u)
        self._codes = _code_indices(retcodes)
        if self.u.ndim < 2 or self._codes.size != self.u.shape[0]:
            raise InvalidProblemError(f"retcodes: one retcode per trajectory is required "
                                      f"(u of shape (N, nt, ...)); got {self._codes.size} "
                                      f"for u of shape {self.u.shape}")
        self._retcodes = None
        self.alg = str(alg)
        nst = len(SolverStats().asdict())
        if isinstance(stats, np.ndarray) and stats.ndim == 2 and stats.shape[1] < nst:
            # the ensemble kernels count the first five fields; a column per field always
            stats = np.concatenate(
                [stats, np.zeros((stats.shape[0], nst - stats.shape[1]), stats.dtype)], axis=1)
        self.stats = stats
        self.W = W

    @property
    def retcodes(self):
        """One :class:`ReturnCode` per trajectory (a list, built on first access)."""
        if self._retcodes is None:
            self._retcodes = [_CODES[i] for i in self._codes.tolist()]
        return self._retcodes

    @property
    def successful_mask(self):
        """Boolean array (N,): which trajectories ended with ``Success`` or
        ``Terminated``."""
        return _SUCCESSFUL[self._codes]

    @property
    def retcode(self):
        """``Success`` when every trajectory succeeded, else the first failure's code."""
        bad = ~_SUCCESSFUL[self._codes]
        if bad.any():
            return _CODES[int(self._codes[int(np.argmax(bad))])]
        return ReturnCode.Success

    def __len__(self):
        return self.u.shape[0]

    def __getitem__(self, i):
        """Trajectory ``i`` as a solution of its own (SciML's ``sim[i]``; iteration works
        too): an ``ODESolution`` with its retcode and stats for an ODE ensemble (per-
        trajectory ``stats``), else an ``SDESolution`` with its Brownian path when one was
        saved.  A failed or terminated trajectory keeps its saved prefix (the NaN rows
        after its end are dropped; a terminated one's event state is not among the common
        saved times).  No dense output: ``esol[i](t)`` is linear between the saved times
        (``saveat``'s, else only ``tspan``'s two ends, see the class docstring).  An
        SDE ensemble counts its work for all trajectories together (``esol.stats``): a
        trajectory's own ``stats`` are zeros.  A slice gives a list of trajectories."""
        N = len(self)
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(N))]
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"ensemble solutions are indexed by an integer or a slice, got "
                            f"{type(i).__name__}") from None
        if not -N <= i < N:
            raise IndexError(f"trajectory {i} of an ensemble of {N}")
        i %= N
        nt = self.t.size
        if _CODES[int(self._codes[i])] is not ReturnCode.Success:
            rows = np.isfinite(self.u[i].reshape(nt, -1)).all(axis=1)
            nt = int(np.argmin(np.append(rows, False)))
        rc = _CODES[int(self._codes[i])]
        if isinstance(self.stats, np.ndarray):
            return ODESolution(self.t[:nt], self.u[i, :nt], rc,
                               SolverStats(*(int(v) for v in self.stats[i])), alg=self.alg)
        W = None if self.W is None else self.W[i, :nt]
        return SDESolution(self.t[:nt], self.u[i, :nt], rc, W=W, alg=self.alg)

    def _arrays(self):
        out = {"t": self.t, "u": self.u, "retcodes": _NAMES_S32[self._codes]}
        if isinstance(self.stats, np.ndarray):
            out["stats"] = self.stats
        if self.W is not None:
            out["W"] = self.W
        return out

    def _attrs(self):
        a = {"retcode": self.retcode.value, "alg": self.alg}
        if isinstance(self.stats, SolverStats):
            a.update(_stats_attrs(self.stats))
        return a

    @classmethod
    def _from_hdf5(cls, arrays, attrs):
        """The ensemble of a file's datasets and attributes, each checked against the
        others (:class:`CorruptField` naming the first that is missing or wrong)."""
        t = _field(arrays, "t", ndim=1, kinds="iuf", what="real numbers")
        u = _field(arrays, "u", min_ndim=2)
        N = u.shape[0]
        if u.shape[1] != t.size:
            raise CorruptField("u", f"has shape {u.shape}: {u.shape[1]} saved states a "
                               f"trajectory for the {t.size} times of field 't'")
        names = _field(arrays, "retcodes", ndim=1, kinds="SU", what="return-code names")
        if names.size != N:
            raise CorruptField("retcodes", f"has {names.size} entries for the {N} "
                               f"trajectories of field 'u'")
        try:
            _code_indices(names)
        except ValueError as exc:
            raise CorruptField("retcodes", f"holds an unknown code ({exc})") from None
        rc = _retcode_attr(attrs)
        stats = _stats_checked(attrs)
        if "stats" in arrays:
            stats = _field(arrays, "stats", ndim=2, kinds="iu", what="integer counts")
            nst = len(SolverStats().asdict())       # the ensemble kernels count the first 5
            if stats.shape[0] != N or not 5 <= stats.shape[1] <= nst:
                raise CorruptField("stats", f"has shape {stats.shape}, expected ({N}, 5 to "
                                   f"{nst}): a row of counters for each trajectory")
            if stats.size and stats.min() < 0:
                raise CorruptField("stats", "holds a negative count")
        W = None
        if "W" in arrays:
            W = _field(arrays, "W", ndim=3, kinds="iuf", what="real numbers")
            if W.shape[:2] != (N, t.size):
                raise CorruptField("W", f"has shape {W.shape}, expected ({N}, {t.size}, "
                                   f"nbrownian) for fields 'u' and 't'")
        sol = cls(t, u, names, alg=_text(attrs, "alg"), stats=stats, W=W)
        if sol.retcode is not rc:
            raise CorruptField("retcode", f"is {rc.value!r}, but the codes of field "
                               f"'retcodes' give {sol.retcode.value!r}")
        return sol

    def __repr__(self):
        return f"EnsembleSolution(N={len(self)}, nt={self.t.size}, retcode={self.retcode})"

    def summary(self, quantiles=(0.05, 0.95), ddof=1):
        """The trajectories' statistics at the saved times: an :class:`EnsembleSummary`
        (mean, variance and two quantiles over the successful trajectories)."""
        return EnsembleSummary(self, quantiles=quantiles, ddof=ddof)


class EnsembleSummary:
    """Statistics of an ensemble's successful trajectories at its saved times (SciML's
    ``EnsembleSummary``): ``t`` (nt,), ``mean``, ``var`` (sample variance, divisor
    ``N - ddof``), ``qlow``, ``qhigh`` (the two ``quantiles``, linear interpolation
    between order statistics), each of shape ``(nt, *u0.shape)``; ``n`` the number of
    trajectories used (the failed ones are left out: their rows after the failure are
    NaN).  A terminated trajectory counts at the saved times before its stop (its later
    rows are NaN): the statistics at time ``k`` are over the ``counts[k]`` trajectories
    with data there (NaN where fewer than ``ddof + 1``).

    Parameters
    ----------
    sol : EnsembleSolution
    quantiles : (low, high) in [0, 1]
    ddof : 0 or 1

    References
    ----------
    Hyndman, Fan, *Sample quantiles in statistical packages*, Am. Stat. 50 (1996), type 7
    (NumPy's default, the one used here).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([1.0]))
    >>> ens = js.EnsembleProblem(prob, u0s=np.array([[1.0], [2.0], [3.0]]))
    >>> s = js.solve(ens, js.Tsit5(), saveat=[0.0, 1.0]).summary(quantiles=(0.0, 1.0))
    >>> s.mean[:, 0].round(4), s.var[:, 0].round(4), s.qlow[:, 0].round(4), s.n
    (array([2.    , 0.7358]), array([1.    , 0.1353]), array([1.    , 0.3679]), 3)
    """

    def __init__(self, sol, quantiles=(0.05, 0.95), ddof=1):
        if not isinstance(sol, EnsembleSolution):
            raise InvalidProblemError(f"sol: expected an EnsembleSolution, got "
                                      f"{type(sol).__name__}")
        try:
            q = np.asarray(quantiles, dtype=np.float64)
        except (TypeError, ValueError):
            q = np.zeros(0)                     # refused just below, naming quantiles
        if q.shape != (2,) or not np.all(np.isfinite(q)) or q[0] < 0 or q[1] > 1 or q[0] > q[1]:
            raise InvalidProblemError(f"quantiles: expected (low, high) with 0 <= low <= high "
                                      f"<= 1, got {quantiles!r}")
        if isinstance(ddof, bool) or ddof not in (0, 1):
            raise InvalidProblemError(f"ddof: expected 0 or 1, got {ddof!r}")
        us = np.asarray(sol.u)[sol.successful_mask]
        self.n = int(us.shape[0])
        if self.n - ddof < 1:
            raise InvalidProblemError(f"sol: {self.n} successful trajectories; the statistics "
                                      f"need at least {ddof + 1}")
        self.t = sol.t.copy()
        self.quantiles = (float(q[0]), float(q[1]))
        have = np.isfinite(us)
        self.counts = have.reshape(us.shape[0], us.shape[1], -1).all(axis=2).sum(axis=0)
        if have.all():
            self.mean = us.mean(axis=0)
            self.var = us.var(axis=0, ddof=ddof)
            self.qlow, self.qhigh = np.quantile(us, q, axis=0)
        else:               # terminated trajectories: NaN rows after their stops
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN / few rows
                self.mean = np.nanmean(us, axis=0)
                self.var = np.nanvar(us, axis=0, ddof=ddof)
                self.qlow, self.qhigh = np.nanquantile(us, q, axis=0)
            few = (have.sum(axis=0) - ddof) < 1
            self.var[few] = np.nan

    def __repr__(self):
        return (f"EnsembleSummary(n={self.n}, nt={self.t.size}, "
                f"quantiles={self.quantiles})")
