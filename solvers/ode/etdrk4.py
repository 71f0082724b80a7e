"""ETDRK4 (Cox-Matthews): the linear part's representation, its phi-function
coefficients, the step grid, and the call of the compiled loop
(:func:`jitsolve.kernels.cpu.etdrk4.etd_solve`).

For ``du/dt = L u + N(u, t)`` one step of size ``h`` from ``u`` is (Cox and Matthews,
eq. (26)-(29))::

    a  = e^{hL/2} u + (h/2) phi1(hL/2) N(u, t)
    b  = e^{hL/2} u + (h/2) phi1(hL/2) N(a, t + h/2)
    c  = e^{hL/2} a + (h/2) phi1(hL/2) (2 N(b, t + h/2) - N(u, t))
    u' = e^{hL} u + h [f1 N(u) + 2 f2 (N(a) + N(b)) + f3 N(c)]

with ``f1 = phi1 - 3 phi2 + 4 phi3``, ``f2 = phi2 - 2 phi3``, ``f3 = -phi2 + 4 phi3`` at
``hL`` and ``phi_k(z) = sum_j z^j / (j + k)!``.  The linear part is exact: with ``N = 0``
a step is ``e^{hL} u`` to rounding, whatever ``h``.

How ``L`` is represented (:func:`linear_representation`):

- a 1-D array: a diagonal (e.g. a spectral symbol); the coefficients are vectors.
- a ``Laplacian`` (scaled, or a ``Diffusion`` with a constant ``kappa``): separable,
  ``L = sum_a I (x) T_a (x) I`` with ``T_a`` the 1-D Laplacian of axis ``a`` (its own
  boundary conditions), symmetric; each ``T_a`` is diagonalised (``eigh``), and the
  loop works in the product eigenbasis (matrix products along each axis: ``O(n
  sum_a n_a)`` per transform, no dense ``n x n`` matrix).
- any other operator or matrix of at most ``DENSE_SYM_MAX`` unknowns when symmetric
  (one ``eigh``), or at most ``DENSE_MAX`` otherwise: dense coefficient matrices from
  one matrix exponential of a block matrix (Sidje's and Higham's augmented form:
  ``expm([[hL, I, 0, 0], [0, 0, I, 0], [0, 0, 0, I], [0, 0, 0, 0]])`` holds
  ``phi_1..phi_3(hL)`` in its first block row).

References
----------
Cox, Matthews, J. Comput. Phys. 176 (2002); Kassam, Trefethen, SIAM J. Sci. Comput. 26
(2005); Hochbruck, Ostermann, *Exponential integrators*, Acta Numerica 19 (2010)
(stiff order: ETDRK4 has order 4 for the problems of Kassam-Trefethen, but its stiff
order can drop to 2 in the worst case); Sidje, *Expokit*, ACM TOMS 24 (1998), Thm. 1.
"""
import collections
import hashlib
import math

import numpy as np

from ...kernels.cpu import etdrk4 as _K
from ...kernels.cpu.fastcall import call
from .explicit import RETCODES, make_stops

__all__ = ["phi_functions", "LinearRepresentation", "linear_representation",
           "etd_coefficients", "step_grid", "solve_etdrk4", "EtdSteps", "DENSE_MAX", "DENSE_SYM_MAX",
           "MAX_STEP_SIZES", "MAX_DIAG_COEF_BYTES"]

#: the largest general (nonsymmetric) linear part represented by dense matrices
DENSE_MAX = 512
#: the largest symmetric non-separable linear part (one dense ``eigh``)
DENSE_SYM_MAX = 2048
#: distinct step sizes a solve may use with a dense linear part (each is one set of
#: coefficients: six n x n matrices and two ``expm`` of 4n and 2n); the diagonal and
#: eigenbasis modes (six n-vectors a set) take any number whose sets fit in
#: :data:`MAX_DIAG_COEF_BYTES`
MAX_STEP_SIZES = 64
#: the coefficient sets of one solve in the diagonal and eigenbasis modes, bytes
MAX_DIAG_COEF_BYTES = 256 * 2 ** 20
_SERIES = 2.0      # |z| below this: Taylor series (35 terms: below 1e-22 relative)


