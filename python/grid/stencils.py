"""Stencil operators on cell-centred grids: Laplacian, variable-coefficient diffusion, advection,
and the identity (the mass term of implicit time steps, ``I - dt L``).

Each operator's products run in the Numba kernels of ``jitsolve.kernels.cpu.stencil``
(``@njit(parallel=True, cache=True)``); these classes only check inputs, hold the
coefficient fields and choose the kernel.
"""
import numbers

import numpy as np

from ..errors import InvalidProblemError
from ..validate import as_state_array, check_choice
from .operators import GridOperator, _boundary_faces, kernel_module

__all__ = ["Laplacian", "Diffusion", "Advection", "Identity"]


def _harm(a, b):
    return 2.0 * a * b / (a + b)


def _streams(backend, out3):
    """Whether an apply writes ``out3`` with streaming stores (a CPU kernel, a float64
    output far larger than the cache: :func:`~jitsolve.kernels.cpu.ntstore.use_stream`)."""
    return backend == "cpu" and kernel_module("cpu", "ntstore").use_stream(out3)


# Gap between the components of a vector field stored in one buffer: a page and a cache
# line, so that no two components start at addresses equal modulo a large power of two.
_COMPONENT_GAP = (4096 + 64) // 8


def _staggered_components(v):
    """``v`` (shape ``(d, *grid)``, float64) copied into one buffer with a gap of
    :data:`_COMPONENT_GAP` entries between its components; returns the view of shape
    ``(d, *grid)`` (each component C-contiguous, the first axis strided).

    Why: a contiguous ``(3, 256, 256, 256)`` field puts its components exactly 2^27
    bytes apart, so a kernel reading the three at one index (the advection kernels)
    reads addresses equal modulo every cache's way size.  On an AMD Zen 4 host that cost
    the 256^3 apply 1.3-1.7x and the velocity VJP 1.4-1.5x in some runs (none on a
    240 x 256 x 256 grid), nothing measurable in others; staggered, never more than
    noise (RESULTS.md, forty-first session).  Memory: one page per component.
    """
    d = v.shape[0]
    m = v[0].size
    buf = np.empty(d * m + (d - 1) * _COMPONENT_GAP)
    step = (m + _COMPONENT_GAP) * buf.itemsize
    component = buf[:m].reshape(v.shape[1:]).strides
    out = np.lib.stride_tricks.as_strided(buf, shape=v.shape, strides=(step,) + component)
    out[...] = v
    return out


def _check_real_pair(op, u, lam):
    u = op._check_in(u, "u")
    lam = op._check_in(lam, "lam")
    if u.shape != lam.shape:
        raise InvalidProblemError(f"lam: expected the shape of u {u.shape}, got {lam.shape}")
    if np.iscomplexobj(u) or np.iscomplexobj(lam):
        raise InvalidProblemError("u, lam: param_vjp differentiates real fields; got complex input")
    return (np.ascontiguousarray(u, dtype=np.float64), np.ascontiguousarray(lam, dtype=np.float64))


