"""Local sensitivities ``du(t)/dx`` of an ODE solve and the Gauss-Newton covariance of a
least-squares estimate built on them.

``js.local_sensitivities`` is SciML's ``extract_local_sensitivities`` of a forward-
sensitivity solve: the tangents of ``js.ForwardSensitivity`` (exact for the explicit
methods' discrete solution, solved with the state to the tolerance for the stiff ones)
at the requested times.  ``js.parameter_covariance`` is ``scipy.optimize.curve_fit``'s
``pcov`` for ``js.fit``: ``(S^T W S)^-1``, scaled by the residual variance unless the
weights are the inverse variances of the data (``absolute_sigma=True``).
"""
import numpy as np

from .errors import InvalidProblemError, UnsupportedAlgorithmError

__all__ = ["local_sensitivities", "parameter_covariance", "ParameterCovariance"]


def local_sensitivities(prob, alg, t, wrt="p", **solve_kw):
    """The states at times ``t`` and their derivatives with respect to ``p`` and/or ``u0``.

    Parameters
    ----------
    prob : ODEProblem or SplitODEProblem, or an EnsembleProblem of them with ``u0s``/``ps``
        (then every trajectory's ``u`` and ``S``, one more leading axis of length ``N``;
        ``trajectories=N`` when the ensemble has no rows)
    alg : an explicit (Tsit5, DP5, Vern7, RK4, ...) or stiff (Rodas5P, KenCarp4, ...) method
    t : a time or an array of them, in ``tspan`` and strictly increasing along it (``t0``
        may be one of them: there ``S["u0"]`` is the identity and ``S["p"]`` zero)
    wrt : "p", "u0" or a tuple of both
    **solve_kw : as for ``js.solve`` (``rtol``, ``atol``, ``dt``, ``callback`` -- a
        ``js.DiscreteCallback``, explicit methods), but not ``saveat`` (the times are
        ``t``) or ``sensealg``

    Returns
    -------
    u : array (m, *u0.shape)
        The states at ``t``: for the explicit methods exactly what ``js.solve(prob, alg,
        saveat=t)`` gives; the stiff ones solve the state and its tangents as one system
        under one error control, so there ``u`` agrees with ``js.solve`` to the tolerance.
    S : dict
        ``S["p"]`` of shape ``(m, *u0.shape, np)``: ``du(t_j)/dp``; ``S["u0"]`` of shape
        ``(m, *u0.shape, *u0.shape)``: ``du(t_j)/du0``.

    Raises
    ------
    InvalidProblemError
        ``t`` empty, not finite, outside ``tspan``, unsorted or repeated; ``wrt`` not
        "p"/"u0"; ``prob`` not an ODE problem (an ``SDEProblem`` has no deterministic
        sensitivities: use ``js.gradient`` of a loss of its paths).
    UnsupportedAlgorithmError
        ``alg`` has no forward sensitivities (ETDRK4, the SDE and linear methods).
    SolveFailedError
        The solve did not succeed.

    References
    ----------
    Hairer, Nørsett, Wanner, *Solving ODEs I* (1993), I.14 (variational equations);
    Rackauckas et al., SciMLSensitivity.jl, ``ForwardSensitivity`` and
    ``extract_local_sensitivities``.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def decay(du, u, p, t):
    ...     du[0] = -p[0] * u[0]
    >>> prob = js.ODEProblem(decay, np.array([2.0]), (0.0, 1.0), p=np.array([0.5]))
    >>> u, S = js.local_sensitivities(prob, js.Tsit5(), [1.0], wrt=("p", "u0"),
    ...                               rtol=1e-10, atol=1e-12)
    >>> np.round(S["p"][0, 0, 0], 6), np.round(-1.0 * 2.0 * np.exp(-0.5), 6)   # -t u0 e^-pt
    (np.float64(-1.213061), np.float64(-1.213061))
    >>> np.round(S["u0"][0, 0, 0], 6)                                         # e^-pt
    np.float64(0.606531)

    Cost
    ----
    Per call: one forward solve with ``js.ForwardSensitivity``: per step and per
    direction (``np`` for ``p``, ``n`` for ``u0``) one complex evaluation of ``f`` per
    stage (explicit), or the state and tangents as one stiff system of ``n (1 + ndir)``
    unknowns; memory ``m ndir n`` numbers.
    """
    from .gradient import gradient
    from .losses import L2Loss
    from .problems import EnsembleProblem, ODEProblem, SplitODEProblem
    from .sensitivity import TANGENT_SINK, ForwardSensitivity
    if isinstance(prob, EnsembleProblem):
        return _ensemble_sensitivities(prob, alg, t, wrt, solve_kw)
    if not isinstance(prob, (ODEProblem, SplitODEProblem)):
        raise InvalidProblemError(f"prob: local sensitivities are computed for ODEProblem and "
                                  f"SplitODEProblem, not {type(prob).__name__}")
    names = _wrt_names(wrt)
    for key, why in (("sensealg", "they are always js.ForwardSensitivity's tangents"),
                     ("saveat", "the states are saved at t")):
        if key in solve_kw:
            raise InvalidProblemError(f"{key}: local_sensitivities takes no {key} ({why})")
    t = _check_t(t, prob.tspan)
    shape = prob.u0.shape
    probe = L2Loss(t, np.zeros((t.size,) + shape))        # its gradient is u itself
    sink = []
    token = TANGENT_SINK.set(sink)
    try:
        gradient(prob, alg, probe, wrt=names, sensealg=ForwardSensitivity(), **solve_kw)
    except UnsupportedAlgorithmError as e:
        if not str(e).startswith("sensealg:"):
            raise
        raise UnsupportedAlgorithmError(                  # the user chose alg, not sensealg
            f"alg: local sensitivities come from forward sensitivities, which "
            f"{type(alg).__name__} does not have ({str(e)[10:]})") from None
    finally:
        TANGENT_SINK.reset(token)
    g, S, blocks = sink[-1]
    m, n = g.shape
    u = g.reshape((m,) + shape).copy()
    out, k = {}, 0
    for name, cnt in blocks:
        block = np.moveaxis(S[:, k:k + cnt, :], 1, 2)       # (m, n, cnt)
        out[name] = (block.reshape((m,) + shape + shape) if name == "u0" else
                     block.reshape((m,) + shape + (cnt,))).copy()
        k += cnt
    return u, out