def phi_functions(z):
    """``(phi1(z), phi2(z), phi3(z))`` entrywise for real or complex ``z``.

    ``phi_k(z) = sum_{j >= 0} z^j / (j + k)!`` (``phi_k(0) = 1/k!``): the Taylor series
    where ``|z| < 2`` (no cancellation), elsewhere ``phi1 = (e^z - 1)/z`` and the
    recurrence ``phi_{k+1} = (phi_k - 1/k!)/z``: the closed forms without their powers
    of ``z`` (``z^3`` overflows beyond ``|z| ~ 1e102``, ``z^2`` beyond ``1e154``); they
    lose at most about one digit at ``|z| = 2``.

    References
    ----------
    Hochbruck, Ostermann, Acta Numerica 19 (2010), sec. 2.1; Kassam, Trefethen (2005)
    on the cancellation in the closed forms.

    Examples
    --------
    >>> import numpy as np
    >>> from jitsolve.solvers.ode.etdrk4 import phi_functions
    >>> p1, p2, p3 = phi_functions(np.array([0.0, -50.0]))
    >>> float(p1[0]), float(p2[0]), round(float(p3[0]), 12), round(float(p1[1]), 6)
    (1.0, 0.5, 0.166666666667, 0.02)
    """
    z = np.asarray(z)
    cplx = np.iscomplexobj(z)
    z = z.astype(np.complex128 if cplx else np.float64)
    small = np.abs(z) < _SERIES
    out = [np.empty_like(z) for _ in range(3)]
    zs = z[small]
    if zs.size:
        for k in (1, 2, 3):
            acc = np.zeros_like(zs)
            for j in range(34, -1, -1):     # Horner: sum_j z^j / (j + k)!
                acc = acc * zs + 1.0 / math.factorial(j + k)
            out[k - 1][small] = acc
    zb = z[~small]
    if zb.size:
        p1 = (np.exp(zb) - 1.0) / zb
        p2 = (p1 - 1.0) / zb
        out[0][~small] = p1
        out[1][~small] = p2
        out[2][~small] = (p2 - 0.5) / zb
    return tuple(out)


class LinearRepresentation:
    """How the loop applies functions of ``h L``: ``mode`` (``MODE_DIAG``, ``MODE_EIG``,
    ``MODE_DENSE``), ``lam`` (the diagonal or the eigenvalues, in the loop's order),
    the transform factors ``fwd``/``inv`` and ``dims`` (``MODE_EIG``), ``matrix``
    (``MODE_DENSE``) and ``kind``, a word for reports."""

    def __init__(self, mode, lam=None, fwd=None, inv=None, dims=(1, 1, 1), matrix=None,
                 kind=""):
        self.mode, self.lam, self.matrix, self.kind = mode, lam, matrix, kind
        self.key = None       # set when kept by linear_representation
        eye = np.ones((1, 1))
        self.fwd = fwd if fwd is not None else (eye, eye, eye)
        self.inv = inv if inv is not None else (eye, eye, eye)
        self.dims = tuple(int(d) for d in dims)


def _eig_factors(Qs, dims):
    """``fwd``/``inv`` tuples of :func:`jitsolve.kernels.cpu.etdrk4._kron3` for the
    orthogonal factors ``Qs`` of the axes ``dims`` (three, padded with 1 x 1)."""
    Q0, Q1, Q2 = Qs
    c = np.ascontiguousarray
    fwd = (c(Q0.T), c(Q1.T), c(Q2))
    inv = (c(Q0), c(Q1), c(Q2.T))
    return fwd, inv


def _separable_laplacian(op):
    """``(scale, Laplacian)`` when ``op`` is a scaled Laplacian or a constant-``kappa``
    Diffusion (exactly ``kappa`` times the Laplacian), else None."""
    from ...grid.operators import ScaledOperator
    from ...grid.stencils import Diffusion, Laplacian
    scale = 1.0
    while isinstance(op, ScaledOperator):
        scale *= op.c
        op = op.op
    if isinstance(op, Laplacian):
        return scale, op
    if isinstance(op, Diffusion) and np.all(op.kappa == op.kappa.flat[0]):
        return scale * float(op.kappa.flat[0]), Laplacian(op.grid)
    return None


def _axis_matrix(grid, axis):
    """The dense 1-D Laplacian of ``grid``'s axis ``axis`` with that axis' boundary
    conditions (homogeneous: boundary data stay in the boundary term)."""
    from ...grid.boundary import Dirichlet, Neumann, Periodic
    from ...grid.mesh import Grid
    from ...grid.stencils import Laplacian

    def hom(cond):
        if isinstance(cond, Periodic):
            return Periodic()
        return Neumann(0.0) if isinstance(cond, Neumann) else Dirichlet(0.0)
    lo, hi = grid.bcs[axis]
    g1 = Grid((grid.shape[axis],), extent=(grid.extent[axis],), bc=[(hom(lo), hom(hi))])
    return Laplacian(g1).to_csr().toarray()