class Laplacian(GridOperator):
    """The standard (2d+1)-point Laplacian on a cell-centred grid.

    ``(L u)_i = sum_a (u_{i-e_a} - 2 u_i + u_{i+e_a}) / h_a^2``; a Dirichlet face uses
    the ghost value ``2 g - u_i``, a Neumann face ``u_i + h q``.  ``L`` approximates
    the Laplacian itself, so it is negative (semi)definite; it is symmetric, so
    ``L.T is L``.  Poisson's ``-Δu = f`` is ``js.LinearProblem(-L, f + L.boundary_term())``
    (``-(L u + L.boundary_term()) = f``).

    References
    ----------
    Trottenberg, Oosterlee, Schüller, *Multigrid* (2001), sec. 5.7; LeVeque,
    *Finite Difference Methods for ODEs and PDEs* (2007), ch. 3.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((64, 64), bc=js.Dirichlet(0.0))
    >>> L = js.Laplacian(g)
    >>> x, y = g.mesh()
    >>> u = np.sin(np.pi * x) * np.sin(np.pi * y)
    >>> Lu = L.apply(u)                             # ~ -2 pi^2 u
    >>> round(float(Lu[32, 32] / u[32, 32]), 2), L.T is L
    (-19.74, True)
    >>> js.Laplacian(js.Grid((4,))).apply(np.ones(4))    # h = 1/4, ghosts -u at the walls
    array([-32.,   0.,   0., -32.])

    Cost
    ----
    Per apply: one parallel pass that reads ``u`` once and writes ``A u`` once
    (memory bound, about 2 x 8 bytes per cell; the ``2d`` neighbours come from cache),
    no coefficient arrays.  ``L.T`` is ``L`` (same cost).  ``diagonal``, ``to_csr``
    and ``boundary_term`` are assembled from face tables in NumPy (a few passes per
    axis and side; the CSR holds ``(2d + 1) n`` entries).
    """

    symmetric = True

    def __init__(self, grid):
        super().__init__(grid)
        self._c = self._padded_scale(2)
        self._per, self._sgn = self._kernel_bc()

    def _apply3(self, u3, out3):
        # streaming stores on 1-D / 2-D grids (4096^2: 0.71 -> 0.87 of the triad); in 3-D
        # they measured 0.98-1.07x the plain apply's time (256^3, 512 x 256^2)
        km = kernel_module(self.backend)
        stream = out3.shape[0] == 1 and _streams(self.backend, out3)
        fn = km.laplacian_apply_stream if stream else km.laplacian_apply
        fn(u3, out3, self._c, self._per, self._sgn)

    def _face_coeffs(self, axis, side, nb, ghost):
        w = np.full(self.grid.shape, 1.0 / self.grid.spacing[axis] ** 2)
        return w, -w

    def _boundary_coeffs(self, axis, side, sl):
        return 1.0 / self.grid.spacing[axis] ** 2, None


#: the range of a :class:`Diffusion`'s ``kappa``: ``2 k_i k_m`` and ``(k_i + k_m)^2`` (the
#: face means and their derivatives) stay normal floating-point numbers inside it
KAPPA_MIN = 1e-150
KAPPA_MAX = 1e150