def _wrt_names(wrt):
    """``wrt`` ("p", "u0" or a tuple of both, each once) as a tuple of names."""
    if isinstance(wrt, str):
        names = (wrt,)
    elif isinstance(wrt, (tuple, list)):
        names = tuple(wrt)
    else:
        names = ()
    if (not names or any(not isinstance(n, str) or n not in ("p", "u0") for n in names)
            or len(set(names)) < len(names)):
        raise InvalidProblemError(f"wrt: expected 'p', 'u0' or both, got {wrt!r}")
    return names


def _check_t(t, tspan):
    """The times ``t`` as a 1-D float64 array: not empty, finite, inside ``tspan`` and
    strictly increasing along it (else ``InvalidProblemError`` naming ``t``)."""
    from .solve import _check_times
    if np.size(t) == 0:
        raise InvalidProblemError("t: expected at least one time, got none")
    if np.iscomplexobj(t):
        raise InvalidProblemError("t: expected real times, got complex numbers")
    return _check_times(np.atleast_1d(t), "t", tspan)


def _ensemble_sensitivities(eprob, alg, t, wrt, solve_kw):
    """:func:`local_sensitivities` of every trajectory of a ``u0s``/``ps`` ensemble (one
    forward-sensitivity solve each): ``u`` (N, m, *u0.shape) and ``S[name]`` (N, m,
    *u0.shape, ...), each trajectory's derivatives wrt its own ``p``/``u0``."""
    from .problems import remake
    from .validate import check_trajectories
    kw = dict(solve_kw)
    N = check_trajectories(kw.pop("trajectories", None), eprob.ntrajectories)
    if eprob.prob_func is not None:
        raise InvalidProblemError("prob: local sensitivities of an ensemble take its u0s/ps "
                                  "rows, not a prob_func")
    us, Ss = [], []
    for i in range(N):
        pi = remake(eprob.prob, **({} if eprob.u0s is None else {"u0": eprob.u0s[i]}),
                    **({} if eprob.ps is None else {"p": eprob.ps[i]}))
        u, S = local_sensitivities(pi, alg, t, wrt=wrt, **kw)
        us.append(u)
        Ss.append(S)
    return np.stack(us), {name: np.stack([S[name] for S in Ss]) for name in Ss[0]}