#: representations and coefficient sets by content (a fit or an ensemble solves with the
#: same L many times: one dense ``eigh`` or matrix exponential, not one per solve)
_REPS = collections.OrderedDict()
_COEFS = collections.OrderedDict()
_MAX_REPS, _MAX_COEF_BYTES = 8, 256 * 2 ** 20


def _digest(*arrays):
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _remember(cache, key, value, limit):
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > 1 and limit(cache):
        cache.popitem(last=False)


def linear_representation(L, n):
    """The :class:`LinearRepresentation` of a ``SplitODEProblem``'s linear part ``L``
    (a grid operator, a scipy.sparse or dense matrix, or a 1-D diagonal) for ``n``
    unknowns; raises ``UnsupportedAlgorithmError`` naming ``L`` when none fits.
    Representations are kept by content (the matrix's bytes, or the grid and scale of
    a separable Laplacian): the same ``L`` again costs a digest, not a new ``eigh``."""
    import scipy.sparse as sp
    from ...grid.operators import GridOperator
    sep = _separable_laplacian(L) if isinstance(L, GridOperator) else None
    A = None            # the matrix of a non-separable L (assembled once, here)
    if isinstance(L, np.ndarray) and L.ndim == 1:
        key = ("diag", _digest(L))
    elif sep is not None:
        g = sep[1].grid
        key = ("sep", sep[0], g.shape, g.extent,
               tuple((type(lo).__name__, type(hi).__name__) for lo, hi in g.bcs))
    else:
        A = L.to_csr() if isinstance(L, GridOperator) else L
        if sp.issparse(A):
            A = sp.csr_matrix(A)
            key = ("csr", n, _digest(A.indptr, A.indices, A.data))
        else:
            key = ("dense", n, _digest(np.asarray(A, dtype=np.float64)))
    rep = _REPS.get(key)
    if rep is None:
        rep = _build_representation(L, n, sep, A)
        rep.key = key
        _remember(_REPS, key, rep, lambda c: len(c) > _MAX_REPS)
    else:
        _REPS.move_to_end(key)
    return rep


def _build_representation(L, n, sep, A):
    """The representation of ``L`` (``sep`` from :func:`_separable_laplacian`, ``A`` the
    matrix :func:`linear_representation` assembled when neither applies)."""
    import scipy.sparse as sp
    from ...errors import UnsupportedAlgorithmError
    if isinstance(L, np.ndarray) and L.ndim == 1:
        # a copy: the representation is kept by content, and the caller's array (often
        # ``prob.L`` itself) may be changed in place after this solve
        return LinearRepresentation(_K.MODE_DIAG, lam=np.array(L, dtype=np.float64),
                                    kind="diagonal")
    if sep is not None:
        scale, lap = sep
        g = lap.grid
        lams, Qs = [], []
        for a in range(g.ndim):
            lam_a, Q_a = np.linalg.eigh(_axis_matrix(g, a))
            lams.append(lam_a)
            Qs.append(Q_a)
        pad = 3 - g.ndim
        dims = (1,) * pad + g.shape
        lams = [np.zeros(1)] * pad + lams
        Qs = [np.ones((1, 1))] * pad + Qs
        lam = scale * (lams[0][:, None, None] + lams[1][None, :, None] + lams[2][None, None, :])
        fwd, inv = _eig_factors(Qs, dims)
        return LinearRepresentation(_K.MODE_EIG, lam=np.ascontiguousarray(lam.ravel()),
                                    fwd=fwd, inv=inv, dims=dims,
                                    kind=f"separable ({g.ndim}-D eigenbasis)")
    if n > max(DENSE_MAX, DENSE_SYM_MAX):
        raise UnsupportedAlgorithmError(
            f"L: ETDRK4 needs functions of h*L; {n} unknowns are too many for dense matrices "
            f"(at most {DENSE_SYM_MAX} symmetric, {DENSE_MAX} otherwise) and this L is not a "
            f"(scaled) Laplacian or a 1-D diagonal, whose eigenbases are known; use "
            f"js.KenCarp4() (IMEX) for this problem")
    M = A.toarray() if sp.issparse(A) else np.array(A)
    scale = max(np.abs(M).max(), 1e-300)
    if np.abs(M - M.T).max() <= 1e-14 * scale:
        lam, Q = np.linalg.eigh(0.5 * (M + M.T))
        one = np.ones((1, 1))
        fwd, inv = _eig_factors((one, one, Q), (1, 1, n))
        return LinearRepresentation(_K.MODE_EIG, lam=np.ascontiguousarray(lam), fwd=fwd,
                                    inv=inv, dims=(1, 1, n), kind="symmetric (dense eigenbasis)")
    if n > DENSE_MAX:
        raise UnsupportedAlgorithmError(
            f"L: a nonsymmetric linear part of {n} unknowns is too large for ETDRK4's dense "
            f"matrix functions (at most {DENSE_MAX}); use js.KenCarp4() (IMEX) for this problem")
    return LinearRepresentation(_K.MODE_DENSE, matrix=np.ascontiguousarray(M), kind="dense")