class Diffusion(GridOperator):
    """Variable-coefficient diffusion ``div(kappa grad u)`` with harmonic face averages.

    The flux through the face between cells ``i`` and ``m`` is
    ``k_f (u_m - u_i) / h`` with ``k_f = 2 k_i k_m / (k_i + k_m)``, the average that
    keeps flux continuity across jumps in ``kappa``; a boundary face uses ``k_i``.
    Symmetric and negative (semi)definite.  ``param_vjp(u, lam)`` returns the gradient
    of ``<lam, D(kappa) u + b(kappa)>`` with respect to ``kappa``.

    Parameters
    ----------
    grid : Grid
    kappa : float or array of the grid's shape
        Conductivity, finite and in ``[KAPPA_MIN, KAPPA_MAX]`` = ``[1e-150, 1e150]``
        everywhere (a number is expanded to a full array; outside that range the face
        means ``2 k_i k_m / (k_i + k_m)`` would overflow or underflow).  The operator
        keeps its own float64 copy, ``D.kappa``; assigning ``D.kappa = k`` checks ``k``
        and replaces it (entries changed in place are not checked again).

    References
    ----------
    Trottenberg, Oosterlee, Schüller, *Multigrid* (2001), sec. 7.7 (harmonic averaging
    for jumping coefficients); Patankar, *Numerical Heat Transfer and Fluid Flow*
    (1980), 4.2.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((32, 32))
    >>> kappa = 1.0 + np.random.default_rng(0).random(g.shape)
    >>> D = js.Diffusion(g, kappa)
    >>> u = np.ones(g.shape); lam = np.ones(g.shape)
    >>> D.param_vjp(u, lam).shape
    (32, 32)
    >>> D1 = js.Diffusion(js.Grid((4,)), np.array([1.0, 2.0, 2.0, 1.0]))
    >>> D1.apply(np.ones(4)), D1.T is D1
    (array([-32.,   0.,   0., -32.]), True)

    Cost
    ----
    Per apply: one parallel pass that reads ``u`` and ``kappa`` once and writes once
    (3 x 8 bytes per cell; the harmonic face averages are recomputed on the fly, not
    stored).  ``param_vjp``: one pass reading ``u``, ``lam`` and ``kappa`` and writing
    the gradient (4 x 8 bytes per cell), plus a NumPy fix-up on the boundary faces
    with non-zero data.  Memory: ``kappa`` (one array of the grid's shape).
    """

    symmetric = True
    param_name = "kappa"

    def __init__(self, grid, kappa):
        super().__init__(grid)
        self.kappa = kappa
        self._c = self._padded_scale(2)
        self._per, self._sgn = self._kernel_bc()

    @property
    def kappa(self):
        """The conductivity, the operator's own float64 array of the grid's shape."""
        return self._kappa

    @kappa.setter
    def kappa(self, kappa):
        grid = self.grid
        if isinstance(kappa, (numbers.Real, np.floating, np.integer)) and not isinstance(kappa, bool):
            kappa = np.full(grid.shape, float(kappa))
        k = as_state_array(kappa, "kappa", dtypes=(np.float64, np.float32))
        if k.shape not in (grid.shape, (grid.size,)):
            raise InvalidProblemError(f"kappa: expected shape {grid.shape}, got {k.shape}")
        k = np.ascontiguousarray(k.reshape(grid.shape), dtype=np.float64)
        if not (k > 0).all():
            bad = int(np.count_nonzero(~(k > 0)))
            raise InvalidProblemError(f"kappa: must be > 0 everywhere ({bad} entries are <= 0)")
        lo, hi = float(k.min()), float(k.max())
        if lo < KAPPA_MIN or hi > KAPPA_MAX:
            raise InvalidProblemError(
                f"kappa: entries must lie in [{KAPPA_MIN:g}, {KAPPA_MAX:g}] (the harmonic "
                f"face means 2 k_i k_m / (k_i + k_m) overflow or underflow outside), got "
                f"min {lo:g}, max {hi:g}; rescale kappa and the equation")
        self._kappa = k
        self._k3 = self._view3(k)

    def _apply3(self, u3, out3):
        # (no streaming stores: measured the same time at 4096^2, 1.04x at 256^3 -- the
        # harmonic means bound this apply, not the write-allocate traffic)
        kernel_module(self.backend).diffusion_apply(u3, self._k3, out3, self._c, self._per,
                                                    self._sgn)

    def param_vjp(self, u, lam, out=None):
        u, lam = _check_real_pair(self, u, lam)
        g = self._check_out(out, u, np.float64, also=(lam,))
        kernel_module(self.backend).diffusion_param_vjp(
            self._view3(u), self._view3(lam), self._k3, self._view3(g), self._c, self._per, self._sgn)
        gg = g.reshape(self.grid.shape)
        lg = lam.reshape(self.grid.shape)
        for axis, side, cond, sl in _boundary_faces(self.grid):
            ghost = self._ghost_constant(cond, axis, side)
            if ghost is not None:   # b_i = c k_i ghost: d b_i / d k_i = c ghost
                gg[sl] += ghost * lg[sl] / self.grid.spacing[axis] ** 2
        return g

    def _face_coeffs(self, axis, side, nb, ghost):
        k = self.kappa
        w = _harm(k, k.ravel()[nb]) / self.grid.spacing[axis] ** 2
        return w, -w

    def _boundary_coeffs(self, axis, side, sl):
        k = self.kappa[sl]
        return _harm(k, k) / self.grid.spacing[axis] ** 2, None

    def __repr__(self):
        return f"Diffusion({self.grid!r}, kappa=array{self.kappa.shape})"


def kappa_field(op):
    """``(kappa, rebuild)`` for a grid operator whose one coefficient field is a
    :class:`Diffusion`'s ``kappa``, through scalings and sums (``-2 * D + L``):
    ``rebuild(k)`` is ``op`` with that ``kappa`` replaced by ``k``.  None when ``op``
    has no such field, or more than one (what ``param_vjp`` differentiates)."""
    from .operators import ScaledOperator, SumOperator
    if type(op) is Diffusion:
        return op.kappa, lambda k: Diffusion(op.grid, k)
    if isinstance(op, ScaledOperator):
        inner = kappa_field(op.op)
        return None if inner is None else (inner[0], lambda k: ScaledOperator(op.c, inner[1](k)))
    if isinstance(op, SumOperator) and op.param_name == "kappa":
        a, b = kappa_field(op.a), kappa_field(op.b)
        if (a is None) == (b is None):
            return None
        if a is not None:
            return a[0], lambda k: SumOperator(a[1](k), op.b)
        return b[0], lambda k: SumOperator(op.a, b[1](k))
    return None