class Residuals:
    """The weighted residuals ``sqrt(w) (u(t) - d)`` of an ``L2Loss`` and their Jacobian
    with respect to the inputs ``names`` (``"p"``, ``"u0"``), for a problem or a
    ``u0s``/``ps`` ensemble (the trajectories' residuals stacked; a shared input's
    Jacobian columns gather every trajectory's rows, a per-trajectory input's are
    block-diagonal): what :func:`parameter_covariance` and ``js.fit(method=
    "least_squares")`` linearise.  ``evaluate(prob)`` returns ``(r, J)`` at the inputs
    ``prob`` carries."""

    def __init__(self, prob, alg, loss, names, solve_kw):
        from .losses import L2Loss
        from .problems import EnsembleProblem, ODEProblem, SplitODEProblem
        from .sensitivity import ensemble_wrt
        from .validate import check_trajectories
        ensemble = isinstance(prob, EnsembleProblem)
        base = prob.prob if ensemble else prob
        if not isinstance(base, (ODEProblem, SplitODEProblem)) or (ensemble and prob.prob_func):
            raise InvalidProblemError(
                f"prob: residual Jacobians come from forward sensitivities of an ODEProblem "
                f"or SplitODEProblem, or of an ensemble of one with u0s/ps rows, not this "
                f"{type(base).__name__}")
        if not isinstance(loss, L2Loss) or loss.t_data is None:
            raise InvalidProblemError("loss: residuals need a js.L2Loss with observation times")
        names = _wrt_names(names)
        kw = dict(solve_kw)
        if ensemble:
            N = check_trajectories(kw.pop("trajectories", None), prob.ntrajectories)
            self.shared = [ensemble_wrt(prob, name)[2] for name in names]
            kw["trajectories"] = N
        else:
            N, self.shared = 1, [True] * len(names)
        size1 = loss.t_data.size * base.u0.size
        if loss.data.size not in ((size1, N * size1) if ensemble else (size1,)):
            want = (f"one set of observations shared by the {N} trajectories or one each"
                    if ensemble else "one observation per time and state entry")
            raise InvalidProblemError(
                f"data: expected {want} ({loss.t_data.size} times x u0 of shape "
                f"{base.u0.shape}), got shape {loss.data.shape}")
        d = loss.data.reshape(-1, size1)
        w = (np.ones_like(d) if loss.weights is None else
             np.asarray(loss.weights, dtype=np.float64).reshape(d.shape))
        self.alg, self.loss, self.names, self.kw = alg, loss, tuple(names), kw
        self.N, self.size1 = N, size1
        self.d = np.broadcast_to(d, (N, size1))
        self.w = np.broadcast_to(w, (N, size1))
        self.sw = np.sqrt(self.w)

    def inputs(self, prob):
        """The inputs' current values in ``prob``, in ``names``' order (``p``/``u0``, or
        an ensemble's shared vector or rows)."""
        from .problems import EnsembleProblem
        from .sensitivity import ensemble_wrt
        if isinstance(prob, EnsembleProblem):
            xs = [np.asarray(ensemble_wrt(prob, name)[0]) for name in self.names]
            # rows: the first N of them (``trajectories=N`` may use fewer than given)
            return [x if sh else x[:self.N] for x, sh in zip(xs, self.shared)]
        return [np.asarray(getattr(prob, name)) for name in self.names]

    def evaluate(self, prob):
        N, size1 = self.N, self.size1
        u, S = local_sensitivities(prob, self.alg, self.loss.t_data, wrt=self.names, **self.kw)
        if u.size != N * size1:
            raise InvalidProblemError(f"data: the loss holds {self.loss.data.shape}, the "
                                      f"solve saves states of shape {u.shape}")
        r = (self.sw * (u.reshape(N, size1) - self.d)).ravel()
        blocks = []
        for name, sh, x in zip(self.names, self.shared, self.inputs(prob)):
            Sn = S[name].reshape(N, size1, -1)          # each trajectory wrt its own row
            if sh:
                blocks.append(Sn.reshape(N * size1, x.size))
            else:
                k1 = Sn.shape[2]
                B = np.zeros((N * size1, N * k1))
                for i in range(N):
                    B[i * size1:(i + 1) * size1, i * k1:(i + 1) * k1] = Sn[i]
                blocks.append(B)
        J = self.sw.reshape(-1, 1) * np.concatenate(blocks, axis=1)
        return r, J