def etd_coefficients(rep, h):
    """The six coefficients ``(e^{hL/2}, (h/2) phi1(hL/2), e^{hL}, h f1, h f2, h f3)`` of
    one step of size ``h``: an array (6, n) for the diagonal modes (entries in the
    loop's order), (6, n, n) for ``MODE_DENSE``; kept per (representation, ``h``) (read
    only: the kernels do not write them)."""
    key = None if rep.key is None else (rep.key, float(h))
    hit = _COEFS.get(key) if key is not None else None
    if hit is not None:
        _COEFS.move_to_end(key)
        return hit
    out = _coefficients(rep, h)
    if key is not None:
        out.setflags(write=False)
        _remember(_COEFS, key, out,
                  lambda c: sum(a.nbytes for a in c.values()) > _MAX_COEF_BYTES)
    return out


def _coefficients(rep, h):
    if rep.mode != _K.MODE_DENSE:
        z = h * rep.lam
        p1h, _, _ = phi_functions(0.5 * z)
        p1, p2, p3 = phi_functions(z)
        return np.stack([np.exp(0.5 * z), 0.5 * h * p1h, np.exp(z),
                         h * (p1 - 3.0 * p2 + 4.0 * p3), h * (p2 - 2.0 * p3),
                         h * (-p2 + 4.0 * p3)])
    from scipy.linalg import expm
    M = rep.matrix
    n = M.shape[0]
    I = np.eye(n)
    big = np.zeros((4 * n, 4 * n))
    big[:n, :n] = h * M
    for k in range(3):
        big[k * n:(k + 1) * n, (k + 1) * n:(k + 2) * n] = I
    X = expm(big)
    E, P1, P2, P3 = (X[:n, k * n:(k + 1) * n] for k in range(4))
    half = np.zeros((2 * n, 2 * n))
    half[:n, :n] = 0.5 * h * M
    half[:n, n:] = I
    Y = expm(half)
    return np.ascontiguousarray(np.stack([
        Y[:n, :n], 0.5 * h * Y[:n, n:], E, h * (P1 - 3.0 * P2 + 4.0 * P3), h * (P2 - 2.0 * P3),
        h * (-P2 + 4.0 * P3)]))


def step_grid(t0, t1, dt, stops):
    """The step endpoints ``tg`` and each step's size class ``hid`` (0: ``dt``; others:
    the distinct shortened steps that land on ``stops``) with the size ``hs[j]`` of
    class ``j``.

    Between two stops the steps are ``dt`` long, and the last one lands on the stop
    (it is shortened to the remaining distance; a remainder within ``1e-12 dt`` of
    ``dt`` is a full step), as the explicit loop steps onto ``saveat`` and ``tstops``.
    """
    tdir = 1.0 if t1 >= t0 else -1.0
    dt = abs(float(dt))
    pieces = [np.array([t0])]
    hid_pieces = []
    hs = [tdir * dt]
    keys = {}
    a = t0
    for b in stops:
        D = abs(b - a)
        j = max(0, math.ceil(D / dt - 1.0 - 1e-12))
        rem = D - j * dt
        pts = a + tdir * dt * np.arange(1, j + 1)
        pieces.append(np.append(pts, b))
        ids = np.zeros(j + 1, np.int64)
        if abs(rem - dt) > 1e-12 * dt:
            key = round(rem / dt, 12)
            if key not in keys:
                keys[key] = len(hs)
                hs.append(tdir * rem)
            ids[-1] = keys[key]
        hid_pieces.append(ids)
        a = b
    tg = np.ascontiguousarray(np.concatenate(pieces))
    hid = np.ascontiguousarray(np.concatenate(hid_pieces) if hid_pieces else np.zeros(0, np.int64))
    return tg, hid, np.array(hs)