class Advection(GridOperator):
    """Flux-form advection ``-div(v u)``, first-order upwind or second-order central.

    The face velocity is the mean of the two cells' velocities; the flux is
    ``max(v, 0) u_L + min(v, 0) u_R`` (upwind) or ``v (u_L + u_R) / 2`` (central).
    A Dirichlet value is the inflow face value (upwind) or the face value (central);
    Neumann uses the ghost ``u_i + h q``.  Not symmetric: ``A.T`` applies its own
    transpose kernel.  ``param_vjp(u, lam)`` returns the velocity gradient, shape
    ``(ndim, *grid.shape)``; the upwind weights are differentiated as
    ``d max(v, 0)/dv = [v > 0]``, so a face velocity of exactly 0 contributes nothing.

    Parameters
    ----------
    grid : Grid
    velocity : sequence of ndim numbers, or array of shape (ndim, *grid.shape)
        Cell-centred velocity components.  The operator keeps its own copy,
        ``A.velocity``; assigning ``A.velocity = v`` checks ``v`` and replaces it.
    scheme : {"upwind", "central"}

    References
    ----------
    LeVeque, *Finite Volume Methods for Hyperbolic Problems* (2002), ch. 4 and 20.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((128,), bc=js.Periodic())
    >>> A = js.Advection(g, velocity=(1.0,), scheme="central")
    >>> x, = g.cell_centers()
    >>> du = A.apply(np.sin(2 * np.pi * x))    # ~ -2 pi cos(2 pi x)
    >>> bool(np.abs(du + 2 * np.pi * np.cos(2 * np.pi * x)).max() < 2e-2)
    True
    >>> V = js.Advection(js.Grid((4,), bc=js.Periodic()), velocity=(1.0,))   # upwind
    >>> V.apply(np.arange(4.0)), V.T.apply(np.arange(4.0))
    (array([12., -4., -4., -4.]), array([  4.,   4.,   4., -12.]))

    Cost
    ----
    Per apply: one parallel pass that reads ``u`` and the ``ndim`` velocity components
    once and writes once ((2 + ndim) x 8 bytes per cell; a constant velocity is stored
    as full arrays too).  ``A.T`` applies its own transpose kernel at the same cost.
    ``param_vjp``: one pass reading ``u``, ``lam`` and the velocity and writing ``ndim``
    gradient arrays.  Memory: ``ndim`` velocity arrays of the grid's shape, in one
    buffer a page and a cache line apart (``velocity`` is a view of it, each component
    C-contiguous: see ``_staggered_components``).
    """

    param_name = "velocity"

    def __init__(self, grid, velocity, scheme="upwind"):
        super().__init__(grid)
        self.scheme = check_choice(scheme, "scheme", ("upwind", "central"))
        self.velocity = velocity
        self._central = self.scheme == "central"
        self._c = self._padded_scale(1)
        self._per, self._sgn = self._kernel_bc()

    @property
    def velocity(self):
        """The velocity, the operator's own array of shape ``(ndim, *grid.shape)``."""
        return self._velocity

    @velocity.setter
    def velocity(self, velocity):
        grid = self.grid
        d = grid.ndim
        v = as_state_array(velocity, "velocity", dtypes=(np.float64, np.float32))
        if v.shape == (d,):
            v = np.broadcast_to(v.reshape((d,) + (1,) * d), (d,) + grid.shape)
        elif v.shape != (d,) + grid.shape:
            raise InvalidProblemError(
                f"velocity: expected {d} numbers or an array of shape {(d,) + grid.shape}, got {v.shape}")
        vel = _staggered_components(np.asarray(v, dtype=np.float64))
        off = 3 - d
        comps = [self._view3(vel[a]) for a in range(d)]
        self._velocity = vel
        self._v3 = tuple(comps[a - off] if a >= off else comps[0] for a in range(3))

    def _dirichlet_sign(self):
        return -1.0 if self._central else 0.0

    def _dirichlet_factor(self):
        return 2.0 if self._central else 1.0

    def _apply3(self, u3, out3):
        v0, v1, v2 = self._v3
        kernel_module(self.backend).advection_apply(u3, v0, v1, v2, out3, self._c, self._per,
                                                    self._sgn, self._central)

    def _apply_transpose3(self, lam3, out3):
        v0, v1, v2 = self._v3
        kernel_module(self.backend).advection_transpose(lam3, v0, v1, v2, out3, self._c, self._per,
                                                        self._sgn, self._central)

    def _weights(self, vf):
        if self._central:
            return 0.5 * vf, 0.5 * vf
        return np.maximum(vf, 0.0), np.minimum(vf, 0.0)

    def _dweights(self, vf):
        if self._central:
            return np.full_like(vf, 0.5), np.full_like(vf, 0.5)
        return (vf > 0).astype(float), (vf < 0).astype(float)

    def param_vjp(self, u, lam, out=None):
        u, lam = _check_real_pair(self, u, lam)
        d = self.grid.ndim
        shape = (d,) + self.grid.shape
        if out is None:
            g = np.empty(shape)
        elif (not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != np.float64
              or not out.flags.c_contiguous or not out.flags.writeable):
            raise InvalidProblemError(
                f"out: expected a writeable C-contiguous float64 array of shape {shape}")
        elif np.shares_memory(out, u) or np.shares_memory(out, lam):
            raise InvalidProblemError("out: must not overlap the input (u or lam)")
        else:
            g = out
        off = 3 - d
        outs = [self._view3(g[a - off]) if a >= off else self._view3(g[0]) for a in range(3)]
        v0, v1, v2 = self._v3
        kernel_module(self.backend).advection_param_vjp(
            self._view3(u), self._view3(lam), v0, v1, v2, outs[0], outs[1], outs[2], d,
            self._c, self._per, self._sgn, self._central)
        lg = lam.reshape(self.grid.shape)
        for axis, side, cond, sl in _boundary_faces(self.grid):
            ghost = self._ghost_constant(cond, axis, side)
            if ghost is None:
                continue
            dwl, dwr = self._dweights(self.velocity[axis][sl])
            dw = dwl if side == 0 else -dwr
            g[axis][sl] += dw * ghost * lg[sl] / self.grid.spacing[axis]
        return g

    def _face_coeffs(self, axis, side, nb, ghost):
        v = self.velocity[axis]
        vf = 0.5 * (v + v.ravel()[nb])
        wl, wr = self._weights(vf)
        c = 1.0 / self.grid.spacing[axis]
        if side == 0:   # lower face: +c (wl u_nb + wr u_i)
            return c * wl, c * wr
        return -c * wr, -c * wl   # upper face: -c (wl u_i + wr u_nb)

    def _boundary_coeffs(self, axis, side, sl):
        wl, wr = self._weights(self.velocity[axis][sl])
        c = 1.0 / self.grid.spacing[axis]
        return (c * wl if side == 0 else -c * wr), None

    def __repr__(self):
        return f"Advection({self.grid!r}, velocity=array{self.velocity.shape}, scheme={self.scheme!r})"