class ParameterCovariance:
    """Gauss-Newton covariance of a least-squares estimate (:func:`parameter_covariance`):
    ``cov`` (k, k) over the flattened ``x``, ``std`` its square-root diagonal (the
    standard errors, shaped like ``x``; a tuple of blocks for a joint estimate such as
    ``wrt=("p", "u0")``), ``corr`` the correlation matrix, ``dof`` the
    degrees of freedom (observed entries, weight > 0, minus ``k``), ``chi2`` the weighted
    residual sum of squares ``sum w r^2``, ``residual_variance`` ``chi2 / dof`` (inf when
    ``dof <= 0``), ``cond`` the condition number of ``S^T W S`` with its rows and columns
    scaled to a unit diagonal (independent of the units of ``x``; large: some
    combination of ``x`` is poorly determined by the data), ``absolute_sigma``.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> c = js.ParameterCovariance(np.diag([4.0, 1.0]), (2,), dof=8, chi2=7.5, cond=4.0,
    ...                            absolute_sigma=True)
    >>> c.std, c.corr[0, 1], c.residual_variance
    (array([2., 1.]), np.float64(0.0), 0.9375)
    """

    def __init__(self, cov, shape, *, dof, chi2, cond, absolute_sigma):
        self.cov = np.asarray(cov, dtype=np.float64)
        d = np.sqrt(np.diag(self.cov))
        if isinstance(shape, list):          # a joint estimate: one block per input
            sizes = [int(np.prod(sh)) for sh in shape]
            self.std = tuple(b.reshape(sh) for b, sh in
                             zip(np.split(d, np.cumsum(sizes)[:-1]), shape))
        else:
            self.std = d.reshape(shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.corr = self.cov / np.outer(d, d)
        self.dof = int(dof)
        self.chi2 = float(chi2)
        self.residual_variance = float(chi2 / dof) if dof > 0 else float("inf")
        self.cond = float(cond)
        self.absolute_sigma = bool(absolute_sigma)

    def __repr__(self):
        std = np.sqrt(np.diag(self.cov))                 # every block's, flattened
        return (f"ParameterCovariance(std={np.round(std, 6).tolist()}, "
                f"dof={self.dof}, cond={self.cond:.3g})")


def parameter_covariance(prob, alg, loss, wrt="p", *, absolute_sigma=False, **solve_kw):
    """Covariance of the least-squares estimate ``x`` (``p`` or ``u0``) of ``prob`` under
    the ``L2Loss`` ``loss``: ``C = (S^T W S)^-1`` with ``S = du(t)/dx`` at the loss's
    times (:func:`local_sensitivities`) and ``W`` the loss's weights, scaled by the
    residual variance ``sum w r^2 / (N_obs - k)`` unless ``absolute_sigma`` (weights that
    are the inverse variances of the data's noise).  Evaluate it at the estimate
    (``js.remake(prob, p=res.p)`` after ``js.fit``).  The linearisation behind it holds
    when the residuals are small against the model's curvature.

    Parameters
    ----------
    prob : ODEProblem or SplitODEProblem, or an ensemble of experiments (``u0s``/``ps``
        rows, an ``L2Loss`` with shared or per-trajectory data), at the estimate
    alg, loss : the method and the ``js.L2Loss`` of the fit
    wrt : "p", "u0" or both (``("p", "u0")``: the joint covariance, ``x`` the
        concatenation in that order, as ``js.fit(wrt=("p", "u0"))`` estimates it)
    absolute_sigma : bool
        As in ``scipy.optimize.curve_fit``.
    **solve_kw : as for ``js.solve``

    Returns
    -------
    ParameterCovariance
        With ``dof <= 0`` and not ``absolute_sigma`` there is no residual variance to
        scale by: ``cov`` is all inf (as ``curve_fit``'s ``pcov``).

    Raises
    ------
    InvalidProblemError
        ``loss`` not an ``L2Loss`` with ``t_data`` (a ``MomentLoss`` or a custom loss has
        no residuals to linearise); ``data`` not of the saved states' size; ``wrt`` not
        "p"/"u0"; ``absolute_sigma`` not a bool; ``S^T W S`` singular (scaled condition
        over 1e15: some combination of ``x`` does not enter the observed residuals).

    References
    ----------
    Bates, Watts, *Nonlinear Regression Analysis and Its Applications* (1988), ch. 2;
    Seber, Wild, *Nonlinear Regression* (1989), sec. 2.1 (Gauss-Newton covariance).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> def line(du, u, p, t):                  # u = p0 t + p1 t^2 / 2: linear in p
    ...     du[0] = p[0] + p[1] * t
    >>> prob = js.ODEProblem(line, np.array([0.0]), (0.0, 1.0), p=np.array([1.0, 2.0]))
    >>> t = np.linspace(0.1, 1.0, 10)
    >>> loss = js.L2Loss(t, (t + t ** 2)[:, None], weights=np.full((10, 1), 1 / 0.01 ** 2))
    >>> c = js.parameter_covariance(prob, js.Tsit5(), loss, absolute_sigma=True,
    ...                             rtol=1e-10, atol=1e-12)
    >>> X = np.stack([t, t ** 2 / 2], axis=1)      # the same from the design matrix
    >>> bool(np.allclose(c.cov, 0.01 ** 2 * np.linalg.inv(X.T @ X), rtol=1e-8)), c.dof
    (True, 8)

    Cost
    ----
    Per call: one :func:`local_sensitivities` solve (``k`` tangent directions) and a
    ``k x k`` inverse.
    """
    from .losses import L2Loss
    if not isinstance(loss, L2Loss) or loss.t_data is None:
        raise InvalidProblemError(
            f"loss: the Gauss-Newton covariance needs the fit's js.L2Loss with its "
            f"observation times, not {type(loss).__name__}"
            + (" without t_data" if isinstance(loss, L2Loss) else ""))
    if not isinstance(absolute_sigma, (bool, np.bool_)):
        raise InvalidProblemError(f"absolute_sigma: expected True or False, got "
                                  f"{absolute_sigma!r}")
    names = _wrt_names(wrt)
    model = Residuals(prob, alg, loss, names, solve_kw)
    xs = model.inputs(prob)
    k = sum(x.size for x in xs)
    sr, sJ = model.evaluate(prob)                    # sqrt(w) r and sqrt(w) S
    H = sJ.T @ sJ                                    # S^T W S
    # its columns scaled to unit norm: the condition does not depend on x's units
    h = np.sqrt(np.diag(H))
    if np.all(h > 0) and np.all(np.isfinite(h)):
        Hs = H / np.outer(h, h)
        cond = float(np.linalg.cond(Hs))
    else:                                            # some x enters no residual
        cond = float("inf")
    if not np.isfinite(cond) or cond > 1e15:
        raise InvalidProblemError(
            f"wrt: S^T W S is singular (condition {cond:.3g}): the data do not determine "
            f"every component of {', '.join(names)} (fix some of them, or observe more)")
    cov = np.linalg.inv(Hs) / np.outer(h, h)
    cov = 0.5 * (cov + cov.T)
    dof = int(np.count_nonzero(model.w > 0)) - k
    chi2 = float(sr @ sr)
    if not absolute_sigma:
        # no residual variance to scale by when dof <= 0: inf, as curve_fit's pcov
        cov = cov * (chi2 / dof) if dof > 0 else np.full_like(cov, np.inf)
    return ParameterCovariance(cov, xs[0].shape if len(xs) == 1 else [x.shape for x in xs],
                               dof=dof, chi2=chi2, cond=cond, absolute_sigma=absolute_sigma)