class EtdSteps:
    """Everything a reverse sweep needs to redo a solve's steps bit for bit: the
    nonlinear part (``f``, ``p``, ``nb``, ``hasnb``), the representation ``rep``, the
    coefficient sets (``cf`` or ``cm``), the step grid ``tg`` and classes ``hid``."""

    def __init__(self, f, p, nb, hasnb, rep, cf, cm, tg, hid):
        self.f, self.p, self.nb, self.hasnb, self.rep = f, p, nb, hasnb, rep
        self.cf, self.cm, self.tg, self.hid = cf, cm, tg, hid

    def kernel_args(self):
        """The leading arguments of the kernels of :mod:`jitsolve.kernels.cpu.etdrk4`:
        ``(f, p, nb, hasnb)`` and ``(mode, cf, cm, fwd, inv, dims)``."""
        r = self.rep
        return ((self.f, self.p, self.nb, self.hasnb),
                (int(r.mode), self.cf, self.cm, r.fwd, r.inv, r.dims))


def solve_etdrk4(f, p, nb, u0, t0, t1, rep, dt, *, saveat=None, tstops=None,
                 maxiters=100_000):
    """Integrate ``du/dt = L u + f(u, p, t) + nb`` with ETDRK4 from ``t0`` to ``t1`` in
    steps of ``dt`` (landing on ``saveat`` and ``tstops``); ``rep`` from
    :func:`linear_representation`, ``f`` a cfunc of the right-hand-side signature,
    ``nb`` a vector or None.  Returns the raw dict of
    :func:`jitsolve.solvers.ode.explicit.solve_erk` (no dense output, no events)."""
    from ...errors import UnsupportedAlgorithmError
    u0 = np.ascontiguousarray(u0, dtype=np.float64).ravel()
    n = u0.size
    t0, t1 = float(t0), float(t1)
    every = saveat is None
    savet = np.zeros(0) if every else np.asarray(saveat, dtype=np.float64)
    stops = make_stops(t0, t1, tstops, None if every else savet)
    tg, hid, hs = step_grid(t0, t1, dt, stops)
    dense = rep.mode == _K.MODE_DENSE
    if (hs.size > MAX_STEP_SIZES if dense else
            hs.size > MAX_STEP_SIZES and hs.size * 48 * n > MAX_DIAG_COEF_BYTES):
        # name what the caller passed: a gradient's loss times arrive as tstops
        name = "tstops" if every else "saveat"
        most = (f"at most {MAX_STEP_SIZES} with a dense L" if dense else
                f"at most {MAX_DIAG_COEF_BYTES // 2 ** 20} MiB of them, "
                f"{MAX_DIAG_COEF_BYTES // (48 * n)} sizes here")
        raise UnsupportedAlgorithmError(
            f"{name}: these save times and tstops (a gradient's loss times among them) "
            f"need {hs.size} different step sizes (ETDRK4 computes one set of matrix "
            f"functions per size; {most}); put them on the grid t0 + k*dt")
    if every:
        save = np.ones(tg.size, np.bool_)
    else:
        save = np.isin(tg, savet)
        save[0] = bool(savet.size and savet[0] == t0)
    # the first MAX_STEP_SIZES sets through the cache (a fit's solves share them), any
    # further ones computed afresh (the cache's size check walks all its entries)
    sets = [etd_coefficients(rep, h) if j < MAX_STEP_SIZES else _coefficients(rep, h)
            for j, h in enumerate(hs)]
    if dense:
        cm = np.ascontiguousarray(np.stack(sets))
        cf = np.zeros((0, 6, 0))
    else:
        cf = np.ascontiguousarray(np.stack(sets))
        cm = np.zeros((0, 6, 0, 0))
    hasnb = nb is not None and bool(np.any(nb))
    nbv = np.ascontiguousarray(nb, dtype=np.float64).ravel() if hasnb else np.zeros(0)
    p = np.ascontiguousarray(p if p is not None else np.zeros(0), dtype=np.float64)
    res = call(_K.etd_solve, f, p, nbv, hasnb, u0, tg, hid, save, int(rep.mode), cf, cm,
               rep.fwd, rep.inv, rep.dims, int(maxiters))
    ts, us, nsave, stats, rc, t, u = res
    return dict(t=ts[:nsave], u=us[:nsave], steps_t=tg[:-1][:int(stats[3])],
                steps_h=np.diff(tg)[:int(stats[3])], dense_u=None, dense_k=None,
                event_t=np.zeros(0), event_u=np.zeros((0, n)), stats=stats,
                retcode=RETCODES[rc], t_end=t, u_end=u,
                # what a discrete adjoint replays (jitsolve.adjoint.etdrk4)
                etd=EtdSteps(f, p, nbv, hasnb, rep, cf, cm, tg, hid))