class Identity(GridOperator):
    """The identity on a grid's cells: with the algebra, the shifted operators of implicit
    time steps and screened equations, ``I - dt * D(kappa)`` or ``sigma * I - L``.

    ``js.Multigrid()`` preconditions ``sigma * I + c * L`` and ``sigma * I + c * D(kappa)``
    when the two parts have the same definiteness (``sigma >= 0 > c`` or
    ``sigma <= 0 < c``): the shift is kept on every level (a mass term in the
    operator's finite-difference scaling) and enters the smoother's diagonal.

    References
    ----------
    Hairer & Wanner, *Solving ODEs II* (1996), sec. IV.8 (the linear systems
    ``I - h gamma J`` of implicit steps); Trottenberg, Oosterlee, Schüller, *Multigrid*
    (2001), sec. 2.9 and 4.1 (multigrid for ``-Δu + c u``).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((64, 64))
    >>> A = js.Identity(g) - 1e-3 * js.Laplacian(g)      # one backward Euler step
    >>> u0 = np.random.default_rng(0).random(g.shape)
    >>> sol = js.solve(js.LinearProblem(A, u0), js.CG(js.Multigrid()), rtol=1e-10)
    >>> sol.retcode, sol.iters                    # 9-10 for any dt, as for Poisson
    (<ReturnCode.Success: 'Success'>, 10)

    Cost
    ----
    Per apply: one copy (read ``u``, write ``out``).  ``sigma * I + c * A`` (any nesting
    of sums and scales with one other leaf) applies as ``A``'s pass and one fused pass
    ``out = sigma u + c out``.  ``diagonal``, ``to_csr`` and ``boundary_term`` are ones,
    the sparse identity and zeros.
    """

    symmetric = True
    is_identity = True

    def _apply3(self, u3, out3):
        np.copyto(out3, u3)

    def diagonal(self):
        return np.ones(self.grid.shape)

    def to_csr(self):
        import scipy.sparse as sp
        return sp.identity(self.grid.size, format="csr")

    def boundary_term(self):
        return np.zeros(self.grid.shape)

    def __repr__(self):
        return f"Identity({self.grid!r})"
